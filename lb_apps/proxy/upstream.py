"""The L7 proxy's upstream side: one keep-alive connection to a backend (asyncio.Protocol
callbacks), reporting the response to the client connection that holds it.
"""
import asyncio
import re

import httptools

REPLAY_MAX_BYTES = 64 * 1024  # request bytes kept to retry an idempotent request
# Fields that send a response to the full parser (matched in the lower-cased head): hop-by-hop
# framing and connection options. One regex search costs less than a substring test per name.
_NOT_LEAN = re.compile(rb"\n(?:keep-alive:|transfer-encoding:|te:|trailer:|upgrade:|proxy-)")


class _LeanCallbacks:
    """Callbacks of the lean response parser: httptools calls no per-header callback when the
    protocol object has none, so a plain response costs three Python calls, not one per header."""

    __slots__ = ("on_message_begin", "on_headers_complete", "on_body", "on_message_complete")

    def __init__(self, up):
        self.on_message_begin = up.on_message_begin
        self.on_headers_complete = up.on_lean_headers_complete
        self.on_body = up.on_lean_body
        self.on_message_complete = up.on_message_complete


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a backend, serving one request at a time.

    Two httptools parsers share the connection, one message at a time: ``full`` reports every
    header (rebuilt by ``analyze_response``); ``lean`` reports none, and is used when the whole
    response head is in the first read, is ``HTTP/1.1`` with a Content-Length, and names no
    hop-by-hop header except a single ``Connection: keep-alive`` (checked on the lower-cased head
    bytes). Its head is then forwarded as received (minus that line) plus Via, and only after
    httptools accepted it. httptools validates and frames both kinds alike.
    """

    def __init__(self, backend, server):
        self.backend = backend
        self.server = server
        self.transport = None
        self.full = self.parser = httptools.HttpResponseParser(self)
        self.lean = None
        self.lean_allowed = False
        self.raw_head = b""
        self.client = None
        self.req = None
        self.closed = False
        self.headers = []
        self.reason = b""
        self.deadline = 0.0
        self.until_close = self.head_only = self.interim = self.paused = False
        self.reused = self.got_bytes = self.client_paused = False
        self.uses = 0
        self.timeout = 0.0

    def connection_made(self, transport):
        self.transport = transport

    def pause_writing(self):
        if self.client is not None and not self.client.closed:
            self.client.transport.pause_reading()
            self.client_paused = True

    def resume_writing(self):
        if self.client_paused and self.client is not None and not self.client.closed:
            self.client.transport.resume_reading()
        self.client_paused = False

    def attach(self, client, req):
        """Carry ``req`` for ``client``; the request bytes go out at the client's flush."""
        self.client = client
        self.req = req
        req.up = self
        self.reused = self.uses > 0
        self.uses += 1
        self.got_bytes = self.until_close = self.head_only = self.interim = False
        self.lean_allowed = not req.cache_store and req.method != b"HEAD"
        self.timeout = client.timeouts.response
        self.deadline = self.server.now + self.timeout
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def send(self, req):
        """Write the request bytes produced so far (keeping a copy for an idempotent retry)."""
        out = req.out
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        if req.replay is not None:
            req.replay_bytes += len(data)
            if req.replay_bytes > REPLAY_MAX_BYTES:
                req.replay = None
            else:
                req.replay.append(data)
        self.transport.write(data)

    def detach(self):
        """Stop carrying the current request."""
        if self.req is not None:
            self.req.up = None
        self.client = None
        self.req = None

    def close(self):
        """Close the connection."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def data_received(self, data):
        client = self.client
        if client is None:
            self.close()  # bytes on an idle connection: the backend is confused
            return
        if not self.got_bytes:
            self.got_bytes = True
            self.parser = self._pick_parser(data)
        self.deadline = self.server.now + self.timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.client is not None:
                self.client.upstream_failed(self.req, 502, f"invalid response from backend: {exc}")
            self.close()
        if self.head_only:
            self.head_only = False
            self.full = self.parser = httptools.HttpResponseParser(self)
        client.flush()

    def _pick_parser(self, data):
        """Choose the parser for a response from its first bytes (see the class docstring)."""
        if not self.lean_allowed or not data.startswith(b"HTTP/1.1 ") or data[9:10] == b"1":
            return self.full
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return self.full
        low = data[:end].lower()
        # (find, not "in": bytes.__contains__ first tries the needle as an integer and formats
        # and drops a TypeError, which costs more than the search)
        if low.find(b"\ncontent-length:") < 0 or _NOT_LEAN.search(low) is not None:
            return self.full
        head = data[:end + 2]
        at = low.find(b"\r\nconnection:")
        if at >= 0:
            # many servers send "Connection: keep-alive" on every response (hop-by-hop, and
            # redundant in HTTP/1.1): drop exactly that line; anything else takes the full path
            stop = low.find(b"\r\n", at + 2)
            stop = end if stop < 0 else stop
            if (low[at + 14:stop].strip() != b"keep-alive"
                    or low.find(b"\r\nconnection:", stop) >= 0):
                return self.full
            head = head[:at] + head[stop:]
        if self.lean is None:
            self.lean = httptools.HttpResponseParser(_LeanCallbacks(self))
        self.raw_head = head
        return self.lean

    def on_lean_headers_complete(self):
        client = self.client
        if client is not None:
            client.upstream_head_lean(self.raw_head)

    def on_lean_body(self, data):
        client = self.client
        if client is not None:
            client.wbuf.append(data)  # lean responses are never re-framed or captured

    def connection_lost(self, exc):
        self.closed = True
        if self.client is not None:
            self.client.upstream_lost(self, exc)
        else:
            self.backend.forget(self)
        # the parsers refer back to this object: free them all without the GC
        self.full = self.lean = self.parser = None

    def on_message_begin(self):
        if self.client is None:
            # bytes after the end of the response: the backend's framing cannot be trusted,
            # so this connection must never carry another request (the parser error closes it)
            raise ValueError("response bytes with no request outstanding")

    def on_status(self, status):
        self.reason = status

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_headers_complete(self):
        headers = self.headers
        self.headers = []  # (a new list per full-parsed head, none for a lean one)
        if self.client is not None:
            self.client.upstream_head(self, self.parser.get_status_code(), self.reason, headers)

    def on_body(self, data):
        if self.client is not None:
            self.client.upstream_body(data)

    def on_message_complete(self):
        if self.interim:
            self.interim = False
            self.headers = []
            return
        if self.client is not None:
            self.client.upstream_complete(self)
