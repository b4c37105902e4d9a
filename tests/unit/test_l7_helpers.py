"""Pure tests for the L7 proxy helpers: http_rules, routing/auth, cache, sticky, health."""
import base64

import pytest

from lb_apps.proxy import cache as cache
from lb_apps.proxy import health as health
from lb_apps.proxy import http_rules as http_rules
from lb_apps.proxy import sticky as sticky
from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.routing import Router, check_auth, challenge, normalize_host

# -- http_rules ------------------------------------------------------------------------


def test_analyze_request_splits_hop_by_hop_and_forwarding():
    head = http_rules.analyze_request([
        (b"Host", b"lab"), (b"Connection", b"keep-alive, X-Drop"), (b"X-Drop", b"1"),
        (b"Keep-Alive", b"5"), (b"TE", b"trailers"), (b"X-Forwarded-For", b"1.1.1.1"),
        (b"X-Forwarded-For", b"2.2.2.2"), (b"Cookie", b"a=1"), (b"Cookie", b"b=2"),
        (b"Content-Length", b"3"), (b"X-Keep", b"y")], 1)
    assert b"".join(head.forward) == b"Cookie: a=1\r\nCookie: b=2\r\nX-Keep: y\r\n"
    # Host and Content-Length are written by the proxy from the values it parsed
    assert http_rules.build_request_head(b"POST", b"/", head, b"") == (
        b"POST / HTTP/1.1\r\nHost: lab\r\nCookie: a=1\r\nCookie: b=2\r\nX-Keep: y\r\n"
        b"Content-Length: 3\r\n\r\n")
    assert head.xff == b"1.1.1.1, 2.2.2.2" and head.cookie == b"a=1; b=2"
    assert head.content_length == 3 and head.conn_keep_alive and not head.conn_close
    lines = http_rules.forwarding_lines(head, "127.0.0.1", b"http", 1)
    assert b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 127.0.0.1\r\n" in lines
    assert b'Forwarded: for=127.0.0.1;proto=http;host="lab"\r\n' in lines
    assert b"Via: 1.1 lblab\r\n" in lines
    v6 = http_rules.forwarding_lines(http_rules.analyze_request([(b"Host", b"h")], 1), "::1",
                                     b"https", 0)
    assert b'for="[::1]";proto=https' in v6 and b"Via: 1.0 lblab" in v6


