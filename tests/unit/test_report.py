"""lblab report on the committed raw fixture tests/unit/fixtures/run_tiny (compare:
test_compare.py)."""
import json
import os
import shutil

import pytest

from experiments import fidelity, html_report, report, tables
from lblab_core.errors import UsageError

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny")
EXPECTED_CSV = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny_summary.csv")
EXPECTED_RUNS_CSV = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny_runs.csv")


@pytest.fixture()
def run_dir(tmp_path):
    target = tmp_path / "tiny-20261128T090000"
    shutil.copytree(FIXTURE, target)
    return str(target)


def _read(path):
    with open(path, "rb") as fp:
        return fp.read()


DERIVED = ("requests.parquet", "runs.csv", "summary.csv", "summary.json")


def test_every_derived_file_is_rebuilt_byte_identically(run_dir):
    report.build(run_dir, plots=False)
    first = {name: _read(os.path.join(run_dir, name)) for name in DERIVED}
    for name in DERIVED:
        os.remove(os.path.join(run_dir, name))
    report.build(run_dir, plots=False)
    for name in DERIVED:
        assert _read(os.path.join(run_dir, name)) == first[name], name
    # and equal to the committed expectations: a change in the numbers is a visible diff
    assert first["summary.csv"] == _read(EXPECTED_CSV)
    assert first["runs.csv"] == _read(EXPECTED_RUNS_CSV)


def test_a_copy_elsewhere_gives_the_same_bytes(run_dir, tmp_path):
    """Nothing of the folder's path or the time leaks into the derived files."""
    other = tmp_path / "elsewhere" / "tiny-copy"
    shutil.copytree(FIXTURE, other)
    report.build(run_dir, plots=False)
    report.build(str(other), plots=False)
    for name in DERIVED:
        assert _read(os.path.join(run_dir, name)) == _read(os.path.join(other, name)), name


def test_summary_counts_add_up(run_dir):
    summary = report.build(run_dir, plots=False)["summary"]
    assert [c["config"] for c in summary["configs"]] == ["l4_rr", "l7_rr"]
    for run in summary["runs"]:
        m = run["metrics"]
        assert m["sent"] == m["ok"] + m["errors"]
        assert sum(m["backend_share"].values()) == pytest.approx(1.0)
    killed = next(r for r in summary["runs"] if r["meta"]["run"] == "l7_rr-r1")["metrics"]
    assert killed["errors_by_kind"] == {"connect_refused": 3}


def test_report_renders_with_every_section_and_embedded_figures(run_dir):
    result = report.build(run_dir)
    html = open(result["report"], encoding="utf-8").read()
    for section in ("The question", "The setup", "Results", "Figures", "Fidelity warnings",
                    "Manifest"):
        assert f"<h2>{section}</h2>" in html
    assert "Does L4 or L7 round robin share two backends evenly?" in html
    assert html.count("data:image/png;base64,") >= 6
    assert 'src="plots/' not in html          # self-contained
    # which figures is figures.py's (tests/unit/test_figures.py); here: each one it lists is
    # written as PNG and SVG inside the folder
    assert len(result["plots"]) >= 6
    for figure in result["plots"]:
        stem = os.path.splitext(figure["path"])[0]
        assert os.path.dirname(stem) == os.path.join(run_dir, "plots")
        assert os.path.exists(stem + ".png") and os.path.exists(stem + ".svg")


def test_fidelity_warnings_name_unexpected_errors(run_dir):
    summary, _ = report.collect(run_dir)
    run = next(r for r in summary["runs"] if r["meta"]["run"] == "l4_rr-r2")
    run["meta"]["fidelity"]["warnings"] = ["host CPU saturated (99%)"]
    run["metrics"].update(errors=2, errors_by_kind={"timeout": 2})
    warnings = fidelity.fidelity_warnings(summary)
    assert "l4_rr-r2: host CPU saturated (99%)" in warnings
    assert any(w.startswith("l4_rr-r2: 2 of 40 requests failed without an injected fault")
               for w in warnings)
    # the killed backend in l7_rr-r1 was an injected fault: no warning for it
    assert not any(w.startswith("l7_rr-r1") for w in warnings)


def test_report_command_errors(tmp_path):
    with pytest.raises(UsageError, match="is not a folder"):
        report.main([str(tmp_path / "nope")])
    with pytest.raises(UsageError, match="no raw runs"):
        report.main([str(tmp_path)])


