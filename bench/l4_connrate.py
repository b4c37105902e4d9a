"""Benchmark: short HTTP connections per second through each mode's VIP vs directly to the
backends, and packet-ins per second the controller handled while saturated (root).

One lb_lab (h6-h9 ``lblab backend``), one controller with a service per mode; wrk with
``Connection: close`` and ``--threads`` threads (default 4). Two direct baselines, both on a port
no service matches (so no balancer flow touches them):

- ``direct``: h2 -> h6, one backend, the baseline the goals are set against;
- ``direct-4``: h2 -> h6..h9, wrk's threads spread over the four backends as a balanced VIP
  spreads connections. On a small machine four backend processes cost more CPU per request than
  one, and this baseline shows how much of a VIP's deficit comes from that, not from the switch.

Runs alternate baselines and VIPs so drift on the machine hits all alike.
Goals (issue 3): l4 >= 0.5x, l3/group/proactive >= 0.9x of direct.

    .venv/bin/python bench/l4_connrate.py [--seconds 5] [--connections 32] [--rounds 2]
"""
import argparse
import statistics
import time

from l4_lab import (BACKEND_IPS, BACKENDS, BASE_PORT, DIRECT_PORT, MODES, balancer_lab,
                    service_ports, services, start_backends, vip_of, wrk)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_connrate.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4,
                        help="wrk threads (a multiple of 4 keeps direct-4 even)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--l4-algorithm", default="round_robin",
                        help="algorithm of the l4 service (least_connections takes the "
                             "counting-flow path)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    svc = services(BASE_PORT, BACKENDS, algorithm={"l4": args.l4_algorithm})
    load = dict(seconds=args.seconds, connections=args.connections, threads=args.threads)
    spread = [f"{ip}:{DIRECT_PORT}" for ip in BACKEND_IPS]
    with balancer_lab(svc) as (lab, ctl):
        start_backends(lab, service_ports())
        for ip in BACKEND_IPS:  # ARP warm-up
            lab.host("h2").cmd(f"curl -s -o /dev/null http://{ip}:{DIRECT_PORT}/")
        lab.host("h1").cmd(f"curl -s -o /dev/null http://{vip_of(0)}:{BASE_PORT}/")
        results = {"direct": [], "direct-4": []}
        packet_in_rates = []
        for _ in range(args.rounds):
            for mode in modes:
                # baselines from h2, not h1: a direct connection reusing the source port of a
                # NATed one still in conntrack would collide with its reply tuple
                rps, errors = wrk(lab, "h2", f"http://10.0.0.6:{DIRECT_PORT}/", **load)
                results["direct"].append(rps)
                print(f"direct   h2->h6      {rps:9.0f} conn/s  errors {errors}", flush=True)
                rps, errors = wrk(lab, "h2", f"http://10.0.0.6:{DIRECT_PORT}/", spread=spread,
                                  **load)
                results["direct-4"].append(rps)
                print(f"direct-4 h2->h6..h9  {rps:9.0f} conn/s  errors {errors}", flush=True)
                index = MODES.index(mode)
                before = ctl.api("GET", "/stats")[1]
                start = time.monotonic()
                rps, errors = wrk(lab, "h1", f"http://{vip_of(index)}:{BASE_PORT + index}/",
                                  **load)
                elapsed = time.monotonic() - start
                after = ctl.api("GET", "/stats")[1]
                pins = (after["switches"]["s1"]["packet_ins"]
                        - before["switches"]["s1"]["packet_ins"])
                dropped = after["switches"]["s1"]["dropped"] - before["switches"]["s1"]["dropped"]
                results.setdefault(mode, []).append(rps)
                if mode == "l4":
                    packet_in_rates.append(pins / elapsed)
                print(f"VIP {mode:<16} {rps:9.0f} conn/s  errors {errors}  packet-ins "
                      f"{pins} ({pins / elapsed:.0f}/s, {dropped} dropped by the rate limit)",
                      flush=True)
                time.sleep(6)  # let per-connection flows idle out between runs
        direct = statistics.median(results["direct"])
        spread_rate = statistics.median(results["direct-4"])
        print(f"\nshort connections/s, wrk -t{args.threads} -c{args.connections} "
              f"-d{args.seconds}s 'Connection: close', medians of {args.rounds} rounds")
        print(f"{'path':<12}{'conn/s':>10}{'vs direct':>11}{'vs direct-4':>13}")
        print(f"{'direct':<12}{direct:>10.0f}{1.0:>11.2f}{direct / spread_rate:>13.2f}")
        print(f"{'direct-4':<12}{spread_rate:>10.0f}{spread_rate / direct:>11.2f}{1.0:>13.2f}")
        for mode in modes:
            value = statistics.median(results[mode])
            print(f"{mode:<12}{value:>10.0f}{value / direct:>11.2f}{value / spread_rate:>13.2f}")
        if packet_in_rates:
            print(f"controller packet-ins handled at saturation (l4): "
                  f"{statistics.median(packet_in_rates):.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
