"""``lblab report RUN_DIR``: rebuild every derived file of a results folder from raw/.

Reads only ``RUN_DIR/manifest.json`` and ``RUN_DIR/raw/<run>/`` (the runner's layout below) and
writes ``runs.csv``, ``summary.csv``, ``summary.json``, ``requests.parquet`` (each the same, byte
for byte, from the same raw data), the model twin's ``model/summary.csv`` and
``model/summary.json`` (seeded: the same bytes again; ``experiments.model.twin``), ``plots/`` and
``report.html``. Every file and column:
``docs/data.md``; the format versions: ``experiments.formats``.

Raw layout (run format 1 and 2, ``experiments.formats.META_VERSIONS``), one folder per
configuration and repetition ``<config>-r<rep>``:

* ``meta.json`` — ``{"v": 2, "run", "config", "order", "rep", "seed", "balancer": {...},
  "sweep": [{"param", "value"}, ...] | null (v1: one {"param", "value"} dict), "workload":
  "http"|"iperf3", "window": [t0, t1], "backends": [{"name", "weight", "capacity", "host",
  "ip"}], "clients": [...], "faults": [{"at_s", "action", "target", "value", "applied"}],
  "windows": {client: [t0, t1]} (optional, per-client measurement windows; ``window`` is then
  their union), "iperf3_flows": [{"flow", "client", "backend", "file"}], "fidelity":
  {"cpu_max", "cpu_mean", "saturated", "warnings": [...]}, "status": "ok"|"failed", "failure":
  str|null}``
* ``loadgen-<client>.jsonl`` — ``lb_apps.records`` load generator records
* ``iperf3-<flow>.json`` — iperf3 ``--json`` output
* anything else (backend records, proxy/controller stats, logs) is kept but not read here.
"""
import argparse
import glob
import json
import os

from experiments import formats
from experiments import metrics as M
from experiments.fidelity import fidelity_warnings
from experiments.figures import make_plots, model_figures
from experiments.html_report import render_html
from experiments.model.twin import build_model
from experiments.parquet_out import FILE as PARQUET_FILE, RecordTypeError, RequestsWriter
from experiments.tables import write_tables
from lblab_core.errors import UsageError

REDO = "re-run its spec (lblab run SPEC) to get a results folder this lblab reads"


class ReportError(Exception):
    """The run folder is not a results folder the report can read."""


def load_json(path):
    """Read a JSON file; raise ReportError naming it when unreadable."""
    try:
        with open(path, encoding="utf-8") as fp:
            return json.load(fp)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read JSON: {exc}") from None


def read_meta(path, redo=REDO):
    """Return the ``meta.json`` of one raw run folder in the current shape (run format 2).

    Raises:
        ReportError: unreadable, or a run format this lblab does not read (the message says
            what to do).
    """
    file = os.path.join(path, "meta.json")
    try:
        return formats.normalise_meta(load_json(file), file, redo)
    except formats.FormatError as exc:
        raise ReportError(str(exc)) from None


def read_run(path, records_sink=None, redo=REDO):
    """Return ``(meta, metrics, extras)`` of one raw run folder.

    ``extras`` holds the records-derived series the plots need (time series, latency points, flow
    rates) so records are read once.

    Args:
        path (str): the run folder.
        records_sink (callable|None): called as ``records_sink(meta, records, window)`` with
            the load generator records of an HTTP run and its counted window (as for
            ``metrics.in_window``); not for iperf3 runs.
        redo (str): what the message of an unreadable run tells the user to do.
    """
    from lb_apps.records import RecordFormatError, iter_records

    meta = read_meta(path, redo)
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
    if records_sink is not None:
        records_sink(meta, records, counted)
    if window is not None:
        length = window[1] - window[0]
        extras["window_s"] = length
        extras["timeseries"] = M.timeseries(records, window, [b["name"] for b in backends],
                                            M.bin_width(length))
    # (send time from the window start, latency) of ok requests: latency over time and CCDFs
    extras["latency_points"] = M.ok_latency_points(records, counted,
                                                   window[0] if window else 0.0)
    return meta, result, extras


