"""The model twin against closed forms: M/M/1, M/M/c (Erlang C) and the supermarket model.

Each check runs the whole model path (a spec, ``build_system``, simulated windows, the
emulation's ``http_run_metrics``) and compares the mean response time with the formula. The
tolerance is the simulation's own: windows are independent replications (own seeds), so their
mean latencies give a standard error SE = stdev / sqrt(windows), and the check allows
``Z * SE`` (Z = 4: a correct model fails with probability ~6e-5 under normality; everything
is seeded, so a run is deterministic). So that no check can pass by being loose, each also
asserts that its tolerance is below a stated fraction of the value it checks.

The supermarket's two-choices form is for n -> infinity; at finite n the mean is
T(n) = T_inf + C/n + O(1/n^2) (Gast & Van Houdt, "A refined mean field approximation", 2017).
The test measures n = 16 and n = 64, extrapolates linearly in 1/n to T_inf, and propagates both
standard errors through the extrapolation.
"""
import math
import statistics

from experiments import spec as spec_mod
from experiments.model import predict, systems, theory

Z = 4.0
SERVICE_MS = 10.0
MU = 1000.0 / SERVICE_MS              # per second


def _spec(backends, algorithm, rate, duration_s, warmup_s, seed=7):
    """An open-loop Poisson L7 spec: one client, ``backends`` = [(capacity, mean_ms)]."""
    rows = "\n".join(f"  - {{name: b{i + 1}, capacity: {c}, "
                     f"service: {{dist: exponential, mean_ms: {m}}}}}"
                     for i, (c, m) in enumerate(backends))
    # users bounds the client's connection pool: far above any queue here, so it never binds
    return spec_mod.loads_spec(f"""
name: theory
seed: {seed}
topology: {{name: lb_lab, params: {{clients: 1}}}}
backends:
{rows}
balancers:
  - {{name: lb, layer: l7, algorithm: {algorithm}}}
workload: {{type: http, mode: open, rate: {rate}, arrival: poisson, users: 4096}}
warmup_s: {warmup_s}
duration_s: {duration_s}
""")


def _mean_latency(spec, windows):
    """Return (mean, standard error) in seconds of the per-window mean latencies."""
    (config, balancer, point, point_spec), = spec_mod.configurations(spec)
    system = systems.build_system(config, balancer, point, point_spec)
    values = [predict.window_metrics(system, w)["latency_mean_ms"] / 1000.0
              for w in range(1, windows + 1)]
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(windows)


def _check(measured, se, expected, sharpness):
    assert Z * se < sharpness * expected, (
        f"the test is too loose: Z*SE = {Z * se:.4g} s is not below {sharpness:.0%} of "
        f"{expected:.4g} s; simulate more")
    assert abs(measured - expected) <= Z * se, (
        f"model {measured:.5g} s, closed form {expected:.5g} s: off by "
        f"{abs(measured - expected) / se:.1f} standard errors (allowed {Z:g})")


def test_closed_forms_themselves():
    assert theory.mm1_response(50, 100) == 1 / 50
    assert theory.erlang_c(1, 0.5) == 0.5            # M/M/1: P(wait) = rho
    # Erlang C(2, 1): P0 = 1/3, C = (1^2/2!) (2/(2-1)) P0 = 1/3
    assert math.isclose(theory.erlang_c(2, 1.0), 1 / 3)
    assert math.isclose(theory.supermarket_two_choices(0.5), 1 + 0.5 ** 2 + 0.5 ** 6
                        + 0.5 ** 14 + 0.5 ** 30 + 0.5 ** 62, rel_tol=1e-12)
    assert theory.supermarket_random(0.8) == 1 / (1 - 0.8)


def test_mm1_mean_response():
    lam = 70.0                                         # rho = 0.7
    measured, se = _mean_latency(_spec([(1, SERVICE_MS)], "round_robin", lam, 100, 5), 10)
    _check(measured, se, theory.mm1_response(lam, MU), 0.10)


def test_mmc_mean_response_erlang_c():
    lam, c = 320.0, 4                                  # rho = 0.8 over 4 slots of one backend
    measured, se = _mean_latency(_spec([(c, SERVICE_MS)], "round_robin", lam, 30, 5), 10)
    _check(measured, se, theory.mmc_response(lam, MU, c), 0.10)


def test_supermarket_random_is_mm1_per_queue():
    n, load = 8, 0.7                                   # exact at any n: Poisson splitting
    spec = _spec([(1, SERVICE_MS)] * n, "random", n * load * MU, 20, 5)
    measured, se = _mean_latency(spec, 8)
    _check(measured, se, theory.supermarket_random(load) / MU, 0.15)


def test_supermarket_two_choices_limit():
    load = 0.8
    points = {}
    for n, duration, windows in ((16, 8, 6), (64, 4, 6)):
        spec = _spec([(1, SERVICE_MS)] * n, "power_of_two", n * load * MU, duration, 2)
        points[n] = _mean_latency(spec, windows)
    (n1, (t1, se1)), (n2, (t2, se2)) = sorted(points.items())
    limit = (n2 * t2 - n1 * t1) / (n2 - n1)            # T(n) = T_inf + C/n, solved for T_inf
    se = math.hypot(n2 * se2, n1 * se1) / (n2 - n1)
    expected = theory.supermarket_two_choices(load) / MU
    _check(limit, se, expected, 0.06)
    # and the finite-n effect is the one the literature gives: T(n) falls towards the limit
    assert t1 > t2 > expected - Z * se
    # far from random placement's 1/(1 - load) service times: two choices is what was modelled
    assert t2 < 0.5 * theory.supermarket_random(load) / MU
