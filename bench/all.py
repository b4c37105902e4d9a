"""Run every benchmark of bench/ and print one table of the issue-16 figures (``make bench``).

Each bench runs as its own process, with its output kept in the work directory. Those that build
a lab run one after another under the machine's emulation lock (``/tmp/lblab-emulation.lock``,
taken once for all of them, as ``flock`` takes it; so do not wrap this script itself in it).
The figures of the table come from the benches' JSON files (``bench/l7_mininet.py --json``,
``bench/l4_connrate.py --json``) and from ``bench/topo_build.py``'s last line;
each is a ratio measured side by side within its bench's run. Then one table: the
figure, this run's value, the goal, met or not, and whether the bench ran on a loaded machine.
"Loaded" means other work took CPU during the bench: a sampler reads /proc once a second and
adds up the CPU of every process that is not the bench's own (its process tree, anything in a
lab host's network namespace, Open vSwitch's daemons, kernel threads); above 10 % of one core on
average, the bench's figures are marked noisy. (The load average cannot say this: a lab bench
drives both cores itself, so its own load looked like someone else's.) A second table
gives every other bench's exit status and last line. Everything also goes to a JSON file.

    .venv/bin/python bench/all.py [--quick] [--json FILE] [--only NAME,...] [--workdir DIR]

``--quick`` is a smoke check: one short round of each, the slow live-view bench skipped; its
figures are not the ones to report. Needs root for the lab benches.
"""
import argparse
import fcntl
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LOCK = "/tmp/lblab-emulation.lock"
sys.path.insert(0, HERE)
from foreign_cpu import FOREIGN_LIMIT, ForeignSampler  # noqa: E402 - after the path fix

# name -> (builds a lab: runs under the emulation lock, full args, quick args or None =
#          skipped in --quick, whether it takes --json FILE)
BENCHES = {
    "l7_mininet": (True, ["--rounds", "3"], ["--rounds", "1", "--duration", "2"], True),
    "l4_connrate": (True, ["--rounds", "3"],
                    ["--rounds", "1", "--seconds", "2", "--latency-seconds", "3",
                     "--settle", "2"], True),
    "topo_build": (True, ["--rounds", "3"], ["--rounds", "1"], False),
    "l4_throughput": (True, ["--rounds", "2"], ["--rounds", "1", "--seconds", "2"], False),
    "l4_cpu": (True, ["--rounds", "2"], ["--rounds", "1", "--seconds", "2"], False),
    "live_cost": (True, ["--pairs", "1"], None, False),
    "l7_loopback": (False, ["--rounds", "3"], ["--rounds", "1", "--duration", "2"], False),
    "malformed_engines": (False, [], [], False),
    "fuzz_proxy": (False, ["--requests", "20000"], ["--requests", "2000"], False),
    "report_data": (False, [], ["--runs", "1", "--records", "10000", "--rounds", "1"], False),
}

# bench/ files that are tools rather than benches: a helper module, and profilers that explain a
# figure (their output is a profile, not a ratio of the table)
TOOLS = ("l4_lab", "foreign_cpu", "l4_sequence", "l7_profile", "l7_hotloop", "l7_cython")

L4_PATHS = (("l4", "`l4` round robin (conntrack path, one packet-in per connection)"),
            ("l4_lc", "`l4` least connections (a flow per connection; `in_flight: flows`)"),
            ("l4_lc_counters", "`l4` least connections, `in_flight: counters` (no flow)"),
            ("l4_lc_group", "`l4` least connections, `in_flight: group` (no packet-in)"),
            ("l2", "`l2`"), ("group_ct", "`group` with `conntrack: true`"),
            ("l3", "`l3`"), ("group", "`group`"), ("proactive", "`proactive`"))

# the least-connections services of l4_connrate's latency part: (its name, in_flight)
LATENCY_PATHS = (("lat_lc", "flows"), ("lat_lc_counters", "counters"), ("lat_lc_group", "group"))


# -- the pure part: figures from the benches' outputs ------------------------------------------

def _median(samples, key):
    return statistics.median(s[key] for s in samples)


def l7_figures(data):
    """Return {row key: value} from ``bench/l7_mininet.py --json`` output."""
    samples = data["samples"]

    def med(case, engine, key):
        got = samples.get(f"{case}|{engine}")
        return _median(got, key) if got else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    return {
        "l7_ka_rps": ratio(med("keep-alive", "builtin", "rps"),
                           med("keep-alive", "haproxy", "rps")),
        "l7_ka_p99": ratio(med("keep-alive", "builtin", "p99_ms"),
                           med("keep-alive", "haproxy", "p99_ms")),
        "l7_ka_cpu": ratio(med("keep-alive", "builtin", "cpu_s_per_10k"),
                           med("keep-alive", "haproxy", "cpu_s_per_10k")),
        "l7_close_nginx": ratio(med("close", "builtin", "rps"), med("close", "nginx", "rps")),
        "l7_tls_rps": ratio(med("keep-alive TLS", "builtin", "rps"),
                            med("keep-alive TLS", "haproxy", "rps")),
    }


