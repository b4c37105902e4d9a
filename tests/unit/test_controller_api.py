"""JSON API routing and validation (pure ``handle``) and its HTTP shell on a real server on
127.0.0.1: round trip, Content-Length checks, short bodies, the size bound."""
import json
import socket
import urllib.error
import urllib.request

import pytest

from controllers import api, config
from controllers.decisions import Core
from lb_apps.balancing import make_balancer


class FakeApp:
    """What the API needs from the os-ken app: views and change(), with a sink for decisions."""

    def __init__(self, mode="l4"):
        cfg = config.parse_config({"topology": {"name": "lb_lab"}, "services": {"web": {
            "vip": "10.0.0.100", "port": 80, "mode": mode,
            "backends": {"h6": 1, "h7": 1}}}})
        self.core = Core(cfg, make_balancer)
        self.core.switch_up("s1")
        self.sent = []

    def services(self):
        return self.core.services_view()

    def stats(self):
        return self.core.stats_view()

    def change(self, method, *args):
        self.sent += getattr(self.core, method)(*args)


def call(app, method, path, body=None):
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body else b"")
    return api.handle(app, method, path, raw)


def test_get_services_and_stats():
    app = FakeApp()
    status, services = call(app, "GET", "/services")
    assert status == 200 and set(services["web"]["backends"]) == {"h6", "h7"}
    assert services["web"]["mode"] == "l4" and services["web"]["algorithm"] == "round_robin"
    status, stats = call(app, "GET", "/stats")
    assert status == 200 and stats["switches"]["s1"]["connected"] is True
    assert stats["services"]["web"]["backends"]["h6"]["active_flows"] == 0


def test_changes_apply_and_show_in_services():
    app = FakeApp()
    assert call(app, "PUT", "/services/web/backends/h6", {"weight": 3})[0] == 200
    assert call(app, "POST", "/services/web/backends/h7/drain")[0] == 200
    assert call(app, "POST", "/services/web/backends", {"backend": "h8", "weight": 2})[0] == 201
    assert call(app, "DELETE", "/services/web/backends/h6")[0] == 200
    assert call(app, "PUT", "/services/web", {"algorithm": "least_connections"})[0] == 200
    view = call(app, "GET", "/services")[1]["web"]
    assert view["algorithm"] == "least_connections"
    assert {n: (b["weight"], b["draining"]) for n, b in view["backends"].items()} == {
        "h7": (0, True), "h8": (2, False)}


def test_group_mode_change_sends_a_group_modify():
    app = FakeApp("group")
    call(app, "PUT", "/services/web/backends/h6", {"drain": True})
    (group,) = app.sent
    assert group.command == "modify" and [w for w, _ in group.buckets] == [1]


@pytest.mark.parametrize("method, path, body, status, field", [
    ("PUT", "/services/web/backends/h6", {"weight": -1}, 400, "weight"),
    ("PUT", "/services/web/backends/h6", {"weight": "x"}, 400, "weight"),
    ("PUT", "/services/web/backends/h6", {}, 400, "weight"),
    ("PUT", "/services/web/backends/h6", {"weigth": 1}, 400, "weigth"),
    ("PUT", "/services/web/backends/h6", {"drain": "yes"}, 400, "drain"),
    ("PUT", "/services/web/backends/h99", {"weight": 1}, 400, "backend"),
    ("DELETE", "/services/web/backends/h99", None, 400, "backend"),
    ("POST", "/services/web/backends", {"weight": 1}, 400, "backend"),
    ("POST", "/services/web/backends", {"backend": "h99"}, 400, "backend"),
    ("PUT", "/services/web", {"algorithm": "fastest"}, 400, "algorithm"),
    ("PUT", "/services/web", {}, 400, "algorithm"),
    ("PUT", "/services/web", b"{not json", 400, "body"),
    ("PUT", "/services/web", b"[1, 2]", 400, "body"),
    ("PUT", "/services/db", {"algorithm": "random"}, 404, "service"),
    ("GET", "/nothing", None, 404, "path"),
    ("GET", "/services/web/backends", None, 405, "method"),
])
def test_bad_requests_name_the_field(method, path, body, status, field):
    got_status, payload = call(FakeApp(), method, path, body)
    assert (got_status, payload["field"]) == (status, field)
    assert field in payload["error"] or status in (404, 405)


