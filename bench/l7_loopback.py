"""Loopback benchmark of lblab's L7 proxy against HAProxy, side by side in one run.

Starts one HTTP backend (``lblab backend``), lblab's proxy and HAProxy (``nbthread 1``,
``maxconn`` derived from ``ulimit -n``), both balancing to that backend, then runs
``wrk -t1 -c32 -d5s`` against (a) the backend directly, (b) the builtin proxy, (c) HAProxy,
interleaved over ``--rounds`` rounds so machine noise hits all three alike. Prints req/s,
latency and the ratios builtin/HAProxy and each/direct. No root needed; loopback only.

With ``--compare DIR`` a second builtin proxy runs from another checkout of lblab (for
example ``git archive <commit> | tar -x -C DIR``), as target ``base``, so a change to the proxy
is measured side by side with the code before it. ``--close`` sends ``Connection: close``
(a connection per request).

Usage: .venv/bin/python bench/l7_loopback.py [--rounds 3] [--duration 5] [--connections 32]
           [--close] [--compare DIR] [--json FILE]
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import foreign_cpu  # bench/ is this script's directory
from lblab_core.netutil import free_port

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
HOST = "127.0.0.1"
FD_RESERVE = 100  # descriptors HAProxy keeps for itself besides two per proxied connection
START_TIMEOUT_SEC = 10.0


def wait_port(port, proc, name):
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not listen on {port} within {START_TIMEOUT_SEC} s")


def haproxy_config(port, backend_port):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    maxconn = max(64, (soft - FD_RESERVE) // 2)
    return f"""global
    nbthread 1
    maxconn {maxconn}
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend lblab_bench
    bind {HOST}:{port}
    default_backend pool
backend pool
    balance roundrobin
    server b1 {HOST}:{backend_port}
"""


def parse_wrk(text):
    """Return (requests/s, p50 ms, p99 ms, non-2xx+errors) from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def pct(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", text)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    return rps, pct("50"), pct("99"), errors


def cpu_seconds(pid):
    """Return user+system CPU seconds used so far by a process (None if unknown)."""
    if pid is None:
        return None
    import psutil
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def run_wrk(port, duration, connections, pid=None, close=False):
    """Run wrk once; return (req/s, p50 ms, p99 ms, errors, CPU microseconds per request of
    ``pid`` or NaN). CPU per request is robust to other load on the machine; req/s is not."""
    before = cpu_seconds(pid)
    extra = ["-H", "Connection: close"] if close else []
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                          *extra, f"http://{HOST}:{port}/"], capture_output=True, text=True,
                         check=True)
    rps, p50, p99, errors = parse_wrk(out.stdout)
    cpu_us = float("nan")
    if before is not None and rps > 0:
        cpu_us = (cpu_seconds(pid) - before) / (rps * duration) * 1e6
    return rps, p50, p99, errors, cpu_us


