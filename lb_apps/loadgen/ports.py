"""Seeded TCP source ports of the load generator's connections (pure: no sockets).

A balancer that hashes the 5-tuple (an OVS select group, an ip/port hash) places a connection by
its source port. Left to the kernel, source ports are new in every run, so two repetitions of
the same seed put the same connections on different backends (the quickstart's ``l4_group``
gave Jain 0.67 and 0.93 in two runs of one seed). With ``source_ports: seeded`` the load
generator binds each connection's source port from its seed instead: the k-th connection it
opens gets the k-th port of a seeded permutation of ``[SEEDED_PORT_LOW, SEEDED_PORT_HIGH)``, so
the same seed gives the same 5-tuples, and a different seed (each repetition has its own)
different ones. A port that cannot be used (in use, or its 4-tuple still in TIME_WAIT) is
skipped for the next one of the same sequence; ``lb_apps.loadgen.connect`` does the binding.
"""
import math
import random

SOURCE_PORT_MODES = ("seeded", "kernel")
# Below Linux's default ephemeral range (32768-60999), above every port the lab listens on
# (80, 443, 5201 iperf3, 9901 proxy stats): a seeded port neither takes a port the kernel would
# hand to another socket nor a listening one. Ports of the machine's own ephemeral range are
# skipped if it was configured to overlap (``ephemeral_range``).
SEEDED_PORT_LOW = 20000
SEEDED_PORT_HIGH = 32768          # exclusive
# Candidates tried for one connection before its connect fails as ``connect_error``.
MAX_PORT_CANDIDATES = 64


def parse_port_range(text):
    """Parse ``/proc/sys/net/ipv4/ip_local_port_range`` (``"32768\\t60999\\n"``).

    Returns:
        tuple[int, int]|None: ``(low, high)`` inclusive, or None if the text is not two ports.
    """
    parts = text.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    low, high = int(parts[0]), int(parts[1])
    return (low, high) if 0 < low <= high <= 65535 else None


class SourcePorts:
    """The deterministic sequence of source ports of one load generator.

    Args:
        mode (str): ``seeded`` (ports from ``seed``) or ``kernel`` (every port is 0: the
            kernel chooses, as without binding).
        seed (int): the load generator's seed (the runner gives each client and repetition
            its own).
        low, high (int): the seeded range ``[low, high)``.
        avoid (tuple[int, int]|None): an inclusive range never to use (the machine's
            ephemeral range).
    """

    def __init__(self, mode, seed, low=SEEDED_PORT_LOW, high=SEEDED_PORT_HIGH, avoid=None):
        if mode not in SOURCE_PORT_MODES:
            raise ValueError(f"source_ports {mode!r} must be one of {SOURCE_PORT_MODES}")
        self.mode = mode
        self.low = low
        self.size = high - low
        self.avoid = avoid
        self.index = 0
        if avoid is not None and avoid[0] <= low and high - 1 <= avoid[1]:
            raise ValueError(f"the ephemeral range {avoid[0]}-{avoid[1]} covers the seeded "
                             f"source ports {low}-{high - 1}")
        rng = random.Random(f"{seed}:source_ports")
        # k -> low + (stride * k + offset) mod size is a permutation of the range when stride
        # and size are coprime: the first `size` connections never reuse a port.
        stride = rng.randrange(1, self.size)
        while math.gcd(stride, self.size) != 1:
            stride = rng.randrange(1, self.size)
        self.stride = stride
        self.offset = rng.randrange(self.size)

    def port(self, index):
        """Return the ``index``-th port of the sequence (before skipping ``avoid``)."""
        return self.low + (self.stride * index + self.offset) % self.size

    def next(self):
        """Return the next candidate source port (0 in kernel mode: let the kernel choose)."""
        if self.mode == "kernel":
            return 0
        while True:
            port = self.port(self.index)
            self.index += 1
            if self.avoid is None or not self.avoid[0] <= port <= self.avoid[1]:
                return port
