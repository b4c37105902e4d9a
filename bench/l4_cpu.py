"""Benchmark: CPU time per short connection of the controller and of ovs-vswitchd, per path (root).

Where a connection's cost goes: for each path, wrk (``Connection: close``) runs ``--seconds``
and the user and system CPU of the controller process and of ovs-vswitchd
(``/proc/<pid>/stat``) are divided by the connections made. ``direct`` is h2 -> h6 on a port no
service matches; the others are h1 -> the service's VIP (the paths of ``bench/l4_connrate.py``:
the modes and its extra paths, such as ``l4_lc_counters``). The controller's
figure on the l4 path is its cost per packet-in (one per connection).

    .venv/bin/python bench/l4_cpu.py [--paths direct,l4,group] [--seconds 5] [--rounds 2]
"""
import argparse
import os
import time

from l4_connrate import EXTRA, LATENCY, all_services
from l4_lab import DIRECT_PORT, MODES, balancer_lab, start_backends, wrk

VSWITCHD_PIDFILE = "/var/run/openvswitch/ovs-vswitchd.pid"


def cpu_seconds(pid):
    """Return (user, system) CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_cpu.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default="direct,l4,group")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p]
    known = MODES + tuple(EXTRA)
    unknown = [p for p in paths if p != "direct" and p not in known]
    if unknown:
        parser.error(f"--paths: unknown {', '.join(unknown)}; expected direct or one of "
                     f"{', '.join(known)}")
    with open(VSWITCHD_PIDFILE, encoding="ascii") as fp:
        vswitchd = int(fp.read())
    svc = {name: s for name, s in all_services().items() if name not in LATENCY}
    with balancer_lab(svc) as (lab, ctl):
        start_backends(lab, [svc[p]["port"] for p in paths if p != "direct"] + [DIRECT_PORT])
        print(f"{'path':<16}{'conn/s':>9}{'controller user':>17}{'sys':>7}"
              f"{'ovs-vswitchd user':>19}{'sys':>7}   (µs per connection)")
        for _ in range(args.rounds):
            for path in paths:
                if path == "direct":
                    client, url = "h2", f"http://10.0.0.6:{DIRECT_PORT}/"
                else:
                    client, url = "h1", f"http://{svc[path]['vip']}:{svc[path]['port']}/"
                lab.host(client).cmd(f"curl -s -o /dev/null {url}")  # ARP warm-up
                ctl0, ovs0 = cpu_seconds(ctl.proc.pid), cpu_seconds(vswitchd)
                rps, _errors = wrk(lab, client, url, args.seconds, args.connections, threads=4)
                ctl1, ovs1 = cpu_seconds(ctl.proc.pid), cpu_seconds(vswitchd)
                n = max(1.0, rps * args.seconds)
                us = [1e6 * (b - a) / n for a, b in zip(ctl0 + ovs0, ctl1 + ovs1)]
                print(f"{path:<16}{rps:>9.0f}{us[0]:>17.0f}{us[1]:>7.0f}{us[2]:>19.0f}"
                      f"{us[3]:>7.0f}", flush=True)
                time.sleep(6)  # let per-connection state idle out between runs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
