"""Backend on loopback (127.0.0.1, no root): keep-alive, headers, sizes, capacity, errors, faults."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from lb_apps.backend import model as model
from lb_apps.backend.server import BackendThread, config_from_argv
from lb_apps.records import read_records
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(30)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LBLAB = os.path.join(os.path.dirname(sys.executable), "lblab")   # python -m experiments.cli
# would make a second copy of the module, whose UsageError the dispatcher does not catch.


def start(**settings):
    return BackendThread(model.config_from_dict({"host": "127.0.0.1", "port": 0, **settings})
                         ).start()


def request(port, path="/", method="GET", headers=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw(port, data, timeout=2.0):
    """Send raw bytes, read until the server closes (or timeout); return all bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            chunks.append(b"<timeout>")
        return b"".join(chunks)


def test_keep_alive_headers_and_request_id(tmp_path):
    record = str(tmp_path / "b1.jsonl")
    with start(name="b1", response_size=42, record=record) as bt:
        conn = http.client.HTTPConnection("127.0.0.1", bt.port, timeout=5)
        for i in range(3):
            conn.request("GET", f"/item{i}", headers={"X-Request-Id": f"r{i}"})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and len(body) == 42
            assert resp.getheader("X-Backend") == "b1"
            assert resp.getheader("X-Request-Id") == f"r{i}"
            assert resp.getheader("Set-Cookie") is None
        conn.request("GET", "/noid")
        resp = conn.getresponse()
        resp.read()
        assert resp.getheader("X-Request-Id") is None
        conn.close()
        assert bt.backend.stats()["requests"] == 4
        assert len({r for r in bt.backend.stats()}) > 0
    records = read_records(record, "backend")
    assert [r["id"] for r in records] == ["r0", "r1", "r2", "b1-4"]
    assert len({r["client"] for r in records}) == 1        # one connection, kept alive
    assert [r["path"] for r in records][:2] == ["/item0", "/item1"]
    assert all(r["status"] == 200 and r["backend"] == "b1" for r in records)
    assert abs(records[0]["arrival"] - time.time()) < 10


def test_size_paths_head_and_cache_control():
    with start(cache_control="max-age=60") as bt:
        status, headers, body = request(bt.port, "/size/100000")
        assert status == 200 and body == b"x" * 100000
        assert headers["Cache-Control"] == "max-age=60"
        assert request(bt.port, "/size/0")[2] == b""
        assert request(bt.port, "/size/oops")[0] == 400
        status, headers, body = request(bt.port, "/size/10", method="HEAD")
        assert status == 200 and headers["Content-Length"] == "10"


