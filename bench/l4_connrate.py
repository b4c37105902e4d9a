"""Benchmark: short HTTP connections per second through each mode's VIP vs directly to the
backends, packet-ins per second the controller handled while saturated, and the open-loop p99
of least connections vs round robin at L4 (root).

One lb_lab (h6-h9 ``lblab backend``), one controller with a service per mode and algorithm; wrk
with ``Connection: close`` and ``--threads`` threads (default 4). Two direct baselines, both on a
port no service matches (so no balancer flow touches them):

- ``direct``: h2 -> h6, one backend, the baseline the goals are set against;
- ``direct-4``: h2 -> h6..h9, wrk's threads spread over the four backends as a balanced VIP
  spreads connections. On a small machine four backend processes cost more CPU per request than
  one, and this baseline shows how much of a VIP's deficit comes from that, not from the switch.

Paths (``--modes``): ``l4`` (round robin, conntrack path), ``l4_lc`` (least connections, the
default ``in_flight: flows``: a packet-in and a counting flow per connection), ``l4_lc_counters``
(``in_flight: counters``: a packet-in per connection, no flow, ends from the switch's FIN/RST
counters), ``l4_lc_group`` (``in_flight: group``: no packet-in, a conntrack select group
re-weighted from the counters), ``l3``, ``l2``, ``group``, ``group_ct``, ``proactive``. (The
``learn`` paths measured in docs/controller.md were tried and removed: commit 8a0c87d has them.)

Then the latency part: ``lblab loadgen`` open loop (Poisson, a connection per request) from h1 at
each ``--rates`` value against round robin and least connections on each of its three paths, on their own ports whose backends serve each request in
an exponential 2 ms
(one at a time), alternating; p99 of each, the ratio to round robin's, and each run's largest
share error (|a backend's share of the requests - 1/4|, from the load generator's records).

Runs alternate baselines and VIPs so drift on the machine hits all alike. A path's ratio to
direct ("vs direct", the JSON's ``ratio_to_direct``) is the median over rounds of each VIP run's
rate over the ``direct`` run measured just before it; the ratio of the medians is printed beside
it. Between runs the bench waits until the last one left no per-connection flow behind and the
controller and ovs-vswitchd are idle, empties the services' conntrack zones and settles
(``quiesce``). A run during which other work took more than 10 % of a core says so
(``foreign_cpu.py``). Goals (issue 16): every path >= 0.9x of direct; least connections p99
<= 1.2x round robin's at 150 and 1,000 req/s.

    .venv/bin/python bench/l4_connrate.py [--seconds 5] [--connections 32] [--rounds 2]
        [--rates 150,1000] [--latency-seconds 10] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import foreign_cpu
from l4_lab import (BACKEND_IPS, BACKENDS, BASE_PORT, DIRECT_PORT, MODES, balancer_lab,
                    services, start_backends, vip_of, wrk)
from l7_loopback import cpu_seconds

from controllers.harness import REPO_ROOT

# paths beyond l4_lab's one-per-mode services: (mode, algorithm, extra service keys)
EXTRA = {"l4_lc": ("l4", "least_connections", {}),
         "l4_lc_counters": ("l4", "least_connections", {"in_flight": "counters"}),
         "l4_lc_group": ("l4", "least_connections", {"in_flight": "group"})}
# latency services: their own ports (backends with a service time there) and VIPs
LATENCY = {"lat_rr": ("l4", "round_robin", {}),
           "lat_lc": ("l4", "least_connections", {}),
           "lat_lc_counters": ("l4", "least_connections", {"in_flight": "counters"}),
           "lat_lc_group": ("l4", "least_connections", {"in_flight": "group"})}
LATENCY_PORT = 9100
SERVICE_MS = 2.0


def all_services():
    """Return the controller's services: l4_lab's, EXTRA's and LATENCY's, each its VIP/port."""
    svc = services(BASE_PORT, BACKENDS)
    for i, (name, (mode, algorithm, extra)) in enumerate(EXTRA.items(), start=len(MODES)):
        svc[name] = {"vip": vip_of(i), "port": BASE_PORT + i, "mode": mode,
                     "algorithm": algorithm, "backends": {b: 1 for b in BACKENDS},
                     "idle_timeout": 5, "health": {"kind": "none"}, **extra}
    for i, (name, (mode, algorithm, extra)) in enumerate(LATENCY.items()):
        svc[name] = {"vip": vip_of(20 + i), "port": LATENCY_PORT + i, "mode": mode,
                     "algorithm": algorithm, "backends": {b: 1 for b in BACKENDS},
                     "idle_timeout": 5, "health": {"kind": "none"}, **extra}
    return svc


def start_slow_backends(lab, ports):
    """Start ``lblab backend`` with an exponential SERVICE_MS service, one request at a time."""
    for host in BACKENDS:
        for port in ports:
            lab.popen(host, [os.path.join(REPO_ROOT, ".venv/bin/lblab"), "backend", "--name",
                             host, "--port", str(port), "--service-dist", "exponential",
                             "--service-mean-ms", str(SERVICE_MS), "--capacity", "1",
                             "--seed", str(port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    for host in BACKENDS:
        for port in ports:
            while "LISTEN" not in lab.host(host).cmd(f"ss -ltnH 'sport = :{port}' | cut -c1-6"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"backend {host}:{port} did not listen within 15 s")
                time.sleep(0.1)


def open_loop(lab, url, rate, seconds, seed):
    """Run ``lblab loadgen`` open loop from h1; return its summary dict, with ``backends``:
    {backend: requests it answered} from the records."""
    fd, record = tempfile.mkstemp(prefix="lblab-bench-lat-", suffix=".jsonl")
    os.close(fd)
    os.unlink(record)
    out = lab.host("h1").cmd(
        f"{REPO_ROOT}/.venv/bin/lblab loadgen --url {url} --mode open --rate {rate} "
        f"--duration-s {seconds} --warmup-s 1 --warmup-records drop --no-keepalive "
        f"--source-ports kernel --pool-size 256 --seed {seed} --record {record} --json")
    start = out.find("{")
    try:
        summary = json.loads(out[start:])
    except ValueError:
        raise SystemExit(f"lblab loadgen gave no summary:\n{out[-2000:]}") from None
    summary["backends"] = {}
    if os.path.exists(record):
        with open(record, encoding="utf-8") as fp:
            for line in fp:
                backend = json.loads(line).get("backend")
                if backend:
                    summary["backends"][backend] = summary["backends"].get(backend, 0) + 1
        os.unlink(record)
    return summary


CONNECTION_COOKIE = "0x0300000000000000/0xff00000000000000"   # pipeline.COOKIE_CONNECTION


def connection_flows(switch="s1"):
    """Return how many per-connection flows (the ``flows`` path's counting flows) ``switch`` has."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", switch,
                          f"cookie={CONNECTION_COOKIE}"], capture_output=True, text=True,
                         check=False).stdout
    for word in out.split():
        if word.startswith("flow_count="):
            return int(word.split("=", 1)[1])
    return 0


