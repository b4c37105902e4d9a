"""Lab 5, session and presentation layers: keep-alive against a connection per request, the cost
of a TLS handshake, and a sticky cookie that keeps a user on one backend."""
from experiments.labs import measure as M
from experiments.labs.checks import absent, in_range
from experiments.labs.model import Lab

BALANCERS = ("plain", "tls", "sticky")
# keep-alive: every request but each user's first rides a kept connection (>= 90 % allows a
# reconnect or two); a connection per request: none does.
MIN_REUSED = 0.9
# A sticky user's requests all go to the backend its cookie names.
MIN_STICKY = 0.99


def _requests(results, row):
    return M.measured(results.requests_by_run().get(row["run"], []))


def check(results):
    """The lab's checks (pure)."""
    checks = []
    rows = {(b, ka): M.ok_runs(results, b, keepalive=ka) for b in BALANCERS
            for ka in (True, False)}
    missing = [f"{b} with keepalive {str(ka).lower()}" for (b, ka), r in rows.items() if not r]
    checks.append(in_range(
        "ok runs of each balancer with and without keep-alive", 6 - len(missing), 6, None,
        "of 6", missing=f"no ok run of {', '.join(missing)}: keep the lab's three balancers "
                        f"and its sweep of workload.keepalive over true and false"))
    for (balancer, keepalive), found in rows.items():
        for row in found:
            share = M.reused_share(_requests(results, row))
            if keepalive:
                checks.append(in_range(
                    f"{row['run']}: requests on a reused connection", share, MIN_REUSED, None,
                    missing="with keep-alive on, most requests should ride a connection "
                            "already open; this run opened a connection for many of them "
                            "(workload.keepalive overridden? connections closed by errors?)"))
            else:
                checks.append(in_range(
                    f"{row['run']}: requests on a reused connection", share, None, 0.0,
                    missing="with keep-alive off every request needs its own connection"))
    checks += _tls_checks(results, rows)
    for row in rows[("sticky", True)] + rows[("sticky", False)]:
        shares = M.top_backend_share(_requests(results, row))
        low = min(shares.values()) if shares else None
        checks.append(in_range(
            f"{row['run']}: a user's requests on its cookie's backend", low, MIN_STICKY, None,
            missing="users were spread over the backends: the sticky cookie did not stick "
                    "(is workload.session true, so that users keep the cookies they get?)"))
    errors = sum(row.get("errors") or 0 for r in rows.values() for row in r)
    checks.append(in_range("failed requests over all runs", errors, None, 0, "requests",
                           missing="requests failed: errors_by_kind in runs.csv says how"))
    return checks


def tls_costs(results):
    """Return ``{keepalive: median latency of tls - of plain (ms)}`` where both ran ok."""
    out = {}
    for keepalive in (True, False):
        plain = M.ok_runs(results, "plain", keepalive=keepalive)
        tls = M.ok_runs(results, "tls", keepalive=keepalive)
        if plain and tls:
            a = M.median_latency_ms(_requests(results, plain[0]))
            b = M.median_latency_ms(_requests(results, tls[0]))
            if a is not None and b is not None:
                out[keepalive] = b - a
    return out


def _tls_checks(results, rows):
    costs = tls_costs(results)
    if False not in costs:
        return [absent("TLS cost per new connection", "tls and plain runs with keep-alive off",
                       "no ok pair of tls and plain runs without keep-alive to compare")]
    checks = [in_range("TLS cost per new connection (median tls - plain)", costs[False], 0.0,
                       None, "ms", missing="TLS was not slower than plain HTTP with a new "
                                           "connection per request: did the tls balancer "
                                           "really terminate TLS?")]
    if True in costs:
        checks.append(in_range(
            "TLS: handshake cost above its cost on a kept connection", costs[False] - costs[True],
            0.0, None, "ms", missing="TLS cost as much on a kept connection as on a new one: "
                                     "the handshake should be the expensive part"))
    return checks


LAB = Lab(
    number=5, title="Keep-alive, TLS termination and sticky cookies", layer="session and "
    "presentation", specs=("lab5_session.yaml",), handout="docs/labs/lab5.md",
    first_step="h1 curl -sv -o /dev/null -o /dev/null http://10.0.0.3/ http://10.0.0.3/ 2>&1 "
               "| grep -i 'connected\\|re-us'   (two requests, one connection: keep-alive)",
    start_balancer="plain", check=check)
