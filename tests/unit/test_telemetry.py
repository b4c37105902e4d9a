"""The telemetry's parsers on outputs recorded from real runs, and the sampler's shell.

The recorded outputs (tests/unit/fixtures/telemetry/) come from Open vSwitch 3.1 on this machine
during lblab runs: ``dump-ports`` and ``dump-aggregate`` of a bridge, ``dpctl/dump-conntrack``
of an L4 run; and from HAProxy 2.6.12 and nginx 1.22 started by ``lb_apps.engines.proc`` from an
L7 config (two ``lblab backend``s of 300 ms, six requests for one cacheable path, then seven at
once: ``show stat`` and ``stub_status`` read while the seven were in flight; and ``show stat``
after ``disable server``). Expected values are read from the text by a different route than
the parsers'.
"""
import http.server
import json
import os
import re
import threading

import pytest

from experiments.live import parsers, telemetry
from tests.conftest import wait_for

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "telemetry")


def fixture(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as fp:
        return fp.read()


def test_dump_ports_reads_every_numbered_port_and_both_byte_counters():
    text = fixture("dump-ports.txt")
    ports = parsers.dump_ports(text)
    blocks = text.split("  port ")[1:]
    numbered = [b for b in blocks if b.split(":")[0].strip().isdigit()]
    assert len(ports) == len(numbered) and "LOCAL" not in ports
    for block in numbered:
        number = block.split(":")[0].strip()
        rx, tx = re.findall(r"bytes=(\d+)", block)
        assert ports[number] == [int(rx), int(tx)]


def test_dump_ports_unknown_counters_are_none_and_odd_lines_skipped():
    text = ("OFPST_PORT reply (OF1.3) (xid=0x2): 2 ports\n"
            "  port  3: rx pkts=?, bytes=?, drop=0, errs=0, frame=0, over=0, crc=0\n"
            "           tx pkts=1, bytes=60, drop=0, errs=0, coll=0\n"
            "  something new=1\n"
            "  port  7: rx pkts=2, bytes=120, drop=0\n")
    assert parsers.dump_ports(text) == {"3": [None, 60], "7": [120, None]}
    assert parsers.dump_ports("") == {}


def test_flow_count():
    text = fixture("dump-aggregate.txt")
    assert parsers.flow_count(text) == int(text.split("flow_count=")[1].split()[0])
    assert parsers.flow_count("ovs-ofctl: s9 is not a bridge or a socket") is None


def test_conntrack_counts_entries_per_backend():
    text = fixture("dump-conntrack.txt")
    ips = sorted(set(re.findall(r"reply=\(src=([0-9.]+)", text)))
    assert len(ips) >= 2
    names = {ip: f"b{i}" for i, ip in enumerate(ips)}
    counts = parsers.conntrack_by_backend(text, names)
    for ip, name in names.items():
        assert counts[name] == text.count(f"reply=(src={ip},")
    assert sum(counts.values()) == len(text.strip().splitlines())
    # a backend with no entry is 0, an entry to an unknown address is not counted
    assert parsers.conntrack_by_backend(text, {"10.9.9.9": "bx"}) == {"bx": 0}


def test_conntrack_counts_a_direct_connection_by_its_destination():
    line = ("tcp,orig=(src=10.0.0.1,dst=10.0.0.4,sport=1,dport=80),reply=(src=10.0.0.4,"
            "dst=10.0.0.1,sport=80,dport=1),protoinfo=(state=ESTABLISHED)\n"
            "udp,orig=(src=10.0.0.2,dst=10.0.0.5,sport=2,dport=53),reply=(src=10.0.0.5,"
            "dst=10.0.0.2,sport=53,dport=2)\n")
    assert parsers.conntrack_by_backend(line, {"10.0.0.4": "b1", "10.0.0.5": "b2"}) == \
        {"b1": 1, "b2": 1}


def test_controller_packet_ins_sums_services():
    stats = {"services": {"web": {"packet_ins": 12, "backends": {}},
                          "dns": {"packet_ins": 3}}, "switches": {}}
    assert parsers.controller_packet_ins(stats) == 15
    assert parsers.controller_packet_ins({"services": {}}) is None
    assert parsers.controller_packet_ins(None) is None


def test_proxy_state_from_the_stats_endpoint():
    stats = {"backends": {
        "b2": {"in_flight": 0, "requests": 7, "health": {"serving": False, "active": "down"}},
        "b1": {"in_flight": 3, "requests": 20, "health": {"serving": True}}},
        "cache": {"hits": 4, "misses": 6, "entries": 2}, "connections": 5,
        "local_responses": {"503": 2, "401": 1}}
    assert parsers.proxy_state(stats) == {
        "engine": "builtin", "in_flight": {"b1": 3, "b2": 0}, "queued": None,
        "health": {"b1": "up", "b2": "down"}, "cache": {"hits": 4, "misses": 6},
        "clients": 5, "requests": 7 + 20 + 4 + 2 + 1, "nginx": None}
    empty = parsers.proxy_state({"backends": {}, "cache": None})
    assert empty["cache"] is None and empty["requests"] is None


def test_proxy_state_sums_the_workers():
    w0 = {"backends": {"b1": {"in_flight": 1, "health": {"serving": True}},
                       "b2": {"in_flight": 0, "health": {"serving": True}}},
          "cache": {"hits": 1, "misses": 2}, "connections": 2}
    w1 = {"backends": {"b1": {"in_flight": 2, "health": {"serving": True}},
                       "b2": {"in_flight": 4, "health": {"serving": False}}},
          "cache": {"hits": 3, "misses": 0}, "connections": 1}
    state = parsers.proxy_state([w0, None, w1])           # None: a worker that did not answer
    assert state["in_flight"] == {"b1": 3, "b2": 4} and state["clients"] == 3
    assert state["requests"] == 1 + 3                      # the cache hits: no backend counts
    assert state["health"] == {"b1": "up", "b2": "partial"}
    assert state["cache"] == {"hits": 4, "misses": 2}


def _show_stat_rows(text):
    import csv
    lines = text.splitlines()
    return list(csv.DictReader([lines[0].lstrip("# ")] + [x for x in lines[1:] if x]))


def test_haproxy_show_stat_per_server_sessions_health_and_cache():
    text = fixture("haproxy-show-stat.txt")
    state = parsers.haproxy_stat(text)
    rows = [r for r in _show_stat_rows(text) if r["pxname"] != "lblab_stats"]
    servers = [r for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]
    assert state["engine"] == "haproxy" and len(servers) == 2
    assert state["in_flight"] == {r["svname"]: int(r["scur"]) for r in servers}
    assert sum(state["in_flight"].values()) == 7            # the seven requests in flight
    assert state["queued"] == {r["svname"]: int(r["qcur"]) for r in servers}
    assert state["health"] == {"b1": "up", "b2": "up"}
    backend = [r for r in rows if r["svname"] == "BACKEND"][0]
    assert state["cache"] == {"hits": int(backend["cache_hits"]),
                              "misses": int(backend["cache_lookups"]) - int(backend["cache_hits"])}
    assert state["cache"]["hits"] == 5                      # six requests for one path
    front = [r for r in rows if r["svname"] == "FRONTEND"][0]
    assert state["clients"] == int(front["scur"]) == 7
    assert state["requests"] == int(front["req_tot"])


def test_haproxy_health_states():
    state = parsers.haproxy_stat(fixture("haproxy-show-stat-maint.txt"))
    assert state["health"] == {"b1": "maint", "b2": "up"}
    for status, health in (("UP", "up"), ("UP 1/3", "up"), ("DOWN 1/2", "down"),
                           ("DRAIN", "drain"), ("MAINT (via g/b)", "maint"), ("NOLB", "nolb"),
                           ("no check", "up"), ("SOMETHING", "something"), ("", None)):
        assert parsers.haproxy_health(status) == health
    with pytest.raises(ValueError, match="pxname"):
        parsers.haproxy_stat("Unknown command\n")


def test_nginx_stub_status():
    raw = fixture("nginx-stub-status.txt")
    state = parsers.nginx_stub_status(raw)
    body = raw.split("\n\n", 1)[1]                        # text mode: \r\n read as \n
    numbers = [int(x) for x in re.findall(r"\d+", body)]
    assert state["nginx"] == dict(zip(("active", "accepts", "handled", "requests", "reading",
                                       "writing", "waiting"), numbers))
    assert state["clients"] == numbers[0] - 1 == 7          # the sampler's connection left out
    assert state["requests"] == numbers[3]
    assert state["in_flight"] == {} and state["health"] == {} and state["cache"] is None
    with pytest.raises(ValueError, match="stub_status"):
        parsers.nginx_stub_status("<html>404</html>")


def test_http_json_body():
    assert parsers.http_json_body(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n{}") == b"{}"
    assert parsers.http_json_body(b"HTTP/1.1 503 Busy\r\n\r\n{}") is None
    assert parsers.http_json_body(b"garbage") is None


class FakeCommands(telemetry.Sampler):
    """The sampler with the recorded outputs in place of ovs-ofctl/ovs-appctl."""

    calls = None

    def _command(self, args):
        self.calls = (self.calls or []) + [args]
        if "dump-ports" in args:
            return fixture("dump-ports.txt")
        if "dump-aggregate" in args:
            return fixture("dump-aggregate.txt")
        if "dpctl/dump-conntrack" in args:
            return fixture("dump-conntrack.txt")
        raise OSError(f"{args[0]} exited with status 1")


def test_sample_assembles_every_source(tmp_path):
    s = FakeCommands(str(tmp_path / "t.jsonl"), ["s1"], "l4", {"10.0.0.4": "b1"},
                     controller_stats=lambda: {"services": {"web": {"packet_ins": 9}}})
    rec = s.sample()
    assert rec["kind"] == "sample" and rec["v"] == 1
    assert rec["ports"]["s1"] == parsers.dump_ports(fixture("dump-ports.txt"))
    assert rec["flows"] == {"s1": parsers.flow_count(fixture("dump-aggregate.txt"))}
    assert rec["packet_ins"] == 9 and rec["proxy"] is None and rec["problems"] == []
    assert rec["conntrack"] == parsers.conntrack_by_backend(fixture("dump-conntrack.txt"),
                                                            {"10.0.0.4": "b1"})
    # one process a switch for the ports, one for its flows, one for conntrack: no more
    assert len(s.calls) == 3
    s._fp.close()


def test_an_l7_sample_reads_no_flows_and_a_failed_source_is_named(tmp_path):
    def broken():
        raise OSError("connection refused")
    s = FakeCommands(str(tmp_path / "t.jsonl"), ["s1", "s2"], "l7", {},
                     controller_stats=broken)
    rec = s.sample()
    assert rec["flows"] is None and rec["conntrack"] is None and rec["packet_ins"] is None
    assert set(rec["ports"]) == {"s1", "s2"}
    assert rec["problems"] == ["controller: connection refused"]
    s._fp.close()


def test_the_thread_writes_samples_then_an_end_line_with_its_cost(tmp_path, monkeypatch):
    monkeypatch.setattr(telemetry, "INTERVAL_S", 0.01)
    seen = []
    path = tmp_path / "telemetry.jsonl"
    s = FakeCommands(str(path), ["s1"], "l7", {}, on_sample=seen.append)
    s.start()
    wait_for(lambda: len(seen) >= 3, "three samples")
    end = s.stop()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["sample"] * (len(lines) - 1) + ["end"]
    assert end == lines[-1] and end["samples"] == len(lines) - 1 >= 3
    assert end["failure"] is None and end["cpu_s"] >= lines[-2]["cpu_s"] > 0
    cpu = [x["cpu_s"] for x in lines[:-1]]
    assert cpu == sorted(cpu)
    with pytest.raises(FileExistsError):        # never appends to an old run's file
        FakeCommands(str(path), ["s1"], "l7", {})


def test_a_failing_live_callback_does_not_stop_the_telemetry(tmp_path, monkeypatch):
    monkeypatch.setattr(telemetry, "INTERVAL_S", 0.01)

    def bad(sample):
        raise KeyError("x")
    s = FakeCommands(str(tmp_path / "t.jsonl"), ["s1"], "l7", {}, on_sample=bad)
    s.start()
    wait_for(lambda: s.samples >= 3, "three samples after the callback failed")
    end = s.stop()
    assert end["failure"].startswith("live view: KeyError")


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs root")
def test_proxy_stats_through_a_socket_made_in_a_namespace():
    body = json.dumps({"backends": {"b1": {"in_flight": 2, "health": {"serving": True}}},
                       "cache": None}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        before = os.readlink("/proc/thread-self/ns/net")
        # our own namespace stands in for the lb host's: the same setns round trip
        stats = telemetry.proxy_stats(os.getpid(), server.server_address[1])
        assert os.readlink("/proc/thread-self/ns/net") == before
        read = telemetry.builtin_source(os.getpid(), [server.server_address[1]] * 2)
        assert read()["in_flight"] == {"b1": 4}              # two workers' answers summed
    finally:
        server.shutdown()
        server.server_close()
    assert parsers.proxy_state(stats)["in_flight"] == {"b1": 2}


def test_haproxy_source_reads_show_stat_on_a_unix_socket(tmp_path):
    import socket
    path = str(tmp_path / "haproxy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    got = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            got.append(conn.recv(100))
            conn.sendall(fixture("haproxy-show-stat.txt").encode())
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        state = telemetry.haproxy_source(path, cache=False)()
    finally:
        thread.join(5)
        listener.close()
    assert got == [b"show stat\n"]
    assert state == dict(parsers.haproxy_stat(fixture("haproxy-show-stat.txt")), cache=None)


def test_the_sample_takes_the_proxy_source_and_names_its_failure(tmp_path):
    s = FakeCommands(str(tmp_path / "t.jsonl"), ["s1"], "l7", {},
                     proxy=lambda: parsers.nginx_stub_status("nope"))
    rec = s.sample()
    assert rec["proxy"] is None and rec["problems"][0].startswith("proxy: stub_status")
    s.proxy = lambda: {"engine": "nginx"}
    assert s.sample()["proxy"] == {"engine": "nginx"}
    s._fp.close()


def test_conntrack_is_read_only_where_the_balancer_tracks_connections(tmp_path):
    def svc(mode, **kw):
        return {"services": {"web": dict({"mode": mode,
                                          "backends": {"h4": {"weight": 1}}, "port": 80,
                                          "protocol": "tcp", "vip": "10.254.0.1"}, **kw)}}
    assert telemetry.uses_conntrack(svc("l4")) and telemetry.uses_conntrack(svc("proactive"))
    assert telemetry.uses_conntrack(svc("group", conntrack=True))
    assert not telemetry.uses_conntrack(svc("group"))
    assert not telemetry.uses_conntrack(svc("l3"))
    s = FakeCommands(str(tmp_path / "t.jsonl"), ["s1"], "l4", {"10.0.0.4": "b1"},
                     conntrack=False)
    rec = s.sample()
    assert rec["conntrack"] == {} and len(s.calls) == 2
    s._fp.close()
