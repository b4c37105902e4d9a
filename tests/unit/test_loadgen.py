"""Load generator on loopback against lb_apps.backend.server (127.0.0.1 only): loops, pools, errors, records."""
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from lb_apps.backend import model as backend_model
from lb_apps.loadgen import workload as wl
from lb_apps.backend.server import BackendThread
from lb_apps.loadgen.client import run
from lb_apps.records import read_records
from lblab_core.netutil import free_port

pytestmark = pytest.mark.timeout(30)
LBLAB = os.path.join(os.path.dirname(sys.executable), "lblab")


@pytest.fixture
def backend(tmp_path):
    bt = BackendThread(backend_model.config_from_dict(
        {"name": "b1", "host": "127.0.0.1", "port": 0, "response_size": 50,
         "record": str(tmp_path / "backend.jsonl"), "flush_period_s": 0.05})).start()
    yield bt
    bt.stop()


def lg(port, tmp_path, name="lg.jsonl", **data):
    cfg = wl.config_from_dict({"url": f"http://127.0.0.1:{port}/", "record":
                               str(tmp_path / name), "duration_s": 0.5, "timeout_s": 2.0,
                               **data})
    summary = run(cfg)
    return summary, read_records(cfg.record, "loadgen")


def test_open_loop_constant_rate_counts_and_joins_backend_records(backend, tmp_path):
    summary, records = lg(backend.port, tmp_path, mode="open", rate=200, arrival="constant",
                          duration_s=1.0)
    assert summary["sent"] == len(records) == 200
    assert summary["sent"] == summary["ok"] + sum(summary["errors"].values())
    assert summary["ok"] == 200 and summary["rps"] == 200.0
    planned = sorted(r["scheduled"] for r in records)    # records are in completion order
    gaps = [b - a for a, b in zip(planned, planned[1:])]
    assert all(abs(g - 0.005) < 1e-6 for g in gaps)
    assert all(r["backend"] == "b1" and r["status"] == 200 and r["error"] is None and
               r["scheduled"] <= r["start"] <= r["end"] and r["bytes"] > 50 for r in records)
    backend.stop()
    served = {r["id"] for r in read_records(str(tmp_path / "backend.jsonl"), "backend")}
    assert served == {r["id"] for r in records}
    assert summary["latency_ms"]["p50"] < 50


def test_closed_loop_keepalive_reuses_one_connection_per_user(backend, tmp_path):
    summary, records = lg(backend.port, tmp_path, mode="closed", users=4)
    assert summary["sent"] == summary["ok"] == len(records) > 100
    conns = [r["conn"] for r in records]
    assert conns.count("new") == 4 and conns.count("reused") == len(records) - 4
    backend.stop()
    clients = {r["client"] for r in read_records(str(tmp_path / "backend.jsonl"), "backend")}
    assert len(clients) == 4


def test_connection_per_request(backend, tmp_path):
    summary, records = lg(backend.port, tmp_path, mode="closed", users=2, keepalive=False,
                          duration_s=0.3)
    assert summary["ok"] == len(records) > 10
    assert {r["conn"] for r in records} == {"new"}
    backend.stop()
    server_side = read_records(str(tmp_path / "backend.jsonl"), "backend")
    assert len({r["client"] for r in server_side}) == len(server_side)


def test_closed_loop_think_time_and_max_requests(backend, tmp_path):
    summary, records = lg(backend.port, tmp_path, mode="closed", users=2, think_ms=50.0,
                          duration_s=0.5)
    assert 12 <= summary["sent"] <= 22      # 2 users x 0.5 s / (50 ms + a little)
    summary, records = lg(backend.port, tmp_path, "max.jsonl", mode="closed", users=3,
                          max_requests=40, duration_s=5.0)
    assert summary["sent"] == len(records) == 40 and summary["duration"] < 2.0


def test_warmup_marked_or_dropped(backend, tmp_path):
    summary, records = lg(backend.port, tmp_path, mode="open", rate=100, arrival="constant",
                          warmup_s=0.2, duration_s=0.3)
    assert sum(1 for r in records if r.get("warmup")) == 20
    assert summary["sent"] == 30 and len(records) == 50
    summary, records = lg(backend.port, tmp_path, "drop.jsonl", mode="open", rate=100,
                          arrival="constant", warmup_s=0.2, duration_s=0.3, warmup_records="drop")
    assert summary["sent"] == len(records) == 30


