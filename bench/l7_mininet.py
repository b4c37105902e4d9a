"""L7 benchmark in Mininet: builtin proxy vs HAProxy vs nginx, side by side in one run (root).

Builds ``lb_lab`` (h1-h4 clients, h5 the lb host, backends from h6) on one Open vSwitch switch,
starts ``lblab backend`` on the backends (tiny responses) and, on h5, the builtin proxy
(1 worker), HAProxy (``nbthread 1``) and nginx (1 worker, upstream keep-alive), each on its own
port, plain and with TLS on the listener (the lab certificate, ``make setup``). Then runs
``wrk -t1 -c32 -d5s --latency`` on h1 against every target, for keep-alive and
connection-per-request (``-H "Connection: close"``), alternating the targets in every round
(rotated order) so drifting machine load hits all alike. Per target and case it prints the
medians over the rounds of req/s, p50/p99 latency and CPU seconds per 10,000 requests of the
target's process tree (psutil: the server process and its children), and the ratios
builtin/HAProxy and builtin/nginx. Engines' access logs are off. Nothing is asserted.

Usage: .venv/bin/python bench/l7_mininet.py [--rounds 2] [--duration 5] [--connections 32]
           [--backends 1] [--response-size 100] [--json FILE]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import foreign_cpu  # noqa: E402 - bench/ is this script's directory
from l7_loopback import parse_wrk  # noqa: E402

CLIENT = "h1"
BACKEND_PORT = 80
ENGINES = ("builtin", "haproxy", "nginx")
PORTS = {("builtin", False): 8001, ("haproxy", False): 8002, ("nginx", False): 8003,
         ("builtin", True): 8441, ("haproxy", True): 8442, ("nginx", True): 8443}
CASES = (("keep-alive", False, False), ("close", True, False),
         ("keep-alive TLS", False, True), ("close TLS", True, True))
READY_SEC = 20.0
WRK_SLACK_SEC = 30.0


def process_tree_cpu(pid):
    """Return user+system CPU seconds of a process and its live descendants."""
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def curl_status(host, url):
    out = host.cmd(f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 1 '{url}'")
    try:
        return int(out.strip()[-3:])
    except ValueError:
        return 0


def wait_ready(host, url, what, proc=None):
    deadline = time.monotonic() + READY_SEC
    while curl_status(host, url) != 200:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer {url} within {READY_SEC:g} s")
        time.sleep(0.1)


def run_wrk(host, url, duration, connections, close, pid):
    """One wrk run on ``host``; return a sample dict (req/s, p50/p99 ms, errors, CPU s/10k)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if close:
        args += ["-H", "Connection: close"]
    before = process_tree_cpu(pid)
    proc = host.popen(args + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=duration + WRK_SLACK_SEC)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SystemExit(f"wrk against {url} did not finish") from None
    cpu = process_tree_cpu(pid) - before
    text = out.decode(errors="replace")
    try:
        rps, p50, p99, errors = parse_wrk(text)
        requests = int(re.search(r"(\d+) requests in", text).group(1))
    except AttributeError:
        raise SystemExit(f"wrk against {url} printed no result: {text.strip()}") from None
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors, "requests": requests,
            "cpu_s_per_10k": cpu / requests * 10_000 if requests else float("nan")}


