"""Warnings about a batch's fidelity: runs that failed, overloaded labs, shaping that did not
deliver its rate (pure: reads the summary and manifest dicts)."""

# A shaped bottleneck should deliver its configured rate to TCP flows that fill it (measured
# here: 47.7 of 50 Mbit/s through HTB, docs/architecture.md); below this fraction the shaping, not the
# balancer, is what the numbers show.
SHAPED_RATE_MIN_FRACTION = 0.85
SHAPED_RATE_MAX_FRACTION = 1.05


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
