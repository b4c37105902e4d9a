"""An experiment end to end on real Open vSwitch and Mininet (root): lblab run on a tiny spec.

2 clients, 2 backends, one L4 (controller, reactive l4 mode) and one L7 (builtin proxy)
balancer, 5 s of closed-loop load, backend b2 killed 2 s into the measurement. No warm-up and no
calibration (neither is what this checks; test_model_twin covers the calibration): the load
starts once the balancer has both backends in its pool.
"""
import glob
import json
import os

import pytest

from experiments import report, runner
from lb_apps.records import read_records

SPEC = """\
name: tiny
question: Does a killed backend show in the records of an L4 and an L7 balancer?
seed: 3
topology: {name: lb_lab, params: {clients: 2}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 1}}
  - {name: b2, service: {dist: fixed, mean_ms: 1}}
balancers:
  - {name: l4_rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: l7_rr, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 4, think_ms: 2, keepalive: true}
warmup_s: 0
duration_s: 5
faults:
  - {at_s: 2, action: kill_backend, target: b2}
"""
KILL_GRACE_SEC = 0.2     # a response already on the wire when the process died


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("experiment")
    spec = base / "tiny.yaml"
    spec.write_text(SPEC)
    out = base / "results"
    assert runner.main([str(spec), "--out", str(out), "--quiet", "--no-calibration"]) == 0
    (run_dir,) = glob.glob(str(out / "tiny-*"))
    return run_dir


def test_results_folder_has_every_file(results):
    for name in ("manifest.json", "summary.csv", "summary.json", "report.html"):
        assert os.path.isfile(os.path.join(results, name)), name
    manifest = json.load(open(os.path.join(results, "manifest.json")))
    assert manifest["spec"]["name"] == "tiny" and manifest["seed"] == 3
    assert set(manifest["git"]) == {"commit", "dirty"}
    for key in ("kernel", "python", "openvswitch", "mininet", "os-ken", "haproxy", "nginx"):
        assert key in manifest["versions"]
    assert manifest["datapath"] in ("kernel", "netdev")
    assert manifest["start"] and manifest["end"] and manifest["cpus"] >= 1
    assert [r["status"] for r in manifest["runs"]] == ["ok", "ok"], manifest["runs"]
    for run in ("l4_rr-r1", "l7_rr-r1"):
        raw = os.path.join(results, "raw", run)
        for name in ("meta.json", "loadgen-h1.jsonl", "loadgen-h2.jsonl",
                     "backend-b1.jsonl", "backend-b2.jsonl"):
            assert os.path.isfile(os.path.join(raw, name)), (run, name)
    assert os.path.isfile(os.path.join(results, "raw", "l4_rr-r1", "stats-controller.json"))
    assert os.path.isfile(os.path.join(results, "raw", "l7_rr-r1", "stats-proxy.json"))
    for stem in ("throughput", "latency_ccdf", "backend_share", "fairness",
                 "timeseries-l4_rr", "timeseries-l7_rr", "latency_time-l4_rr"):
        for ext in ("png", "svg"):
            assert os.path.isfile(os.path.join(results, "plots", f"{stem}.{ext}")), stem


def test_request_counts_add_up(results):
    summary = json.load(open(os.path.join(results, "summary.json")))
    assert sorted(run["meta"]["run"] for run in summary["runs"]) == ["l4_rr-r1", "l7_rr-r1"]
    for run in summary["runs"]:
        m = run["metrics"]
        assert m["sent"] > 100, run["meta"]["run"]
        assert m["sent"] == m["ok"] + m["errors"]
        assert sum(m["backend_share"].values()) == pytest.approx(1.0)
        assert m["unattributed"] == 0


def test_report_renders(results):
    html = open(os.path.join(results, "report.html"), encoding="utf-8").read()
    for section in ("The question", "The setup", "Results", "Figures", "Fidelity warnings",
                    "Manifest"):
        assert f"<h2>{section}</h2>" in html
    assert "Does a killed backend show" in html
    assert html.count("data:image/png;base64,") >= 6
    # rebuilding from raw/ alone gives the same summary.csv
    before = open(os.path.join(results, "summary.csv"), "rb").read()
    report.build(results, plots=False)
    assert open(os.path.join(results, "summary.csv"), "rb").read() == before


@pytest.mark.parametrize("run", ["l4_rr-r1", "l7_rr-r1"])
def test_killed_backend_shows_in_the_records(results, run):
    raw = os.path.join(results, "raw", run)
    meta = json.load(open(os.path.join(raw, "meta.json")))
    # the load started once the controller / the proxy had both backends in its pool
    assert meta["pool_ready_s"] >= 0
    (fault,) = meta["faults"]
    assert fault["action"] == "kill_backend" and fault["skipped"] is None
    killed_at = fault["applied"]
    records = []
    for client in ("h1", "h2"):
        records += read_records(os.path.join(raw, f"loadgen-{client}.jsonl"), "loadgen")
    by_b2 = [r for r in records if r["backend"] == "b2" and r["status"] == 200]
    assert any(r["end"] < killed_at for r in by_b2), "b2 served nothing before the kill"
    late = [r for r in by_b2 if r["start"] > killed_at + KILL_GRACE_SEC]
    assert late == [], f"{len(late)} responses from b2 after it was killed"
    # b1 kept serving after the kill
    assert any(r["backend"] == "b1" and r["start"] > killed_at + 1.0 for r in records)
    # the backend's own records stop at the kill
    b2 = read_records(os.path.join(raw, "backend-b2.jsonl"), "backend")
    assert b2 and max(r["arrival"] for r in b2) < killed_at + KILL_GRACE_SEC
