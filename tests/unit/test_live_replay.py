"""The replay's source against committed results folders: the same numbers as the tables.

``tests/unit/fixtures/run_tiny`` (records only, no telemetry) with its committed
``run_tiny_runs.csv`` and ``run_tiny_summary.csv`` (what ``lblab report`` wrote for it), and
``tests/unit/fixtures/live_run`` (the folder tests/emulation/test_telemetry.py made here: its
spec, an L4 and an L7 run with b2 drained, each run's meta.json, load generator records and
telemetry.jsonl, and the runs.csv and summary.csv ``lblab run`` wrote from the whole folder).
"""
import csv
import os
import shutil

import pytest

from experiments.live import replay
from lblab_core.errors import UsageError

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = os.path.join(FIX, "run_tiny")
LIVE = os.path.join(FIX, "live_run")


def rows(path, key):
    with open(path, newline="", encoding="utf-8") as fp:
        return {r[key]: r for r in csv.DictReader(fp)}


def number(text):
    return None if text in ("", None) else float(text)


def folders():
    out = [(TINY, os.path.join(FIX, "run_tiny_runs.csv"),
            os.path.join(FIX, "run_tiny_summary.csv"))]
    if os.path.isdir(LIVE):
        out.append((LIVE, os.path.join(LIVE, "runs.csv"), os.path.join(LIVE, "summary.csv")))
    return out


@pytest.mark.parametrize("folder,runs_csv,summary_csv", folders())
def test_summary_of_every_run_equals_runs_csv(folder, runs_csv, summary_csv):
    source = replay.Replay(folder)
    table = rows(runs_csv, "run")
    assert [r["run"] for r in source.runs()] == list(table)
    for name, row in table.items():
        got = source.summary(name)
        backends = [c[len("requests_"):] for c in row if c.startswith("requests_")]
        assert got["requests"] == {b: int(row[f"requests_{b}"]) for b in backends}
        assert got["total"] == int(row["ok"])
        assert got["latency_ms"]["p50"] == pytest.approx(number(row["latency_p50_ms"]))
        assert got["latency_ms"]["p99"] == pytest.approx(number(row["latency_p99_ms"]))
        assert got["throughput_rps"] == pytest.approx(number(row["throughput_rps"]))
        assert sum(got["errors"].values()) == int(row["errors"])


@pytest.mark.parametrize("folder,runs_csv,summary_csv", folders())
def test_config_means_equal_summary_csv(folder, runs_csv, summary_csv):
    source = replay.Replay(folder)
    for config, row in rows(summary_csv, "config").items():
        name = next(r["run"] for r in source.runs() if r["config"] == config)
        mean = source.summary(name)["config_mean"]
        assert mean["n"] == int(row["ok_runs"])
        assert mean["latency_ms"]["p50"] == pytest.approx(number(row["latency_p50_ms_mean"]))
        assert mean["latency_ms"]["p99"] == pytest.approx(number(row["latency_p99_ms_mean"]))
        assert mean["ok"] == pytest.approx(number(row["ok_mean"]))
        for b, share in mean["share"].items():
            assert share == pytest.approx(number(row[f"share_{b}_mean"]))


@pytest.mark.parametrize("folder,runs_csv,summary_csv", folders())
def test_frames_count_every_request_by_the_end(folder, runs_csv, summary_csv):
    """The frames count every request a backend answered (warm-up and drain included): at
    least the window's count, and the last frame says the run is done."""
    source = replay.Replay(folder)
    for name, row in rows(runs_csv, "run").items():
        frames = source.frames(name)
        assert frames and frames[-1]["run"]["phase"] == "done"
        times = [f["t"] for f in frames]
        assert times == sorted(times)
        last = frames[-1]["backends"]
        for b in last:
            assert last[b]["requests"] >= int(row[f"requests_{b}"])
        assert any(f["total_rps"] > 0 for f in frames)
        assert source.frames(name) is frames          # computed once


def test_a_run_with_telemetry_gives_link_rates_and_its_layer():
    if not os.path.isdir(LIVE):
        pytest.skip("no live_run fixture")
    source = replay.Replay(LIVE)
    for run in source.runs():
        frames = source.frames(run["run"])
        assert any(link["fwd_bps"] > 0 for f in frames for link in f["links"])
        if run["balancer"]["layer"] == "l4":
            assert any(sum(f["l4"]["flows"].values()) > 0 for f in frames)
            assert any(f["l4"]["packet_ins"] is not None for f in frames)
        else:
            assert any(f["l7"]["health"] for f in frames)


def test_a_folder_without_telemetry_replays_from_the_records():
    samples, end = replay.read_telemetry(os.path.join(TINY, "raw", "l4_rr-r1",
                                                      "telemetry.jsonl"))
    assert samples == [] and end is None
    frames = replay.Replay(TINY).frames("l4_rr-r1")
    assert all(f["links"] == [] for f in frames)


def test_bad_folders_and_runs_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no raw/ folder"):
        replay.Replay(str(tmp_path))
    (tmp_path / "raw").mkdir()
    with pytest.raises(UsageError):
        replay.Replay(str(tmp_path))
    source = replay.Replay(TINY)
    with pytest.raises(LookupError, match="run=zz: no such run; expected one of l4_rr-r1"):
        source.frames("zz")


def test_a_truncated_telemetry_file_is_read_up_to_the_broken_line(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    path.write_text('{"kind":"sample","t":1}\n{"kind":"sample","t":2}\n{"kind":"sam')
    samples, end = replay.read_telemetry(str(path))
    assert [s["t"] for s in samples] == [1, 2] and end is None


def test_view_needs_no_root_and_reads_a_copy(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(TINY, copy)
    assert replay.Replay(str(copy)).summary("l7_rr-r2")["run"] == "l7_rr-r2"
