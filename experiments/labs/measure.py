"""Measurements the checks of labs 5-8 share (pure: over loaded results, no I/O).

Requests are the rows of ``requests.parquet`` (docs/data.md): ``run``, ``client``, ``scheduled``,
``start``, ``end``, ``status``, ``backend``, ``error``, ``path``, ``conn``, ``cache``,
``counted``; backend records are ``raw/<run>/backend-*.jsonl`` (``lb_apps/records.py``).
"""
import statistics

from experiments.labs.common import runs_of as ok_runs  # noqa: F401  (the checks call M.ok_runs)


def is_ok(req):
    """True for a complete 2xx/3xx response."""
    return bool(req.get("status")) and 200 <= req["status"] < 400 and not req.get("error")


def measured(requests, path=None):
    """Return the counted (measurement window, not warm-up) requests, of ``path`` if given."""
    return [r for r in requests if r.get("counted") and (path is None or r.get("path") == path)]


def median_latency_ms(requests):
    """Return the median latency (end - scheduled, ms) of the ok requests, or None."""
    values = [(r["end"] - r["scheduled"]) * 1000.0 for r in requests if is_ok(r)]
    return statistics.median(values) if values else None


def reused_share(requests):
    """Return the share of requests sent on a reused connection, or None without requests."""
    conns = [r.get("conn") for r in requests if r.get("conn")]
    return sum(c == "reused" for c in conns) / len(conns) if conns else None


def top_backend_share(requests):
    """Return ``{client: share of its ok requests its most-used backend served}``."""
    per = {}
    for req in requests:
        if is_ok(req) and req.get("backend"):
            per.setdefault(req["client"], []).append(req["backend"])
    return {client: max(backends.count(b) for b in set(backends)) / len(backends)
            for client, backends in per.items()}


def backend_shares(requests):
    """Return ``{backend: share of the ok requests}`` (empty without any)."""
    names = [r["backend"] for r in requests if is_ok(r) and r.get("backend")]
    return {b: names.count(b) / len(names) for b in sorted(set(names))}


def weight_shares(backends):
    """Return ``{backend: weight / total weight}`` of a meta.json's ``backends`` list."""
    total = sum(b["weight"] for b in backends)
    return {b["name"]: b["weight"] / total for b in backends} if total else {}


def cache_hit_rate(requests):
    """Return the share of ok requests answered from the proxy's cache (X-Cache: HIT)."""
    done = [r for r in requests if is_ok(r)]
    return sum(r.get("cache") == "HIT" for r in done) / len(done) if done else None


def statuses(requests):
    """Return ``{status: count}`` of the requests that got a response (0: none)."""
    out = {}
    for req in requests:
        out[req.get("status") or 0] = out.get(req.get("status") or 0, 0) + 1
    return dict(sorted(out.items()))


def applied_fault(meta, action):
    """Return the run's first applied (not skipped) fault of ``action``, or None."""
    for fault in meta.get("faults") or []:
        if fault.get("action") == action and fault.get("applied") is not None \
                and not fault.get("skipped"):
            return fault
    return None


def upload_ms(requests, backend_records):
    """Return the median time (ms) from a request's first byte at the client to its whole body
    at the backend (the backend record's ``arrival``, joined on the request id), or None."""
    arrival = {rec["id"]: rec["arrival"] for rec in backend_records if rec.get("id")}
    values = [(arrival[r["id"]] - r["start"]) * 1000.0 for r in requests
              if is_ok(r) and r.get("start") is not None and r.get("id") in arrival]
    return statistics.median(values) if values else None


def fmt(value, unit="", digits=3):
    """Return a number as short text (``None`` -> ``n/a``)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.0f}{unit}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}{unit}"
    return f"{value}{unit}"
