"""The model's prediction: many simulated windows per configuration and their spread (pure).

Each window is one repetition's measurement window, simulated from the runner's seeds for that
repetition (window ``r`` uses repetition ``r``'s seeds); its load generator records go through
``experiments.metrics.http_run_metrics``, the function the report uses on emulated records, so
a metric's name and definition cannot drift between emulation and model. Per configuration and
metric the prediction is the distribution of the per-window values: their mean and their
2.5 % and 97.5 % quantiles, the range an emulated window of the same length should fall in.
"""
import math
import statistics

import numpy

from experiments import metrics
from experiments import spec as spec_mod
from experiments.model import sim
from experiments.model.systems import (build_system, client_configs, make_route, model_notes,
                                       port_rng, response_sizes, window_seed)
from lblab_core.errors import UsageError

DEFAULT_WINDOWS = 20
MIN_WINDOWS = 3
MAX_WINDOWS = 1000
# Simulated requests (~5-10 us each) a configuration may take by default: windows beyond
# it are left out, down to MIN_WINDOWS; --windows N runs exactly N.
REQUEST_BUDGET = 1_000_000
QUANTILES = (0.025, 0.975)
# The scalar metrics an HTTP run has (experiments.metrics.SCALAR_METRICS, HTTP part).
HTTP_METRICS = tuple(m for m in metrics.SCALAR_METRICS if m not in (
    "flows", "failed_flows", "total_mbps", "jain_flows", "cov_flows", "min_max_flows",
    "fault_errors", "error_period_s", "recovery_s"))


def check_modelled(spec):
    """Raise UsageError when the spec's workload is outside the model (iperf3)."""
    if spec.workload.type != "http":
        raise UsageError(f"{spec.source}: workload.type: {spec.workload.type!r} is outside the "
                         f"model: it models HTTP workloads only (iperf3's TCP flows are not "
                         f"simulated)")


def check_finite(spec, overhead_ms):
    """Raise UsageError when a closed loop would send infinitely fast in the model.

    With no think time, no path overhead and a backend that answers in no time, a closed-loop
    user's next request follows its last at the same instant: what bounds the rate then is
    CPU, which the model leaves out.
    """
    w = spec.workload
    if w.mode != "closed" or w.think_ms > 0 or overhead_ms > 0:
        return
    for i, b in enumerate(spec.backends):
        if b.service.mean_ms == 0:
            raise UsageError(
                f"{spec.source}: backends[{i}].service.mean_ms: 0 with a closed loop without "
                f"think time and no --overhead-ms: expected a service time > 0, think_ms > 0 "
                f"or an overhead (the rate would be bounded by CPU alone, which the model "
                f"leaves out)")


def simulate_window(system, window):
    """Simulate one window of a configuration and return its load generator records.

    Args:
        system (experiments.model.systems.System): the configuration.
        window (int): 1-based window number (repetition ``window``'s seeds).
    Returns:
        list[dict]: records in ``lb_apps.records`` loadgen format, times in model seconds
        from the start of the warm-up.
    """
    ev = sim.Events()
    records = []
    spec = system.spec
    seed = window_seed(spec, window)
    clients = client_configs(system, window)
    mix = clients[0][0].mix
    backends = {}
    for i, b in enumerate(spec.backends):
        backends[b.name] = sim.BackendSim(
            ev, b.name, b.capacity, b.service.dist, b.service.mean_ms / 1000.0,
            b.service.sigma, b.error_rate, seed * 100 + i, None, response_sizes(b, mix))
    route = make_route(system, ev, backends, window)
    for backend in backends.values():
        backend.respond = route.respond
    half = system.overhead_s / 2.0
    ports = port_rng(system, window)
    for cfg, ip in clients:
        sim.ClientSim(ev, cfg, ip, route, ports, half, half, records).start()
    ev.run()
    return records


def window_metrics(system, window):
    """Return ``http_run_metrics`` of one simulated window."""
    records = simulate_window(system, window)
    return metrics.http_run_metrics(records, system.window, system.backend_list,
                                    system.client_names)


