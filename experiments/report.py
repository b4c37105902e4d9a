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
import glob
import json
import os

from experiments import metrics as M
from experiments.fidelity import fidelity_warnings
from experiments.figures import make_plots
from experiments.html_report import render_html
from experiments.tables import write_summary
from lblab_core.errors import UsageError

SUMMARY_VERSION = 1


class ReportError(Exception):
    """The run folder is not a results folder the report can read."""


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
