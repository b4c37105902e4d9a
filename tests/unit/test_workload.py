"""Pure load-generator logic: config, arrival schedules, think times, mix, requests, records, summary."""
import json
import random
import statistics

import pytest

from lb_apps.loadgen import workload as wl
from lb_apps.records import RecordWriter, check_record, encode_record, read_records
from lblab_core.errors import InputError


def cfg(**data):
    return wl.config_from_dict({"url": "http://127.0.0.1:8080/", **data})


def test_defaults_and_url():
    c = cfg()
    assert c.target == wl.Target("http", "127.0.0.1", 8080, "/")
    assert c.mode == "closed" and c.connections == 1 and c.keepalive
    assert cfg(mode="open").connections == wl.DEFAULT_OPEN_POOL_SIZE
    assert cfg(users=7).connections == 7 and cfg(pool_size=3).connections == 3
    t = wl.parse_url("https://lab.example/a?b=1")
    assert (t.scheme, t.port, t.path, t.host_header) == ("https", 443, "/a?b=1", "lab.example")
    assert wl.parse_url("http://10.0.0.5:81").host_header == "10.0.0.5:81"
    assert c.mix == (wl.MixEntry(path="/"),)


@pytest.mark.parametrize("data, words", [
    ({"url": "ftp://x/"}, ["url: ", "ftp://x/", "http://"]),
    ({"url": "http:///nohost"}, ["url: ", "host"]),
    ({"url": "http://h:99999/"}, ["url: "]),
    ({"rate": 0}, ["rate: ", "0"]),
    ({"mode": "half"}, ["mode: ", "half", "closed"]),
    ({"users": 0}, ["users: "]),
    ({"duration_s": 0}, ["duration_s: "]),
    ({"duration_s": 1e9}, ["duration_s: "]),
    ({"keepalive": "yes"}, ["keepalive: ", "true or false"]),
    ({"users": True}, ["users: "]),
    ({"max_requests": 0}, ["max_requests: "]),
    ({"arrival": "bursty"}, ["arrival: ", "bursty"]),
    ({"speed": 1}, ["unknown", "speed"]),
    ({"mix": [{"path": "nope"}]}, ["mix[0].path", "nope"]),
    ({"mix": [{"path": "/", "weight": 0}]}, ["mix[0].weight"]),
    ({"mix": [{}, {"method": "CONNECT"}]}, ["mix[1].method", "CONNECT"]),
    ({"mix": [{"headers": {"Bad Name": "v"}}]}, ["mix[0].headers"]),
    ({"mix": [{"cookies": {"a": "1\r\nX: y"}}]}, ["mix[0].cookies"]),
    ({"mix": [{"colour": 1}]}, ["mix[0]", "colour"]),
    ({"error_backoff_ms": -1}, ["error_backoff_ms: ", "-1", ">= 0"]),
    ({"error_backoff_ms": 1e9}, ["error_backoff_ms: "]),
    ({"error_backoff_ms": float("nan")}, ["error_backoff_ms: "]),
    ({"error_backoff_ms": "20"}, ["error_backoff_ms: ", "a number"]),
    ({"rate": 50}, ["rate: 50: applies to mode open only"]),
    ({"mode": "open", "think_dist": "exponential"}, ["think_dist: ", "mode closed only"]),
])
def test_bad_settings_name_field_and_value(data, words):
    with pytest.raises(InputError) as info:
        wl.config_from_dict({"url": "http://127.0.0.1/", **data})
    for word in words:
        assert word in str(info.value)


def test_url_is_required():
    with pytest.raises(InputError, match="url: is required"):
        wl.config_from_dict({})


def test_constant_schedule_spacing_and_bounds():
    offsets = list(wl.arrival_offsets("constant", 100.0, 1.0, random.Random(1)))
    assert len(offsets) == 100 and offsets[0] == 0.0
    assert all(abs((b - a) - 0.01) < 1e-9 for a, b in zip(offsets, offsets[1:]))
    assert len(list(wl.arrival_offsets("constant", 100.0, 1.0, random.Random(1), 7))) == 7


def test_poisson_schedule_mean_rate_and_seed():
    offsets = list(wl.arrival_offsets("poisson", 1000.0, 20.0, random.Random(4)))
    assert len(offsets) / 20.0 == pytest.approx(1000.0, rel=0.02)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert statistics.fmean(gaps) == pytest.approx(0.001, rel=0.02)
    assert statistics.stdev(gaps) == pytest.approx(0.001, rel=0.05)   # exponential: sd = mean
    assert all(0 <= o < 20.0 for o in offsets) and offsets == sorted(offsets)
    again = list(wl.arrival_offsets("poisson", 1000.0, 20.0, random.Random(4)))
    assert offsets == again
    ref = random.Random(4)
    assert offsets[0] == ref.expovariate(1000.0)
    assert len(list(wl.arrival_offsets("poisson", 1000.0, 20.0, random.Random(4), 5))) == 5


def test_think_times():
    assert wl.make_think("fixed", 0.5, random.Random(1))() == 0.5
    think = wl.make_think("exponential", 0.1, random.Random(2))
    assert statistics.fmean(think() for _ in range(20000)) == pytest.approx(0.1, rel=0.03)
    assert wl.make_think("exponential", 0.0, random.Random(2))() == 0.0


def test_mix_choice_follows_weights_and_seed():
    entries = wl.parse_mix([{"path": "/a", "weight": 1}, {"path": "/b", "weight": 3},
                            {"path": "/c", "weight": 6}], "/")
    mix = wl.RequestMix(entries, random.Random(9))
    picks = [mix.choose().path for _ in range(30000)]
    for path, share in (("/a", 0.1), ("/b", 0.3), ("/c", 0.6)):
        assert picks.count(path) / len(picks) == pytest.approx(share, abs=0.015)
    again = wl.RequestMix(entries, random.Random(9))
    assert picks[:50] == [again.choose().path for _ in range(50)]


