"""L7 proxy over loopback: request smuggling through ``Connection`` and request-target forms.

Each case checks the status the client gets and what the backend received: nothing, or exactly
one request carrying the proxy's ``Via``. "Nothing" is checked after a marker request on a fresh
connection has made the round trip, so the proxy had every chance to forward the bad bytes.
"""
import asyncio
import socket

import pytest

from tests.unit.test_proxy_harness import (Client, backends, config, lt, proxy,  # noqa: F401
                                           request)

H = b"Host: lab\r\n"
SMUGGLED = b"GET /admin/SMUGGLED HTTP/1.1\r\nHost: lab\r\nX-S: 1\r\n\r\n"
ADMIN_ROUTE = {"match": {"path_prefix": "/admin"},
               "auth": {"type": "basic", "users": {"alice": "pw"}}}


def _post(connection_lines, body=SMUGGLED):
    return (b"POST /a HTTP/1.1\r\n" + H + connection_lines +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


SMUGGLING = [
    ("connection_content_length", _post(b"Connection: content-length\r\n")),
    ("connection_close_content_length", _post(b"Connection: close, content-length\r\n")),
    ("second_connection_header", _post(b"Connection: keep-alive\r\nConnection: Content-Length\r\n")),
    ("connection_transfer_encoding", b"POST /a HTTP/1.1\r\n" + H + b"Connection: transfer-encoding\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"),
    ("connection_host", b"GET /a HTTP/1.1\r\n" + H + b"Connection: host\r\n\r\n"),
    ("connection_authorization", b"GET /admin/x HTTP/1.1\r\n" + H +
     b"Authorization: Basic YWxpY2U6cHc=\r\nConnection: authorization\r\n\r\n"),
    ("connection_cookie", b"GET /a HTTP/1.1\r\n" + H + b"Cookie: s=1\r\nConnection: cookie\r\n\r\n"),
    ("connection_routing_header", b"GET /a HTTP/1.1\r\n" + H + b"X-Tenant: t\r\n"
     b"Connection: X-Tenant\r\n\r\n"),
    ("asterisk_get", b"GET * HTTP/1.1\r\n" + H + b"\r\n"),
    ("authority_form_get", b"GET lab:80 HTTP/1.1\r\n" + H + b"\r\n"),
    ("absolute_form_userinfo", b"GET http://u@lab/ HTTP/1.1\r\n" + H + b"\r\n"),
]


def _lab(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], routes=[
        ADMIN_ROUTE, {"match": {"header": {"name": "X-Tenant", "value": "t"}}}]))
    return b1, p


