"""The live view's feed (pure) and its live source, the hub, against a fake lab.

The fake lab is a Run-shaped object (spec, graph, roles, folder, faults) whose load generator
records are written into its folder the way lb_apps.records writes them, and whose telemetry
samples are handed to the hub's callback as the sampler would.
"""
import json
import types

import pytest

from experiments.live import feed, hub
from topologies import graphs


def lb_graph():
    return graphs.build("lb_lab", {"clients": 2, "backends": 2})


def record(client, n, scheduled, latency, backend, status=200, error=None, warmup=False):
    return {"v": 1, "id": f"{client}-{n}", "client": client, "backend": backend,
            "scheduled": scheduled, "start": scheduled, "end": scheduled + latency,
            "status": status, "error": error, "bytes": 100, "method": "GET", "path": "/",
            "conn": "new", "cache": None, "warmup": warmup}


def test_topology_lists_every_node_with_its_role_and_every_link_with_ports():
    g = lb_graph()
    topo = feed.topology(g, {"b1": "h4", "b2": "h5"})
    assert {n["id"] for n in topo["nodes"]} == set(g.nodes)
    by_id = {n["id"]: n for n in topo["nodes"]}
    for name, data in g.nodes(data=True):
        if data["kind"] == "switch":
            assert by_id[name]["kind"] == "switch" and by_id[name]["ip"] is None
        else:
            assert by_id[name]["role"] == data.get("role") and by_id[name]["ip"] == data["ip"]
    assert by_id["h4"]["backend"] == "b1" and by_id["h1"]["backend"] is None
    assert len(topo["links"]) == g.number_of_edges()
    for link in topo["links"]:
        ports = g.edges[link["src"], link["dst"]]["ports"]
        assert (link["src_port"], link["dst_port"]) == (ports[link["src"]], ports[link["dst"]])
    json.dumps(topo)      # JSON-ready


def test_link_rates_take_each_direction_from_the_switch_end():
    topo = {"nodes": [{"id": "s1", "kind": "switch"}, {"id": "h1", "kind": "host"},
                      {"id": "s2", "kind": "switch"}],
            "links": [{"id": 0, "src": "s1", "dst": "h1", "src_port": 1, "dst_port": 0},
                      {"id": 1, "src": "h1", "dst": "s2", "src_port": 0, "dst_port": 3},
                      {"id": 2, "src": "s1", "dst": "s2", "src_port": 2, "dst_port": 1}]}
    prev = {"t": 10.0, "ports": {"s1": {"1": [1000, 5000]}, "s2": {"3": [0, 0]}}}
    cur = {"t": 12.0, "ports": {"s1": {"1": [3000, 25000]}, "s2": {"3": [400, 800]}}}
    rates = feed.link_rates(topo, prev, cur)
    # s1 -> h1 is s1's tx on port 1: 20000 bytes in 2 s; h1 -> s1 its rx: 2000 bytes
    assert rates == [{"id": 0, "fwd_bps": 80000.0, "rev_bps": 8000.0},
                     {"id": 1, "fwd_bps": 1600.0, "rev_bps": 3200.0}]
    assert feed.link_rates(topo, None, cur) == []
    assert feed.link_rates(topo, cur, cur) == []


def make_builder(measure_start=100.0, layer="l4"):
    meta = {"run": "x-r1", "config": "x", "rep": 1,
            "balancer": {"name": "x", "layer": layer, "mode": "l4", "engine": None,
                         "algorithm": "round_robin"}}
    info = feed.run_info(meta, 0, 2, 1.0, 10.0)
    return feed.FrameBuilder(info, {"nodes": [], "links": []}, measure_start, ["b1", "b2"])


def sample(t, **kw):
    base = {"v": 1, "kind": "sample", "t": t, "ports": {}, "flows": None, "packet_ins": None,
            "conntrack": None, "proxy": None}
    base.update(kw)
    return base


