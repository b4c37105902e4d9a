"""Benchmark: what the live view costs the measurement (issue 14; root, the emulation lock).

The same spec is run as whole batches, interleaved ABBA (off, on, on, off, …) so that a drift of
the machine over time falls on both sides: ``lblab run SPEC`` and ``lblab run SPEC --live``.
During a live batch a client stays connected to ``/events`` (as a page would) and the live
server's CPU is read from its thread in the ``lblab`` process (``/proc/PID/task/TID/stat``: the
newest thread when the server first answers — it starts before any lab or telemetry thread;
the count of older ones is printed).

Printed side by side, per configuration and overall:

* throughput (``throughput_rps`` of runs.csv, mean over the batches): live / off, must be
  >= 0.97;
* the live server's CPU in % of one core over the batch's wall time: must be <= 5 %;
* the 1 Hz telemetry's CPU (``cpu_percent`` of each run's ``telemetry.jsonl`` end line: its
  thread, which also makes the live frames, and the ovs/ss commands it runs), off and live:
  the same 5 % budget.

    flock /tmp/lblab-emulation.lock .venv/bin/python bench/live_cost.py \\
        [--spec experiments/specs/quickstart.yaml] [--pairs 2] [--set KEY=VALUE ...]

The exit status is 0 when every budget holds, 1 otherwise.
"""
import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lblab_core.netutil import free_port  # noqa: E402

