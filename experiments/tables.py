"""The tidy files of a results folder: ``runs.csv``, ``summary.csv`` and ``summary.json`` (the
numbers come from ``experiments.report.collect``; ``requests.parquet`` is
``experiments.parquet_out``). Every column is documented in docs/data.md (a unit test checks).

* ``runs.csv``: one row per run — its ids, every scalar metric, per-backend shares and counts,
  CPU and fidelity flags. An empty cell is a missing value.
* ``summary.csv``: one row per configuration (a balancer at a sweep point) — for every metric
  ``<metric>_mean``, ``_low``, ``_high`` (the 95% interval, empty below
  ``metrics.MIN_RUNS_FOR_INTERVAL`` runs), ``_method`` and ``_n`` (runs with a value). No
  statistic rows: every data column holds one type, so a CSV reader (pandas) types it.
* ``summary.json``: everything, per run and per configuration (``format_version`` at the top).

Cells are deterministic: floats as Python's shortest round-trip ``repr``, booleans ``true`` /
``false``, other values as JSON text.
"""
import csv
import io
import json
import os

from experiments import formats
from experiments import metrics as M

RUNS_CSV = "runs.csv"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"

HTTP_COLUMNS = ("sent", "ok", "errors", "error_rate", "throughput_rps", "goodput_rps",
                "throughput_mbps", "goodput_mbps", "latency_p50_ms", "latency_p90_ms",
                "latency_p99_ms", "latency_p99_9_ms", "latency_max_ms", "latency_mean_ms",
                "jain_backends", "imbalance_backends", "cov_backends", "jain_clients",
                "unattributed", "duration_s")
IPERF_COLUMNS = ("flows", "failed_flows", "total_mbps", "jain_flows", "cov_flows",
                 "min_max_flows", "jain_backends", "imbalance_backends")
FAULT_COLUMNS = ("fault_errors", "error_period_s", "recovery_s")
INT_METRICS = frozenset({"sent", "ok", "errors", "flows", "failed_flows", "fault_errors",
                         "unattributed"})
# meta.json "fidelity" keys with their own column (every other scalar is fidelity_<key>);
# the load's (experiments.fidelity.load_fidelity) in HTTP folders only
FIDELITY_COLUMNS = (("cpu_max", "float"), ("cpu_mean", "float"), ("saturated", "bool"))
LOAD_FIDELITY_COLUMNS = (("pool_limited", "bool"), ("pool_waited", "int"),
                         ("pool_waited_long", "int"), ("pool_wait_mean_ms", "float"),
                         ("pool_wait_p99_ms", "float"), ("send_lag_p99_ms", "float"),
                         ("behind_schedule", "bool"), ("backends_queued", "int"))
NOT_FLAGS = frozenset({"warnings", "backend_queueing"})
STATS = ("mean", "low", "high", "method", "n")
STAT_KINDS = {"mean": "float", "low": "float", "high": "float", "method": "str", "n": "int"}


class Column:
    """One column: its ``name`` in the file, the ``doc`` name docs/data.md lists it under
    (``share_<backend>`` for ``share_b1``), its ``kind`` (int, float, bool, str) and, for
    runs.csv, ``get(run)``: its value in one run (``{"meta", "metrics", "ident"}``)."""

    __slots__ = ("name", "doc", "kind", "get")

    def __init__(self, name, kind, doc=None, get=None):
        self.name, self.kind, self.doc, self.get = name, kind, doc or name, get

    def __repr__(self):
        return f"Column({self.name!r}, {self.kind!r}, doc={self.doc!r})"


def cell(value):
    """Format one CSV cell deterministically ("" for a missing value)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _kind(balancer):
    return balancer.get("mode") if balancer.get("layer") == "l4" else balancer.get("engine")


def _metric_kind(metric):
    return "int" if metric in INT_METRICS else "float"


def metric_columns(summary):
    """Return the scalar metrics the folder's CSV files carry, in column order.

    HTTP folders: ``HTTP_COLUMNS`` and ``FAULT_COLUMNS``; iperf3 folders: ``IPERF_COLUMNS``;
    then any other metric of ``metrics.SCALAR_METRICS`` a run has.
    """
    workloads = {c.get("workload") for c in summary["configs"]}
    cols = []
    if "iperf3" not in workloads or len(workloads) > 1:
        cols += HTTP_COLUMNS + FAULT_COLUMNS
    if "iperf3" in workloads:
        cols += [c for c in IPERF_COLUMNS if c not in cols]
    for key in M.SCALAR_METRICS:
        if key not in cols and any(key in r["metrics"] for r in summary["runs"]):
            cols.append(key)
    return cols


def backends(summary):
    """Return every backend name of the folder, in first-seen order."""
    names = []
    for config in summary["configs"]:
        for b in config.get("backends") or ():
            if b["name"] not in names:
                names.append(b["name"])
    return names


def value_kind(values):
    """The column kind of a swept parameter's values: int, float, bool, else str."""
    values = [v for v in values if v is not None]
    if values and all(type(v) is bool for v in values):
        return "bool"
    if values and all(type(v) is int for v in values):
        return "int"
    if values and all(type(v) in (int, float) for v in values):
        return "float"
    return "str"


