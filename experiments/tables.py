"""The tidy files of a results folder: ``summary.csv`` and ``summary.json`` (pure formatting;
the numbers come from ``experiments.report.collect``)."""
import csv
import io
import json
import os

ID_COLUMNS = ("config", "balancer", "layer", "kind", "algorithm", "sweep_param", "sweep_value",
              "rep", "status")
HTTP_COLUMNS = ("sent", "ok", "errors", "throughput_rps", "goodput_rps", "throughput_mbps",
                "goodput_mbps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
                "latency_p99_9_ms", "latency_max_ms", "latency_mean_ms", "jain_backends",
                "imbalance_backends", "cov_backends", "jain_clients", "error_rate")
IPERF_COLUMNS = ("flows", "failed_flows", "total_mbps", "jain_flows", "cov_flows",
                 "min_max_flows", "jain_backends", "imbalance_backends")
FAULT_COLUMNS = ("fault_errors", "error_period_s", "recovery_s")
TAIL_COLUMNS = ("errors_by_kind", "cpu_max", "saturated")


def _fmt(value):
    """Format a CSV cell deterministically (6 significant digits for floats)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def _kind(balancer):
    return balancer.get("mode") if balancer.get("layer") == "l4" else balancer.get("engine")


def csv_rows(summary):
    """Return the rows (lists of strings) of summary.csv: a header, then per configuration its
    repetitions followed by ``mean``, ``ci95`` (half the interval's width), ``ci95_low`` and
    ``ci95_high`` rows (empty with fewer than ``metrics.MIN_RUNS_FOR_INTERVAL`` runs)."""
    backends = []
    for config in summary["configs"]:
        for b in config["backends"]:
            if b["name"] not in backends:
                backends.append(b["name"])
    iperf = any(c["workload"] == "iperf3" for c in summary["configs"])
    metric_cols = list(IPERF_COLUMNS if iperf else HTTP_COLUMNS)
    if any("fault_errors" in r["metrics"] for r in summary["runs"]):
        metric_cols += FAULT_COLUMNS
    header = list(ID_COLUMNS) + metric_cols + [f"share_{b}" for b in backends] + list(
        TAIL_COLUMNS)
    rows = [header]
    by_run = {r["meta"]["run"]: r for r in summary["runs"]}
    for config in summary["configs"]:
        bal = config["balancer"]
        sweep = config.get("sweep") or {}
        ident = [config["config"], bal["name"], bal["layer"], _kind(bal), bal["algorithm"],
                 sweep.get("param"), sweep.get("value")]
        for name in config["runs"]:
            run = by_run[name]
            meta, res = run["meta"], run["metrics"]
            fid = meta.get("fidelity") or {}
            errors = ";".join(f"{k}={v}" for k, v in sorted(
                (res.get("errors_by_kind") or res.get("flow_errors") or {}).items()))
            share = res.get("backend_share") or {}
            rows.append([_fmt(v) for v in ident + [meta["rep"], meta.get("status", "ok")]]
                        + [_fmt(res.get(c)) for c in metric_cols]
                        + [_fmt(share.get(b)) for b in backends]
                        + [errors, _fmt(fid.get("cpu_max")), _fmt(fid.get("saturated"))])
        agg = config["aggregate"]
        for stat, field in (("mean", "mean"), ("ci95", "ci95"), ("ci95_low", "low"),
                            ("ci95_high", "high")):
            share = agg.get("backend_share", {})
            rows.append([_fmt(v) for v in ident + [stat, ""]]
                        + [_fmt((agg.get(c) or {}).get(field)) for c in metric_cols]
                        + [_fmt((share.get(b) or {}).get(field)) for b in backends]
                        + ["", "", ""])
    return rows


def write_summary(run_dir, summary):
    """Write summary.csv and summary.json (deterministic: sorted keys, fixed float format)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(csv_rows(summary))
    with open(os.path.join(run_dir, "summary.csv"), "w", encoding="utf-8", newline="") as fp:
        fp.write(buf.getvalue())
    with open(os.path.join(run_dir, "summary.json"), "w", encoding="utf-8") as fp:
        json.dump(summary, fp, sort_keys=True, indent=1)
        fp.write("\n")
