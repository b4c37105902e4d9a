"""Unit tests for lb_apps.balancing and lb_apps.maglev (pure, milliseconds except the Maglev builds)."""

import ipaddress
import random
from collections import Counter

import pytest

from lb_apps import balancing
from lb_apps.balancing import (
    ALGORITHMS,
    HASHING_ALGORITHMS,
    BalancingError,
    make_balancer,
    maglev_table,
    stable_hash,
)

FIVE_TUPLE = ("tcp", "10.0.0.1", 40000, "10.0.0.100", 80)


def sample_key(algorithm, i):
    """A key of the right shape for `algorithm` (None for the non-hashing ones)."""
    if algorithm == "five_tuple_hash":
        return ("tcp", f"10.0.{i // 250}.{i % 250 + 1}", 40000 + i, "10.0.0.100", 80)
    if algorithm in HASHING_ALGORITHMS:
        return f"10.1.{i // 250}.{i % 250 + 1}"
    return None


def choices(balancer, count, key=None):
    return [balancer.choose(key) for _ in range(count)]


def client_ips(count):
    return [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(count)]


# -- interface -------------------------------------------------------------------------------


def test_algorithms_are_the_published_names():
    assert ALGORITHMS == (
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "weighted_least_connections",
        "random",
        "power_of_two",
        "ip_hash",
        "five_tuple_hash",
        "consistent_hash",
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_builds_and_reports_its_name(algorithm):
    balancer = make_balancer(algorithm, [("a", 1), ("b", 2)])
    assert isinstance(balancer, balancing.Balancer)
    assert balancer.algorithm == algorithm
    assert balancer.choose(sample_key(algorithm, 0)) in {"a", "b"}


def test_backends_and_in_flight_report_state():
    balancer = make_balancer("round_robin", {"a": 2, "b": 0})
    balancer.on_open("a")
    balancer.on_open("a")
    balancer.on_open("b")
    balancer.set_up("a", False)
    balancer.set_up("a", True)
    assert choices(balancer, 3) == ["a", "a", "a"]
    assert balancer.in_flight() == {"a": 2, "b": 1}
    assert balancer.backends() == {
        "a": {"weight": 2, "up": True, "in_flight": 2, "chosen": 3},
        "b": {"weight": 0, "up": True, "in_flight": 1, "chosen": 0},
    }


def test_on_close_never_goes_below_zero():
    balancer = make_balancer("least_connections", {"a": 1})
    balancer.on_open("a")
    balancer.on_close("a")
    balancer.on_close("a")
    assert balancer.in_flight() == {"a": 0}
    balancer.on_open("a")
    assert balancer.in_flight() == {"a": 1}


# -- round robin -----------------------------------------------------------------------------


def test_round_robin_goes_in_insertion_order_ignoring_weights():
    balancer = make_balancer("round_robin", [("c", 1), ("a", 5), ("b", 1)])
    assert choices(balancer, 7) == ["c", "a", "b", "c", "a", "b", "c"]


def test_round_robin_skips_down_and_drained_and_resumes_after_last_chosen():
    balancer = make_balancer("round_robin", {"a": 1, "b": 1, "c": 1})
    assert choices(balancer, 2) == ["a", "b"]
    balancer.set_up("c", False)
    assert choices(balancer, 1) == ["a"]
    balancer.set_up("c", True)  # resumes after a: b, not a again
    assert choices(balancer, 3) == ["b", "c", "a"]
    balancer.set_weight("b", 0)
    assert choices(balancer, 3) == ["c", "a", "c"]
    balancer.set_weight("b", 1)
    balancer.add_backend("d")
    assert choices(balancer, 5) == ["d", "a", "b", "c", "d"]
    balancer.remove_backend("a")
    assert choices(balancer, 3) == ["b", "c", "d"]


def test_round_robin_does_not_repeat_a_backend_that_flaps():
    balancer = make_balancer("round_robin", {"a": 1, "b": 1, "c": 1})
    assert choices(balancer, 3) == ["a", "b", "c"]
    balancer.set_up("c", False)
    balancer.set_up("c", True)
    assert choices(balancer, 2) == ["a", "b"]


# -- smooth weighted round robin -------------------------------------------------------------


def test_weighted_round_robin_is_nginx_smooth_sequence():
    balancer = make_balancer("weighted_round_robin", {"a": 5, "b": 1, "c": 1})
    assert "".join(choices(balancer, 14)) == "aabacaa" * 2


def test_weighted_round_robin_exact_shares_in_every_cycle():
    balancer = make_balancer("weighted_round_robin", [("a", 1), ("b", 1), ("c", 2), ("d", 4)])
    picks = choices(balancer, 800)
    assert Counter(picks) == {"a": 100, "b": 100, "c": 200, "d": 400}
    for start in range(0, 800, 8):  # smooth: each 8-pick cycle has the exact proportions
        assert Counter(picks[start : start + 8]) == {"a": 1, "b": 1, "c": 2, "d": 4}
    assert "".join(picks[:8]) == "dcdabdcd"  # interleaved, not d d d d c c a b


def test_weighted_round_robin_drain_and_restart():
    balancer = make_balancer("weighted_round_robin", {"a": 5, "b": 1, "c": 1})
    balancer.choose()
    balancer.set_weight("a", 0)
    assert choices(balancer, 4) == ["b", "c", "b", "c"]
    balancer.set_weight("a", 5)  # the smooth sequence restarts from zero
    assert "".join(choices(balancer, 7)) == "aabacaa"


# -- least connections -----------------------------------------------------------------------


def test_least_connections_ties_go_round_robin():
    balancer = make_balancer("least_connections", {"a": 1, "b": 1, "c": 1})
    assert choices(balancer, 6) == ["a", "b", "c", "a", "b", "c"]  # nobody calls on_open
    balancer.on_open("a")
    balancer.on_open("a")
    assert choices(balancer, 4) == ["b", "c", "b", "c"]  # b and c tied at 0: alternate
    balancer.on_close("a")
    balancer.on_close("a")
    assert choices(balancer, 3) == ["a", "b", "c"]  # all tied again: after c comes a


def test_least_connections_picks_fewest_in_flight_ignoring_weights():
    balancer = make_balancer("least_connections", {"a": 4, "b": 1})
    for _ in range(3):
        balancer.on_open("a")
    balancer.on_open("b")
    assert balancer.choose() == "b"  # 1 < 3; the weight 4 of a does not count


def test_least_connections_always_picks_a_least_loaded_backend():
    balancer = make_balancer("least_connections", {"a": 1, "b": 1, "c": 1, "d": 1})
    rng = random.Random(7)
    open_flows = []
    for _ in range(400):
        loads = balancer.in_flight()
        name = balancer.choose()
        assert loads[name] == min(loads.values())
        balancer.on_open(name)
        open_flows.append(name)
        if rng.random() < 0.5:
            balancer.on_close(open_flows.pop(rng.randrange(len(open_flows))))


def test_weighted_least_connections_compares_in_flight_over_weight():
    balancer = make_balancer("weighted_least_connections", {"a": 4, "b": 1})
    for _ in range(3):
        balancer.on_open("a")
    balancer.on_open("b")
    assert balancer.choose() == "a"  # 3/4 < 1/1


def test_weighted_least_connections_sequence_and_proportion():
    balancer = make_balancer("weighted_least_connections", {"a": 3, "b": 1})
    picks = []
    for _ in range(12):
        name = balancer.choose()
        balancer.on_open(name)
        picks.append(name)
    # 0/3 vs 0/1 tie -> a; then b (0 < 1/3); a, a; 3/3 vs 1/1 tie -> round robin gives b; ...
    assert "".join(picks) == "abaabaaabaaa"
    for _ in range(388):
        balancer.on_open(balancer.choose())
    flows = balancer.in_flight()
    assert flows["a"] + flows["b"] == 400
    assert abs(flows["a"] - 3 * flows["b"]) <= 3


def test_weighted_least_connections_ties_go_round_robin():
    balancer = make_balancer("weighted_least_connections", {"a": 2, "b": 1, "c": 2})
    balancer.on_open("a")
    balancer.on_open("b")
    balancer.on_open("b")
    balancer.on_open("c")
    # loads 1/2, 2/1, 1/2: a and c tied, b never
    assert choices(balancer, 4) == ["a", "c", "a", "c"]


# -- random and power of two -----------------------------------------------------------------


def test_random_is_weighted():
    balancer = make_balancer("random", [("a", 1), ("b", 1), ("c", 2), ("d", 4)], seed=1)
    counts = Counter(choices(balancer, 8000))
    for name, expected in {"a": 1000, "b": 1000, "c": 2000, "d": 4000}.items():
        assert abs(counts[name] - expected) <= 0.1 * expected, counts


def test_random_is_deterministic_per_seed_and_leaves_global_random_alone():
    state = random.getstate()
    first = choices(make_balancer("random", {"a": 1, "b": 1, "c": 1}, seed=42), 50)
    again = choices(make_balancer("random", {"a": 1, "b": 1, "c": 1}, seed=42), 50)
    other = choices(make_balancer("random", {"a": 1, "b": 1, "c": 1}, seed=43), 50)
    assert first == again
    assert first != other
    assert random.getstate() == state


def test_power_of_two_prefers_the_lighter_backend():
    balancer = make_balancer("power_of_two", {"a": 1, "b": 1, "c": 1}, seed=3)
    for _ in range(100):
        balancer.on_open("a")
    for _ in range(10):
        balancer.on_open("b")
    counts = Counter(choices(balancer, 3000))
    assert counts["a"] == 0  # the busiest loses every pair it is drawn into
    # c wins every pair it is in (2 of 3 pairs); b only the pair (a, b).
    assert abs(counts["c"] - 2000) <= 150
    assert abs(counts["b"] - 1000) <= 150


def test_power_of_two_picks_two_distinct_backends():
    balancer = make_balancer("power_of_two", {"a": 1, "b": 1}, seed=5)
    balancer.on_open("b")
    assert set(choices(balancer, 200)) == {"a"}  # two distinct picks: always (a, b)


def test_power_of_two_uses_weight_for_load_and_ties():
    balancer = make_balancer("power_of_two", {"a": 4, "b": 1}, seed=5)
    assert set(choices(balancer, 50)) == {"a"}  # 0/4 == 0/1: the heavier wins the tie
    for _ in range(3):
        balancer.on_open("a")
    balancer.on_open("b")
    assert balancer.choose() == "a"  # 3/4 < 1/1


def test_power_of_two_spreads_evenly_when_loads_equal():
    counts = Counter(choices(make_balancer("power_of_two", {"a": 1, "b": 1, "c": 1}, seed=9), 3000))
    assert all(abs(counts[name] - 1000) <= 150 for name in "abc"), counts


def test_power_of_two_with_reported_flows_balances():
    balancer = make_balancer("power_of_two", {f"b{i}": 1 for i in range(8)}, seed=11)
    for _ in range(800):
        balancer.on_open(balancer.choose())
    counts = balancer.in_flight().values()
    assert max(counts) - min(counts) <= 6  # uniform random would be ~ +-10 around 100


# -- stable hash -----------------------------------------------------------------------------


def test_stable_hash_is_pinned_across_processes():
    # BLAKE2b-64 of the encoded key: the same in every process, unlike salted hash().
    assert stable_hash("10.0.0.1") == 6021020536128996326
    assert stable_hash(FIVE_TUPLE) == 6802854359952953703


def test_stable_hash_encoding():
    assert stable_hash("abc") == stable_hash(b"abc") == stable_hash(bytearray(b"abc"))
    assert stable_hash(80) == stable_hash("80")
    assert stable_hash(("tcp", "10.0.0.1", 80)) == stable_hash(["tcp", "10.0.0.1", "80"])
    assert stable_hash(ipaddress.ip_address("10.0.0.1")) == stable_hash("10.0.0.1")
    assert stable_hash(("ab", "c")) != stable_hash(("a", "bc"))
    assert stable_hash(("abc",)) != stable_hash("abc")
    assert 0 <= stable_hash("x") < 2**64


@pytest.mark.parametrize(
    "key", [1.5, None, object(), ("a", 1.5)], ids=["float", "None", "object", "tuple-float"]
)
def test_stable_hash_rejects_keys_without_a_stable_encoding(key):
    with pytest.raises(BalancingError, match=r"^key: unsupported type") as caught:
        stable_hash(key)
    assert caught.value.field == "key"


# -- modulo hashing --------------------------------------------------------------------------


def test_ip_hash_is_sticky_and_spreads():
    balancer = make_balancer("ip_hash", {"a": 1, "b": 1, "c": 1, "d": 1})
    ips = client_ips(2000)
    first = [balancer.choose(ip) for ip in ips]
    assert [balancer.choose(ip) for ip in ips] == first
    counts = Counter(first)
    assert all(abs(counts[name] - 500) <= 100 for name in "abcd"), counts


def test_ip_hash_without_key_falls_back_to_round_robin():
    balancer = make_balancer("ip_hash", {"a": 1, "b": 1, "c": 1})
    assert choices(balancer, 4) == ["a", "b", "c", "a"]


def test_five_tuple_hash_spreads_one_client_over_ports_and_checks_its_key():
    balancer = make_balancer("five_tuple_hash", {"a": 1, "b": 1, "c": 1})
    picks = {balancer.choose(("tcp", "10.0.0.1", port, "10.0.0.100", 80)) for port in range(40000, 40100)}
    assert picks == {"a", "b", "c"}
    assert balancer.choose(FIVE_TUPLE) == balancer.choose(("tcp", "10.0.0.1", "40000", "10.0.0.100", "80"))
    expected = r"^key: invalid '10.0.0.1' for five_tuple_hash; expected a 5-tuple"
    with pytest.raises(BalancingError, match=expected):
        balancer.choose("10.0.0.1")


@pytest.mark.parametrize("count", [10, 20])
def test_modulo_hash_remaps_most_keys_when_one_backend_goes(count):
    names = [f"b{i}" for i in range(count)]
    balancer = make_balancer("ip_hash", names)
    ips = client_ips(5000)
    before = [balancer.choose(ip) for ip in ips]
    balancer.remove_backend("b3")
    after = [balancer.choose(ip) for ip in ips]
    moved = sum(b != a for b, a in zip(before, after)) / len(ips)
    assert moved >= 0.85 * (count - 1) / count  # about (N-1)/N: the contrast with Maglev


# -- Maglev ----------------------------------------------------------------------------------


def test_maglev_table_equal_shares_for_100_backends():
    names = [f"backend-{i}" for i in range(100)]
    table = maglev_table(names)
    assert len(table) == 65537
    counts = Counter(table)
    assert set(counts) == set(range(100))
    mean = 65537 / 100
    assert max(counts.values()) / mean <= 1.01
    assert min(counts.values()) / mean >= 0.99


def test_maglev_weighted_table_fills_in_proportion():
    table = maglev_table(["x", "y", "z", "off"], {"x": 1, "y": 3, "z": 4, "off": 0}, size=65537)
    counts = Counter(table)
    assert 3 not in counts  # weight 0: no slot
    for index, weight in ((0, 1), (1, 3), (2, 4)):
        assert abs(counts[index] / 65537 - weight / 8) <= 0.005, counts


def test_maglev_equal_weights_give_the_unweighted_table():
    weighted = maglev_table(["a", "b", "c"], {"a": 2, "b": 2, "c": 2}, size=251)
    assert weighted == maglev_table(["a", "b", "c"], size=251)


def test_maglev_table_depends_on_names_not_their_order():
    names = ["a", "b", "c", "d"]
    shuffled = ["c", "a", "d", "b"]
    first = [names[i] for i in maglev_table(names, size=1009)]
    second = [shuffled[i] for i in maglev_table(shuffled, size=1009)]
    assert first == second


@pytest.mark.parametrize("count", [10, 20])
def test_maglev_remaps_about_one_nth_when_one_backend_goes(count):
    names = [f"b{i}" for i in range(count)]
    balancer = make_balancer("consistent_hash", names)
    keys = [f"/object/{i}" for i in range(5000)]
    before = [balancer.choose(key) for key in keys]
    balancer.remove_backend("b3")
    after = [balancer.choose(key) for key in keys]
    moved = sum(b != a for b, a in zip(before, after)) / len(keys)
    assert moved <= 1.5 / count
    assert all(a != "b3" for a in after)
    # Keys that lived on b3 all moved; nearly all others stayed (Maglev is not perfectly minimal).
    others_moved = sum(b != a for b, a in zip(before, after) if b != "b3") / len(keys)
    assert others_moved <= 0.5 / count


def test_maglev_adding_a_backend_remaps_about_one_nth():
    balancer = make_balancer("consistent_hash", [f"b{i}" for i in range(10)])
    keys = [f"session-{i}" for i in range(5000)]
    before = [balancer.choose(key) for key in keys]
    balancer.add_backend("b10")
    after = [balancer.choose(key) for key in keys]
    moved = sum(b != a for b, a in zip(before, after)) / len(keys)
    assert moved <= 1.5 / 11
    went_to_new = sum(a == "b10" for b, a in zip(before, after) if b != a)
    assert went_to_new >= 0.95 * moved * len(keys)  # a few keys also shuffle among old backends


def test_consistent_hash_agrees_across_instances_and_insertion_order():
    # The L4 controller and the L7 proxy build their pools independently.
    one = make_balancer("consistent_hash", ["a", "b", "c"], table_size=1009)
    two = make_balancer("consistent_hash", ["c", "b", "a"], table_size=1009, seed=99)
    keys = [f"/k{i}" for i in range(300)]
    assert [one.choose(k) for k in keys] == [two.choose(k) for k in keys]


def test_consistent_hash_key_types_and_fallback():
    balancer = make_balancer("consistent_hash", {"a": 1, "b": 1, "c": 1}, table_size=251)
    assert balancer.choose("/index.html") == balancer.choose(b"/index.html")
    assert balancer.choose(FIVE_TUPLE) in {"a", "b", "c"}
    assert choices(balancer, 4) == ["a", "b", "c", "a"]  # key None -> round robin


def test_consistent_hash_caches_tables(monkeypatch):
    built = []
    real = balancing.maglev_table

    def counting(*args, **kwargs):
        built.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(balancing, "maglev_table", counting)
    balancer = make_balancer("consistent_hash", {"a": 1, "b": 1, "c": 1}, table_size=251)
    assert len(built) == 1
    for i in range(100):
        balancer.choose(f"k{i}")
        balancer.on_open("a")
    assert len(built) == 1  # choose/on_open never rebuild
    for _ in range(3):  # a flapping health check costs two builds, not six
        balancer.set_up("b", False)
        balancer.set_up("b", True)
    assert built == [["a", "b", "c"], ["a", "c"]]


def test_consistent_hash_table_size_option():
    balancer = make_balancer("consistent_hash", ["a", "b"], table_size=7)
    assert balancer.choose("k") in {"a", "b"}
    with pytest.raises(BalancingError, match=r"^table_size: invalid 1000; expected a prime"):
        make_balancer("consistent_hash", ["a"], table_size=1000)
    with pytest.raises(BalancingError, match=r"^table_size: 3 is smaller than the 4 backends"):
        make_balancer("consistent_hash", ["a", "b", "c", "d"], table_size=3)


@pytest.mark.parametrize(
    "names, weights, size, field",
    [
        (["a", "a"], None, 7, "names"),
        ([], None, 7, "names"),
        (["a"], {"a": 0}, 7, "names"),
        (["a"], {"b": 1}, 7, "weights"),
        (["a"], {"a": -1}, 7, "weights"),
        (["a"], None, 8, "table_size"),
    ],
)
def test_maglev_table_rejects_bad_input(names, weights, size, field):
    with pytest.raises(BalancingError) as caught:
        maglev_table(names, weights, size)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


# -- drain, health, empty pool (every algorithm) ---------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_drained_backend_gets_no_new_flows_but_keeps_its_count(algorithm):
    balancer = make_balancer(algorithm, {"a": 1, "b": 2, "c": 1})
    balancer.on_open("b")
    balancer.on_open("b")
    balancer.set_weight("b", 0)
    picks = {balancer.choose(sample_key(algorithm, i)) for i in range(300)}
    assert picks == {"a", "c"}
    assert balancer.in_flight()["b"] == 2
    balancer.on_close("b")
    balancer.on_close("b")
    assert balancer.in_flight()["b"] == 0
    assert balancer.backends()["b"]["chosen"] == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_down_backend_gets_nothing_and_empty_pool_gives_none(algorithm):
    balancer = make_balancer(algorithm, {"a": 1, "b": 1})
    balancer.set_up("a", False)
    assert {balancer.choose(sample_key(algorithm, i)) for i in range(200)} == {"b"}
    balancer.set_weight("b", 0)
    assert balancer.choose(sample_key(algorithm, 0)) is None
    balancer.set_up("a", True)
    assert balancer.choose(sample_key(algorithm, 0)) == "a"
    balancer.remove_backend("a")
    balancer.remove_backend("b")
    assert balancer.choose(sample_key(algorithm, 0)) is None
    assert balancer.choose(None) is None


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_empty_pool_then_add(algorithm):
    balancer = make_balancer(algorithm, {})
    assert balancer.choose(sample_key(algorithm, 1)) is None
    balancer.add_backend("only", 3)
    assert balancer.choose(sample_key(algorithm, 1)) == "only"
    assert balancer.backends() == {"only": {"weight": 3, "up": True, "in_flight": 0, "chosen": 1}}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_seed_same_sequence(algorithm):
    def run(seed):
        balancer = make_balancer(algorithm, {f"b{i}": 1 + i % 3 for i in range(6)}, seed=seed)
        picks = []
        for i in range(200):
            name = balancer.choose(sample_key(algorithm, i % 37))
            balancer.on_open(name)
            if i % 3 == 0:
                balancer.on_close(name)
            picks.append(name)
        return picks

    assert run(5) == run(5)


# -- validation ------------------------------------------------------------------------------


def test_unknown_algorithm_suggests_the_close_one():
    with pytest.raises(BalancingError) as caught:
        make_balancer("leastconn", {"a": 1})
    assert str(caught.value) == (
        "algorithm: unknown 'leastconn'; expected one of round_robin, weighted_round_robin, "
        "least_connections, weighted_least_connections, random, power_of_two, ip_hash, "
        "five_tuple_hash, consistent_hash; did you mean least_connections?"
    )
    assert caught.value.field == "algorithm"
    assert caught.value.value == "leastconn"
    assert isinstance(caught.value, ValueError)


def test_unknown_algorithm_without_close_match_and_non_str():
    with pytest.raises(BalancingError, match=r"^algorithm: unknown 'zzz'; expected one of .*_hash$"):
        make_balancer("zzz", {})
    with pytest.raises(BalancingError, match=r"did you mean round_robin\?$"):
        make_balancer("round-robin", {})
    with pytest.raises(BalancingError, match=r"^algorithm: unknown None"):
        make_balancer(None, {})


@pytest.mark.parametrize(
    "backends, message",
    [
        ({"a": -1}, r"^weight: invalid -1 for backend 'a'; expected an int >= 0"),
        ({"a": 1.5}, r"^weight: invalid 1.5 for backend 'a'"),
        ({"a": "2"}, r"^weight: invalid '2' for backend 'a'"),
        ({"a": True}, r"^weight: invalid True for backend 'a'"),
        ([("a", 1), ("a", 2)], r"^backend: duplicate 'a'; expected unique names"),
        ({"": 1}, r"^backend: invalid name ''; expected a non-empty str"),
        ([(1, 1)], r"^backend: invalid name 1"),
        ([("a", 1, 2)], r"^backends: invalid entry \('a', 1, 2\); expected a \(name, weight\) pair"),
        ("a,b", r"^backends: invalid str 'a,b'; expected a dict"),
    ],
)
def test_bad_backends_are_rejected(backends, message):
    with pytest.raises(BalancingError, match=message):
        make_balancer("round_robin", backends)


def test_list_of_names_means_weight_one():
    assert make_balancer("round_robin", ["a", ("b", 3)]).backends()["a"]["weight"] == 1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: b.set_weight("zz", 1), r"^backend: unknown 'zz'; expected one of 'a', 'b'$"),
        (lambda b: b.remove_backend("zz"), r"^backend: unknown 'zz'"),
        (lambda b: b.on_close("zz"), r"^backend: unknown 'zz'"),
        (lambda b: b.on_open("zz"), r"^backend: unknown 'zz'"),
        (lambda b: b.set_up("zz", True), r"^backend: unknown 'zz'"),
        (lambda b: b.set_weight("a", -2), r"^weight: invalid -2 for backend 'a'"),
        (lambda b: b.add_backend("a"), r"^backend: duplicate 'a'"),
        (lambda b: b.add_backend("c", -1), r"^weight: invalid -1 for backend 'c'"),
        (lambda b: b.set_up("a", "no"), r"^up: invalid 'no' for backend 'a'; expected True or False$"),
    ],
)
def test_bad_calls_are_rejected_and_change_nothing(call, message):
    balancer = make_balancer("weighted_round_robin", {"a": 1, "b": 1})
    with pytest.raises(BalancingError, match=message):
        call(balancer)
    assert balancer.backends() == {
        "a": {"weight": 1, "up": True, "in_flight": 0, "chosen": 0},
        "b": {"weight": 1, "up": True, "in_flight": 0, "chosen": 0},
    }


def test_unknown_backend_error_lists_a_bounded_number_of_names():
    balancer = make_balancer("round_robin", [f"b{i}" for i in range(20)])
    with pytest.raises(BalancingError, match=r"'b7', \.\.\. \(20 in all\)$"):
        balancer.on_close("nope")
    with pytest.raises(BalancingError, match=r"the pool is empty"):
        make_balancer("round_robin", {}).on_close("nope")


def test_unknown_option_and_bad_seed():
    expected = r"^options: unknown 'table_size' for algorithm 'round_robin'; expected none$"
    with pytest.raises(BalancingError, match=expected):
        make_balancer("round_robin", {"a": 1}, table_size=251)
    expected = r"^options: unknown 'size' for algorithm 'consistent_hash'; expected table_size$"
    with pytest.raises(BalancingError, match=expected):
        make_balancer("consistent_hash", {"a": 1}, size=251)
    with pytest.raises(BalancingError, match=r"^seed: invalid '1'; expected an int$"):
        make_balancer("random", {"a": 1}, seed="1")
