"""Fidelity of runs and batches (pure: reads records, summary and manifest dicts).

Per run (``load_fidelity``, fed by ``experiments.run_lab`` at the end of each run and stored in
its ``meta.json`` ``fidelity``): was the load what the spec asked for? The client's connection
pool can be the bottleneck (requests wait for a free connection: ``pool_limited``), the load
generator can fall behind its open-loop schedule (``behind_schedule``), and backends can queue
at their capacity (a note: the experiment may want it, but the report says so). Per batch
(``fidelity_warnings``): runs that failed, overloaded labs, shaping that did not deliver its
rate, and each run's own warnings.
"""
from lb_apps.loadgen.workload import percentile

# A shaped bottleneck should deliver its configured rate to TCP flows that fill it (measured
# here: 47.7 of 50 Mbit/s through HTB, docs/architecture.md); below this fraction the shaping, not the
# balancer, is what the numbers show.
SHAPED_RATE_MIN_FRACTION = 0.85
SHAPED_RATE_MAX_FRACTION = 1.05

# A request "waited for the pool" when it waited longer than this for a free connection: a
# millisecond is the order of a service time in these labs (mean_ms 1-5), so past it the wait
# is a visible part of the latency, not scheduling noise.
POOL_WAIT_MS = 1.0
# pool_limited: more than this share of the measured requests waited past POOL_WAIT_MS. 1 %
# is what moves the p99 latency, the tail these experiments report.
POOL_LIMITED_SHARE = 0.01
# behind_schedule (open loop): the generator's own send lag (start - scheduled - pool_wait -
# connect: its event loop and CPU) has a p99 above LAG_LIMIT_MS and above LAG_LIMIT_FRACTION
# of the p99 latency, which counts from the scheduled time and so includes that lag.
LAG_LIMIT_MS = 1.0
LAG_LIMIT_FRACTION = 0.10
# Backends queueing at capacity: noted when a backend queued at least this share of its
# requests.
QUEUED_NOTE_SHARE = 0.01


def _ms(value):
    return None if value is None else round(value * 1000.0, 3)


def pool_wait_stats(records):
    """How long measured requests waited for a free connection of the client's pool.

    Args:
        records (list[dict]): load generator records (warm-up ones are left out; a version 1
            record has no ``pool_wait``: 0).
    Returns:
        dict: ``requests``, ``waited`` (pool_wait > 0), ``waited_over`` (> POOL_WAIT_MS),
        ``mean_ms`` (mean wait of those that waited; None if none did), ``p99_ms`` (p99 over
        all requests) and ``max_ms``.
    """
    waits = sorted(r.get("pool_wait") or 0.0 for r in records if not r.get("warmup"))
    waited = [w for w in waits if w > 0]
    return {"requests": len(waits), "waited": len(waited),
            "waited_over": sum(1 for w in waited if w * 1000.0 > POOL_WAIT_MS),
            "mean_ms": _ms(sum(waited) / len(waited)) if waited else None,
            "p99_ms": _ms(percentile(waits, 99)), "max_ms": _ms(waits[-1] if waits else None)}


def send_lag_stats(records):
    """The load generator's own send lag of measured requests: ``start - scheduled -
    pool_wait - connect`` (its event loop and its CPU, without the wait for a pooled connection
    and the connect of a new one, which are the pool's and the network's; version 1 records
    have neither: their lag includes both).

    Returns:
        dict: ``p50_ms``, ``p99_ms``, ``max_ms`` (None without a sent request).
    """
    lags = sorted(r["start"] - r["scheduled"] - (r.get("pool_wait") or 0.0)
                  - (r.get("connect") or 0.0) for r in records if not r.get("warmup") and r.get("start") is not None)
    return {"p50_ms": _ms(percentile(lags, 50)), "p99_ms": _ms(percentile(lags, 99)),
            "max_ms": _ms(lags[-1] if lags else None)}


def latency_p99_ms(records):
    """p99 of ``end - scheduled`` over measured requests with a full response (None if none)."""
    lat = sorted(r["end"] - r["scheduled"] for r in records
                 if not r.get("warmup") and r.get("error") is None and r.get("status"))
    return _ms(percentile(lat, 99))


def backend_queueing(records_by_backend, window=None):
    """Per backend: how many requests queued for a capacity slot, and the mean wait.

    Args:
        records_by_backend (dict): backend name -> its records (``wait`` in seconds).
        window (list|None): ``[t0, t1]``: only requests that arrived inside it.
    Returns:
        dict: name -> ``{"requests", "queued", "queued_share", "mean_wait_ms"}`` (mean over
        all its requests; backends without a request in the window are left out).
    """
    out = {}
    for name, records in records_by_backend.items():
        waits = [r["wait"] or 0.0 for r in records
                 if window is None or window[0] <= r["arrival"] <= window[1]]
        if not waits:
            continue
        queued = sum(1 for w in waits if w > 0)
        out[name] = {"requests": len(waits), "queued": queued,
                     "queued_share": round(queued / len(waits), 4),
                     "mean_wait_ms": _ms(sum(waits) / len(waits))}
    return out


