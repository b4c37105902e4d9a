"""runs.csv and summary.csv: one type per column (a CSV reader types every numeric column as
numbers), no statistic rows, and every column the code writes documented in docs/data.md with
the type it has."""
import csv
import os
import re

import pytest

from experiments import metrics as M
from experiments import parquet_out, report, tables
from tests.unit import resultsdirs

DATA_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "data.md")
FOLDERS = {"tiny": resultsdirs.tiny, "tiny_v2_sweep": resultsdirs.tiny_v2_sweep,
           "iperf3": resultsdirs.iperf3}
CSV_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "string"}


@pytest.fixture(params=sorted(FOLDERS))
def built(request, tmp_path):
    run_dir = FOLDERS[request.param](tmp_path / request.param)
    result = report.build(run_dir, plots=False)
    return run_dir, result["summary"]


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as fp:
        header, *rows = list(csv.reader(fp))
    return header, rows


def documented(section):
    """``{doc name: type cell}`` of the table under ``## <section>`` in docs/data.md."""
    text = open(DATA_MD, encoding="utf-8").read()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/data.md has no section '## {section}'"
    out = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`"):
            out[cells[0].strip("`")] = cells[1]
    return out


def _fits(kind, value):
    if kind == "int":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "float":
        if value in ("true", "false"):
            return False
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "bool":
        return value in ("true", "false")
    return True


def _check_cells(columns, header, rows):
    assert header == [c.name for c in columns]
    for i, col in enumerate(columns):
        cells = [r[i] for r in rows if r[i] != ""]
        bad = [v for v in cells if not _fits(col.kind, v)]
        assert not bad, f"{col.name} ({col.kind}): {bad}"
        if col.kind == "str":   # a text column is not a numeric column with a word in it
            assert not (cells and all(_fits("float", v) for v in cells)
                        and col.doc not in ("sweep.<param>", "fidelity_<flag>")), col.name


def test_runs_csv_one_typed_row_per_run(built):
    run_dir, summary = built
    header, rows = _read_csv(os.path.join(run_dir, "runs.csv"))
    _check_cells(tables.runs_columns(summary), header, rows)
    assert [r[0] for r in rows] == [r["meta"]["run"] for r in summary["runs"]]
    assert len({r[0] for r in rows}) == len(rows)
    col = dict(zip(header, zip(*rows)))
    assert set(col["status"]) <= {"ok", "failed"}
    assert all(rep.isdigit() for rep in col["rep"])


def test_summary_csv_one_row_per_configuration(built):
    run_dir, summary = built
    header, rows = _read_csv(os.path.join(run_dir, "summary.csv"))
    _check_cells(tables.summary_columns(summary), header, rows)
    assert [r[0] for r in rows] == [c["config"] for c in summary["configs"]]
    metric = "total_mbps" if "total_mbps_mean" in header else "goodput_rps"
    for stat in tables.STATS:
        assert f"{metric}_{stat}" in header
    for row in rows:
        cells = dict(zip(header, row))
        assert cells[f"{metric}_method"] in (M.METHOD_NONE, M.METHOD_LOG, M.METHOD_LOGIT,
                                             M.METHOD_CLIPPED)
        assert int(cells["runs"]) == int(cells["ok_runs"]) + int(cells["failed_runs"])


def test_summary_csv_means_are_the_runs_means(tmp_path):
    run_dir = resultsdirs.tiny(tmp_path / "tiny")
    report.build(run_dir, plots=False)
    rh, runs = _read_csv(os.path.join(run_dir, "runs.csv"))
    sh, configs = _read_csv(os.path.join(run_dir, "summary.csv"))
    for config in configs:
        cells = dict(zip(sh, config))
        values = [float(dict(zip(rh, r))["goodput_rps"]) for r in runs
                  if r[rh.index("config")] == cells["config"]]
        assert float(cells["goodput_rps_mean"]) == pytest.approx(sum(values) / len(values))
        assert int(cells["goodput_rps_n"]) == len(values)


def test_sweep_columns_keep_their_types(tmp_path):
    run_dir = resultsdirs.tiny_v2_sweep(tmp_path / "sweep")
    summary = report.build(run_dir, plots=False)["summary"]
    kinds = {c.name: c.kind for c in tables.runs_columns(summary)}
    assert kinds["sweep.workload.rate"] == "int"
    assert kinds["sweep.backends.0.capacity"] == "float"     # 1.5 and 2
    assert kinds["pool_limited"] == "bool" and kinds["fidelity_future_flag"] == "str"
    header, rows = _read_csv(os.path.join(run_dir, "runs.csv"))
    by_run = {r[0]: dict(zip(header, r)) for r in rows}
    assert by_run["l7_rr-r2"]["sweep.workload.rate"] == "200"
    assert by_run["l7_rr-r2"]["sweep.backends.0.capacity"] == "2"
    assert by_run["l7_rr-r2"]["seed"] == "1002"
    assert by_run["l7_rr-r2"]["pool_limited"] == "true"
    assert by_run["l7_rr-r2"]["pool_waited"] == "6"
    assert by_run["l7_rr-r2"]["queued_share_b1"] == "0.25"
    assert by_run["l7_rr-r2"]["queue_wait_mean_ms_b1"] == "1.5"
    assert by_run["l7_rr-r2"]["queued_share_b2"] == ""
    assert by_run["l7_rr-r2"]["fidelity_future_flag"] == "x"


