"""``lblab report RUN_DIR``: rebuild summary.csv, summary.json, plots/ and report.html from raw/.

Reads only ``RUN_DIR/manifest.json`` and ``RUN_DIR/raw/<run>/`` (the runner's layout below), so
the same raw data always gives the same summary (``summary.csv`` byte for byte).

Raw layout (format version 1), one folder per configuration and repetition ``<config>-r<rep>``:

* ``meta.json`` — ``{"v": 1, "run", "config", "order", "rep", "balancer": {...}, "sweep":
  {"param", "value"} | null, "workload": "http"|"iperf3", "window": [t0, t1], "backends":
  [{"name", "weight", "capacity", "host", "ip"}], "clients": [...], "faults": [{"at_s",
  "action", "target", "value", "applied"}], "windows": {client: [t0, t1]} (optional, per-client
  measurement windows; ``window`` is then their union), "iperf3_flows": [{"flow", "client",
  "backend",
  "file"}], "fidelity": {"cpu_max", "cpu_mean", "saturated", "warnings": [...]}, "status":
  "ok"|"failed", "failure": str|null}``
* ``loadgen-<client>.jsonl`` — ``lb_apps.records`` load generator records
* ``iperf3-<flow>.json`` — iperf3 ``--json`` output
* anything else (backend records, proxy/controller stats, logs) is kept but not read here.
"""
import argparse
import base64
import csv
import glob
import io
import json
import os

import jinja2

from experiments import metrics as M
from lblab_core.errors import UsageError

SUMMARY_VERSION = 1
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
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


class ReportError(Exception):
    """The run folder is not a results folder the report can read."""