def test_served_on_localhost():
    app = FakeApp()
    server = api.serve("127.0.0.1", 0, app)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/services", timeout=5) as resp:
            assert json.load(resp)["web"]["vip"] == "10.0.0.100"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/services/web/backends/h6",
                                         data=b'{"weight": -2}', method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 400
        assert json.load(info.value)["field"] == "weight"
    finally:
        server.shutdown()
        server.server_close()


# -- strict JSON types (issue 9 §3) ---------------------------------------------------------------

@pytest.mark.parametrize("method, path, body, field, expected", [
    ("PUT", "/services/web/backends/h6", {"drain": 1}, "drain", "true or false"),
    ("PUT", "/services/web/backends/h6", {"drain": 0}, "drain", "true or false"),
    ("PUT", "/services/web/backends/h6", {"drain": "true"}, "drain", "true or false"),
    ("PUT", "/services/web/backends/h6", {"drain": None}, "drain", "true or false"),
    ("PUT", "/services/web/backends/h6", {"weight": True}, "weight", "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"weight": "2"}, "weight", "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"weight": 2.0}, "weight", "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"weight": None}, "weight", "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"weight": 65536}, "weight", "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"drain": True, "weight": "x"}, "weight",
     "integer in 0..65535"),
    ("PUT", "/services/web/backends/h6", {"drain": True, "weight": 3}, "weight",
     "not both"),
    ("POST", "/services/web/backends", {"backend": 6}, "backend", "string"),
    ("POST", "/services/web/backends", {"backend": ["h8"]}, "backend", "string"),
    ("POST", "/services/web/backends", {"backend": None}, "backend", "string"),
    ("POST", "/services/web/backends", {"backend": "h8", "weight": True}, "weight",
     "integer in 0..65535"),
    ("POST", "/services/web/backends", {"backend": "h8", "weight": 1.5}, "weight",
     "integer in 0..65535"),
    ("PUT", "/services/web", {"algorithm": 5}, "algorithm", "string"),
    ("PUT", "/services/web", {"algorithm": ["random"]}, "algorithm", "string"),
    ("PUT", "/services/web", {"algorithm": None}, "algorithm", "string"),
])
def test_json_types_are_strict(method, path, body, field, expected):
    app = FakeApp()
    status, payload = call(app, method, path, body)
    assert (status, payload.get("field")) == (400, field), payload
    value = json.dumps(body[field])
    assert value in payload["error"] and expected in payload["error"], payload["error"]
    assert app.sent == []
    view = call(app, "GET", "/services")[1]["web"]
    assert view["algorithm"] == "round_robin"
    assert {n: b["weight"] for n, b in view["backends"].items()} == {"h6": 1, "h7": 1}


@pytest.mark.parametrize("body, weight", [
    ({"drain": True}, 0), ({"drain": False, "weight": 2}, 2), ({"weight": 0}, 0)])
def test_drain_and_weight_forms_that_stay_valid(body, weight):
    app = FakeApp()
    assert call(app, "PUT", "/services/web/backends/h6", body)[0] == 200
    assert call(app, "GET", "/services")[1]["web"]["backends"]["h6"]["weight"] == weight


def nested(depth, inner=b"1"):
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize("raw", [
    nested(100_000),                             # deeper than Python's recursion limit
    b'{"algorithm": ' + nested(5_000) + b"}",    # deep inside a valid object
    nested(33),                                  # one past the bound
    b"[" * 100_000,                              # not even closed
    b'["\\"[", ' + nested(32) + b"]",            # the bracket in the string does not count
])
def test_deeply_nested_body_is_a_400(raw):
    status, payload = call(FakeApp(), "PUT", "/services/web", raw)
    assert (status, payload["field"]) == (400, "body"), payload
    assert "nested deeper than 32" in payload["error"], payload["error"]