def sweep_value(value, kind):
    """A sweep value as its column holds it: itself, or (str columns) JSON text if not a
    string."""
    if value is None or kind != "str" or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sweep_params(sweeps):
    """Return ``[(param, kind)]`` of every swept parameter, in first-seen order.

    Args:
        sweeps (iterable): each run's or configuration's ``sweep`` (a list of ``{"param",
            "value"}``, or None).
    """
    values = {}
    for sweep in sweeps:
        for point in sweep or ():
            values.setdefault(point["param"], []).append(point["value"])
    return [(param, value_kind(vals)) for param, vals in values.items()]


def _id_columns(summary):
    """The configuration's id columns (runs.csv and summary.csv): getters read ``ident``."""
    cols = [Column(n, "str", get=lambda row, n=n: row["ident"][n])
            for n in ("config", "balancer", "layer", "kind", "algorithm")]
    params = sweep_params(c.get("sweep") for c in summary["configs"])
    cols += [Column(f"sweep.{p}", kind, "sweep.<param>", _sweep(p, kind)) for p, kind in params]
    return cols


def _ident(config):
    bal = config["balancer"]
    point = {p["param"]: p["value"] for p in config.get("sweep") or ()}
    return {"config": config["config"], "balancer": bal.get("name"), "layer": bal.get("layer"),
            "kind": _kind(bal), "algorithm": bal.get("algorithm"), "sweep": point}


def _fidelity_flags(summary):
    known = {k for k, _ in FIDELITY_COLUMNS + LOAD_FIDELITY_COLUMNS} | NOT_FLAGS
    flags = {}
    for run in summary["runs"]:
        for key, value in ((run["meta"].get("fidelity") or {}).items()):
            if key in known or not isinstance(value, (bool, int, float, str)):
                continue
            kind = "bool" if isinstance(value, bool) else "str" if isinstance(value, str) \
                else "int" if isinstance(value, int) else "float"
            previous = flags.get(key, kind)
            flags[key] = kind if previous == kind else (
                "float" if {previous, kind} == {"int", "float"} else "str")
    return sorted(flags.items())


def _meta(key):
    return lambda run: run["meta"].get(key)


def _metric(key):
    return lambda run: run["metrics"].get(key)


def _fid(key):
    return lambda run: (run["meta"].get("fidelity") or {}).get(key)


def _per_backend(field, backend):
    return lambda run: (run["metrics"].get(field) or {}).get(backend)


def _queueing(backend, key):
    return lambda run: (((run["meta"].get("fidelity") or {}).get("backend_queueing") or {})
                        .get(backend) or {}).get(key)


def _errors(run):
    res = run["metrics"]
    return ";".join(f"{k}={v}" for k, v in sorted(
        (res.get("errors_by_kind") or res.get("flow_errors") or {}).items())) or None


def _sweep(param, kind):
    return lambda run: sweep_value(run["ident"]["sweep"].get(param), kind)