def _fmt(value):
    """Format a CSV cell deterministically (6 significant digits for floats)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def load_json(path):
    """Read a JSON file; raise ReportError naming it when unreadable."""
    try:
        with open(path, encoding="utf-8") as fp:
            return json.load(fp)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read JSON: {exc}") from None


def read_run(path):
    """Return ``(meta, metrics, extras)`` of one raw run folder.

    ``extras`` holds the records-derived series the plots need (time series, latency CDF, flow
    rates) so records are read once.
    """
    from lb_apps.records import RecordFormatError, iter_records

    meta = load_json(os.path.join(path, "meta.json"))
    if meta.get("v") != 1:
        raise ReportError(f"{path}/meta.json: format version {meta.get('v')!r}, expected 1")
    backends = meta.get("backends", [])
    extras = {}
    if meta.get("workload") == "iperf3":
        flows = []
        for f in meta.get("iperf3_flows", []):
            file = os.path.join(path, f["file"])
            if not os.path.exists(file):
                result = {"error": "no output file"}
            elif os.path.getsize(file) == 0:   # an iperf3 client killed before it wrote JSON
                result = {"error": "empty output (the client was stopped)"}
            else:
                result = load_json(file)
            flows.append(dict(f, result=result))
        result = M.iperf3_run_metrics(flows, backends)
        extras["flow_mbps"] = list(result["flow_mbps"].values())
        return meta, result, extras
    records = []
    for file in sorted(glob.glob(os.path.join(path, "loadgen-*.jsonl"))):
        try:
            records.extend(iter_records(file, "loadgen"))
        except RecordFormatError as exc:
            raise ReportError(str(exc)) from None
    window = tuple(meta["window"]) if meta.get("window") else None
    counted = ({c: tuple(w) for c, w in meta["windows"].items()} if meta.get("windows")
               else window)
    result = M.http_run_metrics(records, counted, backends, meta.get("clients"))
    result.update(M.fault_impact(records, counted, meta.get("faults")))
    if window is not None:
        length = window[1] - window[0]
        # ~20+ bins however short the run; 1 s bins from 20 s on
        bin_s = 1.0 if length >= 20 else max(0.1, round(length / 20, 1))
        extras["timeseries"] = M.timeseries(records, window, [b["name"] for b in backends],
                                            bin_s)
    extras["cdf"] = M.latency_cdf(records, counted)
    return meta, result, extras


def collect(run_dir):
    """Read every raw run of a results folder and compute per-run and per-configuration results.

    Returns:
        tuple[dict, dict]: the summary (JSON-ready) and the extras per run (for plots).
    Raises:
        ReportError: no raw runs, or an unreadable file.
    """
    raw = os.path.join(run_dir, "raw")
    folders = sorted(d for d in glob.glob(os.path.join(raw, "*")) if os.path.isdir(d)
                     and os.path.exists(os.path.join(d, "meta.json")))
    if not folders:
        raise ReportError(f"{run_dir}: no raw runs (expected {raw}/<config>-r<rep>/meta.json)")
    runs, extras = [], {}
    for folder in folders:
        meta, result, extra = read_run(folder)
        runs.append({"meta": meta, "metrics": result})
        extras[meta["run"]] = extra
    runs.sort(key=lambda r: (r["meta"].get("order", 0), r["meta"]["config"], r["meta"]["rep"]))
    configs = []
    for run in runs:
        meta = run["meta"]
        if not configs or configs[-1]["config"] != meta["config"]:
            configs.append({"config": meta["config"], "balancer": meta["balancer"],
                            "sweep": meta.get("sweep"), "workload": meta.get("workload"),
                            "backends": meta.get("backends", []), "runs": []})
        configs[-1]["runs"].append(run)
    for config in configs:
        ok_runs = [r["metrics"] for r in config["runs"] if r["meta"].get("status") == "ok"]
        config["aggregate"] = M.aggregate(ok_runs)
        config["n"] = len(ok_runs)
        config["reps"] = len(config["runs"])
        config["runs"] = [r["meta"]["run"] for r in config["runs"]]
    summary = {"v": SUMMARY_VERSION, "runs": runs, "configs": configs}
    return summary, extras


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


def make_plots(run_dir, summary, extras, manifest):
    """Draw every figure into ``run_dir/plots``; return ``[(title, png path)]`` in report order."""
    from experiments import plots

    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    configs = summary["configs"]
    labels = [c["config"] for c in configs]
    figures = []
    iperf = any(c["workload"] == "iperf3" for c in configs)

    def add(title, path):
        if path:
            figures.append((title, path))

    graph = _graph(manifest)
    if graph is not None:
        add("Topology", plots.topology(graph, os.path.join(out_dir, "topology")))

    def bars(key, ylabel, title, stem, caption, ylim=None):
        aggs = [c["aggregate"].get(key) or {} for c in configs]
        path = plots.bars_with_ci(labels, aggs, ylabel, title, os.path.join(out_dir, stem),
                                  ylim=ylim)
        add(f"{caption} ({_interval_caption(aggs)})", path)

    if iperf:
        bars("total_mbps", "total Mbit/s", "Total throughput", "throughput",
             "Total throughput per balancer")
        bars("jain_flows", "Jain's index (flows)", "Flow fairness", "fairness",
             "Jain's index over flows", ylim=(0, 1.05))
        rates = [extras.get(c["runs"][0], {}).get("flow_mbps", []) for c in configs]
        add("Per-flow throughput", plots.flow_rates(labels, rates,
                                                    os.path.join(out_dir, "flows")))
    else:
        bars("goodput_rps", "ok requests/s", "Throughput", "throughput",
             "Throughput per balancer (ok requests/s)")
        bars("latency_p99_ms", "p99 latency (ms)", "Tail latency", "latency_p99",
             "p99 latency per balancer")
        cdfs = {c["config"]: extras.get(c["runs"][0], {}).get("cdf", ([], [])) for c in configs}
        add("Latency CDFs", plots.latency_cdfs(cdfs, os.path.join(out_dir, "latency_cdf")))
        bars("jain_backends", "Jain's index (backends)", "Fairness", "fairness",
             "Jain's index over backends (load / weight)", ylim=(0, 1.05))
    backends = [b["name"] for b in configs[0]["backends"]]
    weights = {b["name"]: b.get("weight", 1) for b in configs[0]["backends"]}
    total = sum(weights.values()) or 1
    shares = [{b: (v or {}).get("mean") for b, v in c["aggregate"].get("backend_share",
                                                                       {}).items()}
              for c in configs]
    ns = sorted({c.get("n", 0) for c in configs})
    add(f"Per-backend share of requests (mean over {_n_text(ns)} runs)", plots.stacked_shares(
        labels, backends, shares, os.path.join(out_dir, "backend_share"),
        expected={b: w / total for b, w in weights.items()}))
    for c in configs:
        ts = extras.get(c["runs"][0], {}).get("timeseries")
        if not ts:
            continue
        first = next(r for r in summary["runs"] if r["meta"]["run"] == c["runs"][0])
        add(f"Throughput over time per backend: {c['config']}", plots.timeseries(
            ts, first["meta"].get("faults", []), f"{c['config']} (repetition 1)",
            os.path.join(out_dir, f"timeseries-{c['config']}")))
    sweep_param = next((c["sweep"]["param"] for c in configs if c.get("sweep")), None)
    if sweep_param:
        key = "total_mbps" if iperf else "goodput_rps"
        keys = [(key, "Mbit/s" if iperf else "ok requests/s")]
        if not iperf:
            keys.append(("latency_p99_ms", "p99 latency (ms)"))
        for key, ylabel in keys:
            series = {}
            aggs = []
            for c in configs:
                agg = c["aggregate"].get(key) or {}
                aggs.append(agg)
                series.setdefault(c["balancer"]["name"], []).append((c["sweep"]["value"], agg))
            add(f"{ylabel} against {sweep_param} ({_interval_caption(aggs)})", plots.sweep_lines(
                sweep_param, series, ylabel, f"{ylabel} vs {sweep_param}",
                os.path.join(out_dir, f"sweep-{key}")))
    return figures


def _n_text(ns):
    """``3`` or ``2-3`` for a sorted list of run counts."""
    ns = [n for n in ns if n is not None] or [0]
    return f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


def _interval_caption(aggs):
    """What a figure's bars or lines show: n and the interval method(s)."""
    ns = sorted({a.get("n", 0) for a in aggs})
    methods = sorted({a.get("method") for a in aggs if a.get("method") not in (None,
                                                                               M.METHOD_NONE)})
    text = f"n={_n_text(ns)} runs"
    if methods:
        text += f"; mean and 95% CI over runs ({', '.join(methods)})"
    if any(a.get("n", 0) < M.MIN_RUNS_FOR_INTERVAL for a in aggs):
        text += (f"; with n < {M.MIN_RUNS_FOR_INTERVAL} no interval: the mean and each "
                 f"run's value as a point")
    return text