def test_seeded_streams_are_independent():
    a, m, t = wl.seeded_rngs(1)
    assert len({a.random(), m.random(), t.random()}) == 3


def test_compile_and_render_request():
    entry = wl.parse_mix([{"path": "/api", "method": "POST", "body_size": 4,
                           "headers": {"X-Tenant": "t1"}, "cookies": {"a": "1"}}], "/")[0]
    tpl = wl.compile_request(entry, "10.0.0.5", keepalive=False)
    data = wl.render_request(tpl, "lg-1", {"SRV": "b2"})
    assert data == (b"POST /api HTTP/1.1\r\nHost: 10.0.0.5\r\nUser-Agent: lblab-loadgen\r\n"
                    b"Connection: close\r\nContent-Length: 4\r\nX-Tenant: t1\r\n"
                    b"X-Request-Id: lg-1\r\nCookie: a=1; SRV=b2\r\n\r\nxxxx")
    plain = wl.render_request(wl.compile_request(wl.MixEntry("/"), "h:81", True), "r")
    assert plain == b"GET / HTTP/1.1\r\nHost: h:81\r\nUser-Agent: lblab-loadgen\r\n" \
                    b"X-Request-Id: r\r\n\r\n"


@pytest.mark.parametrize("value, expected", [
    ("SRV=b1; Path=/; HttpOnly", ("SRV", "b1")), ("a=", ("a", "")), ("novalue", None),
    ("=x", None),
])
def test_parse_set_cookie(value, expected):
    assert wl.parse_set_cookie(value) == expected


def test_fast_record_line_equals_json_and_round_trips(tmp_path):
    items = [
        ("lg-1", "lg", 100.5, 100.50001, 100.6, 200, 321, "b1", None, "GET", "/x\"y", "new",
         "HIT", False, 0.0, 0.0),
        ("lg-2", "lg", 101.0, None, 101.2, None, 0, None, "connect_refused", "POST", "/",
         None, None, True, 0.0125, 0.00031),
    ]
    path = str(tmp_path / "lg.jsonl")
    writer = RecordWriter(path, encode=wl.encode_record_line)
    for item in items:
        line = wl.encode_record_line(item)
        assert line == encode_record(wl.build_record(*item))
        writer.add(item)
    writer.close()
    records = read_records(path, "loadgen")
    assert records == [wl.build_record(*item) for item in items]
    assert records[1]["warmup"] is True and "warmup" not in records[0]
    for r in records:
        check_record(r, "loadgen")
    with pytest.raises(FileExistsError):
        RecordWriter(path)


def test_outcome_and_summary():
    assert wl.outcome(200, None) == "ok" and wl.outcome(304, None) == "ok"
    assert wl.outcome(404, None) == "status_4xx" and wl.outcome(503, None) == "status_5xx"
    assert wl.outcome(None, "reset") == "reset"
    records = [wl.build_record(f"r{i}", "lg", float(i), float(i), i + (i + 1) / 1000.0, 200,
                               10, "b1", None, "GET", "/", "reused", None) for i in range(100)]
    records.append(wl.build_record("e", "lg", 1.0, None, 1.5, None, 0, None, "timeout", "GET",
                                   "/", None, None))
    records.append(wl.build_record("f", "lg", 1.0, 1.0, 1.5, 503, 0, "b1", None, "GET",
                                   "/", "new", None))
    records.append(wl.build_record("w", "lg", 0.0, 0.0, 9.0, 200, 0, "b1", None, "GET",
                                   "/", "new", None, warmup=True))
    s = wl.summarize(records, 10.0)
    assert s["sent"] == 102 and s["ok"] == 100
    assert s["errors"] == {"status_5xx": 1, "timeout": 1}
    assert s["sent"] == s["ok"] + sum(s["errors"].values())
    assert s["rps"] == 10.2 and s["status"] == {"200": 100, "503": 1}
    assert s["latency_ms"]["p50"] == 50.0 and s["latency_ms"]["p99"] == 99.0
    assert s["latency_ms"]["max"] == 100.0
    assert s["send_lag_ms"] == {"p50": 0.0, "p99": 0.0}
    json.dumps(s)


def test_percentile_nearest_rank():
    assert wl.percentile([], 50) is None
    assert wl.percentile([1, 2, 3, 4], 50) == 2
    assert wl.percentile([1, 2, 3, 4], 100) == 4 and wl.percentile([5], 99) == 5


def test_error_backoff_setting_and_pause_after():
    assert cfg().error_backoff_ms == wl.DEFAULT_ERROR_BACKOFF_MS == 20.0
    assert cfg(error_backoff_ms=0).error_backoff_ms == 0
    assert cfg(error_backoff_ms=5).error_backoff_ms == 5
    # a full response (any status): the think time only
    assert wl.pause_after(0.0, None, 0.02) == 0.0
    assert wl.pause_after(0.3, None, 0.02) == 0.3
    # a transport error: at least the back-off, the think time if longer (not their sum)
    for kind in wl.ERROR_KINDS:
        assert wl.pause_after(0.0, kind, 0.02) == 0.02
    assert wl.pause_after(0.005, "reset", 0.02) == 0.02
    assert wl.pause_after(0.3, "connect_refused", 0.02) == 0.3
    assert wl.pause_after(0.0, "connect_refused", 0.0) == 0.0       # 0 disables it
