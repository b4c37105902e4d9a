"""Where the builtin L7 proxy's CPU goes under load: py-spy (Python functions) and perf (shared
objects and symbols) sampled while wrk drives it on loopback.

Starts one ``lblab backend`` and lblab's proxy (from this checkout, or from ``--tree DIR``,
another checkout, to profile the code before a change), warms it up, then runs
``wrk -t1 -c32 -d<duration>s`` (``--close``: a connection per request) twice: once under
``py-spy record`` and once under ``perf record``. Prints the process's CPU time per request
(psutil, the run without a profiler attached), and the top entries of each profile as shares
of the samples and as µs per request (share × CPU per request). py-spy without ``--native``
charges the time spent inside a C call (a socket write, httptools) to the Python function that
made it. No root needed for py-spy on a child process; perf needs ``perf_event_paranoid`` ≤ 1
or root, and is skipped if it is missing or refused.

Usage: .venv/bin/python bench/l7_profile.py [--duration 5] [--connections 32] [--close]
           [--tree DIR] [--top 15]
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from l7_loopback import (HOST, PY, REPO, cpu_seconds, stop_all,  # noqa: E402 - bench/ on path
                         wait_port)

sys.path.insert(0, str(REPO))
from lblab_core.netutil import free_port  # noqa: E402


def wrk(port, duration, connections, close):
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s"]
    if close:
        args += ["-H", "Connection: close"]
    out = subprocess.run(args + [f"http://{HOST}:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        if " requests in " in line:
            return int(line.split()[0])
    raise SystemExit(f"wrk printed no request count: {out}")


def pyspy_top(raw_path, top):
    """Return [(share, function)] by self samples from py-spy's raw (collapsed) output."""
    own = collections.Counter()
    total = 0
    with open(raw_path, encoding="utf-8") as fp:
        for line in fp:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            frame = stack.split(";")[-1]
            # "function (file.py:line)": keep function and file, drop the line
            name, _, where = frame.partition(" (")
            where = where.rsplit(":", 1)[0].rsplit("/", 1)[-1]
            own[f"{name} ({where})"] += int(count)
            total += int(count)
    return [(n / total, f) for f, n in own.most_common(top)], total


def perf_top(data_path, sort, top):
    """Return [(share, key)] from ``perf report --sort <sort>``."""
    out = subprocess.run(["perf", "report", "-i", data_path, "--sort", sort, "--stdio",
                          "--percent-limit", "0.5"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line.split()[0]:
            continue
        pct, _, rest = line.partition("%")
        rows.append((float(pct) / 100, " ".join(rest.split())))
    return rows[:top]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l7_profile.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--close", action="store_true", help="a connection per request")
    parser.add_argument("--tree", metavar="DIR", help="profile the proxy of this lblab checkout")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    for tool in ("wrk", pyspy):
        if not shutil.which(tool) and not os.path.exists(tool):
            raise SystemExit(f"{tool} is not installed")
    tree = Path(args.tree).resolve() if args.tree else REPO
    if not (tree / "lb_apps" / "proxy" / "server.py").is_file():
        raise SystemExit(f"--tree {tree}: not an lblab checkout (no lb_apps/proxy/server.py)")
    tmp = tempfile.mkdtemp(prefix="lblab-l7prof-")
    procs = []
    try:
        bport, pport = free_port(), free_port()
        backend = subprocess.Popen([PY, "-m", "lb_apps.backend.server", "--name", "b1",
                                    "--host", HOST, "--port", str(bport)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(backend)
        wait_port(bport, backend, "backend")
        cfg = os.path.join(tmp, "l7.json")
        with open(cfg, "w") as fp:
            json.dump({"listen": {"host": HOST, "port": pport},
                       "backends": [{"name": "b1", "address": HOST, "port": bport}]}, fp)
        proxy = subprocess.Popen([PY, "-m", "lb_apps.proxy.server", "--config", cfg], cwd=tree,
                                 env={**os.environ, "PYTHONPATH": str(tree)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proxy)
        wait_port(pport, proxy, "lblab proxy")
        wrk(pport, 1, args.connections, args.close)  # warm up
        before = cpu_seconds(proxy.pid)
        n = wrk(pport, args.duration, args.connections, args.close)
        us = (cpu_seconds(proxy.pid) - before) / n * 1e6
        case = "a connection per request" if args.close else "keep-alive"
        print(f"proxy of {tree}, {case}, wrk -t1 -c{args.connections} -d{args.duration}s: "
              f"{n / args.duration:,.0f} req/s, {us:.1f} us CPU per request (no profiler)")

        raw = os.path.join(tmp, "pyspy.txt")
        spy = subprocess.Popen([pyspy, "record", "-r", "250", "-d", str(args.duration + 1),
                                "-p", str(proxy.pid), "-f", "raw", "-o", raw, "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wrk(pport, args.duration, args.connections, args.close)
        spy.wait(args.duration + 30)
        if os.path.exists(raw):
            rows, total = pyspy_top(raw, args.top)
            print(f"\npy-spy (Python functions by own samples; C calls charged to their "
                  f"caller), {total} samples:")
            for share, name in rows:
                print(f"  {share * 100:5.1f} %  {share * us:5.1f} us/req  {name}")
        else:
            print("\npy-spy recorded nothing (ptrace refused?)")

        if shutil.which("perf"):
            data = os.path.join(tmp, "perf.data")
            rec = subprocess.Popen(["perf", "record", "-F", "999", "-p", str(proxy.pid),
                                    "-o", data, "--", "sleep", str(args.duration)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wrk(pport, args.duration, args.connections, args.close)
            rec.wait(args.duration + 30)
            if rec.returncode == 0 and os.path.exists(data):
                for sort, what in (("dso", "shared object"), ("sym", "symbol")):
                    print(f"\nperf, by {what}:")
                    for share, name in perf_top(data, sort, args.top):
                        print(f"  {share * 100:5.1f} %  {share * us:5.1f} us/req  {name}")
            else:
                print(f"\nperf record failed (exit {rec.returncode})")
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