def _graph(manifest):
    topo = (manifest.get("spec") or {}).get("topology")
    if not topo:
        return None
    try:
        from topologies import graphs
        return graphs.build(topo["name"], topo.get("params") or {})
    except Exception:  # noqa: BLE001 - a drawing is optional; the report must still render
        return None


def _embed(path):
    with open(path, "rb") as fp:
        return "data:image/png;base64," + base64.b64encode(fp.read()).decode("ascii")


def _table(summary):
    """Rows of the results table: one per configuration, mean ± CI of the key metrics."""
    iperf = any(c["workload"] == "iperf3" for c in summary["configs"])
    keys = (("total_mbps", "Mbit/s"), ("jain_flows", "Jain (flows)"),
            ("jain_backends", "Jain (backends)")) if iperf else (
        ("goodput_rps", "ok req/s"), ("goodput_mbps", "Mbit/s"),
        ("latency_mean_ms", "mean ms"), ("latency_p50_ms", "p50 ms"),
        ("latency_p99_ms", "p99 ms"), ("errors", "errors"), ("error_rate", "error rate"),
        ("jain_backends", "Jain (backends)"), ("jain_clients", "Jain (clients)"))
    if any("fault_errors" in r["metrics"] for r in summary["runs"]):
        keys += (("fault_errors", "failed after kill"), ("error_period_s", "failing for s"),
                 ("recovery_s", "back after s"))
    rows = []
    for c in summary["configs"]:
        n = c.get("n", c["reps"])
        cells = []
        for key, _ in keys:
            agg = c["aggregate"].get(key) or {}
            text = format_interval(agg.get("mean"), agg.get("low"), agg.get("high"))
            if agg and agg.get("mean") is not None and agg.get("n", n) != n:
                text += f" (n={agg.get('n')})"
            cells.append(text)
        note = f"{n}" if n >= M.MIN_RUNS_FOR_INTERVAL else f"n={n}: no interval"
        rows.append({"config": c["config"], "balancer": c["balancer"], "reps": c["reps"],
                     "n": note, "cells": cells})
    return [label for _, label in keys], rows


