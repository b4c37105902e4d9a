"""JSON API routing and validation (pure ``handle``) plus one real localhost round trip."""
import json
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