def test_frame_counts_rates_latency_and_errors_up_to_its_time():
    b = make_builder()
    recs = [record("h1", i, 100.0 + i * 0.1, 0.001 * (i + 1), "b1" if i % 3 else "b2")
            for i in range(30)]
    recs.append(record("h2", 99, 101.0, 0.5, None, status=None, error="timeout"))
    recs.append(record("h2", 98, 102.5, 0.01, "b1", status=503))
    b.add_records(reversed(recs))           # any order
    f1 = b.frame(sample(101.0))
    ended = [r for r in recs[:30] if r["end"] <= 101.0]
    assert f1["backends"]["b1"]["requests"] == sum(r["backend"] == "b1" for r in ended)
    assert f1["backends"]["b2"]["requests"] == sum(r["backend"] == "b2" for r in ended)
    f2 = b.frame(sample(103.0))
    assert sum(v["requests"] for v in f2["backends"].values()) == 30
    in_last = [r for r in recs[:30] if 101.0 < r["end"] <= 103.0]
    assert f2["total_rps"] == pytest.approx(len(in_last) / 2.0)
    lat = sorted(r["end"] - r["scheduled"] for r in recs[:30])
    assert f2["latency_ms"]["n"] == 30
    assert f2["latency_ms"]["p50"] == pytest.approx(lat[14] * 1000, abs=1e-3)
    assert f2["latency_ms"]["p99"] == pytest.approx(lat[29] * 1000, abs=1e-3)
    assert f2["errors"] == {"http_503": 1, "timeout": 1}
    assert f1["errors"] == {}           # neither had ended by 101.0
    assert f2["elapsed_s"] == 3.0 and f2["run"]["phase"] == "measure"
    assert f2["run"]["time_left_s"] == 7.0


def test_latency_is_over_the_last_60_seconds_only():
    b = make_builder()
    b.add_records([record("h1", 1, 100.0, 0.9, "b1"), record("h1", 2, 170.0, 0.001, "b1")])
    f = b.frame(sample(171.0))
    assert f["latency_ms"]["n"] == 1 and f["latency_ms"]["p99"] == pytest.approx(1.0)


def test_l4_parts_packet_in_rate_and_faults_as_applied():
    b = make_builder()
    faults = [{"action": "drain_backend", "target": "b2", "value": None, "applied": 102.2,
               "skipped": None, "failed": None}]
    f1 = b.frame(sample(102.0, packet_ins=10, flows={"s1": 4}, conntrack={"b1": 2}), faults)
    f2 = b.frame(sample(104.0, packet_ins=30, flows={"s1": 6}, conntrack={"b1": 3}), faults)
    assert f1["l4"]["packet_in_rate"] is None and f2["l4"]["packet_in_rate"] == 10.0
    assert f2["l4"]["flows"] == {"s1": 6} and f2["l4"]["conntrack"] == {"b1": 3}
    assert f1["faults"] == [] and f2["faults"][0]["elapsed_s"] == pytest.approx(2.2)
    assert f2["faults"][0]["action"] == "drain_backend" and f2["l7"] is None


def test_l7_parts_and_the_cache_hit_rate():
    b = make_builder(layer="l7")
    proxy = {"in_flight": {"b1": 2}, "health": {"b1": "up", "b2": "down"},
             "cache": {"hits": 3, "misses": 1}}          # a sample of before the engines
    f = b.frame(sample(100.5, proxy=proxy))
    assert f["l4"] is None
    assert f["l7"] == {"engine": "builtin", "in_flight": {"b1": 2}, "queued": None,
                       "health": {"b1": "up", "b2": "down"}, "cache_hit_rate": 0.75,
                       "cache": {"hits": 3, "misses": 1}, "clients": None,
                       "request_rate": None, "connections": None}
    assert b.frame(sample(101.5))["l7"]["cache_hit_rate"] is None


