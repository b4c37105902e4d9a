"""Tests for lb_apps.l7config and l7models: defaults, every section, the consumers' grammars and
ranges, and every error at once with its line."""
import json

import pytest

from lb_apps.proxy import server as proxy
from lb_apps.l7config import (DEFAULT_GROUP, L7ConfigError, load_l7_config, parse_l7_config)
from lblab_core.errors import InputError, UsageError

B = [{"name": "b1", "address": "10.0.0.6", "port": 8080}]


def cfg(**extra):
    data = {"backends": [dict(b) for b in B]}
    data.update(extra)
    return data


def error_of(data, source="lab.yaml"):
    with pytest.raises(L7ConfigError) as info:
        parse_l7_config(data, source=source)
    return info.value


def test_minimal_defaults():
    c = parse_l7_config(cfg())
    assert c.listen.host == "0.0.0.0" and c.listen.port == 80
    assert c.workers == 1 and c.retries == 1 and c.tls is None
    assert c.algorithm == "round_robin" and c.hash_key.type == "uri"
    assert c.backends[0].name == "b1" and c.backends[0].weight == 1 and not c.backends[0].tls
    assert list(c.groups) == [DEFAULT_GROUP]
    assert c.default_group.health is None
    assert c.default_group.passive_health.max_fails == 3
    assert c.timeouts.connect == 1.0 and c.limits.max_body == 10485760
    assert c.sticky is None and c.cache is None and c.stats is None and c.routes == ()


def test_full_example():
    data = {
        "listen": {"host": "0.0.0.0", "port": 8000},
        "tls": {"cert": ".lab/tls/lab.crt", "key": ".lab/tls/lab.key"},
        "workers": 2, "algorithm": "consistent_hash",
        "hash_key": {"type": "header", "name": "X-User"},
        "backends": B + [{"name": "b2", "address": "10.0.0.7", "port": 8080, "weight": 3}],
        "groups": {"api": {"algorithm": "least_connections",
                           "backends": [{"name": "a1", "address": "10.0.0.8", "port": 80}],
                           "health": {"path": "/ping", "rise": 1}}},
        "routes": [
            {"match": {"path_prefix": "/api", "method": ["get", "POST"],
                       "header": {"name": "X-A", "value": "1"}}, "group": "api",
             "auth": {"type": "basic", "users": {"alice": "secret"}}},
            {"match": {"host": "*.Example.com.", "query": {"name": "q"}},
             "auth": {"type": "bearer", "tokens": ["t1"]}},
        ],
        "sticky": {"secret": "lab-secret"},
        "cache": {"max_entries": 10, "max_bytes": 1000},
        "health": {"interval": 0.5},
        "passive_health": False,
        "timeouts": {"connect": 1}, "limits": {"max_uri": 100},
        "retries": 2, "stats": {"port": 0},
    }
    c = parse_l7_config(data)
    assert c.hash_key.name == "X-User" and len(c.backends) == 2
    assert c.groups["api"].health.path == "/ping" and c.groups["api"].health.rise == 1
    assert c.default_group.health.interval == 0.5 and c.default_group.passive_health is None
    assert c.routes[0].match.methods == ("GET", "POST") and c.routes[0].group == "api"
    assert c.routes[1].group == DEFAULT_GROUP and c.routes[1].match.host == "*.example.com"
    assert c.routes[1].match.query.value is None and c.routes[1].index == 1
    assert c.sticky.cookie == "LBSRV" and c.cache.max_object_bytes == 1000
    assert c.stats.host == "127.0.0.1" and c.stats.port == 0
    assert c.timeouts.connect == 1.0 and isinstance(c.timeouts.connect, float)
    assert [b.name for b in c.all_backends()] == ["b1", "b2", "a1"]


def test_sections_turned_off_with_false_and_group_inheritance():
    c = parse_l7_config(cfg(tls=False, sticky=False, cache=False, stats=False,
                            health={"path": "/h"},
                            groups={"on": {"backends": [dict(B[0], name="x", port=1)]},
                                    "off": {"backends": [dict(B[0], name="y", port=2)],
                                            "health": False, "passive_health": False}}))
    assert c.tls is c.sticky is c.cache is c.stats is None
    assert c.groups["on"].health.path == "/h" and c.groups["on"].passive_health.max_fails == 3
    assert c.groups["off"].health is None and c.groups["off"].passive_health is None
    one = parse_l7_config(cfg(routes=[{"match": {"method": "get"}}]))
    assert one.routes[0].match.methods == ("GET",)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1", "10.0.0.1", "localhost",
                                  "lb.example.com", "lb-1.lab.", "xn--bcher-kva.example"])
