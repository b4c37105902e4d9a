"""experiments.metrics against values computed by hand on small committed fixtures.

loadgen_small.jsonl (window [100, 102), backends b1 weight 1, b2 weight 2, clients h1, h2):
ids 1-6 and 9 ok (latencies 10, 20, 30, 40, 50, 60, 80 ms), 7 is a 503, 8 a timeout,
10 is scheduled after the window, 11 is a warm-up record.
"""
import json
import math
import os

import random

import numpy as np
import pytest
from scipy import special as scipy_special
from scipy import stats as scipy_stats

from experiments import metrics as M
from lb_apps.records import read_records

HERE = os.path.join(os.path.dirname(__file__), "fixtures")
BACKENDS = [{"name": "b1", "weight": 1}, {"name": "b2", "weight": 2}]
WINDOW = (100.0, 102.0)


@pytest.fixture(scope="module")
def records():
    return read_records(os.path.join(HERE, "loadgen_small.jsonl"), "loadgen")


@pytest.fixture(scope="module")
def run(records):
    return M.http_run_metrics(records, WINDOW, BACKENDS, ["h1", "h2"])


def test_counts_add_up(run):
    assert run["sent"] == 9 and run["ok"] == 7 and run["errors"] == 2
    assert run["errors_by_kind"] == {"http_503": 1, "timeout": 1}
    assert run["sent"] == run["ok"] + run["errors"]


def test_throughput_and_goodput(run):
    assert run["duration_s"] == 2.0
    assert run["throughput_rps"] == pytest.approx(8 / 2)     # 7 ok + the 503
    assert run["goodput_rps"] == pytest.approx(7 / 2)
    assert run["throughput_mbps"] == pytest.approx(9100 * 8 / 1e6 / 2)
    assert run["goodput_mbps"] == pytest.approx(9000 * 8 / 1e6 / 2)


def test_latency_percentiles_nearest_rank(run):
    # n = 7: p50 -> rank ceil(3.5) = 4 -> 40 ms; p90 -> rank ceil(6.3) = 7 -> 80 ms
    assert run["latency_p50_ms"] == pytest.approx(40)
    assert run["latency_p90_ms"] == pytest.approx(80)
    assert run["latency_p99_ms"] == pytest.approx(80)
    assert run["latency_p99_9_ms"] == pytest.approx(80)
    assert run["latency_max_ms"] == pytest.approx(80)
    assert run["latency_mean_ms"] == pytest.approx(290 / 7)


def test_percentile_edges():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert M.percentile(values, 0) == 1
    assert M.percentile(values, 50) == 5         # rank 5
    assert M.percentile(values, 90) == 9         # rank 9, not 10: 9*10/100 is exact
    assert M.percentile(values, 91) == 10
    assert M.percentile(values, 100) == 10
    assert M.percentile([], 50) is None
    with pytest.raises(ValueError):
        M.percentile(values, 101)


def test_backend_shares_and_fairness(run):
    assert run["backend_requests"] == {"b1": 2, "b2": 5}
    assert run["backend_share"] == pytest.approx({"b1": 2 / 7, "b2": 5 / 7})
    assert sum(run["backend_share"].values()) == pytest.approx(1.0)
    assert run["backend_bytes_share"] == pytest.approx({"b1": 2 / 9, "b2": 7 / 9})
    # normalised load: b1 2/1 = 2, b2 5/2 = 2.5
    assert run["jain_backends"] == pytest.approx(4.5 ** 2 / (2 * (4 + 6.25)))
    assert run["imbalance_backends"] == pytest.approx(2.5 / 2.25)
    assert run["cov_backends"] == pytest.approx(0.25 / 2.25)
    # clients: h1 4 ok, h2 3 ok
    assert run["client_requests"] == {"h1": 4, "h2": 3}
    assert run["jain_clients"] == pytest.approx(49 / 50)


def test_fairness_helpers():
    assert M.jain([1, 1, 1, 1]) == 1.0
    assert M.jain([1, 0, 0, 0]) == 0.25
    assert M.jain([]) is None and M.jain([0, 0]) is None
    assert M.imbalance([1, 3]) == 1.5
    assert M.cov([2, 2]) == 0.0


def _t_interval(values, transform, inverse):
    """The expected interval, computed independently with numpy and scipy."""
    y = transform(np.asarray(values, dtype=float))
    n = len(y)
    half = scipy_stats.t.ppf(0.975, n - 1) * y.std(ddof=1) / np.sqrt(n)
    return inverse(y.mean() - half), inverse(y.mean() + half)


