"""The fidelity flag: emulated runs against the model's distribution (pure).

For each ok run and each key metric (``KEY_METRICS``) the emulated value is compared with the
model's per-window values of the same configuration. The model's windows are independent
replications of the run's window (window r with repetition r's seeds), so the question is
whether the run's value is a plausible further draw from that distribution.

**The test.** A normal distribution on the log scale is fitted to the windows' values (the
metrics are positive and their spread grows with their size: latencies are right-skewed,
goodput and Jain's index are near-normal with a small spread, where the log is nearly linear).
The bounds are the two-sided prediction interval of one new draw, ``exp(m ± t · s ·
sqrt(1 + 1/k))`` with ``k`` windows, their log mean ``m`` and standard deviation ``s``, and
Student's ``t`` quantile at ``1 − a/2`` with ``k − 1`` degrees of freedom: under the model its
false-alarm rate is exactly ``a`` per comparison, with the uncertainty of ``m`` and ``s``
from ``k`` windows included. A parametric tail is used because a per-comparison level of
0.01/m needs quantiles far beyond what 20 windows can estimate empirically (a 10^-4 quantile
would need tens of thousands of windows).

**The correction.** Bonferroni over every comparison of the report: ``a = FALSE_ALARM / m``
with ``m`` = runs compared × metrics, so the chance that a faithful report raises any flag is
at most ``FALSE_ALARM`` (1 %), whatever the dependence between the comparisons.

**The calibration's error.** For latency metrics the path overhead the model adds from the
calibration is itself uncertain between the calibration and a run (the machine's load moves
it): ``CAL_REL_ERR`` of the overhead, as a log-scale standard deviation relative to the
modelled latency, is added to ``s`` in quadrature (``calibration_sd``).

**A floor.** ``s`` is at least ``SD_FLOOR`` (relative, since it is on the log scale): a model
whose windows all give the same value (round robin's Jain index of 1, a constant-rate
goodput) would otherwise flag any emulated difference, however small; the floor stands for
what the model cannot resolve (the calibration's own error, timer resolution).
"""
import math
import statistics

from scipy import stats

KEY_METRICS = (("goodput_rps", "goodput (ok req/s)"), ("latency_mean_ms", "mean latency (ms)"),
               ("latency_p99_ms", "p99 latency (ms)"), ("jain_backends", "Jain's index (backends)"))
FALSE_ALARM = 0.01
SD_FLOOR = 0.02
# The calibrated path overhead's error between the calibration and a run (one standard
# deviation, relative): three calibrations of the builtin proxy's path on this shared 2-core
# machine within 20 minutes gave 1.38, 3.25 and 2.86 ms (sd/mean 0.39).
CAL_REL_ERR = 0.4
# Metrics with a ceiling: a bound above it is drawn and reported at it.
CEILING = {"jain_backends": 1.0}
METHOD = ("normal on the log scale fitted to the model's windows; two-sided Student-t "
          "prediction interval of one new window; Bonferroni over every run x metric compared")


