"""experiments.calibration: the paths a batch measures, the calibration labs' spec, the
per-request figures, and what the model takes from the manifest."""
import pytest

from experiments import calibration as C
from experiments import runner
from experiments import spec as spec_mod

ALGORITHMS = "experiments/specs/algorithms.yaml"


def test_one_path_per_data_path_not_per_algorithm():
    spec = spec_mod.load_spec(ALGORITHMS)
    paths, of = C.plan_paths(spec)
    assert [k for k, _ in paths] == ["l7/builtin", "l4/l4", "l4/group", "l4/proactive"]
    assert of["round_robin"] == of["power_of_two"] == "l7/builtin"
    assert of["l4_least_conn"] == "l4/l4"
    assert C.estimate_s(spec) == pytest.approx(
        4 * (C.CAL_WARMUP_S + C.CAL_DURATION_S + C.SETUP_SEC) + C.CAL_WARMUP_S
        + C.CAL_DURATION_S)


@pytest.mark.parametrize("name", ["algorithms", "quickstart", "l4_vs_l7", "failover",
                                  "content_routing", "batch_demo"])
def test_calibration_labs_are_valid_low_load_specs(name):
    spec = spec_mod.load_spec(f"experiments/specs/{name}.yaml")
    for key, balancer in C.plan_paths(spec)[0]:
        cal = spec_mod.parse_spec(C.calibration_data(spec, balancer), "cal")
        assert [b.name for b in cal.balancers] == [balancer.name]
        assert cal.workload.mode == "open" and cal.workload.rate == C.CAL_RATE
        assert cal.workload.keepalive == spec.workload.keepalive
        assert all(b.service.mean_ms == 0 and b.error_rate == 0 for b in cal.backends)
        assert [b.name for b in cal.backends] == [b.name for b in spec.backends]
        assert not cal.faults and cal.sweep is None and cal.repetitions == 1


def _rec(lat, warmup=False, error=None):
    return {"scheduled": 10.0, "end": 10.0 + lat, "status": 200 if error is None else None,
            "error": error, "warmup": warmup}


def test_overhead_stats_count_measured_ok_requests_only():
    records = [_rec(0.001), _rec(0.003), _rec(0.002), _rec(0.5, warmup=True),
               _rec(0.9, error="timeout")]
    stats = C.overhead_stats(records)
    assert stats["n"] == 3
    assert stats["mean_ms"] == pytest.approx(2.0)
    assert stats["sd_ms"] == pytest.approx(1.0)
    assert stats["p50_ms"] == pytest.approx(2.0) and stats["p99_ms"] == pytest.approx(3.0)
    assert C.overhead_stats([])["mean_ms"] is None


def test_the_model_takes_each_balancers_path_mean():
    cal = {"skipped": False, "balancers": {"a": "l7/builtin", "b": "l4/l4", "c": "l4/group"},
           "paths": {"l7/builtin": {"mean_ms": 1.5}, "l4/l4": {"mean_ms": None},
                     C.DIRECT: {"mean_ms": 0.4}}}
    assert C.overheads_ms(cal, ["a", "b", "c"]) == {"a": 1.5}
    assert C.overheads_ms(C.skipped("--no-calibration"), ["a"]) == {}
    assert C.overheads_ms(None, ["a"]) == {}


def test_run_has_no_calibration_flag():
    args = runner.build_parser().parse_args(["x.yaml", "--no-calibration"])
    assert args.no_calibration is True
    assert runner.build_parser().parse_args(["x.yaml"]).no_calibration is False


SPEC = """\
name: cal
seed: 2
topology: {name: lb_lab, params: {clients: 2, backends: 2}}
backends: [{name: b1}, {name: b2}]
balancers:
  - {name: a, layer: l7, engine: builtin, algorithm: round_robin}
  - {name: b, layer: l7, engine: builtin, algorithm: random}
workload: {type: http, mode: open, rate: 20}
warmup_s: 1
duration_s: 2
"""


class _Say:
    def __init__(self):
        self.lines = []

    def start(self, total, estimate): pass
    def run(self, i, name): pass
    def log(self, msg): self.lines.append(msg)
    def done(self, meta): pass
    def stop(self): pass


class _Run:
    """A stand-in for experiments.run_lab.Run: an ok run without a lab."""
    def __init__(self, spec, balancer, config, rep, order, sweep, raw_dir, seed, log=None,
                 on_ready=None):
        self.dir, self.config, self.rep = raw_dir, config, rep

    def execute(self):
        import json
        import os
        os.makedirs(self.dir)
        meta = {"v": 2, "run": f"{self.config}-r{self.rep}", "status": "ok", "failure": None}
        with open(os.path.join(self.dir, "meta.json"), "w") as fp:
            json.dump(meta, fp)
        return meta


@pytest.mark.parametrize("skip", [False, True])
def test_the_batch_calibrates_first_under_the_lock_unless_told_not_to(tmp_path, monkeypatch,
                                                                       skip):
    import argparse
    import json
    from experiments import report, run_lab
    from topologies import registry

    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(run_lab, "Run", _Run)
    monkeypatch.setattr(report, "build", lambda d: {"report": "r.html"})
    calls = []

    def fake_calibrate(spec, results_dir, log):
        assert registry.held_here()              # inside the batch's hold of the lab lock
        calls.append(spec.name)
        return {"skipped": False, "paths": {"l7/builtin": {"mean_ms": 1.0}},
                "balancers": {"a": "l7/builtin", "b": "l7/builtin"}}

    monkeypatch.setattr(C, "calibrate", fake_calibrate)
    src = tmp_path / "cal.yaml"
    src.write_text(SPEC)
    args = argparse.Namespace(overrides=[], repetitions=None, order=None, order_seed=None,
                              no_calibration=skip)
    spec, raw = runner.read_spec(str(src))
    results = runner.make_results_dir(str(tmp_path / "results"), spec.name)
    say = _Say()
    runner.run_experiment(spec, results, args, say, raw)
    with open(f"{results}/manifest.json") as fp:
        man = json.load(fp)
    if skip:
        assert calls == [] and man["calibration"] == C.skipped("--no-calibration")
    else:
        assert calls == ["cal"] and man["calibration"]["paths"]["l7/builtin"]["mean_ms"] == 1.0
        assert any(line.startswith("calibration: ") and "req/s (~" in line
                   for line in say.lines)


def test_a_calibration_lab_that_cannot_start_is_recorded_not_raised(tmp_path, monkeypatch):
    from experiments import run_lab

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("no lab here")
    monkeypatch.setattr(run_lab, "Run", Broken)
    spec = spec_mod.loads_spec(SPEC, "cal.yaml")
    cal = C.calibrate(spec, str(tmp_path), lambda msg: None)
    assert cal["paths"]["l7/builtin"]["status"] == "failed"
    assert "no lab here" in cal["paths"]["l7/builtin"]["failure"]
    assert C.overheads_ms(cal, ["a", "b"]) == {}
