"""Loopback harness for the L7 proxy tests: one background uvloop thread runs small in-test
backends and the proxy; tests talk to them with blocking sockets. Also smoke-tests the harness.
"""
import asyncio
import json
import socket
import threading
import time

import httptools
import pytest

from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.server import ProxyServer

WAIT_SEC = 5.0


class LoopThread:
    """A uvloop event loop in a daemon thread."""

    def __init__(self):
        import uvloop
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=WAIT_SEC):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def wrap():
            return fn(*args)
        return self.run(wrap())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_SEC)


class _BackendProtocol(asyncio.Protocol):
    def __init__(self, backend):
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.served = 0  # requests on this connection

    def connection_made(self, transport):
        self.transport = transport
        self.backend.connections += 1

    def data_received(self, data):
        self.backend.raw.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self):
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        req = {"method": self.parser.get_method().decode(), "url": self.url.decode(),
               "headers": self.headers, "body": self.body}
        self.backend.requests.append(req)
        self.served += 1
        asyncio.get_running_loop().create_task(self.backend.respond(self, req))


class Backend:
    """An in-test HTTP/1.1 backend. Paths: /slow/<sec>, /close, /bad, /cc/<cache-control>,
    /chunked, /nolen, /health (status from ``healthy``), anything else 200 with X-Backend."""

    def __init__(self, lt, name):
        self.lt = lt
        self.name = name
        self.requests = []
        self.raw = []
        self.connections = 0
        self.healthy = True
        self.server = None
        self.port = None
        self.counter = 0

    async def _start(self):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _BackendProtocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def start(self):
        self.lt.run(self._start())
        return self

    def stop(self):
        async def _stop():
            self.server.close()
        self.lt.run(_stop())

    def paths(self):
        return [r["url"] for r in self.requests if r["url"] != "/health"]

    def header(self, index, name):
        reqs = [r for r in self.requests if r["url"] != "/health"]
        return [v for n, v in reqs[index]["headers"] if n == name]

    async def respond(self, proto, req):
        url = req["url"]
        t = proto.transport
        if t.is_closing():
            return
        if url == "/health":
            code = 200 if self.healthy else 503
            t.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % code)
            return
        if url.startswith("/slow/"):
            await asyncio.sleep(float(url.split("/")[2]))
            if t.is_closing():
                return
        if url.startswith("/big/"):
            n = int(url.split("/")[2])
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"z" * n)
            return
        if url == "/close" or (url.startswith("/second-closes") and proto.served >= 2):
            t.close()
            return
        if url == "/bad":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            return
        if url == "/nolen":
            t.write(b"HTTP/1.1 200 OK\r\nX-Backend: " + self.name.encode() + b"\r\n\r\nuntil-close")
            t.close()
            return
        if url == "/chunked":
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Backend: "
                    + self.name.encode() + b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            return
        extra = b""
        if url.startswith("/cc/"):
            cc, _, vary = url[4:].partition("/vary/")
            extra = b"Cache-Control: " + cc.replace("%20", " ").encode() + b"\r\n"
            if vary:
                extra += b"Vary: " + vary.encode() + b"\r\n"
        if url.startswith("/hop"):
            extra = b"Connection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n" \
                    b"Proxy-Authenticate: Basic\r\nX-Kept: yes\r\n"
        self.counter += 1
        body = json.dumps({"backend": self.name, "n": self.counter,
                           "body": req["body"].decode("latin-1")}).encode()
        if req["method"] == "HEAD":
            body_out = b""
        else:
            body_out = body
        t.write(b"HTTP/1.1 200 OK\r\nX-Backend: " + self.name.encode() + b"\r\n" + extra +
                b"Content-Length: %d\r\n\r\n" % len(body) + body_out)


class Proxy:
    """The proxy under test, running in the loop thread."""

    def __init__(self, lt, config, path=None):
        self.lt = lt
        self.config = parse_l7_config(config) if isinstance(config, dict) else config
        self.server = ProxyServer(self.config, path)
        lt.run(self.server.start())
        self.port = self.server.port

    def stop(self):
        self.lt.run(self.server.stop())

    def stats(self):
        return self.lt.call(self.server.stats)


def config(backends, **extra):
    """Return an L7 config dict for in-test backends on an ephemeral listen port."""
    data = {"listen": {"host": "127.0.0.1", "port": 0},
            "backends": [{"name": b.name, "address": "127.0.0.1", "port": b.port}
                         for b in backends]}
    data.update(extra)
    return data


def request(port, data, timeout=2.0, tls=None, half_close=False):
    """Send raw bytes, read until the server closes (or ``timeout``); return the bytes.

    ``half_close`` shuts the write side after sending, as ``curl`` piped from a file may.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


class Client:
    """A keep-alive client that reads one response at a time (Content-Length or chunked)."""

    def __init__(self, port, timeout=3.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def response(self, head_only=False):
        """Return (status, headers dict lower-case -> list, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        body = b""
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, headers, body
        if "content-length" in headers:
            n = int(headers["content-length"][0])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding") == ["chunked"]:
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, rest = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(rest) < size + 2:
                    self._fill()
                    size_line, rest = self.buf.split(b"\r\n", 1)
                body += rest[:size]
                self.buf = rest[size + 2:]
                if size == 0:
                    break
        else:
            try:
                while True:
                    self._fill()
            except (ConnectionError, socket.timeout):
                pass
            body, self.buf = self.buf, b""
        return status, headers, body

    def get(self, path, headers=(), method="GET"):
        lines = [f"{method} {path} HTTP/1.1", "Host: lab"] + [f"{k}: {v}" for k, v in headers]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.response(head_only=method == "HEAD")

    def closed(self, timeout=1.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (socket.timeout, ConnectionError):
            return False

    def close(self):
        self.sock.close()


def served_by(resp):
    return resp[1].get("x-backend", [None])[0]


@pytest.fixture(scope="module")
def lt():
    loop_thread = LoopThread()
    try:
        yield loop_thread
    finally:
        loop_thread.close()


@pytest.fixture
def backends(lt):
    started = []

    def make(*names):
        for name in names:
            started.append(Backend(lt, name).start())
        return started[-len(names):]
    try:
        yield make
    finally:
        for b in started:
            b.stop()


@pytest.fixture
def proxy(lt):
    started = []

    def make(cfg, path=None):
        started.append(Proxy(lt, cfg, path))
        return started[-1]
    try:
        yield make
    finally:
        for p in started:
            p.stop()


def test_keep_alive_round_trip(lt, backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2]))
    c = Client(p.port)
    try:
        got = [served_by(c.get(f"/r{i}")) for i in range(4)]
        assert got == ["b1", "b2", "b1", "b2"]
        assert b1.connections == 1 and b2.connections == 1  # pooled upstream connections
    finally:
        c.close()


def test_http10_closes(lt, backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1]))
    out = request(p.port, b"GET /x HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out
    assert b1.header(0, "host") == [f"127.0.0.1:{b1.port}"]
