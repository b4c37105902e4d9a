"""In-memory stand-ins for what the proxy's protocol objects touch: a transport and the
``ProxyServer`` attributes they read (the real ``Runtime`` inside). For unit tests that drive
``ClientConnection`` and ``UpstreamConnection`` without sockets or an event loop."""
from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.runtime import Runtime


class FakeTransport:
    """Records writes; ``peer`` answers both peername and sockname (None: no address)."""

    def __init__(self, peer=None):
        self.peer = peer
        self.writes = []
        self.closed = False

    def get_extra_info(self, name, default=None):
        return self.peer if name in ("peername", "sockname") else default

    def write(self, data):
        self.writes.append(data)

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def can_write_eof(self):
        return True

    def write_eof(self):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class FakeServer:
    """One listener with backend ``b1`` at ``backend`` (address, port), nothing started."""

    def __init__(self, listen_port=8001, backend=("10.0.0.6", 80)):
        config = parse_l7_config({"listen": {"host": "127.0.0.1", "port": listen_port},
                                  "backends": [{"name": "b1", "address": backend[0],
                                                "port": backend[1]}]}, "test")
        self.rt = Runtime(config)
        self.conns = set()
        self.draining = False
        self.tls = False
        self.proto = b"http"
        self.loop = None
        self.now = 0.0
