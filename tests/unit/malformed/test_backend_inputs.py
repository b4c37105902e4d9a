"""Malformed backend settings files (``lblab backend --check --config FILE``): wrong types,
non-finite numbers, out-of-range values, unknown and non-string keys, text that would reach a
header or a file name, the wrong top-level type. Each must be exit 2 and one located line."""
import pytest

from tests.unit.malformed.table import case, check, run

FLOATS = ("service_mean_ms", "service_sigma", "error_rate", "slow_delay_ms", "flush_period_s")
ROWS = [
    # wrong types (YAML 1.1: 1 is not true, "8" is not 8)
    ("capacity_true", "capacity: true\n", "capacity: true: expected an integer", 1),
    ("port_string", "name: b1\nport: '8'\n", "port: '8': expected an integer", 2),
    ("response_size_float", "response_size: 1.5\n", "1.5: expected an integer", 1),
    ("service_mean_string", "service_mean_ms: '0.1'\n", "'0.1': expected a number", 1),
    ("renamed_service_mean", "service_mean: 0.1\n", "service_mean: renamed service_mean_ms "
                                                    "(milliseconds", 1),
    ("name_int", "name: 8\n", "name: 8: expected a string", 1),
    ("cache_control_list", "cache_control: [a, b]\n", "a list: expected a string", 1),
    # out of range
    ("seed_2_64", f"seed: {2 ** 64}\n", "seed: 18446744073709551616: expected a number <=", 1),
    ("seed_negative", "seed: -1\n", "seed: -1: expected a number >= 0", 1),
    ("port_70000", "port: 70000\n", "port: 70000: expected a number <= 65535", 1),
    ("capacity_negative", "capacity: -3\n", "capacity: -3: expected a number >= 1", 1),
    ("queue_limit_negative", "capacity: 2\nqueue_limit: -1\n", "queue_limit: -1", 2),
    ("response_size_huge", f"response_size: {2 ** 40}\n", "expected a number <= 67108864", 1),
    ("error_rate_above_1", "error_rate: 1.5\n", "error_rate: 1.5: expected a number <= 1", 1),
    ("sigma_zero", "service_sigma: 0\n", "service_sigma: 0: expected a number > 0", 1),
    # choices, with "did you mean"
    ("service_dist_typo", "service_dist: exponental\n", "did you mean exponential?", 1),
    ("fault_typo", "fault: slwo\n", "'slwo': expected one of none, slow", 1),
    ("overflow_unknown", "overflow: drop\n", "'drop': expected one of queue, reject", 1),
    # keys
    ("unknown_key", "name: b1\ncapasity: 3\n", "unknown key 'capasity'", 2),
    ("unknown_key_suggests", "flush_perod_s: 1\n", "did you mean flush_period_s?", 1),
    ("int_key", "name: b1\n1: 2\n", "(top level): key 1: expected a string", 2),
    ("bool_key", "true: 1\n", "key true: expected a string", 1),
    ("key_with_newline", '"na\\nme": b1\n', "unknown key 'na\\nme'", 1),
    # text that reaches a header, a record or a file name
    ("name_newline", 'name: "b1\\n"\n', "name: 'b1\\n': expected a name", 1),
    ("name_crlf", 'name: "b1\\r\\nX-Evil: 1"\n', "expected a name", 1),
    ("cache_control_crlf", 'cache_control: "max-age=5\\r\\nSet-Cookie: a=1"\n',
     "expected a header value", 1),
    ("record_newline", 'record: "raw/a\\nb.jsonl"\n', "expected a file path", 1),
    ("host_space", "host: 'a b'\n", "expected an IP address or a host name", 1),
    ("host_final_newline", 'host: "lab.example\\n"\n', "expected an IP address or a host name", 1),
    # cross-field
    ("queue_limit_with_reject", "capacity: 2\noverflow: reject\nqueue_limit: 5\n",
     "queue_limit: 5: applies to overflow: queue only", 3),
    ("queue_limit_without_capacity", "queue_limit: 5\n", "applies only with a capacity", 1),
    # the whole file
    ("top_level_list", "- name\n- b1\n", "(top level): a list: expected a mapping", 1),
    ("top_level_scalar", "just a name\n", "'just a name': expected a mapping", 1),
] + [(f"{field}_{name}", f"{field}: {text}\n", f"{field}: {text}: expected a finite number", 1)
     for field in FLOATS for name, text in (("inf", ".inf"), ("nan", ".nan"))]
CASES = [case(f"backend-{case_id}", content, expected, line)
         for case_id, content, expected, line in ROWS]


@pytest.fixture(scope="module")
def results():
    return run(CASES, "backend")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_backend_settings(results, case_):
    check(case_, results[case_["id"]])