def prediction_bounds(values, alpha, extra_sd=0.0):
    """Return ``(low, high)``: the prediction interval of one new window at level ``alpha``
    (two-sided), or None with fewer than 2 positive finite values.

    Args:
        extra_sd (float): a further standard deviation on the log scale, added in quadrature
            (the calibration's error, see ``calibration_sd``).
    """
    logs = [math.log(v) for v in values
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    k = len(logs)
    if k < 2:
        return None
    m = statistics.fmean(logs)
    s = math.hypot(max(statistics.stdev(logs), SD_FLOOR), extra_sd)
    half = float(stats.t.ppf(1.0 - alpha / 2.0, k - 1)) * s * math.sqrt(1.0 + 1.0 / k)
    return math.exp(m - half), math.exp(m + half)


def calibration_sd(metric, overhead_ms, model_mean):
    """The calibration's error on the log scale for a latency metric: the path overhead the
    model adds is known to ``CAL_REL_ERR`` of itself (one standard deviation) between the
    calibration and a run, so a latency ``L`` with overhead ``o`` carries ``CAL_REL_ERR · o /
    L`` (delta method); 0 for other metrics and without an overhead."""
    if not metric.startswith("latency_") or not overhead_ms or not model_mean:
        return 0.0
    return CAL_REL_ERR * overhead_ms / model_mean


def likely_cause(meta):
    """The run's own warnings that point to a cause of a departure, as text (None: none)."""
    fid = meta.get("fidelity") or {}
    causes = []
    if fid.get("pool_limited"):
        causes.append("the client connection pool limited the load (pool_limited)")
    if fid.get("behind_schedule"):
        causes.append("the load generator fell behind its schedule (behind_schedule)")
    if fid.get("saturated"):
        cpu = fid.get("cpu_max")
        causes.append("the host CPU was saturated" + (f" (max {cpu:.0f} %)" if isinstance(
            cpu, (int, float)) else ""))
    if fid.get("backends_queued"):
        causes.append(f"{fid['backends_queued']} backend(s) queued at capacity")
    return "; ".join(causes) or None


def compare(summary, model_results, false_alarm=FALSE_ALARM):
    """Compare every ok HTTP run with the model's windows of its configuration.

    Args:
        summary (dict): ``experiments.report.collect``'s summary.
        model_results (list[dict]): ``experiments.model.predict.predict``'s result.
        false_alarm (float): the report's false-alarm rate.
    Returns:
        dict: ``false_alarm``, ``m`` (comparisons), ``alpha`` (per comparison), ``method``,
        ``rows`` (per configuration and metric: ``model`` spread with its ``bounds``,
        ``emulated`` aggregate with the runs' ``values`` and ``runs``, ``flagged`` runs) and
        ``flags`` (run, config, metric, label, value, bounds, direction, cause).
    """
    by_config = {r["config"]: r for r in model_results}
    ok = {run["meta"]["run"]: run for run in summary["runs"]
          if run["meta"].get("status") == "ok" and run["meta"].get("workload") != "iperf3"}
    pairs = []
    for c in summary["configs"]:
        model = by_config.get(c["config"])
        if model is None:
            continue
        for key, label in KEY_METRICS:
            runs = [(name, ok[name]) for name in c["runs"] if name in ok
                    and isinstance(ok[name]["metrics"].get(key), (int, float))]
            pairs.append((c, model, key, label, runs))
    m = sum(len(runs) for *_, runs in pairs)
    alpha = false_alarm / m if m else false_alarm
    rows, flags = [], []
    for c, model, key, label, runs in pairs:
        spread = model["metrics"].get(key) or {}
        bounds = prediction_bounds(spread.get("values") or [], alpha, calibration_sd(
            key, model.get("overhead_ms"), spread.get("mean")))
        if bounds is not None and key in CEILING:
            bounds = (min(bounds[0], CEILING[key]), min(bounds[1], CEILING[key]))
        agg = c["aggregate"].get(key) or {}
        flagged = []
        for name, run in runs:
            value = run["metrics"][key]
            if bounds is None or bounds[0] <= value <= bounds[1]:
                continue
            flagged.append(name)
            flags.append({"run": name, "config": c["config"], "metric": key, "label": label,
                          "value": value, "bounds": list(bounds),
                          "direction": "above" if value > bounds[1] else "below",
                          "cause": likely_cause(run["meta"])})
        rows.append({"config": c["config"], "balancer": c["balancer"]["name"], "metric": key,
                     "label": label,
                     "model": {k: spread.get(k) for k in ("mean", "low", "high", "n",
                                                          "values")}
                     | {"bounds": list(bounds) if bounds else None},
                     "emulated": {"mean": agg.get("mean"), "low": agg.get("low"),
                                  "high": agg.get("high"),
                                  "values": [run["metrics"][key] for _, run in runs],
                                  "runs": [name for name, _ in runs]},
                     "flagged": flagged})
    return {"false_alarm": false_alarm, "m": m, "alpha": alpha, "method": METHOD,
            "sd_floor": SD_FLOOR, "cal_rel_err": CAL_REL_ERR, "rows": rows, "flags": flags}


def _num(value):
    return f"{value:.4g}"


def flag_lines(comparison):
    """One warning line per flag: the run, the metric, the configuration, the value against
    the bounds, and the likely cause where the run's own warnings point to one."""
    out = []
    for f in comparison["flags"]:
        low, high = f["bounds"]
        out.append(f"{f['run']}: fidelity flag: {f['label']} {_num(f['value'])} is {f['direction']}"
                   f" the model's range [{_num(low)}, {_num(high)}] for {f['config']} "
                   f"(per-comparison level {comparison['alpha']:.2g} = "
                   f"{comparison['false_alarm']:g}/{comparison['m']}); likely cause: "
                   + (f["cause"] or "none of the run's own warnings points to one (look at "
                      "the calibration and the model's approximations)"))
    return out
