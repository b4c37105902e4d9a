"""Benchmark: short HTTP connections per second through each mode's VIP vs directly to one
backend, and packet-ins per second the controller handled while saturated (root).

One lb_lab (h6-h9 ``lblab backend``), one controller with a service per mode; wrk with
``Connection: close``, h1 -> VIP and h2 -> h6 directly, runs alternating direct / VIP so drift
hits both alike.
Goals (issue 3): l4 >= 0.5x, l3/group/proactive >= 0.9x of direct.

    .venv/bin/python bench/l4_connrate.py [--seconds 5] [--connections 32] [--rounds 2]
"""
import argparse
import statistics
import time

from l4_lab import MODES, balancer_lab, services, start_backend, vip_of, wrk

BASE_PORT = 80
BACKENDS = ("h6", "h7", "h8", "h9")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_connrate.py", description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    svc = services(BASE_PORT, BACKENDS)
    with balancer_lab(svc) as (lab, ctl):
        for host in BACKENDS:
            for i, _mode in enumerate(MODES):
                start_backend(lab, host, BASE_PORT + i)
        lab.host("h1").cmd(f"curl -s -o /dev/null http://{vip_of(0)}:{BASE_PORT}/")  # ARP warm
        results = {"direct": []}
        packet_in_rates = []
        for _ in range(args.rounds):
            for mode in modes:
                # direct from h2, not h1: a direct connection reusing the source port of a
                # NATed one still in conntrack would collide with its reply tuple
                rps, errors = wrk(lab, "h2", f"http://10.0.0.6:{BASE_PORT}/", args.seconds,
                                  args.connections)
                results["direct"].append(rps)
                print(f"direct h2->h6      {rps:9.0f} conn/s  errors {errors}", flush=True)
                index = MODES.index(mode)
                before = ctl.api("GET", "/stats")[1]
                start = time.monotonic()
                rps, errors = wrk(lab, "h1", f"http://{vip_of(index)}:{BASE_PORT + index}/",
                                  args.seconds, args.connections)
                elapsed = time.monotonic() - start
                after = ctl.api("GET", "/stats")[1]
                pins = (after["switches"]["s1"]["packet_ins"]
                        - before["switches"]["s1"]["packet_ins"])
                dropped = after["switches"]["s1"]["dropped"] - before["switches"]["s1"]["dropped"]
                results.setdefault(mode, []).append(rps)
                if mode == "l4":
                    packet_in_rates.append(pins / elapsed)
                print(f"VIP {mode:<14} {rps:9.0f} conn/s  errors {errors}  packet-ins "
                      f"{pins} ({pins / elapsed:.0f}/s, {dropped} dropped by the rate limit)",
                      flush=True)
                time.sleep(6)  # let per-connection flows idle out between runs
        direct = statistics.median(results["direct"])
        print(f"\nshort connections/s, wrk -t1 -c{args.connections} -d{args.seconds}s "
              f"'Connection: close', medians of {args.rounds} rounds")
        print(f"{'path':<12}{'conn/s':>10}{'ratio':>8}")
        print(f"{'direct':<12}{direct:>10.0f}{1.0:>8.2f}")
        for mode in modes:
            value = statistics.median(results[mode])
            print(f"{mode:<12}{value:>10.0f}{value / direct:>8.2f}")
        if packet_in_rates:
            print(f"controller packet-ins handled at saturation (l4): "
                  f"{statistics.median(packet_in_rates):.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
