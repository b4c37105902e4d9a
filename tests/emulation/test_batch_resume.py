"""A batch interrupted and resumed on real Open vSwitch and Mininet (root).

A 2-run batch (one L7 balancer, 2 repetitions, 1 s measured) gets Ctrl-C inside its second
run: the real Run's ``on_ready`` raises KeyboardInterrupt once the lab is up, as a Ctrl-C
there would. ``lblab run --resume`` then keeps the first run, moves the interrupted attempt
aside and completes the batch; the report covers both runs. The batch holds the lab lock
from its first run to its last.
"""
import glob
import json
import os

import pytest

from experiments import run_lab, runner
from topologies import registry

SPEC = """\
# kept byte for byte in the results folder
name: resumed
seed: 5
topology: {name: lb_lab, params: {clients: 1}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 1}}
balancers:
  - {name: l7_rr, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: true}
repetitions: 2
warmup_s: 0
duration_s: 1
"""


REAL_RUN = run_lab.Run


class CtrlCInSecondRun(run_lab.Run):
    """The real Run; the second one is interrupted once its lab is up."""
    started = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        CtrlCInSecondRun.started.append((self.rep, registry.held_here()))
        if len(CtrlCInSecondRun.started) == 2:
            self.on_ready = self._interrupt

    def _interrupt(self, meta):
        raise KeyboardInterrupt


def test_interrupted_batch_resumes_to_a_complete_report(tmp_path, monkeypatch):
    spec_path = tmp_path / "resumed.yaml"
    spec_path.write_text(SPEC)
    out = tmp_path / "results"
    monkeypatch.setattr(run_lab, "Run", CtrlCInSecondRun)
    with pytest.raises(KeyboardInterrupt):
        runner.main([str(spec_path), "--out", str(out), "--quiet", "--no-calibration"])
    assert not registry.held_here()
    (results,) = glob.glob(str(out / "resumed-*"))
    man = json.load(open(os.path.join(results, "manifest.json")))
    first, second = man["order"]["runs"]
    assert man["interrupted"] and [r["status"] for r in man["runs"]] == ["ok", "failed"]
    # the batch held the lab lock when each run started
    assert [held for _, held in CtrlCInSecondRun.started] == [True, True]
    assert open(os.path.join(results, "spec.yaml")).read() == SPEC

    monkeypatch.setattr(run_lab, "Run", REAL_RUN)
    assert runner.main(["--resume", results, "--quiet"]) == 0
    man = json.load(open(os.path.join(results, "manifest.json")))
    (resume,) = man["resumes"]
    assert resume["runs"] == [second] and resume["kept"] == 1
    assert resume["moved"] == {second: f"raw-attempts/{second}-a1"}
    attempt = json.load(open(os.path.join(results, "raw-attempts", f"{second}-a1",
                                          "meta.json")))
    assert attempt["failure"] == "interrupted (Ctrl-C)"
    for run in (first, second):
        meta = json.load(open(os.path.join(results, "raw", run, "meta.json")))
        assert meta["status"] == "ok" and meta["v"] == 2 and meta["sweep"] is None
    summary = json.load(open(os.path.join(results, "summary.json")))
    assert sorted(r["meta"]["run"] for r in summary["runs"]) == sorted([first, second])
    assert os.path.isfile(os.path.join(results, "report.html"))