def test_refused_connections_are_connect_refused(tmp_path):
    summary, records = lg(free_port(), tmp_path, mode="open", rate=100, duration_s=0.3)
    assert summary["ok"] == 0 and summary["errors"] == {"connect_refused": summary["sent"]}
    assert all(r["error"] == "connect_refused" and r["status"] is None and r["conn"] is None
               for r in records)


def test_backend_fault_modes_give_error_kinds(backend, tmp_path):
    backend.call(backend.backend.set_fault, "refuse", None, None)
    summary, _ = lg(backend.port, tmp_path, "refuse.jsonl", mode="open", rate=50, duration_s=0.2)
    assert set(summary["errors"]) == {"connect_refused"}
    backend.call(backend.backend.set_fault, "close", None, None)
    summary, _ = lg(backend.port, tmp_path, "close.jsonl", mode="open", rate=50, duration_s=0.2)
    assert set(summary["errors"]) == {"closed"} and summary["ok"] == 0
    backend.call(backend.backend.set_fault, "hang", None, None)
    summary, records = lg(backend.port, tmp_path, "hang.jsonl", mode="closed", users=2,
                          duration_s=0.2, timeout_s=0.3)
    assert summary["errors"] == {"timeout": 2} and summary["sent"] == 2, summary
    assert all(0.25 < r["end"] - r["start"] < 0.6 for r in records)


def test_http_errors_are_counted_by_class(tmp_path):
    with BackendThread(backend_model.config_from_dict(
            {"host": "127.0.0.1", "port": 0, "error_rate": 1.0})) as bt:
        summary, _ = lg(bt.port, tmp_path, mode="open", rate=100, duration_s=0.2)
    assert summary["ok"] == 0 and summary["errors"] == {"status_5xx": summary["sent"]}
    assert summary["status"] == {"500": summary["sent"]}


def test_request_mix_weights_reach_the_backend(backend, tmp_path):
    mix = [{"path": "/size/1", "weight": 1}, {"path": "/size/2", "weight": 3},
           {"path": "/post", "method": "POST", "body_size": 100, "weight": 1},
           {"path": "/size/5000", "method": "HEAD", "weight": 1}]
    summary, records = lg(backend.port, tmp_path, mode="open", rate=1000, duration_s=0.5,
                          mix=mix, seed=3, pool_size=4, arrival="constant")
    assert summary["ok"] == summary["sent"] == 500, summary
    head = [r for r in records if r["method"] == "HEAD"]
    assert head and all(r["status"] == 200 and r["bytes"] < 5000 for r in head)
    assert any(r["conn"] == "reused" for r in head)        # keep-alive survives HEAD
    paths = [r["path"] for r in records]
    assert 0.65 < paths.count("/size/2") / paths.count("/size/1") / 3 < 1.5
    assert {r["method"] for r in records if r["path"] == "/post"} == {"POST"}


class _CookieHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def do_GET(self):
        self.seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        if self.headers.get("Cookie") is None:
            self.send_header("Set-Cookie", f"SRV=s{len(self.seen)}; Path=/")
        self.send_header("X-Cache", "MISS")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def test_session_users_keep_their_cookies(tmp_path):
    _CookieHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieHandler)
    _serve(server)
    try:
        summary, records = lg(server.server_address[1], tmp_path, mode="closed", users=2,
                              session=True, max_requests=10, duration_s=2.0)
    finally:
        server.shutdown()
        server.server_close()
    seen = _CookieHandler.seen
    assert summary["ok"] == 10 and seen.count(None) == 2
    assert len({c for c in seen if c}) == 2                   # one cookie per user, kept
    assert {r["cache"] for r in records} == {"MISS"} and {r["backend"] for r in records} == {None}