def test_shaped_bottleneck_rate_is_checked():
    manifest = {"spec": {"topology": {"name": "dumbbell", "params": {"bottleneck_bw": 20}},
                         "workload": {"type": "iperf3", "bitrate": None}}}
    runs = [{"meta": {"run": "a-r1", "status": "ok"}, "metrics": {"total_mbps": 19.1}},
            {"meta": {"run": "a-r2", "status": "ok"}, "metrics": {"total_mbps": 12.0}}]
    (warning,) = fidelity.shaped_rate_warnings({"runs": runs}, manifest)
    assert warning.startswith("a-r2: the 20 Mbit/s bottleneck delivered 12.0 Mbit/s in total "
                              "(60%)")


def test_runner_terminal_and_json_summaries(run_dir, capsys):
    from experiments import progress
    result = report.build(run_dir, plots=False)
    result["metas"] = [{"run": "l4_rr-r1", "status": "ok"}, {"run": "x-r1", "status": "failed"}]
    out = progress.json_summary(result, run_dir)
    assert out["failed_runs"] == ["x-r1"]
    assert out["configs"]["l4_rr"]["goodput_rps"]["mean"] == pytest.approx(20.0)
    progress.print_summary(result, run_dir)
    text = capsys.readouterr().out
    assert "l4_rr" in text
    assert f"report: {result['report']}\n" in text


def test_two_runs_show_no_interval_and_say_so(run_dir):
    result = report.build(run_dir)
    html = open(result["report"], encoding="utf-8").read()
    assert "n=2: no interval" in html
    assert "How the numbers are computed" in html and "logit" in html
    assert "n=2 runs; with n &lt; 3 no interval" in html      # figure captions
    agg = result["summary"]["configs"][0]["aggregate"]
    assert agg["goodput_rps"]["ci95"] is None and agg["goodput_rps"]["n"] == 2
    headers, rows = html_report._table(result["summary"])
    assert "mean ms" in headers and headers.index("mean ms") < headers.index("p50 ms")
    assert rows[0]["cells"][headers.index("mean ms")] == "10.9"


def _third_run(run_dir):
    """Give l7_rr a third repetition (a copy of its second) so it gets an interval."""
    src = os.path.join(run_dir, "raw", "l7_rr-r2")
    dst = os.path.join(run_dir, "raw", "l7_rr-r3")
    shutil.copytree(src, dst)
    path = os.path.join(dst, "meta.json")
    with open(path, encoding="utf-8") as fp:
        meta = json.load(fp)
    meta.update(run="l7_rr-r3", rep=3)
    with open(path, "w", encoding="utf-8") as fp:
        json.dump(meta, fp)


def test_three_runs_get_bounded_intervals_with_n(run_dir):
    _third_run(run_dir)
    result = report.build(run_dir)
    config = next(c for c in result["summary"]["configs"] if c["config"] == "l7_rr")
    agg = config["aggregate"]
    assert config["n"] == 3
    jain = agg["jain_backends"]
    assert jain["method"] == "t-clipped"       # two runs at exactly 1
    assert 0.0 <= jain["low"] <= jain["mean"] <= jain["high"] <= 1.0
    share = agg["backend_share"]["b1"]
    assert share["method"] == "logit-t" and 0 < share["low"] < share["high"] < 1
    errors = agg["errors"]                      # 3, 0, 0: the plain t would go below 0
    assert errors["low"] == 0.0 and errors["high"] > 0
    assert agg["goodput_rps"]["method"] == "log-t" and agg["goodput_rps"]["low"] > 0
    header, *rows = tables.summary_rows(result["summary"])
    row = dict(zip(header, next(r for r in rows if r[0] == "l7_rr")))
    assert row["jain_backends_method"] == "t-clipped" and row["jain_backends_n"] == "3"
    assert float(row["jain_backends_low"]) <= float(row["jain_backends_mean"]) \
        <= float(row["jain_backends_high"]) <= 1.0
    assert float(row["share_b1_low"]) == share["low"]
    l4 = dict(zip(header, next(r for r in rows if r[0] == "l4_rr")))
    assert l4["goodput_rps_n"] == "2" and l4["goodput_rps_low"] == "" \
        and l4["goodput_rps_method"] == "none"
    html = open(result["report"], encoding="utf-8").read()
    assert "n=2-3 runs; mean and 95% CI over runs" in html
    _, table = html_report._table(result["summary"])
    l7 = next(r for r in table if r["config"] == "l7_rr")
    assert l7["n"] == "3" and "[" in l7["cells"][0]
