"""Rendered HAProxy/nginx configs pass the engines' own checks (haproxy -c, nginx -t).

No root needed and nothing is bound: each case writes a run directory in tmp_path with
lb_apps.engines.proc.prepare_run_dir and runs check_config.
"""
import shutil
import subprocess

import pytest

from lb_apps.engines import proc as engine_proc
from lb_apps.balancing import ALGORITHMS
from lb_apps.engines.render import EngineError, check_support
from lb_apps.l7config import parse_l7_config

pytestmark = pytest.mark.skipif(not (shutil.which("haproxy") and shutil.which("nginx")),
                                reason="haproxy and nginx are not installed (make setup)")

B = [{"name": "b1", "address": "127.0.0.1", "port": 28081, "weight": 3},
     {"name": "b2", "address": "127.0.0.1", "port": 28082}]
GROUPS = {"api": {"algorithm": "least_connections",
                  "backends": [{"name": "a1", "address": "127.0.0.1", "port": 28083}]},
          "hashy": {"algorithm": "consistent_hash", "hash_key": {"type": "cookie", "name": "uid"},
                    "backends": [{"name": "h1", "address": "127.0.0.1", "port": 28084},
                                 {"name": "h2", "address": "127.0.0.1", "port": 28085}]}}
ROUTES = [
    {"match": {"path_prefix": "/api", "method": ["GET", "POST"]}, "group": "api",
     "auth": {"type": "basic", "users": {"alice": "s3cret", "bob": "it's \"quoted\" $x"}}},
    {"match": {"host": "*.example.com", "header": {"name": "X-Tier", "value": "gold \\ \"x\""},
               "cookie": {"name": "c"}, "query": {"name": "q", "value": "~x"}},
     "auth": {"type": "bearer", "tokens": ["tok1", "it's", "a$b"]}},
    {"match": {"path_regex": r"^/v\d+/(items|things)\.json$", "host": "api.example.com"},
     "group": "hashy"},
    {"match": {"header": {"name": "X-Any"}, "query": {"name": "debug"}}, "group": "api"},
]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throwaway self-signed certificate, so the test does not depend on make setup."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=lblab-test", "-keyout", str(d / "t.key"),
                    "-out", str(d / "t.crt")], check=True, capture_output=True, timeout=60)
    return {"cert": str(d / "t.crt"), "key": str(d / "t.key")}


def config(**extra):
    data = {"listen": {"host": "127.0.0.1", "port": 28080}, "backends": [dict(b) for b in B]}
    data.update(extra)
    return parse_l7_config(data)


def check(engine, cfg, run_dir):
    path = engine_proc.prepare_run_dir(engine, cfg, str(run_dir))
    engine_proc.check_config(engine, path, str(run_dir))
    return path


CASES = {f"alg-{a}": {"algorithm": a} for a in ALGORITHMS}
CASES.update({
    "hash-header": {"algorithm": "consistent_hash", "hash_key": {"type": "header", "name": "X-U"}},
    "hash-cookie": {"algorithm": "consistent_hash", "hash_key": {"type": "cookie", "name": "uid"}},
    "hash-ip": {"algorithm": "consistent_hash", "hash_key": {"type": "client_ip"}},
    "weights-drain": {"algorithm": "weighted_least_connections",
                      "backends": [dict(B[0], weight=0), dict(B[1], weight=200)]},
    "routes-auth": {"groups": GROUPS, "routes": ROUTES},
    "everything": {"groups": GROUPS, "routes": ROUTES, "cache": {"max_bytes": 5_000_000},
                   "stats": {"port": 29901}, "workers": 2, "retries": 3,
                   "passive_health": {"max_fails": 2, "fail_timeout": 0.5},
                   "timeouts": {"connect": 0.1, "response": 2.5, "client_header": 1,
                                "keepalive_idle": 5},
                   "limits": {"max_uri": 20000, "max_header_bytes": 30000, "max_headers": 200,
                              "max_body": 1, "max_connections": 50}},
    "no-passive": {"passive_health": False, "retries": 0},
    "tls-backends": {"backends": [dict(b, tls=True) for b in B]},
    "ipv6-listen": {"listen": {"host": "::1", "port": 28080}},
})
HAPROXY_ONLY = {
    "health": {"health": {"path": "/health", "interval": 0.2, "rise": 1, "fall": 2,
                          "timeout": 0.1}},
    "sticky": {"sticky": {"cookie": "LBSRV", "secret": "lab-secret"}, "groups": GROUPS,
               "routes": ROUTES[:1]},
    "health-groups": {"groups": {"g": {"backends": B, "health": {"path": "/hz"},
                                       "algorithm": "power_of_two"}},
                      "routes": [{"match": {"path_prefix": "/g"}, "group": "g"}]},
}


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_config_passes_engine_check(engine, case, tmp_path):
    cfg = config(**CASES[case])
    assert check_support(engine, cfg) == []
    check(engine, cfg, tmp_path / "r")


@pytest.mark.parametrize("case", sorted(HAPROXY_ONLY))
def test_haproxy_only_features_pass_haproxy_and_are_refused_by_nginx(case, tmp_path):
    cfg = config(**HAPROXY_ONLY[case])
    check("haproxy", cfg, tmp_path / "r")
    with pytest.raises(EngineError, match=r"^nginx: cannot express .*; use engine builtin or "
                                          r"haproxy$"):
        engine_proc.prepare_run_dir("nginx", cfg, str(tmp_path / "n"))


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_tls_termination(engine, tls_files, tmp_path):
    cfg = config(tls=tls_files, groups=GROUPS, routes=ROUTES)
    check(engine, cfg, tmp_path / "r")
    names = {"haproxy": ["tls.pem"], "nginx": ["tls.crt", "tls.key"]}[engine]
    for name in names:
        assert ((tmp_path / "r" / name).stat().st_mode & 0o777) == 0o600


def test_missing_tls_file_is_a_clear_error(tmp_path):
    cfg = config(tls={"cert": str(tmp_path / "nope.crt"), "key": str(tmp_path / "nope.key")})
    with pytest.raises(EngineError, match=r"tls.cert: cannot read .*nope.crt.*make setup"):
        engine_proc.prepare_run_dir("nginx", cfg, str(tmp_path / "r"))


def test_a_broken_config_is_reported_with_the_engines_output(tmp_path):
    cfg = config()
    path = engine_proc.prepare_run_dir("nginx", cfg, str(tmp_path / "r"))
    with open(path, "a", encoding="utf-8") as fp:
        fp.write("bogus_directive on;\n")
    with pytest.raises(EngineError, match=r'nginx: config check failed \(exit 1\).*unknown '
                                          r'directive "bogus_directive"'):
        engine_proc.check_config("nginx", path, str(tmp_path / "r"))


def test_cli_check(tmp_path, capsys):
    from experiments import cli
    path = tmp_path / "l7.yaml"
    path.write_text("listen: {host: 127.0.0.1, port: 28080}\n"
                    "backends: [{name: b1, address: 127.0.0.1, port: 28081}]\n")
    for engine in ("haproxy", "nginx"):
        assert cli.main(["engine", "check", "--engine", engine, "--config", str(path),
                         "--run-dir", str(tmp_path / engine)]) == 0
        assert f"{engine}: {tmp_path / engine}" in capsys.readouterr().out
