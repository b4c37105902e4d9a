"""Benchmark: build + tear down a 256-host tree (depth 2, fanout 16) with lblab vs `mn`.

Both use the same Open vSwitch datapath (detected as lblab does) and no controller; runs
alternate (mn, lblab, mn, lblab, …) so drift on the machine hits both alike. Prints each run,
both medians and the ratio lblab/mn (issue 16 goal: <= 0.5). Needs root.

    .venv/bin/python bench/topo_build.py [--rounds 3] [--depth 2] [--fanout 16]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import foreign_cpu  # noqa: E402 - bench/ is this script's directory
from topologies import graphs, registry  # noqa: E402
from topologies.capabilities import detect_datapath  # noqa: E402
from topologies.network import LabNetwork  # noqa: E402


def time_mn(depth, fanout, datapath):
    switch = "ovs,datapath=user" if datapath == "netdev" else "ovs"
    # mn's bridges are named s1… like lblab's: hold the lab lock so no lblab network runs beside.
    lock = registry.NetworkLock(wait_sec=900).acquire()
    try:
        start = time.perf_counter()
        proc = subprocess.run(["mn", "--topo", f"tree,depth={depth},fanout={fanout}",
                               "--switch", switch, "--controller", "none", "--test", "none"],
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    finally:
        lock.release()
    if proc.returncode:
        raise SystemExit(f"mn failed: {proc.stderr[-2000:]}")
    return elapsed


def time_lblab(depth, fanout):
    graph = graphs.tree(depth=depth, fanout=fanout)
    lock = registry.NetworkLock(wait_sec=900).acquire()  # wait for other labs outside the timing
    lock.release()
    start = time.perf_counter()
    with LabNetwork(graph):
        pass
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--fanout", type=int, default=16)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/topo_build.py needs root")
    datapath = detect_datapath()
    hosts = args.fanout ** args.depth
    print(f"tree depth={args.depth} fanout={args.fanout} ({hosts} hosts), datapath {datapath}, "
          f"{args.rounds} alternating rounds, lblab build "
          f"{os.environ.get('LBLAB_MININET_BUILD') or 'default'}")
    mn, lab = [], []
    sampler, t0 = foreign_cpu.watch(), time.monotonic()
    for i in range(args.rounds):
        mn.append(time_mn(args.depth, args.fanout, datapath))
        lab.append(time_lblab(args.depth, args.fanout))
        print(f"  round {i + 1}: mn {mn[-1]:6.2f} s   lblab {lab[-1]:6.2f} s")
    m_mn, m_lab = statistics.median(mn), statistics.median(lab)
    print(f"median build+teardown: mn {m_mn:.2f} s, lblab {m_lab:.2f} s, "
          f"ratio lblab/mn {m_lab / m_mn:.2f} (goal <= 0.50)")
    warning = foreign_cpu.warning(sampler.stop(time.monotonic() - t0))
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