@pytest.mark.parametrize("headers, minor, status", [
    ([], 1, 400),
    ([(b"Host", b"a"), (b"Host", b"a")], 1, 400),
    ([(b"Host", b"a/b")], 1, 400),
    ([(b"Host", b"a"), (b"Transfer-Encoding", b"gzip, chunked")], 1, 501),
    ([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")], 0, 400),
])
def test_analyze_request_errors(headers, minor, status):
    with pytest.raises(http_rules.RequestError) as info:
        http_rules.analyze_request(headers, minor)
    assert info.value.status == status


@pytest.mark.parametrize("connection", [
    [b"content-length"], [b"close, content-length"], [b"keep-alive", b"Content-Length"],
    [b"host"], [b"transfer-encoding"], [b"cookie"], [b"x-a, Authorization"]])
def test_connection_naming_a_field_the_proxy_relies_on_is_refused(connection):
    headers = [(b"Host", b"lab"), (b"Content-Length", b"37"), (b"Cookie", b"s=1"),
               (b"Authorization", b"Basic eA==")] + [(b"Connection", c) for c in connection]
    with pytest.raises(http_rules.RequestError) as info:
        http_rules.analyze_request(headers, 1)
    assert info.value.status == 400 and "Connection names" in str(info.value)


def test_connection_naming_a_configured_routing_header_is_refused():
    headers = [(b"Host", b"lab"), (b"X-Tenant", b"a"), (b"Connection", b"x-tenant")]
    assert http_rules.analyze_request(headers, 1).forward == []  # not protected by default
    with pytest.raises(http_rules.RequestError):
        http_rules.analyze_request(headers, 1, http_rules.PROTECTED_FIELDS | {b"x-tenant"})


def test_connection_named_fields_are_neither_forwarded_nor_acted_on():
    head = http_rules.analyze_request([
        (b"Host", b"lab"), (b"Connection", b"x-forwarded-for, via, expect, cache-control"),
        (b"X-Forwarded-For", b"6.6.6.6"), (b"Via", b"1.1 evil"), (b"Expect", b"100-continue"),
        (b"Cache-Control", b"no-cache")], 1)
    assert head.forward == []
    assert head.xff is head.via is head.cache_control is None and not head.expect_continue


@pytest.mark.parametrize("method, url, host, want", [
    (b"GET", b"/a?b", b"lab", b"/a?b"),
    (b"OPTIONS", b"*", b"lab", b"*"),
    (b"GET", b"http://other:8080/p?q=1", b"other:8080", b"/p?q=1"),
    (b"GET", b"HTTPS://Other", b"Other", b"/"),
    (b"GET", b"http://other?x", b"other", b"/?x"),
])
def test_origin_form(method, url, host, want):
    head = http_rules.analyze_request([(b"Host", b"lab")], 1)
    assert http_rules.origin_form(method, url, head) == want
    assert head.host == host
    assert http_rules.build_request_head(method, want, head, b"").startswith(
        method + b" " + want + b" HTTP/1.1\r\nHost: " + host + b"\r\n")


@pytest.mark.parametrize("method, url", [
    (b"GET", b"*"), (b"POST", b"*"), (b"GET", b"lab:80"), (b"GET", b"ftp://lab/x"),
    (b"GET", b"http://user@lab/x"), (b"GET", b"http:///x"), (b"GET", b"http://a b/")])
def test_bad_request_targets_are_400(method, url):
    head = http_rules.analyze_request([(b"Host", b"lab")], 1)
    with pytest.raises(http_rules.RequestError) as info:
        http_rules.origin_form(method, url, head)
    assert info.value.status == 400


def test_http10_without_host_is_fine_and_request_head_is_http11():
    head = http_rules.analyze_request([(b"Transfer-Encoding", b"chunked"), (b"Host", b"x")], 1)
    out = http_rules.build_request_head(b"POST", b"/p", head, b"Via: 1.1 lblab\r\n")
    assert out == (b"POST /p HTTP/1.1\r\nHost: x\r\nVia: 1.1 lblab\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
    assert http_rules.analyze_request([], 0).host is None


def test_analyze_response_and_error_response():
    resp = http_rules.analyze_response([
        (b"Connection", b"close, X-S"), (b"X-S", b"1"), (b"Transfer-Encoding", b"chunked"),
        (b"Cache-Control", b"max-age=5"), (b"Vary", b"A"), (b"Vary", b"B"), (b"Set-Cookie", b"c"),
        (b"X-K", b"v")])
    assert b"".join(resp.forward) == (b"Cache-Control: max-age=5\r\nVary: A\r\nVary: B\r\n"
                                      b"Set-Cookie: c\r\nX-K: v\r\n")
    assert resp.upstream_close and resp.chunked and resp.vary == b"A, B" and resp.has_set_cookie
    out = http_rules.error_response(503, "down", close=False)
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and out.endswith(b"\r\n\r\ndown\n")
    assert b"Connection: close" not in out
    assert http_rules.parser_error_status("Request has invalid `Transfer-Encoding`") == 501
    assert http_rules.parser_error_status("Invalid `Transfer-Encoding` header value") == 400


def test_split_target_and_cookies():
    assert http_rules.split_target(b"/a/b?x=1&y") == ("/a/b", "x=1&y")
    assert http_rules.split_target(b"http://h:1/p?q") == ("/p", "q")
    assert http_rules.split_target(b"http://h") == ("/", "")
    assert http_rules.parse_cookies(b'a=1; b="2"; a=3; junk') == {"a": "1", "b": "2"}
    assert http_rules.is_idempotent("PUT") and not http_rules.is_idempotent("POST")
    assert not http_rules.is_idempotent("PATCH")

# -- routing and auth ------------------------------------------------------------------


def _cfg(routes):
    return parse_l7_config({"backends": [{"name": "b", "address": "127.0.0.1", "port": 1}],
                            "groups": {"g": {"backends": [{"name": "c", "address": "127.0.0.1",
                                                           "port": 2}]}},
                            "routes": routes})


def test_router_conditions_and_order():
    r = Router(_cfg([{"match": {"path_prefix": "/a", "host": "x.com"}, "group": "g"},
                     {"match": {"path_regex": "^/b/[0-9]+$", "method": "PUT"}, "group": "g"},
                     {"match": {"header": {"name": "X-A"}}, "group": "g"},
                     {"match": {}, "group": "default"}]).routes)
    assert r.match("GET", "/a/1", "", b"X.com:80", [], None).index == 0
    assert r.match("GET", "/a/1", "", b"y.com", [], None).index == 3
    assert r.match("PUT", "/b/12", "", None, [], None).index == 1
    assert r.match("GET", "/b/12", "", None, [(b"x-a", b"")], None).index == 2
    assert Router(()).match("GET", "/", "", None, [], None) is None
    assert normalize_host(b"[::1]:80") == "[::1]" and normalize_host(b"A.b.") == "a.b"


def test_check_auth():
    cfg = _cfg([{"auth": {"type": "basic", "users": {"u": "p:w"}}},
                {"auth": {"type": "bearer", "tokens": ["a", "b"]}}])
    basic, bearer = cfg.routes[0].auth, cfg.routes[1].auth
    good = b"Basic " + base64.b64encode(b"u:p:w")
    assert check_auth(basic, good) and check_auth(basic, b"basic " + good[6:])
    assert not check_auth(basic, None) and not check_auth(basic, b"Bearer a")
    assert not check_auth(basic, b"Basic " + base64.b64encode(b"u:x"))
    assert not check_auth(basic, b"Basic " + base64.b64encode(b"nocolon"))
    assert check_auth(bearer, b"Bearer b") and not check_auth(bearer, b"Bearer c")
    assert challenge(basic) == b'WWW-Authenticate: Basic realm="lblab"\r\n'

# -- cache -----------------------------------------------------------------------------


def test_cache_policies():
    assert cache.request_lookup_policy("GET", None, None, None) == (True, True)
    assert cache.request_lookup_policy("HEAD", None, None, None) == (True, False)
    assert cache.request_lookup_policy("POST", None, None, None) == (False, False)
    assert cache.request_lookup_policy("GET", b"no-store", None, None) == (False, False)
    assert cache.request_lookup_policy("GET", b"no-cache", None, None) == (False, True)
    assert cache.request_lookup_policy("GET", b"max-age=0", None, None) == (False, True)
    assert cache.request_lookup_policy("GET", None, b"no-cache", None) == (False, True)
    assert cache.request_lookup_policy("GET", None, None, b"Basic x") == (False, False)
    assert cache.response_ttl(200, b"max-age=10", None, False) == 10.0
    assert cache.response_ttl(200, b"max-age=0, s-maxage=7", None, False) == 7.0
    assert cache.response_ttl(200, b"max-age=10", None, False, age=b"4") == 6.0
    assert cache.response_ttl(200, b"max-age=10", None, False, age=b"11") is None
    for cc in (b"no-store, max-age=10", b"private, max-age=10", b"no-cache, max-age=9", None):
        assert cache.response_ttl(200, cc, None, False) is None
    assert cache.response_ttl(500, b"max-age=10", None, False) is None
    assert cache.response_ttl(200, b"max-age=10", b"*", False) is None
    assert cache.response_ttl(200, b"max-age=10", None, True) is None


def test_cache_lru_vary_and_bounds():
    c = cache.ResponseCache(max_entries=2, max_bytes=1000, max_object_bytes=100)
    entry = lambda body, t=0: cache.CacheEntry(200, b"H", body, t, 10)  # noqa: E731
    hdr = [(b"Accept-Language", b"en")]
    assert c.put(("h", b"/a"), hdr, b"accept-language", entry(b"en"))
    assert c.get(("h", b"/a"), hdr, 1).body == b"en"
    assert c.get(("h", b"/a"), [(b"Accept-Language", b"fr")], 1) is None
    assert c.put(("h", b"/a"), [(b"accept-language", b"fr")], b"Accept-Language", entry(b"fr"))
    assert c.get(("h", b"/a"), [(b"ACCEPT-LANGUAGE", b"fr")], 1).body == b"fr"
    assert c.put(("h", b"/b"), [], None, entry(b"b"))  # evicts the LRU entry (/a en)
    assert len(c) == 2 and c.get(("h", b"/a"), hdr, 1) is None and c.evictions == 1
    assert not c.put(("h", b"/big"), [], None, entry(b"x" * 200))
    assert c.get(("h", b"/b"), [], 11) is None  # expired: dropped
    assert c.describe()["entries"] == 1 and c.bytes == len(b"H") + 2

# -- sticky ----------------------------------------------------------------------------


def test_sticky_sign_verify():
    value = sticky.sign("b1", "s")
    assert value.startswith("b1.") and sticky.verify(value, "s") == "b1"
    assert sticky.verify(value, "other") is None
    assert sticky.verify("b2." + value.split(".", 1)[1], "s") is None
    assert sticky.verify(sticky.sign("b.x", "s"), "s") == "b.x"
    for bad in (None, "", "b1", ".sig", "b1."):
        assert sticky.verify(bad, "s") is None
    line = sticky.set_cookie_line("LBSRV", "b1", "s", secure=True)
    assert line.startswith(b"Set-Cookie: LBSRV=b1.") and b"HttpOnly" in line and b"Secure" in line

# -- health ----------------------------------------------------------------------------


def test_active_health_table():
    cfg = parse_l7_config({"backends": [{"name": "b", "address": "127.0.0.1", "port": 1}],
                           "health": {"rise": 2, "fall": 3}, "passive_health": False})
    h = health.BackendHealth(cfg.default_group.health, None)
    seq = []
    for passed in (False, False, True, False, False, False, True, False, True, True):
        h.on_check(passed, 0)
        seq.append(h.active_state)
    assert seq == ["failing", "failing", "up", "failing", "failing", "down", "rising", "down",
                   "rising", "up"]
    assert h.serving() and not h.on_request(False, 0)  # passive off


def test_passive_health_table():
    cfg = parse_l7_config({"backends": [{"name": "b", "address": "127.0.0.1", "port": 1}],
                           "passive_health": {"max_fails": 2, "fail_timeout": 5}})
    h = health.BackendHealth(None, cfg.default_group.passive_health)
    assert not h.on_request(False, 0.0) and h.serving()
    assert not h.on_request(True, 0.0) and h.passive_count == 0  # success resets
    h.on_request(False, 1.0)
    assert h.on_request(False, 1.0) and not h.serving() and h.passive_state == "ejected"
    assert not h.on_timer(5.9) and h.on_timer(6.0) and h.serving()
    assert set(health.ACTIVE_TRANSITIONS) == {health.UP, health.FAILING, health.DOWN, health.RISING}
