"""How a run records a fault (``Run._apply``): applied, failed (the run fails, naming the fault,
its time and why) or, when optional, skipped with the reason. The action itself is stubbed:
what each action does on a real lab is tests/emulation/test_faults.py's."""
import pytest

from experiments import runner
from experiments import spec as spec_mod
from experiments.run_faults import no_netem
from experiments.run_lab import Run, RunFailed

SPEC = """\
name: f
topology: {name: lb_lab, params: {clients: 1}}
backends: 2
balancers:
  - {name: px, layer: l7, engine: builtin}
workload: {type: http}
duration_s: 5
faults:
  - {at_s: 1, action: kill_backend, target: b1}
  - {at_s: 2, action: restore_backend, target: b1, optional: true}
  - {at_s: 3, action: link_delay, target: s1-h1, value: 20, optional: true}
"""


def make_run(tmp_path, text=SPEC):
    spec = spec_mod.loads_spec(text, "f.yaml")
    ((order, config, balancer, sweep, point, rep),) = runner.plan_runs(spec, "sequential")
    return spec, Run(point, balancer, config, rep, order, sweep, str(tmp_path / "run"), seed=1)


def test_an_applied_fault_is_recorded_with_its_times(tmp_path, monkeypatch):
    spec, run = make_run(tmp_path)
    monkeypatch.setattr(run, "_do_fault", lambda fault: None)
    run._apply(spec.faults[0], measure_start=0.0)
    (done,) = run.faults_done
    assert done["action"] == "kill_backend" and done["target"] == "b1"
    assert done["skipped"] is None and done["failed"] is None and not done["optional"]
    assert done["applied"] > 0 and done["took_s"] >= 0


@pytest.mark.parametrize("outcome", ["a reason", RunFailed("a reason"), OSError("a reason")])
def test_a_fault_that_cannot_be_applied_fails_the_run(tmp_path, monkeypatch, outcome):
    spec, run = make_run(tmp_path)

    def do(fault):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    monkeypatch.setattr(run, "_do_fault", do)
    with pytest.raises(RunFailed) as info:
        run._apply(spec.faults[0], measure_start=0.0)
    why = "OSError: a reason" if isinstance(outcome, OSError) else "a reason"
    assert str(info.value) == f"fault kill_backend b1 at 1 s could not be applied: {why}"
    (done,) = run.faults_done
    assert done["failed"] == why and done["skipped"] is None


def test_an_optional_fault_that_cannot_be_applied_is_skipped(tmp_path, monkeypatch):
    spec, run = make_run(tmp_path)
    monkeypatch.setattr(run, "_do_fault", lambda fault: "b1 is running")
    run._apply(spec.faults[1], measure_start=0.0)
    (done,) = run.faults_done
    assert done["optional"] and done["skipped"] == "b1 is running" and done["failed"] is None


def test_a_balancer_that_cannot_do_an_optional_fault_skips_it(tmp_path):
    text = SPEC.replace("  - {at_s: 1, action: kill_backend, target: b1}\n"
                        "  - {at_s: 2, action: restore_backend, target: b1, optional: true}\n",
                        "  - {at_s: 1, action: stop_controller, optional: true}\n")
    spec, run = make_run(tmp_path, text)
    run._apply(spec.faults[0], measure_start=0.0)
    (done,) = run.faults_done
    assert done["skipped"] == ("balancer 'px' cannot stop_controller: an L7 balancer has no "
                               "controller")


def test_netem_faults_are_checked_against_the_machine_before_the_lab(tmp_path, monkeypatch):
    from experiments import run_faults
    spec, run = make_run(tmp_path, SPEC.replace(", value: 20, optional: true}", ", value: 20}"))
    monkeypatch.setattr(run_faults.capabilities, "qdisc_available", lambda name: False)
    assert "netem" in no_netem("link_delay")
    assert run._faults_this_machine_cannot_do().startswith(
        "fault link_delay s1-h1 at 3 s cannot be applied on this machine: link_delay needs "
        "tc's netem qdisc")
    monkeypatch.setattr(run_faults.capabilities, "qdisc_available", lambda name: True)
    assert no_netem("link_delay") is None and run._faults_this_machine_cannot_do() is None
    # optional: left for run time, where it is skipped with the reason
    spec, run = make_run(tmp_path / "2")
    monkeypatch.setattr(run_faults.capabilities, "qdisc_available", lambda name: False)
    assert run._faults_this_machine_cannot_do() is None
