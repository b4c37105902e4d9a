"""Order effects at L4: the latency services of ``bench/l4_connrate.py`` run one after another in
the order given, each an open-loop ``lblab loadgen`` run (Poisson, a connection per request),
each followed by that bench's ``quiesce`` (no per-connection flow left, controller and
ovs-vswitchd idle, the services' conntrack zones emptied, 2 s). Prints p50, p99 and the wait of
each run. For checking whether a run pays for the one before it (root).

Services: lat_rr (round robin), lat_lc (least connections, ``in_flight: flows``),
lat_lc_counters, lat_lc_group.

    .venv/bin/python bench/l4_sequence.py lat_lc_counters,lat_rr,lat_lc,lat_lc_counters
        [--rate 1000] [--seconds 8]
"""
import argparse
import os

import l4_connrate
from l4_lab import balancer_lab


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_sequence.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("order", help="comma-separated latency services, in the order to run")
    parser.add_argument("--rate", type=int, default=1000, help="req/s of each run")
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds of each run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/l4_sequence.py builds a Mininet network: run it as root")
    order = [n for n in args.order.split(",") if n]
    unknown = [n for n in order if n not in l4_connrate.LATENCY]
    if not order or unknown:
        raise SystemExit(f"order: {','.join(unknown) or '(empty)'}: expected some of "
                         f"{','.join(l4_connrate.LATENCY)}")
    svc = {n: s for n, s in l4_connrate.all_services().items() if n in l4_connrate.LATENCY}
    with balancer_lab(svc) as (lab, ctl):
        l4_connrate.start_slow_backends(lab, [s["port"] for s in svc.values()])
        for i, name in enumerate(order):
            url = f"http://{svc[name]['vip']}:{svc[name]['port']}/"
            summary = l4_connrate.open_loop(lab, url, args.rate, args.seconds, seed=i + 1)
            waited = l4_connrate.quiesce(ctl, 2.0)
            print(f"{i + 1:>2} {name:<16} p50 {summary['latency_ms']['p50']:7.1f} ms  p99 "
                  f"{summary['latency_ms']['p99']:7.1f} ms  ok {summary['ok']}/{summary['sent']}"
                  f"  quiet after {waited:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