def test_listen_hosts_accepted(host):
    assert parse_l7_config(cfg(listen={"host": host, "port": 80})).listen.host == host


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0.256", "1.2.3", "not a host", "a_b.lab",
                                  "-lb.lab", "lb-.lab", "*.lab", "fe80::1%eth0", "",
                                  "lb\r\nserver x", "a" * 300])
def test_listen_hosts_refused(host):
    err = error_of(cfg(listen={"host": host}))
    assert err.path == "listen.host" and "expected an IP address or a host name" in err.problem


@pytest.mark.parametrize("extra, path, words", [
    ({"algoritm": "round_robin"}, "algoritm", "did you mean algorithm?"),
    ({"algorithm": "round_robn"}, "algorithm", "did you mean round_robin?"),
    ({"routes": [{}, {}, {"match": {"path_regex": "("}}]}, "routes[2].match.path_regex",
     "invalid regex '('"),
    ({"routes": [{"match": {"path_prefx": "/a"}}]}, "routes[0].match.path_prefx",
     "did you mean path_prefix?"),
    ({"routes": [{"group": "apx"}], "groups": {"api": {"backends": [dict(B[0])]}}},
     "routes[0].group", "'apx': expected one of default, api; did you mean api?"),
    ({"routes": [{"match": {"path_prefix": "api"}}]}, "routes[0].match.path_prefix", "'/'"),
    ({"routes": [{"auth": {"type": "digest"}}]}, "routes[0].auth.type", "basic, bearer"),
    ({"routes": [{"auth": {"type": "basic"}}]}, "routes[0].auth.users", "non-empty mapping"),
    ({"routes": [{"auth": {"type": "bearer", "tokens": []}}]}, "routes[0].auth.tokens", "list"),
    ({"routes": [{"auth": {"type": "basic", "users": {"a": "b"}, "tokens": ["t"]}}]},
     "routes[0].auth.tokens", "only valid for type bearer"),
    ({"routes": [{"auth": {"type": "basic", "users": {"a:b": "c"}}}]},
     "routes[0].auth.users.a:b", "without spaces or ':'"),
    ({"routes": [{"auth": {"type": "basic", "users": {"a": 1234}}}]},
     "routes[0].auth.users.a", "1234: expected a string"),
    ({"routes": [{"auth": {"type": "bearer", "tokens": ["a b"]}}]},
     "routes[0].auth.tokens[0]", "without spaces"),
    ({"routes": [{"auth": {"type": "bearer", "tokens": ["t"], "realm": 'a"b'}}]},
     "routes[0].auth.realm", "expected a realm"),
    ({"routes": [{"auth": {"type": "bearer", "tokens": ["t"], "realm": "a\r\nX-Evil: 1"}}]},
     "routes[0].auth.realm", "expected a realm"),
    ({"routes": [{"match": {"header": {"name": "X A"}}}]}, "routes[0].match.header.name",
     "expected a token"),
    ({"routes": [{"match": {"header": {"name": "X-A", "value": "a\nb"}}}]},
     "routes[0].match.header.value", "expected a header value"),
    ({"routes": [{"match": {"cookie": {"name": "c\r\n"}}}]}, "routes[0].match.cookie.name",
     "expected a token"),
    ({"routes": [{"match": {"host": "a b"}}]}, "routes[0].match.host", "expected a host name"),
    ({"routes": [{"match": {"method": []}}]}, "routes[0].match.method", "non-empty list"),
    ({"routes": [{"match": {"method": ["GET", "P OST"]}}]}, "routes[0].match.method[1]",
     "expected a token"),
    ({"routes": {"match": {}}}, "routes", "a mapping: expected a list"),
    ({"workers": 0}, "workers", ">= 1"),
    ({"workers": 65}, "workers", "<= 64"),
    ({"workers": True}, "workers", "true: expected an integer"),
    ({"workers": "8"}, "workers", "'8': expected an integer"),
    ({"workers": 2, "listen": {"port": 0}}, "workers", "fixed listen.port"),
    ({"retries": "1"}, "retries", "integer"),
    ({"retries": 11}, "retries", "<= 10"),
    ({"listen": {"port": 70000}}, "listen.port", "<= 65535"),
    ({"listen": [80]}, "listen", "a list: expected a mapping"),
    ({"hash_key": {"type": "body"}}, "hash_key.type", "uri, header, cookie, client_ip"),
    ({"hash_key": {"type": "header"}}, "hash_key.name", "required"),
    ({"hash_key": {"type": "uri", "name": "x"}}, "hash_key.name", "only valid for type header"),
    ({"algorithm": "ip_hash", "hash_key": {"type": "uri"}}, "hash_key.type", "client address"),
    ({"timeouts": {"connect": 0}}, "timeouts.connect", "> 0"),
    ({"timeouts": {"connect": float("inf")}}, "timeouts.connect", "finite"),
    ({"timeouts": {"response": float("nan")}}, "timeouts.response", "finite"),
    ({"timeouts": {"keepalive_idle": 1e9}}, "timeouts.keepalive_idle", "<= 86400"),
    ({"timeouts": {"conect": 1}}, "timeouts.conect", "did you mean connect?"),
    ({"limits": {"max_body": -1}}, "limits.max_body", ">= 1"),
    ({"limits": {"max_header_bytes": 10 ** 9}}, "limits.max_header_bytes", "<= 1048576"),
    ({"health": {"path": "health"}}, "health.path", "'/'"),
    ({"health": {"path": "/h\r\nGET /x HTTP/1.1"}}, "health.path", "expected a path"),
    ({"health": {"rise": 0}}, "health.rise", ">= 1"),
    ({"health": {"interval": float("inf")}}, "health.interval", "finite"),
    ({"health": True}, "health", "true: expected a mapping"),
    ({"passive_health": {"fail_timeout": -1}}, "passive_health.fail_timeout", "> 0"),
    ({"tls": {"cert": "a"}}, "tls.key", "is required"),
    ({"tls": {"cert": "a\nb", "key": "k"}}, "tls.cert", "without control characters"),
    ({"sticky": {"cookie": "a b", "secret": "s"}}, "sticky.cookie", "token"),
    ({"sticky": {"cookie": "S\r\nSet-Cookie: x=1", "secret": "s"}}, "sticky.cookie", "token"),
    ({"sticky": {"secret": ""}}, "sticky.secret", "too short"),
    ({"cache": {"max_bytes": 10, "max_object_bytes": 20}}, "cache.max_object_bytes",
     "<= cache.max_bytes (10)"),
    ({"groups": {"default": {"backends": B}}}, "groups.default", "reserved"),
    ({"groups": {"a b": {"backends": B}}}, "groups.a b", "expected a name"),
    ({"groups": [{"backends": B}]}, "groups", "a list: expected a mapping"),
    ({"groups": {"g": {"backends": []}}}, "groups.g.backends", "at least one backend"),
    ({"groups": {"g": {"backends": [{"name": "b1", "address": "10.0.0.9", "port": 1}]}}},
     "groups.g.backends[0].name", "different server in backends"),
    ({"stats": {"prot": 1}}, "stats.prot", "did you mean port?"),
])
def test_errors_name_path_and_value(extra, path, words):
    err = error_of(cfg(**extra))
    assert str(err).startswith(f"lab.yaml: {path}: "), str(err)
    assert words in str(err), str(err)
    assert err.path == path and words in err.problem
    assert len(err.errors) == 1 and "\n" not in str(err)


