"""Malformed load-generator settings files (``lblab loadgen --check --config FILE``): wrong
types, non-finite numbers, out-of-range values, unknown and non-string keys, text that would
reach the request line or a header, missing ``url``, the wrong top-level type. Each must be
exit 2 and one located line."""
import pytest

from tests.unit.malformed.table import case, check, run

URL = "url: http://10.0.0.5/\n"
OPEN = URL + "mode: open\n"
# every float setting, with the mode it applies to (the mix weight is a float too)
FLOATS = [("rate", OPEN), ("think_ms", URL), ("duration_s", URL), ("warmup_s", URL),
          ("timeout_s", URL), ("connect_timeout_s", URL), ("flush_period_s", URL),
          ("error_backoff_ms", URL)]
ROWS = [
    # wrong types
    ("keepalive_1", URL + "keepalive: 1\n", "keepalive: 1: expected true or false", 2),
    ("session_string", URL + "session: 'true'\n", "'true': expected true or false", 2),
    ("users_string", URL + "users: '8'\n", "users: '8': expected an integer", 2),
    ("users_true", URL + "users: true\n", "users: true: expected an integer", 2),
    ("users_float", URL + "users: 2.5\n", "users: 2.5: expected an integer", 2),
    ("duration_string", URL + "duration_s: '10'\n", "'10': expected a number", 2),
    ("url_int", "url: 8\n", "url: 8: expected a string", 1),
    ("mix_mapping", URL + "mix: {path: /a}\n", "mix: a mapping: expected a list", 2),
    ("header_value_int", URL + "mix:\n  - {path: /a, headers: {X-N: 5}}\n",
     "mix[0].headers.X-N: 5: expected a string", 3),
    # out of range
    ("seed_2_64", URL + f"seed: {2 ** 64}\n", "seed: 18446744073709551616: expected a number", 2),
    ("seed_negative", URL + "seed: -1\n", "seed: -1: expected a number >= 0", 2),
    ("users_million", URL + "users: 1000000\n", "users: 1000000: expected a number <= 100000", 2),
    ("pool_size_zero", URL + "pool_size: 0\n", "pool_size: 0: expected a number >= 1", 2),
    ("max_requests_zero", URL + "max_requests: 0\n", "max_requests: 0", 2),
    ("body_size_negative", URL + "mix:\n  - {path: /a, body_size: -1}\n",
     "mix[0].body_size: -1: expected a number >= 0", 3),
    ("weight_zero", URL + "mix:\n  - {path: /a, weight: 0}\n", "mix[0].weight: 0", 3),
    ("duration_day_plus", URL + "duration_s: 1.0e+9\n", "expected a number <= 86400", 2),
    ("url_port", "url: http://10.0.0.5:70000/\n", "url: 'http://10.0.0.5:70000/'", 1),
    # choices and keys
    ("mode_typo", URL + "mode: opne\n", "'opne': expected one of open, closed; did you mean open?",
     2),
    ("method_typo", URL + "mix:\n  - {path: /a, method: GTE}\n", "did you mean GET?", 3),
    ("method_connect", URL + "mix:\n  - {path: /a, method: CONNECT}\n",
     "mix[0].method: 'CONNECT': expected one of GET, HEAD", 3),
    ("unknown_key", URL + "duraton_s: 5\n", "unknown key 'duraton_s'", 2),
    ("unknown_key_suggests", URL + "duraton_s: 5\n", "did you mean duration_s?", 2),
    # a renamed key names its new name and unit
    ("renamed_think", URL + "think: 0.1\n", "think: renamed think_ms (milliseconds", 2),
    ("renamed_timeout", URL + "timeout: 5\n", "timeout: renamed timeout_s (seconds", 2),
    ("unknown_mix_key", URL + "mix:\n  - {path: /a, wieght: 2}\n",
     "mix[0].wieght: unknown key 'wieght'", 3),
    ("int_key", URL + "1: 2\n", "(top level): key 1: expected a string", 2),
    ("header_int_key", URL + "mix:\n  - {path: /a, headers: {1: x}}\n",
     "mix[0].headers: key 1: expected a string", 3),
    ("header_name_space", URL + "mix:\n  - {path: /a, headers: {'X A': x}}\n",
     "key 'X A': expected a token", 3),
    # text that reaches the request line, a header or a cookie
    ("url_crlf", 'url: "http://10.0.0.5/a\\r\\nX-Evil: 1"\n', "expected a URL of printable", 1),
    ("url_scheme", "url: ftp://10.0.0.5/\n", "expected an http:// or https:// URL", 1),
    ("url_final_newline", 'url: "http://10.0.0.5/\\n"\n', "expected a URL of printable", 1),
    ("name_newline", URL + 'name: "h1\\n"\n', "name: 'h1\\n': expected a name", 2),
    ("mix_path_crlf", URL + 'mix:\n  - {path: "/a\\r\\nHost: x"}\n', "expected a path", 3),
    ("mix_path_relative", URL + "mix:\n  - {path: a/b}\n", "mix[0].path: 'a/b': expected a path",
     3),
    ("header_value_crlf", URL + 'mix:\n  - {path: /a, headers: {X-A: "1\\r\\nX-B: 2"}}\n',
     "expected a header value", 3),
    ("cookie_value_semicolon", URL + "mix:\n  - {path: /a, cookies: {s: 'a;b'}}\n",
     "expected a cookie value", 3),
    ("record_newline", URL + 'record: "raw/a\\nb.jsonl"\n', "expected a file path", 2),
    # cross-field: settings of the other loop
    ("rate_in_closed_loop", URL + "rate: 50\n", "rate: 50: applies to mode open only", 2),
    ("think_in_open_loop", OPEN + "think_ms: 100\n", "think_ms: 100: applies to mode closed only",
     3),
    # missing and the whole file
    ("url_missing", "mode: closed\nusers: 2\n", "url: is required", 1),
    ("top_level_list", "- url\n- http://10.0.0.5/\n", "(top level): a list: expected a mapping",
     1),
    ("top_level_scalar", "http://10.0.0.5/\n", "'http://10.0.0.5/': expected a mapping", 1),
] + [(f"{field}_{name}", base + f"{field}: {text}\n", f"{field}: {text}: expected a finite number",
      base.count("\n") + 1)
     for field, base in FLOATS for name, text in (("inf", ".inf"), ("nan", ".nan"))] + [
    (f"mix_weight_{name}", URL + f"mix:\n  - {{path: /a, weight: {text}}}\n",
     f"mix[0].weight: {text}: expected a finite number", 3)
    for name, text in (("inf", ".inf"), ("nan", ".nan"))]
CASES = [case(f"loadgen-{case_id}", content, expected, line)
         for case_id, content, expected, line in ROWS]


@pytest.fixture(scope="module")
def results():
    return run(CASES, "loadgen")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_loadgen_settings(results, case_):
    check(case_, results[case_["id"]])
