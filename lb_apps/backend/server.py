"""Tunable HTTP/1.1 backend: uvloop, ``asyncio.Protocol`` callbacks and httptools, no coroutines per request.

Decisions (service times, capacity, errors, faults, records) come from ``lb_apps.backend.model``;
this shell only parses, times and writes. A request with zero service time is answered inside the
``data_received`` callback that completed it: no task, no await, no timer.
"""
import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time

import httptools

from lb_apps.backend import model as model
from lb_apps.host_settings import add_renamed_flags, check_record_path, settings_from_argv
from lblab_core import entry
from lblab_core.errors import UsageError
from lb_apps.records import RecordWriter

STATUS_LINES = {
    200: b"HTTP/1.1 200 OK\r\n", 400: b"HTTP/1.1 400 Bad Request\r\n",
    404: b"HTTP/1.1 404 Not Found\r\n", 405: b"HTTP/1.1 405 Method Not Allowed\r\n",
    500: b"HTTP/1.1 500 Internal Server Error\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
}
BODY_BLOCK_BYTES = 64 * 1024        # bodies up to this size are cached; larger ones are repeated blocks
BODY_CACHE_ENTRIES = 256
MAX_REQUEST_ID_BYTES = 200
FLUSH_RECORDS_AT = 5000             # flush early when this many records are buffered
CONTROL_PATHS = (b"/health", b"/stats", b"/admin/fault")


class ListenError(Exception):
    """The backend cannot open its listening socket (address in use, bad address...)."""


