"""Lab 8, your own balancer: weighted shares at L4 and L7, and no choice of a drained backend."""
from experiments.labs import measure as M
from experiments.labs.checks import absent, in_range
from experiments.labs.model import Lab

# A backend's share of the choices made before the drain may differ from weight / total
# weight by this much (absolute): a weighted round robin lands within 0.01 over ~1,000
# choices, equal picks miss 1:2:3 weights by 0.17.
SHARE_TOLERANCE = 0.05
DRAINED = "b1"


def check_run(results, row):
    """The checks of one balancer's run (pure)."""
    name = row["run"]
    meta = results.metas.get(name, {})
    reqs = M.measured(results.requests_by_run().get(name, []))
    fault = M.applied_fault(meta, "drain_backend")
    if fault is None:
        return [absent(f"{name}: {DRAINED} drained", "drain_backend applied",
                       f"no drain in {name}: keep the lab's fault {{action: drain_backend, "
                       f"target: {DRAINED}}}")]
    before = [r for r in reqs if r["end"] < fault["applied"]]
    want = M.weight_shares(meta.get("backends") or [])
    got = M.backend_shares(before)
    checks = []
    for backend, share in sorted(want.items()):
        checks.append(in_range(
            f"{name}: {backend}'s share before the drain (weight share {share:.3f})",
            got.get(backend, 0.0), max(0.0, share - SHARE_TOLERANCE), share + SHARE_TOLERANCE,
            missing=f"{backend} got {got.get(backend, 0.0):.3f} of the choices, its weight "
                    f"asks for {share:.3f}: does choose() honour the weights?"))
    done = fault["applied"] + (fault.get("took_s") or 0.0)
    # keep-alive is off, so every request is a new choice (a new connection at L4)
    late = [r for r in reqs if r.get("backend") == fault["target"] and r.get("start") is not None
            and r["start"] - (r.get("connect") or 0.0) > done]
    checks.append(in_range(f"{name}: requests sent to the drained {fault['target']} after the "
                           f"drain", len(late), None, 0, "requests",
                           missing=f"the balancer kept choosing {fault['target']} after "
                                   f"set_weight(0): a drained backend must not be chosen"))
    after = [r for r in reqs if r.get("start") is not None and r["start"] > done and M.is_ok(r)]
    checks.append(in_range(f"{name}: requests served after the drain", len(after), 1, None,
                           "requests", missing="nothing was served after the drain: the "
                                               "balancer chose no backend at all"))
    checks.append(in_range(f"{name}: failed requests", row.get("errors") or 0, None, 0,
                           "requests", missing="requests failed (errors_by_kind in runs.csv)"))
    return checks


def check(results):
    """The lab's checks (pure)."""
    checks = []
    for layer in ("l4", "l7"):
        rows = [r for r in results.ok_runs() if r.get("layer") == layer]
        if not rows:
            checks.append(absent(f"an ok {layer.upper()} run", f"the lab's {layer} balancer ran",
                                 f"no ok {layer} run: keep both of the lab's balancers (your "
                                 f"class at L4 in the controller and at L7 in the proxy)"))
        for row in rows:
            checks += check_run(results, row)
    return checks


LAB = Lab(
    number=8, title="Your own balancer at L4 and L7", layer="your own balancer",
    specs=("lab8_balancer.yaml",), handout="docs/labs/lab8.md",
    first_step="lb stats   (the balancer's view: each backend's weight and choices so far)",
    start_balancer="l7_mine", check=check)
