"""lb_apps.engines.render, pure parts: support matrix, refusals, algorithm mapping, maxconn, CLI errors."""
import dataclasses
import re

import pytest

from experiments import cli
from lb_apps.engines import render as engines
from lb_apps.engines.render import (EngineError, check_support, haproxy_maxconn, render_haproxy,
                             render_nginx)
from lb_apps.engines.text import environment
from lb_apps.l7config import (DEFAULT_GROUP, Auth, Backend, Health, Listen, Match, NameValue,
                              Route, Sticky, parse_l7_config)

RUN_DIR = "/tmp/lblab-engine-test"
ULIMIT = 20000
B = [{"name": "b1", "address": "127.0.0.1", "port": 18081, "weight": 3},
     {"name": "b2", "address": "127.0.0.1", "port": 18082}]


def make(**extra):
    data = {"listen": {"host": "127.0.0.1", "port": 18080}, "backends": [dict(b) for b in B]}
    data.update(extra)
    return parse_l7_config(data)


def hap(cfg, **kw):
    return render_haproxy(cfg, RUN_DIR, ULIMIT, **kw)


def ngx(cfg, **kw):
    return render_nginx(cfg, RUN_DIR, ULIMIT, **kw)


def section(text, header):
    """Lines of one HAProxy section / nginx block starting at ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    out = []
    for line in lines[start + 1:]:
        if line.strip() in ("", "}") or not line.startswith(" "):
            break
        out.append(line.strip())
    return out


# ----- haproxy_maxconn -------------------------------------------------------------------------

@pytest.mark.parametrize("ulimit_n, expected", [
    (1024, 384), (4096, 1920), (20000, 9872), (1 << 20, engines.HAPROXY_MAXCONN_CAP)])
def test_haproxy_maxconn_from_ulimit(ulimit_n, expected):
    assert haproxy_maxconn(ulimit_n) == expected


def test_haproxy_maxconn_stays_under_the_limit_measured_here():
    # Measured: maxconn 9990 needs 20008 fds and 10000 needs 20028; the hard limit was 20000.
    assert 2 * haproxy_maxconn(20000) + 28 <= 20000


@pytest.mark.parametrize("bad", [0, 100, 258, -1, "1024", 1024.0, True, None])
def test_haproxy_maxconn_rejects_bad_limits(bad):
    with pytest.raises(EngineError, match=r"ulimit_n: expected an int > 258"):
        haproxy_maxconn(bad)


def test_max_connections_beyond_fd_limit_is_refused():
    cfg = make(limits={"max_connections": 1000}, workers=2)
    with pytest.raises(EngineError, match=r"haproxy: limits.max_connections 1000 x workers 2 = "
                                          r"2000 exceeds maxconn 384 allowed by ulimit -n 1024"):
        render_haproxy(cfg, RUN_DIR, 1024)
    assert "maxconn 2000" in render_haproxy(cfg, RUN_DIR, 8192)


# ----- algorithm mapping -----------------------------------------------------------------------

HAP_BALANCE = {
    "round_robin": ["balance roundrobin"],
    "weighted_round_robin": ["balance roundrobin"],
    "least_connections": ["balance leastconn"],
    "weighted_least_connections": ["balance leastconn"],
    "random": ["balance random(1)"],
    "power_of_two": ["balance random(2)"],
    "ip_hash": ["balance source", "hash-type map-based"],
    "five_tuple_hash": ["balance hash var(txn.lblab_l4)", "hash-type map-based"],
    "consistent_hash": ["balance uri", "hash-type consistent"],
}
NGX_BALANCE = {
    "round_robin": None,
    "weighted_round_robin": None,
    "least_connections": "least_conn;",
    "weighted_least_connections": "least_conn;",
    "random": "random;",
    "power_of_two": "random two least_conn;",
    "ip_hash": "hash $remote_addr;",
    "five_tuple_hash": "hash $remote_addr:$remote_port-$server_addr:$server_port;",
    "consistent_hash": "hash $request_uri consistent;",
}


@pytest.mark.parametrize("algorithm", sorted(HAP_BALANCE))
def test_algorithm_mapping(algorithm):
    cfg = make(algorithm=algorithm)
    backend = section(hap(cfg), "backend g_default")
    for line in HAP_BALANCE[algorithm]:
        assert line in backend
    upstream = section(ngx(cfg), "upstream g_default")
    expected = NGX_BALANCE[algorithm]
    balance = [x for x in upstream if not x.startswith(("server", "keepalive"))]
    assert balance == ([] if expected is None else [expected])
    # nginx's ip_hash would hash only 10.0.0 of every Mininet client: never rendered.
    assert "ip_hash" not in ngx(cfg)


@pytest.mark.parametrize("algorithm, weighted", [
    ("round_robin", False), ("least_connections", False), ("ip_hash", False),
    ("five_tuple_hash", False), ("weighted_round_robin", True),
    ("weighted_least_connections", True), ("random", True), ("power_of_two", True),
    ("consistent_hash", True)])
def test_weights_only_where_the_builtin_uses_them(algorithm, weighted):
    cfg = make(algorithm=algorithm)
    backend = section(hap(cfg), "backend g_default")
    assert any(line.startswith("server b1 127.0.0.1:18081 weight " + ("3" if weighted else "1"))
               for line in backend)
    upstream = section(ngx(cfg), "upstream g_default")
    assert ("weight=3" in " ".join(upstream)) == weighted


def test_weight_zero_drains():
    cfg = make(backends=[dict(B[0], weight=0), B[1]])
    assert any(x.startswith("server b1 127.0.0.1:18081 weight 0") for x in
               section(hap(cfg), "backend g_default"))
    assert any(x.startswith("server 127.0.0.1:18081 down") for x in
               section(ngx(cfg), "upstream g_default"))


@pytest.mark.parametrize("key, hap_line, ngx_line", [
    ({"type": "uri"}, "balance uri", "hash $request_uri consistent;"),
    ({"type": "client_ip"}, "balance source", "hash $remote_addr consistent;"),
    ({"type": "header", "name": "X-User"}, "balance hdr(X-User)", "hash $http_x_user consistent;"),
    ({"type": "cookie", "name": "uid"}, "balance hash req.cook(uid)",
     "hash $cookie_uid consistent;"),
])
def test_consistent_hash_keys(key, hap_line, ngx_line):
    cfg = make(algorithm="consistent_hash", hash_key=key)
    assert hap_line in section(hap(cfg), "backend g_default")
    assert ngx_line in section(ngx(cfg), "upstream g_default")


# ----- support matrix and refusals -------------------------------------------------------------

def test_plain_config_is_supported_by_both():
    cfg = make()
    assert check_support("haproxy", cfg) == [] and check_support("nginx", cfg) == []


def test_unknown_engine():
    with pytest.raises(EngineError, match=r"engine: unknown engine 'envoy'; expected one of "
                                          r"haproxy, nginx"):
        check_support("envoy", make())


@pytest.mark.parametrize("extra, feature", [
    ({"health": {"path": "/health"}}, "active health checks in group 'default'"),
    ({"sticky": {"secret": "s"}}, "sticky cookie insert"),
    ({"backends": [dict(B[0], tls=True), B[1]]}, "mixed TLS and plain backends in group "
                                                 "'default'"),
    ({"algorithm": "consistent_hash", "hash_key": {"type": "cookie", "name": "a-b"}},
     "cookie name 'a-b'"),
    ({"routes": [{"match": {"header": {"name": "X_A", "value": "1"}}}]},
     "header name 'X_A'"),
    ({"routes": [{"match": {"query": {"name": "q.x"}}}]}, "query name 'q.x'"),
    ({"routes": [{"match": {"cookie": {"name": "c", "value": ""}}}]},
     "an empty cookie value in routes[0].match"),
    ({"routes": [{"match": {}, "auth": {"type": "basic", "users": {"a": "x:y"}}}]},
     "basic auth user 'a' in routes[0]"),
    ({"routes": [{"match": {}, "auth": {"type": "bearer", "tokens": ["t"], "realm": "a$b"}}]},
     "'$' in routes[0].auth.realm"),
])
def test_nginx_refusals_name_engine_and_feature(extra, feature):
    cfg = make(**extra)
    problems = check_support("nginx", cfg)
    assert any(p.startswith(feature) for p in problems), problems
    with pytest.raises(EngineError) as exc:
        ngx(cfg)
    message = str(exc.value)
    assert message.startswith("nginx: cannot express ") and feature in message
    # HAProxy expresses every one of these, so it is offered as the alternative.
    assert check_support("haproxy", cfg) == []
    assert message.endswith("; use engine builtin or haproxy")
    hap(cfg)


def test_haproxy_refuses_weights_above_256_and_offers_nginx():
    cfg = make(algorithm="weighted_round_robin", backends=[dict(B[0], weight=1000), B[1]])
    with pytest.raises(EngineError) as exc:
        hap(cfg)
    assert str(exc.value) == (
        "haproxy: cannot express weight 1000 for backend 'b1' in group 'default' (HAProxy "
        "weights are 0-256); use engine builtin or nginx")
    assert "weight=1000" in ngx(cfg)
    # An unweighted algorithm renders weight 1 anyway, so the weight does not matter there.
    assert check_support("haproxy", make(backends=[dict(B[0], weight=1000), B[1]])) == []


def test_several_problems_in_one_message_and_only_builtin_left():
    cfg = make(listen={"host": "127.0.0.1", "port": 0}, sticky={"secret": "s"})
    with pytest.raises(EngineError) as exc:
        ngx(cfg)
    message = str(exc.value)
    assert "listen.port 0" in message and "sticky cookie insert" in message
    assert message.endswith("; use engine builtin")


@pytest.mark.parametrize("extra, feature, special", [
    ({"sticky": {"cookie": "a#b", "secret": "s"}}, "sticky.cookie 'a#b'", "#"),
    ({"health": {"path": "/h{x}"}}, "group 'default' health.path '/h{x}'", "{}"),
    ({"routes": [{"match": {"header": {"name": "X-A'B"}}}]},
     "routes[0].match.header.name \"X-A'B\"", "'"),
    ({"algorithm": "consistent_hash", "hash_key": {"type": "header", "name": "X$Y"}},
     "group 'default' hash_key.name 'X$Y'", "$"),
])
def test_haproxy_refuses_names_that_would_not_stay_one_word(extra, feature, special):
    problems = check_support("haproxy", make(**extra))
    assert problems == [f"{feature} (it is written unquoted into haproxy.cfg, where {special} "
                        f"would change its meaning)"]


# ----- the templates' wall: values forced past the models --------------------------------------

def forced(cfg, group=None, route=None, **top):
    """``cfg`` with some parts replaced by objects built without validation (model_construct)."""
    groups = dict(cfg.groups)
    if group is not None:
        groups[DEFAULT_GROUP] = dataclasses.replace(groups[DEFAULT_GROUP], **group)
    routes = cfg.routes
    if route is not None:
        routes = (Route(index=0, match=route.get("match", Match()), group=DEFAULT_GROUP,
                        auth=route.get("auth")),)
    return dataclasses.replace(cfg, groups=groups, routes=routes, **top)


INJECT = "\r\n    server evil 6.6.6.6:80"
FORCED = {
    "haproxy-health-path": ("haproxy", {"group": {"health": Health.model_construct(
        path="/h" + INJECT, interval=1.0, rise=2, fall=3, timeout=1.0)}}),
    "haproxy-backend-address": ("haproxy", {"group": {"backends": (Backend.model_construct(
        name="b1", address="127.0.0.1" + INJECT, port=1, weight=1, tls=False),)}}),
    "haproxy-sticky-cookie": ("haproxy", {"sticky": Sticky.model_construct(
        cookie="S\nbackend x", secret="s")}),
    "haproxy-header-value": ("haproxy", {"route": {"match": Match.model_construct(
        path_prefix=None, path_regex=None, host=None, method=(), cookie=None, query=None,
        header=NameValue.model_construct(name="X-A", value="a" + INJECT))}}),
    "haproxy-realm": ("haproxy", {"route": {"auth": Auth.model_construct(
        type="basic", users={"u": "p"}, tokens=(), realm="lab\nuserlist x")}}),
    "nginx-listen": ("nginx", {"listen": Listen.model_construct(
        host="0.0.0.0:80; include /etc/passwd", port=80)}),
    "nginx-path-prefix": ("nginx", {"route": {"match": Match.model_construct(
        path_prefix="/a" + INJECT, path_regex=None, host=None, method=(), header=None,
        cookie=None, query=None)}}),
    "nginx-bearer-realm": ("nginx", {"route": {"auth": Auth.model_construct(
        type="bearer", users={}, tokens=("t",), realm="lab\r\n}")}}),
}


@pytest.mark.parametrize("case", FORCED)
def test_templates_refuse_values_forced_past_the_models(case, monkeypatch):
    engine, parts = FORCED[case]
    cfg = forced(make(), **parts)
    # The wall must hold on its own: switch the support check off as if it had missed.
    monkeypatch.setattr(engines, "require_support", lambda engine, cfg: None)
    with pytest.raises(EngineError, match="refusing to (write|quote)"):
        engines.render(engine, cfg, RUN_DIR, ULIMIT)


def test_quotes_stay_inside_their_quoted_string():
    auth = Auth.model_construct(type="basic", users={"u": "p"}, tokens=(),
                                realm='lab"; return 200; #')
    text = ngx(forced(make(), route={"auth": auth}))
    assert '"lab\\"; return 200; #"' in text


def test_every_interpolation_is_finalized_and_htpasswd_refuses_forged_lines():
    with pytest.raises(EngineError, match="control character"):
        environment().from_string("x {{ v }}").render(v="a\r\nb")
    assert environment().from_string("{{ n }} {{ t }}").render(n=3, t="a\tb") == "3 a\tb"
    with pytest.raises(EngineError, match="htpasswd"):
        engines.htpasswd_text({"a\nroot": "x"})
    with pytest.raises(EngineError, match="htpasswd"):
        engines.htpasswd_text({"a:b": "x"})


@pytest.mark.parametrize("run_dir, why", [("relative/dir", "expected an absolute path"),
                                          ("/tmp/a b", "holds a space")])
def test_bad_run_dir(run_dir, why):
    with pytest.raises(EngineError, match=f"run_dir: .*{why}"):
        render_nginx(make(), run_dir, ULIMIT)


def test_socket_path_falls_back_to_a_short_tmp_path():
    assert engines.haproxy_socket_path(RUN_DIR) == RUN_DIR + "/haproxy.sock"
    long_dir = "/" + "x" * 120
    path = engines.haproxy_socket_path(long_dir)
    assert re.fullmatch(r"/tmp/lblab-haproxy-[0-9a-f]{16}\.sock", path)
    assert path != engines.haproxy_socket_path(long_dir + "y")
    assert f"stats socket {path} mode 600" in render_haproxy(make(), long_dir, ULIMIT)
    # HAProxy refuses a socket path over 97 characters (it binds <path>.<pid>.tmp first)
    edge = "/" + "x" * (97 - len("/haproxy.sock") - 1)
    assert engines.haproxy_socket_path(edge) == edge + "/haproxy.sock"
    assert engines.haproxy_socket_path(edge + "x").startswith("/tmp/lblab-haproxy-")


# ----- features --------------------------------------------------------------------------------

ROUTES = [
    {"match": {"path_prefix": "/api", "method": ["GET", "POST"]}, "group": "api",
     "auth": {"type": "basic", "users": {"alice": "s3cret"}}},
    {"match": {"host": "*.example.com", "header": {"name": "X-Tier", "value": "gold"},
               "cookie": {"name": "c"}, "query": {"name": "q", "value": "~x"}},
     "auth": {"type": "bearer", "tokens": ["tok1", "it's"]}},
    {"match": {"path_regex": r"^/v\d+/items$"}, "group": "api"},
]
GROUPS = {"api": {"algorithm": "least_connections",
                  "backends": [{"name": "a1", "address": "127.0.0.1", "port": 18083}]}}


def test_haproxy_routes_first_match_wins_with_auth():
    text = hap(make(groups=GROUPS, routes=ROUTES))
    fe = section(text, "frontend lblab")
    sets = [x for x in fe if x.startswith("http-request set-var(txn.lblab_route)")]
    assert len(sets) == 3
    assert all("!{ var(txn.lblab_route) -m found }" in x for x in sets)
    assert "{ path_beg -- '/api' }" in sets[0] and "{ method 'GET' 'POST' }" in sets[0]
    assert "{ req.hdr(host),field(1,:),lower -m end -- '.example.com' }" in sets[1]
    assert "{ req.fhdr(X-Tier) -m str -- 'gold' }" in sets[1]
    assert "{ req.cook_cnt(c) gt 0 }" in sets[1] and "{ urlp(q),url_dec -m str -- '~x' }" in sets[1]
    assert r"{ path_reg -- '^/v\d+/items$' }" in sets[2]
    assert "http-request auth realm 'lblab' if { var(txn.lblab_route) -m int 0 } " \
           "!{ http_auth(lblab_r0) }" in fe
    bearer = next(x for x in fe if x.startswith("http-request return status 401"))
    assert "-m reg -- \"^(?i:bearer) +(?:tok1|it's)\\$\" }" in bearer
    assert fe.index(sets[2]) < fe.index(bearer)  # a route is chosen before its auth runs
    assert [x for x in fe if x.startswith("use_backend")] == [
        "use_backend g_api if { var(txn.lblab_route) -m int 0 }",
        "use_backend g_default if { var(txn.lblab_route) -m int 1 }",
        "use_backend g_api if { var(txn.lblab_route) -m int 2 }"]
    assert "user 'alice' insecure-password 's3cret'" in section(text, "userlist lblab_r0")


def test_nginx_routes_first_match_wins_with_auth():
    text = ngx(make(groups=GROUPS, routes=ROUTES))
    assert section(text, "map $lblab_path $lblab_r0_prefix") == ['"~^/api" 1;', "default 0;"]
    assert section(text, "map $host $lblab_r1_host")[0] == r'"~\\.example\\.com$" 1;'
    assert section(text, "map $arg_q $lblab_r1_query")[0] == r'"~^\\~x$" 1;'
    assert section(text, "map $cookie_c $lblab_r1_cookie")[:2] == ['"" 0;', "~. 1;"]
    assert section(text, 'map "$lblab_r0$lblab_r1$lblab_r2" $lblab_route') == [
        '"~^1" 0;', '"~^01" 1;', '"~^001" 2;', 'default "-";']
    assert section(text, "map $lblab_route $lblab_upstream") == [
        '"0" http://g_api;', '"1" http://g_default;', '"2" http://g_api;',
        "default http://g_default;"]
    assert section(text, "map $lblab_route $lblab_realm") == ['"0" "lblab";', "default off;"]
    assert section(text, 'map "$lblab_route:$http_authorization"') == [
        '"~^1:(?i:bearer) +(?:tok1|it\'s)$" "";', '"~^1:" "lblab";', 'default "";']
    assert "proxy_pass $lblab_upstream;" in text


def test_htpasswd_plain_scheme():
    cfg = make(groups=GROUPS, routes=ROUTES[:1])
    assert engines.htpasswd_files(cfg, RUN_DIR) == {
        RUN_DIR + "/htpasswd-r0": "alice:{PLAIN}s3cret\n"}


def test_sticky_cookie_values_are_hmacs():
    cfg = make(sticky={"cookie": "LBSRV", "secret": "lab-secret"})
    backend = section(hap(cfg), "backend g_default")
    assert "cookie LBSRV insert indirect nocache httponly" in backend
    value = engines.sticky_cookie_value(cfg.sticky, "b1")
    assert re.fullmatch(r"[0-9a-f]{16}", value) and value != engines.sticky_cookie_value(
        cfg.sticky, "b2")
    assert any(x.startswith("server b1 ") and f"cookie {value}" in x for x in backend)


def test_health_and_passive_health_haproxy():
    text = hap(make(health={"path": "/hz", "interval": 0.5, "rise": 2, "fall": 4, "timeout": 0.2}))
    backend = section(text, "backend g_default")
    assert "option httpchk GET /hz" in backend and "timeout check 200ms" in backend
    assert any("check inter 500ms rise 2 fall 4 observe layer7 error-limit 3 on-error mark-down"
               in x for x in backend)
    # Passive only: observe needs checks on; a TCP check every fail_timeout brings it back.
    passive = section(hap(make()), "backend g_default")
    assert "option httpchk GET /hz" not in passive
    assert any("check inter 10000ms rise 1 fall 3 observe layer7" in x for x in passive)
    off = section(hap(make(passive_health=False)), "backend g_default")
    assert not any(" check" in x for x in off)


def test_passive_health_nginx():
    upstream = section(ngx(make(passive_health={"max_fails": 2, "fail_timeout": 2.5})),
                       "upstream g_default")
    assert "server 127.0.0.1:18082 max_fails=2 fail_timeout=3s;" in upstream
    upstream = section(ngx(make(passive_health=False)), "upstream g_default")
    assert "server 127.0.0.1:18082 max_fails=0;" in upstream


def test_tls_paths_live_in_run_dir():
    cfg = make(tls={"cert": ".lab/tls/lab.crt", "key": ".lab/tls/lab.key"})
    assert f"bind 127.0.0.1:18080 ssl crt {RUN_DIR}/tls.pem alpn http/1.1" in hap(cfg)
    text = ngx(cfg)
    assert "listen 127.0.0.1:18080 ssl;" in text
    assert f"ssl_certificate {RUN_DIR}/tls.crt;" in text
    assert f"ssl_certificate_key {RUN_DIR}/tls.key;" in text


def test_tls_to_backends():
    cfg = make(backends=[dict(b, tls=True) for b in B])
    assert "ssl verify none" in " ".join(section(hap(cfg), "backend g_default"))
    text = ngx(cfg)
    assert "proxy_pass https://g_default;" in text and "proxy_ssl_verify off;" in text


def test_timeouts_limits_retries_workers():
    cfg = make(workers=2, retries=0,
               timeouts={"connect": 0.25, "response": 5, "client_header": 3, "keepalive_idle": 30},
               limits={"max_uri": 2048, "max_headers": 50, "max_header_bytes": 4096,
                       "max_body": 1000, "max_connections": 10})
    text = hap(cfg)
    for line in ("nbthread 2", "timeout connect 250ms", "timeout server 5000ms",
                 "timeout http-request 3000ms", "timeout http-keep-alive 30000ms", "retries 0",
                 "maxconn 20", "tune.http.maxhdr 101",
                 "http-request deny deny_status 413 if { req.hdr_val(content-length) gt 1000 }"):
        assert line in text, line
    assert "{ url,length gt 2048 }" in text and "{ req.fhdr_cnt gt 50 }" in text
    text = ngx(cfg)
    for line in ("worker_processes 2;", "proxy_connect_timeout 250ms;", "client_max_body_size 1000;",
                 "proxy_read_timeout 5000ms;", "client_header_timeout 3000ms;",
                 "keepalive_timeout 30000ms;", "proxy_next_upstream off;", "reuseport;",
                 "large_client_header_buffers 2 2k;", "worker_connections 116;"):
        assert line in text, line


def test_nginx_never_touches_var_and_runs_in_foreground():
    text = ngx(make(), user="root")
    assert "/var/" not in text and "/run/" not in text
    assert "daemon off;" in text and "master_process on;" in text and "user root;" in text
    assert f"pid {RUN_DIR}/nginx.pid;" in text
    assert "access_log off;" in ngx(make(), access_log=False)


def test_cache_and_stats():
    cfg = make(cache={"max_bytes": 3 * 1024 * 1024, "max_entries": 100}, stats={"port": 19901})
    text = hap(cfg)
    assert "total-max-size 3" in text and "http-response cache-store lblab" in text
    assert "listen lblab_stats" in text and "bind 127.0.0.1:19901" in text
    text = ngx(cfg)
    assert "keys_zone=lblab:1m max_size=3072k" in text and "proxy_cache lblab;" in text
    assert "stub_status;" in text and "listen 127.0.0.1:19901;" in text


# ----- CLI -------------------------------------------------------------------------------------

def test_cli_render_and_errors(tmp_path, capsys):
    path = tmp_path / "l7.yaml"
    path.write_text("listen: {host: 127.0.0.1, port: 18080}\nsticky: {secret: s}\n"
                    "backends: [{name: b1, address: 127.0.0.1, port: 18081}]\n")
    out = tmp_path / "haproxy.cfg"
    assert cli.main(["engine", "render", "--engine", "haproxy", "--config", str(path),
                     "-o", str(out), "--run-dir", str(tmp_path / "run")]) == 0
    assert "backend g_default" in out.read_text()
    assert cli.main(["engine", "render", "--engine", "nginx", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lblab engine: error: nginx: cannot express sticky cookie insert")
    path.write_text("backends: []\n")
    assert cli.main(["engine", "render", "--engine", "nginx", "--config", str(path)]) == 2
    assert "backends: expected at least one backend" in capsys.readouterr().err