def format_interval(mean, low, high):
    """``12.3 [11.9, 12.8]`` (3 significant digits), ``12.3`` without an interval."""
    if mean is None:
        return "–"
    text = _num(mean, 3)
    if low is None or high is None:
        return text
    return f"{text} [{_num(low, 3)}, {_num(high, 3)}]"


def format_mean_ci(mean, ci):
    """``12.3 ± 0.4`` (3 significant digits), ``12.3`` without a CI, ``–`` without a mean."""
    if mean is None:
        return "–"
    text = _num(mean, 3)
    return f"{text} ± {_num(ci, 2)}" if ci is not None else text


def _num(value, digits):
    """Significant digits without exponents for numbers a table shows (12345 -> 12345)."""
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return format(value, f".{digits}g")


def render_html(run_dir, summary, figures, warnings, manifest):
    """Render report.html (one self-contained file, images embedded as base64 PNG)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             keep_trailing_newline=True)
    headers, rows = _table(summary)
    spec = manifest.get("spec") or {}
    html = env.get_template("report.html.j2").render(
        name=spec.get("name") or os.path.basename(os.path.abspath(run_dir)),
        question=spec.get("question") or "",
        spec_text=manifest.get("spec_yaml") or json.dumps(spec, indent=2, sort_keys=True),
        topology=next((_embed(p) for t, p in figures if t == "Topology"), None),
        headers=headers, rows=rows,
        figures=[(t, _embed(p)) for t, p in figures if t != "Topology"],
        warnings=warnings,
        manifest=json.dumps({k: v for k, v in manifest.items() if k not in ("spec", "spec_yaml")},
                            indent=2, sort_keys=True),
        how_computed=M.HOW_COMPUTED, summary_note=M.__doc__)
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(html)
    return path


def build(run_dir, plots=True):
    """Rebuild summary.csv, summary.json, plots/ and report.html of a results folder.

    Args:
        run_dir (str): the results folder (with ``manifest.json`` and ``raw/``).
        plots (bool): draw figures (False: summary and an HTML report without figures).
    Returns:
        dict: ``{"summary": summary, "warnings": [...], "report": path}``.
    Raises:
        ReportError: not a readable results folder.
    """
    manifest_path = os.path.join(run_dir, "manifest.json")
    manifest = load_json(manifest_path) if os.path.exists(manifest_path) else {}
    summary, extras = collect(run_dir)
    write_summary(run_dir, summary)
    warnings = fidelity_warnings(summary, manifest)
    figures = make_plots(run_dir, summary, extras, manifest) if plots else []
    report = render_html(run_dir, summary, figures, warnings, manifest)
    return {"summary": summary, "warnings": warnings, "report": report}


def main(argv=None):
    """``lblab report RUN_DIR``: rebuild the summary, plots and report from raw/ alone."""
    parser = argparse.ArgumentParser(
        prog="lblab report",
        description="Rebuild summary.csv, summary.json, plots/ and report.html of a results "
                    "folder from its raw/ data alone.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a results folder (results/<name>-<time>)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run_dir):
        raise UsageError(f"RUN_DIR {args.run_dir!r} is not a folder")
    try:
        result = build(args.run_dir, plots=not args.no_plots)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    for w in result["warnings"]:
        print(f"warning: {w}")
    print(result["report"])
    return 0
