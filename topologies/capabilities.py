"""What this machine can emulate: OVS datapath, tc qdiscs. Detected, never assumed.

The probes are cheap and side-effect free: qdiscs are tried on the loopback interface of a
throw-away network namespace (``unshare -n``), so nothing on the machine changes.
"""
import functools
import os
import shutil
import subprocess

from topologies import graphs

# qdisc -> a command line that installs it on `lo` (inside a fresh namespace).
QDISC_PROBES = {
    "htb": "tc qdisc add dev lo root handle 5: htb default 1",
    "tbf": "tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 400ms",
    "netem": "tc qdisc add dev lo root netem delay 1ms",
}
# link parameter -> the qdisc Mininet's TCLink needs for it.
FEATURE_QDISC = {"bw": "htb", "delay": "netem", "loss": "netem", "max_queue": "netem"}


def kernel_datapath_available():
    """True when the openvswitch kernel module is loaded (``/sys/module/openvswitch``)."""
    return os.path.isdir("/sys/module/openvswitch")


def detect_datapath():
    """Return ``kernel`` where the openvswitch module is loaded, else ``netdev`` (userspace).

    ``LBLAB_DATAPATH`` (kernel|netdev) overrides the detection.
    """
    forced = os.environ.get("LBLAB_DATAPATH")
    if forced in ("kernel", "netdev"):
        return forced
    return "kernel" if kernel_datapath_available() else "netdev"


@functools.lru_cache(maxsize=None)
def qdisc_available(name):
    """True when tc can install qdisc ``name`` here (root needed; False without it)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("tc") is None:
        return False
    proc = subprocess.run(["unshare", "-n", "sh", "-c", QDISC_PROBES[name]],
                          capture_output=True)
    return proc.returncode == 0


def missing_link_features(graph):
    """Return one message per link whose parameters this kernel cannot emulate.

    Mininet's TCLink shapes rate with htb and puts delay, loss and queue limits in netem. Each
    message names the link, the parameter and the missing qdisc.
    """
    problems = []
    for a, b, data in graph.edges(data=True):
        for feature in ("delay", "loss", "max_queue", "bw"):
            if data.get(feature) is None:
                continue
            qdisc = FEATURE_QDISC[feature]
            if not qdisc_available(qdisc):
                problems.append(
                    f"link {a}-{b} asks for {feature}={data[feature]} but this kernel has no "
                    f"sch_{qdisc} (tc qdisc '{qdisc}' cannot be installed); remove '{feature}' "
                    f"from the topology or use a machine with sch_{qdisc} (e.g. the Vagrant VM)")
    return problems


def emulated_features(graph):
    """Return the link features the graph uses (for the run manifest)."""
    return graphs.link_features(graph)