def runs_columns(summary):
    """Return the :class:`Column` s of runs.csv for this summary (each with its ``get``)."""
    cols = [Column("run", "str", get=_meta("run"))] + _id_columns(summary)
    cols += [Column(n, kind, get=_meta(n)) for n, kind in (
        ("rep", "int"), ("seed", "int"), ("order", "int"), ("start", "float"),
        ("end", "float"), ("status", "str"), ("failure", "str"))]
    cols += [Column(m, _metric_kind(m), get=_metric(m)) for m in metric_columns(summary)]
    iperf = any(c.get("workload") == "iperf3" for c in summary["configs"])
    http = any(c.get("workload") != "iperf3" for c in summary["configs"])
    names = backends(summary)
    for b in names:
        cols.append(Column(f"share_{b}", "float", "share_<backend>",
                           _per_backend("backend_share", b)))
        cols.append(Column(f"flows_{b}", "int", "flows_<backend>",
                           _per_backend("backend_flows", b)) if iperf
                    else Column(f"requests_{b}", "int", "requests_<backend>",
                                _per_backend("backend_requests", b)))
    cols.append(Column("errors_by_kind", "str", get=_errors))
    cols += [Column(k, kind, get=_fid(k)) for k, kind in FIDELITY_COLUMNS]
    cols.append(Column("fidelity_warnings", "int",
                       get=lambda run: len(_fid("warnings")(run) or ())))
    if http:
        cols += [Column(k, kind, get=_fid(k)) for k, kind in LOAD_FIDELITY_COLUMNS]
        for b in names:
            cols.append(Column(f"queued_share_{b}", "float", "queued_share_<backend>",
                               _queueing(b, "queued_share")))
            cols.append(Column(f"queue_wait_mean_ms_{b}", "float",
                               "queue_wait_mean_ms_<backend>", _queueing(b, "mean_wait_ms")))
    cols += [Column(f"fidelity_{k}", kind, "fidelity_<flag>", _fid(k))
             for k, kind in _fidelity_flags(summary)]
    return cols


def runs_rows(summary):
    """Return the rows (lists of strings) of runs.csv: a header, then one row per run."""
    cols = runs_columns(summary)
    by_run = {r["meta"]["run"]: r for r in summary["runs"]}
    rows = [[c.name for c in cols]]
    for config in summary["configs"]:
        ident = _ident(config)
        for name in config["runs"]:
            run = dict(by_run[name], ident=ident)
            rows.append([cell(c.get(run)) for c in cols])
    return rows


def _stat(metric, stat, backend=None):
    """Getter of one statistic of a configuration's aggregate (``n`` 0 and ``method`` none
    where the metric has no value)."""
    def get(row):
        agg = row["config"].get("aggregate") or {}
        agg = ((agg.get("backend_share") or {}).get(backend) if backend is not None
               else agg.get(metric)) or {}
        if stat == "method":
            return agg.get("method") or M.METHOD_NONE
        if stat == "n":
            return agg.get("n") or 0
        return agg.get(stat)
    return get


def summary_columns(summary):
    """Return the :class:`Column` s of summary.csv for this summary (each with its ``get``)."""
    cols = _id_columns(summary)
    cols += [Column("runs", "int", get=lambda row: row["config"]["reps"]),
             Column("ok_runs", "int", get=lambda row: row["config"]["n"]),
             Column("failed_runs", "int",
                    get=lambda row: row["config"]["reps"] - row["config"]["n"])]
    for m in metric_columns(summary):
        if m in M.SCALAR_METRICS:
            cols += [Column(f"{m}_{s}", STAT_KINDS[s], f"<metric>_{s}", _stat(m, s))
                     for s in STATS]
    for b in backends(summary):
        cols += [Column(f"share_{b}_{s}", STAT_KINDS[s], f"share_<backend>_{s}",
                        _stat(None, s, b)) for s in STATS]
    return cols


def summary_rows(summary):
    """Return the rows of summary.csv: a header, then one row per configuration."""
    cols = summary_columns(summary)
    rows = [[c.name for c in cols]]
    for config in summary["configs"]:
        row = {"config": config, "ident": _ident(config)}
        rows.append([cell(c.get(row)) for c in cols])
    return rows


def csv_text(rows):
    """Return rows as CSV text (``\\n`` line ends)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def json_text(summary):
    """Return summary.json's text (sorted keys, one-space indent, final newline)."""
    return json.dumps(dict(summary, format_version=formats.FORMAT_VERSION), sort_keys=True,
                      indent=1) + "\n"


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as fp:
        fp.write(text)
    os.replace(tmp, path)


def write_tables(run_dir, summary):
    """Write runs.csv, summary.csv and summary.json; return their paths."""
    paths = []
    for name, text in ((RUNS_CSV, csv_text(runs_rows(summary))),
                       (SUMMARY_CSV, csv_text(summary_rows(summary))),
                       (SUMMARY_JSON, json_text(summary))):
        path = os.path.join(run_dir, name)
        _write(path, text)
        paths.append(path)
    return paths
