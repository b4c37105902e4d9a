"""Load generator after transport errors (127.0.0.1 only): closed-loop users back off, open loop keeps its schedule.

Before the back-off, 4 closed-loop users against a closed port wrote ~8,000 records in one second
(a tight connect-refused loop using a full core). The bounds below are on record counts.
"""
import asyncio
import time

import pytest
import uvloop

from lb_apps.backend import model as backend_model
from lb_apps.loadgen import workload as wl
from lb_apps.backend.server import BackendThread
from lb_apps.loadgen.client import LoadGenerator, run
from lb_apps.records import read_records
from lblab_core.netutil import free_port

pytestmark = pytest.mark.timeout(30)


def config(port, tmp_path, name="lg.jsonl", **data):
    return wl.config_from_dict({"url": f"http://127.0.0.1:{port}/", "record":
                                str(tmp_path / name), "timeout_s": 2.0, **data})


def lg(port, tmp_path, name="lg.jsonl", **data):
    cfg = config(port, tmp_path, name, **data)
    summary = run(cfg)
    return summary, read_records(cfg.record, "loadgen")


def balanced(summary, records):
    return summary["sent"] == len(records) == summary["ok"] + sum(summary["errors"].values())


def test_closed_loop_backs_off_after_refused_connects(tmp_path):
    summary, records = lg(free_port(), tmp_path, users=4, duration_s=1.0)
    assert wl.DEFAULT_ERROR_BACKOFF_MS == 20.0
    # each user: at most one attempt per 20 ms (+ its first one, + timer slack)
    assert 40 <= len(records) <= 4 * (1.0 / 0.020 + 2), len(records)
    assert balanced(summary, records)
    assert summary["errors"] == {"connect_refused": summary["sent"]} and summary["ok"] == 0


def test_closed_loop_backs_off_after_a_peer_close(tmp_path):
    # fault "close": the backend accepts, sends half a response and closes, at once
    with BackendThread(backend_model.config_from_dict(
            {"host": "127.0.0.1", "port": 0, "fault": "close"})) as bt:
        summary, records = lg(bt.port, tmp_path, users=4, duration_s=0.5, error_backoff_ms=25)
    assert 4 <= len(records) <= 4 * (0.5 / 0.025 + 2), len(records)
    assert balanced(summary, records) and set(summary["errors"]) <= {"closed", "reset"}


def test_one_user_waits_the_backoff_between_attempts(tmp_path):
    summary, records = lg(free_port(), tmp_path, users=1, duration_s=0.5, error_backoff_ms=30)
    planned = sorted(records, key=lambda r: r["scheduled"])
    gaps = [b["scheduled"] - a["end"] for a, b in zip(planned, planned[1:])]
    assert len(records) <= 0.5 / 0.030 + 2 and len(gaps) >= 3
    # uvloop timers round to milliseconds: a timer may fire up to ~1 ms early
    assert min(gaps) >= 0.030 - 0.002, min(gaps)
    assert balanced(summary, records)


def test_backoff_zero_retries_at_once(tmp_path):
    # 400 refused attempts by 4 users: with the default 20 ms back-off they would take 2 s
    summary, records = lg(free_port(), tmp_path, users=4, duration_s=5.0, max_requests=400,
                          error_backoff_ms=0)
    assert summary["sent"] == len(records) == 400 and summary["duration"] < 1.5
    assert balanced(summary, records)


def test_no_backoff_after_an_http_error_status(tmp_path):
    # a 500 is a full response, paced by the server that sent it: the user goes on at once
    with BackendThread(backend_model.config_from_dict(
            {"host": "127.0.0.1", "port": 0, "error_rate": 1.0})) as bt:
        summary, records = lg(bt.port, tmp_path, users=1, duration_s=0.3, error_backoff_ms=50)
    assert summary["errors"] == {"status_5xx": summary["sent"]}
    assert len(records) > 0.3 / 0.050 * 4, len(records)   # far above one per back-off
    assert balanced(summary, records)


def test_open_loop_keeps_its_schedule_and_bounds_a_catch_up_burst(tmp_path):
    # The event loop stalls for 200 ms (a blocking call): 200 arrivals become overdue at once.
    # They must go out through at most pool_size connections (the rest wait in the queue),
    # and the run must write exactly one record per planned arrival, no more: failures do
    # not create extra requests, and the back-off (closed loop only) does not thin the plan.
    cfg = config(free_port(), tmp_path, mode="open", rate=1000, arrival="constant",
                 duration_s=0.5, pool_size=4, error_backoff_ms=1000)
    most_open = []

    async def main():
        gen = LoadGenerator(cfg)
        dispatch = gen._dispatch

        def counting_dispatch(req):
            dispatch(req)
            most_open.append(gen.open)
        gen._dispatch = counting_dispatch
        asyncio.get_running_loop().call_later(0.1, time.sleep, 0.2)
        return await gen.run()
    summary = uvloop.run(main())
    records = read_records(cfg.record, "loadgen")
    assert summary["sent"] == len(records) == 500 and balanced(summary, records)
    assert max(most_open) <= 4
    assert summary["errors"] == {"connect_refused": 500}
    lags = sorted(r["start"] - r["scheduled"] for r in records)
    assert lags[-1] > 0.1        # the stall is visible as send lag, not hidden


def test_open_loop_sender_behind_its_schedule_yields_and_still_sends_every_arrival(tmp_path):
    # 1,000,000 req/s planned for 50 ms: far more than one process can send, so the sender is
    # overdue from the start. It must let the event loop run (connects, timeouts, SIGINT)
    # during the backlog (before: a probe due after 5 ms ran only once all 50,000 requests
    # existed), and still send every planned arrival, late, instead of dropping the rest at
    # the deadline.
    cfg = config(free_port(), tmp_path, mode="open", rate=1_000_000, arrival="constant",
                 duration_s=0.05, pool_size=1, timeout_s=0.3)
    created_at_probe = []

    async def main():
        gen = LoadGenerator(cfg)
        asyncio.get_running_loop().call_later(0.005, lambda: created_at_probe.append(gen.created))
        return await gen.run()
    summary = uvloop.run(main())
    records = read_records(cfg.record, "loadgen")
    assert created_at_probe and created_at_probe[0] < 25_000, created_at_probe
    planned = len(list(wl.arrival_offsets("constant", 1_000_000, 0.05, None)))   # ~50,000
    assert summary["sent"] == len(records) == planned and balanced(summary, records)
    assert summary["duration"] == 0.05
    assert set(summary["errors"]) <= {"connect_refused", "timeout"}