def test_a_sweep_of_mixed_values_is_a_string_column():
    assert tables.value_kind([1, 2]) == "int"
    assert tables.value_kind([1, 2.5]) == "float"
    assert tables.value_kind([True, False]) == "bool"
    assert tables.value_kind([1, True]) == "str"
    assert tables.value_kind(["5ms", 1]) == "str"
    assert tables.sweep_value([1, 2], "str") == "[1,2]"
    assert tables.sweep_value({"b": 1, "a": 2}, "str") == '{"a":2,"b":1}'


def test_every_metric_has_a_column():
    placed = set(tables.HTTP_COLUMNS) | set(tables.IPERF_COLUMNS) | set(tables.FAULT_COLUMNS)
    assert set(M.SCALAR_METRICS) <= placed


def _check_documented(section, columns, type_of):
    docs = documented(section)
    for col in columns:
        assert col.doc in docs, f"docs/data.md ## {section}: column {col.doc!r} is missing"
        assert type_of(col) in docs[col.doc].split("/"), (
            f"docs/data.md ## {section}: {col.doc!r} is documented as {docs[col.doc]!r}, "
            f"written as {type_of(col)!r}")


def test_every_column_written_is_documented(built):
    run_dir, summary = built
    _check_documented("runs.csv", tables.runs_columns(summary), lambda c: CSV_TYPES[c.kind])
    _check_documented("summary.csv", tables.summary_columns(summary),
                      lambda c: CSV_TYPES[c.kind])
    import pyarrow.parquet as pq
    schema = pq.read_schema(os.path.join(run_dir, "requests.parquet"))
    docs = documented("requests.parquet")
    for field in schema:
        name = "sweep.<param>" if field.name.startswith("sweep.") else field.name
        assert name in docs, f"docs/data.md ## requests.parquet: {field.name!r} is missing"
        shown = {"double": "double", "int64": "int64", "string": "string", "bool": "bool"}
        assert shown[str(field.type)] in docs[name].split("/"), field.name


def test_every_possible_column_is_documented():
    """Columns no fixture folder shows (every metric, every record field) are documented."""
    runs = documented("runs.csv")
    for metric in tables.HTTP_COLUMNS + tables.IPERF_COLUMNS + tables.FAULT_COLUMNS:
        kind = CSV_TYPES[tables._metric_kind(metric)]
        assert runs.get(metric) == kind, metric
    records = documented("requests.parquet")
    for field in parquet_out.record_fields():
        assert field in records, field
    for name, _ in parquet_out.ID_COLUMNS + parquet_out.TAIL_COLUMNS:
        assert name in records, name


def test_pandas_reads_numeric_columns_as_numbers(built):
    pd = pytest.importorskip("pandas")
    run_dir, summary = built
    for name, columns in (("runs.csv", tables.runs_columns(summary)),
                          ("summary.csv", tables.summary_columns(summary))):
        frame = pd.read_csv(os.path.join(run_dir, name))
        for col in columns:
            if col.kind in ("int", "float") and frame[col.name].notna().any():
                assert pd.api.types.is_numeric_dtype(frame[col.name]), (name, col.name)


def test_a_failed_run_is_a_row_but_not_in_the_summary(tmp_path):
    run_dir = resultsdirs.tiny(tmp_path / "failed")
    path = os.path.join(run_dir, "raw", "l7_rr-r2", "meta.json")
    meta = resultsdirs.read_json(path)
    meta.update(status="failed", failure="RunFailed: the proxy did not start, a, b")
    resultsdirs.write_json(path, meta)
    report.build(run_dir, plots=False)
    rh, runs = _read_csv(os.path.join(run_dir, "runs.csv"))
    row = dict(zip(rh, next(r for r in runs if r[0] == "l7_rr-r2")))
    assert row["status"] == "failed"
    assert row["failure"] == "RunFailed: the proxy did not start, a, b"   # quoted, one cell
    sh, configs = _read_csv(os.path.join(run_dir, "summary.csv"))
    l7 = dict(zip(sh, next(c for c in configs if c[0] == "l7_rr")))
    assert (l7["runs"], l7["ok_runs"], l7["failed_runs"]) == ("2", "1", "1")
    assert l7["goodput_rps_n"] == "1"
    ok = dict(zip(rh, next(r for r in runs if r[0] == "l7_rr-r1")))
    assert float(l7["goodput_rps_mean"]) == float(ok["goodput_rps"])