def test_http10_closes_unless_keep_alive_asked():
    with start(name="old", response_size=3) as bt:
        out = raw(bt.port, b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
        assert out.endswith(b"\r\n\r\nxxx")          # server closed: raw() returned
        out = raw(bt.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.5)
        assert b"Connection: keep-alive" in out and out.endswith(b"<timeout>")


def test_pipelined_requests_answered_in_order():
    with start(service_dist="exponential", service_mean_ms=5.0) as bt:
        reqs = b"".join(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (1, 2, 3))
        out = raw(bt.port, reqs + b"GET /size/4 HTTP/1.1\r\nConnection: close\r\n\r\n")
        lengths = [int(line.split(b":")[1]) for line in out.split(b"\r\n")
                   if line.startswith(b"Content-Length")]
        assert lengths == [1, 2, 3, 4]


def test_bad_request_gets_400_and_close():
    with start() as bt:
        out = raw(bt.port, b"NOT HTTP AT ALL\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400")


class HeldAnswers:
    """Keep a backend's requests in service until the test releases them, one at a time.

    ``Backend.finish`` (what runs when a service time is over) is looked up on the instance;
    replacing it there holds each finished service, so a slot frees when the test says so
    instead of when a timer fires on a machine that may be running late.
    """

    def __init__(self, bt):
        self.bt = bt
        self.held = []
        self.finish = bt.backend.finish
        bt.call(setattr, bt.backend, "finish", lambda *args: self.held.append(args))

    def wait_held(self, count):
        """Wait until ``count`` requests are held (their service time is over)."""
        wait_for(lambda: self.bt.call(len, self.held) == count, f"{count} request(s) held")

    def release(self):
        """Answer the oldest held request (its slot goes to the next queued one)."""
        self.bt.call(lambda: self.finish(*self.held.pop(0)))


def stats_of(bt):
    return bt.call(bt.backend.stats)


def test_capacity_reject_answers_503(tmp_path):
    record = str(tmp_path / "r.jsonl")
    with start(capacity=1, overflow="reject", record=record) as bt:
        held = HeldAnswers(bt)
        s1 = socket.create_connection(("127.0.0.1", bt.port))
        s1.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        held.wait_held(1)  # /slow holds the only slot
        assert stats_of(bt)["in_flight"] == 1
        status, _, _ = request(bt.port, "/second")
        assert status == 503
        held.release()
        s1.settimeout(2)
        assert s1.recv(100).startswith(b"HTTP/1.1 200")
        s1.close()
    statuses = {r["path"]: r["status"] for r in read_records(record, "backend")}
    assert statuses == {"/slow": 200, "/second": 503}


def test_capacity_queue_waits_in_order(tmp_path):
    record = str(tmp_path / "q.jsonl")
    now = [1000.0]  # the backend's clock (arrivals and waits), stepped by the test
    with start(capacity=1, record=record) as bt:
        bt.call(setattr, bt.backend, "now", lambda: now[0])
        held = HeldAnswers(bt)
        socks = []
        for i in range(3):
            now[0] = 1000.0 + 0.01 * i  # arrivals 10 ms apart, each one in before the next
            s = socket.create_connection(("127.0.0.1", bt.port))
            s.sendall(b"GET /q%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            socks.append(s)
            wait_for(lambda: stats_of(bt)["requests"] == i + 1, f"request {i} arrived")
        held.wait_held(1)
        stats = stats_of(bt)
        assert stats["in_flight"] == 1 and stats["queued"] == 2
        for step in (1, 2):  # each service lasts 0.1 s on the backend's clock
            now[0] = 1000.0 + 0.1 * step
            held.release()
            held.wait_held(1)
        held.release()
        for s in socks:
            s.settimeout(2)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            s.close()
    records = sorted(read_records(record, "backend"), key=lambda r: r["path"])
    assert [r["wait"] > 0.05 for r in records] == [False, True, True]
    assert records[2]["wait"] > records[1]["wait"]
    assert [r["wait"] for r in records] == pytest.approx([0.0, 0.09, 0.18])


def test_error_rate_answers_500_deterministically():
    def statuses():
        with start(error_rate=0.3, seed=11) as bt:
            conn = http.client.HTTPConnection("127.0.0.1", bt.port, timeout=5)
            out = []
            for _ in range(200):
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                out.append(resp.status)
            conn.close()
            return out
    first = statuses()
    assert first == statuses()
    assert set(first) == {200, 500} and 40 <= first.count(500) <= 80


def test_fault_slow_and_health_and_stats():
    with start(slow_delay_ms=200.0) as bt:
        assert request(bt.port, "/health")[0] == 200
        status, _, body = request(bt.port, "/admin/fault?mode=slow&delay_ms=150", method="POST")
        assert status == 200 and json.loads(body) == {"fault": "slow", "slow_delay_ms": 150.0,
                                                      "duration_s": None}
        t0 = time.monotonic()
        assert request(bt.port, "/")[0] == 200
        assert time.monotonic() - t0 >= 0.15
        assert request(bt.port, "/health")[0] == 200          # slow is still healthy
        stats = json.loads(request(bt.port, "/stats")[2])
        assert stats["requests"] == 1 and stats["status"] == {"200": 1}
        assert stats["fault"] == "slow" and stats["bytes"] > 100
        assert request(bt.port, "/admin/fault?mode=none", method="POST")[0] == 200
        assert request(bt.port, "/admin/fault?mode=nope", method="POST")[0] == 400
        assert request(bt.port, "/admin/fault?mode=slow")[0] == 405   # GET is not allowed


def test_fault_hang_never_answers_but_control_does(tmp_path):
    record = str(tmp_path / "h.jsonl")
    with start(fault="hang", record=record) as bt:
        with pytest.raises(socket.timeout):
            request(bt.port, "/", timeout=0.3)
        assert request(bt.port, "/health")[0] == 503
        assert json.loads(request(bt.port, "/stats")[2])["hung"] == 1
        request(bt.port, "/admin/fault?mode=none", method="POST")
        assert request(bt.port, "/")[0] == 200
    assert [r["status"] for r in read_records(record, "backend")] == [0, 200]


def test_fault_close_truncates_the_response():
    with start(response_size=1000) as bt:
        request(bt.port, "/admin/fault?mode=close", method="POST")
        with pytest.raises(http.client.IncompleteRead):
            request(bt.port, "/")
        assert request(bt.port, "/health")[0] == 503


def connects(port):
    """True when a TCP connection to 127.0.0.1:``port`` is accepted."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except ConnectionRefusedError:
        return False


def test_fault_refuse_stops_listening_then_comes_back():
    duration = 0.3
    with start() as bt:
        # The listener closes before the answer and reopens `duration` later: a connection
        # tried and answered within `duration` of asking must be refused. A try that a loaded
        # machine delayed past that says nothing either way, so the fault is asked again.
        for _ in range(5):
            asked = time.monotonic()
            request(bt.port, f"/admin/fault?mode=refuse&duration_s={duration}", method="POST")
            accepted = connects(bt.port)
            conclusive = time.monotonic() - asked < duration
            wait_for(lambda: connects(bt.port), "listening again after the refuse fault")
            back = time.monotonic()
            assert back - asked >= duration, "listening again before the fault's duration"
            if conclusive:
                break
        else:
            pytest.fail(f"no connection could be tried within {duration} s of the fault")
        assert not accepted, "a connection was accepted while the fault refused them"
        assert request(bt.port, "/health")[0] == 200


def test_refuse_keeps_existing_connections_for_control():
    with start() as bt:
        conn = http.client.HTTPConnection("127.0.0.1", bt.port, timeout=5)
        conn.request("POST", "/admin/fault?mode=refuse")
        conn.getresponse().read()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", bt.port), timeout=1)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 503 and resp.read() == b"fault refuse\n"
        conn.request("POST", "/admin/fault?mode=none")
        conn.getresponse().read()
        conn.close()
        wait_for(lambda: connects(bt.port), "listening again after mode=none")
        assert request(bt.port, "/")[0] == 200


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("name: fromfile\nresponse_size: 5\ncapacity: 3\n")
    cfg = config_from_argv(["--config", str(path), "--response-size", "9"])
    assert (cfg.name, cfg.response_size, cfg.capacity) == ("fromfile", 9, 3)
    from lblab_core.errors import UsageError
    path.write_text("capacity: -2\n")
    with pytest.raises(UsageError, match=r"b\.yaml:1: capacity: -2: expected a number >= 1"):
        config_from_argv(["--config", str(path)])
    with pytest.raises(UsageError, match="nope.json"):
        config_from_argv(["--config", str(tmp_path / "nope.json")])


def test_cli_process_sigterm_flushes_records(tmp_path):
    record = str(tmp_path / "cli.jsonl")
    proc = subprocess.Popen(
        [LBLAB, "backend", "--name", "c1", "--host",
         "127.0.0.1", "--port", "0", "--record", record, "--flush-period-s", "30"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, proc.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        for _ in range(5):
            assert request(port, "/")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(read_records(record, "backend")) == 5
    # a second run refuses to overwrite the records file
    again = subprocess.run(
        [LBLAB, "backend", "--host", "127.0.0.1", "--port",
         "0", "--record", record], cwd=REPO, capture_output=True, text=True, timeout=10)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_fault_close_with_empty_body_cuts_the_headers():
    with start() as bt:
        request(bt.port, "/admin/fault?mode=close", method="POST")
        out = raw(bt.port, b"GET /size/0 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" not in out


def test_port_in_use_is_a_usage_error():
    with start() as bt:
        out = subprocess.run([LBLAB, "backend", "--host", "127.0.0.1", "--port", str(bt.port)],
                             capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{bt.port}" in out.stderr


def test_check_runs_the_start_checks_and_prints_one_line(tmp_path, capsys):
    from lb_apps.backend import server as backend
    from lblab_core.errors import InputError, UsageError
    path = tmp_path / "b.yaml"
    path.write_text("name: b1\ncapacity: 2\n")
    assert backend.main(["--check", "--config", str(path), "--port", "0"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("lblab backend: b1 OK: would listen on 0.0.0.0:0")
    with pytest.raises(InputError) as info:   # every flag's problem at once
        backend.main(["--check", "--config", str(path), "--capacity", "0", "--service-mean-ms",
                      "inf"])
    assert info.value.errors == ["--service-mean-ms: .inf: expected a finite number",
                                 "--capacity: 0: expected a number >= 1"]
    path.write_text("name: b1\ncapacity: 2\nqueue_limit: -1\nfault: slwo\n")
    with pytest.raises(InputError) as info:
        backend.main(["--check", "--config", str(path)])
    assert info.value.errors == [f"{path}:3: queue_limit: -1: expected a number >= 0",
                                 f"{path}:4: fault: 'slwo': expected one of none, slow, hang, "
                                 "close, refuse; did you mean slow?"]
    record = tmp_path / "r.jsonl"
    record.write_text("")
    with pytest.raises(UsageError, match="already exists"):
        backend.main(["--check", "--record", str(record)])