def test_interval_log_scale_known_sample():
    values = [10.0, 20.0, 40.0]
    out = M.interval95(values)
    low, high = _t_interval(values, np.log, np.exp)
    # by hand: ln values 2.303, 2.996, 3.689, mean ln 20 = 2.996, s = ln 2 = 0.693,
    # t(0.975, 2) = 4.303 -> 20 * exp(+-4.303 * 0.693 / sqrt 3) = [3.14, 127.5]
    assert low == pytest.approx(20 * math.exp(-4.3027 * math.log(2) / math.sqrt(3)), rel=1e-4)
    assert (out["low"], out["high"]) == pytest.approx((low, high))
    assert out["mean"] == pytest.approx(70 / 3) and out["n"] == 3
    assert out["method"] == M.METHOD_LOG
    assert out["ci95"] == pytest.approx((high - low) / 2)


def test_interval_logit_scale_known_sample():
    values = [0.6, 0.7, 0.9, 0.8]
    out = M.interval95(values, unit=True)
    low, high = _t_interval(values, scipy_special.logit, scipy_special.expit)
    assert (out["low"], out["high"]) == pytest.approx((low, high))
    assert out["method"] == M.METHOD_LOGIT
    assert 0 < out["low"] < out["mean"] < out["high"] < 1


def test_interval_on_the_bound_is_a_clipped_t_interval():
    values = [0.98, 1.0, 1.0]        # Jain = 1 exactly: logit undefined
    out = M.interval95(values, unit=True)
    mean, s = np.mean(values), np.std(values, ddof=1)
    half = scipy_stats.t.ppf(0.975, 2) * s / np.sqrt(3)
    assert out["method"] == M.METHOD_CLIPPED
    assert out["low"] == pytest.approx(mean - half) and out["high"] == 1.0
    zero = M.interval95([0.0, 1.0, 5.0])      # a count of 0 in one run: log undefined
    assert zero["method"] == M.METHOD_CLIPPED and zero["low"] == 0.0
    assert zero["high"] == pytest.approx(2 + scipy_stats.t.ppf(0.975, 2)
                                         * np.std([0, 1, 5], ddof=1) / np.sqrt(3))
    same = M.interval95([1.0, 1.0, 1.0], unit=True)
    assert (same["low"], same["high"]) == (1.0, 1.0)


def test_fewer_than_three_runs_give_no_interval():
    for values in ([4.0, 5.0], [5.0], [0.2, 0.9, None], []):
        out = M.interval95(values)
        assert out["low"] is None and out["high"] is None and out["ci95"] is None
        assert out["method"] == M.METHOD_NONE
    assert M.interval95([4.0, 5.0])["mean"] == 4.5 and M.interval95([4.0, 5.0])["n"] == 2
    assert M.interval95([None, None])["mean"] is None


def test_quantile_is_scipy_not_a_table():
    assert not hasattr(M, "_T975") and not hasattr(M, "t_quantile_975")
    values = [float(v) for v in range(1, 38)]          # df = 36: no table row of old
    out = M.interval95(values)
    assert (out["low"], out["high"]) == pytest.approx(_t_interval(values, np.log, np.exp))


@pytest.mark.parametrize("unit", [True, False])
def test_bounds_are_never_crossed(unit):
    rng = random.Random(11)
    for _ in range(3000):
        n = rng.randint(3, 8)
        where = rng.random()
        if unit:        # near 0, near 1, or spread, sometimes exactly on a bound
            centre = rng.choice([1e-9, 1e-4, 0.01, 0.5, 0.99, 1 - 1e-4, 1 - 1e-9])
            values = [min(1.0, max(0.0, centre + rng.gauss(0, rng.choice([1e-6, 0.01, 0.3]))))
                      for _ in range(n)]
        else:           # near 0, with zeros, or heavy-tailed
            values = [max(0.0, rng.expovariate(1.0) * 10 ** rng.uniform(-6, 6) - where * 0.1)
                      for _ in range(n)]
        out = M.interval95(values, unit=unit)
        assert out["low"] is not None and out["low"] <= out["high"]
        assert out["low"] >= 0.0
        if unit:
            assert out["high"] <= 1.0
        assert math.isfinite(out["low"]) and not math.isnan(out["high"])


def test_aggregate_is_over_runs_not_requests(run):
    # three runs of the fixture's 7 ok requests each: n is 3 runs, not 21 requests
    runs = [dict(run, goodput_rps=g, backend_share={"b1": b, "b2": 1 - b})
            for g, b in ((3.5, 2 / 7), (4.5, 3 / 7), (4.0, 0.4))]
    agg = M.aggregate(runs)
    assert agg["goodput_rps"]["n"] == 3
    assert agg["goodput_rps"]["values"] == [3.5, 4.5, 4.0]
    low, high = _t_interval([3.5, 4.5, 4.0], np.log, np.exp)
    assert (agg["goodput_rps"]["low"], agg["goodput_rps"]["high"]) == pytest.approx((low, high))
    assert agg["goodput_rps"]["mean"] == pytest.approx(4.0)
    assert agg["jain_backends"]["method"] == M.METHOD_LOGIT
    assert agg["backend_share"]["b1"]["method"] == M.METHOD_LOGIT
    assert agg["backend_share"]["b1"]["mean"] == pytest.approx((5 / 7 + 0.4) / 3)
    # every run had 2 errors: a zero-width interval, on the log scale (no value is 0)
    assert agg["errors"]["method"] == M.METHOD_LOG
    assert (agg["errors"]["low"], agg["errors"]["high"]) == pytest.approx((2.0, 2.0))
    two = M.aggregate(runs[:2])
    assert two["goodput_rps"]["low"] is None and two["goodput_rps"]["n"] == 2


