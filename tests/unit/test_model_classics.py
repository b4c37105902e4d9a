"""The classics' pure part (experiments.model.classics): which spec is which classic, the
offered load, the published values against lblab's own balancers, the observed moves."""
import math

import pytest

from experiments import spec as spec_mod
from experiments.model import classics as C, theory

CLASSICS = "experiments/specs/classics"


def test_classic_of_spec_names():
    assert C.classic_of("supermarket") == "supermarket"
    assert C.classic_of("supermarket_big") == "supermarket"
    assert C.classic_of("hash_failure") == "hash_failure"
    assert C.classic_of("supermarkets") is None and C.classic_of("algorithms") is None


def test_the_supermarket_sweep_is_load_half_to_nine_tenths():
    spec = spec_mod.load_spec(f"{CLASSICS}/supermarket.yaml")
    configs = spec_mod.configurations(spec)
    assert len(configs) == 4 * 5                  # four balancers x five loads
    assert [round(C.offered_load(p), 6) for _, _, _, p in configs[:5]] == [
        0.5, 0.6, 0.7, 0.8, 0.9]


def test_closed_forms_are_theorys():
    (r_label, random), (t_label, two) = C.closed_forms([0.5, 0.9])
    assert "random" in r_label and "two" in t_label
    assert random == [(0.5, 2.0), (0.9, pytest.approx(10.0))]
    assert two[0][1] == pytest.approx(theory.supermarket_two_choices(0.5))


@pytest.mark.parametrize("algorithm,n", [("consistent_hash", 5), ("ip_hash", 5),
                                         ("consistent_hash", 8), ("ip_hash", 8)])
def test_keys_moved_is_the_published_value_on_many_keys(algorithm, n):
    """With K keys placed independently, the fraction moved has a binomial standard error
    sqrt(p(1-p)/K) around its expectation; 4 of them is the tolerance (Maglev's table adds a
    small disruption of its own beyond 1/N, below that here)."""
    backends = [f"b{i}" for i in range(1, n + 1)]
    keys = C.many_keys(C.MANY_KEYS)
    published = C.PUBLISHED[algorithm][1](n)
    tolerance = 4 * math.sqrt(published * (1 - published) / len(keys))
    assert abs(C.keys_moved(algorithm, backends, keys, "b2") - published) < tolerance


def test_imbalance_is_max_over_mean_of_live_backends():
    assert C.imbalance({"k1": "a", "k2": "a", "k3": "b", "k4": "c"}, ["a", "b", "c"]) == 1.5
    assert C.imbalance({}, ["a"]) is None


def test_observed_moves_takes_the_most_frequent_backend_before_and_after_settling():
    def rec(client, backend, t, error=None):
        return {"client": client, "backend": backend, "scheduled": t, "error": error}
    records = [rec("h1", "b1", 1.0), rec("h1", "b1", 2.0), rec("h1", "b2", 2.5),
               rec("h1", "b9", 10.5),                  # while settling: left out
               rec("h1", "b3", 12.0), rec("h1", "b3", 13.0),
               rec("h2", "b2", 1.0), rec("h2", "b2", 12.0),
               rec("h3", "b2", 1.0), rec("h3", None, 12.0, error="timeout")]
    assert C.observed_moves(records, 10.0, 1.0) == {"h1": ("b1", "b3"), "h2": ("b2", "b2")}
