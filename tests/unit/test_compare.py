"""lblab compare: side-by-side table, ratio B/A with its interval, Welch's t-test, words."""
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest
from scipy import stats

from experiments import compare, report
from lblab_core.errors import UsageError

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture()
def run_dir(tmp_path):
    target = tmp_path / "tiny-20261128T090000"
    shutil.copytree(FIXTURE, target)
    return str(target)


def _run_with(tmp_path, name, values_by_config, metric="latency_p99_ms"):
    """A copy of run_tiny whose summary.json has the given per-run values of one metric."""
    target = tmp_path / name
    shutil.copytree(FIXTURE, target)
    report.build(str(target), plots=False)
    path = os.path.join(target, "summary.json")
    summary = report.load_json(path)
    for c in summary["configs"]:
        values = values_by_config[c["config"]]
        c["aggregate"][metric] = {"mean": statistics.fmean(values), "low": None, "high": None,
                                  "ci95": None, "n": len(values), "method": "none",
                                  "values": values}
    with open(path, "w", encoding="utf-8") as fp:
        json.dump(summary, fp)
    return str(target)


A = {"l4_rr": [10.0, 11.0, 12.0, 10.5, 11.5], "l7_rr": [5.0, 5.2]}
B = {"l4_rr": [7.0, 8.0, 9.0, 8.5, 7.5], "l7_rr": [5.1, 5.3]}