def test_error_rate(run):
    assert run["error_rate"] == pytest.approx(2 / 9)


def test_timeseries_per_backend(records):
    ts = M.timeseries(records, WINDOW, ["b1", "b2"])
    assert ts["t"] == [0.0, 1.0]
    assert ts["backends"] == {"b1": [2, 0], "b2": [4, 1]}
    assert ts["errors"] == [1, 1]


def test_latency_cdf(records):
    xs, fs = M.latency_cdf(records, WINDOW)
    assert xs == pytest.approx([10, 20, 30, 40, 50, 60, 80])
    assert fs[-1] == 1.0 and fs[0] == pytest.approx(1 / 7)


def _load(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as fp:
        return json.load(fp)


def test_iperf3_flows():
    flows = [
        {"flow": "h1-1", "client": "h1", "backend": "b1", "result": _load("iperf3_tcp_a.json")},
        {"flow": "h2-1", "client": "h2", "backend": "b1", "result": _load("iperf3_tcp_b.json")},
        {"flow": "h3-1", "client": "h3", "backend": "b2", "result": _load("iperf3_udp.json")},
        {"flow": "h4-1", "client": "h4", "backend": None,
         "result": {"error": "unable to connect to server"}},
    ]
    out = M.iperf3_run_metrics(flows, BACKENDS)
    # received: 6.0, 4.0 and 10 * (1 - 0.2) = 8.0 Mbit/s
    assert out["flow_mbps"] == pytest.approx({"h1-1": 6.0, "h2-1": 4.0, "h3-1": 8.0})
    assert out["total_mbps"] == pytest.approx(18.0)
    assert out["failed_flows"] == 1 and "unable to connect" in out["flow_errors"]["h4-1"]
    assert out["jain_flows"] == pytest.approx(18 ** 2 / (3 * (36 + 16 + 64)))
    assert out["min_max_flows"] == pytest.approx(0.5)
    assert out["backend_flows"] == {"b1": 2, "b2": 1}
    # flows per weight: b1 2/1 = 2, b2 1/2 = 0.5
    assert out["jain_backends"] == pytest.approx(2.5 ** 2 / (2 * (4 + 0.25)))


def test_per_client_windows(records):
    # h1's window starts later: its ids 1-3 (scheduled 100.0-100.2) fall out
    windows = {"h1": (100.25, 102.25), "h2": (100.0, 102.0)}
    out = M.http_run_metrics(records, windows, BACKENDS, ["h1", "h2"])
    assert out["sent"] == 6 and out["ok"] == 4          # h1: 7 (503), 9; h2: 4, 5, 6, 8
    assert out["duration_s"] == 2.0
    assert out["client_requests"] == {"h1": 1, "h2": 3}
    assert M.in_window(records, {"h3": (0, 1e12)}) == []


def test_iperf3_parallel_streams_are_flows():
    flows = [{"flow": "h1", "client": "h1", "backend": "b2",
              "result": _load("iperf3_tcp_2streams.json")}]
    out = M.iperf3_run_metrics(flows, BACKENDS)
    assert out["flow_mbps"] == pytest.approx({"h1/1": 3.0, "h1/2": 1.0})
    assert out["flows"] == 2 and out["total_mbps"] == pytest.approx(4.0)
    assert out["jain_flows"] == pytest.approx(16 / (2 * 10))
    assert out["backend_flows"] == {"b1": 0, "b2": 2}


def test_fault_impact(records):
    # b1 "killed" at 100.5, restored at 100.95: id 7 (503, 100.6) and 8 (timeout, 100.7) fail
    faults = [{"action": "kill_backend", "target": "b2", "applied": 100.5, "skipped": None},
              {"action": "restore_backend", "target": "b2", "applied": 100.95,
               "skipped": None}]
    out = M.fault_impact(records, WINDOW, faults)
    assert out["fault_errors"] == 2
    assert out["error_period_s"] == pytest.approx(0.2)
    assert out["recovery_s"] == pytest.approx(0.05)       # id 9 by b2 starts at 101.0
    assert M.fault_impact(records, WINDOW, []) == {}
    skipped = [dict(faults[0], skipped="not supported")]
    assert M.fault_impact(records, WINDOW, skipped) == {}
    out = M.fault_impact(records, WINDOW, faults[:1])
    assert out["recovery_s"] is None and out["fault_errors"] == 2