def l4_figures(data):
    """Return {row key: value} from ``bench/l4_connrate.py --json`` output."""
    out = {f"l4_{path}": data.get("ratio_to_direct", {}).get(path) for path, _ in L4_PATHS}
    for rate, p99 in data.get("p99_ms", {}).items():
        rr = p99.get("lat_rr")
        for name, key in LATENCY_PATHS:
            if rr and p99.get(name) is not None:
                out[f"p99_{key}_{rate}"] = p99[name] / rr
    return out


def topo_figures(stdout):
    """Return {row key: value} from ``bench/topo_build.py``'s output (its ratio line)."""
    for line in reversed(stdout.splitlines()):
        if "ratio lblab/mn" in line:
            return {"topo": float(line.split("ratio lblab/mn", 1)[1].split()[0])}
    return {"topo": None}


def rows():
    """Return the table's rows: (key, figure, bench, goal as (op, value))."""
    out = [
        ("l7_ka_rps", "L7 builtin ÷ HAProxy, keep-alive req/s (1 worker or thread each)",
         "l7_mininet", (">=", 1.0)),
        ("l7_ka_p99", "L7 builtin p99 ÷ HAProxy p99, keep-alive", "l7_mininet", ("<=", 1.0)),
        ("l7_ka_cpu", "L7 builtin CPU per request ÷ HAProxy's", "l7_mininet", ("<=", 1.0)),
        ("l7_close_nginx", "L7 builtin ÷ nginx, a connection per request", "l7_mininet",
         (">=", 1.0)),
        ("l7_tls_rps", "L7 builtin ÷ HAProxy, keep-alive with TLS", "l7_mininet", (">=", 1.0)),
    ]
    out += [(f"l4_{path}", f"L4 new connections/s ÷ direct: {text}", "l4_connrate",
             (">=", 0.9)) for path, text in L4_PATHS]
    for rate in ("150", "1000"):
        for _name, key in LATENCY_PATHS:
            out.append((f"p99_{key}_{rate}", f"L4 least connections (`in_flight: {key}`) p99 ÷ round "
                        f"robin p99, open loop {int(rate):,} req/s", "l4_connrate",
                        ("<=", 1.2)))
    out.append(("topo", "256-host tree build + teardown ÷ `mn`", "topo_build", ("<=", 0.5)))
    return out