def ovs_pid():
    """Return ovs-vswitchd's pid (0 if its pid file cannot be read)."""
    try:
        with open("/var/run/openvswitch/ovs-vswitchd.pid", encoding="utf-8") as fp:
            return int(fp.read().strip())
    except (OSError, ValueError):
        return 0


IDLE_CORES = {"controller": 0.05, "ovs-vswitchd": 0.10}   # below these the last run is over


def quiesce(ctl, settle, limit=60.0):
    """Wait until the last run has left nothing behind, then ``settle`` seconds; return the
    seconds waited before the settle.

    A run of the ``flows`` path leaves thousands of counting flows (idle timeout 5 s), and the
    controller and Open vSwitch go on working through their removal and through the run's
    backlog long after its last packet; whatever ran next paid for it (the latency part's
    rotation put ``counters`` right after ``flows`` in two rounds of three: p99 144 and 202 ms
    there, 65 ms in the third, 26 ms alone). So: wait until the switch has no per-connection
    flow and, over half a second, the controller and ovs-vswitchd are idle (``IDLE_CORES``; at
    most ``limit`` seconds), empty the services' conntrack zones (every path starts from the
    same table; nothing outside the bench's zones is touched), settle.
    """
    pids = {"controller": ctl.proc.pid, "ovs-vswitchd": ovs_pid()}
    pids = {name: pid for name, pid in pids.items() if pid}
    start = time.monotonic()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    while time.monotonic() - start < limit:
        time.sleep(0.5)
        now = {name: cpu_seconds(pid) for name, pid in pids.items()}
        busy = [name for name in pids if (now[name] - before[name]) / 0.5 > IDLE_CORES[name]]
        before = now
        if not busy and connection_flows() == 0:
            break
    waited = time.monotonic() - start
    for service in ctl.api("GET", "/services")[1].values():
        if service.get("conntrack_zone") is not None:
            subprocess.run(["ovs-appctl", "dpctl/flush-conntrack",
                            f"zone={service['conntrack_zone']}"], capture_output=True, check=False)
    time.sleep(settle)
    return waited


def share_error(backends):
    """Return the largest |share - 1/4| of the four backends (equal weights)."""
    n = sum(backends.values())
    return max(abs(backends.get(b, 0) / n - 1 / len(BACKENDS)) for b in BACKENDS) if n else None