def _marker_round_trip(b1, port):
    out = request(port, b"GET /marker HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    return [r["url"] for r in b1.requests]


@pytest.mark.parametrize("name, data", SMUGGLING, ids=[c[0] for c in SMUGGLING])
def test_smuggling_attempt_is_400_and_nothing_goes_upstream(backends, proxy, name, data):
    b1, p = _lab(backends, proxy)
    out = request(p.port, data)
    assert out.startswith(b"HTTP/1.1 400 "), out[:300]
    assert _marker_round_trip(b1, p.port) == ["/marker"], f"{name}: backend got {b1.raw!r}"


def test_direct_admin_request_needs_auth(backends, proxy):
    b1, p = _lab(backends, proxy)
    assert request(p.port, b"GET /admin/x HTTP/1.1\r\n" + H + b"\r\n").startswith(b"HTTP/1.1 401 ")
    assert _marker_round_trip(b1, p.port) == ["/marker"]


def test_other_connection_options_forward_exactly_one_request_framed_by_the_proxy(backends, proxy):
    b1, p = _lab(backends, proxy)
    body = b"x=1"
    out = request(p.port, b"POST /a HTTP/1.1\r\n" + H + b"Connection: close, X-Hop\r\n"
                  b"X-Hop: 1\r\nContent-Length: 3\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    (req,) = b1.requests
    names = [n for n, _ in req["headers"]]
    assert req["url"] == "/a" and req["body"] == body
    assert "x-hop" not in names and "connection" not in names
    assert names.count("host") == 1 and names.count("content-length") == 1
    assert dict(req["headers"])["via"] == "1.1 lblab"


def test_absolute_form_is_routed_and_forwarded_with_the_targets_authority(backends, proxy):
    (b1,) = backends("b1")
    (b2,) = backends("b2")
    p = proxy(config([b1], groups={"other": {"backends": [
        {"name": "b2", "address": "127.0.0.1", "port": b2.port}]}},
        routes=[{"match": {"host": "other.example"}, "group": "other"}]))
    out = request(p.port, b"GET http://other.example/p?q=1 HTTP/1.1\r\nHost: lab\r\n"
                  b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"X-Backend: b2" in out, out[:300]
    (req,) = b2.requests
    assert req["url"] == "/p?q=1"
    assert [v for n, v in req["headers"] if n == "host"] == ["other.example"]
    assert b1.requests == []


def test_options_asterisk_is_forwarded(backends, proxy):
    b1, p = _lab(backends, proxy)
    out = request(p.port, b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    assert [(r["method"], r["url"]) for r in b1.requests] == [("OPTIONS", "*")]


def test_half_closed_client_still_gets_its_response(backends, proxy):
    b1, p = _lab(backends, proxy)
    sock = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    try:
        sock.sendall(b"GET /slow/0.2 HTTP/1.1\r\n" + H + b"\r\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    out = b"".join(chunks)
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out, out[:200]
    assert [r["url"] for r in b1.requests] == ["/slow/0.2"]


def test_pipelined_requests_then_half_close_are_all_answered(backends, proxy):
    b1, p = _lab(backends, proxy)
    out = request(p.port, b"GET /1 HTTP/1.1\r\n" + H + b"\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\n",
                  timeout=5, half_close=True)
    assert out.count(b"HTTP/1.1 200 ") == 2, out
    assert [r["url"] for r in b1.requests] == ["/1", "/2"]


class _EarlyProtocol(asyncio.Protocol):
    """Answers every request head at once, without waiting for its body (as a server that
    rejects an upload early does), and counts connections and heads."""

    def __init__(self, seen):
        self.seen = seen
        self.buf = b""

    def connection_made(self, transport):
        self.transport = transport
        self.seen["connections"] += 1

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.seen["heads"].append(head.split(b"\r\n", 1)[0])
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_early_response_never_pools_the_upstream_connection(lt, proxy):
    """A backend that answers before the request body is complete is left mid-body: that
    connection's framing is in doubt, so it is closed, never reused for the next client."""
    seen = {"connections": 0, "heads": []}

    async def start():
        server = await asyncio.get_running_loop().create_server(
            lambda: _EarlyProtocol(seen), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    server, port = lt.run(start())
    try:
        p = proxy({"listen": {"host": "127.0.0.1", "port": 0},
                   "backends": [{"name": "e1", "address": "127.0.0.1", "port": port}]})
        c = Client(p.port)
        try:
            c.send(b"POST /early HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"G" * 10)
            assert c.response()[0] == 200
        finally:
            c.close()
        out = request(p.port, b"GET /next HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 "), out[:200]
        assert seen["heads"] == [b"POST /early HTTP/1.1", b"GET /next HTTP/1.1"]
        assert seen["connections"] == 2  # /next did not ride the connection left mid-body
    finally:
        lt.call(server.close)


def test_no_request_after_a_close_decided_mid_read_goes_upstream(backends, proxy):
    """A 401 to a request whose body is still in the same read closes the connection: the
    pipelined request after that body is not a request any more (found by the fuzz test: it
    went upstream, and its response was written after the write side was shut)."""
    b1, p = _lab(backends, proxy)
    out = request(p.port, b"POST /admin/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\n" + H + b"\r\n")
    assert out.startswith(b"HTTP/1.1 401 ") and out.count(b"HTTP/1.1 ") == 1, out
    assert _marker_round_trip(b1, p.port) == ["/marker"]
