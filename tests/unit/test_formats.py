"""Format versions (experiments/formats.py): run meta v1 and v2 read alike, newer and older
folders get one line saying what to do; requests.parquet typed, ordered and deterministic;
lblab report --json."""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments import formats, parquet_out, report
from lb_apps.records import LOADGEN_FIELDS
from lblab_core import entry
from lblab_core.errors import UsageError
from tests.unit import resultsdirs


def _meta(path):
    return resultsdirs.read_json(path)


def _set_meta(run_dir, run, **changes):
    path = os.path.join(run_dir, "raw", run, "meta.json")
    meta = _meta(path)
    meta.update(changes)
    resultsdirs.write_json(path, meta)


# -- versions ----------------------------------------------------------------------------------

def test_a_v1_sweep_becomes_a_one_element_list():
    meta = {"v": 1, "sweep": {"param": "workload.rate", "value": 100}}
    out = formats.normalise_meta(meta, "m.json", "redo")
    assert out["sweep"] == [{"param": "workload.rate", "value": 100}]
    assert meta["sweep"] == {"param": "workload.rate", "value": 100}     # not changed in place
    v2 = {"v": 2, "sweep": [{"param": "a", "value": 1}, {"param": "b.c", "value": "x"}]}
    assert formats.normalise_meta(v2, "m.json", "redo")["sweep"] == v2["sweep"]
    assert formats.normalise_meta({"v": 2, "sweep": None}, "m.json", "redo")["sweep"] is None


@pytest.mark.parametrize("meta, words", [
    ({"v": 3}, "made by run format 3; this lblab reads run format 1-2: upgrade lblab"),
    ({"v": 0}, "made by run format 0; this lblab reads run format 1-2: redo it"),
    ({}, "no run format version (found None)"),
    ({"v": "2"}, "no run format version (found '2')"),
    ({"v": True}, "no run format version (found True)"),
    ({"v": 2, "sweep": {"param": "a", "value": 1}}, "sweep: {'param': 'a', 'value': 1}: "
                                                    "expected [{param, value}, ...] or null"),
    ({"v": 1, "sweep": [1]}, "expected {param, value} or null in run format 1"),
    ([], "expected a JSON object, found list: redo it"),
])
def test_unreadable_metas_say_what_to_do(meta, words):
    with pytest.raises(formats.FormatError) as err:
        formats.normalise_meta(meta, "raw/x-r1/meta.json", "redo it")
    assert str(err.value).startswith("raw/x-r1/meta.json: ")
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_the_writers_use_the_one_constant():
    from experiments import metadata, run_lab
    assert run_lab.META_VERSION is formats.META_VERSION
    assert formats.META_VERSION == formats.META_VERSIONS[-1]
    assert formats.FORMAT_VERSION == formats.FORMAT_VERSIONS[-1]
    assert "formats.FORMAT_VERSION" in open(metadata.__file__, encoding="utf-8").read()


def test_results_version():
    assert formats.results_version({}, "manifest.json", "redo") == 1
    assert formats.results_version({"format_version": 2}, "manifest.json", "redo") == 2
    with pytest.raises(formats.FormatError, match="made by lblab format 3; this lblab reads "
                                                   "lblab format 1-2: upgrade lblab"):
        formats.results_version({"format_version": 3}, "manifest.json", "redo")


def test_v1_and_v2_folders_give_the_same_numbers(tmp_path):
    v1 = resultsdirs.tiny(tmp_path / "v1")
    v2 = resultsdirs.tiny(tmp_path / "v2")
    for path, meta in resultsdirs.metas(v2):
        meta.update(v=2, sweep=None)
        resultsdirs.write_json(path, meta)
    a = report.build(v1, plots=False)["summary"]
    b = report.build(v2, plots=False)["summary"]
    assert [c["aggregate"] for c in a["configs"]] == [c["aggregate"] for c in b["configs"]]
    for name in ("runs.csv", "summary.csv", "requests.parquet"):
        assert open(os.path.join(v1, name), "rb").read() == \
            open(os.path.join(v2, name), "rb").read(), name


def test_a_v1_sweep_folder_reads_like_v2(tmp_path):
    run_dir = resultsdirs.tiny(tmp_path / "v1sweep")
    for path, meta in resultsdirs.metas(run_dir):
        meta["sweep"] = {"param": "workload.rate", "value": 10 * meta["rep"]}
        resultsdirs.write_json(path, meta)
    summary = report.build(run_dir, plots=False)["summary"]
    assert summary["format_version"] == formats.FORMAT_VERSION
    assert summary["configs"][0]["sweep"] == [{"param": "workload.rate", "value": 10}]
    assert all(isinstance(r["meta"]["sweep"], list) for r in summary["runs"])
    written = json.load(open(os.path.join(run_dir, "summary.json")))
    assert written["format_version"] == formats.FORMAT_VERSION
    assert written["runs"][0]["meta"]["sweep"] == [{"param": "workload.rate", "value": 10}]