def _independent_ratio(a, b):
    """Welch t interval on the log ratio of means, computed here from the definition."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = stats.tvar(a) / len(a) / ma ** 2
    vb = stats.tvar(b) / len(b) / mb ** 2
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return mb / ma, math.exp(math.log(mb / ma) - half), math.exp(math.log(mb / ma) + half)


def test_compare_side_by_side(run_dir, capsys):
    report.build(run_dir, plots=False)
    summary = report.load_json(os.path.join(run_dir, "summary.json"))
    rows = compare.compare_rows([("a", summary), ("b", summary)], ["goodput_rps"])
    assert rows[0] == ["config", "a: goodput_rps", "b: goodput_rps"]
    assert rows[1] == ["l4_rr", "20", "20"]          # two runs: no interval
    assert compare.main([run_dir, run_dir, "--csv"]) == 0
    assert capsys.readouterr().out.startswith("config,")
    with pytest.raises(UsageError, match="not a metric"):
        compare.main([run_dir, "--metric", "speed"])


def test_ratio_and_p_value_match_scipy(tmp_path, capsys):
    a = _run_with(tmp_path, "A", A)
    b = _run_with(tmp_path, "B", B)
    assert compare.main([a, b, "--json", "--metric", "latency_p99_ms"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["baseline"] == "A" and result["test"] == "welch-t"
    l4 = result["configs"][0]["metrics"]["latency_p99_ms"]
    assert result["configs"][0]["config"] == "l4_rr"
    c = l4["comparisons"][0]
    ratio, low, high = _independent_ratio(A["l4_rr"], B["l4_rr"])
    assert c["ratio"] == pytest.approx(ratio)
    assert c["ratio"] == pytest.approx(8.0 / 11.0)
    assert c["ratio_low"] == pytest.approx(low) and c["ratio_high"] == pytest.approx(high)
    assert c["ratio_low"] < c["ratio"] < c["ratio_high"]
    p = stats.ttest_ind(A["l4_rr"], B["l4_rr"], equal_var=False).pvalue
    assert c["p"] == pytest.approx(p)
    assert c["significant"] is True and c["n_baseline"] == 5 and c["n"] == 5


def test_json_is_numeric(tmp_path, capsys):
    a = _run_with(tmp_path, "A", A)
    b = _run_with(tmp_path, "B", B)
    compare.main([a, b, "--json"])
    result = json.loads(capsys.readouterr().out)
    for entry in result["configs"]:
        for m, data in entry["metrics"].items():
            for r in data["runs"]:
                assert set(r) == {"run", "mean", "low", "high", "n", "method"}
                assert isinstance(r["mean"], (int, float)) and isinstance(r["n"], int)
                for key in ("low", "high"):
                    assert r[key] is None or isinstance(r[key], (int, float))
            for c in data["comparisons"]:
                for key in ("ratio", "ratio_low", "ratio_high", "p"):
                    assert c[key] is None or isinstance(c[key], (int, float)), (m, key)
    goodput = result["configs"][0]["metrics"]["goodput_rps"]["runs"][0]
    assert goodput["mean"] == 20 and goodput["n"] == 2 and goodput["method"] == "none"


def test_fewer_than_two_runs_gives_no_test(tmp_path, capsys):
    a = _run_with(tmp_path, "A", {"l4_rr": [10.0], "l7_rr": [5.0, 6.0, 7.0]})
    b = _run_with(tmp_path, "B", {"l4_rr": [12.0, 13.0], "l7_rr": [5.0]})
    compare.main([a, b, "--json", "--metric", "latency_p99_ms"])
    result = json.loads(capsys.readouterr().out)
    for entry, (na, nb) in zip(result["configs"], [(1, 2), (3, 1)]):
        c = entry["metrics"]["latency_p99_ms"]["comparisons"][0]
        assert c["p"] is None and c["test"] is None and c["significant"] is None
        assert c["ratio_low"] is None and c["ratio_high"] is None
        assert c["note"] == f"no test: n = {na} vs {nb}"
    assert compare.welch_test([1.0, 2.0], [3.0]) == (None, "no test: n = 2 vs 1")


def test_words(tmp_path, capsys):
    a = _run_with(tmp_path, "A", A)
    b = _run_with(tmp_path, "B", B)
    compare.main([a, b, "--metric", "latency_p99_ms"])
    out = capsys.readouterr().out
    p = stats.ttest_ind(A["l4_rr"], B["l4_rr"], equal_var=False).pvalue
    assert (f"l4_rr: latency_p99_ms {11.0 / 8.0:.3g}× lower than in A "
            f"(significant, p = {p:.2g}, n = 5 vs 5)") in out
    p7 = stats.ttest_ind(A["l7_rr"], B["l7_rr"], equal_var=False).pvalue
    assert (f"l7_rr: latency_p99_ms {5.2 / 5.1:.3g}× higher than in A "
            f"(not significant, p = {p7:.2g}, n = 2 vs 2)") in out
    c = _run_with(tmp_path, "C", {"l4_rr": [10.5, 11.5, 11.0, 12.0, 10.0], "l7_rr": [5.0]})
    compare.main([a, b, c, "--metric", "latency_p99_ms"])
    out = capsys.readouterr().out
    assert "C vs A: l4_rr: latency_p99_ms same as in A (not significant, p = 1, n = 5 vs 5)" \
        in out
    assert "B vs A: l4_rr:" in out
    assert (f"C vs A: l7_rr: latency_p99_ms {5.1 / 5.0:.3g}× lower than in A "
            "(no test: n = 2 vs 1)") in out


def test_wide_table_is_not_cut_when_piped(tmp_path):
    dirs = [_run_with(tmp_path, f"a-very-long-results-folder-name-{i}", A) for i in range(3)]
    metrics = ["goodput_rps", "latency_p99_ms", "jain_backends", "latency_p99_9_ms"]
    argv = [sys.executable, "-c", "import sys; from experiments import compare; "
            "sys.exit(compare.main(sys.argv[1:]))", *dirs]
    for m in metrics:
        argv += ["--metric", m]
    env = dict(os.environ, COLUMNS="80")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert "…" not in proc.stdout
    for i in range(3):
        for m in metrics:
            assert f"a-very-long-results-folder-name-{i}: {m}" in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) > 80


def test_plot_draws_each_metric_and_a_ccdf_per_config_in_the_first_folders_colours(
        tmp_path, capsys):
    from experiments import figures, styles
    a = _run_with(tmp_path, "A", A)
    b = _run_with(tmp_path, "B", B)
    # A's styles.json (as its report wrote it) gives l7_rr the first slot
    figures.load_styles(a, ["l7_rr", "l4_rr"])
    out = str(tmp_path / "cmp")
    assert compare.main([a, b, "--plot", out, "--metric", "latency_p99_ms",
                         "--metric", "jain_backends"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith(out)]
    names = sorted(os.path.basename(p) for p in printed)
    assert names == sorted(f"{stem}.{ext}" for stem in (
        "compare-latency_p99_ms", "compare-jain_backends", "compare-ccdf-l4_rr",
        "compare-ccdf-l7_rr") for ext in ("png", "svg"))
    assert all(os.path.getsize(p) > 0 for p in printed)
    used = styles.mapping_of(report.load_json(os.path.join(out, "styles.json")))
    assert used["l7_rr"]["slot"] == 0 and used["l4_rr"]["slot"] == 1
    # with --json stdout stays JSON; the paths go to stderr
    assert compare.main([a, b, "--json", "--plot", out]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["baseline"] == "A"
    assert os.path.join(out, "compare-goodput_rps.png") in captured.err.splitlines()


def test_plot_dir_must_be_a_folder(tmp_path, run_dir):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        compare.main([run_dir, "--plot", str(tmp_path / "file")])
    with pytest.raises(UsageError, match="parent folder"):
        compare.main([run_dir, "--plot", str(tmp_path / "no" / "such")])


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_too_narrow_gets_letters_for_folders_and_cuts_nothing(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    labels = [f"a-very-long-results-folder-name-{i}" for i in range(3)]
    rows = [["config"] + [f"{label}: goodput_rps" for label in labels],
            ["l4_rr", "1234 [1200, 1300]", "20", "19.5"]]
    stream = _Terminal()
    compare._print_table(rows, stream, labels)
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())      # no colour codes
    for i, label in enumerate(labels):
        assert f"{'ABC'[i]} = {label}\n" in text
    assert "…" not in text and "1234 [1200, 1300]" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    # wide enough: the labels stay in the headers
    monkeypatch.setenv("COLUMNS", "200")
    stream = _Terminal()
    compare._print_table(rows, stream, labels)
    assert f"{labels[0]}: goodput_rps" in stream.getvalue() and " = " not in stream.getvalue()
