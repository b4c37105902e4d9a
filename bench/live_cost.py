"""Benchmark: what the live view costs the measurement (issue 14; root, the emulation lock).

The same spec runs as whole batches without and with ``--live`` (``lblab run SPEC`` and
``lblab run SPEC --live``), in rounds: each round is one off batch and one live batch, their
order alternating round by round (off live, live off, off live, ...) so that neither side
always runs first or second. Each configuration's live/off throughput ratio is taken within a
round (the two batches minutes apart, not the whole bench apart) and the figure is the median
of the rounds' ratios, so one batch disturbed by other work on the machine moves it little.
During a live batch a client stays connected to ``/events`` (as a page would) and the live
server's CPU is read from its thread in the ``lblab`` process (``/proc/PID/task/TID/stat``: the
newest thread when the server first answers — it starts before any lab or telemetry thread).
Every run measures ``--duration`` seconds (default 10: the quickstart's 5 s of a closed loop
are too few on a shared machine). Before each batch the machine's CPU use over one second is
read from ``/proc/stat`` (nothing of the bench runs then: it is other people's work), printed
in cores, and a batch that started on a busy machine (above ``--busy-cores``) is flagged. (The
load average would not do: its minute still holds the previous batch's own lab.)

Printed per configuration and overall:

* throughput (``throughput_rps`` of runs.csv): the median off and live, each round's
  live/off, their median; overall the geometric mean of the configurations' medians: must be
  >= 0.97;
* the live server's CPU in % of one core over the batch's wall time (median, max): <= 5 %;
* the 1 Hz telemetry's CPU (``cpu_percent`` of each run's ``telemetry.jsonl`` end line: its
  thread, which also makes the live frames, and the ovs commands it runs), off and live,
  median and max: the same 5 % budget. (Telemetry runs in both arms: every run records it.)

The measurement (quiet machine: nothing else running; it holds the emulation lock for about
rounds x 2 batches x configurations x (duration + warm-up + ~8 s set-up), about 10 min for
the default 3 rounds of the quickstart)::

    flock /tmp/lblab-emulation.lock .venv/bin/python bench/live_cost.py

A smoke run (one round of short runs; under a minute, figures meaningless)::

    flock /tmp/lblab-emulation.lock .venv/bin/python bench/live_cost.py \\
        --rounds 1 --duration 1 --set warmup_s=0.5 --set 'balancers=[{name: l7, layer: l7}]'

The exit status is 0 when every budget holds, 1 otherwise (2: bad options).
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


def round_order(rounds):
    """Return the batches' modes in order: each round one off and one live, alternating
    which goes first (pure)."""
    order = []
    for i in range(rounds):
        order += [(i, "off"), (i, "live")] if i % 2 == 0 else [(i, "live"), (i, "off")]
    return order


def summarize(batches):
    """Return ``({config: {"off", "live", "ratios", "ratio"}}, overall)`` (pure).

    ``batches``: dicts with ``round``, ``mode`` and ``throughput`` ``{config: req/s}``.
    ``off``/``live`` are the medians over the batches; ``ratios`` each round's live/off for
    the configuration (rounds where both batches have it), ``ratio`` their median; ``overall``
    the geometric mean of the configurations' ``ratio`` (None without any).
    """
    by = {}
    for b in batches:
        for config, v in b["throughput"].items():
            by.setdefault(config, {}).setdefault(b["round"], {})[b["mode"]] = v
    out = {}
    for config, rounds in by.items():
        off = [r["off"] for r in rounds.values() if "off" in r]
        live = [r["live"] for r in rounds.values() if "live" in r]
        ratios = [r["live"] / r["off"] for _, r in sorted(rounds.items())
                  if r.get("off") and "live" in r]
        out[config] = {"off": statistics.median(off) if off else None,
                       "live": statistics.median(live) if live else None,
                       "ratios": ratios,
                       "ratio": statistics.median(ratios) if ratios else None}
    medians = [v["ratio"] for v in out.values() if v["ratio"]]
    return out, (statistics.geometric_mean(medians) if medians else None)


def cpu_times():
    """Return the machine's ``(busy, total)`` CPU jiffies from ``/proc/stat``'s ``cpu`` line."""
    with open("/proc/stat", encoding="ascii") as fp:
        return busy_total(fp.readline())


def busy_total(cpu_line):
    """Return ``(busy, total)`` jiffies of a ``/proc/stat`` ``cpu`` line (pure): idle and
    iowait are not busy; guest time is already in user and nice."""
    fields = [int(x) for x in cpu_line.split()[1:]]
    total = sum(fields[:8])                      # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total


def busy_cores(before, after, cpus):
    """Return the cores in use between two :func:`cpu_times` readings (pure)."""
    d_busy, d_total = after[0] - before[0], after[1] - before[1]
    return cpus * d_busy / d_total if d_total > 0 else 0.0


def others_busy_cores(seconds=1.0):
    """Return the cores the machine uses over ``seconds`` while the bench waits."""
    before = cpu_times()
    time.sleep(seconds)
    return busy_cores(before, cpu_times(), os.cpu_count() or 1)


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/live_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=DEFAULT_SPEC,
                        help="the spec (default experiments/specs/quickstart.yaml)")
    parser.add_argument("--rounds", "--pairs", dest="rounds", type=int, default=3,
                        help="rounds of one off and one live batch, the first of each round "
                             "alternating (default 3); --pairs is the old name")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="each run's measurement, seconds (duration_s; default 10)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="passed to lblab run (e.g. warmup_s=1)")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="repetitions per batch (default 1)")
    parser.add_argument("--busy-cores", type=float, default=0.25,
                        help="flag a batch that starts while the machine uses more than this "
                             "many cores (default 0.25)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (it runs lblab run); run it under the emulation lock")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected 1 or more")
    if not args.duration > 0:
        parser.error(f"--duration {args.duration}: expected seconds > 0")
    if args.repetitions < 1:
        parser.error(f"--repetitions {args.repetitions}: expected 1 or more")
    overrides = [f"repetitions={args.repetitions}", f"duration_s={args.duration:g}"] + \
        args.overrides
    order = round_order(args.rounds)
    batches = []
    busy = []
    with tempfile.TemporaryDirectory(prefix="lblab-live-cost-") as tmp:
        for i, (rnd, mode) in enumerate(order):
            load = others_busy_cores()
            flag = "  BUSY" if load > args.busy_cores else ""
            if flag:
                busy.append(i + 1)
            print(f"batch {i + 1}/{len(order)} (round {rnd + 1}): {mode}; the machine used "
                  f"{load:.2f} cores before it{flag} ...", flush=True)
            b = run_batch(args.spec, os.path.join(tmp, f"b{i}-{mode}"), overrides,
                          mode == "live")
            b.update(mode=mode, round=rnd)
            batches.append(b)
            extra = ""
            if mode == "live":
                extra = (f", server {_fmt(b['server_cpu_percent'], '.2f')} % CPU "
                         f"({b['server_cpu_s']:.3f} s over {b['server_span_s']:.1f} s), "
                         f"{b['frames']} frames streamed")
            print(f"  {b['wall_s']:.1f} s{extra}", flush=True)
            print("  req/s: " + ", ".join(f"{c} {v:.1f}" for c, v in b["throughput"].items()),
                  flush=True)
            for f in b["failed"]:
                print(f"  failed run (left out): {f}", flush=True)

    per_config, overall = summarize(batches)
    print(f"\nspec {os.path.relpath(args.spec, REPO)}, {args.rounds} round(s) of off+live "
          f"(alternating first), {args.repetitions} repetition(s) per batch, duration_s "
          f"{args.duration:g}; medians over the rounds")
    print(f"{'configuration':<24}{'off req/s':>11}{'live req/s':>11}{'live/off':>10}"
          f"   each round's live/off")
    for config, v in per_config.items():
        print(f"{config:<24}{_fmt(v['off']):>11}{_fmt(v['live']):>11}"
              f"{_fmt(v['ratio'], '.3f'):>10}   "
              + " ".join(f"{r:.3f}" for r in v["ratios"]))
    print(f"{'overall (geometric mean)':<24}{'':>11}{'':>11}{_fmt(overall, '.3f'):>10}"
          f"   budget >= {THROUGHPUT_MIN}")
    server = [b["server_cpu_percent"] for b in batches
              if b["mode"] == "live" and b["server_cpu_percent"] is not None]
    tel_off = [c for b in batches if b["mode"] == "off" for c in b["telemetry_cpu_percent"]]
    tel_live = [c for b in batches if b["mode"] == "live" for c in b["telemetry_cpu_percent"]]
    print(f"\n{'CPU, % of one core':<34}{'median':>8}{'max':>8}   budget <= {CPU_MAX_PERCENT} %")
    for name, vals in (("live server (its thread)", server),
                       ("telemetry, off (per run)", tel_off),
                       ("telemetry + live frames (per run)", tel_live)):
        if vals:
            print(f"{name:<34}{statistics.median(vals):>8.2f}{max(vals):>8.2f}")
    if busy:
        print(f"\nbatches {', '.join(map(str, busy))} started while the machine used more than "
              f"{args.busy_cores:g} cores: something else ran; measure again on a quiet "
              f"machine")
    ok = (overall is not None and overall >= THROUGHPUT_MIN and bool(server)
          and max(server) <= CPU_MAX_PERCENT
          and all(c <= CPU_MAX_PERCENT for c in tel_off + tel_live))
    print("\nwithin budget" if ok else "\nOVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