def met(value, goal):
    """Return True/False, or None when there is no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    op, target = goal
    return value >= target if op == ">=" else value <= target


def assemble(figures, benches):
    """Return the table rows as dicts from the figures and the benches' run facts.

    Args:
        figures (dict): row key -> value (None: not measured).
        benches (dict): bench name -> {"status": int|None, "loaded": bool, ...}.
    """
    out = []
    for key, figure, bench, goal in rows():
        value = figures.get(key)
        facts = benches.get(bench, {})
        out.append({"key": key, "figure": figure, "value": value,
                    "goal": f"{goal[0]} {goal[1]}", "met": met(value, goal), "bench": bench,
                    "loaded": bool(facts.get("loaded")), "status": facts.get("status")})
    return out


def format_table(table, benches):
    """Return the Markdown text of the figures table and of the other benches."""
    lines = ["| figure | this run | goal | met | bench |", "|---|---|---|---|---|"]
    for r in table:
        value = "—" if r["value"] is None else f"{r['value']:.2f}"
        verdict = {True: "met", False: "**not met**", None: "not measured"}[r["met"]]
        note = r["bench"] + (" (loaded machine)" if r["loaded"] else "")
        if r["status"] not in (0, None):
            note += f" (exit {r['status']})"
        lines.append(f"| {r['figure']} | {value} | {r['goal']} | {verdict} | {note} |")
    lines += ["", "| bench | exit | seconds | load average start → end | other work's CPU "
              "| last line |", "|---|---|---|---|---|---|"]
    for name, b in benches.items():
        if b.get("status") is None:
            lines.append(f"| {name} | skipped | | | | {b.get('reason', '')} |")
            continue
        load = f"{b['load_start']:.2f} → {b['load_end']:.2f}"
        other = (f"{100 * b['foreign_cores']:.0f} % of a core" if "foreign_cores" in b else "—")
        other += " loaded" if b["loaded"] else ""
        last = b.get("last_line", "").replace("|", "/")
        lines.append(f"| {name} | {b['status']} | {b['seconds']:.0f} | {load} | {other} "
                     f"| {last} |")
    return "\n".join(lines)


# -- the shell: run the benches ----------------------------------------------------------------

def run_bench(name, args, workdir, quick):
    """Run one bench; return its facts (status, seconds, load, output files)."""
    _lab, full, short, takes_json = BENCHES[name]
    argv = short if quick else full
    if argv is None:
        return {"status": None, "reason": "skipped by --quick (slow)"}
    cmd = [sys.executable, os.path.join(HERE, f"{name}.py"), *argv]
    json_path = os.path.join(workdir, f"{name}.json")
    if takes_json:
        cmd += ["--json", json_path]
    log_path = os.path.join(workdir, f"{name}.log")
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    load_start = os.getloadavg()
    start = time.monotonic()
    sampler = ForeignSampler()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        sampler.start(proc.pid)
        proc.wait()
    seconds = time.monotonic() - start
    foreign = sampler.stop(seconds)
    load_end = os.getloadavg()
    with open(log_path, encoding="utf-8", errors="replace") as fp:
        text = fp.read()
    lines = [x for x in text.splitlines() if x.strip()]
    facts = {"status": proc.returncode, "seconds": seconds, "load_start": load_start[0],
             "load_end": load_end[0], **foreign,
             "loaded": foreign["foreign_cores"] > FOREIGN_LIMIT, "log": log_path,
             "last_line": lines[-1][:160] if lines else ""}
    if takes_json and os.path.exists(json_path):
        facts["json"] = json_path
    facts["stdout"] = text
    print(f"   exit {proc.returncode} after {seconds:.0f} s; load average "
          f"{load_start[0]:.2f} -> {load_end[0]:.2f}; other work's CPU "
          f"{100 * foreign['foreign_cores']:.0f} % of one core"
          f"{' (' + foreign['foreign_top'] + ')' if foreign['foreign_top'] else ''}", flush=True)
    return facts


def figures_of(benches):
    """Return the row values from the benches' outputs."""
    figures = {}
    for name, parse in (("l7_mininet", l7_figures), ("l4_connrate", l4_figures)):
        path = benches.get(name, {}).get("json")
        if path:
            with open(path, encoding="utf-8") as fp:
                figures.update(parse(json.load(fp)))
    if benches.get("topo_build", {}).get("stdout"):
        figures.update(topo_figures(benches["topo_build"]["stdout"]))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/all.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: one short round each, slow benches skipped")
    parser.add_argument("--json", metavar="FILE", default="bench-results.json",
                        help="where to write the table and the runs (default %(default)s)")
    parser.add_argument("--only", default="", help="comma-separated benches to run "
                        f"(default all: {','.join(BENCHES)})")
    parser.add_argument("--workdir", help="keep the benches' logs and JSON here (default: a "
                        "new temporary directory)")
    args = parser.parse_args(argv)
    only = [x for x in args.only.split(",") if x]
    unknown = [x for x in only if x not in BENCHES]
    if unknown:
        parser.error(f"--only: {','.join(unknown)}: expected some of {','.join(BENCHES)}")
    if os.geteuid() != 0:
        raise SystemExit("bench/all.py runs benches that build Mininet labs: run it as root")
    workdir = args.workdir or tempfile.mkdtemp(prefix="lblab-bench-all-")
    os.makedirs(workdir, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    benches = {}
    chosen = [n for n in BENCHES if not only or n in only]
    lab = [n for n in chosen if BENCHES[n][0]]
    if lab:
        with open(LOCK, "a", encoding="utf-8") as lock:
            print(f"waiting for the emulation lock {LOCK} ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
            print(f"lock taken at {time.strftime('%H:%M UTC', time.gmtime())}", flush=True)
            try:
                for name in lab:
                    benches[name] = run_bench(name, args, workdir, args.quick)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    for name in chosen:
        if name not in lab:
            benches[name] = run_bench(name, args, workdir, args.quick)
    table = assemble(figures_of(benches), benches)
    print(f"\nstarted {started}, ended {time.strftime('%H:%M UTC', time.gmtime())}"
          f"{' (--quick: a smoke check, not figures to report)' if args.quick else ''}"
          f"; {os.cpu_count()} CPUs; logs in {workdir}\n")
    print(format_table(table, benches))
    with open(args.json, "w", encoding="utf-8") as fp:
        json.dump({"format_version": "1.0", "started": started, "quick": args.quick,
                   "rows": table,
                   "benches": {n: {k: v for k, v in b.items() if k != "stdout"}
                               for n, b in benches.items()}}, fp, indent=1, sort_keys=True)
    print(f"\nwritten: {args.json}")
    return 0 if all(b.get("status") in (0, None) for b in benches.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