@pytest.mark.parametrize("backends, path, words", [
    ([], "backends", "expected at least one backend"),
    ({"name": "b1"}, "backends", "a mapping: expected a list"),
    ([{"name": "b1", "address": "10.0.0.1"}], "backends[0].port", "is required"),
    ([{"name": "b1", "address": "10.0.0.1", "port": 0}], "backends[0].port", ">= 1"),
    ([B[0], dict(B[0])], "backends[1].name", "duplicate backend name"),
    ([B[0], dict(B[0], name="b2")], "backends[1]", "duplicate backend address 10.0.0.6:8080"),
    ([dict(B[0], weight=-1)], "backends[0].weight", ">= 0"),
    ([dict(B[0], weight=1001)], "backends[0].weight", "<= 1000"),
    ([dict(B[0], weight=10 ** 30)], "backends[0].weight", "<= 1000"),
    ([dict(B[0], weight=float("inf"))], "backends[0].weight", ".inf: expected an integer"),
    ([dict(B[0], weight=float("nan"))], "backends[0].weight", ".nan: expected an integer"),
    ([dict(B[0], weight=2.5)], "backends[0].weight", "expected an integer"),
    ([dict(B[0], tls="yes")], "backends[0].tls", "true or false"),
    ([dict(B[0], tls=1)], "backends[0].tls", "1: expected true or false"),
    ([dict(B[0], wieght=2)], "backends[0].wieght", "did you mean weight?"),
    ([dict(B[0], name="b\n1")], "backends[0].name", "expected a name"),
    ([dict(B[0], name="b1 x")], "backends[0].name", "expected a name"),
    ([dict(B[0], address="10.0.0.1\r\n")], "backends[0].address", "IP address or a host"),
])
def test_backend_errors(backends, path, words):
    err = error_of({"backends": backends})
    assert err.path == path and words in str(err), str(err)


