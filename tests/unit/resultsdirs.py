"""Results folders for the report's unit tests, made from the committed fixtures: the tiny HTTP
folder as it is (run format 1), turned into run format 2 with a two-parameter sweep, and an
iperf3-only folder."""
import json
import os
import shutil

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
RUN_TINY = os.path.join(FIXTURES, "run_tiny")


def read_json(path):
    with open(path, encoding="utf-8") as fp:
        return json.load(fp)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as fp:
        json.dump(data, fp, indent=1, sort_keys=True)


def metas(run_dir):
    """Yield ``(path, meta)`` of every raw run's meta.json."""
    raw = os.path.join(run_dir, "raw")
    for name in sorted(os.listdir(raw)):
        path = os.path.join(raw, name, "meta.json")
        yield path, read_json(path)


def tiny(target):
    """A copy of run_tiny (results format 1, run format 1, no sweep) at ``target``."""
    shutil.copytree(RUN_TINY, target)
    return str(target)


def tiny_v2_sweep(target):
    """run_tiny as run format 2: each run at a point of a two-parameter sweep
    (``workload.rate`` int, ``backends.0.capacity`` float), a seed and fidelity flags (the
    load's, per-backend queueing, and one runs.csv has no column of its own for)."""
    run_dir = tiny(target)
    points = {1: [100, 1.5], 2: [200, 2]}
    for path, meta in metas(run_dir):
        rate, capacity = points[meta["rep"]]
        meta.update(v=2, seed=1000 + meta["rep"], sweep=[
            {"param": "workload.rate", "value": rate},
            {"param": "backends.0.capacity", "value": capacity}])
        meta["config"] = f"{meta['balancer']['name']}-rate={rate}"
        meta["fidelity"].update(pool_limited=meta["rep"] == 2, pool_waited=3 * meta["rep"],
                                backend_queueing={"b1": {"queued_share": 0.25,
                                                         "mean_wait_ms": 1.5}},
                                future_flag="x")      # a flag with no column of its own
        write_json(path, meta)
    return run_dir


def iperf3(target):
    """An iperf3-only results folder: one configuration, two runs, two flows each (one of the
    second run's flows has an empty output file: a stopped client)."""
    run_dir = str(target)
    for rep in (1, 2):
        run = f"tcp-r{rep}"
        folder = os.path.join(run_dir, "raw", run)
        os.makedirs(folder)
        shutil.copy(os.path.join(FIXTURES, "iperf3_tcp_a.json"),
                    os.path.join(folder, "iperf3-h1.json"))
        if rep == 1:
            shutil.copy(os.path.join(FIXTURES, "iperf3_tcp_b.json"),
                        os.path.join(folder, "iperf3-h2.json"))
        else:
            open(os.path.join(folder, "iperf3-h2.json"), "w").close()
        write_json(os.path.join(folder, "meta.json"), {
            "v": 2, "run": run, "config": "tcp", "order": 0, "rep": rep, "seed": 1000 + rep,
            "balancer": {"name": "tcp", "layer": "l4", "mode": "l4", "engine": None,
                         "algorithm": "round_robin"},
            "sweep": None, "workload": "iperf3", "window": None, "windows": {},
            "backends": [{"name": "b1", "weight": 1, "capacity": None, "host": "h3",
                          "ip": "10.0.0.3"},
                         {"name": "b2", "weight": 1, "capacity": None, "host": "h4",
                          "ip": "10.0.0.4"}],
            "clients": ["h1", "h2"], "faults": [],
            "iperf3_flows": [{"flow": "h1", "client": "h1", "backend": "b1",
                              "file": "iperf3-h1.json"},
                             {"flow": "h2", "client": "h2", "backend": "b2",
                              "file": "iperf3-h2.json"}],
            "fidelity": {"cpu_max": 50.0, "cpu_mean": 20.0, "saturated": False,
                         "warnings": []},
            "status": "ok", "failure": None})
    write_json(os.path.join(run_dir, "manifest.json"), {
        "v": 1, "format_version": 2, "seed": 1,
        "spec": {"name": "iperf", "question": "Two TCP flows", "repetitions": 2,
                 "topology": {"name": "lb_lab", "params": {}},
                 "workload": {"type": "iperf3", "bitrate": None}}})
    return run_dir
