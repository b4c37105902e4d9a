"""Helpers the labs' checks share (pure: over loaded results)."""


def counted_ok(requests):
    """Return the measured (counted) requests that got a 2xx/3xx response."""
    return [r for r in requests if r.get("counted") and r.get("status")
            and 200 <= r["status"] < 400 and not r.get("error")]


def runs_of(results, balancer=None, **sweep):
    """Return the ok runs.csv rows of ``balancer`` (any when None) at a sweep point.

    ``sweep`` names a swept parameter by the last part of its key path:
    ``runs_of(r, keepalive=True)`` matches the column ``sweep.workload.keepalive``.
    """
    rows = []
    for row in results.ok_runs():
        if balancer is not None and row.get("balancer") != balancer:
            continue
        if all(any(k.startswith("sweep.") and k.endswith("." + key) and row[k] == value
                   for k in row) for key, value in sweep.items()):
            rows.append(row)
    return rows


def clients_per_backend(requests):
    """Return ``{client: set(backends)}`` of the measured ok requests."""
    seen = {}
    for req in counted_ok(requests):
        if req.get("backend"):
            seen.setdefault(req["client"], set()).add(req["backend"])
    return seen
