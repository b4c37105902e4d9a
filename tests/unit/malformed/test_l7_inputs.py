"""Malformed L7 configs through ``lblab proxy --check`` and ``lblab engine render``: values
that would reach a header, a rendered config or a balancer, refused up front, one line each
naming the file, the line and the field."""
import pytest

from tests.unit.malformed.table import case, check, run

BASE = "backends:\n  - {name: b1, address: 10.0.0.1, port: 8080}\n"  # lines 1-2
GROUPS = "groups:\n  api: {backends: [{name: a1, address: 10.0.0.2, port: 8080}]}\n"  # 3-4


def backend(field):
    """The config with one more field on the (only) backend, at line 2."""
    return BASE.replace("port: 8080}", f"port: 8080, {field}}}")


def route(text):
    """BASE plus one route at line 4."""
    return BASE + "routes:\n  - " + text + "\n"


# (id, content, expected text, line)
ROWS = [
    # CR/LF and quotes in strings that reach a header, a request line or a config line
    ("realm_crlf", route('{auth: {type: basic, users: {a: b}, realm: "lab\\r\\nX-Evil: 1"}}'),
     "routes[0].auth.realm: 'lab\\r\\nX-Evil: 1': expected a realm", 4),
    ("realm_lf", route('{auth: {type: bearer, tokens: [t], realm: "lab\\nX: 1"}}'),
     "routes[0].auth.realm:", 4),
    ("realm_quote", route("{auth: {type: bearer, tokens: [t], realm: 'la\"b'}}"),
     "without '\"'", 4),
    ("sticky_cookie_crlf", BASE + 'sticky: {cookie: "S\\r\\nSet-Cookie: a=1", secret: s}\n',
     "sticky.cookie: 'S\\r\\nSet-Cookie: a=1': expected a token", 3),
    ("sticky_cookie_space", BASE + "sticky: {cookie: a b, secret: s}\n",
     "sticky.cookie: 'a b': expected a token", 3),
    ("health_path_crlf", BASE + 'health: {path: "/h\\r\\nGET /admin HTTP/1.1"}\n',
     "health.path: '/h\\r\\nGET /admin HTTP/1.1': expected a path", 3),
    ("health_path_lf_group", BASE + "groups:\n  api:\n    backends: [{name: a1, address: "
     '10.0.0.2, port: 8080}]\n    health: {path: "/h\\n    server evil 6.6.6.6:80"}\n',
     "groups.api.health.path:", 6),
    ("health_path_relative", BASE + "health: {path: health}\n", "starting with '/'", 3),
    ("backend_name_lf", BASE.replace("name: b1", 'name: "b1\\nserver x"'),
     "backends[0].name: 'b1\\nserver x': expected a name", 2),
    ("backend_name_space", BASE.replace("name: b1", "name: b 1"),
     "backends[0].name: 'b 1': expected a name", 2),
    ("group_name_crlf", BASE + 'groups:\n  "a\\r\\nb": {backends: [{name: a1, address: 10.0.0.2, '
     "port: 8080}]}\n", "groups.'a\\r\\nb': 'a\\r\\nb': expected a name", 4),
    ("group_name_default", BASE + "groups:\n  default: {backends: [{name: a1, address: "
     "10.0.0.2, port: 8080}]}\n", "groups.default: 'default': the name 'default' is reserved",
     4),
    ("header_name_crlf", route('{match: {header: {name: "X-A\\r\\nX-B", value: "1"}}}'),
     "routes[0].match.header.name: 'X-A\\r\\nX-B': expected a token", 4),
    ("header_value_lf", route('{match: {header: {name: X-A, value: "1\\nX-B: 2"}}}'),
     "routes[0].match.header.value: '1\\nX-B: 2': expected a header value", 4),
    ("cookie_name_space", route("{match: {cookie: {name: a b}}}"),
     "routes[0].match.cookie.name: 'a b': expected a token", 4),
    ("hash_key_name_crlf", BASE + 'algorithm: consistent_hash\nhash_key: {type: header, '
     'name: "X\\r\\nY"}\n', "hash_key.name: 'X\\r\\nY': expected a token", 4),
    ("path_prefix_crlf", route('{match: {path_prefix: "/a\\r\\nHost: x"}}'),
     "routes[0].match.path_prefix:", 4),
    ("match_host_bad", route("{match: {host: a b.example}}"),
     "routes[0].match.host: 'a b.example': expected a host name", 4),
    ("bearer_token_space", route("{auth: {type: bearer, tokens: [a b]}}"),
     "routes[0].auth.tokens[0]: 'a b': expected a bearer token", 4),
    ("basic_user_colon", route("{auth: {type: basic, users: {'a:b': c}}}"),
     "routes[0].auth.users.a:b: 'a:b': expected a user name", 4),
    ("tls_cert_lf", BASE + 'tls: {cert: "a.crt\\nb", key: a.key}\n',
     "tls.cert: 'a.crt\\nb': expected a file path", 3),
    # numbers: the consumers' ranges
    ("weight_inf", backend("weight: .inf"), "backends[0].weight: .inf: expected an integer", 2),
    ("weight_nan", backend("weight: .nan"), "backends[0].weight: .nan: expected an integer", 2),
    ("weight_huge", backend("weight: 1000000000000000000000000000000"),
     "backends[0].weight: 1000000000000000000000000000000: expected a number <= 1000", 2),
    ("weight_negative", backend("weight: -1"), "backends[0].weight: -1: expected a number >= 0",
     2),
    ("weight_string", backend("weight: '3'"), "backends[0].weight: '3': expected an integer",
     2),
    ("weight_bool", backend("weight: true"), "backends[0].weight: true: expected an integer", 2),
    ("port_huge", backend("tls: false").replace("port: 8080", "port: 70000"),
     "backends[0].port: 70000: expected a number <= 65535", 2),
    ("timeout_inf", BASE + "timeouts: {connect: .inf}\n",
     "timeouts.connect: .inf: expected a finite number", 3),
    ("timeout_nan", BASE + "timeouts: {response: .nan}\n",
     "timeouts.response: .nan: expected a finite number", 3),
    ("timeout_zero", BASE + "timeouts: {client_header: 0}\n",
     "timeouts.client_header: 0: expected a number > 0", 3),
    ("health_interval_inf", BASE + "health: {interval: .inf}\n",
     "health.interval: .inf: expected a finite number", 3),
    ("fail_timeout_negative", BASE + "passive_health: {fail_timeout: -1}\n",
     "passive_health.fail_timeout: -1: expected a number > 0", 3),
    ("workers_2_port_0", "listen: {port: 0}\nworkers: 2\n" + BASE,
     "workers: 2: more than one worker needs a fixed listen.port", 2),
    ("workers_zero", BASE + "workers: 0\n", "workers: 0: expected a number >= 1", 3),
    ("workers_huge", BASE + "workers: 1000\n", "workers: 1000: expected a number <= 64", 3),
    ("workers_true", BASE + "workers: true\n", "workers: true: expected an integer", 3),
    ("workers_one", BASE + "workers: 1.0\n", "workers: 1.0: expected an integer", 3),
    ("workers_string", BASE + "workers: '8'\n", "workers: '8': expected an integer", 3),
    ("tls_backend_int", backend("tls: 1"), "backends[0].tls: 1: expected true or false", 2),
    ("retries_huge", BASE + "retries: 100\n", "retries: 100: expected a number <= 10", 3),
    ("limit_huge", BASE + "limits: {max_header_bytes: 1000000000}\n",
     "limits.max_header_bytes: 1000000000: expected a number <= 1048576", 3),
    ("cache_object_too_big", BASE + "cache: {max_bytes: 10, max_object_bytes: 20}\n",
     "cache.max_object_bytes: 20: expected a number <= cache.max_bytes (10)", 3),
    # hosts
    ("listen_host_999", "listen: {host: 999.1.1.1, port: 80}\n" + BASE,
     "listen.host: '999.1.1.1': expected an IP address or a host name", 1),
    ("listen_host_crlf", 'listen: {host: "0.0.0.0\\r\\nbind 6.6.6.6:80"}\n' + BASE,
     "listen.host:", 1),
    ("stats_host_bad", BASE + "stats: {host: 300.0.0.1, port: 9901}\n",
     "stats.host: '300.0.0.1': expected an IP address", 3),
    ("backend_address_bad", BASE.replace("10.0.0.1", "10.0.0.1.5"),
     "backends[0].address: '10.0.0.1.5': expected an IP address", 2),
    # shapes: a list where a mapping is expected, and the other way round
    ("groups_list", BASE + "groups: [api]\n", "groups: a list: expected a mapping", 3),
    ("routes_mapping", BASE + "routes: {match: {}}\n", "routes: a mapping: expected a list", 3),
    ("listen_list", "listen: [0.0.0.0, 80]\n" + BASE, "listen: a list: expected a mapping", 1),
    ("backends_mapping", "backends: {name: b1}\n", "backends: a mapping: expected a list", 1),
    ("top_level_list", "- backends\n", "(top level): a list: expected a mapping", 1),
    ("health_true", BASE + "health: true\n", "health: true: expected a mapping", 3),
    # unknown keys and names, with "did you mean"
    ("unknown_top_key", BASE + "algoritm: round_robin\n",
     "algoritm: unknown key 'algoritm'; expected one of listen, tls, workers, algorithm", 3),
    ("unknown_backend_key", backend("wieght: 2"), "did you mean weight?", 2),
    ("unknown_match_key", route("{match: {path_prefx: /a}}"),
     "routes[0].match.path_prefx: unknown key 'path_prefx'", 4),
    ("unknown_group", GROUPS.replace("groups:", BASE + "groups:") + "routes: [{group: apx}]\n",
     "routes[0].group: 'apx': expected one of default, api; did you mean api?", 5),
    ("unknown_algorithm", BASE + "algorithm: leastconn\n", "'leastconn': expected one of", 3),
    ("ip_hash_uri", BASE + "algorithm: ip_hash\nhash_key: {type: uri}\n",
     "hash_key.type: 'uri': ip_hash always hashes the client address", 4),
    # missing and duplicated backends
    ("backends_missing", "listen: {port: 80}\n", "backends: is required", 1),
    ("backends_empty", "backends: []\n", "backends: expected at least one backend", 1),
    ("group_backends_missing", BASE + "groups:\n  api: {algorithm: random}\n",
     "groups.api.backends: is required", 4),
    ("backend_port_missing", "backends:\n  - {name: b1, address: 10.0.0.1}\n",
     "backends[0].port: is required", 2),
    ("backend_duplicate", BASE + "  - {name: b1, address: 10.0.0.3, port: 8080}\n",
     "backends[1].name: 'b1': duplicate backend name", 3),
    ("backend_two_servers", BASE + "groups:\n  api: {backends: [{name: b1, address: 10.0.0.9, "
     "port: 8080}]}\n", "groups.api.backends[0].name: 'b1': 10.0.0.9:8080 here but a "
     "different server", 4),
]
# Also rendered for HAProxy and nginx: the same values must not reach their configs.
THROUGH_ENGINES = ("realm_crlf", "sticky_cookie_crlf", "health_path_crlf", "backend_name_lf",
                   "header_value_lf", "weight_inf", "timeout_nan", "workers_2_port_0",
                   "listen_host_999", "groups_list", "unknown_top_key", "backends_missing")

CASES = [case(f"proxy-{cid}", content, expected, line, command="proxy")
         for cid, content, expected, line in ROWS]
CASES += [case(f"{engine}-{cid}", content, expected, line, command=engine)
          for engine in ("engine-haproxy", "engine-nginx")
          for cid, content, expected, line in ROWS if cid in THROUGH_ENGINES]


def test_every_engine_case_names_a_row():
    assert set(THROUGH_ENGINES) <= {cid for cid, *_ in ROWS}
    assert len(CASES) >= 40


@pytest.fixture(scope="module")
def results():
    return run(CASES, "proxy")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_l7_config(results, case_):
    check(case_, results[case_["id"]])
