"""``lblab run --resume DIR --live``: the resumed runs are served live (no lab: the resume is
a stand-in that reads the page's API while it "runs")."""
import json
import urllib.request

from experiments import runner
from experiments.live import hub as live_hub
from lblab_core.netutil import free_port
from tests.unit.test_resume import FakeRun, Say, fake, start_batch  # noqa: F401 (fixture)


def test_resume_with_live_serves_the_hub_to_the_resumed_batch(monkeypatch, tmp_path):
    port = free_port()
    seen = {}

    def fake_resume(results_dir, say, now=None, machine_check=None, live=None):
        seen["dir"], seen["hub"] = results_dir, live
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/run", timeout=5) as resp:
            seen["answer"] = json.loads(resp.read())
        return {"metas": [], "report": "r"}

    monkeypatch.setattr(runner, "resume_experiment", fake_resume)
    monkeypatch.setattr(runner, "finish", lambda args, result, results_dir: 0)
    assert runner.main(["--resume", str(tmp_path), "--live", f"127.0.0.1:{port}",
                        "--quiet"]) == 0
    assert seen["dir"] == str(tmp_path) and isinstance(seen["hub"], live_hub.Hub)
    assert seen["answer"]["mode"] == "live"


def test_resume_without_live_passes_no_hub(monkeypatch, tmp_path):
    seen = {}

    def fake_resume(results_dir, say, now=None, machine_check=None, live=None):
        seen["hub"] = live
        return {"metas": [], "report": "r"}

    monkeypatch.setattr(runner, "resume_experiment", fake_resume)
    monkeypatch.setattr(runner, "finish", lambda args, result, results_dir: 0)
    assert runner.main(["--resume", str(tmp_path), "--quiet"]) == 0
    assert seen == {"hub": None}


def test_the_hub_plans_the_runs_the_resume_runs(tmp_path, fake):
    import pytest

    from experiments import run_plan as plan
    spec, raw, args, results = start_batch(tmp_path)
    planned = [plan.run_name(r[1], r[5]) for r in runner.plan_runs(spec)]
    FakeRun.interrupt_at = planned[2]
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(spec, results, args, Say(), raw)
    FakeRun.executed, FakeRun.interrupt_at = [], None
    hub = live_hub.Hub()
    runner.resume_experiment(results, Say(), machine_check=lambda: None, live=hub)
    assert hub.planned == FakeRun.executed == planned[2:]
