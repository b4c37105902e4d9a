"""``lblab run`` end to end on real Open vSwitch and Mininet (root): a batch, an engine, Ctrl-C.

* A batch of an HAProxy balancer over a sweep of 2 points x 2 repetitions, through
  ``experiments.runner.main``: the manifest lists every run in its order and status, each run
  has its raw folder (records of both sides, the engine's config), and the summary and report
  are built from them.
* ``lblab run`` as a subprocess, interrupted by Ctrl-C (SIGINT to its process group, as a
  terminal sends it) while its first run's load is going: it exits with 130 within a bound
  that only catches a hang, writes the manifest with ``interrupted: true`` and a partial
  report, and leaves nothing behind — no lblab bridge, no interface, no registry record and no
  process that was not there before.

Both with ``--no-calibration``: the calibration is not what they check (test_model_twin does).
"""
import csv
import glob
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from experiments import run_plan as plan
from experiments import runner
from experiments import spec as spec_mod
from lb_apps.records import read_records
from tests.conftest import wait_for
from topologies import registry

BATCH_SPEC = """\
name: batch
seed: 9
topology: {name: lb_lab, params: {clients: 1}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 1}}
  - {name: b2, service: {dist: fixed, mean_ms: 1}}
balancers:
  - {name: hap, layer: l7, engine: haproxy, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: true}
sweep: {param: workload.users, values: [1, 3]}
repetitions: 2
warmup_s: 0.5
duration_s: 1.5
"""

# Long enough that Ctrl-C lands inside the first run's load.
INTERRUPTED_SPEC = """\
name: stopped
seed: 10
topology: {name: lb_lab, params: {clients: 1}}
backends: 2
balancers:
  - {name: px, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: true}
repetitions: 2
warmup_s: 0.5
duration_s: 30
"""
# Bounds that only catch a hang: the load starting, and lblab exiting after Ctrl-C.
LOAD_START_SEC = 60.0
EXIT_SEC = 60.0


# -- a batch with a sweep, repetitions and an engine --------------------------------------------

@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    path = base / "batch.yaml"
    path.write_text(BATCH_SPEC)
    out = base / "results"
    status = runner.main([str(path), "--out", str(out), "--quiet", "--no-calibration"])
    (results,) = glob.glob(str(out / "batch-*"))
    spec = spec_mod.loads_spec(BATCH_SPEC, "batch.yaml")
    names = sorted(plan.run_name(r[1], r[5]) for r in runner.plan_runs(spec, "sequential"))
    return status, results, names


def test_batch_manifest_lists_every_run(batch):
    status, results, names = batch
    assert status == 0
    assert len(names) == 4          # 2 sweep points x 2 repetitions, one balancer
    man = json.load(open(os.path.join(results, "manifest.json")))
    assert sorted(man["order"]["runs"]) == names
    assert sorted(r["run"] for r in man["runs"]) == names
    assert all(r["status"] == "ok" for r in man["runs"]), man["runs"]
    assert not man.get("interrupted")


def test_batch_raw_folders_hold_both_sides_records_and_the_engine(batch):
    _, results, names = batch
    assert sorted(os.listdir(os.path.join(results, "raw"))) == names
    users = set()
    for name in names:
        raw = os.path.join(results, "raw", name)
        meta = json.load(open(os.path.join(raw, "meta.json")))
        assert meta["status"] == "ok" and meta["balancer"]["engine"] == "haproxy"
        assert glob.glob(os.path.join(raw, "haproxy", "*.cfg")), os.listdir(raw)
        records = []
        for client in meta["clients"]:
            records += read_records(os.path.join(raw, f"loadgen-{client}.jsonl"), "loadgen")
            users.add(json.load(open(os.path.join(raw, f"loadgen-{client}.json")))["users"])
        served = {r["backend"] for r in records if r["status"] == 200}
        assert served == {"b1", "b2"}, (name, served)
        for backend in ("b1", "b2"):
            assert read_records(os.path.join(raw, f"backend-{backend}.jsonl"), "backend")
    assert users == {1, 3}          # the sweep reached the load generators


def test_batch_summary_and_report_are_built(batch):
    _, results, names = batch
    summary = json.load(open(os.path.join(results, "summary.json")))
    assert sorted(r["meta"]["run"] for r in summary["runs"]) == names
    for run in summary["runs"]:
        m = run["metrics"]
        assert m["sent"] > 0 and m["sent"] == m["ok"] + m["errors"]
    # one row per configuration (sweep point), over its 2 repetitions
    with open(os.path.join(results, "summary.csv"), newline="") as fp:
        rows = {row["config"]: row for row in csv.DictReader(fp)}
    assert sorted(rows) == sorted({name.rsplit("-r", 1)[0] for name in names})
    assert all(row["runs"] == "2" and row["failed_runs"] == "0" for row in rows.values())
    html = open(os.path.join(results, "report.html"), encoding="utf-8").read()
    assert "workload.users" in html and "haproxy" in html


# -- Ctrl-C --------------------------------------------------------------------------------------

def leftovers():
    """What lblab can leave on this machine: tagged bridges, root-namespace interfaces,
    registry records, Mininet host shells."""
    runs = os.path.join(registry.state_dir(), "runs")
    shells = {p.pid for p in psutil.process_iter(["cmdline"])
              if any("mininet:" in part for part in p.info["cmdline"] or ())}
    return {"bridges": set(registry.tagged_bridges()), "links": registry.existing_links(),
            "records": set(os.listdir(runs)), "shells": shells}


def processes_naming(path):
    """Processes whose command line mentions ``path`` (everything a run starts does)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if any(path in part for part in p.info["cmdline"] or ()):
            found.append((p.info["pid"], " ".join(p.info["cmdline"])))
    return found


def test_ctrl_c_stops_promptly_with_a_partial_report_and_leaves_nothing(tmp_path):
    path = tmp_path / "stopped.yaml"
    path.write_text(INTERRUPTED_SPEC)
    out = tmp_path / "results"
    before = leftovers()
    lblab = os.path.join(os.path.dirname(sys.executable), "lblab")
    proc = subprocess.Popen([lblab, "run", str(path), "--out", str(out), "--quiet",
                             "--no-calibration"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        def load_running():
            return any(os.path.getsize(f) > 0
                       for f in glob.glob(str(out / "stopped-*" / "raw" / "*" / "loadgen-*.jsonl")))
        wait_for(lambda: load_running() or proc.poll() is not None, "the first run's load",
                 LOAD_START_SEC)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=EXIT_SEC)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    (results,) = glob.glob(str(out / "stopped-*"))
    man = json.load(open(os.path.join(results, "manifest.json")))
    assert man["interrupted"] is True
    (run,) = man["runs"]
    assert run["status"] == "failed" and "interrupted" in run["failure"]
    meta = json.load(open(os.path.join(results, "raw", run["run"], "meta.json")))
    assert meta["status"] == "failed" and "interrupted" in meta["failure"]
    assert os.path.isfile(os.path.join(results, "report.html"))
    assert "partial report" in stderr
    # nothing left behind
    after = leftovers()
    for key in ("bridges", "links", "records", "shells"):
        assert after[key] - before[key] == set(), (key, after[key] - before[key])
    assert processes_naming(str(tmp_path)) == []