def load_fidelity(loadgen_records, backend_records, mode, window=None):
    """Judge one run's load: the flags and numbers for ``meta.json`` and the warning lines.

    Args:
        loadgen_records (list[dict]): every client's records.
        backend_records (dict): backend name -> its records.
        mode (str): the workload's ``open`` or ``closed`` loop (the schedule is open's only).
        window (list|None): the measured window, for the backend records.
    Returns:
        dict: scalar flags ``pool_limited``, ``pool_waited`` (requests that waited at all),
        ``pool_waited_long`` (past POOL_WAIT_MS), ``pool_wait_mean_ms``,
        ``pool_wait_p99_ms``, ``send_lag_p99_ms``, ``behind_schedule``, ``backends_queued``
        (backends that queued >= QUEUED_NOTE_SHARE of their requests), the per-backend
        ``backend_queueing``, and ``warnings``: one line per finding, what happened and what
        to do.
    """
    pool = pool_wait_stats(loadgen_records)
    lag = send_lag_stats(loadgen_records)
    p99 = latency_p99_ms(loadgen_records)
    queueing = backend_queueing(backend_records, window)
    n = pool["requests"]
    pool_limited = n > 0 and pool["waited_over"] > POOL_LIMITED_SHARE * n
    behind = (mode == "open" and lag["p99_ms"] is not None and p99 is not None
              and lag["p99_ms"] > LAG_LIMIT_MS and lag["p99_ms"] > LAG_LIMIT_FRACTION * p99)
    queued = {b: q for b, q in queueing.items() if q["queued_share"] >= QUEUED_NOTE_SHARE}
    warnings = []
    if pool_limited:
        warnings.append(
            f"the client connection pool limited the load: {pool['waited_over']} of {n} "
            f"requests ({pool['waited_over'] / n:.1%}) waited more than {POOL_WAIT_MS:g} ms "
            f"for a free connection (mean wait of those that waited {pool['mean_ms']} ms, "
            f"p99 over all {pool['p99_ms']} ms); their latency includes that wait. Raise "
            f"workload.users (the pool size in open loop) or lower the rate.")
    if behind:
        warnings.append(
            f"the load generator fell behind its schedule: send lag p99 {lag['p99_ms']} ms "
            f"({lag['p99_ms'] / p99:.0%} of the latency p99, {p99} ms), so the latencies "
            f"include the generator's own delay. Lower the rate or spread it over more "
            f"client hosts.")
    if queued:
        parts = ", ".join(f"{b} {q['queued_share']:.0%} of {q['requests']} (mean wait "
                          f"{q['mean_wait_ms']} ms)" for b, q in sorted(queued.items()))
        warnings.append(
            f"note: backends queued requests at their capacity: {parts}. The spec may want "
            f"this (capacity is part of it), but the latencies include that queueing.")
    return {"pool_limited": pool_limited, "pool_waited": pool["waited"],
            "pool_waited_long": pool["waited_over"],
            "pool_wait_mean_ms": pool["mean_ms"], "pool_wait_p99_ms": pool["p99_ms"],
            "send_lag_p99_ms": lag["p99_ms"], "behind_schedule": behind,
            "backends_queued": len(queued), "backend_queueing": queueing,
            "warnings": warnings}


def shaped_rate_warnings(summary, manifest):
    """Check an iperf3 run on a dumbbell delivered its bottleneck's configured rate.

    Args:
        summary (dict): from :func:`collect`.
        manifest (dict): the run's manifest (topology parameters, workload bitrate).
    Returns:
        list[str]: one warning per run outside [0.85, 1.05] x bottleneck_bw.
    """
    spec = manifest.get("spec") or {}
    topo = spec.get("topology") or {}
    workload = spec.get("workload") or {}
    if topo.get("name") != "dumbbell" or workload.get("type") != "iperf3" \
            or workload.get("bitrate"):
        return []
    params = topo.get("params") or {}
    rate = params.get("bottleneck_bw", 10)
    out = []
    for run in summary["runs"]:
        total = run["metrics"].get("total_mbps")
        if run["meta"].get("status") != "ok" or not total:
            continue
        if not SHAPED_RATE_MIN_FRACTION * rate <= total <= SHAPED_RATE_MAX_FRACTION * rate:
            out.append(f"{run['meta']['run']}: the {rate:g} Mbit/s bottleneck delivered "
                       f"{total:.1f} Mbit/s in total ({total / rate:.0%}); expected "
                       f"{SHAPED_RATE_MIN_FRACTION:.0%}-{SHAPED_RATE_MAX_FRACTION:.0%} of it "
                       f"with TCP flows filling it. Check the host CPU and failed flows.")
    return out


def fidelity_warnings(summary, manifest=None):
    """Return warning lines (what happened and what to do next) for the report and terminal."""
    out = shaped_rate_warnings(summary, manifest) if manifest else []
    for run in summary["runs"]:
        meta, res = run["meta"], run["metrics"]
        name = meta["run"]
        if meta.get("status") != "ok":
            out.append(f"{name}: the run failed ({meta.get('failure')}); it is left out of the "
                       f"means. See raw/{name}/ logs.")
        for w in (meta.get("fidelity") or {}).get("warnings", []):
            out.append(f"{name}: {w}")
        if meta.get("workload") == "iperf3":
            if res.get("failed_flows"):
                out.append(f"{name}: {res['failed_flows']} iperf3 flow(s) failed: "
                           f"{res.get('flow_errors')}")
            continue
        if res.get("sent", 0) == 0 and meta.get("status") == "ok":
            out.append(f"{name}: no requests in the measurement window; check the load "
                       f"generator logs in raw/{name}/.")
        elif res.get("errors") and not meta.get("faults"):
            out.append(f"{name}: {res['errors']} of {res['sent']} requests failed without an "
                       f"injected fault ({res['errors_by_kind']}); the lab may be overloaded: "
                       f"lower the load or rerun.")
        if res.get("unattributed"):
            out.append(f"{name}: {res['unattributed']} ok responses did not say which backend "
                       f"served them; backend shares leave them out.")
    return out
