"""Benchmark: long-flow TCP throughput (iperf3) through each mode's VIP vs directly to the
backend, measured side by side in one run (root). Goal (issue 3): >= 0.95x in every mode.

Each service's pool is the one backend h6 (iperf3 opens a control and a data connection that
must meet the same server), so the ratio is the data-path cost of the rewrite/conntrack alone.
Runs alternate direct / VIP so drift on the machine hits both alike.

    .venv/bin/python bench/l4_throughput.py [--seconds 5] [--rounds 2]
"""
import argparse
import json
import statistics

from l4_lab import MODES, balancer_lab, services, vip_of

BASE_PORT = 5201


def iperf(lab, client, address, port, seconds):
    """Return received Mbit/s of one iperf3 run from ``client`` (0 when it failed)."""
    out = lab.host(client).cmd(f"iperf3 -c {address} -p {port} -t {seconds} -J")
    try:
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        return 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l4_throughput.py", description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    svc = services(BASE_PORT + 1, ["h6"], algorithm={}, idle_timeout=30)
    with balancer_lab(svc) as (lab, _ctl):
        for i in range(len(MODES) + 1):
            lab.popen("h6", ["iperf3", "-s", "-p", str(BASE_PORT + i)])
        lab.host("h1").cmd("sleep 1")
        results = {"direct": []}
        for _ in range(args.rounds):
            for i, mode in enumerate(MODES):
                direct = iperf(lab, "h2", "10.0.0.6", BASE_PORT, args.seconds)
                via = iperf(lab, "h1", vip_of(i), BASE_PORT + 1 + i, args.seconds)
                results["direct"].append(direct)
                results.setdefault(mode, []).append(via)
                print(f"direct {direct:8.1f} Mbit/s   VIP {mode:<10} {via:8.1f} Mbit/s",
                      flush=True)
        direct = statistics.median(results["direct"])
        print(f"\niperf3 -t {args.seconds}, one TCP flow (h1 -> VIP -> h6, h2 -> h6 direct), "
              f"medians of {args.rounds} rounds")
        print(f"{'path':<12}{'Mbit/s':>10}{'ratio':>8}")
        print(f"{'direct':<12}{direct:>10.1f}{1.0:>8.2f}")
        for mode in MODES:
            value = statistics.median(results[mode])
            print(f"{mode:<12}{value:>10.1f}{value / direct:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