def measure_rates(args, lab, ctl, modes, svc):
    """Connection-rate part: return ({path: [conn/s]}, {path: [paired ratio]}, [packet-ins/s
    of l4]). A paired ratio is a VIP run's rate over the ``direct`` run measured just before it:
    the machine drifts between rounds (a quiet run saw ``direct`` move from 10,552 to 14,101
    conn/s), and a ratio within a pair of runs seconds apart carries less of that drift."""
    load = dict(seconds=args.seconds, connections=args.connections, threads=args.threads)
    spread = [f"{ip}:{DIRECT_PORT}" for ip in BACKEND_IPS]
    results = {"direct": [], "direct-4": []}
    paired = {}
    packet_in_rates = []
    for r in range(args.rounds):
        for mode in modes:
            # baselines from h2, not h1: a direct connection reusing the source port of a
            # NATed one still in conntrack would collide with its reply tuple
            rps, errors = wrk(lab, "h2", f"http://10.0.0.6:{DIRECT_PORT}/", **load)
            results["direct"].append(rps)
            direct = rps
            print(f"round {r + 1} direct   h2->h6      {rps:9.0f} conn/s  errors {errors}",
                  flush=True)
            rps, errors = wrk(lab, "h2", f"http://10.0.0.6:{DIRECT_PORT}/", spread=spread,
                              **load)
            results["direct-4"].append(rps)
            print(f"round {r + 1} direct-4 h2->h6..h9  {rps:9.0f} conn/s  errors {errors}",
                  flush=True)
            before = ctl.api("GET", "/stats")[1]
            start = time.monotonic()
            rps, errors = wrk(lab, "h1", f"http://{svc[mode]['vip']}:{svc[mode]['port']}/",
                              **load)
            elapsed = time.monotonic() - start
            after = ctl.api("GET", "/stats")[1]
            pins = (after["switches"]["s1"]["packet_ins"]
                    - before["switches"]["s1"]["packet_ins"])
            results.setdefault(mode, []).append(rps)
            paired.setdefault(mode, []).append(rps / direct if direct else None)
            if mode == "l4":
                packet_in_rates.append(pins / elapsed)
            print(f"round {r + 1} VIP {mode:<12} {rps:9.0f} conn/s  errors {errors}  "
                  f"packet-ins {pins} ({pins / elapsed:.0f}/s)", flush=True)
            print(f"   quiet after {quiesce(ctl, args.settle):.1f} s", flush=True)
    return results, paired, packet_in_rates


def rate_ratios(results, paired):
    """Return ({path: ratio to direct}, {path: median rate / median direct}): the first is the
    median of the path's paired ratios (each run over the direct run just before it), or the
    ratio of medians for a path with no pairs (the baselines themselves)."""
    direct = statistics.median(results["direct"])
    of_medians = {p: statistics.median(v) / direct for p, v in results.items() if v}
    ratios = {}
    for p, value in of_medians.items():
        pairs = [x for x in paired.get(p, []) if x is not None]
        ratios[p] = statistics.median(pairs) if pairs else value
    return ratios, of_medians


