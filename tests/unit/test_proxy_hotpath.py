"""The proxy's hot-path shortcuts keep the behaviour of the general path: forwarding lines
shared between connections stay per client, a lone Connection option is read as the token set
would read it, and the lean response parser is chosen only for plain Content-Length heads,
whatever the case of the field names."""
import pytest

from lb_apps.proxy import conn as conn_mod
from lb_apps.proxy.conn import ClientConnection
from lb_apps.proxy.http_rules import analyze_request
from lb_apps.proxy.upstream import UpstreamConnection
from tests.unit.proxy_fakes import FakeServer, FakeTransport

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def lab():
    """A server with one pooled upstream connection; returns (server, upstream, its transport)."""
    conn_mod._FWD_LINES.clear()
    server = FakeServer()
    backend = server.rt.backends["b1"]
    up = UpstreamConnection(backend, server)
    up_transport = FakeTransport(("10.0.0.6", 80))
    up.connection_made(up_transport)
    backend.idle.append(up)
    return server, up, up_transport


def _client(server, ip):
    client = ClientConnection(server)
    transport = FakeTransport((ip, 40000))
    client.connection_made(transport)
    return client, transport


def test_forwarding_lines_stay_per_client_across_connections(lab):
    server, up, up_transport = lab
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        client, transport = _client(server, ip)
        client.data_received(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        sent = up_transport.writes[-1]
        assert b"\r\nX-Forwarded-For: " + ip.encode() + b"\r\n" in sent
        assert b"Forwarded: for=" + ip.encode() + b";proto=http;host=\"lab\"\r\n" in sent
        up.data_received(RESPONSE)
        assert transport.writes[-1].startswith(b"HTTP/1.1 200 OK\r\n")
        assert transport.closed  # Connection: close was honoured


def test_forwarding_memo_is_bounded(lab, monkeypatch):
    server, up, _ = lab
    monkeypatch.setattr(conn_mod, "FWD_LINES_MAX", 2)
    for i in range(5):
        client, _ = _client(server, f"10.0.1.{i}")
        client.data_received(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        up.data_received(RESPONSE)
    assert 1 <= len(conn_mod._FWD_LINES) <= 2


@pytest.mark.parametrize("value", [b"close", b"Close", b"CLOSE"])
def test_a_lone_connection_close_in_any_case(value):
    head = analyze_request([(b"Host", b"lab"), (b"Connection", value)], 1)
    assert head.conn_close and not head.conn_keep_alive


def test_a_lone_keep_alive_and_a_list_read_as_tokens():
    head = analyze_request([(b"Host", b"lab"), (b"Connection", b"Keep-Alive")], 0)
    assert head.conn_keep_alive and not head.conn_close
    head = analyze_request([(b"Host", b"lab"), (b"X-Trace", b"1"),
                            (b"Connection", b"close, X-Trace")], 1)
    assert head.conn_close
    assert b"X-Trace" not in b"".join(head.forward)  # a named field is still hop-by-hop


@pytest.mark.parametrize("response, lean", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nConnection: Keep-Alive\r\n\r\nok", True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTE: trailers\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nProxy-Foo: x\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nUpgrade: h2c\r\n\r\nok", False),
    (b"HTTP/1.1 200 OK\r\nX-Length: 2\r\nConnection: close\r\n\r\nok", False),
])
def test_lean_parser_only_for_plain_content_length_heads(lab, response, lean):
    server, up, _ = lab
    client, transport = _client(server, "10.0.0.1")
    client.data_received(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    up.data_received(response)
    assert (up.parser is up.lean) is lean
    answer = transport.writes[-1]
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nVia: 1.1 lblab\r\n" in answer
    assert b"keep-alive" not in answer.lower().split(b"\r\n\r\n")[0]  # hop-by-hop dropped
    assert answer.endswith(b"ok") or answer.endswith(b"ok\r\n0\r\n\r\n")
