"""The properties a balancer must have, as pytest tests (lab 8).

Run them in this folder:

    python -m pytest test_my_balancer.py -q

They test my_balancer.py's MyBalancer; another file or class with
LB_FILE=path/to/file.py LB_CLASS=Name python -m pytest test_my_balancer.py. The numbers at the
top are the lab's tolerances; the instructor's checker uses the same ones.
"""
import importlib.util
import os
import random
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LB_FILE = os.path.abspath(os.environ.get("LB_FILE", os.path.join(HERE, "my_balancer.py")))
LB_CLASS = os.environ.get("LB_CLASS", "MyBalancer")

PICKS = 8000            # picks per share measurement
SHARE_TOLERANCE = 0.03  # |measured share - weight / total| allowed, per backend
KEYS = 2000             # keys for the "keys stay" property
KEPT_FRACTION = 0.95    # keys not on the leaving backend that must stay where they were


def balancer_class():
    spec = importlib.util.spec_from_file_location("student_balancer", LB_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, LB_CLASS)


def new(pool, seed=1):
    return balancer_class()(dict(pool), seed=seed)


def five_tuples(n, seed=7):
    """n distinct connection keys like the controller's: (6, client, port, vip, 80)."""
    rng = random.Random(seed)
    return [(6, f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65536),
             "10.254.0.1", 80) for _ in range(n)]


def picks(balancer, n, keys=None):
    """Count n answers of choose(), opening and closing a connection around each."""
    counts = Counter()
    for i in range(n):
        name = balancer.choose(None if keys is None else keys[i % len(keys)])
        counts[name] += 1
        if name is not None:
            balancer.on_open(name)
            balancer.on_close(name)
    return counts


def test_lblab_accepts_it():
    """lblab's own load-time check: the file, the class, its methods, a run on a test pool."""
    custom = pytest.importorskip("lb_apps.custom_balancer", reason="lblab is not installed here")
    custom.check_file(custom.join(LB_FILE, LB_CLASS))


@pytest.mark.parametrize("weights", [{"b1": 1, "b2": 1, "b3": 1}, {"b1": 1, "b2": 2, "b3": 5}])
def test_weighted_shares(weights):
    """Each backend gets weight / total of the picks, within SHARE_TOLERANCE."""
    counts = picks(new(weights), PICKS, five_tuples(PICKS))
    total = sum(weights.values())
    for name, weight in weights.items():
        share = counts[name] / PICKS
        assert abs(share - weight / total) <= SHARE_TOLERANCE, (
            f"{name} (weight {weight}) got {share:.3f} of {PICKS} picks; expected "
            f"{weight / total:.3f} +- {SHARE_TOLERANCE}: {dict(counts)}")


def test_never_a_drained_or_down_backend():
    """Weight 0 (drained) and down backends get nothing; with none live, choose() says None."""
    balancer = new({"b1": 1, "b2": 2, "b3": 3, "b4": 1})
    balancer.set_weight("b2", 0)
    balancer.set_up("b3", False)
    counts = picks(balancer, 2000, five_tuples(2000))
    assert counts["b2"] == 0, f"the drained b2 got {counts['b2']} picks"
    assert counts["b3"] == 0, f"the down b3 got {counts['b3']} picks"
    assert counts["b1"] and counts["b4"], f"a live backend got nothing: {dict(counts)}"
    balancer.set_up("b1", False)
    balancer.set_weight("b4", 0)
    assert picks(balancer, 50) == Counter({None: 50}), "no backend is live: expected None"
    balancer.set_up("b3", True)
    assert picks(balancer, 50) == Counter({"b3": 50}), "b3 is the only live backend again"


def test_pool_changes():
    """A backend that joins gets picks; one that leaves gets none."""
    balancer = new({"b1": 1, "b2": 1, "b3": 1})
    balancer.add_backend("b4", 1)
    balancer.remove_backend("b1")
    counts = picks(balancer, 3000, five_tuples(3000))
    assert counts["b1"] == 0, f"b1 left the pool and still got {counts['b1']} picks"
    assert counts["b4"] > 0, "b4 joined the pool and got no pick"


def test_keys_stay_on_their_backend_when_another_leaves():
    """For a keyed (hash) balancer: one key, one backend; when a backend leaves, the keys of
    the others stay where they were (at least KEPT_FRACTION of them)."""
    if not getattr(balancer_class(), "keyed", False):
        pytest.skip(f"{LB_CLASS} is not keyed (set keyed = True in a hash balancer)")
    pool = {f"b{i}": 1 for i in range(1, 6)}
    keys = five_tuples(KEYS)
    balancer = new(pool)
    before = {key: balancer.choose(key) for key in keys}
    assert all(balancer.choose(key) == before[key] for key in keys[:200]), \
        "the same key got another backend with the pool unchanged"
    balancer.remove_backend("b3")
    after = {key: balancer.choose(key) for key in keys}
    others = [key for key in keys if before[key] != "b3"]
    kept = sum(after[key] == before[key] for key in others) / len(others)
    assert kept >= KEPT_FRACTION, (
        f"when b3 left, only {kept:.1%} of the other backends' keys stayed (expected >= "
        f"{KEPT_FRACTION:.0%})")
    assert all(name != "b3" for name in after.values()), "b3 left but still gets keys"