def _one_line_error(argv, capsys):
    """Run ``lblab report`` the way the dispatcher does: one line on stderr, exit 2."""
    assert entry.run("report", report.main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_newer_run_says_upgrade(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "newer")
    _set_meta(run_dir, "l7_rr-r2", v=3)
    err = _one_line_error([run_dir], capsys)
    assert "l7_rr-r2/meta.json: made by run format 3; this lblab reads run format 1-2: " \
           "upgrade lblab" in err


def test_a_newer_folder_says_upgrade(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "newer")
    path = os.path.join(run_dir, "manifest.json")
    manifest = _meta(path)
    manifest["format_version"] = 3
    resultsdirs.write_json(path, manifest)
    err = _one_line_error([run_dir], capsys)
    assert "manifest.json: made by lblab format 3; this lblab reads lblab format 1-2: " \
           "upgrade lblab" in err


def test_an_older_run_says_rerun_its_spec(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "older")
    path = os.path.join(run_dir, "manifest.json")
    manifest = _meta(path)
    manifest["spec_file"] = "/specs/tiny.yaml"
    resultsdirs.write_json(path, manifest)
    _set_meta(run_dir, "l4_rr-r1", v=None)
    err = _one_line_error([run_dir], capsys)
    assert "l4_rr-r1/meta.json: no run format version (found None): made by an lblab older " \
           "than run format 1 or not by lblab" in err
    assert "re-run its spec (lblab run /specs/tiny.yaml)" in err


def test_a_meta_without_ids_is_one_line(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "noid")
    path = os.path.join(run_dir, "raw", "l4_rr-r1", "meta.json")
    meta = _meta(path)
    del meta["rep"]
    resultsdirs.write_json(path, meta)
    err = _one_line_error([run_dir], capsys)
    assert "l4_rr-r1/meta.json: lacks rep" in err


def test_load_summary_checks_the_format(tmp_path):
    run_dir = resultsdirs.tiny(tmp_path / "sum")
    assert report.load_summary(run_dir)["format_version"] == formats.FORMAT_VERSION  # from raw/
    report.build(run_dir, plots=False)
    path = os.path.join(run_dir, "summary.json")
    summary = resultsdirs.read_json(path)
    assert report.load_summary(run_dir) == summary
    del summary["format_version"]                      # format 1: read as it is
    resultsdirs.write_json(path, summary)
    assert report.load_summary(run_dir)["configs"] == summary["configs"]
    summary["format_version"] = 3
    resultsdirs.write_json(path, summary)
    with pytest.raises(report.ReportError, match="summary.json: made by lblab format 3; this "
                                                 "lblab reads lblab format 1-2: upgrade lblab"):
        report.load_summary(run_dir)


# -- requests.parquet --------------------------------------------------------------------------

def _records(run_dir):
    out = []
    for path, meta in resultsdirs.metas(run_dir):
        folder = os.path.dirname(path)
        for name in sorted(os.listdir(folder)):
            if name.startswith("loadgen-") and name.endswith(".jsonl"):
                with open(os.path.join(folder, name), encoding="utf-8") as fp:
                    out += [(meta["run"], json.loads(line)) for line in fp if line.strip()]
    return out


def test_requests_parquet_holds_every_record_typed(tmp_path):
    run_dir = resultsdirs.tiny_v2_sweep(tmp_path / "sweep")
    result = report.build(run_dir, plots=False)
    table = pq.read_table(os.path.join(run_dir, "requests.parquet"))
    records = _records(run_dir)
    assert table.num_rows == len(records) == result["requests"]
    names = table.schema.names
    assert names[:5] == ["run", "config", "balancer", "rep", "seed"]
    assert names[5:7] == ["sweep.workload.rate", "sweep.backends.0.capacity"]
    assert names[7:7 + len(LOADGEN_FIELDS)] == list(LOADGEN_FIELDS)
    assert names[-2:] == ["warmup", "counted"]
    assert table.schema.field("sweep.workload.rate").type == pa.int64()
    assert table.schema.field("sweep.backends.0.capacity").type == pa.float64()
    assert table.schema.field("scheduled").type == pa.float64()
    assert table.schema.field("status").type == pa.int64()
    rows = table.to_pylist()
    # every record, in run order then file order, with its run's ids
    order = [r["meta"]["run"] for r in result["summary"]["runs"]]
    assert [r["run"] for r in rows] == sorted((r for r, _ in records), key=order.index)
    by_run = {}
    for run, rec in records:
        by_run.setdefault(run, []).append(rec)
    for run in order:
        mine = [r for r in rows if r["run"] == run]
        assert [r["id"] for r in mine] == [r["id"] for r in by_run[run]]
        assert all(r["pool_wait"] is None for r in mine)        # v1 records lack it
    # counted = the requests the metrics count
    for run in result["summary"]["runs"]:
        counted = sum(1 for r in rows if r["run"] == run["meta"]["run"] and r["counted"])
        assert counted == run["metrics"]["sent"]
    assert any(r["warmup"] for r in rows) and not any(r["warmup"] and r["counted"]
                                                      for r in rows)


def test_requests_parquet_is_deterministic(tmp_path):
    run_dir = resultsdirs.tiny(tmp_path / "a")
    report.build(run_dir, plots=False)
    first = open(os.path.join(run_dir, "requests.parquet"), "rb").read()
    report.build(run_dir, plots=False)
    assert open(os.path.join(run_dir, "requests.parquet"), "rb").read() == first
    meta = pq.read_metadata(os.path.join(run_dir, "requests.parquet"))
    assert meta.num_row_groups == 4                       # one per run
    assert b"ARROW:schema" in (meta.metadata or {})       # and nothing else: no timestamps
    assert set(meta.metadata) == {b"ARROW:schema"}


def test_an_iperf3_folder_gets_an_empty_typed_file(tmp_path):
    run_dir = resultsdirs.iperf3(tmp_path / "iperf")
    result = report.build(run_dir, plots=False)
    table = pq.read_table(os.path.join(run_dir, "requests.parquet"))
    assert table.num_rows == 0 and result["requests"] == 0
    assert table.schema == parquet_out.schema([])
    assert result["summary"]["runs"][1]["metrics"]["failed_flows"] == 1


def test_a_record_of_the_wrong_type_is_one_line(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "bad")
    path = os.path.join(run_dir, "raw", "l7_rr-r1", "loadgen-h2.jsonl")
    lines = open(path, encoding="utf-8").read().splitlines()
    record = json.loads(lines[4])
    record["status"] = "200"
    lines[4] = json.dumps(record, sort_keys=True)
    open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    err = _one_line_error([run_dir], capsys)
    assert (f"raw/l7_rr-r1: the load generator record of client 'h2' with id "
            f"{record['id']!r}: field 'status': '200': expected an integer or null") in err
    assert not os.path.exists(os.path.join(run_dir, "requests.parquet.tmp"))


def test_every_record_field_has_a_type(monkeypatch):
    assert set(LOADGEN_FIELDS) <= set(parquet_out.RECORD_TYPES)
    monkeypatch.setattr(parquet_out, "LOADGEN_FIELDS", LOADGEN_FIELDS + ("new_field",))
    with pytest.raises(RuntimeError, match=r"no type for the load generator record "
                                           r"field\(s\) \['new_field'\]"):
        parquet_out.record_fields()


# -- lblab report --json -----------------------------------------------------------------------

def test_report_json_lists_what_it_wrote(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "json")
    assert report.main([run_dir, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out) == sorted(report.JSON_KEYS)
    assert [os.path.basename(p) for p in out["files"]] == [
        "requests.parquet", "runs.csv", "summary.csv", "summary.json", "report.html"]
    assert all(os.path.exists(p) for p in out["files"] + out["plots"])
    assert out["plots"] and all(p.endswith(".png") for p in out["plots"])
    assert out["report"] == out["files"][-1]
    assert isinstance(out["warnings"], list)
    for key in report.JSON_KEYS:
        assert key in report.JSON_HELP


def test_report_json_without_plots(tmp_path, capsys):
    run_dir = resultsdirs.tiny(tmp_path / "json")
    assert report.main([run_dir, "--json", "--no-plots"]) == 0
    assert json.loads(capsys.readouterr().out)["plots"] == []


def test_report_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="is not a folder"):
        report.main([str(tmp_path / "nope"), "--json"])
    with pytest.raises(UsageError, match="no raw runs .*: not a results folder$"):
        report.main([str(tmp_path), "--json"])
    resultsdirs.write_json(str(tmp_path / "manifest.json"), {"spec_file": "/s/x.yaml"})
    with pytest.raises(UsageError, match=r"a results folder with no raw runs .*: re-run its "
                                         r"spec \(lblab run /s/x.yaml\)"):
        report.main([str(tmp_path)])
