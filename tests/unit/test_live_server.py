"""The live view's server for real (uvicorn on a free port of 127.0.0.1), read with urllib.

Fed by the replay of the committed ``run_tiny`` folder and by a hub with a fake run; checks the
routes of the contract (docs/live.md), GET-only, one-line errors, the event stream, and that
stopping closes the port. No lab, no root.
"""
import argparse
import json
import os
import socket
import threading
import urllib.error
import urllib.request

import pytest

from experiments import view_cmd
from experiments.live import replay, server
from experiments.live.hub import Hub, serving
from lblab_core.errors import UsageError
from lblab_core.netutil import free_port
from tests.conftest import wait_for
from tests.unit.test_live_feed import fake_run, meta_of, record, sample

TINY = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny")


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def closed(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def replayed(tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<html>page</html>")
    (static / "app.js").write_text("// js")
    srv = server.LiveServer(replay.Replay(TINY), "127.0.0.1", free_port(), str(static))
    with srv:
        yield srv
    assert closed(srv.port)


def test_parse_address():
    assert server.parse_address("127.0.0.1:8050") == ("127.0.0.1", 8050)
    assert server.parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert server.parse_address("8051") == ("127.0.0.1", 8051)
    assert server.parse_address("[::1]:8050") == ("::1", 8050)
    assert server.parse_address("localhost:80") == ("localhost", 80)
    for bad, words in (("host.example:80", "host 'host.example'"), ("1.2.3.4:0", "port '0'"),
                       ("1.2.3.4:99999", "expected 1..65535"), ("nonsense", "HOST:PORT"),
                       (":80", "HOST:PORT"), ("[::1]80", "HOST:PORT")):
        with pytest.raises(argparse.ArgumentTypeError, match="--live") as err:
            server.parse_address(bad)
        assert words in str(err.value)


def test_the_flag_defaults_to_loopback_8050():
    parser = argparse.ArgumentParser()
    server.add_live_flag(parser)
    assert parser.parse_args([]).live is None
    assert parser.parse_args(["--live"]).live == ("127.0.0.1", 8050)
    assert parser.parse_args(["--live", "0.0.0.0:8060"]).live == ("0.0.0.0", 8060)


def test_replay_routes(replayed):
    base = replayed.url
    status, body = get(base)
    assert status == 200 and body == b"<html>page</html>"
    assert get(base + "static/app.js") == (200, b"// js")
    assert get(base + "static/../../secret")[0] == 404
    run = json.loads(get(base + "api/run")[1])
    assert run["mode"] == "replay" and run["run"]["run"] == "l4_rr-r1"
    assert [r["run"] for r in run["runs"]] == ["l4_rr-r1", "l4_rr-r2", "l7_rr-r1", "l7_rr-r2"]
    topo = json.loads(get(base + "api/topology?run=l7_rr-r1")[1])
    assert {"h1", "h2", "s1"} <= {n["id"] for n in topo["nodes"]}
    frames = json.loads(get(base + "api/frames?run=l7_rr-r1&from=0&to=1.5")[1])
    assert frames["run"] == "l7_rr-r1"
    assert frames["frames"] and all(0 <= f["elapsed_s"] <= 1.5 for f in frames["frames"])
    every = json.loads(get(base + "api/frames?run=l7_rr-r1")[1])["frames"]
    assert json.loads(get(base + "api/state?run=l7_rr-r1")[1]) == every[-1]
    summary = json.loads(get(base + "api/summary?run=l7_rr-r1")[1])
    assert summary == replay.Replay(TINY).summary("l7_rr-r1")


def test_read_only_and_errors(replayed):
    base = replayed.url
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert get(base + "api/run", method)[0] == 405
    assert get(base + "api/run", "HEAD")[0] == 200
    status, body = get(base + "api/frames?from=abc")
    assert status == 400 and json.loads(body) == {
        "error": "from=abc: expected a number of seconds (elapsed_s)"}
    assert get(base + "api/frames?from=nan")[0] == 400
    assert get(base + "api/frames?from=3&to=1")[0] == 400
    status, body = get(base + "api/state?run=zz")
    assert status == 404 and "run=zz: no such run" in json.loads(body)["error"]
    status, body = get(base + "events")
    assert status == 404 and "no event stream" in json.loads(body)["error"]


def test_a_busy_port_is_a_one_line_usage_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=f"--live 127.0.0.1:{port}: cannot listen"):
            server.LiveServer(replay.Replay(TINY), "127.0.0.1", port).start()


def read_events(url, want, out):
    """Read the event stream until ``want`` frames came (in a thread)."""
    with urllib.request.urlopen(url, timeout=20) as resp:
        event = None
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if sum(1 for e, _ in out if e == "frame") >= want:
                    return


def test_live_event_stream_and_stop(tmp_path):
    port = free_port()
    said = []
    with serving(("127.0.0.1", port), said.append) as hub:
        assert isinstance(hub, Hub) and said == [f"live view: http://127.0.0.1:{port}/ "
                                                 f"(read-only; stops with the run)"]
        base = f"http://127.0.0.1:{port}/"
        assert json.loads(get(base + "api/state")[1]) == {}
        assert json.loads(get(base + "api/run")[1])["run"] is None
        events = []
        reader = threading.Thread(target=read_events, args=(base + "events", 2, events))
        reader.start()
        run = fake_run(tmp_path)
        on_sample = hub.run_started(run, meta_of())
        (tmp_path / "l4_rr-r1" / "loadgen-h1.jsonl").write_text(
            "".join(json.dumps(record("h1", i, 10.0 + i * 0.1, 0.01, "b1")) + "\n"
                    for i in range(10)))
        on_sample(sample(11.0))
        on_sample(sample(12.0))
        reader.join(20)
        assert not reader.is_alive()
        kinds = [e for e, _ in events]
        assert kinds[0] == "run" and events[0][1]["run"] == "l4_rr-r1"
        frames = [d for e, d in events if e == "frame"]
        assert [f["t"] for f in frames] == [11.0, 12.0]
        assert frames[-1]["backends"]["b1"]["requests"] == 10
        assert json.loads(get(base + "api/state")[1]) == frames[-1]
        # a stream left open does not keep the server from stopping
        hanging = urllib.request.urlopen(base + "events", timeout=20)
    wait_for(lambda: closed(port), "the port closed after the run")
    hanging.close()


def test_no_flag_no_server():
    with serving(None) as hub:
        assert hub is None


def test_view_command_serves_until_stopped():
    port = free_port()
    stop = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.append(
        view_cmd.main([TINY, "--live", f"127.0.0.1:{port}"], stop=stop)))
    t.start()
    base = f"http://127.0.0.1:{port}/"
    wait_for(lambda: not closed(port), "lblab view listening")
    assert json.loads(get(base + "api/run")[1])["mode"] == "replay"
    stop.set()
    t.join(20)
    assert result == [0] and closed(port)
