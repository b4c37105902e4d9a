"""L7 proxy over loopback: request smuggling and malformed requests, hop-by-hop headers,
forwarding headers, limits and framing."""
import time

import pytest

from tests.unit.test_proxy_harness import (Client, backends, config, lt, proxy,  # noqa: F401
                                           request, served_by)

H = b"Host: lab\r\n"

BAD_REQUESTS = [
    ("cl_te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"
              b"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("te_cl", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"
              b"\r\n0\r\n\r\n", 400),
    ("cl_differ", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     400),
    ("cl_duplicate", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
     400),
    ("cl_list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("cl_malformed", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3a\r\n\r\nabc", 400),
    ("cl_plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("te_gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 501),
    ("te_gzip_chunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                        b"0\r\n\r\n", 501),
    ("te_chunked_not_last", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n"
                            b"\r\n0\r\n\r\n", 400),
    ("te_twice", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_http10", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("space_before_colon_te", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n"
                              b"0\r\n\r\n", 400),
    ("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    ("bare_cr", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400),
    ("bare_lf", b"GET / HTTP/1.1\nHost: lab\n\n", 400),
    ("nul_header", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400),
    ("nul_target", b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing_host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate_host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad_host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("bad_chunk_size", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("chunk_lf_only", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
     400),
    ("connect", b"CONNECT lab:443 HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("upgrade_with_body", b"POST / HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: x\r\n"
                          b"Content-Length: 3\r\n\r\nabc", 501),
    ("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
]


@pytest.mark.parametrize("name, data, status", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_refused_and_nothing_forwarded(backends, proxy, name, data, status):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    out = request(p.port, data)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:200]
    assert b"Connection: close" in out.split(b"\r\n\r\n")[0]
    time.sleep(0.05)
    assert b1.raw == [], f"{name}: backend received {b1.raw!r}"


def test_bad_request_after_good_one_is_answered_in_order(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    out = request(p.port, b"GET /ok HTTP/1.1\r\n" + H + b"\r\n"
                  b"GET /evil HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    first, _, rest = out.partition(b"HTTP/1.1 400 ")
    assert first.startswith(b"HTTP/1.1 200 ") and rest
    assert b1.paths() == ["/ok"]


def test_hop_by_hop_stripped_and_forwarding_headers_appended(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    c = Client(p.port)
    try:
        resp = c.get("/hop", [("Connection", "X-Foo, keep-alive"), ("X-Foo", "secret"),
                              ("Keep-Alive", "300"), ("TE", "trailers"), ("Upgrade", "h2c"),
                              ("Proxy-Authorization", "Basic eA=="), ("Proxy-Connection", "x"),
                              ("X-Forwarded-For", "192.0.2.1"), ("Forwarded", "for=192.0.2.1"),
                              ("Via", "1.1 edge"), ("X-Kept", "yes")])
        assert resp[0] == 200
        names = {n for n, _ in b1.requests[0]["headers"]}
        for gone in ("connection", "x-foo", "keep-alive", "te", "upgrade", "proxy-authorization",
                     "proxy-connection"):
            assert gone not in names, gone
        assert b1.header(0, "x-kept") == ["yes"]
        assert b1.header(0, "x-forwarded-for") == ["192.0.2.1, 127.0.0.1"]
        assert b1.header(0, "forwarded") == ['for=192.0.2.1, for=127.0.0.1;proto=http;host="lab"']
        assert b1.header(0, "via") == ["1.1 edge, 1.1 lblab"]
        assert b1.header(0, "x-forwarded-proto") == ["http"]
        # response side: hop-by-hop and Connection-named headers removed, Via added
        headers = resp[1]
        for gone in ("x-secret", "keep-alive", "proxy-authenticate"):
            assert gone not in headers, gone
        assert headers["x-kept"] == ["yes"] and headers["via"] == ["1.1 lblab"]
        assert headers.get("connection") is None
    finally:
        c.close()


def test_chunked_request_and_response_reframed(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    c = Client(p.port)
    try:
        c.send(b"POST /up HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        status, headers, body = c.response()
        assert status == 200 and b'"body": "abcde"' in body
        status, headers, body = c.get("/chunked")
        assert headers["transfer-encoding"] == ["chunked"] and body == b"hello world"
        status, headers, body = c.get("/x", method="HEAD")
        assert status == 200 and int(headers["content-length"][0]) > 0
        assert served_by(c.get("/after-head")) == "b1"  # HEAD left the connection in sync
    finally:
        c.close()


def test_response_until_close_and_http10_chunked(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    out = request(p.port, b"GET /nolen HTTP/1.1\r\n" + H + b"\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"until-close")
    assert b"Connection: close" in out
    out = request(p.port, b"GET /chunked HTTP/1.0\r\n\r\n")
    assert out.endswith(b"\r\n\r\nhello world") and b"Transfer-Encoding" not in out


def test_malformed_upstream_response_is_502(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], retries=0))
    c = Client(p.port)
    try:
        assert c.get("/bad")[0] == 502
    finally:
        c.close()


@pytest.mark.parametrize("limits, data, status", [
    ({"max_uri": 64}, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ({"max_header_bytes": 256}, b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 400 + b"\r\n\r\n",
     431),
    ({"max_header_bytes": 256, "max_uri": 64},
     b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 3000, 431),  # never-ending header
    ({"max_headers": 5}, b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: 1\r\n" % i for i in range(8))
     + b"\r\n", 431),
    ({"max_body": 10}, b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\n" + b"x" * 11, 413),
    ({"max_body": 10}, b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"8\r\nxxxxxxxx\r\n8\r\nxxxxxxxx\r\n0\r\n\r\n", 413),
])
def test_limits(backends, proxy, limits, data, status):
    (b1,) = backends("b1")
    p = proxy(config([b1], limits=limits))
    out = request(p.port, data)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:100]
    time.sleep(0.05)
    assert b1.requests == []


def test_client_header_deadline_408(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], timeouts={"client_header": 0.3}))
    t0 = time.monotonic()
    out = request(p.port, b"GET / HTTP/1.1\r\nHost: la", timeout=3.0)  # slowloris: never ends
    assert out.startswith(b"HTTP/1.1 408 ") and time.monotonic() - t0 < 2.0


def test_idle_keepalive_timeout_closes_quietly(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], timeouts={"keepalive_idle": 0.3}))
    c = Client(p.port)
    try:
        assert c.get("/one")[0] == 200
        assert c.closed(timeout=2.0) and c.buf == b""
    finally:
        c.close()


def test_max_connections_503(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], limits={"max_connections": 2}))
    held = [Client(p.port), Client(p.port)]
    try:
        assert held[0].get("/a")[0] == 200 and held[1].get("/b")[0] == 200
        out = request(p.port, b"GET /c HTTP/1.1\r\n" + H + b"\r\n")
        assert out.startswith(b"HTTP/1.1 503 ")
    finally:
        for c in held:
            c.close()


def test_pipelined_requests_answered_in_order(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2]))
    c = Client(p.port)
    try:
        c.send(b"".join(b"GET /slow/0.0%d HTTP/1.1\r\n" % (5 - i) + H + b"\r\n" for i in range(4)))
        got = [c.response() for _ in range(4)]
        assert [r[0] for r in got] == [200] * 4
        assert [served_by(r) for r in got] == ["b1", "b2", "b1", "b2"]
    finally:
        c.close()


def test_expect_100_continue_forwarded(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    out = request(p.port, b"POST /e HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
                  b"Content-Length: 2\r\nConnection: close\r\n\r\nhi")
    assert out.startswith(b"HTTP/1.1 200 ") and b'"body": "hi"' in out


def test_large_bodies_stream_both_ways(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    c = Client(p.port, timeout=10)
    try:
        body = b"u" * 3_000_000
        c.send(b"PUT /up HTTP/1.1\r\nHost: lab\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        status, _, out = c.response()
        assert status == 200 and out.count(b"u") == len(body)
        status, _, out = c.get("/big/5000000")
        assert status == 200 and len(out) == 5_000_000 and out.count(b"z") == 5_000_000
    finally:
        c.close()


@pytest.mark.parametrize("extra, kept", [
    (b"Connection: keep-alive\r\n", True),
    (b"connection:   Keep-Alive  \r\n", True),
    (b"Connection: keep-alive\r\nConnection: X-Gone\r\nX-Gone: 1\r\n", True),
    (b"Connection: close\r\n", False),
    (b"Keep-Alive: timeout=5\r\nConnection: keep-alive\r\n", True),
])
def test_upstream_connection_header_never_reaches_the_client(backends, proxy, extra, kept):
    (b1,) = backends("b1")

    async def respond(proto, req):
        body = b"ok"
        proto.transport.write(b"HTTP/1.1 200 OK\r\nX-Backend: b1\r\n" + extra +
                              b"X-After: 1\r\nContent-Length: 2\r\n\r\n" + body)
    b1.respond = respond
    p = proxy(config([b1]))
    c = Client(p.port)
    try:
        for _ in range(2):
            status, headers, body = c.get("/")
            assert status == 200 and body == b"ok"
            assert "connection" not in headers and "keep-alive" not in headers
            assert "x-gone" not in headers and headers["x-after"] == ["1"]
            assert headers["via"] == ["1.1 lblab"]
        assert (b1.connections == 1) == kept  # pooled unless the backend said close
    finally:
        c.close()
