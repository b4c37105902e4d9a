"""Lab 4, transport layer: draining a backend without breaking an open TCP connection."""
from experiments.labs.checks import check_true, in_range
from experiments.labs.common import counted_ok
from experiments.labs.model import Lab


def drain_of(meta):
    """Return the run's drain fault (drain_backend, or set_weight to 0) as applied, or None."""
    for fault in meta.get("faults") or []:
        drain = fault.get("action") == "drain_backend" or (
            fault.get("action") == "set_weight" and fault.get("value") == 0)
        if drain and fault.get("applied") is not None and not fault.get("skipped"):
            return fault
    return None


def backend_fault_of(meta):
    """Return the run's first applied fault on a backend (any action), or None."""
    for fault in meta.get("faults") or []:
        if fault.get("applied") is not None and fault.get("target") and \
                not str(fault["target"]).startswith("s"):
            return fault
    return None


def new_after(requests, target, when):
    """Return the requests on a connection to ``target`` opened after ``when`` (epoch s)."""
    return [r for r in requests if r.get("backend") == target and r.get("conn") == "new"
            and r.get("start") is not None and r["start"] - (r.get("connect") or 0.0) > when]


def in_flight(requests, target, when):
    """Return the requests on ``target`` whose connection was open at ``when`` (epoch s):
    sent before it and ended after it, whatever their outcome."""
    return [r for r in requests if r.get("backend") == target and r.get("start") is not None
            and r.get("counted") and r["start"] < when < r["end"]]


def check(results):
    """The lab's checks (pure)."""
    checks = []
    by_run = results.requests_by_run()
    rows = results.ok_runs()
    drains = {row["run"]: drain_of(results.metas.get(row["run"], {})) for row in rows}
    undrained = sorted(run for run, fault in drains.items() if fault is None)
    other = sorted({f"{f.get('action')} {f.get('target')}" for m in results.metas.values()
                    for f in m.get("faults") or [] if f.get("action") != "drain_backend"})
    checks.append(check_true(
        "a backend was drained in every run", rows and not undrained,
        f"{len(rows) - len(undrained)}/{len(rows)} runs",
        "drain_backend applied in every ok run",
        f"no drain in {', '.join(undrained) or 'any run'}"
        + (f" (the runs did {', '.join(other)} instead)" if other else "")
        + ": keep the lab's fault {action: drain_backend, target: b2}"))
    if not rows:
        return checks
    # a run without a drain is judged at its other backend fault (a kill: step 6 of the
    # handout), so the checks say what that did to the connections
    events = {run: fault or backend_fault_of(results.metas.get(run, {}))
              for run, fault in drains.items()}
    if any(fault is None for fault in events.values()):
        return checks
    for row in rows:
        fault = events[row["run"]]
        done = fault["applied"] + (fault.get("took_s") or 0.0)
        target = fault["target"]
        what = "the drain" if drains[row["run"]] else f"the {fault.get('action')}"
        reqs = by_run.get(row["run"], [])
        before = [r for r in counted_ok(reqs) if r.get("backend") == target
                  and r["end"] < fault["applied"]]
        late = new_after(reqs, target, done)
        open_then = in_flight(reqs, target, fault["applied"])
        broken = [r for r in open_then if r.get("error") or not r.get("status")
                  or r["status"] >= 400]
        checks.append(in_range(f"{row['run']}: requests {target} served before {what}",
                               len(before), 1, None, "requests",
                               missing=f"{target} served nothing before {what}, so the "
                                       f"run cannot show it"))
        checks.append(in_range(f"{row['run']}: new connections to {target} after {what}",
                               len(late), None, 0, "connections",
                               missing=f"{len(late)} new connections reached the drained "
                                       f"{target}: the balancer kept choosing it"))
        checks.append(in_range(f"{row['run']}: requests in flight on {target} at {what}",
                               len(open_then), 1, None, "requests",
                               missing=f"no request answered by {target} was in flight at "
                                       f"{what}: nothing shows that open connections are "
                                       f"kept (keep the lab's drain and 200 ms service time)"))
        checks.append(in_range(f"{row['run']}: of those, broken", len(broken), None, 0,
                               "requests",
                               missing=f"{len(broken)} requests open on {target} at {what} "
                                       f"failed: their connections were cut (a kill, not a "
                                       f"drain?)"))
    errors = sum(row.get("errors") or 0 for row in rows)
    checks.append(in_range("failed requests over all runs", errors, None, 0, "requests",
                           missing="requests failed: a drain must not break a connection "
                                   "(errors_by_kind in runs.csv says how they failed)"))
    return checks


LAB = Lab(
    number=4, title="Handshake, 5-tuple, conntrack, draining, a SYN flood", layer="transport",
    specs=("lab4_transport.yaml",), handout="docs/labs/lab4.md",
    first_step="h1 tcpdump -n -l -i h1-eth0 -c 6 tcp > /tmp/lab4-h1.txt 2>&1 &   (then h1 curl "
               "-s -o /dev/null http://10.254.0.1/ and sh cat /tmp/lab4-h1.txt: the handshake)",
    check=check)