class Bench:
    """The lab and the servers on it; ``targets[(case, name)] = (url, pid)``."""

    def __init__(self, lab, workdir, args):
        from topologies import graphs
        self.lab, self.workdir, self.args = lab, workdir, args
        self.lb = graphs.hosts(lab.graph, "lb")[0]
        self.lb_ip = lab.graph.nodes[self.lb]["ip"]
        self.backend_hosts = graphs.hosts(lab.graph, "backend")
        self.client = lab.host(CLIENT)
        self.engines = []
        self.procs = []
        self.servers = {}   # (engine, tls) -> pid; ("direct", False) -> backend pid

    def _log(self, name):
        return open(os.path.join(self.workdir, name), "ab")

    def start_backends(self):
        for i, host in enumerate(self.backend_hosts):
            log = self._log(f"backend-b{i + 1}.log")
            proc = self.lab.popen(host, [sys.executable, "-m", "lb_apps.backend.server",
                                         "--name", f"b{i + 1}", "--port", str(BACKEND_PORT),
                                         "--response-size", str(self.args.response_size)],
                                  stdout=log, stderr=subprocess.STDOUT)
            log.close()
            self.procs.append(proc)
            ip = self.lab.graph.nodes[host]["ip"]
            wait_ready(self.client, f"http://{ip}:{BACKEND_PORT}/health", f"backend on {host}",
                       proc)
            if i == 0:
                self.servers[("direct", False)] = proc.pid
                self.direct_url = f"http://{ip}:{BACKEND_PORT}/"

    def l7_config(self, port, tls):
        data = {"listen": {"host": "0.0.0.0", "port": port}, "workers": 1,
                "algorithm": "round_robin",
                "backends": [{"name": f"b{i + 1}",
                              "address": self.lab.graph.nodes[h]["ip"], "port": BACKEND_PORT}
                             for i, h in enumerate(self.backend_hosts)]}
        if tls:
            data["tls"] = {"cert": str(REPO / ".lab/tls/lab.crt"),
                           "key": str(REPO / ".lab/tls/lab.key")}
        return data

    def start_balancers(self):
        from lb_apps.engines.proc import start_engine
        from lb_apps.l7config import parse_l7_config
        for (engine, tls), port in PORTS.items():
            data = self.l7_config(port, tls)
            tag = f"{engine}{'-tls' if tls else ''}"
            proc = None
            if engine == "builtin":
                path = os.path.join(self.workdir, f"{tag}.json")
                with open(path, "w", encoding="utf-8") as fp:
                    json.dump(data, fp)
                log = self._log(f"{tag}.log")
                proc = self.lab.popen(self.lb, [sys.executable, "-m", "lb_apps.proxy.server",
                                                "--config", path],
                                      stdout=log, stderr=subprocess.STDOUT)
                log.close()
                self.procs.append(proc)
                pid = proc.pid
            else:
                handle = start_engine(engine, parse_l7_config(data, tag),
                                      os.path.join(self.workdir, tag),
                                      popen=self.lab.host(self.lb).popen, access_log=False)
                self.engines.append(handle)
                self.lab.record.add_process(handle.process.pid, f"{self.lb}:{engine}")
                self.lab.record.save()
                pid = handle.process.pid
            wait_ready(self.client, f"{'https' if tls else 'http'}://{self.lb_ip}:{port}/",
                       tag, proc)
            self.servers[(engine, tls)] = pid

    def url(self, name, tls):
        if name == "direct":
            return self.direct_url
        return f"{'https' if tls else 'http'}://{self.lb_ip}:{PORTS[(name, tls)]}/"

    def stop(self):
        from lb_apps.engines.proc import stop_engine
        for handle in self.engines:
            try:
                stop_engine(handle)
            except Exception as exc:  # noqa: BLE001 - go on stopping the rest
                print(f"stopping {handle.engine}: {exc}", file=sys.stderr)
        for proc in reversed(self.procs):
            self.lab.stop_process(proc, grace_sec=5.0)


def plan(tls_too):
    """Return ``[(case, close, tls, [target names])]`` in the order they are measured."""
    out = []
    for case, close, tls in CASES:
        if tls and not tls_too:
            continue
        out.append((case, close, tls, (() if tls else ("direct",)) + ENGINES))
    return out


def goals(med, cases):
    """Return the issue-16 L7 rows this run measured: ``(text, value, op, target)``."""
    out = []
    if "keep-alive" in cases:
        def ka(engine, key):
            return med("keep-alive", engine, key)
        out += [("builtin/HAProxy req/s, keep-alive", ka("builtin", "rps") / ka("haproxy", "rps"),
                 ">=", 1.0),
                ("builtin/HAProxy p99, keep-alive", ka("builtin", "p99_ms") /
                 ka("haproxy", "p99_ms"), "<=", 1.0),
                ("builtin/HAProxy CPU per request, keep-alive", ka("builtin", "cpu_s_per_10k") /
                 ka("haproxy", "cpu_s_per_10k"), "<=", 1.0)]
    if "close" in cases:
        out.append(("builtin/nginx req/s, a connection per request",
                    med("close", "builtin", "rps") / med("close", "nginx", "rps"), ">=", 1.0))
    if "keep-alive TLS" in cases:
        out.append(("builtin/HAProxy req/s, keep-alive TLS", med("keep-alive TLS", "builtin", "rps")
                    / med("keep-alive TLS", "haproxy", "rps"), ">=", 1.0))
    return out


