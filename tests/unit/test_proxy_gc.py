"""The proxy's per-connection objects are freed by reference counting alone: no reference
cycle (connection <-> its httptools parser) is left for the garbage collector once a
connection is lost, so memory is returned at once under many short connections."""
import gc
import weakref

import pytest

from lb_apps.proxy.conn import ClientConnection
from lb_apps.proxy.upstream import UpstreamConnection
from tests.unit.proxy_fakes import FakeServer, FakeTransport


@pytest.fixture
def no_gc():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def test_client_connection_freed_without_the_collector(no_gc):
    server = FakeServer(listen_port=0, backend=("127.0.0.1", 9))
    conn = ClientConnection(server)
    conn.connection_made(FakeTransport())
    conn.data_received(b"GET / HTTP/1.1\r\nHost: lab\r\n")  # a request half read
    ref = weakref.ref(conn)
    conn.connection_lost(None)
    del conn
    assert ref() is None


def test_upstream_connection_freed_without_the_collector(no_gc):
    server = FakeServer(listen_port=0, backend=("127.0.0.1", 9))
    backend = server.rt.backends["b1"]
    up = UpstreamConnection(backend, server)
    up.connection_made(FakeTransport())
    backend.idle.append(up)
    ref = weakref.ref(up)
    up.connection_lost(None)
    del up
    assert not backend.idle and ref() is None
