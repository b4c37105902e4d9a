"""The L7 proxy's client side: one client connection (asyncio.Protocol callbacks) that parses,
routes, balances and answers requests; the upstream side is ``lb_apps.proxy.upstream``.

httptools finds message boundaries and headers; heads are rebuilt (hop-by-hop stripped,
forwarding headers added) and bodies forwarded as the bytes arrive, re-framed only when chunked.
Writes made while handling one read are joined into one ``transport.write``. Timeouts are
checked by the server's periodic sweep (``ClientConnection.tick``), not by a timer per request.
"""
import asyncio
import sys
import time

import httptools

from lb_apps.custom_balancer import BalancerFileError
from lb_apps.proxy import http_rules as http_rules
from lb_apps.proxy.cache import CacheEntry, request_lookup_policy, response_ttl
from lb_apps.proxy.http_rules import (IDEMPOTENT_METHODS, RequestError, analyze_request,
                                      analyze_response, build_request_head, origin_form)
from lb_apps.proxy.runtime import MAX_IDLE_PER_BACKEND
from lb_apps.proxy.upstream import UpstreamConnection
from lb_apps.proxy.routing import challenge, check_auth
from lb_apps.proxy.sticky import set_cookie_line, verify

# Client read states.
IDLE, HEAD, BODY, DONE = 0, 1, 2, 3
# close_after_flush values
CLOSE, LINGER = 1, 2
# Response body framing towards the client.
RAW, CHUNK = 0, 1
MAX_PIPELINED = 16  # queued requests per client before we stop reading
HEAD_SLACK_BYTES = 1024  # request line/CRLF overhead allowed beyond max_uri + max_header_bytes
# After an error response the write side is shut and input discarded this long before closing,
# so the client reads the response instead of losing it to a TCP RST (nginx "lingering close").
LINGER_SEC = 2.0
_perf = time.perf_counter
_VIA_END = b"Via: 1.1 lblab\r\n\r\n"
# Forwarding lines by (client IP, Host, HTTP minor, proto), for requests without forwarding
# headers of their own: computed once per client and Host, not once per connection.
FWD_LINES_MAX = 4096
_FWD_LINES = {}


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: the connection reads no more requests."""


class _Refuse(Exception):
    def __init__(self, status, message=""):
        super().__init__(message)
        self.status = status


_METHOD_NAMES = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                          "PATCH", "TRACE")}


class Request:
    """One client request in flight through the proxy.

    Per-request state that is usually unused lives in class-level defaults, so creating a
    request assigns only what every request needs (this object is made once per request).
    """

    complete = responded = cache_store = False
    up = backend = group = upstream_head = set_cookie = None
    cache_key = capture = cache_meta = connecting = sticky_name = None
    replay_bytes = body_bytes = attempts = capture_bytes = 0
    mode = RAW
    t0 = connect_deadline = 0.0
    x_cache = b""
    tried = ()

    def __init__(self, method, url, headers, head, minor, keep):
        self.method = method
        self.method_str = method_str = _METHOD_NAMES.get(method) or method.decode("latin-1")
        self.url = url
        self.headers = headers
        self.head = head
        self.minor = minor
        self.keep = keep
        self.out = []
        self.replay = [] if method_str in IDEMPOTENT_METHODS else None
        self.has_body = head.chunked or bool(head.content_length)


class ClientConnection(asyncio.Protocol):
    """One client connection: parse requests, route, balance, forward, answer.

    Immutable starting values are class-level defaults, so a new connection (one per request
    when clients close after each) assigns only what is its own.
    """

    transport = parser = local = active = cur = pending_error = None
    closed = close_after_flush = lingering = False
    state = IDLE
    deadline = 0.0
    url = b""
    header_bytes = head_bytes = 0
    fwd_host = fwd_lines = None  # forwarding lines of the last plain request (see dispatch)
    fwd_minor = -1

    def __init__(self, server):
        self.server = server
        self.loop = server.loop
        self.queue = []
        self.wbuf = []
        self.headers = []
        rt = server.rt
        self.limits = rt.limits
        self.timeouts = rt.timeouts

    # -- connection lifecycle ---------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        self.peer = peer if peer else ("0.0.0.0", 0)
        rt = server.rt
        self.parser = httptools.HttpRequestParser(self)
        if len(server.conns) >= rt.limits.max_connections or server.draining:
            server.conns.add(self)
            rt.local_responses[503] += 1
            self.wbuf.append(http_rules.error_response(503, "too many connections"))
            self.close_after_flush = LINGER
            self.flush()
            return
        server.conns.add(self)
        self.deadline = server.now + rt.timeouts.keepalive_idle

    def connection_lost(self, exc):
        self.closed = True
        self.server.conns.discard(self)
        self.parser = None  # the parser refers back to this object: free both without the GC
        req = self.active
        if req is not None:
            self.active = None
            if req.connecting is not None:
                req.connecting.cancel()
            up = req.up
            if up is not None:
                # the client left mid-response: the upstream state is unknown, do not pool it
                up.detach()
                up.close()
            self._release_backend(req, ok=True)

    def eof_received(self):
        """The client half-closed its side: answer what it sent in full, then close.

        As HAProxy does, a complete request followed by a shut write side still gets its
        response; a request cut off mid-head or mid-body is abandoned. Returning True keeps
        the transport open for writing (asyncio closes it otherwise). A TLS transport cannot
        stay half-open (asyncio ignores True there, with a warning): it closes as before.
        """
        if self.closed or self.lingering or self.server.tls:
            return False
        if self.state in (HEAD, BODY) and self.cur is not None and not self.cur.responded:
            return False  # an incomplete request: nothing more will come
        if self.active is None and not self.queue:
            return False  # idle: nothing to answer
        (self.queue[-1] if self.queue else self.active).keep = False  # close after the last
        self.state = DONE
        return True

    def pause_writing(self):
        up = self.active.up if self.active is not None else None
        if up is not None and up.transport is not None:
            up.transport.pause_reading()
            up.paused = True

    def resume_writing(self):
        up = self.active.up if self.active is not None else None
        if up is not None and up.paused and up.transport is not None:
            up.paused = False
            up.transport.resume_reading()

    def tick(self, now):
        """Enforce client and upstream deadlines (called by the server's sweep)."""
        if self.closed:
            return
        if self.lingering:
            if now >= self.deadline:
                self.abort()
            return
        req = self.active
        if req is not None:
            if req.connecting is not None and now >= req.connect_deadline:
                req.connecting.cancel()  # its done-callback reports the connect failure
            elif req.up is not None and now >= req.up.deadline and not req.up.paused:
                # (a paused upstream waits for a slow client, not the other way round)
                self.upstream_failed(req, 504, "upstream response timeout")
                self.flush()
                return
        if now < self.deadline:
            return
        if self.state in (HEAD, BODY):
            if req is None or (req is self.cur and not req.responded):
                self.refuse(408, "request not received in time")
            elif req is self.cur:
                self.abort()  # answered, but the rest of its body never came
            # else an earlier request is still being answered: look again later
        elif self.state == IDLE and req is None and not self.queue:
            self.abort()  # idle keep-alive connection: close quietly
        self.flush()

    def close_if_idle(self):
        """For a graceful drain: close now if nothing is in progress on this connection."""
        if self.active is None and not self.queue and self.state == IDLE:
            self.abort()

    def abort(self):
        """Close the connection (pending writes are flushed by the transport)."""
        if not self.closed:
            self.closed = True
            self.server.conns.discard(self)
            self.flush()
            self.transport.close()

    def flush(self):
        """Write what was produced while handling one event, as one write each way."""
        wbuf = self.wbuf
        if wbuf:
            if not self.transport.is_closing():
                self.transport.write(b"".join(wbuf) if len(wbuf) > 1 else wbuf[0])
            wbuf.clear()
        req = self.active
        if req is not None and req.up is not None and req.out:
            req.up.send(req)
        if self.close_after_flush and not self.closed:
            if self.close_after_flush == LINGER and self.transport.can_write_eof():
                self.close_after_flush = False
                self.linger()
            else:
                self.abort()

    def linger(self):
        """Shut the write side, discard input for LINGER_SEC, then close (see LINGER_SEC)."""
        if self.lingering or self.closed:
            return
        self.lingering = True
        self.state = DONE
        self.transport.write_eof()
        self.deadline = self.server.now + LINGER_SEC
        self.transport.resume_reading()

    # -- reading requests -------------------------------------------------------------

    def data_received(self, data):
        if self.closed or self.state == DONE:
            return
        if self.state == IDLE:
            self.state = HEAD
            self.deadline = self.server.now + self.timeouts.client_header
            self.head_bytes = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._after_upgrade(data, exc.args[0])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Stop):
                pass
            elif isinstance(cause, _Refuse):
                self.refuse(cause.status, str(cause))
            else:
                self.refuse(http_rules.parser_error_status(str(exc)), f"bad request: {exc}")
        if self.state == HEAD:
            self.head_bytes += len(data)
            limits = self.server.rt.limits
            if self.head_bytes > limits.max_header_bytes + limits.max_uri + HEAD_SLACK_BYTES:
                self.refuse(431, "request header block too large")
        self.flush()

    def _after_upgrade(self, data, offset):
        # llhttp stops after an Upgrade/CONNECT head. on_headers_complete refused CONNECT and
        # bodies; an Upgrade was stripped (hop-by-hop), so parse the rest as plain HTTP.
        if self.closed or self.state == DONE:
            return
        self.parser = httptools.HttpRequestParser(self)
        rest = data[offset:]
        if rest:
            self.data_received(rest)

    def on_message_begin(self):
        if self.state == DONE:
            # the connection answered its last request (an error, or a close decided while the
            # body was still arriving in the same read): bytes after it are not requests
            raise _Stop
        rt = self.server.rt  # limits and timeouts are read per request (they change on reload)
        self.limits = rt.limits
        self.timeouts = rt.timeouts
        if self.state != HEAD:
            self.state = HEAD
            self.deadline = self.server.now + rt.timeouts.client_header
            self.head_bytes = 0
        self.url = b""
        self.headers = []
        self.header_bytes = 0

    def on_url(self, url):
        self.url += url
        if len(self.url) > self.limits.max_uri:
            raise _Refuse(414, "request target too long")

    def on_header(self, name, value):
        headers = self.headers
        headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4
        limits = self.limits
        if self.header_bytes > limits.max_header_bytes:
            raise _Refuse(431, "request header fields too large")
        if len(headers) > limits.max_headers:
            raise _Refuse(431, "too many request header fields")

    def on_headers_complete(self):
        parser = self.parser
        version = parser.get_http_version()
        if version == "1.1":
            minor = 1
        elif version == "1.0":
            minor = 0
        else:
            raise _Refuse(505, f"HTTP version {version} not supported")
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Refuse(501, "CONNECT is not supported")
        rt = self.server.rt
        try:
            head = analyze_request(self.headers, minor, rt.protected)
            url = self.url
            if url[:1] != b"/":  # origin-form passes as is; anything else is checked
                url = origin_form(method, url, head)
        except RequestError as exc:
            raise _Refuse(exc.status, str(exc)) from None
        if (head.chunked or head.content_length) and parser.should_upgrade():
            raise _Refuse(501, "Upgrade is not supported (and not with a request body)")
        if head.content_length is not None and head.content_length > rt.limits.max_body:
            raise _Refuse(413, "request body too large")
        keep = minor == 1 and not head.conn_close and parser.should_keep_alive()
        req = Request(method, url, self.headers, head, minor, keep)
        self.cur = req
        self.state = BODY
        if self.active is None and not self.queue:
            self.start(req)  # (a non-empty queue has a _next scheduled: answers stay in order)
        else:
            self.queue.append(req)
            if len(self.queue) >= MAX_PIPELINED:
                self.transport.pause_reading()

    def on_body(self, data):
        req = self.cur
        req.body_bytes += len(data)
        if req.body_bytes > self.server.rt.limits.max_body:
            raise _Refuse(413, "request body too large")
        self.deadline = self.server.now + self.timeouts.client_header
        if req.head.chunked:
            req.out.append(b"%x\r\n" % len(data))
            req.out.append(data)
            req.out.append(b"\r\n")
        else:
            req.out.append(data)

    def on_message_complete(self):
        req = self.cur
        if req is None:
            return
        if req.head.chunked:
            req.out.append(b"0\r\n\r\n")
        req.complete = True
        self.cur = None
        if req.keep and self.state != DONE:
            self.state = IDLE
            self.deadline = self.server.now + self.timeouts.keepalive_idle
        else:
            self.state = DONE  # no further requests are read on this connection

    def refuse(self, status, message):
        """Answer a request the proxy will not forward, then close the connection."""
        if self.closed:
            return
        self.state = DONE
        req = self.active
        self.queue.clear()
        if req is not None and req is not self.cur and req.complete:
            # an earlier request is still being answered: send the error after it
            self.pending_error = (status, message)
            self.transport.pause_reading()
            return
        if req is not None:
            self.active = None
            self._drop_upstream(req, ok=True)
            if req.responded:
                self.abort()
                return
        self.server.rt.local_responses[status] += 1
        self.wbuf.append(http_rules.error_response(status, message))
        self.close_after_flush = LINGER

    # -- dispatching ------------------------------------------------------------------

    def start(self, req):
        """Route, authenticate, look up the cache, choose a backend and send the request."""
        rt = self.server.rt
        self.active = req
        req.t0 = _perf()
        group = rt.default
        route = None
        head = req.head
        if rt.router.rules:
            path, query = http_rules.split_target(req.url)
            route = rt.router.match(req.method_str, path, query, head.host, req.headers,
                                    head.cookie)
        if route is None:
            rt.default_hits += 1
        else:
            rt.route_hits[route.index] += 1
            group = rt.groups[route.group]
            if route.auth is not None and not check_auth(route.auth, req.head.authorization):
                self.respond_local(req, 401, "authentication required", challenge(route.auth))
                return
        req.group = group
        cache = rt.cache
        if cache is not None:
            serve, store = request_lookup_policy(req.method_str, req.head.cache_control,
                                                 req.head.pragma, req.head.authorization)
            req.x_cache = b"X-Cache: MISS\r\n"
            if serve or store:
                req.cache_key = (req.head.host, req.url)
                req.cache_store = store
            if serve:
                entry = cache.get(req.cache_key, req.headers, self.server.now)
                if entry is not None:
                    self.respond_cached(req, entry)
                    return
        backend = None
        if rt.sticky is not None:
            name = verify(_cookie_value(req.head.cookie, rt.sticky.cookie), rt.sticky.secret)
            member = group.members.get(name) if name is not None else None
            if member is not None and member.health.serving() and member.conf.weight > 0:
                backend = member
                req.sticky_name = name
        if backend is None:
            try:
                name = group.balancer.choose(
                    None if group.hash_type is None else self._hash_key(group, req))
            except BalancerFileError as exc:  # a balancer from a file failed: file and line
                print(f"lblab proxy: {exc}", file=sys.stderr, flush=True)
                self.respond_local(req, 500, f"balancer error: {exc}")
                return
            backend = None if name is None else group.members[name]
            if backend is None:
                self.respond_local(req, 503, f"no backend available in group {group.name!r}")
                return
        self.dispatch(req, backend)

    def _hash_key(self, group, req):
        kind = group.hash_type
        if kind is None:
            return None
        if kind == "client_ip":
            return self.peer[0]
        if kind == "uri":
            return req.url
        if kind == "five_tuple":
            local = self.local
            if local is None:  # asked for only here: a getsockname() per connection saved
                try:
                    local = self.transport.get_extra_info("sockname")
                except OSError:
                    local = None
                local = self.local = local if local else ("0.0.0.0", 0)
            return ("tcp", self.peer[0], self.peer[1], local[0], local[1])
        if kind == "cookie":
            return _cookie_value(req.head.cookie, group.conf.hash_key.name)
        for name, value in req.headers:
            if name.lower() == group.hash_name:
                return value
        return None

    def dispatch(self, req, backend):
        """Send ``req`` to ``backend`` over a pooled or new connection."""
        req.backend = backend
        sticky = self.server.rt.sticky
        if sticky is not None:
            # a new or re-balanced client (unknown, tampered or dead backend) gets a new cookie
            req.set_cookie = None if backend.name == req.sticky_name else set_cookie_line(
                sticky.cookie, backend.name, sticky.secret, self.server.tls)
        req.tried += (backend.name,)
        req.attempts += 1
        backend.in_flight += 1
        group = req.group
        if group.tracks_in_flight:
            group.balancer.on_open(backend.name)
        if req.upstream_head is None:
            head = req.head
            if head.xff is None and head.forwarded is None and head.via is None:
                # the common case: the same lines as the last request on this connection
                if head.host == self.fwd_host and req.minor == self.fwd_minor:
                    extra = self.fwd_lines
                else:  # a new connection: the lines are shared by a client's connections
                    key = (self.peer[0], head.host, req.minor, self.server.proto)
                    extra = _FWD_LINES.get(key)
                    if extra is None:
                        if len(_FWD_LINES) >= FWD_LINES_MAX:
                            _FWD_LINES.clear()
                        extra = _FWD_LINES[key] = http_rules.forwarding_lines(
                            head, self.peer[0], self.server.proto, req.minor)
                    self.fwd_lines = extra
                    self.fwd_host = head.host
                    self.fwd_minor = req.minor
            else:
                extra = http_rules.forwarding_lines(head, self.peer[0], self.server.proto,
                                                    req.minor)
            if head.host is None:
                extra += b"Host: %s:%d\r\n" % (backend.address.encode(), backend.port)
            req.upstream_head = build_request_head(req.method, req.url, head, extra)
            req.out.insert(0, req.upstream_head)
        idle = backend.idle
        while idle:
            up = idle.pop()
            if not up.closed and not up.transport.is_closing():
                up.attach(self, req)
                return
        server = self.server
        req.connect_deadline = server.now + server.rt.timeouts.connect
        fut = asyncio.ensure_future(server.loop.create_connection(
            lambda: UpstreamConnection(backend, server), backend.address, backend.port,
            ssl=backend.ssl, server_hostname=backend.address if backend.ssl else None))
        req.connecting = fut
        fut.add_done_callback(lambda f, req=req: self._connected(req, f))

    def _connected(self, req, fut):
        req.connecting = None
        if fut.cancelled():
            exc = TimeoutError("connect timeout")
        else:
            exc = fut.exception()
        if req is not self.active or self.closed:
            if exc is None:
                fut.result()[1].close()
            return
        if exc is not None:
            self.connect_failed(req, exc)
        else:
            fut.result()[1].attach(self, req)
        self.flush()

    def connect_failed(self, req, exc):
        """A backend could not be reached: nothing was sent, so retry elsewhere (any method)."""
        backend = req.backend
        self._release_backend(req, ok=False)
        nxt = req.group.choose(self._hash_key(req.group, req), req.tried)
        if nxt is not None:
            self.dispatch(req, nxt)
            return
        self.respond_local(req, 502, f"cannot connect to backend {backend.name!r}: {exc}")

    def upstream_failed(self, req, status, message):
        """The backend failed after the request was sent: retry if safe, else answer ``status``."""
        up = req.up
        if up is not None:
            up.detach()
            up.close()
        self._release_backend(req, ok=False)
        if req.responded:
            self.abort()
            return
        if (req.replay is not None and req.attempts <= self.server.rt.retries):
            nxt = req.group.choose(self._hash_key(req.group, req), req.tried) or \
                req.group.choose(None)
            if nxt is not None:
                req.out[:0] = req.replay
                req.replay = []
                req.replay_bytes = 0
                self.dispatch(req, nxt)
                return
        self.respond_local(req, status, message)

    def _release_backend(self, req, ok):
        backend = req.backend
        if backend is None:
            return
        req.backend = None
        backend.in_flight -= 1
        group = req.group
        if group.tracks_in_flight and backend.name in group.members:
            group.balancer.on_close(backend.name)
        health = backend.health
        if ok:
            if health.passive_count == 0:
                return  # the common case: nothing to count
        else:
            backend.errors += 1
        if health.on_request(ok, self.server.now):
            backend.set_serving_in_balancers()

    def _drop_upstream(self, req, ok):
        if req.connecting is not None:
            req.connecting.cancel()
            req.connecting = None
        up = req.up
        if up is not None:
            up.detach()
            up.close()
        self._release_backend(req, ok)

    # -- answering --------------------------------------------------------------------

    def respond_local(self, req, status, message, extra=b""):
        """Answer ``req`` without a backend (401, 503, 502, ...)."""
        self.server.rt.local_responses[status] += 1
        close = not req.keep or self.server.draining or (req.has_body and not req.complete)
        self.wbuf.append(http_rules.error_response(status, message, close=close, extra=extra))
        req.responded = True
        self._finish(req, close)

    def respond_cached(self, req, entry):
        """Answer ``req`` from the cache."""
        close = not req.keep or self.server.draining
        age = entry.age(self.server.now)
        parts = [entry.head, b"Age: %d\r\nX-Cache: HIT\r\nContent-Length: %d\r\n"
                 % (age, len(entry.body))]
        if close:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if req.method != b"HEAD":
            parts.append(entry.body)
        self.wbuf.append(b"".join(parts))
        req.responded = True
        self._finish(req, close)

    def upstream_head(self, up, status, reason, headers):
        """The upstream response head arrived: rebuild it for the client."""
        req = self.active
        if status < 200:
            if status == 101:
                self.upstream_failed(req, 502, "backend switched protocols (not supported)")
                return
            if req.minor == 1:
                self.wbuf.append(b"HTTP/1.1 %d %s\r\n\r\n" % (status, reason))
            up.interim = True
            return
        resp = analyze_response(headers)
        keep = req.keep and not self.server.draining
        framing = b""
        if req.method == b"HEAD" or status == 204 or status == 304:
            req.mode = RAW
        elif resp.content_length is not None:
            req.mode = RAW
        elif resp.chunked and req.minor == 1:
            req.mode = CHUNK
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            req.mode = RAW
            keep = False
            if not resp.chunked:
                up.until_close = True
        req.keep = keep
        parts = [b"HTTP/1.1 %d " % status, reason, b"\r\n"]
        parts += resp.forward
        parts.append(framing)
        parts.append(b"Via: 1.1 lblab\r\n")
        parts.append(req.x_cache)
        if req.set_cookie is not None:
            parts.append(req.set_cookie)
        if not keep:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        self.wbuf.append(b"".join(parts))
        req.responded = True
        if req.cache_store and req.method == b"GET":
            ttl = response_ttl(status, resp.cache_control, resp.vary, resp.has_set_cookie,
                               resp.age)
            if ttl is not None:
                fwd = resp.forward
                kept = [b"HTTP/1.1 %d " % status, reason, b"\r\n"]
                for i in range(0, len(fwd), 4):
                    if fwd[i].lower() not in (b"content-length", b"age"):
                        kept += fwd[i:i + 4]
                kept.append(b"Via: 1.1 lblab\r\n")
                head = b"".join(kept)
                req.capture = []
                req.cache_meta = (status, head, ttl, resp.vary, self.server.rt.cache)
        if req.method == b"HEAD":
            up.head_only = True
            self.upstream_complete(up)

    def upstream_head_lean(self, raw_head):
        """The upstream head needs no rewriting (see UpstreamConnection): forward it plus Via."""
        req = self.active
        keep = req.keep = req.keep and not self.server.draining
        req.mode = RAW
        req.responded = True
        if keep and req.set_cookie is None and not req.x_cache:
            self.wbuf += (raw_head, _VIA_END)  # joined with the body at the flush
            return
        tail = b"Via: 1.1 lblab\r\n" + req.x_cache
        if req.set_cookie is not None:
            tail += req.set_cookie
        if not keep:
            tail += b"Connection: close\r\n"
        self.wbuf.append(raw_head + tail + b"\r\n")

    def upstream_body(self, data):
        """A piece of the upstream response body: forward it as is (or as one chunk)."""
        req = self.active
        if req.mode == CHUNK:
            self.wbuf.append(b"%x\r\n" % len(data))
            self.wbuf.append(data)
            self.wbuf.append(b"\r\n")
        else:
            self.wbuf.append(data)
        if req.capture is not None:
            req.capture_bytes += len(data)
            if req.capture_bytes > req.cache_meta[4].max_object_bytes:
                req.capture = None
            else:
                req.capture.append(data)

    def upstream_complete(self, up):
        """The upstream response ended: pool the connection, finish the request."""
        req = self.active
        if req.mode == CHUNK:
            self.wbuf.append(b"0\r\n\r\n")
        req.up = up.client = up.req = None  # detach
        backend = req.backend
        # pooled only when its framing is certain: the whole request went up (an early response
        # leaves the backend waiting for the rest of a body) and the response ended by framing
        if (req.complete and not up.closed and not up.until_close and up.parser.should_keep_alive()
                and not up.transport.is_closing() and not backend.retired
                and len(backend.idle) < MAX_IDLE_PER_BACKEND):
            backend.idle.append(up)
        else:
            up.close()
        backend.requests += 1
        backend.latency.append(_perf() - req.t0)
        # _release_backend(req, ok=True), inlined: this runs once per proxied request
        req.backend = None
        backend.in_flight -= 1
        group = req.group
        if group.tracks_in_flight and backend.name in group.members:
            group.balancer.on_close(backend.name)
        if backend.health.passive_count and backend.health.on_request(True, self.server.now):
            backend.set_serving_in_balancers()
        if req.capture is not None:
            status, head, ttl, vary, store = req.cache_meta
            store.put(req.cache_key, req.headers, vary,
                      CacheEntry(status, head, b"".join(req.capture), self.server.now, ttl))
        self._finish(req, not req.keep or self.server.draining or
                     (req.has_body and not req.complete))

    def upstream_lost(self, up, exc):
        """The upstream connection closed while a request was on it."""
        req = self.active
        if up.until_close and req.responded and exc is None:
            self.upstream_complete(up)
        elif up.reused and not up.got_bytes and req.replay is not None:
            # a pooled keep-alive connection the backend had just closed: resend (idempotent)
            up.detach()
            self._release_backend(req, ok=True)
            req.attempts -= 1
            req.out[:0] = req.replay
            req.replay = []
            req.replay_bytes = 0
            nxt = req.group.choose(self._hash_key(req.group, req), set())
            if nxt is None:
                self.respond_local(req, 503, "no backend available")
            else:
                self.dispatch(req, nxt)
        else:
            self.upstream_failed(req, 502, "backend closed the connection before responding"
                                 if not req.responded else "backend closed mid-response")
        self.flush()

    def _finish(self, req, close):
        self.active = None
        if self.state == IDLE:
            self.deadline = self.server.now + self.timeouts.keepalive_idle
        if close:
            self.close_after_flush = CLOSE
            if req.has_body and not req.complete:
                self.state = DONE
                self.close_after_flush = LINGER
            return
        if self.pending_error is not None:
            status, message = self.pending_error
            self.pending_error = None
            self.server.rt.local_responses[status] += 1
            self.wbuf.append(http_rules.error_response(status, message))
            self.close_after_flush = LINGER
        elif self.queue:
            self.loop.call_soon(self._next)

    def _next(self):
        if self.closed or self.lingering or self.active is not None or not self.queue:
            return
        req = self.queue.pop(0)
        if len(self.queue) == MAX_PIPELINED - 1:
            self.transport.resume_reading()
        self.start(req)
        self.flush()


def _cookie_value(cookie, name):
    if cookie is None:
        return None
    return http_rules.parse_cookies(cookie).get(name)