def test_https_without_verification(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed: cannot make a test certificate")
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=lab"], check=True, capture_output=True)
    _CookieHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    _serve(server)
    try:
        cfg = wl.config_from_dict({"url": f"https://127.0.0.1:{server.server_address[1]}/",
                                   "max_requests": 5, "duration_s": 2.0})
        summary = run(cfg)
    finally:
        server.shutdown()
        server.server_close()
    assert summary["ok"] == 5


def test_cli_json_summary_and_usage_errors(backend, tmp_path):
    out = subprocess.run([LBLAB, "loadgen", "--url", f"http://127.0.0.1:{backend.port}/",
                          "--mode", "open", "--rate", "100", "--duration-s", "0.3", "--json"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["sent"] == summary["ok"] > 20
    bad = subprocess.run([LBLAB, "loadgen", "--url", "gopher://x/"], capture_output=True,
                         text=True, timeout=20)
    assert bad.returncode == 2 and "--url: 'gopher://x/'" in bad.stderr
    assert "Traceback" not in bad.stderr
    conf = tmp_path / "lg.yaml"
    conf.write_text(f"url: http://127.0.0.1:{backend.port}/\nmode: open\nrate: 50\n"
                    "duration_s: 0.2\nmix:\n  - {path: /size/7, weight: 2}\n"
                    "  - {path: /b, headers: {X-T: blue}}\n")
    record = tmp_path / "cli.jsonl"
    out = subprocess.run([LBLAB, "loadgen", "--config", str(conf), "--record", str(record),
                          "--rate", "100"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.startswith("sent 20  ok 20"), out.stdout
    assert {r["path"] for r in read_records(str(record), "loadgen")} == {"/size/7", "/b"}
    conf.write_text("url: http://127.0.0.1/\nmix:\n  - {path: /a, weight: -1}\n")
    bad = subprocess.run([LBLAB, "loadgen", "--config", str(conf)], capture_output=True,
                         text=True, timeout=20)
    assert bad.returncode == 2 and "mix[0].weight" in bad.stderr


def test_open_loop_latency_counts_from_the_plan_when_the_pool_is_short(tmp_path):
    # 100 req/s planned, one connection, 20 ms per answer: at most 50/s get through, so the
    # requests queue in the generator; their latency must include that wait (no coordinated
    # omission), and the send lag says the client side was the bottleneck.
    with BackendThread(backend_model.config_from_dict(
            {"host": "127.0.0.1", "port": 0, "service_mean_ms": 20.0})) as bt:
        summary, records = lg(bt.port, tmp_path, mode="open", rate=100, arrival="constant",
                              duration_s=0.3, pool_size=1)
    assert summary["ok"] == summary["sent"] == 30
    assert summary["send_lag_ms"]["p99"] > 200 and summary["latency_ms"]["max"] > 220
    last = max(records, key=lambda r: r["scheduled"])
    assert last["start"] - last["scheduled"] > 0.2
    # ... and the records say it was the pool: the wait for the one connection is pool_wait
    first = min(records, key=lambda r: r["scheduled"])
    assert first["pool_wait"] == 0.0 and first["conn"] == "new" and first["connect"] > 0
    assert last["pool_wait"] > 0.2 and last["connect"] == 0.0 and last["conn"] == "reused"
    assert summary["pool_waited"] == sum(1 for r in records if r["pool_wait"] > 0) >= 20
    from experiments.fidelity import load_fidelity
    assert load_fidelity(records, {}, "open")["pool_limited"] is True


def test_head_with_empty_body_does_not_complete_the_next_request(backend, tmp_path):
    # /size/0 answers Content-Length: 0, so the parser ends the HEAD message twice over.
    summary, records = lg(backend.port, tmp_path, mode="closed", users=1, max_requests=20,
                          duration_s=2.0, mix=[{"path": "/size/0", "method": "HEAD"},
                                             {"path": "/size/3"}])
    assert summary["ok"] == summary["sent"] == 20
    assert len({r["id"] for r in records}) == 20
    assert [r["conn"] for r in records].count("new") == 1          # never aborted
    assert all(r["bytes"] > 3 for r in records if r["method"] == "GET")
    backend.stop()
    served = read_records(str(tmp_path / "backend.jsonl"), "backend")
    assert sorted(r["id"] for r in served) == sorted(r["id"] for r in records)


@pytest.mark.parametrize("command, old, new", [
    ("loadgen", "--think", "--think-ms (milliseconds, as the spec's think_ms: 0.1 s is 100)"),
    ("loadgen", "--duration", "--duration-s (seconds, as before)"),
    ("loadgen", "--warmup", "--warmup-s (seconds, as before)"),
    ("loadgen", "--timeout", "--timeout-s (seconds, as before)"),
    ("loadgen", "--connect-timeout", "--connect-timeout-s (seconds, as before)"),
    ("backend", "--service-mean", "--service-mean-ms (milliseconds: 0.005 s is 5)"),
    ("backend", "--slow-delay", "--slow-delay-ms (milliseconds: 0.1 s is 100)"),
    ("backend", "--flush-period", "--flush-period-s (seconds, as before)"),
])
def test_renamed_time_flags_point_to_the_new_name(command, old, new):
    from lb_apps.backend import server as backend
    from lb_apps.loadgen import client as loadgen
    from lblab_core.errors import UsageError
    main = loadgen.main if command == "loadgen" else backend.main
    with pytest.raises(UsageError) as info:
        main(["--check", "--url", "http://10.0.0.5/", old, "1"] if command == "loadgen"
             else ["--check", old, "1"])
    assert str(info.value) == f"{old} was renamed {new}"
    help_text = (loadgen if command == "loadgen" else backend).build_parser().format_help()
    assert new.split()[0] in help_text and f"{old} " not in help_text


def test_renamed_settings_file_keys_point_to_the_new_name(tmp_path):
    from lb_apps.loadgen import client as loadgen
    from lblab_core.errors import InputError
    conf = tmp_path / "lg.yaml"
    conf.write_text("url: http://10.0.0.5/\nthink: 0.1\nduration_s: 2\n")
    with pytest.raises(InputError) as info:
        loadgen.main(["--check", "--config", str(conf)])
    assert info.value.errors == [f"{conf}:2: think: renamed think_ms (milliseconds, as the "
                                 f"spec's think_ms: 0.1 s is 100)"]


def test_check_validates_file_and_flags_without_sending(tmp_path, capsys):
    from lb_apps.loadgen import client as loadgen
    from lblab_core.errors import InputError
    conf = tmp_path / "lg.yaml"
    conf.write_text("url: http://10.0.0.5/\nmode: open\nmix:\n  - {path: /a, weight: 2}\n")
    assert loadgen.main(["--check", "--config", str(conf), "--rate", "50"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line == ("lblab loadgen: loadgen OK: would load http://10.0.0.5/ (open 50 req/s "
                    "poisson, 10 s, 1 mix entries)")
    with pytest.raises(InputError) as info:
        loadgen.main(["--check", "--config", str(conf), "--think-ms", "1"])
    assert info.value.errors == ["--think-ms: 1.0: applies to mode closed only (mode is open)"]
    conf.write_text("url: http://10.0.0.5/\nmix:\n  - {path: /a, wieght: 2}\n  - 5\n")
    with pytest.raises(InputError) as info:
        loadgen.main(["--check", "--config", str(conf)])
    assert info.value.errors == [
        f"{conf}:3: mix[0].wieght: unknown key 'wieght'; expected one of path, method, weight, "
        "headers, cookies, body_size; did you mean weight?",
        f"{conf}:4: mix[1]: 5: expected a mapping"]


def test_cli_exits_1_when_no_request_succeeded_and_0_when_some_did(backend):
    port = free_port()  # nothing listens: every request is refused
    out = subprocess.run([LBLAB, "loadgen", "--url", f"http://127.0.0.1:{port}/",
                          "--max-requests", "6", "--duration-s", "2"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert out.stdout.startswith("sent 6  ok 0")
    lines = out.stderr.strip().splitlines()
    assert lines == ["lblab loadgen: error: no request succeeded: ok 0 of 6; "
                     "most common error: connect_refused (6)"], out.stderr
    assert "Traceback" not in out.stderr
    ok = subprocess.run([LBLAB, "loadgen", "--url", f"http://127.0.0.1:{backend.port}/",
                         "--max-requests", "4", "--duration-s", "2"],
                        capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr


def test_failure_line_names_the_most_common_error_only_when_nothing_succeeded():
    from lb_apps.loadgen.client import failure_line
    assert failure_line({"sent": 10, "ok": 1, "errors": {"timeout": 9}}) is None
    assert failure_line({"sent": 5, "ok": 0, "errors": {"timeout": 1, "http_5xx": 4}}) == (
        "lblab loadgen: error: no request succeeded: ok 0 of 5; most common error: http_5xx (4)")
    assert failure_line({"sent": 0, "ok": 0, "errors": {}}).endswith(
        "sent 0; expected at least one")
