"""Loopback end to end: HAProxy and nginx started by lb_apps.engines.proc in front of two tiny
in-test HTTP backends on 127.0.0.1 high ports; checks who served what, then that nothing of the
engine is left running. Only processes this test started are ever signalled."""
import base64
import http.client
import http.server
import os
import shutil
import socket
import threading
import time

import psutil
import pytest

from lb_apps.engines import proc as engine_proc
from lb_apps.engines.render import haproxy_socket_path, sticky_cookie_value
from lb_apps.l7config import parse_l7_config
from tests.conftest import wait_for
from lblab_core.netutil import free_port

pytestmark = pytest.mark.skipif(not (shutil.which("haproxy") and shutil.which("nginx")),
                                reason="haproxy and nginx are not installed (make setup)")

REQUESTS = 20
CONNECT_WAIT_SEC = 5.0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = f"{self.server.name} {self.path}\n".encode()
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("X-Backend", self.server.name)
        if self.path.startswith("/cacheable"):
            self.send_header("Cache-Control", "max-age=60")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Backend(http.server.ThreadingHTTPServer):
    """A keep-alive HTTP server answering every GET with ``X-Backend: <name>``."""
    daemon_threads = True

    def __init__(self, name):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name, self.paths = name, []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def handle_error(self, request, client_address):
        pass  # an engine closing an idle keep-alive connection is not an error here

    @property
    def port(self):
        return self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def backends():
    started = [Backend("b1"), Backend("b2"), Backend("a1")]
    yield started
    for b in started:
        b.close()