def test_l7_haproxy_request_rate_from_its_frontend_counter():
    b = make_builder(layer="l7")
    proxy = {"engine": "haproxy", "in_flight": {"b1": 3}, "queued": {"b1": 1},
             "health": {"b1": "drain"}, "cache": None, "clients": 7, "requests": 100,
             "nginx": None}
    b.frame(sample(100.0, proxy=proxy))
    f = b.frame(sample(102.0, proxy=dict(proxy, requests=160)))
    assert f["l7"]["request_rate"] == 30.0 and f["l7"]["queued"] == {"b1": 1}
    assert f["l7"]["health"] == {"b1": "drain"} and f["l7"]["clients"] == 7
    assert f["l7"]["connections"] is None


def test_l7_nginx_leaves_the_samplers_own_request_out():
    b = make_builder(layer="l7")
    page = {"active": 8, "accepts": 14, "handled": 14, "requests": 14, "reading": 0,
            "writing": 8, "waiting": 0}
    proxy = {"engine": "nginx", "in_flight": {}, "queued": None, "health": {},
             "cache": None, "clients": 7, "requests": 14, "nginx": page}
    b.frame(sample(100.0, proxy=proxy))
    # 21 more requests counted in 1 s, one of them the sampler's own stub_status request
    f = b.frame(sample(101.0, proxy=dict(proxy, requests=35, nginx=dict(page, requests=35))))
    assert f["l7"]["request_rate"] == 20.0
    assert f["l7"]["connections"] == {"reading": 0, "writing": 7, "waiting": 0}
    assert f["l7"]["in_flight"] == {} and f["l7"]["cache_hit_rate"] is None


def test_phases_warmup_measure_drain():
    b = make_builder()
    assert b.frame(sample(99.5))["run"]["phase"] == "warmup"
    assert b.frame(sample(109.0))["run"]["phase"] == "measure"
    assert b.frame(sample(111.0))["run"]["phase"] == "drain"


# -- the hub against a fake lab ---------------------------------------------------------------

def fake_run(tmp_path, name="l4_rr-r1"):
    spec = types.SimpleNamespace(
        warmup_s=1.0, duration_s=3.0,
        backends=[types.SimpleNamespace(name="b1"), types.SimpleNamespace(name="b2")])
    g = lb_graph()
    roles = types.SimpleNamespace(backends={"b1": "h4", "b2": "h5"})
    folder = tmp_path / name
    folder.mkdir()
    return types.SimpleNamespace(spec=spec, graph=g, roles=roles, dir=str(folder),
                                 faults_done=[])


def meta_of(name="l4_rr-r1"):
    return {"run": name, "config": name.split("-")[0], "rep": 1,
            "balancer": {"name": "l4_rr", "layer": "l4", "mode": "l4", "engine": None,
                         "algorithm": "round_robin"}}


def test_hub_makes_frames_from_records_written_between_samples(tmp_path):
    h = hub.Hub(["l4_rr-r1", "l7_rr-r1"])
    run = fake_run(tmp_path)
    on_sample = h.run_started(run, meta_of())
    assert h.run()["run"] == "l4_rr-r1" and h.run()["runs"] == 2
    assert [r["status"] for r in h.runs()] == ["running", "planned"]
    log = open(f"{run.dir}/loadgen-h1.jsonl", "w")
    warm = [record("h1", i, 1000.0 + i * 0.1, 0.002, "b1", warmup=True) for i in range(5)]
    measured = [record("h1", 10 + i, 1001.0 + i * 0.1, 0.002, "b2" if i % 2 else "b1")
                for i in range(10)]
    log.write("".join(json.dumps(r) + "\n" for r in warm))
    log.write(json.dumps(measured[0])[:20])          # a line not yet complete
    log.flush()
    on_sample(sample(1000.6))
    f = h.frames()[-1]
    assert f["backends"]["b1"]["requests"] == 5 and f["elapsed_s"] < 0
    assert f["run"]["phase"] == "warmup"
    log.write(json.dumps(measured[0])[20:] + "\n")
    log.write("".join(json.dumps(r) + "\n" for r in measured[1:]))
    log.close()
    run.faults_done.append({"action": "drain_backend", "target": "b2", "value": None,
                            "applied": 1001.5, "skipped": None, "failed": None})
    on_sample(sample(1002.5, packet_ins=4))
    f = h.frames()[-1]
    # the measurement starts at the first measured record, as meta.json's window
    assert f["elapsed_s"] == pytest.approx(1.5)
    assert f["backends"]["b1"]["requests"] == 5 + 5 and f["backends"]["b2"]["requests"] == 5
    assert [x["target"] for x in f["faults"]] == ["b2"]
    assert f["l4"]["packet_ins"] == 4
    seq = h.seq
    h.run_stopped(run)
    assert h.seq > seq and h.run()["status"] == "done"
    assert h.frames()[-1]["run"]["phase"] == "done"
    assert h.cpu_s > 0


