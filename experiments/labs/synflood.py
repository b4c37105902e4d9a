"""``python -m experiments.labs.synflood HOST PORT``: SYNs from fresh source ports, for lab 4.

Run on a Mininet host (``h1 .venv/bin/python -m experiments.labs.synflood 10.254.0.1 80``): it
opens non-blocking TCP connections as fast as it can and drops each one before it completes,
so every attempt is one SYN from a new source port (a new 5-tuple, so a new packet-in for a
balancer that decides per connection), with no raw socket and no extra package. It stops after
``--seconds`` and prints how many SYNs it sent. Only against the lab's own virtual network.
"""
import argparse
import ipaddress
import socket
import time

from lblab_core import entry
from lblab_core.errors import UsageError

MAX_SECONDS = 60.0


def build_parser():
    """Return the parser of the SYN flood tool."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.labs.synflood",
        description="Send SYNs from fresh source ports to HOST:PORT for --seconds (lab 4: a SYN "
                    "flood against the controller's packet-in meter). Run it on a Mininet host.")
    parser.add_argument("host", metavar="HOST", help="an IPv4 address (e.g. 10.254.0.1)")
    parser.add_argument("port", metavar="PORT", type=int, help="a TCP port (1-65535)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help=f"how long to flood (0 < s <= {MAX_SECONDS:g}; default 5)")
    return parser


def main(argv=None):
    """Flood, then print the number of SYNs sent; returns 0."""
    args = build_parser().parse_args(argv)
    try:
        ipaddress.IPv4Address(args.host)
    except ValueError:
        raise UsageError(f"HOST {args.host!r}: expected an IPv4 address") from None
    if not 1 <= args.port <= 65535:
        raise UsageError(f"PORT {args.port}: expected 1-65535")
    if not 0 < args.seconds <= MAX_SECONDS:
        raise UsageError(f"--seconds {args.seconds:g}: expected more than 0 and at most "
                         f"{MAX_SECONDS:g}")
    sent, end = 0, time.monotonic() + args.seconds
    while time.monotonic() < end:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.connect_ex((args.host, args.port))
        sock.close()
        sent += 1
    print(f"synflood: {sent} SYNs to {args.host}:{args.port} in {args.seconds:g} s "
          f"({sent / args.seconds:.0f}/s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(entry.run("synflood", main))
