"""The order of an experiment's runs: interleaved over repetitions, shuffled by a recorded seed."""
import argparse
import json
import os

import pytest

from experiments import runner
from experiments import spec as S

SPEC = """\
name: order
seed: 4
topology: {name: lb_lab, params: {clients: 2}}
backends: 2
balancers:
%s
workload: {type: http, mode: closed, users: 2}
repetitions: 3
warmup_s: 0
duration_s: 1
"""


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    # run_experiment takes the lab lock: this test's own, not the machine's
    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path / "state"))


def make_spec(n_balancers=2, overrides=()):
    lines = "\n".join(f"  - {{name: rr{i}, layer: l7, algorithm: round_robin}}"
                      for i in range(n_balancers))
    return S.loads_spec(SPEC % lines, "order.yaml", list(overrides))


def ids(runs):
    return [f"{r[1]}-r{r[5]}" for r in runs]


def test_sequential_keeps_the_old_order():
    runs = runner.plan_runs(make_spec(2), order="sequential")
    assert ids(runs) == ["rr0-r1", "rr0-r2", "rr0-r3", "rr1-r1", "rr1-r2", "rr1-r3"]


def test_interleaved_is_round_robin_over_repetitions():
    runs = runner.plan_runs(make_spec(2), order="interleaved")
    assert ids(runs) == ["rr0-r1", "rr1-r1", "rr0-r2", "rr1-r2", "rr0-r3", "rr1-r3"]


def test_default_is_shuffled_within_each_round():
    spec = make_spec(8)
    runs = runner.plan_runs(spec)
    configs = [f"rr{i}" for i in range(8)]
    rounds = [runs[i * 8:(i + 1) * 8] for i in range(3)]
    for rep, batch in enumerate(rounds, 1):
        assert [r[5] for r in batch] == [rep] * 8          # every r1 before any r2, …
        assert sorted(r[1] for r in batch) == configs       # each configuration once a round
    # shuffled: 8! orders per round, the three rounds are not all the configuration order
    assert any([r[1] for r in batch] != configs for batch in rounds)
    # the tuples are unchanged: order is the configuration's index, as meta.json has it
    assert all(r[0] == int(r[1][2:]) for r in runs)


def test_shuffle_is_reproducible_from_the_seed():
    spec = make_spec(8)
    default = runner.plan_runs(spec)
    assert ids(default) == ids(runner.plan_runs(spec))
    # the default order seed is the spec's seed
    assert ids(default) == ids(runner.plan_runs(spec, "shuffled", order_seed=spec.seed))
    assert ids(default) == ids(runner.order_runs(runner.plan_runs(spec, "sequential"),
                                                 "shuffled", spec.seed))
    # another spec seed, or an --order-seed, gives another order
    assert ids(default) != ids(runner.plan_runs(make_spec(8, ["seed=5"])))
    orders = {tuple(ids(runner.plan_runs(spec, order_seed=s))) for s in range(20)}
    assert len(orders) == 20


def test_order_runs_rejects_an_unknown_order():
    with pytest.raises(ValueError, match="expected one of shuffled, interleaved, sequential"):
        runner.order_runs([], "random")


def test_run_help_shows_the_order_options(capsys):
    with pytest.raises(SystemExit):
        runner.build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--order {shuffled,interleaved,sequential}" in out and "--order-seed N" in out
    args = runner.build_parser().parse_args(["x.yaml"])
    # not given: None, so --resume can tell; a new batch then runs the first of ORDERS
    assert args.order is None and args.order_seed is None and runner.ORDERS[0] == "shuffled"
    args = runner.build_parser().parse_args(["x.yaml", "--order", "sequential",
                                             "--order-seed", "7"])
    assert args.order == "sequential" and args.order_seed == 7
    for bad in ("-1", "4294967296", "x"):
        with pytest.raises(SystemExit):
            runner.build_parser().parse_args(["x.yaml", "--order-seed", bad])
    assert "--order-seed" in capsys.readouterr().err


class FakeRun:
    """Stands in for experiments.run_lab.Run: records the order it was executed in."""
    executed = []

    def __init__(self, point, balancer, config, rep, order, sweep, raw_dir, seed, log=None):
        self.name = f"{config}-r{rep}"
        self.raw_dir = raw_dir
        self.config_index = order

    def execute(self):
        FakeRun.executed.append((self.name, os.path.basename(self.raw_dir), self.config_index))
        return {"status": "ok", "failure": None}


class Say:
    def start(self, total, estimate): pass
    def run(self, i, name): pass
    def log(self, msg): pass
    def done(self, meta): pass
    def stop(self): pass


@pytest.mark.parametrize("order,order_seed", [("shuffled", None), ("shuffled", 99),
                                              ("sequential", None)])
def test_manifest_records_the_order_run(tmp_path, monkeypatch, order, order_seed):
    from experiments import run_lab
    monkeypatch.setattr(run_lab, "Run", FakeRun)
    FakeRun.executed = []
    spec = make_spec(4)
    args = argparse.Namespace(overrides=[], repetitions=None, order=order, order_seed=order_seed)
    runner.run_experiment(spec, str(tmp_path), args, Say())
    man = json.load(open(tmp_path / "manifest.json"))
    executed = [name for name, _, _ in FakeRun.executed]
    # results folders keep their names: raw/<config>-r<rep>
    assert all(name == folder for name, folder, _ in FakeRun.executed)
    assert man["order"]["mode"] == order
    assert man["order"]["seed"] == (spec.seed if order_seed is None else order_seed)
    assert man["order"]["seed_from"] == ("spec seed" if order_seed is None else "--order-seed")
    assert man["order"]["runs"] == executed == [r["run"] for r in man["runs"]]
    assert executed == ids(runner.plan_runs(spec, order, man["order"]["seed"]))
    if order == "sequential":
        assert executed[:3] == ["rr0-r1", "rr0-r2", "rr0-r3"]
    else:
        assert sorted(executed[:4]) == ["rr0-r1", "rr1-r1", "rr2-r1", "rr3-r1"]
