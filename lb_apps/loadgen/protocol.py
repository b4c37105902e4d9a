"""The load generator's per-request objects: a ``Request`` and the ``ClientConnection`` that
carries it (``asyncio.Protocol`` callbacks and httptools' response parser).

A request is a small slots object moved between callbacks, never a coroutine; the connection
reports to its generator (``lb_apps.loadgen.client.LoadGenerator``: ``complete``, ``fail``,
``connection_lost``, ``jars``), which owns the pool, the schedule and the records.
"""
import asyncio
import time

import httptools

from lb_apps.loadgen import workload as wl

# Timestamps come from time.monotonic (ns resolution): uvloop's loop.time() is cached with
# millisecond resolution, too coarse for sub-millisecond latencies. Both read CLOCK_MONOTONIC,
# so the loop's timers (call_at, sleep) and these stamps share one time base.
now = time.monotonic


class Request:
    """One request in flight (plain slots object: cheap to create, no coroutine)."""
    __slots__ = ("rid", "scheduled", "start", "entry", "data", "user", "conn", "status",
                 "nbytes", "backend", "cache", "warmup", "timer", "done", "on_done", "error",
                 "queued", "pool_wait", "connect")
    # timer: the monotonic time at which the request times out; queued: when it started
    # waiting for a free pooled connection (None: it never had to)

    def __init__(self, rid, scheduled, entry, data, user, warmup, on_done):
        self.rid, self.scheduled, self.entry, self.data = rid, scheduled, entry, data
        self.user, self.warmup, self.on_done = user, warmup, on_done
        self.start = None
        self.conn = None
        self.status = None
        self.nbytes = 0
        self.backend = None
        self.cache = None
        self.timer = None
        self.done = False
        self.error = None
        self.queued = None
        self.pool_wait = 0.0
        self.connect = 0.0      # seconds its new connection took to connect (0: reused)


class ClientConnection(asyncio.Protocol):
    """One pooled connection carrying one request at a time."""

    def __init__(self, gen):
        self.gen = gen
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.req = None
        self.closed = False
        self.head_done = False

    def connection_made(self, transport):
        self.transport = transport

    def send(self, req, kind):
        """Write ``req`` on this connection (``kind`` is "new" or "reused")."""
        self.req = req
        req.conn = kind
        req.start = now()
        self.transport.write(req.data)

    def data_received(self, data):
        req = self.req
        if req is None:                        # bytes nobody asked for: drop the connection
            self.transport.abort()
            return
        req.nbytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.req is req:
                self.req = None
                self.transport.abort()
                self.gen.fail(req, "bad_response")
        finally:
            self.head_done = False

    def on_header(self, name, value):
        if len(name) == 9 and name.lower() == b"x-backend":
            self.req.backend = value.decode("latin-1")
        elif len(name) == 7 and name.lower() == b"x-cache":
            self.req.cache = value.decode("latin-1")
        elif len(name) == 10 and self.gen.jars is not None and name.lower() == b"set-cookie":
            pair = wl.parse_set_cookie(value.decode("latin-1"))
            if pair is not None:
                self.gen.jars[self.req.user][pair[0]] = pair[1]

    def on_headers_complete(self):
        req = self.req
        if req is not None and req.entry.method == "HEAD":
            # A HEAD response has headers only, whatever Content-Length says, and httptools'
            # response parser cannot be told: finish here and start a fresh parser.
            parser = self.parser
            self.parser = httptools.HttpResponseParser(self)
            self.req = None
            # the old parser may still call on_message_complete in this feed_data (no body
            # announced): that call must not complete the next request
            self.head_done = True
            req.status = parser.get_status_code()
            self.gen.complete(self, req, parser.should_keep_alive())

    def on_message_complete(self):
        if self.head_done:       # the HEAD response finished in on_headers_complete
            return
        req, self.req = self.req, None
        req.status = self.parser.get_status_code()
        self.gen.complete(self, req, self.parser.should_keep_alive())

    def connection_lost(self, exc):
        self.closed = True
        req, self.req = self.req, None
        if req is not None and not req.done:
            self.gen.fail(req, "reset" if isinstance(exc, ConnectionResetError) else "closed")
        self.gen.connection_lost(self)
