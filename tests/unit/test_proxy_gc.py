"""The proxy's per-connection objects are freed by reference counting alone: no reference
cycle (connection <-> its httptools parser) is left for the garbage collector once a
connection is lost, so memory is returned at once under many short connections."""
import gc
import weakref

import pytest

from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.conn import ClientConnection
from lb_apps.proxy.runtime import Runtime
from lb_apps.proxy.upstream import UpstreamConnection


class _Transport:
    def get_extra_info(self, _name):
        return None

    def is_closing(self):
        return False

    def close(self):
        pass


class _Server:
    def __init__(self):
        config = parse_l7_config({"listen": {"host": "127.0.0.1", "port": 0},
                                  "backends": [{"name": "b1", "address": "127.0.0.1",
                                                "port": 9}]}, "test")
        self.rt = Runtime(config)
        self.conns = set()
        self.draining = False
        self.tls = False
        self.proto = b"http"
        self.loop = None
        self.now = 0.0


@pytest.fixture
def no_gc():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def test_client_connection_freed_without_the_collector(no_gc):
    server = _Server()
    conn = ClientConnection(server)
    conn.connection_made(_Transport())
    conn.data_received(b"GET / HTTP/1.1\r\nHost: lab\r\n")  # a request half read
    ref = weakref.ref(conn)
    conn.connection_lost(None)
    del conn
    assert ref() is None


def test_upstream_connection_freed_without_the_collector(no_gc):
    server = _Server()
    backend = server.rt.backends["b1"]
    up = UpstreamConnection(backend, server)
    up.connection_made(_Transport())
    backend.idle.append(up)
    ref = weakref.ref(up)
    up.connection_lost(None)
    del up
    assert not backend.idle and ref() is None