class Backend:
    """Server-wide state of one backend: config, counters, capacity slots, fault mode, records.

    Args:
        cfg (lb_apps.backend.model.BackendConfig): validated settings.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.loop = None
        service_rng, error_rng = model.seeded_rngs(cfg.seed)
        self.sample_service = model.make_service_sampler(
            cfg.service_dist, cfg.service_mean_ms / 1000.0, cfg.service_sigma, service_rng)
        self.fail = model.make_error_decider(cfg.error_rate, error_rng)
        self.capacity = cfg.capacity
        self.in_service = 0
        self.waiting = collections.deque()
        self.hung = 0
        self.requests = 0
        self.status_counts = collections.Counter()
        self.bytes_sent = 0
        self.connections = set()
        self.seq = 0
        self.fault_name = "none"
        self.fault = model.FAULT_MODES["none"]
        self.slow_delay = cfg.slow_delay_ms / 1000.0    # seconds, as the fault API's delay
        self._fault_timer = None
        self._servers = []
        self.port = cfg.port
        self.writer = None
        self._flush_timer = None
        self._body_cache = {}
        self._block = b"x" * BODY_BLOCK_BYTES
        common = b"X-Backend: " + cfg.name.encode() + b"\r\nContent-Type: text/plain\r\n"
        if cfg.cache_control is not None:
            common += b"Cache-Control: " + cfg.cache_control.encode("latin-1") + b"\r\n"
        self._common = common
        self.now = time.time

    # ----- lifecycle -----------------------------------------------------------------------

    async def start(self):
        """Open the records file and start listening; returns the bound port."""
        self.loop = asyncio.get_running_loop()
        if self.cfg.record:
            self.writer = RecordWriter(self.cfg.record, encode=model.make_line_encoder(self.cfg.name))
            self._flush_timer = self.loop.call_later(self.cfg.flush_period_s, self._periodic_flush)
        await self._listen(self.cfg.port)
        if self.cfg.fault != "none":
            self.set_fault(self.cfg.fault, None, None)
        return self.port

    async def _listen(self, port):
        try:
            server = await self.loop.create_server(lambda: Connection(self), self.cfg.host,
                                                   port, reuse_address=True, backlog=1024)
        except OSError as exc:
            raise ListenError(f"cannot listen on {self.cfg.host}:{port}: "
                              f"{exc.strerror or exc}") from None
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]

    def _stop_listening(self):
        for server in self._servers:
            server.close()
        self._servers = []

    def close(self):
        """Stop listening, drop connections, flush and close the records file."""
        self._stop_listening()
        if self._fault_timer is not None:
            self._fault_timer.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for conn in list(self.connections):
            conn.transport.abort()
        if self.writer is not None:
            self.writer.close()

    def _periodic_flush(self):
        self.writer.flush()
        self._flush_timer = self.loop.call_later(self.cfg.flush_period_s, self._periodic_flush)

    def set_fault(self, name, delay, duration):
        """Switch fault mode (``duration`` seconds later back to ``none`` if given)."""
        if self._fault_timer is not None:
            self._fault_timer.cancel()
            self._fault_timer = None
        old = self.fault
        self.fault_name, self.fault = name, model.FAULT_MODES[name]
        if delay is not None:
            self.slow_delay = delay
        if old.listen and not self.fault.listen:
            self._stop_listening()
        elif not old.listen and self.fault.listen:
            self.loop.create_task(self._listen(self.port))
        if duration is not None and name != "none":
            self._fault_timer = self.loop.call_later(duration, self.set_fault, "none", None, None)

    # ----- the per-request path -------------------------------------------------------------

    def body(self, size):
        """Return the response body of ``size`` bytes (a cached object or a list of blocks)."""
        cached = self._body_cache.get(size)
        if cached is not None:
            return cached
        if size <= BODY_BLOCK_BYTES:
            cached = self._block[:size]
            if len(self._body_cache) < BODY_CACHE_ENTRIES:
                self._body_cache[size] = cached
            return cached
        full, rest = divmod(size, BODY_BLOCK_BYTES)
        return [self._block] * full + ([self._block[:rest]] if rest else [])

    def head(self, status, length, keep, rid):
        """Return the status line and headers of a response."""
        head = STATUS_LINES[status] + self._common + b"Content-Length: %d\r\n" % length
        if rid is not None:
            head += b"X-Request-Id: " + rid + b"\r\n"
        return head + (b"Connection: keep-alive\r\n\r\n" if keep else b"Connection: close\r\n\r\n")

    def handle(self, conn, method, url, rid, keep):
        """Take one complete request from ``conn``: control path, reject, queue or serve."""
        arrival = self.now()
        path, _, query = url.partition(b"?")
        if path in CONTROL_PATHS:
            self.control(conn, method, path, query, rid, keep)
            return
        self.requests += 1
        decision = model.admit(self.in_service, len(self.waiting), self.capacity,
                               self.cfg.overflow, self.cfg.queue_limit)
        if decision == model.SERVE:
            self.serve(conn, method, path, rid, keep, arrival, 0.0)
        elif decision == model.QUEUE:
            self.waiting.append((conn, method, path, rid, keep, arrival))
        else:
            self.respond(conn, method, path, rid, keep, arrival, 0.0, 0.0, 503, 0)

    def serve(self, conn, method, path, rid, keep, arrival, wait):
        """Start serving a request that holds a capacity slot."""
        fault = self.fault
        if not fault.answer:
            self.hung += 1
            self._record(rid, arrival, wait, 0.0, 0, 0, method, path, conn.client)
            self._release()
            return
        service = self.sample_service()
        if fault.extra_delay:
            service += self.slow_delay
        self.in_service += 1
        if service > 0:
            self.loop.call_later(service, self.finish, conn, method, path, rid, keep, arrival,
                                 wait, service)
        else:
            self.finish(conn, method, path, rid, keep, arrival, wait, service)

    def finish(self, conn, method, path, rid, keep, arrival, wait, service):
        """Service time is over: answer, then give the slot to the next queued request."""
        self.in_service -= 1
        if self.fail():
            status, size = 500, 0
        else:
            status, size = model.size_for_path(path.decode("latin-1"), self.cfg.response_size)
        self.respond(conn, method, path, rid, keep, arrival, wait, service, status, size)
        self._release()

    def _release(self):
        if self.waiting and (self.capacity is None or self.in_service < self.capacity):
            conn, method, path, rid, keep, arrival = self.waiting.popleft()
            self.serve(conn, method, path, rid, keep, arrival, self.now() - arrival)

    def respond(self, conn, method, path, rid, keep, arrival, wait, service, status, size):
        """Write the response (or half of it in fault mode ``close``) and buffer its record."""
        transport = conn.transport
        if self.fault.truncate:
            head = self.head(status, size, True, rid)
            # half the body; with no body to cut, half the headers
            cut = head + self._block[:min(size // 2, BODY_BLOCK_BYTES)] if size else \
                head[:len(head) // 2]
            sent = 0
            if not transport.is_closing():
                transport.write(cut)
                sent = len(cut)
                transport.close()
            self._record(rid, arrival, wait, service, 0, sent, method, path, conn.client)
            conn.done(False)
            return
        body = self.body(size) if method != b"HEAD" else b""
        head = self.head(status, size, keep, rid)
        sent = 0
        if not transport.is_closing():
            if type(body) is bytes:
                transport.write(head + body)
            else:
                transport.writelines([head] + body)
            sent = len(head) + (size if method != b"HEAD" else 0)
        self.status_counts[status] += 1
        self.bytes_sent += sent
        self._record(rid, arrival, wait, service, status, sent, method, path, conn.client)
        conn.done(keep)

    def _record(self, rid, arrival, wait, service, status, sent, method, path, client):
        writer = self.writer
        if writer is None:
            return
        self.seq += 1   # numbers the records: the id of a request that sent no X-Request-Id
        writer.add((rid, self.seq, arrival, wait, service, status, sent, method, path, client))
        if len(writer) >= FLUSH_RECORDS_AT:
            writer.flush()

    # ----- control paths --------------------------------------------------------------------

    def control(self, conn, method, path, query, rid, keep):
        """Answer /health, /stats and POST /admin/fault (never recorded, never faulted)."""
        if path == b"/health" and method in (b"GET", b"HEAD"):
            status = self.fault.health_status
            text = "ok\n" if status == 200 else f"fault {self.fault_name}\n"
        elif path == b"/stats" and method in (b"GET", b"HEAD"):
            status, text = 200, json.dumps(self.stats(), sort_keys=True) + "\n"
        elif path == b"/admin/fault" and method == b"POST":
            try:
                mode, delay, duration = model.parse_fault_query(query.decode("latin-1"))
            except model.FaultRequestError as exc:
                status, text = 400, f"{exc}\n"
            else:
                self.set_fault(mode, delay, duration)
                status = 200
                text = json.dumps({"fault": mode, "slow_delay_ms": self.slow_delay * 1000.0,
                                   "duration_s": duration}, sort_keys=True) + "\n"
        else:
            status, text = 405, f"method {method.decode('latin-1')} not allowed here\n"
        body = text.encode()
        head = self.head(status, len(body), keep, rid)
        conn.transport.write(head + (body if method != b"HEAD" else b""))
        conn.done(keep)

    def stats(self):
        """Return the counters served by ``GET /stats``."""
        return {"backend": self.cfg.name, "requests": self.requests,
                "in_flight": self.in_service, "queued": len(self.waiting), "hung": self.hung,
                "status": {str(k): v for k, v in sorted(self.status_counts.items())},
                "bytes": self.bytes_sent, "connections": len(self.connections),
                "fault": self.fault_name}


class Connection(asyncio.Protocol):
    """One client connection: httptools callbacks, requests answered strictly in order."""

    def __init__(self, backend):
        self.backend = backend
        self.transport = None
        self.client = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.rid = None
        self.busy = False
        self.pending = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if peer else None
        self.backend.connections.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.backend.connections.discard(self)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()

    def _bad_request(self):
        body = b"bad request\n"
        self.transport.write(self.backend.head(400, len(body), False, None) + body)
        self.transport.close()
        self.closed = True

    # httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.rid = None

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        if len(name) == 12 and name.lower() == b"x-request-id" and \
                len(value) <= MAX_REQUEST_ID_BYTES:
            self.rid = value

    def on_message_complete(self):
        parser = self.parser
        request = (parser.get_method(), self.url, self.rid, parser.should_keep_alive())
        if self.busy:
            if self.pending is None:
                self.pending = collections.deque()
            self.pending.append(request)
            return
        self.busy = True
        self.backend.handle(self, *request)

    def done(self, keep):
        """The current response is written; close or take the next pipelined request."""
        self.busy = False
        if not keep:
            if not self.closed:
                self.transport.close()
                self.closed = True
            return
        if self.pending:
            self.busy = True
            self.backend.handle(self, *self.pending.popleft())


# ----- command line ------------------------------------------------------------------------

def build_parser():
    """Return the argparse parser of ``lblab backend``."""
    p = argparse.ArgumentParser(
        prog="lblab backend", argument_default=argparse.SUPPRESS,
        description="Run a tunable HTTP/1.1 backend (one JSONL record per request with --record). "
                    "Flags override the --config file.")
    p.add_argument("--name", help="backend name, sent as X-Backend (default backend)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--config", help="JSON or YAML file of settings (same names, underscores)")
    p.add_argument("--check", action="store_true",
                   help="check the settings (file and flags) as a start would, print one line "
                        "and exit")
    p.add_argument("--record", help="JSONL file of request records to create")
    p.add_argument("--response-size", type=int, help="body bytes for paths other than /size/<n>")
    p.add_argument("--service-dist", choices=model.SERVICE_DISTS,
                   help="service time distribution (default fixed)")
    p.add_argument("--service-mean-ms", type=float,
                   help="mean service time, milliseconds (default 0), as the spec's "
                        "service.mean_ms")
    p.add_argument("--service-sigma", type=float, help="lognormal sigma (default 0.5)")
    p.add_argument("--capacity", type=int, help="most requests served at once (default unlimited)")
    p.add_argument("--overflow", choices=model.OVERFLOW_POLICIES,
                   help="when at capacity: queue (default) or reject with 503")
    p.add_argument("--queue-limit", type=int, help="most queued requests, then 503")
    p.add_argument("--error-rate", type=float, help="fraction of requests answered 500")
    p.add_argument("--seed", type=int, help="seed of service times and errors (default 1)")
    p.add_argument("--fault", choices=sorted(model.FAULT_MODES), help="initial fault mode")
    p.add_argument("--slow-delay-ms", type=float,
                   help="extra milliseconds of service in fault mode slow (default 100)")
    p.add_argument("--cache-control", help="Cache-Control header value to send")
    p.add_argument("--flush-period-s", type=float,
                   help="seconds between record flushes (default 0.25)")
    add_renamed_flags(p, model.RENAMED_SETTINGS)
    return p


def config_from_argv(argv):
    """Parse flags (and the --config file) into a validated ``BackendConfig``.

    Raises:
        lblab_core.errors.UsageError: bad file or setting (an ``InputError``: every problem).
    """
    return _parse(argv)[0]


def _parse(argv):
    cfg, extra = settings_from_argv(build_parser(), model.BackendConfig, argv,
                                    model.RENAMED_SETTINGS)
    check_record_path(cfg.record)
    return cfg, extra.get("check", False)


async def serve(cfg, stop, ready=None):
    """Run one backend until ``stop`` (an asyncio.Event) is set; always flushes records.

    Args:
        cfg (lb_apps.backend.model.BackendConfig): settings.
        stop (asyncio.Event): set it to stop.
        ready (callable|None): called with the ``Backend`` once it listens.
    """
    backend = Backend(cfg)
    try:
        await backend.start()
        if ready is not None:
            ready(backend)
        await stop.wait()
    finally:
        backend.close()


def main(argv=None):
    """Run ``lblab backend``; SIGTERM/SIGINT stop it cleanly after flushing records.

    With ``--check`` it runs every check a start runs (settings, records file), prints one
    line and returns 0 without listening.
    """
    cfg, check = _parse(sys.argv[1:] if argv is None else argv)
    if check:
        print(f"lblab backend: {cfg.name} OK: would listen on {cfg.host}:{cfg.port}, "
              f"{cfg.service_dist} service mean {cfg.service_mean_ms:g} ms, capacity "
              f"{cfg.capacity or 'unlimited'}, fault {cfg.fault}", flush=True)
        return 0
    import uvloop

    async def run():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(backend):
            print(f"backend {cfg.name} listening on {cfg.host}:{backend.port} pid {os.getpid()}",
                  flush=True)
        await serve(cfg, stop, ready)

    try:
        uvloop.run(run())
    except FileExistsError as exc:
        raise UsageError(f"--record {exc.filename} already exists; results are never "
                         "overwritten") from None
    except OSError as exc:  # the records file (its folder, permissions); listen errors below
        if exc.filename is None:
            raise
        raise UsageError(f"--record {exc.filename}: cannot create it: {exc.strerror}") from None
    except ListenError as exc:
        raise UsageError(str(exc)) from None
    return 0


class BackendThread:
    """A backend on its own event loop in a background thread (tests, notebooks, benchmarks).

    Args:
        cfg (lb_apps.backend.model.BackendConfig): settings (port 0 picks a free port).
    Attributes:
        port (int): the bound port, once ``start`` returned.
        backend (Backend): the running backend (read its counters between requests only).
    """

    def __init__(self, cfg):
        import threading
        self.cfg = cfg
        self.port = None
        self.backend = None
        self.error = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"backend-{cfg.name}",
                                        daemon=True)
        self._loop = None
        self._stop = None

    def _run(self):
        import uvloop

        async def run():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(backend):
                self.backend, self.port = backend, backend.port
                self._ready.set()
            await serve(self.cfg, self._stop, ready)
        try:
            uvloop.run(run())
        except BaseException as exc:  # reported by start()
            self.error = exc
        finally:
            self._ready.set()

    def start(self, timeout=5.0):
        """Start the thread and wait until the backend listens; returns self."""
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"backend {self.cfg.name} did not start: {self.error!r}")
        return self

    def call(self, func, *args, timeout=5.0):
        """Run ``func(*args)`` on the backend's loop and wait for it; returns its result."""
        import concurrent.futures
        done = concurrent.futures.Future()

        def invoke():
            try:
                done.set_result(func(*args))
            except BaseException as exc:
                done.set_exception(exc)
        self._loop.call_soon_threadsafe(invoke)
        return done.result(timeout)

    def stop(self, timeout=5.0):
        """Stop the backend, flush its records and join the thread (again: no-op)."""
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self):
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # `python -m lb_apps.backend.server ...` (how processes start on Mininet hosts) is `lblab backend`
    sys.exit(entry.run("backend", main))
