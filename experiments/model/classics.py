"""The classics beside the emulation and the model (pure): the published curves and closed
forms the report draws for the specs in ``experiments/specs/classics/``.

A figure hook is keyed on the spec's ``name`` (``CLASSICS``):

* ``supermarket`` (Vvedenskaya, Dobrushin & Karpelevich 1996; Mitzenmacher 2001): mean
  response time in mean service times against the load ``lambda``, with the n -> infinity
  closed forms ``1/(1 - lambda)`` (random) and ``sum_{i>=1} lambda^(2^i - 2)`` (two choices);
  the finite-n curve is the model's.
* ``hash_failure`` (Maglev, NSDI 2016): the fraction of keys that change backend when one of N
  backends fails: ~1/N for Maglev, ~(N - 1)/N for modulo hashing; the model's value is lblab's
  own balancer classes on the run's keys (the client addresses) and on many keys.
* ``heterogeneous``: capacities 1:1:2:4 with weights equal to capacities; the reference is the
  share of load each backend's capacity asks for (drawn by the report's share figure).
"""
import collections

from experiments.model import theory
from lb_apps.balancing import make_balancer

CLASSICS = ("supermarket", "hash_failure", "heterogeneous")
# Keys of the "many keys" figure: enough that 1/N is visible to two digits.
MANY_KEYS = 10_000
PUBLISHED = {"consistent_hash": ("Maglev: 1/N", lambda n: 1.0 / n),
             "ip_hash": ("modulo: (N-1)/N", lambda n: (n - 1.0) / n)}


def classic_of(spec_name):
    """The classic a spec reproduces (its name, or a name starting ``<classic>_``), or None."""
    for name in CLASSICS:
        if spec_name == name or spec_name.startswith(name + "_"):
            return name
    return None


def offered_load(spec):
    """``lambda`` of an open loop: arrival rate x mean service time / total capacity slots."""
    slots = sum(b.capacity for b in spec.backends)
    mean_s = sum(b.service.mean_ms for b in spec.backends) / len(spec.backends) / 1000.0
    return spec.workload.rate * mean_s / slots


def closed_forms(loads):
    """``[(label, [(load, value)])]``: the supermarket limits in mean service times."""
    return [("random 1/(1-lambda)", [(x, theory.supermarket_random(x)) for x in loads]),
            ("two choices sum lambda^(2^i-2)",
             [(x, theory.supermarket_two_choices(x)) for x in loads])]


def supermarket_curves(summary, model_results, point_specs):
    """Per balancer: ``(load, emulated mean / S or None, model mean, low, high)`` points.

    Args:
        point_specs (dict): config -> the spec of its sweep point.
    """
    emulated = {c["config"]: (c["aggregate"].get("latency_mean_ms") or {}).get("mean")
                for c in summary["configs"]}
    curves = collections.OrderedDict()
    for r in model_results:
        spec = point_specs[r["config"]]
        s_ms = sum(b.service.mean_ms for b in spec.backends) / len(spec.backends)
        m = r["metrics"]["latency_mean_ms"]
        if m["mean"] is None:
            continue
        e = emulated.get(r["config"])
        curves.setdefault(r["balancer"], []).append(
            (offered_load(spec), None if e is None else e / s_ms, m["mean"] / s_ms,
             m["low"] / s_ms, m["high"] / s_ms))
    return curves


def assignment(algorithm, backends, keys, down=None):
    """``{key: backend}`` as lblab's balancer (seed 0) places each key, ``down`` failed."""
    bal = make_balancer(algorithm, [(b, 1) for b in backends], 0)
    if down is not None:
        bal.set_up(down, False)
    return {k: bal.choose(k) for k in keys}


def keys_moved(algorithm, backends, keys, down):
    """The fraction of ``keys`` whose backend changes when ``down`` fails."""
    before = assignment(algorithm, backends, keys)
    after = assignment(algorithm, backends, keys, down)
    return sum(1 for k in keys if before[k] != after[k]) / len(keys)


def imbalance(assign, backends):
    """max/mean keys per live backend of an assignment."""
    counts = collections.Counter(assign.values())
    live = [b for b in backends if counts.get(b)]
    if not live:
        return None
    per = [counts[b] for b in live]
    return max(per) / (sum(per) / len(per))


def many_keys(n):
    """``MANY_KEYS`` synthetic client addresses (10.x.y.z, deterministic)."""
    return [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1, n + 1)]


def observed_moves(records, fault_at, settle_s):
    """Keys (clients) and their backends before a fault and after it has settled.

    Args:
        records (list[dict]): the run's load generator records (``client``, ``backend``,
            ``scheduled``), measured ok requests only count.
        fault_at (float): the fault's time on the records' clock.
        settle_s (float): requests scheduled within this long after the fault are left out
            (the failure is being detected).
    Returns:
        dict: key -> ``(backend before, backend after)`` (the most frequent of each), keys
        served both before and after.
    """
    before, after = {}, {}
    for r in records:
        if r.get("warmup") or r.get("error") is not None or not r.get("backend"):
            continue
        key = r.get("client")
        if r["scheduled"] < fault_at:
            before.setdefault(key, collections.Counter())[r["backend"]] += 1
        elif r["scheduled"] >= fault_at + settle_s:
            after.setdefault(key, collections.Counter())[r["backend"]] += 1
    return {k: (before[k].most_common(1)[0][0], after[k].most_common(1)[0][0])
            for k in before if k in after}
