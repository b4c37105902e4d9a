"""Lab 4, transport layer: draining a backend without breaking an open TCP connection."""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.common import counted_ok, runs_of
from experiments.labs.model import Lab


def drain_of(meta):
    """Return the run's drain fault (drain_backend, or set_weight to 0) as applied, or None."""
    for fault in meta.get("faults") or []:
        drain = fault.get("action") == "drain_backend" or (
            fault.get("action") == "set_weight" and fault.get("value") == 0)
        if drain and fault.get("applied") is not None and not fault.get("skipped"):
            return fault
    return None


def new_after(requests, target, when):
    """Return the requests on a connection to ``target`` opened after ``when`` (epoch s)."""
    return [r for r in requests if r.get("backend") == target and r.get("conn") == "new"
            and r.get("start") is not None and r["start"] - (r.get("connect") or 0.0) > when]


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
    if not rows or undrained:
        return checks
    short = runs_of(results, keepalive=False)
    long_ = runs_of(results, keepalive=True)
    if not short:
        checks.append(absent("runs with a new connection per request", "keepalive: false runs",
                             "no ok run with workload.keepalive false: keep the lab's sweep"))
    for row in short:
        fault = drains[row["run"]]
        done = fault["applied"] + (fault.get("took_s") or 0.0)
        reqs = by_run.get(row["run"], [])
        before = [r for r in counted_ok(reqs) if r.get("backend") == fault["target"]
                  and r["end"] < fault["applied"]]
        late = new_after(reqs, fault["target"], done)
        checks.append(in_range(f"{row['run']}: requests {fault['target']} served before the "
                               f"drain", len(before), 1, None, "requests",
                               missing=f"{fault['target']} served nothing before the drain, "
                                       f"so the run cannot show the drain"))
        checks.append(in_range(f"{row['run']}: new connections to {fault['target']} after the "
                               f"drain", len(late), None, 0, "connections",
                               missing=f"{len(late)} new connections reached the drained "
                                       f"{fault['target']}: the balancer kept choosing it"))
    if not long_:
        checks.append(absent("runs with long-lived connections", "keepalive: true runs",
                             "no ok run with workload.keepalive true: keep the lab's sweep"))
    for row in long_:
        fault = drains[row["run"]]
        done = fault["applied"] + (fault.get("took_s") or 0.0)
        kept = [r for r in counted_ok(by_run.get(row["run"], []))
                if r.get("backend") == fault["target"] and r.get("conn") == "reused"
                and r["start"] > done]
        checks.append(in_range(f"{row['run']}: requests on {fault['target']}'s open "
                               f"connections after the drain", len(kept), 1, None, "requests",
                               missing=f"no request reached {fault['target']} on a connection "
                                       f"opened before the drain: its open connections were "
                                       f"not kept (a kill or a flush, not a drain?)"))
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
