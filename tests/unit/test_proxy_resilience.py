"""L7 proxy over loopback: retries, timeouts, health checks, stats, TLS, and the process shell
(graceful drain on SIGTERM, reload on SIGHUP, SO_REUSEPORT workers)."""
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lblab_core.netutil import free_port
from tests.conftest import wait_for
from tests.unit.test_proxy_balancing import hold_answers, held_at
from tests.unit.test_proxy_harness import (Client, backends, config, lt, proxy,  # noqa: F401
                                           request, served_by)

REPO = Path(__file__).resolve().parents[2]
CERT = REPO / ".lab" / "tls" / "lab.crt"
KEY = REPO / ".lab" / "tls" / "lab.key"


def dead_port():
    """A loopback port nobody listens on (connections are refused)."""
    return free_port()


def test_connect_failure_retried_on_another_backend_for_any_method(backends, proxy):
    (b2,) = backends("b2")
    cfg = config([b2], retries=0)
    cfg["backends"].insert(0, {"name": "dead", "address": "127.0.0.1", "port": dead_port()})
    p = proxy(cfg)
    c = Client(p.port)
    try:
        c.send(b"POST /p HTTP/1.1\r\nHost: lab\r\nContent-Length: 2\r\n\r\nhi")
        status, _, body = c.response()
        assert status == 200 and b'"body": "hi"' in body
        assert served_by(c.get("/g")) == "b2"
    finally:
        c.close()
    assert p.stats()["backends"]["dead"]["errors"] >= 1


def test_all_backends_down_is_immediate_503(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], passive_health={"max_fails": 1, "fail_timeout": 30}))
    b1.stop()
    c = Client(p.port)
    try:
        assert c.get("/a")[0] == 502  # connect refused, nowhere else to go: passive -> down
        t0 = time.monotonic()
        status, headers, _ = c.get("/b")
        assert status == 503 and time.monotonic() - t0 < 0.5
        assert "connection" not in headers  # a local 503 keeps the client connection
    finally:
        c.close()
    assert p.stats()["backends"]["b1"]["health"]["passive"] == "ejected"


def test_idempotent_request_retried_after_backend_reset_but_post_is_not(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], retries=1, passive_health=False))
    c = Client(p.port)
    try:
        # /close: the backend reads the request and closes without answering
        status, _, _ = c.get("/close")
        assert status == 502  # retried once on the other backend, which also closed
        assert sorted(b.name for b in (b1, b2) if "/close" in b.paths()) == ["b1", "b2"]
        c.send(b"POST /close HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n")
        assert c.response()[0] == 502
    finally:
        c.close()
    posts = sum(1 for b in (b1, b2) for r in b.requests if r["method"] == "POST")
    assert posts == 1  # never retried


def test_idempotent_retry_reaches_healthy_backend(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], retries=1, passive_health=False,
                     algorithm="consistent_hash", hash_key={"type": "header", "name": "k"}))
    # find a key that hashes to each backend, then make that backend's answer a reset
    c = Client(p.port)
    try:
        r = c.get("/x", [("k", "1")])
        first = served_by(r)
        bad = b1 if first == "b1" else b2
        bad.respond_orig = bad.respond

        async def reset(proto, req):
            proto.transport.close()
        bad.respond = reset
        status, _, _ = c.get("/y", [("k", "1")])
        assert status == 200
    finally:
        c.close()


def test_response_timeout_is_504_and_not_retried_for_post(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], retries=0, timeouts={"response": 0.3}, passive_health=False))
    c = Client(p.port)
    try:
        t0 = time.monotonic()
        assert c.get("/slow/2")[0] == 504
        assert time.monotonic() - t0 < 1.5
    finally:
        c.close()


def test_active_health_transitions(backends, proxy, lt):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], health={"interval": 0.05, "rise": 2, "fall": 2, "timeout": 0.5}))

    def state():
        return p.stats()["backends"]["b1"]["health"]

    b1.healthy = False
    deadline = time.monotonic() + 3
    while state()["serving"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not state()["serving"] and state()["active"] == "down"
    assert set(_spread(p.port, 6)) == {"b2"}
    b1.healthy = True
    deadline = time.monotonic() + 3
    while not state()["serving"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state()["active"] == "up"
    assert set(_spread(p.port, 6)) == {"b1", "b2"}


def _spread(port, n):
    c = Client(port)
    try:
        return [served_by(c.get("/s")) for _ in range(n)]
    finally:
        c.close()


def test_passive_health_ejects_then_recovers(backends, proxy):
    b1, b2 = backends("b1", "b2")
    # fail_timeout leaves the checks below ample time under load; the return is waited for
    cfg = config([b1, b2], passive_health={"max_fails": 2, "fail_timeout": 2.0}, retries=0)
    port1 = b1.port
    p = proxy(cfg)
    b1.stop()
    _spread(p.port, 4)  # two connect failures on b1 (retried on b2) eject it
    assert p.stats()["backends"]["b1"]["health"]["passive"] == "ejected"
    assert set(_spread(p.port, 4)) == {"b2"}
    wait_for(lambda: p.stats()["backends"]["b1"]["health"]["passive"] == "ok",
             "b1 back after fail_timeout", timeout_sec=10)
    assert port1  # b1 still refuses: the next failures eject it again
    _spread(p.port, 4)
    assert p.stats()["backends"]["b1"]["health"]["passive"] == "ejected"


def test_stats_endpoint(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], stats={"host": "127.0.0.1", "port": 0}, cache={}))
    _spread(p.port, 4)
    out = request(p.server.stats_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert data["backends"]["b1"]["requests"] == 2 and data["backends"]["b2"]["requests"] == 2
    assert data["backends"]["b1"]["latency_ms"]["count"] == 2
    assert data["backends"]["b1"]["in_flight"] == 0
    assert data["backends"]["b1"]["health"]["serving"] is True
    assert data["cache"]["misses"] == 4 and data["format_version"] == "1.0"


@pytest.mark.skipif(not CERT.exists(), reason="no lab certificate (run make setup)")
def test_tls_termination(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], tls={"cert": str(CERT), "key": str(KEY)}))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = request(p.port, b"GET /tls HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n", tls=ctx)
    assert out.startswith(b"HTTP/1.1 200 ") and b"X-Backend: b1" in out
    assert b1.header(0, "x-forwarded-proto") == ["https"]
    assert "proto=https" in b1.header(0, "forwarded")[0]