def fmt_row(case, name, s):
    return (f"| {case} | {name} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['cpu_s_per_10k']:.3f} | {s['errors']} |")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l7_mininet.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backends", type=int, default=1)
    parser.add_argument("--response-size", type=int, default=100)
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS cases")
    parser.add_argument("--json", metavar="FILE", help="also write the raw samples as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (configs, logs) and print its path")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/l7_mininet.py builds a Mininet network: run it as root")
    from topologies import graphs
    from topologies.network import LabNetwork

    load_start = os.getloadavg()
    sampler, t0 = foreign_cpu.watch(), time.monotonic()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    workdir = tempfile.mkdtemp(prefix="lblab-l7mn-")
    samples = {}
    steps = plan(not args.no_tls)
    print(f"waiting for the machine's lab lock, then building lb_lab(clients=4, "
          f"backends={args.backends}) ...", flush=True)
    with LabNetwork(graphs.lb_lab(clients=4, backends=args.backends)) as lab:
        bench = Bench(lab, workdir, args)
        # many short connections from one client: widen its port range, reuse TIME_WAIT ports
        bench.client.cmd("sysctl -qw net.ipv4.ip_local_port_range='1024 65535' "
                         "net.ipv4.tcp_tw_reuse=1")
        try:
            bench.start_backends()
            bench.start_balancers()
            print(f"datapath {lab.datapath}; load average at start "
                  f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)
            for case, close, tls, names in steps:   # warm up pools and caches
                for name in names:
                    run_wrk(bench.client, bench.url(name, tls), 1, args.connections, close,
                            bench.servers[(name, tls if name != "direct" else False)])
            for r in range(args.rounds):
                for case, close, tls, names in steps:
                    k = r % len(names)
                    for name in names[k:] + names[:k]:
                        pid = bench.servers[(name, tls if name != "direct" else False)]
                        s = run_wrk(bench.client, bench.url(name, tls), args.duration,
                                    args.connections, close, pid)
                        samples.setdefault((case, name), []).append(s)
                        print(f"round {r + 1} {case:15} {name:8} {s['rps']:9,.0f} req/s  "
                              f"p50 {s['p50_ms']:6.2f} ms  p99 {s['p99_ms']:7.2f} ms  "
                              f"cpu {s['cpu_s_per_10k']:.3f} s/10k  errors {s['errors']}",
                              flush=True)
        finally:
            bench.stop()
            if args.keep:
                print(f"work directory kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    foreign = sampler.stop(time.monotonic() - t0)

    def med(case, name, key):
        return statistics.median(s[key] for s in samples[(case, name)])

    print(f"\n{started}: wrk -t1 -c{args.connections} -d{args.duration}s --latency on "
          f"{CLIENT}, lb_lab with {args.backends} backend(s) (lblab backend, "
          f"{args.response_size}-byte bodies), medians of {args.rounds} rounds; "
          f"cpu = CPU seconds per 10,000 requests of the server's process tree; "
          f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end "
          f"({os.cpu_count()} CPUs)\n")
    print("| case | target | req/s | p50 ms | p99 ms | CPU s / 10k req | errors |")
    print("|---|---|---|---|---|---|---|")
    for case, _close, _tls, names in steps:
        for name in names:
            m = {k: med(case, name, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_s_per_10k")}
            m["errors"] = sum(s["errors"] for s in samples[(case, name)])
            print(fmt_row(case, name, m))
    print("\n| case | builtin/HAProxy req/s | builtin/nginx req/s | "
          "HAProxy/builtin CPU per req | nginx/builtin CPU per req |")
    print("|---|---|---|---|---|")
    for case, _close, _tls, _names in steps:
        b, h, n = (med(case, e, "rps") for e in ENGINES)
        bc, hc, nc = (med(case, e, "cpu_s_per_10k") for e in ENGINES)
        print(f"| {case} | {b / h:.2f} | {b / n:.2f} | {hc / bc:.2f} | {nc / bc:.2f} |")
    print()
    for text, value, op, target in goals(med, [step[0] for step in steps]):
        verdict = "met" if (value >= target if op == ">=" else value <= target) else "NOT met"
        print(f"issue 16 goal, {text} {op} {target}: {value:.2f} ({verdict})")
    print(f"other work's CPU while this ran: {100 * foreign['foreign_cores']:.0f} % of a core")
    warning = foreign_cpu.warning(foreign)
    if warning:
        print(warning)
    if args.json:
        with open(args.json, "x", encoding="utf-8") as fp:
            json.dump({"format_version": "1.0", "args": vars(args), "started": started,
                       "load_start": load_start, "load_end": load_end,
                       "foreign_cores": foreign["foreign_cores"],
                       "samples": {f"{c}|{n}": v for (c, n), v in samples.items()}},
                      fp, sort_keys=True, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