def test_every_problem_at_once_in_document_order_with_lines(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("listen: {host: 999.1.1.1, port: 0}\n"
                    "backends:\n"
                    "  - {name: b1, address: 10.0.0.1, port: 80, weight: .inf}\n"
                    "routes:\n"
                    "  - {match: {path_regex: '('}, auth: {type: basic, users: {a: b},"
                    " realm: \"a\\r\\nX: y\"}}\n"
                    "health: {path: \"/h\\r\\nGET /x\"}\n"
                    "timeouts: {connect: .nan}\n"
                    "algoritm: round_robin\n")
    with pytest.raises(L7ConfigError) as info:
        load_l7_config(str(path))
    err = info.value
    assert [e.split(": ", 2)[:2] for e in err.errors] == [
        [f"{path}:1", "listen.host"], [f"{path}:3", "backends[0].weight"],
        [f"{path}:5", "routes[0].match.path_regex"], [f"{path}:5", "routes[0].auth.realm"],
        [f"{path}:6", "health.path"], [f"{path}:7", "timeouts.connect"],
        [f"{path}:8", "algoritm"]]
    assert str(err) == "\n".join(err.errors)
    assert isinstance(err, InputError) and isinstance(err, ValueError)
    # experiments/spec.py reads the first problem; issues has all of them
    assert err.path == "listen.host" and err.problem.startswith("'999.1.1.1': expected an IP")
    assert err.issues[-1][0] == ("algoritm",) and len(err.issues) == 7
    assert err.issues[1][0] == ("backends", 0, "weight")


def test_not_a_mapping_and_missing_backends():
    err = error_of([1])
    assert err.path == "" and str(err) == "lab.yaml: (top level): a list: expected a mapping"
    err = error_of({})
    assert err.path == "backends" and str(err) == "lab.yaml: backends: is required"


def test_load_yaml_and_json(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("backends:\n  - {name: b1, address: 127.0.0.1, port: 8081}\n")
    assert load_l7_config(str(y)).backends[0].port == 8081
    j = tmp_path / "c.json"
    j.write_text(json.dumps(cfg()))
    assert load_l7_config(str(j)).backends[0].name == "b1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends: [\n")
    with pytest.raises(L7ConfigError, match="bad.yaml:2: not valid YAML"):
        load_l7_config(str(bad))
    with pytest.raises(L7ConfigError, match="missing.yaml: cannot read the file"):
        load_l7_config(str(tmp_path / "missing.yaml"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(L7ConfigError, match="empty"):
        load_l7_config(str(empty))


@pytest.mark.parametrize("text, argv, words", [
    ("listen: {port: 0}\nworkers: 2\n", [], "workers: 2: more than one worker needs a fixed"),
    ("listen: {port: 0}\n", ["--workers", "2"], "(--workers 2): workers: 2: more than one"),
    ("workers: 2\n", ["--listen", "127.0.0.1:0"], "(--listen 127.0.0.1:0):1: workers: 2:"),
    ("", ["--listen", "999.1.1.1:80"], "listen.host: '999.1.1.1': expected an IP address"),
    ("", ["--workers", "0"], "workers: 0: expected a number >= 1"),
])
def test_proxy_check_runs_the_checks_of_a_real_start(tmp_path, text, argv, words):
    path = tmp_path / "lab.yaml"
    path.write_text(text + "backends: [{name: b1, address: 127.0.0.1, port: 1}]\n")
    for mode in (["--check"], []):  # --check and a real start refuse alike, before binding
        with pytest.raises(UsageError) as info:
            proxy.main(["--config", str(path), *argv, *mode])
        assert words in str(info.value) and str(path) in str(info.value)


def test_proxy_check_applies_overrides(tmp_path, capsys):
    path = tmp_path / "lab.yaml"
    path.write_text("listen: {port: 0}\nbackends: [{name: b1, address: 127.0.0.1, port: 1}]\n")
    assert proxy.main(["--config", str(path), "--check", "--workers", "2",
                       "--listen", "127.0.0.1:8080"]) == 0
    assert "ok" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--listen: expected HOST:PORT"):
        proxy.main(["--config", str(path), "--check", "--listen", "nohost"])