def _redo(run_dir):
    """What to do with a folder this lblab cannot read: re-run its spec (named if known)."""
    path = os.path.join(run_dir, "manifest.json")
    try:
        with open(path, encoding="utf-8") as fp:
            spec_file = json.load(fp).get("spec_file")
    except (OSError, ValueError, AttributeError):
        spec_file = None
    if isinstance(spec_file, str) and spec_file:
        return f"re-run its spec (lblab run {spec_file}) to get a results folder this lblab reads"
    return REDO


def check_manifest(run_dir):
    """Return the folder's ``manifest.json`` ({} when it has none), its format checked.

    Raises:
        ReportError: unreadable, or made by a newer or unknown lblab format.
    """
    path = os.path.join(run_dir, "manifest.json")
    if not os.path.exists(path):
        return {}
    manifest = load_json(path)
    try:
        formats.results_version(manifest, path, _redo(run_dir))
    except formats.FormatError as exc:
        raise ReportError(str(exc)) from None
    return manifest


def run_folders(run_dir):
    """Return ``[(folder, meta)]`` of every raw run, in run order (order, config, rep).

    Raises:
        ReportError: no raw runs, an unreadable ``meta.json`` or one this lblab cannot read.
    """
    raw = os.path.join(run_dir, "raw")
    folders = sorted(d for d in glob.glob(os.path.join(raw, "*")) if os.path.isdir(d)
                     and os.path.exists(os.path.join(d, "meta.json")))
    redo = _redo(run_dir)
    if not folders:
        if os.path.exists(os.path.join(run_dir, "manifest.json")):
            raise ReportError(f"{run_dir}: a results folder with no raw runs (expected "
                              f"{raw}/<config>-r<rep>/meta.json; the batch stopped before its "
                              f"first run, or raw/ was removed): {redo}")
        raise ReportError(f"{run_dir}: no raw runs (expected {raw}/<config>-r<rep>/meta.json): "
                          f"not a results folder")
    found = [(folder, read_meta(folder, redo)) for folder in folders]
    for folder, meta in found:
        missing = [k for k in ("run", "config", "rep") if k not in meta]
        if missing:
            raise ReportError(f"{folder}/meta.json: lacks {', '.join(missing)}: {redo}")
    found.sort(key=lambda f: (f[1].get("order") or 0, str(f[1]["config"]), f[1]["rep"]))
    return found


def collect(run_dir, records_sink=None):
    """Read every raw run of a results folder and compute per-run and per-configuration results.

    Args:
        run_dir (str): the results folder.
        records_sink (callable|None): gets ``(meta, records, window)`` of each HTTP run, in
            run order (``requests.parquet`` is written from it).
    Returns:
        tuple[dict, dict]: the summary (JSON-ready) and the extras per run (for plots).
    Raises:
        ReportError: no raw runs, or an unreadable file.
    """
    check_manifest(run_dir)
    redo = _redo(run_dir)
    runs, extras = [], {}
    for folder, _ in run_folders(run_dir):
        meta, result, extra = read_run(folder, records_sink, redo)
        runs.append({"meta": meta, "metrics": result})
        extras[meta["run"]] = extra
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
    summary = {"format_version": formats.FORMAT_VERSION, "runs": runs, "configs": configs}
    return summary, extras


def load_summary(run_dir):
    """Return a results folder's summary: its ``summary.json`` (format checked), or computed
    from ``raw/`` when it has none (for readers such as ``lblab compare``).

    Raises:
        ReportError: unreadable, or a summary made by a newer lblab format (upgrade lblab).
    """
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        return collect(run_dir)[0]
    summary = load_json(path)
    try:
        formats.results_version(summary, path, f"rebuild it: lblab report {run_dir}")
    except formats.FormatError as exc:
        raise ReportError(str(exc)) from None
    return summary