def wait_listening(port):
    deadline = time.monotonic() + CONNECT_WAIT_SEC
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def get(port, path="/", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Backend"), resp
    finally:
        conn.close()


def l7(port, servers, **extra):
    b1, b2, a1 = servers
    data = {"listen": {"host": "127.0.0.1", "port": port}, "passive_health": False,
            "backends": [{"name": "b1", "address": "127.0.0.1", "port": b1.port},
                         {"name": "b2", "address": "127.0.0.1", "port": b2.port}],
            "groups": {"api": {"backends": [{"name": "a1", "address": "127.0.0.1",
                                             "port": a1.port}]}}}
    data.update(extra)
    return parse_l7_config(data)


def nginx_workers(pid):
    """Return the pids of an nginx master's worker processes (as they name themselves)."""
    return sorted(p.pid for p in psutil.Process(pid).children()
                  if "worker process" in " ".join(p.cmdline()))


def wait_nginx_workers(pid, count):
    """Wait until the master ``pid`` has ``count`` workers; return their pids.

    nginx's master opens the listening socket before it forks its workers, and a fresh fork
    shows the master's command line until it renames itself, so listening says nothing about
    the workers yet.
    """
    def ready():
        workers = nginx_workers(pid)
        return workers if len(workers) == count else None
    return wait_for(ready, f"{count} nginx worker(s) of master {pid}",
                    timeout_sec=CONNECT_WAIT_SEC)


def run_engine(engine, cfg, run_dir, body):
    """Start the engine, run ``body()``, stop it; assert none of its processes is left."""
    handle = engine_proc.start_engine(engine, cfg, str(run_dir), access_log=False)
    pid = handle.process.pid
    try:
        wait_listening(cfg.listen.port)
        if engine == "nginx":  # plus cache manager/loader when a cache is configured
            wait_nginx_workers(pid, cfg.workers)
        family = [pid] + [p.pid for p in psutil.Process(pid).children(recursive=True)]
        body()
    finally:
        stopped = engine_proc.stop_engine(handle)
    assert stopped.leftovers_killed == ()
    assert engine_proc.session_processes(pid) == []
    for p in family:
        assert not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
    return stopped


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_round_robin_alternates_then_nothing_is_left(engine, backends, tmp_path):
    port = free_port()
    cfg = l7(port, backends, algorithm="round_robin")
    served = []

    def body():
        for _ in range(REQUESTS):
            status, name, _ = get(port)
            assert status == 200
            served.append(name)

    stopped = run_engine(engine, cfg, tmp_path / "r", body)
    assert set(served) == {"b1", "b2"}
    assert all(a != b for a, b in zip(served, served[1:])), served
    assert served.count("b1") == served.count("b2") == REQUESTS // 2
    assert stopped.signals == (("SIGQUIT",) if engine == "nginx" else ("SIGTERM",))


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_routes_and_auth(engine, backends, tmp_path):
    port = free_port()
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    cfg = l7(port, backends, routes=[
        {"match": {"path_prefix": "/api/private"}, "group": "api",
         "auth": {"type": "basic", "users": {"alice": "s3cret"}}},
        {"match": {"path_prefix": "/api", "header": {"name": "X-Tier", "value": "gold"}},
         "group": "api", "auth": {"type": "bearer", "tokens": ["tok1"]}},
        {"match": {"path_regex": r"^/v\d+/api$"}, "group": "api"},
        {"match": {"query": {"name": "to", "value": "api"}}, "group": "api"},
    ])

    def body():
        assert get(port, "/anything")[:2] == (200, "b1")
        assert get(port, "/v2/api")[:2] == (200, "a1")
        assert get(port, "/vx/api")[1] in ("b1", "b2")
        assert get(port, "/x?to=api")[:2] == (200, "a1")
        status, _, resp = get(port, "/api/private/x")
        assert status == 401 and "Basic" in resp.getheader("WWW-Authenticate")
        assert get(port, "/api/private/x", {"Authorization": basic})[:2] == (200, "a1")
        bad = "Basic " + base64.b64encode(b"alice:nope").decode()
        assert get(port, "/api/private/x", {"Authorization": bad})[0] == 401
        status, _, resp = get(port, "/api/tier", {"X-Tier": "gold"})
        assert status == 401 and resp.getheader("WWW-Authenticate") == 'Bearer realm="lblab"'
        assert get(port, "/api/tier", {"X-Tier": "gold",
                                       "Authorization": "Bearer tok1"})[:2] == (200, "a1")
        assert get(port, "/api/tier", {"X-Tier": "gold",
                                       "Authorization": "bearer  tok1"})[:2] == (200, "a1")
        for wrong in ("Bearer tok2", "Bearer TOK1", "Bearer tok1x", "Basic tok1"):
            assert get(port, "/api/tier", {"X-Tier": "gold", "Authorization": wrong})[0] == 401
        # Values compare exactly (nginx map keys alone would ignore case).
        assert get(port, "/api/tier", {"X-Tier": "GOLD"})[1] in ("b1", "b2")
        # Without the header, route 1 does not match: no auth, default group.
        assert get(port, "/api/tier")[1] in ("b1", "b2")

    run_engine(engine, cfg, tmp_path / "r", body)
    assert "/api/private/x" in backends[2].paths


@pytest.mark.parametrize("engine, why", [("haproxy", "cannot bind"),
                                         ("nginx", "Address already in use")])
def test_start_failure_leaves_nothing(engine, why, backends, tmp_path):
    """A port already taken: the engine exits, start_engine says why and leaves no process."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = l7(taken.getsockname()[1], backends)
        before = {p.pid for p in psutil.process_iter()}
        with pytest.raises(engine_proc.EngineError, match=f"{engine}: exited with status .*{why}"):
            handle = engine_proc.start_engine(engine, cfg, str(tmp_path / "r"))
            engine_proc.stop_engine(handle)  # only reached if the test fails
    new = [p for p in psutil.process_iter() if p.pid not in before
           and p.name() in ("haproxy", "nginx") and p.ppid() == os.getpid()]
    assert new == []


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_cache_hits_are_marked(engine, backends, tmp_path):
    port = free_port()
    cfg = l7(port, backends, cache={"max_bytes": 2 * 1024 * 1024})

    def body():
        marks = [get(port, "/cacheable/1")[2].getheader("X-Cache") for _ in range(3)]
        assert marks == ["MISS", "HIT", "HIT"]
        assert get(port, "/plain")[2].getheader("X-Cache") == "MISS"

    run_engine(engine, cfg, tmp_path / "r", body)
    served = backends[0].paths + backends[1].paths
    assert served.count("/cacheable/1") == 1


def test_stray_nginx_workers_of_a_killed_master_are_found_and_killed(backends, tmp_path):
    """DESIGN.md: a SIGKILLed nginx master leaves its workers running; stop_engine cleans up."""
    port = free_port()
    cfg = l7(port, backends, workers=2)
    handle = engine_proc.start_engine("nginx", cfg, str(tmp_path / "r"), access_log=False)
    pid = handle.process.pid
    try:
        wait_listening(port)
        workers = wait_nginx_workers(pid, 2)
        handle.process.kill()  # our own master, killed the way that orphans workers
        handle.process.wait(timeout=5)
        assert all(psutil.pid_exists(w) for w in workers)
    finally:
        stopped = engine_proc.stop_engine(handle)
    assert sorted(stopped.leftovers_killed) == workers
    assert engine_proc.session_processes(pid) == []


def test_haproxy_sticky_cookie_insert_follow_and_tampered(backends, tmp_path):
    port = free_port()
    cfg = l7(port, backends, sticky={"cookie": "LBSRV", "secret": "lab-secret"})

    def body():
        status, first, resp = get(port)
        cookie = resp.getheader("Set-Cookie")
        assert status == 200 and cookie.startswith("LBSRV=") and "HttpOnly" in cookie
        value = cookie.split(";")[0]
        assert value == f"LBSRV={sticky_cookie_value(cfg.sticky, first)}"
        for _ in range(6):  # round robin would alternate; the cookie pins the backend
            status, name, resp = get(port, headers={"Cookie": value})
            assert (status, name) == (200, first) and resp.getheader("Set-Cookie") is None
        status, name, resp = get(port, headers={"Cookie": "LBSRV=tampered"})
        assert status == 200
        assert resp.getheader("Set-Cookie").startswith(
            f"LBSRV={sticky_cookie_value(cfg.sticky, name)}")

    run_engine("haproxy", cfg, tmp_path / "r", body)


def raw_status(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_limits_status_codes(engine, backends, tmp_path):
    port = free_port()
    cfg = l7(port, backends, limits={"max_uri": 1024, "max_body": 100, "max_headers": 10})

    def body():
        long_uri = b"/" + b"a" * 2000
        assert raw_status(port, b"GET " + long_uri + b" HTTP/1.1\r\nHost: x\r\n\r\n") == 414
        assert raw_status(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"
                          + b"x" * 101) == 413
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(20))
        status = raw_status(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        # nginx has no header-count limit (docs/engines.md); HAProxy answers like the builtin.
        assert status == (431 if engine == "haproxy" else 200)

    run_engine(engine, cfg, tmp_path / "r", body)


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_quoting_round_trips_quotes_backslashes_and_dollars(engine, backends, tmp_path):
    port = free_port()
    value = "it's \\ $x \"q\""
    cfg = l7(port, backends, routes=[
        {"match": {"header": {"name": "X-V", "value": value}}, "group": "api",
         "auth": {"type": "bearer", "tokens": ["it's$x", "a\\b"]}}])

    def body():
        statuses = [get(port, "/", {"X-V": value, "Authorization": auth})[:2]
                    for auth in ("Bearer it's$x", "Bearer a\\b", "Bearer it's", "Bearer ab")]
        assert statuses == [(200, "a1"), (200, "a1"), (401, None), (401, None)]
        assert get(port, "/", {"X-V": "it's"})[:2] == (200, "b1")

    run_engine(engine, cfg, tmp_path / "r", body)


STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("ready", flush=True)
time.sleep(60)
"""


def test_stop_escalates_to_sigkill_and_kills_strays(monkeypatch, tmp_path):
    """A master that ignores SIGQUIT/SIGTERM gets SIGKILL; its child is then a stray."""
    import subprocess
    import sys
    monkeypatch.setattr(engine_proc, "KILL_WAIT_SEC", 0.3)
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == b"ready\n"
        child = psutil.Process(proc.pid).children()[0].pid
        handle = engine_proc.EngineProcess("nginx", proc, str(tmp_path), "", "")
        stopped = engine_proc.stop_engine(handle, grace=0.3)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert stopped.signals == ("SIGQUIT", "SIGTERM", "SIGKILL")
    assert stopped.returncode == -9 and stopped.leftovers_killed == (child,)
    assert engine_proc.session_processes(proc.pid) == []


def haproxy_server_states(run_dir):
    """name -> operational state (0 down, 2 up) from the stats socket's 'show servers state'."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(haproxy_socket_path(str(run_dir)))
        sock.sendall(b"show servers state g_default\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    rows = [line.split() for line in data.decode().splitlines()[2:] if line.strip()]
    return {row[3]: int(row[5]) for row in rows}


def test_haproxy_active_health_marks_a_dead_backend_down(backends, tmp_path):
    """Also: a run directory too long for a unix socket address uses the /tmp fallback."""
    run_dir = tmp_path / ("long-" * 20) / "r"
    sock = haproxy_socket_path(str(run_dir))
    assert sock.startswith("/tmp/lblab-haproxy-")
    port, dead = free_port(), free_port()
    cfg = l7(port, backends, **{
        "health": {"path": "/health", "interval": 0.1, "rise": 1, "fall": 1, "timeout": 0.1},
        "backends": [{"name": "b1", "address": "127.0.0.1", "port": backends[0].port},
                     {"name": "gone", "address": "127.0.0.1", "port": dead}]})

    def body():
        deadline = time.monotonic() + 5
        while haproxy_server_states(run_dir) != {"b1": 2, "gone": 0}:
            assert time.monotonic() < deadline, haproxy_server_states(run_dir)
            time.sleep(0.05)
        assert [get(port)[1] for _ in range(6)] == ["b1"] * 6

    run_engine("haproxy", cfg, run_dir, body)
    assert not os.path.exists(sock)
    assert "/health" in backends[0].paths


@pytest.mark.parametrize("engine", ["haproxy", "nginx"])
def test_tls_termination(engine, backends, tmp_path):
    import ssl
    import subprocess
    crt, key = tmp_path / "t.crt", tmp_path / "t.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    cfg = l7(port, backends, tls={"cert": str(crt), "key": str(key)})
    context = ssl.create_default_context(cafile=str(crt))
    context.check_hostname = False

    def body():
        served = []
        for _ in range(4):
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            served.append((resp.status, resp.getheader("X-Backend")))
        assert served == [(200, "b1"), (200, "b2")] * 2

    run_engine(engine, cfg, tmp_path / "r", body)