def test_hub_before_any_run_and_unknown_runs(tmp_path):
    h = hub.Hub()
    assert h.run() is None and h.frames() == [] and h.topology() == {}
    with pytest.raises(LookupError, match="run=nope"):
        h.frames("nope")
    run = fake_run(tmp_path)
    h.run_started(run, meta_of())
    with pytest.raises(LookupError, match="not finished"):
        h.summary()


def test_hub_wait_returns_when_a_frame_arrives(tmp_path):
    import threading
    h = hub.Hub()
    run = fake_run(tmp_path)
    on_sample = h.run_started(run, meta_of())
    seq = h.seq
    t = threading.Thread(target=on_sample, args=(sample(5.0),))
    t.start()
    assert h.wait(seq, 10.0) != seq
    t.join()


def test_record_tail_reads_only_complete_new_lines(tmp_path):
    tail = hub.RecordTail(str(tmp_path))
    assert tail.read() == []
    p = tmp_path / "loadgen-h1.jsonl"
    p.write_text(json.dumps(record("h1", 1, 1.0, 0.1, "b1")) + "\n{\"v\":")
    assert [r["id"] for r in tail.read()] == ["h1-1"]
    with open(p, "a") as fp:
        fp.write(json.dumps(record("h1", 2, 2.0, 0.1, "b1"))[5:] + "\n")
    assert [r["id"] for r in tail.read()] == ["h1-2"]
    assert tail.read() == []


def test_nearest_rank_is_the_metrics_percentile():
    import random

    import numpy as np

    from experiments.metrics import percentile
    rng = random.Random(4)
    for n in (1, 2, 7, 100, 1001):
        values = [rng.expovariate(1.0) for _ in range(n)]
        for p in (50, 90, 99, 99.9):
            assert feed._nearest_rank(np.array(values), p) == percentile(sorted(values), p)
    assert feed._nearest_rank(np.empty(0), 50) is None


def test_merge_sorted_keeps_order_whatever_arrives():
    import random
    rng = random.Random(2)
    kept, everything = [], []
    for _ in range(50):
        new = [rng.uniform(0, 100) for _ in range(rng.randint(0, 20))]
        everything += new
        if new:
            feed._merge_sorted(kept, list(new))
        assert kept == sorted(everything)


def test_records_arriving_late_still_count_where_they_ended():
    b = make_builder()
    b.add_records([record("h1", 1, 100.0, 0.5, "b1")])
    b.frame(sample(101.0))
    b.add_records([record("h2", 2, 100.2, 0.1, "b2"), record("h1", 3, 101.5, 0.1, "b1")])
    f = b.frame(sample(102.0))
    assert {k: v["requests"] for k, v in f["backends"].items()} == {"b1": 2, "b2": 1}
    assert f["latency_ms"]["n"] == 3