def spread(values):
    """Return the mean and the 2.5/97.5 % quantiles of per-window values (None dropped).

    Quantiles are numpy's default (linear interpolation between order statistics).
    """
    values = [float(v) for v in values if v is not None and not
              (isinstance(v, float) and math.isnan(v))]
    if not values:
        return {"mean": None, "low": None, "high": None, "n": 0}
    low, high = numpy.quantile(values, QUANTILES)
    return {"mean": statistics.fmean(values), "low": float(low), "high": float(high),
            "n": len(values)}


def windows_for(requested, first_window_requests):
    """How many windows to run: ``requested`` if given, else the default within the budget.

    The model costs a few microseconds per request, so by default a configuration whose
    windows are large runs fewer of them (never fewer than ``MIN_WINDOWS``) to stay within
    ``REQUEST_BUDGET`` simulated requests.
    """
    if requested is not None:
        return requested
    if first_window_requests <= 0:
        return DEFAULT_WINDOWS
    fit = REQUEST_BUDGET // first_window_requests
    return max(MIN_WINDOWS, min(DEFAULT_WINDOWS, fit))


def predict_system(system, windows=None):
    """Run the windows of one configuration and summarise every metric.

    Args:
        system (experiments.model.systems.System): the configuration.
        windows (int|None): windows to run; None: ``DEFAULT_WINDOWS`` within the budget
            (see ``windows_for``).
    Returns:
        dict: ``windows`` (how many ran), ``metrics`` {metric: spread + values},
        ``backend_share`` {backend: spread + values}.
    """
    first = window_metrics(system, 1)
    runs = [first] + [window_metrics(system, w)
                      for w in range(2, windows_for(windows, first["sent"]) + 1)]
    out = {}
    for key in HTTP_METRICS:
        values = [r.get(key) for r in runs]
        out[key] = dict(spread(values), values=values)
    shares = {}
    for name in (b["name"] for b in system.backend_list):
        values = [(r.get("backend_share") or {}).get(name) for r in runs]
        shares[name] = dict(spread(values), values=values)
    return {"windows": len(runs), "metrics": out, "backend_share": shares}


def point_label(point):
    """A sweep point as text: ``''``, ``value`` or ``key=value, ...``."""
    if point is None or point == ():
        return ""
    if isinstance(point, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in point):
        return ", ".join(f"{k}={v}" for k, v in point)
    return str(point)


def point_json(point, spec):
    """A sweep point as JSON: None, ``{key path: value}``."""
    if point is None or point == ():
        return None
    if isinstance(point, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in point):
        return {str(k): v for k, v in point}
    return {spec.sweep.param: point} if getattr(spec.sweep, "param", None) else point


def predict(spec, windows=None, overheads=None):
    """Model every configuration of an HTTP spec.

    Args:
        spec (experiments.spec_models.Spec): a loaded spec.
        windows (int|None): windows per configuration (None: the default within the
            request budget, see ``windows_for``).
        overheads (dict|None): balancer name -> per-request overhead in ms (``"*"``: all).
    Returns:
        list[dict]: one per configuration: ``config``, ``balancer``, ``point``,
        ``granularity``, ``notes`` (the balancer's approximations), ``model_notes`` (what
        the model leaves out everywhere), ``overhead_ms``, ``metrics``, ``backend_share``.
    Raises:
        UsageError: the workload is outside the model.
    """
    check_modelled(spec)
    overheads = overheads or {}
    out = []
    for config, balancer, point, point_spec in spec_mod.configurations(spec):
        ms = overheads.get(balancer.name, overheads.get("*", 0.0))
        check_finite(point_spec, ms)
        system = build_system(config, balancer, point, point_spec, ms / 1000.0)
        result = predict_system(system, windows)
        out.append({"config": config, "balancer": balancer.name, "point": point,
                    "point_label": point_label(point), "layer": balancer.layer,
                    "granularity": system.granularity, "notes": list(system.notes),
                    "model_notes": model_notes(point_spec, overheads),
                    "overhead_ms": ms, "window_s": point_spec.duration_s, **result})
    return out
