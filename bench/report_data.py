"""Benchmark: what requests.parquet costs lblab report, on a synthetic results folder.

Builds a folder of RUNS runs with RECORDS load generator records each (2 clients, 2 backends,
records shaped like the load generator's), then times ``report.build(plots=False)`` with and
without writing requests.parquet, alternating (with, without, with, …) so drift hits both
alike. Prints each round, both medians, the ratio with/without, and the sizes of the JSONL
records and of requests.parquet. No root needed.

    .venv/bin/python bench/report_data.py [--runs 2] [--records 100000] [--rounds 3]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402
from lb_apps.records import encode_record  # noqa: E402


def make_folder(root, runs, records):
    rng = random.Random(1)
    for rep in range(1, runs + 1):
        run = f"l7_rr-r{rep}"
        folder = os.path.join(root, "raw", run)
        os.makedirs(folder)
        t0 = 1000.0 * rep
        for client in ("h1", "h2"):
            with open(os.path.join(folder, f"loadgen-{client}.jsonl"), "w") as fp:
                for i in range(records // 2):
                    scheduled = t0 + i * 0.0001
                    fp.write(encode_record({
                        "v": 2, "id": f"{client}-{i + 1}", "client": client,
                        "scheduled": scheduled, "start": scheduled + 1e-5,
                        "end": scheduled + rng.expovariate(500.0), "status": 200,
                        "bytes": 1100, "backend": rng.choice(("b1", "b2")), "error": None,
                        "method": "GET", "path": "/", "conn": "reused", "cache": None,
                        "pool_wait": 0.0, "connect": 0.0}))
        with open(os.path.join(folder, "meta.json"), "w") as fp:
            json.dump({"v": 2, "run": run, "config": "l7_rr", "order": 0, "rep": rep,
                       "seed": rep, "balancer": {"name": "l7_rr", "layer": "l7", "mode": None,
                                                 "engine": "builtin",
                                                 "algorithm": "round_robin"},
                       "sweep": None, "workload": "http",
                       "window": [t0, t0 + records // 2 * 0.0001],
                       "backends": [{"name": "b1", "weight": 1}, {"name": "b2", "weight": 1}],
                       "clients": ["h1", "h2"], "faults": [], "iperf3_flows": [],
                       "fidelity": {"cpu_max": 1.0, "cpu_mean": 1.0, "saturated": False,
                                    "warnings": []},
                       "status": "ok", "failure": None}, fp)


class _NoParquet:
    """Stands in for RequestsWriter: takes the records and writes nothing."""

    def __init__(self, path, metas):
        self.path, self.rows = path, 0

    def add(self, meta, records, window):
        self.rows += len(records)

    def close(self):
        pass

    def abort(self):
        pass


def timed(root, parquet):
    saved = report.RequestsWriter
    if not parquet:
        report.RequestsWriter = _NoParquet
    try:
        start = time.perf_counter()
        report.build(root, plots=False)
        return time.perf_counter() - start
    finally:
        report.RequestsWriter = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--records", type=int, default=100000, help="records per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="lblab-bench-report-")
    try:
        make_folder(root, args.runs, args.records)
        with_, without = [], []
        for i in range(args.rounds):
            with_.append(timed(root, True))
            without.append(timed(root, False))
            print(f"round {i + 1}: with requests.parquet {with_[-1]:.2f} s, "
                  f"without {without[-1]:.2f} s", flush=True)
        jsonl = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                    os.walk(os.path.join(root, "raw")) for f in fs if f.endswith(".jsonl"))
        parquet = os.path.getsize(os.path.join(root, "requests.parquet"))
        a, b = statistics.median(with_), statistics.median(without)
        print(f"{args.runs} runs x {args.records} records: median {a:.2f} s with, {b:.2f} s "
              f"without; ratio {a / b:.2f}")
        print(f"records: {jsonl / 1e6:.1f} MB JSONL, requests.parquet {parquet / 1e6:.1f} MB "
              f"({parquet / jsonl:.1%})")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
