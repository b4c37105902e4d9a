"""Sweeps over several parameters: product, zip, the one-parameter shorthand, their errors,
config ids, and the run order and meta.json's sweep of a swept batch."""
import itertools

import pytest

from experiments import runner
from experiments import spec as S
from experiments.spec_models import MAX_RUNS, MAX_SWEEP_POINTS

BASE = """\
name: sw
seed: 3
topology: {name: lb_lab, params: {clients: 2}}
backends:
  - {capacity: 1}
  - {capacity: 2}
balancers:
  - {name: l4_rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: l7_rr, layer: l7, algorithm: round_robin}
workload: {type: http, mode: open, rate: 50, users: 4}
repetitions: 2
duration_s: 1
"""


def load(sweep, overrides=()):
    return S.loads_spec(BASE + sweep, "sw.yaml", list(overrides))


def errors_of(sweep, overrides=()):
    with pytest.raises(S.SpecError) as info:
        load(sweep, overrides)
    return info.value.errors


def test_product_is_every_combination_first_parameter_slowest():
    spec = load("sweep:\n  product: {workload.rate: [100, 200], backends.0.capacity: [1, 2, 3]}\n")
    points = S.points(spec)
    assert points == [(("workload.rate", r), ("backends.0.capacity", c))
                      for r, c in itertools.product([100, 200], [1, 2, 3])]
    configs = S.configurations(spec)
    assert len(configs) == 2 * 6
    assert [c[0] for c in configs[:3]] == ["l4_rr-rate=100-capacity=1", "l4_rr-rate=100-capacity=2",
                                           "l4_rr-rate=100-capacity=3"]
    # each configuration's spec is the base spec with the point's values and no sweep
    _, balancer, point, point_spec = configs[7]
    assert balancer.name == "l7_rr" and point == (("workload.rate", 100),
                                                  ("backends.0.capacity", 2))
    assert point_spec.workload.rate == 100 and point_spec.backends[0].capacity == 2
    assert point_spec.backends[1].capacity == 2 and point_spec.sweep is None


def test_zip_moves_parameters_together():
    spec = load("sweep:\n  zip: {workload.users: [4, 8, 16], workload.rate: [10, 20, 40]}\n")
    assert S.points(spec) == [(("workload.users", u), ("workload.rate", r))
                              for u, r in [(4, 10), (8, 20), (16, 40)]]
    assert [c[0] for c in S.configurations(spec)][:3] == [
        "l4_rr-users=4-rate=10", "l4_rr-users=8-rate=20", "l4_rr-users=16-rate=40"]


def test_product_times_zipped_tuples():
    spec = load("sweep:\n  product: {backends.1.capacity: [2, 4]}\n"
                "  zip: {workload.users: [4, 8], workload.rate: [10, 20]}\n")
    assert S.points(spec) == [
        (("backends.1.capacity", c), ("workload.users", u), ("workload.rate", r))
        for c in (2, 4) for u, r in [(4, 10), (8, 20)]]
    ids = [c[0] for c in S.configurations(spec)]
    assert len(ids) == len(set(ids)) == 2 * 4
    assert ids[1] == "l4_rr-capacity=2-users=8-rate=20"


def test_the_shorthand_is_one_parameter():
    spec = load("sweep: {param: workload.rate, values: [10, 20]}\n")
    assert S.points(spec) == [(("workload.rate", 10),), (("workload.rate", 20),)]
    assert [c[0] for c in S.configurations(spec)] == [
        "l4_rr-rate=10", "l4_rr-rate=20", "l7_rr-rate=10", "l7_rr-rate=20"]
    assert S.points(load("")) == [()]
    assert [c[0] for c in S.configurations(load(""))] == ["l4_rr", "l7_rr"]


def test_labels_are_the_shortest_tail_that_tells_parameters_apart():
    spec = load("sweep:\n  product: {backends.0.capacity: [1, 2], backends.1.capacity: [3]}\n")
    assert [c[0] for c in S.configurations(spec)][:2] == [
        "l4_rr-0.capacity=1-1.capacity=3", "l4_rr-0.capacity=2-1.capacity=3"]
    # a list or mapping value is named by its position in its list
    spec = load("sweep:\n  product: {topology.params: [{clients: 2}, {clients: 3}]}\n")
    assert [c[0] for c in S.configurations(spec)][:2] == ["l4_rr-params=v1", "l4_rr-params=v2"]


def test_a_bad_point_names_its_values_once():
    (err,) = errors_of("sweep:\n  product: {workload.rate: [100, 200], "
                       "backends.0.capacity: [1, 0]}\n")
    assert err.startswith("sw.yaml:13: sweep: with workload.rate = 100, backends.0.capacity = 0: "
                          "backends[0].capacity: 0: expected a number >= 1")
    (err,) = errors_of("sweep: {param: workload.rate, values: [10, -1]}\n")
    assert err.startswith("sw.yaml:13: sweep.values[1]: with workload.rate = -1: workload.rate:")


