"""The L7 proxy's per-request Python work, without sockets: a keep-alive request driven through
the real client and upstream protocol callbacks (``ClientConnection``, ``UpstreamConnection``,
httptools, the runtime) with in-memory transports, in a tight loop.

Prints the process CPU time per request (``time.process_time``), the best of ``--repeat`` runs,
for the keep-alive case (one pooled upstream connection) and, with ``--profile``, the top
functions by own time (cProfile; cProfile itself inflates every figure, compare shares only).
What it leaves out is the kernel (socket reads and writes) and uvloop's event dispatch: the
loopback and Mininet benches measure those. No root, no network; a few seconds.

``--close`` makes a new client connection per request (``Connection: close``) instead.
``--trace`` counts the Python bytecodes and calls per request (``sys.settrace`` over 1,000
requests): a figure that machine load does not move, for comparing two versions of the code.
``--tree DIR`` loads the proxy from another checkout of lblab (the code before a change).

Usage: .venv/bin/python bench/l7_hotloop.py [--requests 20000] [--repeat 5] [--close]
           [--profile] [--trace] [--check] [--tree DIR]
"""
import argparse
import collections
import cProfile
import pstats
import sys
import time
from pathlib import Path


def _tree(argv):
    """The checkout to load the proxy from: ``--tree DIR`` is read before the imports below."""
    if "--tree" in argv[:-1]:
        return Path(argv[argv.index("--tree") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


TREE = _tree(sys.argv)
sys.path.insert(0, str(TREE))

from lb_apps.l7config import parse_l7_config  # noqa: E402 - after the path fix
from lb_apps.proxy.conn import ClientConnection  # noqa: E402
from lb_apps.proxy.runtime import Runtime  # noqa: E402
from lb_apps.proxy.upstream import UpstreamConnection  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 10.0.0.5:8001\r\n\r\n"  # what wrk sends
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: 10.0.0.5:8001\r\nConnection: close\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nX-Backend: b1\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 100\r\n\r\n" + b"x" * 100)  # what lblab backend answers


class Transport:
    """An in-memory transport: remembers the last write."""

    def __init__(self, peer):
        self.peer = peer
        self.last = b""
        self.writes = 0

    def get_extra_info(self, name, default=None):
        return self.peer if name in ("peername", "sockname") else default

    def write(self, data):
        self.last = data
        self.writes += 1

    def is_closing(self):
        return False

    def close(self):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def can_write_eof(self):
        return True

    def write_eof(self):
        pass


class Server:
    """What the protocol objects read of ``ProxyServer``."""

    def __init__(self, config):
        self.rt = Runtime(config)
        self.conns = set()
        self.draining = False
        self.tls = False
        self.proto = b"http"
        self.loop = None
        self.now = 0.0


def setup(config_data=None):
    """Return (client, upstream, client transport, upstream transport) with one pooled upstream."""
    data = config_data or {"listen": {"host": "127.0.0.1", "port": 8001},
                           "backends": [{"name": "b1", "address": "10.0.0.6", "port": 80}]}
    server = Server(parse_l7_config(data, "hotloop"))
    backend = server.rt.backends["b1"]
    up = UpstreamConnection(backend, server)
    ut = Transport(("10.0.0.6", 80))
    up.connection_made(ut)
    backend.idle.append(up)
    client = ClientConnection(server)
    ct = Transport(("10.0.0.1", 40000))
    client.connection_made(ct)
    return client, up, ct, ut


def run(n, client, up, ct, ut):
    """Drive ``n`` keep-alive requests; return CPU seconds used."""
    feed_client, feed_up = client.data_received, up.data_received
    request, response = REQUEST, RESPONSE
    t0 = time.process_time()
    for _ in range(n):
        feed_client(request)
        feed_up(response)
    return time.process_time() - t0


def run_close(n, client, up, ct, ut):
    """Drive ``n`` requests with a new client connection each (``Connection: close``); the
    upstream connection is pooled, as it is in the proxy. Return CPU seconds used."""
    server = client.server
    feed_up, request, response = up.data_received, CLOSE_REQUEST, RESPONSE
    t0 = time.process_time()
    for _ in range(n):
        conn = ClientConnection(server)
        conn.connection_made(ct)
        conn.data_received(request)
        feed_up(response)
        conn.connection_lost(None)
    return time.process_time() - t0


def trace(drive, conns, n=1000):
    """Return (bytecodes, Python calls, {function: bytecodes}) per request over ``n`` requests."""
    ops = collections.Counter()
    calls = [0]

    def tracer(frame, event, _arg):
        if event == "call":
            calls[0] += 1
            frame.f_trace_opcodes = True
        elif event == "opcode":
            code = frame.f_code
            ops[f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]})"] += 1
        return tracer

    sys.settrace(tracer)
    try:
        drive(n, *conns)
    finally:
        sys.settrace(None)
    return sum(ops.values()) / n, calls[0] / n, {k: v / n for k, v in ops.most_common(12)}


def check(client, up, ct, ut):
    """One request through the loop, asserting the bytes each way look right."""
    client.data_received(REQUEST)
    sent = ut.last
    up.data_received(RESPONSE)
    answered = ct.last
    if not sent.startswith(b"GET / HTTP/1.1\r\n") or b"X-Forwarded-For: 10.0.0.1" not in sent:
        raise SystemExit(f"unexpected upstream request: {sent!r}")
    if not answered.startswith(b"HTTP/1.1 200 OK\r\n") or b"Via: 1.1 lblab" not in answered:
        raise SystemExit(f"unexpected client response: {answered!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l7_hotloop.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile top 25")
    parser.add_argument("--check", action="store_true", help="print one request each way")
    parser.add_argument("--close", action="store_true",
                        help="a new client connection per request (Connection: close)")
    parser.add_argument("--trace", action="store_true",
                        help="also count Python bytecodes and calls per request")
    parser.add_argument("--tree", metavar="DIR",
                        help="load the proxy from this lblab checkout (default: this one)")
    args = parser.parse_args(argv)
    conns = setup()
    check(*conns)
    if args.check:
        print(conns[3].last.decode(), "\n---\n", conns[2].last.decode())
    drive = run_close if args.close else run
    drive(1000, *conns)  # warm up
    best = min(drive(args.requests, *conns) for _ in range(args.repeat))
    print(f"{'connection per request' if args.close else 'keep-alive'}, in-memory transports: "
          f"{best / args.requests * 1e6:.2f} us CPU per request "
          f"(best of {args.repeat} x {args.requests})")
    if args.trace:
        ops, calls, top = trace(drive, conns)
        print(f"traced: {ops:,.0f} bytecodes and {calls:.0f} Python calls per request "
              f"(proxy from {TREE})")
        for name, n in top.items():
            print(f"  {n:6.1f}  {name}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        drive(args.requests, *conns)
        prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
