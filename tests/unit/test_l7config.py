"""Tests for lb_apps.l7config: defaults, every section, and located error messages."""
import json

import pytest

from lb_apps.l7config import (DEFAULT_GROUP, L7ConfigError, load_l7_config, parse_l7_config)

B = [{"name": "b1", "address": "10.0.0.6", "port": 8080}]


def cfg(**extra):
    data = {"backends": [dict(b) for b in B]}
    data.update(extra)
    return data


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
            {"match": {"host": "*.example.com", "query": {"name": "q"}},
             "auth": {"type": "bearer", "tokens": ["t1"]}},
        ],
        "sticky": {"secret": "lab-secret"},
        "cache": {"max_entries": 10, "max_bytes": 1000},
        "health": {"interval": 0.5},
        "passive_health": False,
        "timeouts": {"connect": 0.5}, "limits": {"max_uri": 100},
        "retries": 2, "stats": {"port": 0},
    }
    c = parse_l7_config(data)
    assert c.hash_key.name == "X-User" and len(c.backends) == 2
    assert c.groups["api"].health.path == "/ping" and c.groups["api"].health.rise == 1
    assert c.default_group.health.interval == 0.5 and c.default_group.passive_health is None
    assert c.routes[0].match.methods == ("GET", "POST") and c.routes[0].group == "api"
    assert c.routes[1].group == DEFAULT_GROUP and c.routes[1].match.host == "*.example.com"
    assert c.routes[1].match.query.value is None
    assert c.sticky.cookie == "LBSRV" and c.cache.max_object_bytes == 1000
    assert c.stats.host == "127.0.0.1" and c.stats.port == 0
    assert [b.name for b in c.all_backends()] == ["b1", "b2", "a1"]


@pytest.mark.parametrize("extra, path, words", [
    ({"algoritm": "round_robin"}, "algoritm", "did you mean 'algorithm'"),
    ({"algorithm": "round_robn"}, "algorithm", "did you mean 'round_robin'"),
    ({"routes": [{}, {}, {"match": {"path_regex": "("}}]}, "routes[2].match.path_regex",
     "invalid regex '('"),
    ({"routes": [{"match": {"path_prefx": "/a"}}]}, "routes[0].match.path_prefx",
     "did you mean 'path_prefix'"),
    ({"routes": [{"group": "apx"}]}, "routes[0].group", "unknown group 'apx'"),
    ({"routes": [{"match": {"path_prefix": "api"}}]}, "routes[0].match.path_prefix", "'/'"),
    ({"routes": [{"auth": {"type": "digest"}}]}, "routes[0].auth.type", "basic, bearer"),
    ({"routes": [{"auth": {"type": "basic"}}]}, "routes[0].auth.users", "non-empty mapping"),
    ({"routes": [{"auth": {"type": "bearer", "tokens": []}}]}, "routes[0].auth.tokens", "list"),
    ({"workers": 0}, "workers", ">= 1"),
    ({"workers": True}, "workers", "integer"),
    ({"retries": "1"}, "retries", "integer"),
    ({"listen": {"port": 70000}}, "listen.port", "<= 65535"),
    ({"listen": {"host": "not a host"}}, "listen.host", "IP address or host name"),
    ({"hash_key": {"type": "body"}}, "hash_key.type", "uri, header, cookie, client_ip"),
    ({"hash_key": {"type": "header"}}, "hash_key.name", "required"),
    ({"algorithm": "ip_hash", "hash_key": {"type": "uri"}}, "hash_key.type", "client address"),
    ({"timeouts": {"connect": 0}}, "timeouts.connect", "> 0"),
    ({"timeouts": {"conect": 1}}, "timeouts.conect", "did you mean 'connect'"),
    ({"limits": {"max_body": -1}}, "limits.max_body", ">= 1"),
    ({"health": {"path": "health"}}, "health.path", "'/'"),
    ({"health": {"rise": 0}}, "health.rise", ">= 1"),
    ({"tls": {"cert": "a"}}, "tls.key", "missing"),
    ({"sticky": {"cookie": "a b", "secret": "s"}}, "sticky.cookie", "token"),
    ({"cache": {"max_bytes": 10, "max_object_bytes": 20}}, "cache.max_object_bytes", "<= cache"),
    ({"groups": {"default": {"backends": B}}}, "groups.default", "reserved"),
    ({"groups": {"g": {"backends": []}}}, "groups.g.backends", "non-empty list"),
    ({"groups": {"g": {"backends": [{"name": "b1", "address": "10.0.0.9", "port": 1}]}}},
     "groups.g.backends[0].name", "different server"),
    ({"stats": {"prot": 1}}, "stats.prot", "did you mean 'port'"),
])
def test_errors_name_path_and_value(extra, path, words):
    with pytest.raises(L7ConfigError) as info:
        parse_l7_config(cfg(**extra), source="lab.yaml")
    msg = str(info.value)
    assert msg.startswith(f"lab.yaml: {path}: "), msg
    assert words in msg, msg
    assert info.value.path == path


@pytest.mark.parametrize("backends, path, words", [
    ([], "backends", "non-empty list"),
    ([{"name": "b1", "address": "10.0.0.1"}], "backends[0].port", "missing"),
    ([{"name": "b1", "address": "10.0.0.1", "port": 0}], "backends[0].port", ">= 1"),
    ([B[0], dict(B[0])], "backends[1].name", "duplicate backend name"),
    ([B[0], dict(B[0], name="b2")], "backends[1]", "duplicate backend address"),
    ([dict(B[0], weight=-1)], "backends[0].weight", ">= 0"),
    ([dict(B[0], tls="yes")], "backends[0].tls", "true or false"),
    ([dict(B[0], wieght=2)], "backends[0].wieght", "did you mean 'weight'"),
])
def test_backend_errors(backends, path, words):
    with pytest.raises(L7ConfigError) as info:
        parse_l7_config({"backends": backends})
    assert info.value.path == path and words in str(info.value), str(info.value)


def test_not_a_mapping_and_missing_backends():
    with pytest.raises(L7ConfigError, match="expected a mapping"):
        parse_l7_config([1])
    with pytest.raises(L7ConfigError, match="backends: missing required key"):
        parse_l7_config({})


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
