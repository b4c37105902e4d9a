"""The fidelity flag's test (experiments.model.flags): its false-alarm rate, the Bonferroni
correction, the floor, and the causes it names."""
import math

import numpy
import pytest

from experiments.model import flags


def _binomial_tolerance(p, n, z=4.0):
    return z * math.sqrt(p * (1 - p) / n)


def test_prediction_interval_has_its_stated_false_alarm_rate():
    """Under the model (log-normal windows), a new window falls outside the bounds at the
    stated rate: k=20 windows, alpha=0.05, 4000 trials; tolerance 4 binomial SEs."""
    rng = numpy.random.default_rng(7)
    alpha, k, trials = 0.05, 20, 4000
    outside = 0
    for _ in range(trials):
        draws = numpy.exp(rng.normal(3.0, 0.3, k + 1))
        low, high = flags.prediction_bounds(list(draws[:k]), alpha)
        outside += not low <= draws[k] <= high
    assert abs(outside / trials - alpha) < _binomial_tolerance(alpha, trials)


def test_bounds_widen_as_the_level_shrinks_and_need_two_windows():
    values = [10.0, 11.0, 9.5, 10.4, 10.9]
    wide = flags.prediction_bounds(values, 0.0001)
    narrow = flags.prediction_bounds(values, 0.05)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert flags.prediction_bounds([10.0], 0.05) is None
    assert flags.prediction_bounds([None, 0.0, float("nan"), 3.0], 0.05) is None


def test_a_constant_model_gets_the_floor_not_a_zero_width_interval():
    low, high = flags.prediction_bounds([1.0] * 20, 0.01)
    assert low < 1.0 < high
    assert math.log(high) == pytest.approx(-math.log(low))
    assert math.log(high) > flags.SD_FLOOR      # t > 1 at any level used


def _summary(values, meta_extra=None):
    runs, names = [], []
    for i, v in enumerate(values, 1):
        name = f"a-r{i}"
        names.append(name)
        runs.append({"meta": {"run": name, "status": "ok", "workload": "http",
                              **(meta_extra or {})},
                     "metrics": {"goodput_rps": v, "latency_mean_ms": 10.0,
                                 "latency_p99_ms": 30.0, "jain_backends": 1.0}})
    return {"runs": runs, "configs": [{"config": "a", "balancer": {"name": "a"}, "runs": names,
                                       "aggregate": {}}]}


def _model(goodput):
    def spread(values):
        return {"mean": sum(values) / len(values), "low": min(values), "high": max(values),
                "n": len(values), "values": values}
    return [{"config": "a", "balancer": "a", "metrics": {
        "goodput_rps": spread(goodput), "latency_mean_ms": spread([9.8, 10.1, 10.3, 9.9]),
        "latency_p99_ms": spread([29.0, 31.0, 30.5, 29.5]),
        "jain_backends": spread([1.0, 1.0, 1.0, 1.0])}}]


def test_bonferroni_counts_every_run_and_metric_compared():
    comp = flags.compare(_summary([100.0, 101.0, 99.0]), _model([99.0, 100.0, 101.0, 100.5]))
    assert comp["m"] == 3 * len(flags.KEY_METRICS)
    assert comp["alpha"] == pytest.approx(0.01 / comp["m"])
    assert comp["flags"] == []


def test_a_departure_is_flagged_with_metric_config_and_cause():
    comp = flags.compare(_summary([100.0, 60.0], {"fidelity": {
        "pool_limited": True, "saturated": True, "cpu_max": 97.0}}),
        _model([99.0, 100.0, 101.0, 100.5]))
    assert [(f["run"], f["metric"], f["direction"]) for f in comp["flags"]] == [
        ("a-r2", "goodput_rps", "below")]
    line = flags.flag_lines(comp)[0]
    assert "a-r2" in line and "goodput" in line and " for a " in line
    assert "pool_limited" in line and "CPU was saturated (max 97 %)" in line


def test_no_cause_is_said_so():
    comp = flags.compare(_summary([60.0]), _model([99.0, 100.0, 101.0, 100.5]))
    assert "none of the run's own warnings" in flags.flag_lines(comp)[0]


def test_jain_bound_is_capped_at_one():
    comp = flags.compare(_summary([100.0]), _model([99.0, 100.0, 101.0, 100.5]))
    row = next(r for r in comp["rows"] if r["metric"] == "jain_backends")
    assert row["model"]["bounds"][1] == 1.0


def test_failed_and_iperf3_runs_are_not_compared():
    summary = _summary([100.0, 10.0])
    summary["runs"][1]["meta"]["status"] = "failed"
    comp = flags.compare(summary, _model([99.0, 100.0, 101.0, 100.5]))
    assert comp["m"] == len(flags.KEY_METRICS) and comp["flags"] == []


def test_the_calibration_error_widens_latency_bounds_in_proportion_to_the_overhead():
    assert flags.calibration_sd("goodput_rps", 3.0, 10.0) == 0.0
    assert flags.calibration_sd("latency_mean_ms", 0.0, 10.0) == 0.0
    assert flags.calibration_sd("latency_p99_ms", 2.0, 40.0) == pytest.approx(
        flags.CAL_REL_ERR * 2.0 / 40.0)
    values = [10.0, 10.5, 9.8, 10.2, 10.1]
    plain = flags.prediction_bounds(values, 0.01)
    wide = flags.prediction_bounds(values, 0.01, flags.calibration_sd("latency_mean_ms", 3.0,
                                                                      10.1))
    assert wide[0] < plain[0] < plain[1] < wide[1]


def test_compare_uses_each_configurations_overhead_for_latency_only():
    model = _model([99.0, 100.0, 101.0, 100.5])
    bare = flags.compare(_summary([100.0]), model)
    model[0]["overhead_ms"] = 3.0
    cal = flags.compare(_summary([100.0]), model)
    for a, b in zip(bare["rows"], cal["rows"]):
        if a["metric"].startswith("latency_"):
            assert b["model"]["bounds"][1] > a["model"]["bounds"][1]
        else:
            assert b["model"]["bounds"] == a["model"]["bounds"]