def measure_latency(args, lab, ctl, svc, names):
    """Latency part: return {rate: {name: [p99 ms]}} and the summaries."""
    out = {}
    for rate in args.rates:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                url = f"http://{svc[name]['vip']}:{svc[name]['port']}/"
                s = open_loop(lab, url, rate, args.latency_seconds, seed=r + 1)
                err = share_error(s["backends"])
                out.setdefault(rate, {}).setdefault(name, []).append(
                    {"p99_ms": s["latency_ms"]["p99"], "p50_ms": s["latency_ms"]["p50"],
                     "ok": s["ok"], "sent": s["sent"], "rps": s["rps"],
                     "backends": s["backends"], "share_error": err})
                print(f"round {r + 1} open loop {rate:>5} req/s {name:<13} p50 "
                      f"{s['latency_ms']['p50']} ms  p99 {s['latency_ms']['p99']} ms  ok "
                      f"{s['ok']}/{s['sent']}  per backend {s['backends']}  largest share "
                      f"error {err if err is None else round(err, 3)}", flush=True)
                print(f"   quiet after {quiesce(ctl, args.settle):.1f} s", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_connrate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4,
                        help="wrk threads (a multiple of 4 keeps direct-4 even)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES + tuple(EXTRA)),
                        help="paths of the connection-rate part (empty: skip it)")
    parser.add_argument("--rates", default="150,1000",
                        help="open-loop rates of the latency part, req/s (empty: skip it)")
    parser.add_argument("--latency-paths", default=",".join(LATENCY),
                        help="services of the latency part (lat_rr always included)")
    parser.add_argument("--latency-seconds", type=int, default=10,
                        help="measured seconds of each open-loop run (after 1 s of warm-up)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between runs, after the switch has no per-connection "
                             "flow left and the controller and ovs-vswitchd are idle (at most "
                             "60 s)")
    parser.add_argument("--reweight-interval", type=float, default=None,
                        help="the controller's reweight_interval, s (default: its default)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/l4_connrate.py builds a Mininet network: run it as root")
    modes = [m for m in args.modes.split(",") if m]
    args.rates = [int(r) for r in args.rates.split(",") if r]
    svc = all_services()
    unknown = [m for m in modes if m not in svc or m in LATENCY]
    if unknown:
        raise SystemExit(f"--modes: {','.join(unknown)}: expected some of "
                         f"{','.join(MODES + tuple(EXTRA))}")
    latency_paths = ["lat_rr"] + [p for p in args.latency_paths.split(",") if p and p != "lat_rr"]
    unknown = [p for p in latency_paths if p not in LATENCY]
    if unknown:
        raise SystemExit(f"--latency-paths: {','.join(unknown)}: expected some of "
                         f"{','.join(LATENCY)}")
    load_start = os.getloadavg()
    sampler, t0 = foreign_cpu.watch(), time.monotonic()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    settings = ({} if args.reweight_interval is None
                else {"reweight_interval": args.reweight_interval})
    with balancer_lab(svc, controller=settings) as (lab, ctl):
        start_backends(lab, [s["port"] for n, s in svc.items() if n not in LATENCY]
                       + [DIRECT_PORT])
        start_slow_backends(lab, [svc[n]["port"] for n in LATENCY])
        for ip in BACKEND_IPS:  # ARP warm-up
            lab.host("h2").cmd(f"curl -s -o /dev/null http://{ip}:{DIRECT_PORT}/")
        lab.host("h1").cmd(f"curl -s -o /dev/null http://{vip_of(0)}:{BASE_PORT}/")
        results, paired, packet_in_rates = measure_rates(args, lab, ctl, modes, svc)
        latency = measure_latency(args, lab, ctl, svc, latency_paths) if args.rates else {}
    load_end = os.getloadavg()
    foreign = sampler.stop(time.monotonic() - t0)
    loaded = foreign_cpu.warning(foreign) is not None
    ratios, of_medians = {}, {}
    if modes:
        spread_rate = statistics.median(results["direct-4"])
        print(f"\n{started}: short connections/s, wrk -t{args.threads} -c{args.connections} "
              f"-d{args.seconds}s 'Connection: close', medians of {args.rounds} rounds; load "
              f"average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end "
              f"({os.cpu_count()} CPUs)")
        print("vs direct: the median over rounds of each run's rate over the direct run just "
              "before it (paired); of medians: median rate over median direct")
        print(f"{'path':<14}{'conn/s':>10}{'vs direct':>11}{'of medians':>12}"
              f"{'vs direct-4':>13}")
        ratios, of_medians = rate_ratios(results, paired)
        for mode in ["direct", "direct-4"] + modes:
            value = statistics.median(results[mode])
            print(f"{mode:<14}{value:>10.0f}{ratios[mode]:>11.2f}{of_medians[mode]:>12.2f}"
                  f"{value / spread_rate:>13.2f}")
        if packet_in_rates:
            print(f"controller packet-ins handled at saturation (l4): "
                  f"{statistics.median(packet_in_rates):.0f}/s")
    p99, shares = {}, {}
    for rate, by_name in latency.items():
        med = {n: statistics.median(x["p99_ms"] for x in v) for n, v in by_name.items()}
        p99[rate] = med
        shares[rate] = {n: max((x["share_error"] or 0) for x in v) for n, v in by_name.items()}
        print(f"\nopen loop {rate} req/s, a connection per request, exponential "
              f"{SERVICE_MS:g} ms service: p99 (median of {args.rounds}) "
              + ", ".join(f"{n} {v:.1f} ms" for n, v in med.items())
              + "; least connections / round robin: "
              + ", ".join(f"{n} {v / med['lat_rr']:.2f}" for n, v in med.items()
                          if n != "lat_rr") + " (goal <= 1.2); largest share error "
              + ", ".join(f"{n} {v:.3f}" for n, v in shares[rate].items()))
    print(f"other work's CPU while this ran: {100 * foreign['foreign_cores']:.0f} % of a core")
    if loaded:
        print(foreign_cpu.warning(foreign))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fp:
            json.dump({"format_version": "1.0", "args": vars(args), "started": started,
                       "load_start": load_start, "load_end": load_end, "loaded": loaded,
                       "foreign_cores": foreign["foreign_cores"],
                       "connrate": results, "ratio_to_direct": ratios,
                       "paired_ratios": paired, "ratio_of_medians": of_medians,
                       "packet_ins_per_s": packet_in_rates,
                       "latency": {str(k): v for k, v in latency.items()},
                       "p99_ms": {str(k): v for k, v in p99.items()},
                       "share_error": {str(k): v for k, v in shares.items()}},
                      fp, sort_keys=True, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