@pytest.mark.parametrize("sweep,expected", [
    ("sweep:\n  zip: {workload.users: [4, 8], workload.rate: [10]}\n",
     "sw.yaml:14: sweep.zip: zipped parameters move together and need lists of equal length, "
     "got workload.users: 2, workload.rate: 1"),
    ("sweep:\n  product: {workload.users: [4, 8]}\n  zip: {workload.users: [4, 8]}\n",
     "sw.yaml:15: sweep.zip.workload.users: workload.users is in product too; sweep a "
     "parameter once"),
    ("sweep:\n  product: {workload: [{type: http}], workload.users: [4]}\n",
     "sw.yaml:14: sweep.product.workload.users: 'workload.users' and 'workload' set the same "
     "value; sweep it once"),
    ("sweep:\n  product: {balancers.0.algorithm: [random]}\n",
     "sw.yaml:14: sweep.product.balancers.0.algorithm: cannot sweep 'balancers.0.algorithm'"),
    ("sweep:\n  zip: {repetitions: [1, 3]}\n",
     "sw.yaml:14: sweep.zip.repetitions: cannot sweep 'repetitions'; every point runs the "
     "batch's repetitions: sweep a workload, backend or topology parameter"),
    ("sweep: {param: seed, values: [1, 2]}\n",
     "sw.yaml:13: sweep.param: cannot sweep 'seed'; each repetition already gets its own seed"),
    ("sweep:\n  product: {workload.users: [4, 4]}\n",
     "sw.yaml:14: sweep.product.workload.users: values must be distinct"),
    ("sweep:\n  product: {question: [a/b, a_b]}\n",
     "sw.yaml:13: sweep: points question = 'a/b' and question = 'a_b' have the same run folder "
     "name 'question=a_b'"),
    ("sweep: {param: workload.users}\n",
     "sw.yaml:13: sweep.values: is required with param"),
    ("sweep: {param: workload.users, values: [1], zip: {workload.rate: [1]}}\n",
     "sw.yaml:13: sweep.param: param/values sweeps one parameter; with product or zip, put it "
     "into product"),
    ("sweep: {}\n", "sw.yaml:13: sweep: expected param/values, product or zip"),
    ("sweep:\n  product: {workload..users: [4]}\n",
     "sw.yaml:14: sweep.product.workload..users: malformed key path 'workload..users'"),
])
def test_sweep_errors_are_one_clear_line(sweep, expected):
    (err,) = errors_of(sweep)
    assert err.startswith(expected), err


def test_points_and_runs_are_capped():
    n = MAX_SWEEP_POINTS // 10 + 1
    (err,) = errors_of("sweep:\n  product: {workload.users: %s, workload.rate: %s}\n"
                       % (list(range(1, 11)), list(range(1, n + 1))))
    assert f"sweep: {10 * n} sweep points: expected at most {MAX_SWEEP_POINTS}" in err
    # balancers x points x repetitions: the total runs are capped
    ten = list(range(1, 11))
    sweep = "sweep:\n  product: {workload.users: %s, workload.rate: %s}\n" % (ten, ten)
    reps = MAX_RUNS // (2 * 100) + 1
    (err,) = errors_of(sweep, [f"repetitions={reps}"])
    assert err.startswith(f"sw.yaml (--set repetitions): repetitions: {reps}: 2 balancers x "
                          f"100 sweep point(s) x {reps} repetitions = {200 * reps} runs: "
                          f"expected at most {MAX_RUNS}"), err
    assert load(sweep, [f"repetitions={reps - 1}"])


def test_run_order_with_a_sweep_keeps_every_configuration_once_a_round():
    spec = load("sweep:\n  product: {workload.rate: [10, 20]}\n"
                "  zip: {workload.users: [4, 8], workload.timeout_s: [1, 2]}\n")
    configs = [c[0] for c in S.configurations(spec)]
    assert len(configs) == 2 * 4
    for order in runner.ORDERS:
        runs = runner.plan_runs(spec, order)
        assert len(runs) == len(configs) * spec.repetitions
        assert sorted((r[1], r[5]) for r in runs) == sorted(
            (c, rep) for c in configs for rep in (1, 2))
        if order != "sequential":
            assert [r[5] for r in runs] == [1] * len(configs) + [2] * len(configs)
    # order is the configuration's index; sweep is meta.json's list in spec order
    for index, config, balancer, sweep, point_spec, rep in runner.plan_runs(spec):
        assert configs[index] == config
        assert [s["param"] for s in sweep] == ["workload.rate", "workload.users",
                                               "workload.timeout_s"]
        assert point_spec.workload.rate == sweep[0]["value"]
        assert point_spec.workload.users == sweep[1]["value"]
    # the shuffle is the seed's: same seed, same order; another seed, another order
    assert runner.plan_runs(spec) == runner.plan_runs(spec)
    assert [r[1:] for r in runner.plan_runs(spec, order_seed=1)] != \
        [r[1:] for r in runner.plan_runs(spec, order_seed=2)]


def test_no_sweep_gives_a_null_sweep_in_meta():
    assert {r[3] for r in runner.plan_runs(load(""))} == {None}