THROUGHPUT_MIN = 0.97
CPU_MAX_PERCENT = 5.0
DEFAULT_SPEC = os.path.join(REPO, "experiments", "specs", "quickstart.yaml")
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid, tid):
    """Return the CPU seconds (user + system) of one thread, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as fp:
            fields = fp.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def threads(pid):
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def newest_thread(pid):
    """Return the thread of ``pid`` started last (``starttime``, field 22 of its stat)."""
    best = None
    for tid in threads(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as fp:
                start = int(fp.read().rsplit(")", 1)[1].split()[19])
        except OSError:
            continue
        if tid != pid and (best is None or start > best[0]):
            best = (start, tid)
    return None if best is None else best[1]


class EventsClient(threading.Thread):
    """Stays on ``/events`` like an open page; counts the frames it got."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.frames = 0

    def run(self):
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=30) as resp:
                    for line in resp:
                        if line.startswith(b"event: frame"):
                            self.frames += 1
                return
            except OSError:
                time.sleep(0.2)       # not up yet, or between reconnects: a page retries too


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def run_batch(spec, out, overrides, live):
    """Run one batch; return its throughputs, telemetry CPU and (live) the server's CPU."""
    args = [sys.executable, "-m", "experiments.cli", "run", spec, "--out", out, "--quiet",
            "--no-calibration"]
    for o in overrides:
        args += ["--set", o]
    port = free_port() if live else None
    if live:
        args += ["--live", f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = {"tids": [], "cpu": {}, "since": None}
    if live:
        base = f"http://127.0.0.1:{port}/"
        while proc.poll() is None and not answers(base + "api/run"):
            time.sleep(0.05)
        # The server's thread is the newest when it first answers: it starts before any lab
        # or telemetry thread; older ones (the main thread, a BLAS pool) are not the server's.
        newest = newest_thread(proc.pid)
        server["tids"] = [newest] if newest is not None else []
        server["others"] = len(threads(proc.pid)) - 1 - len(server["tids"])
        server["since"] = time.monotonic()
        server["cpu0"] = {t: thread_cpu_s(proc.pid, t) or 0.0 for t in server["tids"]}
        client = EventsClient(base + "events")
        client.start()
        while proc.poll() is None:      # keep the last reading: the thread ends with the batch
            for t in server["tids"]:
                v = thread_cpu_s(proc.pid, t)
                if v is not None:
                    server["cpu"][t] = v
            server["until"] = time.monotonic()
            time.sleep(0.1)
        server["frames"] = client.frames
    output = proc.communicate()[0].decode(errors="replace")
    wall = time.monotonic() - t0
    folders = glob.glob(os.path.join(out, "*", "runs.csv"))   # --out DIR: DIR/<name>-<time>/
    if proc.returncode not in (0, 1) or not folders:
        raise SystemExit(f"bench/live_cost.py: lblab run failed ({proc.returncode}):\n{output}")
    folder = os.path.dirname(folders[0])
    with open(folders[0], newline="", encoding="utf-8") as fp:
        every = list(csv.DictReader(fp))
    rows = [r for r in every if r["status"] == "ok"]
    failed = [f"{r['run']}: {r['failure']}" for r in every if r["status"] != "ok"]
    tel = []
    for path in sorted(glob.glob(os.path.join(folder, "raw", "*", "telemetry.jsonl"))):
        with open(path, encoding="utf-8") as fp:
            ends = [json.loads(line) for line in fp if '"kind":"end"' in line]
        if ends and ends[-1].get("cpu_percent") is not None:
            tel.append(ends[-1]["cpu_percent"])
    result = {"wall_s": wall, "throughput": {r["config"]: float(r["throughput_rps"])
                                             for r in rows if r["throughput_rps"]},
              "telemetry_cpu_percent": tel, "failed": failed}
    if live:
        used = sum(server["cpu"].get(t, 0.0) - server["cpu0"][t] for t in server["tids"])
        span = server.get("until", server["since"]) - server["since"]
        result.update(server_threads=server["others"], server_cpu_s=used,
                      server_span_s=span, frames=server["frames"],
                      server_cpu_percent=100.0 * used / span if span > 0 else None)
    return result


def ratios(batches):
    """Return ``{config: (off mean, live mean, live/off)}`` and the overall ratio (pure)."""
    by = {}
    for b in batches:
        for config, v in b["throughput"].items():
            by.setdefault(config, {"off": [], "live": []})[b["mode"]].append(v)
    out = {}
    for config, v in by.items():
        if v["off"] and v["live"]:
            off, live = statistics.fmean(v["off"]), statistics.fmean(v["live"])
            out[config] = (off, live, live / off if off else None)
    overall = [r for _, _, r in out.values() if r]
    return out, (statistics.geometric_mean(overall) if overall else None)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/live_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    parser.add_argument("--pairs", type=int, default=2,
                        help="off/live pairs, in ABBA order (default 2: off live live off)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="passed to lblab run (e.g. duration_s=5)")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="repetitions per batch (default 1)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (it runs lblab run); run it under the emulation lock")
    if args.pairs < 1:
        parser.error(f"--pairs {args.pairs}: expected 1 or more")
    overrides = [f"repetitions={args.repetitions}"] + args.overrides
    order = []
    for i in range(args.pairs):
        order += ["off", "live"] if i % 2 == 0 else ["live", "off"]
    batches = []
    with tempfile.TemporaryDirectory(prefix="lblab-live-cost-") as tmp:
        for i, mode in enumerate(order):
            print(f"batch {i + 1}/{len(order)}: {mode} ...", flush=True)
            b = run_batch(args.spec, os.path.join(tmp, f"b{i}-{mode}"), overrides,
                          mode == "live")
            b["mode"] = mode
            batches.append(b)
            extra = ""
            if mode == "live":
                extra = (f", server {b['server_cpu_percent']:.2f} % CPU "
                         f"({b['server_cpu_s']:.3f} s over {b['server_span_s']:.1f} s, "
                         f"its thread beside {b['server_threads']} older one(s) and the main "
                         f"thread), {b['frames']} frames streamed")
            print(f"  {b['wall_s']:.1f} s{extra}", flush=True)
            print("  req/s: " + ", ".join(f"{c} {v:.1f}" for c, v in b["throughput"].items()),
                  flush=True)
            for f in b["failed"]:
                print(f"  failed run (left out): {f}", flush=True)

    per_config, overall = ratios(batches)
    print(f"\nspec {os.path.relpath(args.spec, REPO)}, {args.pairs} pair(s) ABBA, "
          f"{args.repetitions} repetition(s) per batch; throughput_rps mean over batches")
    print(f"{'configuration':<24}{'off req/s':>12}{'live req/s':>12}{'live/off':>10}")
    for config, (off, live, r) in per_config.items():
        print(f"{config:<24}{off:>12.1f}{live:>12.1f}{r:>10.3f}")
    print(f"{'overall (geometric mean)':<24}{'':>12}{'':>12}{overall:>10.3f}"
          f"   budget >= {THROUGHPUT_MIN}")
    server = [b["server_cpu_percent"] for b in batches if b["mode"] == "live"]
    tel_off = [c for b in batches if b["mode"] == "off" for c in b["telemetry_cpu_percent"]]
    tel_live = [c for b in batches if b["mode"] == "live" for c in b["telemetry_cpu_percent"]]
    print(f"\n{'CPU, % of one core':<34}{'mean':>8}{'max':>8}   budget <= {CPU_MAX_PERCENT} %")
    print(f"{'live server (its thread)':<34}{statistics.fmean(server):>8.2f}{max(server):>8.2f}")
    for name, vals in (("telemetry, off (per run)", tel_off),
                       ("telemetry + live frames (per run)", tel_live)):
        if vals:
            print(f"{name:<34}{statistics.fmean(vals):>8.2f}{max(vals):>8.2f}")
    ok = (overall is not None and overall >= THROUGHPUT_MIN and max(server) <= CPU_MAX_PERCENT
          and all(c <= CPU_MAX_PERCENT for c in tel_off + tel_live))
    print("\nwithin budget" if ok else "\nOVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