# -- a frame waits for its second's records (the load generators flush about once a second) --

def _flush(path, recs, at):
    """Append ``recs`` as a load generator's flush at epoch ``at`` (the file's write time)."""
    import os
    with open(path, "a") as fp:
        fp.write("".join(json.dumps(r) + "\n" for r in recs))
    os.utime(path, (at, at))


def test_live_frames_count_records_flushed_after_their_second(tmp_path):
    # 10 req/s from 1000.0, each flush half a second after a sample writes every record ended
    # before it: the frame of the sample at t must count all of (t - 1, t], as the replay does.
    h = hub.Hub(["l4_rr-r1"])
    run = fake_run(tmp_path)
    run.spec.warmup_s = 0.0
    on_sample = h.run_started(run, meta_of())
    path = f"{run.dir}/loadgen-h1.jsonl"
    recs = [record("h1", i, 1000.0 + i * 0.1, 0.01, "b1" if i % 2 else "b2")
            for i in range(60)]
    written = 0
    for k in range(1, 7):
        t = 1000.0 + k
        flush_at = t - 0.5                    # the flush before this sample
        new = [r for r in recs[written:] if r["end"] <= flush_at]
        _flush(path, new, flush_at)
        written += len(new)
        on_sample(sample(t))
    h.run_stopped(run)                        # the load generator ended: the rest is written
    _flush(path, recs[written:], 1007.0)
    frames = h.frames()
    assert [f["t"] for f in frames][:5] == [1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    for f in frames[1:5]:
        assert f["total_rps"] == 10.0, f["t"]
        assert {b: v["rps"] for b, v in f["backends"].items()} == {"b1": 5.0, "b2": 5.0}
    # the replay's frames (every record known at once) give the same counts
    replayed = make_builder(measure_start=1000.0)
    replayed.add_records(recs)
    for f in frames[:5]:
        r = replayed.frame(sample(f["t"]))
        assert f["backends"] == r["backends"] and f["total_rps"] == r["total_rps"]


def test_a_frame_waits_for_the_write_after_its_second_but_not_forever(tmp_path):
    h = hub.Hub()
    run = fake_run(tmp_path)
    on_sample = h.run_started(run, meta_of())
    path = f"{run.dir}/loadgen-h1.jsonl"
    _flush(path, [record("h1", 1, 1000.0, 0.1, "b1")], 1000.5)
    on_sample(sample(1001.0))
    assert h.frames() == []                   # written at 1000.5: (1000.5, 1001] may be unread
    _flush(path, [record("h1", 2, 1000.7, 0.1, "b1")], 1001.5)
    on_sample(sample(1002.0))
    assert [f["t"] for f in h.frames()] == [1001.0]
    assert h.frames()[0]["backends"]["b1"]["requests"] == 2
    on_sample(sample(1003.0))                 # nothing written since 1001.5 (no request ended)
    assert [f["t"] for f in h.frames()] == [1001.0]
    on_sample(sample(1003.0 + hub.LAG_CAP_S))
    assert [f["t"] for f in h.frames()] == [1001.0, 1002.0, 1003.0]
    h.run_stopped(run)
    assert len(h.frames()) == 4 and h.frames()[-1]["run"]["phase"] == "done"


def test_record_tail_complete_time_is_each_files_last_write(tmp_path):
    tail = hub.RecordTail(str(tmp_path))
    assert tail.horizon == float("inf")       # no load generator file yet: nothing unread
    _flush(tmp_path / "loadgen-h1.jsonl", [record("h1", 1, 1.0, 0.1, "b1")], 50.0)
    _flush(tmp_path / "loadgen-h2.jsonl", [record("h2", 1, 1.0, 0.1, "b1")], 40.0)
    tail.read()
    assert tail.horizon == 40.0
    _flush(tmp_path / "loadgen-h2.jsonl", [], 60.0)
    tail.read()
    assert tail.horizon == 50.0
