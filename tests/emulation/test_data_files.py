"""The data files of a real results folder (root, Open vSwitch, Mininet): lblab run on a tiny
swept spec, then runs.csv, summary.csv, summary.json and requests.parquet checked against the
raw records, and rebuilt byte for byte by lblab report.

One L7 builtin balancer (no controller: the shortest lab), users swept 2 and 4, one repetition,
1 s warm-up and 2 s of closed-loop load: two runs. No calibration: it reaches none of these files
(only the model twin's, which test_model_twin checks).
"""
import csv
import glob
import json
import os

import pyarrow.parquet as pq
import pytest

from experiments import formats, report, runner
from lb_apps.records import read_records

SPEC = """\
name: datafiles
question: Does every request of a real run reach requests.parquet?
seed: 5
topology: {name: lb_lab, params: {clients: 2}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 1}}
  - {name: b2, service: {dist: fixed, mean_ms: 1}}
balancers:
  - {name: l7_rr, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, think_ms: 5, keepalive: true}
repetitions: 1
warmup_s: 1
duration_s: 2
sweep: {param: workload.users, values: [2, 4]}
"""
DERIVED = ("requests.parquet", "runs.csv", "summary.csv", "summary.json")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("datafiles")
    spec = base / "datafiles.yaml"
    spec.write_text(SPEC)
    out = base / "results"
    assert runner.main([str(spec), "--out", str(out), "--quiet", "--no-calibration"]) == 0
    (run_dir,) = glob.glob(str(out / "datafiles-*"))
    return run_dir


def _csv(path):
    with open(path, encoding="utf-8", newline="") as fp:
        return list(csv.DictReader(fp))


def test_formats_are_recorded(results):
    manifest = json.load(open(os.path.join(results, "manifest.json")))
    summary = json.load(open(os.path.join(results, "summary.json")))
    assert manifest["format_version"] == summary["format_version"] == formats.FORMAT_VERSION
    for meta_path in glob.glob(os.path.join(results, "raw", "*", "meta.json")):
        meta = json.load(open(meta_path))
        assert meta["v"] in formats.META_VERSIONS
        sweep = formats.normalise_meta(meta, meta_path, "")["sweep"]
        assert [p["param"] for p in sweep] == ["workload.users"]


def test_runs_csv_has_a_row_per_run_with_its_sweep_value(results):
    rows = _csv(os.path.join(results, "runs.csv"))
    assert sorted(int(r["sweep.workload.users"]) for r in rows) == [2, 4]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r in rows:
        assert int(r["sent"]) == int(r["ok"]) + int(r["errors"]) > 0
        assert int(r["requests_b1"]) + int(r["requests_b2"]) + int(r["unattributed"]) \
            == int(r["ok"])
    summary = _csv(os.path.join(results, "summary.csv"))
    assert len(summary) == 2 and all(s["goodput_rps_n"] == "1" for s in summary)


def test_requests_parquet_holds_every_record(results):
    table = pq.read_table(os.path.join(results, "requests.parquet"))
    runs = {r["run"]: r for r in _csv(os.path.join(results, "runs.csv"))}
    total = 0
    for run, row in runs.items():
        records = []
        for path in sorted(glob.glob(os.path.join(results, "raw", run, "loadgen-*.jsonl"))):
            records += read_records(path, "loadgen")
        mine = table.filter(table["run"].to_numpy(zero_copy_only=False) == run).to_pylist()
        assert [r["id"] for r in mine] == [r["id"] for r in records]
        assert [r["end"] for r in mine] == [r["end"] for r in records]
        assert sum(r["counted"] for r in mine) == int(row["sent"])
        assert {r["sweep.workload.users"] for r in mine} == {int(row["sweep.workload.users"])}
        # a field a record version lacks is null, and only then
        for rec, out in zip(records, mine):
            assert (out["pool_wait"] is None) == ("pool_wait" not in rec)
        total += len(records)
    assert table.num_rows == total


def test_report_rebuilds_every_data_file_byte_for_byte(results, capsys):
    before = {name: open(os.path.join(results, name), "rb").read() for name in DERIVED}
    for name in DERIVED:
        os.remove(os.path.join(results, name))
    assert report.main([results, "--json", "--no-plots"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [os.path.basename(p) for p in out["files"]][:4] == list(DERIVED)
    for name in DERIVED:
        assert open(os.path.join(results, name), "rb").read() == before[name], name