def build(run_dir, plots=True):
    """Rebuild every derived file of a results folder from ``manifest.json`` and ``raw/``.

    Writes ``requests.parquet``, ``runs.csv``, ``summary.csv``, ``summary.json`` (each the same
    bytes from the same raw data), ``plots/`` and ``report.html``.

    Args:
        run_dir (str): the results folder (with ``manifest.json`` and ``raw/``).
        plots (bool): draw figures (False: the data files and an HTML report without figures).
    Returns:
        dict: ``{"summary", "warnings": [...], "report": path, "files": [paths written],
        "requests": rows in requests.parquet}``.
    Raises:
        ReportError: not a readable results folder.
    """
    manifest = check_manifest(run_dir)
    metas = [meta for _, meta in run_folders(run_dir)]
    requests = RequestsWriter(os.path.join(run_dir, PARQUET_FILE), metas)
    try:
        summary, extras = collect(run_dir, requests.add)
    except RecordTypeError as exc:
        requests.abort()
        raise ReportError(str(exc)) from None
    except BaseException:
        requests.abort()
        raise
    requests.close()
    files = [requests.path] + write_tables(run_dir, summary)
    model = build_model(run_dir, summary, manifest)          # model/ (docs/model.md)
    files += model["files"]
    warnings = fidelity_warnings(summary, manifest) + model["warnings"]
    figures = make_plots(run_dir, summary, extras, manifest) if plots else []
    if plots:
        figures += model_figures(run_dir, summary, model)
    report = render_html(run_dir, summary, figures, warnings, manifest, model=model)
    return {"summary": summary, "warnings": warnings, "report": report,
            "files": files + [report], "plots": figures, "requests": requests.rows,
            "model": model}


JSON_KEYS = ("results_dir", "files", "report", "plots", "warnings")
JSON_HELP = ("print one JSON object instead of lines: results_dir (str), files (every file "
             "written: requests.parquet, runs.csv, summary.csv, summary.json, model/summary.csv "
             "and model/summary.json for HTTP specs, report.html), "
             "report (report.html), plots (the figures' PNG files, [] with --no-plots), "
             "warnings (fidelity warnings and the model twin's fidelity flags, str each)")


def json_result(result, run_dir):
    """Return the ``--json`` output of ``lblab report`` (keys ``JSON_KEYS``)."""
    plots = [f["path"] for f in result.get("plots") or () if f.get("path")]
    return {"results_dir": run_dir, "files": result["files"], "report": result["report"],
            "plots": plots, "warnings": result["warnings"]}


def build_parser():
    """Return the argparse parser of ``lblab report``."""
    parser = argparse.ArgumentParser(
        prog="lblab report",
        description="Rebuild every derived file of a results folder from its raw/ data alone: "
                    "requests.parquet, runs.csv, summary.csv, summary.json (byte for byte the "
                    "same from the same raw/), the model twin (model/summary.csv, "
                    "model/summary.json, seeded: the same bytes again), plots/ and "
                    "report.html. Columns: "
                    "docs/data.md; the model: docs/model.md.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a results folder (results/<name>-<time>)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def main(argv=None):
    """``lblab report RUN_DIR``: rebuild the derived files, plots and report from raw/ alone."""
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.run_dir):
        raise UsageError(f"RUN_DIR {args.run_dir!r} is not a folder")
    try:
        result = build(args.run_dir, plots=not args.no_plots)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(json_result(result, args.run_dir), indent=2, sort_keys=True))
        return 0
    for w in result["warnings"]:
        print(f"warning: {w}")
    for path in result["files"][:-1]:
        print(f"wrote {path}")
    model = result.get("model") or {}
    if model.get("available"):
        comp = model["comparison"]
        print(f"model twin: {len(comp['flags'])} fidelity flag(s) in {comp['m']} comparisons "
              f"(false-alarm rate at most {comp['false_alarm']:.0%} per report)")
    elif model:
        print(f"model twin: none ({model.get('reason')})")
    print(result["report"])
    return 0
