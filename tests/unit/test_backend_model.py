"""Pure backend decisions: config, service times, capacity, errors, faults, record lines."""
import json
import math
import random
import statistics

import pytest

from lb_apps.backend import model as m
from lb_apps.records import check_record, encode_record
from lblab_core.errors import InputError


def test_defaults_are_valid():
    cfg = m.config_from_dict({})
    assert cfg.capacity is None and cfg.fault == "none" and cfg.service_mean_ms == 0.0


@pytest.mark.parametrize("data, words", [
    ({"colour": 1}, ["unknown key", "colour"]),
    ({"port": "80"}, ["port: '80'", "an integer"]),
    ({"port": 70000}, ["port: 70000", "<= 65535"]),
    ({"capacity": 0}, ["capacity: 0", ">= 1"]),
    ({"capacity": True}, ["capacity: true"]),
    ({"error_rate": 1.5}, ["error_rate: 1.5", "<= 1"]),
    ({"service_dist": "pareto"}, ["service_dist: 'pareto'", "lognormal"]),
    ({"service_mean_ms": -1}, ["service_mean_ms: -1"]),
    ({"fault": "explode"}, ["fault: 'explode'", "refuse"]),
    ({"overflow": "drop"}, ["overflow: 'drop'", "queue"]),
    ({"cache_control": "a\r\nSet-Cookie: x"}, ["cache_control: ", "no CR, LF"]),
    ({"response_size": m.MAX_RESPONSE_BYTES + 1}, ["response_size: "]),
    ({"name": "two words"}, ["name: 'two words'"]),
])
def test_bad_settings_name_field_and_value(data, words):
    with pytest.raises(InputError) as info:
        m.config_from_dict(data)
    for word in words:
        assert word in str(info.value)


def test_fixed_service_time():
    sample = m.make_service_sampler("fixed", 0.25, 0.5, random.Random(1))
    assert [sample() for _ in range(3)] == [0.25, 0.25, 0.25]


def test_zero_mean_is_always_zero_whatever_the_distribution():
    for dist in m.SERVICE_DISTS:
        assert m.make_service_sampler(dist, 0.0, 0.5, random.Random(1))() == 0.0


@pytest.mark.parametrize("dist", ["exponential", "lognormal"])
def test_seeded_samples_are_exact_and_reproducible(dist):
    a = m.make_service_sampler(dist, 0.01, 0.5, random.Random(7))
    b = m.make_service_sampler(dist, 0.01, 0.5, random.Random(7))
    first = [a() for _ in range(5)]
    assert first == [b() for _ in range(5)]
    ref = random.Random(7)
    if dist == "exponential":
        expected = [ref.expovariate(100.0) for _ in range(5)]
    else:
        mu = math.log(0.01) - 0.125
        expected = [ref.lognormvariate(mu, 0.5) for _ in range(5)]
    assert first == expected


@pytest.mark.parametrize("dist, sigma", [("exponential", 0.5), ("lognormal", 0.5),
                                         ("lognormal", 1.0)])
def test_sample_means_match_the_configured_mean(dist, sigma):
    sample = m.make_service_sampler(dist, 0.02, sigma, random.Random(3))
    mean = statistics.fmean(sample() for _ in range(50000))
    assert mean == pytest.approx(0.02, rel=0.03)


def test_error_rate_is_seeded_and_close_to_the_fraction():
    _, rng1 = m.seeded_rngs(5)
    _, rng2 = m.seeded_rngs(5)
    a, b = m.make_error_decider(0.1, rng1), m.make_error_decider(0.1, rng2)
    draws = [a() for _ in range(20000)]
    assert draws == [b() for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(0.1, abs=0.01)
    assert not any(m.make_error_decider(0.0, random.Random(1))() for _ in range(100))
    assert all(m.make_error_decider(1.0, random.Random(1))() for _ in range(100))


def test_error_and_service_streams_are_independent():
    service_rng, error_rng = m.seeded_rngs(1)
    assert service_rng.random() != error_rng.random()


@pytest.mark.parametrize("in_service, queued, capacity, overflow, limit, expected", [
    (100, 0, None, "queue", None, m.SERVE),
    (1, 0, 2, "queue", None, m.SERVE),
    (2, 0, 2, "queue", None, m.QUEUE),
    (1, 1, 2, "queue", None, m.QUEUE),      # a free slot but others wait first: stay in order
    (2, 5, 2, "queue", 5, m.REJECT),
    (2, 4, 2, "queue", 5, m.QUEUE),
    (2, 0, 2, "queue", 0, m.REJECT),
    (2, 0, 2, "reject", None, m.REJECT),
    (1, 0, 2, "reject", None, m.SERVE),
])
def test_admission(in_service, queued, capacity, overflow, limit, expected):
    assert m.admit(in_service, queued, capacity, overflow, limit) == expected


@pytest.mark.parametrize("path, expected", [
    ("/size/10", (200, 10)), ("/size/0", (200, 0)), ("/", (200, 77)), ("/a/b", (200, 77)),
    ("/size/x", (400, 0)), ("/size/", (400, 0)), ("/size/-1", (400, 0)),
    (f"/size/{m.MAX_RESPONSE_BYTES + 1}", (400, 0)),
])
def test_size_for_path(path, expected):
    assert m.size_for_path(path, 77) == expected


def test_fault_table_health():
    assert m.FAULT_MODES["none"].health_status == 200
    assert m.FAULT_MODES["slow"].health_status == 200 and m.FAULT_MODES["slow"].extra_delay
    assert not m.FAULT_MODES["hang"].answer
    assert m.FAULT_MODES["close"].truncate
    assert not m.FAULT_MODES["refuse"].listen
    assert {k for k, v in m.FAULT_MODES.items() if v.health_status == 503} == \
        {"hang", "close", "refuse"}


def test_parse_fault_query():
    assert m.parse_fault_query("mode=slow&delay_ms=200") == ("slow", 0.2, None)
    assert m.parse_fault_query("mode=refuse&duration_s=3") == ("refuse", None, 3.0)
    assert m.parse_fault_query("mode=none") == ("none", None, None)


@pytest.mark.parametrize("query, words", [
    ("", ["None", "refuse"]), ("mode=boom", ["boom"]),
    ("mode=slow&delay_ms=x", ["delay_ms 'x' must be milliseconds >= 0"]),
    ("mode=slow&delay_ms=-1", ["delay_ms"]), ("mode=slow&color=red", ["color"]),
    ("mode=slow&delay=0.2", ["fault parameter delay was renamed delay_ms (milliseconds)"]),
    ("mode=refuse&duration=1", ["duration was renamed duration_s"]),
])
def test_parse_fault_query_errors(query, words):
    with pytest.raises(m.FaultRequestError) as info:
        m.parse_fault_query(query)
    for word in words:
        assert word in str(info.value)


def test_fast_line_encoder_matches_json_records():
    encode = m.make_line_encoder("b1")
    item = (b'id"\\1', 7, 1700000000.123456, 0.001, 0.5, 200, 1234, b"GET", b"/p\xe9?", "1.2.3.4:5")
    line = encode(item)
    record = json.loads(line)
    expected = m.build_record('id"\\1', "b1", 1700000000.123456, 0.001, 0.5, 200, 1234, "GET",
                              "/p\xe9?", "1.2.3.4:5")
    assert record == expected
    assert line == encode_record(expected)
    check_record(record, "backend")
    assert json.loads(encode((None, 9, 1.0, 0.0, 0.0, 0, 0, b"GET", b"/", None)))["id"] == "b1-9"