def stop_all(procs):
    """SIGTERM the processes in reverse order of start, then wait for each (SIGKILL after 10 s)."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l7_loopback.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--close", action="store_true",
                        help="a connection per request (wrk -H 'Connection: close')")
    parser.add_argument("--compare", metavar="DIR",
                        help="also run the builtin proxy of the lblab checkout in DIR (target base)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples as JSON")
    args = parser.parse_args(argv)
    if args.compare and not (Path(args.compare) / "lb_apps" / "proxy" / "server.py").is_file():
        raise SystemExit(f"--compare {args.compare}: not an lblab checkout (no "
                         f"lb_apps/proxy/server.py)")
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make setup installs it)")
    procs = []
    tmp = tempfile.mkdtemp(prefix="lblab-l7bench-")
    try:
        bport, pport, hport = free_port(), free_port(), free_port()
        backend = subprocess.Popen([PY, "-m", "lb_apps.backend.server", "--name", "b1",
                                    "--host", HOST, "--port", str(bport)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(backend)
        wait_port(bport, backend, "backend")
        cfg_path = os.path.join(tmp, "l7.json")
        with open(cfg_path, "w") as fp:
            json.dump({"listen": {"host": HOST, "port": pport},
                       "backends": [{"name": "b1", "address": HOST, "port": bport}]}, fp)
        builtin = subprocess.Popen([PY, "-m", "lb_apps.proxy.server", "--config", cfg_path], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(builtin)
        base = None
        if args.compare:
            bcfg = os.path.join(tmp, "l7-base.json")
            base_port = free_port()
            with open(bcfg, "w") as fp:
                json.dump({"listen": {"host": HOST, "port": base_port},
                           "backends": [{"name": "b1", "address": HOST, "port": bport}]}, fp)
            base = subprocess.Popen([PY, "-m", "lb_apps.proxy.server", "--config", bcfg],
                                    cwd=args.compare,
                                    env={**os.environ, "PYTHONPATH": args.compare},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(base)
        hcfg = os.path.join(tmp, "haproxy.cfg")
        with open(hcfg, "w") as fp:
            fp.write(haproxy_config(hport, bport))
        haproxy = subprocess.Popen(["haproxy", "-f", hcfg], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        procs.append(haproxy)
        wait_port(pport, builtin, "lblab proxy")
        wait_port(hport, haproxy, "haproxy")
        targets = {"direct": (bport, backend.pid), "builtin": (pport, builtin.pid),
                   "haproxy": (hport, haproxy.pid)}
        if base is not None:
            wait_port(base_port, base, "lblab proxy of --compare")
            targets["base"] = (base_port, base.pid)
        for port, _ in targets.values():  # warm up connections and pools
            run_wrk(port, 1, args.connections, close=args.close)
        samples = {name: [] for name in targets}
        sampler, t0 = foreign_cpu.watch(), time.monotonic()
        for r in range(args.rounds):
            for name, (port, pid) in targets.items():
                samples[name].append(run_wrk(port, args.duration, args.connections, pid,
                                             args.close))
                rps, p50, p99, errors, cpu = samples[name][-1]
                print(f"round {r + 1} {name:8} {rps:10.0f} req/s  p50 {p50:6.2f} ms  "
                      f"p99 {p99:6.2f} ms  errors {errors}  cpu {cpu:5.1f} us/req", flush=True)

        def med(name, i):
            return statistics.median(s[i] for s in samples[name])
        print(f"\nwrk -t1 -c{args.connections} -d{args.duration}s"
              f"{' -H Connection:close' if args.close else ''}, {args.rounds} interleaved "
              f"rounds, medians (cpu = the server process's CPU time per request):")
        for name in samples:
            print(f"  {name:8} {med(name, 0):10.0f} req/s  p99 {med(name, 2):6.2f} ms  "
                  f"cpu {med(name, 4):5.1f} us/req")
        print(f"  ratio builtin/haproxy = {med('builtin', 0) / med('haproxy', 0):.2f} (req/s), "
              f"{med('haproxy', 4) / med('builtin', 4):.2f} (inverse CPU per request)")
        if "base" in samples:
            print(f"  ratio builtin/base    = {med('builtin', 0) / med('base', 0):.2f} (req/s), "
                  f"{med('builtin', 4) / med('base', 4):.2f} (CPU per request)")
        print(f"  ratio builtin/direct  = {med('builtin', 0) / med('direct', 0):.2f}")
        print(f"  ratio haproxy/direct  = {med('haproxy', 0) / med('direct', 0):.2f}")
        warning = foreign_cpu.warning(sampler.stop(time.monotonic() - t0))
        if warning:
            print(warning + " Rerun on an idle machine for req/s ratios; the CPU-per-request "
                  "ratio is the steadier figure.")
        if args.json:
            with open(args.json, "x") as fp:
                json.dump({"format_version": "1.0", "args": vars(args), "samples": samples},
                          fp, sort_keys=True)
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
