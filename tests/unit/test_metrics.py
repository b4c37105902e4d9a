"""experiments.metrics against values computed by hand on small committed fixtures.

loadgen_small.jsonl (window [100, 102), backends b1 weight 1, b2 weight 2, clients h1, h2):
ids 1-6 and 9 ok (latencies 10, 20, 30, 40, 50, 60, 80 ms), 7 is a 503, 8 a timeout,
10 is scheduled after the window, 11 is a warm-up record.
"""
import json
import math
import os

import pytest

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


def test_mean_ci95_student_t():
    mean, half = M.mean_ci95([1, 2, 3, 4])
    assert mean == 2.5
    # s = sqrt(5/3) = 1.2910; t(0.975, 3) = 3.182
    assert half == pytest.approx(3.182 * math.sqrt(5 / 3) / 2)
    assert M.mean_ci95([5.0]) == (5.0, None)
    assert M.mean_ci95([None, None]) == (None, None)
    assert M.t_quantile_975(1) == 12.706
    assert M.t_quantile_975(35) == 2.042     # conservative: next smaller tabulated df (30)
    assert M.t_quantile_975(1000) == 1.960
    with pytest.raises(ValueError):
        M.t_quantile_975(0)


def test_aggregate_across_repetitions(run):
    other = dict(run, goodput_rps=4.5, backend_share={"b1": 3 / 7, "b2": 4 / 7})
    agg = M.aggregate([run, other])
    assert agg["goodput_rps"]["mean"] == pytest.approx(4.0)
    # s = 0.7071, t(1) = 12.706 -> 12.706 * 0.7071 / sqrt 2 = 6.353
    assert agg["goodput_rps"]["ci95"] == pytest.approx(6.353)
    assert agg["goodput_rps"]["n"] == 2
    assert agg["backend_share"]["b1"]["mean"] == pytest.approx(2.5 / 7)


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