# -- the process shell ------------------------------------------------------------------

def _start_proxy(tmp_path, cfg, *extra):
    path = tmp_path / "l7.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "lb_apps.proxy.server", "--config", str(path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"proxy did not start: {line} {proc.stderr.read()}")
    return proc, path


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def accepts(port):
    """True when a TCP connection to 127.0.0.1:``port`` is accepted."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_graceful_drain_on_sigterm_loses_nothing(backends, lt, tmp_path):
    b1, b2 = backends("b1", "b2")
    release = hold_answers(lt, [b1, b2])  # each request stays in flight until release()
    port = free_port()
    cfg = config([b1, b2], listen={"host": "127.0.0.1", "port": port})
    proc, _ = _start_proxy(tmp_path, cfg)
    try:
        results = []

        def one(i):
            out = request(port, b"GET /held HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n",
                          timeout=10)
            results.append(out)
        idle = Client(port)
        assert idle.get("/warm")[0] == 200  # an idle keep-alive client is closed at drain
        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        wait_for(lambda: len(held_at([b1, b2])) == 6, "all six requests at the backends")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not accepts(port), "the draining proxy to stop accepting")
        assert results == []  # all six were in flight through the start of the drain
        release()
        for t in threads:
            t.join(5)
        assert len(results) == 6 and all(r.startswith(b"HTTP/1.1 200 ") for r in results), results
        assert proc.wait(5) == 0
        assert idle.closed(timeout=1)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5)
    finally:
        release()
        _stop(proc)


def test_sighup_reload_and_invalid_config_rejected(backends, tmp_path):
    b1, b2 = backends("b1", "b2")
    port = free_port()
    cfg = config([b1], listen={"host": "127.0.0.1", "port": port})
    proc, path = _start_proxy(tmp_path, cfg)
    try:
        assert set(_spread(port, 3)) == {"b1"}
        path.write_text(json.dumps(config([b2], listen=cfg["listen"])))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 3
        while set(_spread(port, 2)) != {"b2"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(_spread(port, 3)) == {"b2"}
        path.write_text(json.dumps({"backends": [], "listen": cfg["listen"]}))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert set(_spread(port, 3)) == {"b2"}  # old config keeps serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert "reload rejected" in proc.stderr.read()
    finally:
        _stop(proc)


def test_workers_share_the_port(backends, tmp_path):
    (b1,) = backends("b1")
    port = free_port()
    cfg = config([b1], listen={"host": "127.0.0.1", "port": port})
    proc, _ = _start_proxy(tmp_path, cfg, "--workers", "2")
    try:
        assert "worker" in proc.stdout.readline()  # the second worker
        assert set(_spread(port, 4)) == {"b1"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        _stop(proc)


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends: [{name: b1, address: 127.0.0.1, port: 1}]\nroutes: [{match: {path_regex: '('}}]\n")
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "proxy", "--config", str(bad)],
                         capture_output=True, text=True, cwd=REPO, timeout=20)
    assert out.returncode == 2
    assert "routes[0].match.path_regex: invalid regex '('" in out.stderr
    assert "Traceback" not in out.stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text("backends: [{name: b1, address: 127.0.0.1, port: 1}]\n")
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "proxy", "--config", str(ok),
                          "--check"], capture_output=True, text=True, cwd=REPO, timeout=20)
    assert out.returncode == 0 and "ok" in out.stdout


def test_connect_timeout_retried_elsewhere(backends, proxy):
    (b2,) = backends("b2")
    # a listener whose accept queue is full: the kernel drops further SYNs, connect hangs
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
            fillers.append(f)
        time.sleep(0.05)
        cfg = config([b2], timeouts={"connect": 0.3}, retries=0)
        cfg["backends"].insert(0, {"name": "hole", "address": "127.0.0.1",
                                   "port": hole.getsockname()[1]})
        p = proxy(cfg)
        c = Client(p.port, timeout=5)
        try:
            t0 = time.monotonic()
            c.send(b"POST /p HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n")
            status, headers, _ = c.response()
            assert status == 200 and headers["x-backend"] == ["b2"]
            assert 0.2 < time.monotonic() - t0 < 2.0
        finally:
            c.close()
        assert p.stats()["backends"]["hole"]["errors"] == 1
    finally:
        for f in fillers:
            f.close()
        hole.close()


def test_stale_pooled_connection_resent_only_when_idempotent(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], retries=0, passive_health=False))
    c = Client(p.port)
    try:
        assert c.get("/first")[0] == 200  # leaves a pooled connection
        # the backend now closes that connection on its next request without answering,
        # as when its keep-alive timer fires just as the request arrives
        assert c.get("/second-closes")[0] == 200  # resent on a fresh connection
        assert c.get("/x")[0] == 200
        c.send(b"POST /second-closes HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n")
        assert c.response()[0] == 502  # a POST that may have reached the backend: not resent
    finally:
        c.close()
