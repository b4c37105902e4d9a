"""A run's load fidelity from synthetic records (experiments.fidelity): pool waits, the load
generator's send lag, backends queueing at capacity, and the flags and lines each gives."""
import pytest

from experiments import fidelity as F
from lb_apps.loadgen import workload as wl


def lg(i, pool_wait=0.0, lag=0.0001, latency=0.010, warmup=False, v1=False, error=None,
       connect=0.0):
    """Load generator record i: scheduled at i/100 s, sent `lag + pool_wait + connect` later."""
    scheduled = 1000.0 + i / 100.0
    start = scheduled + pool_wait + connect + lag
    record = wl.build_record(f"h1-{i}", "h1", scheduled, start, scheduled + latency,
                             None if error else 200, 100, "b1", error, "GET", "/",
                             "new" if connect else "reused", None, warmup=warmup,
                             pool_wait=pool_wait, connect=connect)
    if v1:
        del record["pool_wait"], record["connect"]
        record["v"] = 1
    return record


def be(i, wait, backend="b1"):
    return {"v": 2, "id": f"h1-{i}", "backend": backend, "arrival": 1000.0 + i / 100.0,
            "wait": wait, "service_time": 0.004, "status": 200, "bytes": 100, "method": "GET",
            "path": "/", "client": "10.0.0.1:20001"}


def test_no_pool_wait_no_lag_no_queueing_gives_no_flag():
    records = [lg(i) for i in range(200)]
    found = F.load_fidelity(records, {"b1": [be(i, 0.0) for i in range(200)]}, "open")
    assert found["warnings"] == []
    assert found["pool_limited"] is False and found["behind_schedule"] is False
    assert found["pool_waited"] == 0 and found["pool_wait_mean_ms"] is None
    assert found["backends_queued"] == 0
    assert found["backend_queueing"] == {"b1": {"requests": 200, "queued": 0,
                                                "queued_share": 0.0, "mean_wait_ms": 0.0}}


def test_pool_waits_count_mean_p99_and_the_threshold():
    # 2 of 200 waited 5 ms: 1.0 %, not more than 1 %: counted, not flagged
    records = [lg(i, pool_wait=0.005 if i < 2 else 0.0) for i in range(200)]
    stats = F.pool_wait_stats(records)
    assert stats["requests"] == 200 and stats["waited"] == 2 and stats["waited_over"] == 2
    assert stats["mean_ms"] == 5.0 and stats["max_ms"] == 5.0
    assert stats["p99_ms"] == 0.0      # nearest rank: the 198th of 200, the last that did not
    three = F.pool_wait_stats([lg(i, pool_wait=0.005 if i < 3 else 0.0) for i in range(200)])
    assert three["p99_ms"] == 5.0
    assert F.load_fidelity(records, {}, "open")["pool_limited"] is False
    # 3 of 200 (1.5 %): pool_limited, and one line that says what and what to do
    records = [lg(i, pool_wait=0.005 if i < 3 else 0.0) for i in range(200)]
    found = F.load_fidelity(records, {}, "open")
    assert found["pool_limited"] is True and found["pool_waited_long"] == 3
    (line,) = found["warnings"]
    assert line.startswith("the client connection pool limited the load: 3 of 200 requests "
                           "(1.5%) waited more than 1 ms")
    assert "Raise workload.users" in line
    # waits of at most 1 ms are not long waits, however many
    short = [lg(i, pool_wait=0.0009) for i in range(200)]
    found = F.load_fidelity(short, {}, "closed")
    assert found["pool_waited"] == 200 and found["pool_waited_long"] == 0
    assert found["pool_limited"] is False


def test_warmup_records_and_v1_records():
    records = [lg(i, pool_wait=0.05, warmup=True) for i in range(50)]
    records += [lg(i, v1=True) for i in range(50, 150)]
    stats = F.pool_wait_stats(records)
    assert stats["requests"] == 100 and stats["waited"] == 0 and stats["p99_ms"] == 0.0


def test_send_lag_leaves_the_pool_wait_and_the_connect_out_and_flags_open_loop_only():
    waited = [lg(i, pool_wait=0.02, lag=0.0001) for i in range(100)]
    assert F.send_lag_stats(waited)["p99_ms"] == pytest.approx(0.1)
    connecting = [lg(i, connect=0.007, lag=0.0001, latency=0.012) for i in range(100)]
    assert F.send_lag_stats(connecting)["p99_ms"] == pytest.approx(0.1)
    assert F.load_fidelity(connecting, {}, "open")["behind_schedule"] is False
    v1 = [lg(i, connect=0.007, lag=0.0001, v1=True) for i in range(100)]
    assert F.send_lag_stats(v1)["p99_ms"] == pytest.approx(7.1)   # v1: no connect to subtract
    late = [lg(i, lag=0.005, latency=0.020) for i in range(100)]   # 5 ms of 20 ms
    assert F.send_lag_stats(late)["p99_ms"] == pytest.approx(5.0)
    found = F.load_fidelity(late, {}, "open")
    assert found["behind_schedule"] is True and found["send_lag_p99_ms"] == pytest.approx(5.0)
    (line,) = found["warnings"]
    assert line.startswith("the load generator fell behind its schedule: send lag p99 5.0 ms "
                           "(25% of the latency p99, 20.0 ms)")
    assert F.load_fidelity(late, {}, "closed")["behind_schedule"] is False
    # a lag small beside the latency (5 ms of 100 ms), or below 1 ms, is not flagged
    assert F.load_fidelity([lg(i, lag=0.005, latency=0.1) for i in range(100)], {},
                           "open")["behind_schedule"] is False
    assert F.load_fidelity([lg(i, lag=0.0009, latency=0.002) for i in range(100)], {},
                           "open")["behind_schedule"] is False


def test_backend_queueing_is_a_note_per_backend_inside_the_window():
    b1 = [be(i, 0.004 if i % 4 == 0 else 0.0) for i in range(100)]       # 25 % queued
    b2 = [be(i, 0.0, "b2") for i in range(100)]
    q = F.backend_queueing({"b1": b1, "b2": b2})
    assert q["b1"] == {"requests": 100, "queued": 25, "queued_share": 0.25,
                       "mean_wait_ms": 1.0}
    assert q["b2"]["queued"] == 0
    # the window keeps arrivals in [t0, t1] only: i = 0..49
    assert F.backend_queueing({"b1": b1}, [1000.0, 1000.49])["b1"]["requests"] == 50
    assert F.backend_queueing({"b1": b1}, [2000.0, 2001.0]) == {}
    found = F.load_fidelity([lg(i) for i in range(100)], {"b1": b1, "b2": b2}, "open")
    assert found["backends_queued"] == 1
    assert found["pool_limited"] is False and found["behind_schedule"] is False
    (line,) = found["warnings"]
    assert line.startswith("note: backends queued requests at their capacity: b1 25% of 100 "
                           "(mean wait 1.0 ms).")


def test_flags_reach_the_batch_warnings():
    records = [lg(i, pool_wait=0.01) for i in range(100)]
    fid = F.load_fidelity(records, {}, "open")
    summary = {"runs": [{"meta": {"run": "l4-r1", "status": "ok", "fidelity": fid},
                         "metrics": {"sent": 100, "errors": 0}}]}
    (line,) = F.fidelity_warnings(summary)
    assert line.startswith("l4-r1: the client connection pool limited the load")
