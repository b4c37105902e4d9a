"""The live view's read-only web server: Starlette + uvicorn in a thread of the ``lblab`` process.

Routes are the contract in ``experiments.live.feed`` and docs/live.md. The server only reads its
source (a :class:`experiments.live.hub.Hub` during runs, a :class:`experiments.live.replay.Replay`
for ``lblab view``): GET and HEAD only (Starlette answers 405 to anything else), nothing reaches
the lab. :class:`LiveServer` binds the socket itself before the lab starts (so a busy port is a
one-line error, not a failed run), serves in a daemon thread, and :meth:`LiveServer.stop` ends
the event streams and the thread, closing the socket.
"""
import argparse
import asyncio
import ipaddress
import json
import math
import os
import socket
import threading
import time

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
KEEPALIVE_S = 15.0
POLL_S = 0.2
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def parse_address(text):
    """Return ``(host, port)`` of ``--live``'s value: ``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT``.

    Raises:
        argparse.ArgumentTypeError: naming the value and what is expected.
    """
    expected = "expected HOST:PORT (e.g. 127.0.0.1:8050, 0.0.0.0:8050) or a PORT"
    value = text.strip()
    if value.isdigit():
        host, port = DEFAULT_HOST, value
    elif value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise argparse.ArgumentTypeError(f"--live {text!r}: {expected}")
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"--live {text!r}: {expected}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--live {text!r}: port {port!r}: expected 1..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--live {text!r}: host {host!r}: expected an IP address of this machine "
                f"(127.0.0.1 by default) or localhost") from None
    return host, int(port)


def add_live_flag(parser, what="the run"):
    """Add ``--live [HOST:PORT]`` to a command's parser (value: ``(host, port)`` or None).

    ``--live`` alone takes ``$LBLAB_LIVE`` where it is set (the Vagrant VM sets 0.0.0.0:8050 in
    /etc/environment: the host's port forward reaches the guest's NAT address, not its
    loopback), else 127.0.0.1:8050.
    """
    env = os.environ.get("LBLAB_LIVE")
    try:
        const = parse_address(env) if env else (DEFAULT_HOST, DEFAULT_PORT)
    except argparse.ArgumentTypeError as exc:
        from lblab_core.errors import UsageError
        raise UsageError(f"LBLAB_LIVE={env!r}: {str(exc).partition(': ')[2]}") from None
    parser.add_argument(
        "--live", nargs="?", const=const, default=None,
        type=parse_address, metavar="HOST:PORT",
        help=f"serve the live view of {what} at http://HOST:PORT/ (default "
             f"{env or DEFAULT}; read-only; stops with {what}); see docs/live.md")


def _number(request, key):
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{key}={raw}: expected a number of seconds (elapsed_s)")
    return value


def build_app(source, static_dir=STATIC_DIR, stopping=None):
    """Return the Starlette app serving ``source`` (a Hub or a Replay).

    Args:
        stopping (threading.Event|None): set when the server stops (ends event streams).
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, \
        StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    stopping = stopping or threading.Event()

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    def guarded(handler):
        async def endpoint(request):
            try:
                return handler(request)
            except LookupError as exc:
                return error(404, str(exc.args[0]) if exc.args else "not found")
            except ValueError as exc:
                return error(400, str(exc))
        return endpoint

    def page(request):
        index = os.path.join(static_dir, "index.html")
        if not os.path.exists(index):
            return PlainTextResponse("lblab live view: the page is not installed "
                                     f"({index} is missing); the feed is at /api/run",
                                     status_code=404)
        return FileResponse(index)

    def api_run(request):
        return JSONResponse({"mode": source.mode,
                             "run": source.run(request.query_params.get("run")),
                             "runs": source.runs()})

    def api_topology(request):
        return JSONResponse(source.topology(request.query_params.get("run")))

    def api_state(request):
        frames = source.frames(request.query_params.get("run"))
        return JSONResponse(frames[-1] if frames else {})

    def api_frames(request):
        lo, hi = _number(request, "from"), _number(request, "to")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"from={lo:g} to={hi:g}: expected from <= to")
        name = request.query_params.get("run")
        info = source.run(name)
        frames = [f for f in source.frames(name)
                  if (lo is None or f["elapsed_s"] >= lo) and (hi is None or f["elapsed_s"] <= hi)]
        return JSONResponse({"run": info["run"] if info else None, "frames": frames})

    def api_summary(request):
        return JSONResponse(source.summary(request.query_params.get("run")))

    async def events(request):
        if source.mode != "live":
            return error(404, "/events: a replay has no event stream; expected "
                              "/api/frames?run=NAME")

        async def stream():
            seq = -1
            run_name = None
            sent = 0
            last = time.monotonic()
            yield "retry: 2000\n\n"
            while not stopping.is_set():
                if source.seq != seq:
                    seq = source.seq
                    info = source.run()
                    if info is not None and info["run"] != run_name:
                        run_name, sent = info["run"], 0
                        yield f"event: run\ndata: {json.dumps(info)}\n\n"
                    frames = source.frames() if run_name else []
                    for frame in frames[sent:]:
                        yield f"event: frame\ndata: {json.dumps(frame)}\n\n"
                    sent = len(frames)
                    last = time.monotonic()
                elif time.monotonic() - last > KEEPALIVE_S:
                    last = time.monotonic()
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    break
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    get = ["GET", "HEAD"]
    routes = [
        Route("/", guarded(page), methods=get),
        Route("/api/run", guarded(api_run), methods=get),
        Route("/api/topology", guarded(api_topology), methods=get),
        Route("/api/state", guarded(api_state), methods=get),
        Route("/api/frames", guarded(api_frames), methods=get),
        Route("/api/summary", guarded(api_summary), methods=get),
        Route("/events", events, methods=get),
        Mount("/static", app=StaticFiles(directory=static_dir, check_dir=False),
              name="static"),
    ]
    return Starlette(routes=routes)


class LiveServer:
    """uvicorn serving :func:`build_app` in a daemon thread; ``start``/``stop`` or ``with``."""

    def __init__(self, source, host=DEFAULT_HOST, port=DEFAULT_PORT, static_dir=STATIC_DIR):
        self.source = source
        self.host, self.port = host, port
        self.static_dir = static_dir
        self.stopping = threading.Event()
        self.sock = None
        self.server = None
        self.thread = None

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self):
        """Bind and serve; return once the server answers.

        Raises:
            lblab_core.errors.UsageError: the address cannot be bound (in use, not ours).
        """
        import uvicorn
        from lblab_core.errors import UsageError
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise UsageError(f"--live {self.host}:{self.port}: cannot listen there "
                             f"({exc.strerror}); expected a free port on an address of this "
                             f"machine") from None
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.sock = sock
        config = uvicorn.Config(build_app(self.source, self.static_dir, self.stopping),
                                log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True, name="lblab-live")
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started and self.thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise UsageError(f"--live {self.host}:{self.port}: the server did not start")
        return self

    def stop(self):
        """End the event streams, stop the server thread and close the socket."""
        self.stopping.set()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(STOP_TIMEOUT_S)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