def test_nesting_up_to_the_bound_and_brackets_in_strings_are_fine():
    app = FakeApp()
    status, payload = call(app, "PUT", "/services/web",
                           b'{"x": ' + nested(31) + b"}")      # depth 32 with the object
    assert (status, payload["field"]) == (400, "x")            # parsed: unknown field
    status, payload = call(app, "PUT", "/services/web", {"algorithm": "[" * 40 + "{" * 40})
    assert (status, payload["field"]) == (400, "algorithm")    # parsed: unknown algorithm
    status, payload = call(app, "PUT", "/services/web",       # an escaped backslash ends a
                           b'{"x": ["\\\\", ' + nested(30) + b"]}")   # string: depth 32
    assert (status, payload["field"]) == (400, "x")


def test_escaped_quotes_outside_strings_are_bad_json_found_in_one_pass():
    # 21,000 unterminated strings: a scanner that retried each one took 8 s on this body.
    status, payload = call(FakeApp(), "PUT", "/services/web", b'\\"' * 21_000)
    assert (status, payload["field"]) == (400, "body")
    assert "not valid JSON" in payload["error"]


# -- the socket level: Content-Length, short bodies, size bound ----------------------------------

@pytest.fixture
def server(monkeypatch):
    """A real API server on 127.0.0.1 with a short read timeout (0.5 s instead of 5 s)."""
    monkeypatch.setattr(api, "READ_TIMEOUT_SEC", 0.5, raising=False)
    srv = api.serve("127.0.0.1", 0, FakeApp())
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def exchange(server, data, timeout=5.0):
    """Send raw bytes without closing our side; read until the server closes the connection.

    Returns:
        tuple[int, dict]: the status and the JSON body of the answer.
    Raises:
        socket.timeout: the server neither answered nor closed within ``timeout`` (a handler
            thread is stuck on this connection).
    """
    with socket.create_connection(server.server_address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert raw, "the server closed the connection without an answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def put_head(length_lines):
    return (b"PUT /services/web/backends/h6 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + b"".join(b"%s\r\n" % line for line in length_lines) + b"\r\n")


@pytest.mark.parametrize("value", [b"abc", b"1e3", b"0x10", b"5 5", b"+13", b""])
def test_content_length_not_a_number_is_a_400(server, capsys, value):
    status, payload = exchange(server, put_head([b"Content-Length: " + value])
                               + b'{"weight": 2}')
    assert (status, payload["field"]) == (400, "Content-Length"), payload
    assert "digits" in payload["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_negative_content_length_is_a_400_at_once(server):
    status, payload = exchange(server, put_head([b"Content-Length: -5"]) + b'{"weight": 2}')
    assert (status, payload["field"]) == (400, "Content-Length"), payload


def test_two_different_content_lengths_are_a_400(server):
    status, payload = exchange(server, put_head([b"Content-Length: 13", b"Content-Length: 20"])
                               + b'{"weight": 2}')
    assert (status, payload["field"]) == (400, "Content-Length"), payload


def test_chunked_body_is_refused(server):
    status, payload = exchange(server, put_head([b"Transfer-Encoding: chunked"])
                               + b'd\r\n{"weight": 2}\r\n0\r\n\r\n')
    assert (status, payload["field"]) == (501, "Transfer-Encoding"), payload


def test_body_shorter_than_content_length_times_out_with_408(server):
    status, payload = exchange(server, put_head([b"Content-Length: 100"]) + b'{"weight": 2}')
    assert (status, payload["field"]) == (408, "body"), payload
    assert "13 of 100" in payload["error"], payload["error"]


def test_declared_length_over_the_bound_is_413_without_reading(server):
    for length in (api.MAX_BODY_BYTES + 1, 10 ** 12):
        status, payload = exchange(server, put_head([b"Content-Length: %d" % length]))
        assert (status, payload["field"]) == (413, "body"), payload
        assert str(api.MAX_BODY_BYTES) in payload["error"]


def test_exact_content_length_still_works(server):
    status, payload = exchange(server, put_head([b"Content-Length: 13"]) + b'{"weight": 2}')
    assert (status, payload) == (200, {"ok": True})
