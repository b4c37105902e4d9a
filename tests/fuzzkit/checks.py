"""What the fuzz cases check (pure): a strict reference parse (h11) of what a client sent, a
parser for the proxy's responses, and the rules for what a backend may receive.
"""
import re

import h11

from tests.fuzzkit.cases import (ADMIN_PREFIX, AUTH_OK, BACKENDS, ID_HEADER, ID_RE,
                                 ROUTING_HEADERS)

_ID_TOKEN_RE = re.compile(rb"[0-9a-z.]*[0-9][0-9a-z.]*")  # an id in an X-Fz-Id value
VIA_RE = re.compile(rb"^1\.[01] lblab$")  # the last Via hop is the proxy's
_ID_HEADER_VALUE_RE = re.compile(rb"(?i)x-fz-id[^:\r\n]*:([^\r\n]*)")


# -- reference parse (what a strict server makes of the client's bytes) -------------------------

def request_id(target, headers):
    """The id of a request: from its target, else from its X-Fz-Id (an absolute-form target
    like ``http:/`` + ``/fz/7r0`` loses ``fz`` to the authority).

    Args:
        target (bytes): the request target.
        headers (iterable[tuple[bytes, bytes]]): the header fields (any case).
    Returns:
        str|None: the id.
    """
    m = ID_RE.search(target)
    if m is not None:
        return m.group(1).decode()
    for name, value in headers:
        if name.lower() == b"x-fz-id":
            found = _ID_TOKEN_RE.findall(value)
            if found:
                return found[0].decode()
    return None


def client_ids_by_head(data):
    """Map each id in a client's bytes to the X-Fz-Id ids written in the head it starts.

    A head is read naively, from ``/fz/<id>`` to the next empty line: whatever a parser makes
    of the bytes, a backend request can only carry an id the client wrote there. An id from
    anywhere else (another client's request, read on as part of this one) is a splice.

    Args:
        data (bytes): everything a client sent.
    Returns:
        dict[str, set[str]]: id -> X-Fz-Id ids found in its head.
    """
    out = {}
    for m in ID_RE.finditer(data):
        end = min((i for i in (data.find(b"\r\n\r\n", m.end()), data.find(b"\n\n", m.end()))
                   if i >= 0), default=len(data))
        ids = {x.decode() for v in _ID_HEADER_VALUE_RE.findall(data[m.end():end])
               for x in _ID_TOKEN_RE.findall(v)}
        out.setdefault(m.group(1).decode(), set()).update(ids)
    return out


def reference_parse(data, half_close):
    """Parse a client's bytes with h11 as a server would, answering each request at once.

    Args:
        data (bytes): everything the client sent.
        half_close (bool): the client shut its write side after sending.
    Returns:
        tuple[list[tuple[str|None, bytes]], bool]: the complete requests in order as (id, see
        ``request_id``; body), and whether h11 parsed all the bytes without error.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    conn.receive_data(data)
    if half_close:
        conn.receive_data(b"")
    out, rid, body, clean = [], None, [], True
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError:
            return out, False
        if ev is h11.NEED_DATA:
            return out, clean and not conn.trailing_data[0] and conn.their_state is h11.IDLE
        if ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
            return out, clean
        if isinstance(ev, h11.Request):
            rid, body = request_id(ev.target, ev.headers), []
        elif isinstance(ev, h11.Data):
            body.append(ev.data)
        elif isinstance(ev, h11.EndOfMessage):
            out.append((rid, b"".join(body)))
            try:
                conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
                conn.send(h11.EndOfMessage())
            except h11.LocalProtocolError:
                return out, clean
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return out, clean and not conn.trailing_data[0]
            conn.start_next_cycle()


# -- the proxy's responses --------------------------------------------------------------------

class Response:
    """One response the client read: status, the echoed id (None: the proxy answered itself)."""

    __slots__ = ("status", "echo", "backend", "body")

    def __init__(self, status, echo, backend, body):
        self.status, self.echo, self.backend, self.body = status, echo, backend, body

    def __repr__(self):
        return f"<{self.status} echo={self.echo} from {self.backend}>"


class ResponseReader:
    """Incremental parser of the proxy's responses (Content-Length, chunked, until close).

    A response with ``X-Echo-Method: HEAD`` has no body; 1xx responses are skipped.
    ``error`` is set (and parsing stops) on bytes that are not a response.
    """

    def __init__(self):
        self.buf = b""
        self.responses = []
        self.error = None
        self.eof = False

    def feed(self, data):
        self.buf += data
        self._parse()

    def feed_eof(self):
        self.eof = True
        self._parse()
        if self.buf and self.error is None:
            self.error = f"connection closed inside a response: {self.buf[:120]!r}"

    def _parse(self):
        while self.buf and self.error is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.error = "response head over 64 KiB"
                return
            head = self.buf[:end].split(b"\r\n")
            m = re.match(rb"HTTP/1\.[01] (\d{3})(?: |$)", head[0])
            if m is None:
                self.error = f"bad status line {head[0][:80]!r}"
                return
            status = int(m.group(1))
            fields = {}
            for line in head[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    self.error = f"bad header line {line[:80]!r}"
                    return
                fields.setdefault(name.strip().lower(), []).append(value.strip())
            rest = self.buf[end + 4:]
            if status < 200:
                self.buf = rest
                continue
            if status in (204, 304) or fields.get(b"x-echo-method") == [b"HEAD"]:
                body, used = b"", 0
            elif b"content-length" in fields:
                n = int(fields[b"content-length"][0])
                if len(rest) < n:
                    return
                body, used = rest[:n], n
            elif fields.get(b"transfer-encoding") == [b"chunked"]:
                parsed = _dechunk(rest)
                if parsed is None:
                    return
                body, used = parsed
            else:
                if not self.eof:
                    return
                body, used = rest, len(rest)
            self.buf = rest[used:]
            echo = fields.get(b"x-echo-id", [None])[0]
            backend = fields.get(b"x-backend", [b"proxy"])[0]
            self.responses.append(Response(status, None if echo is None else echo.decode(),
                                           backend.decode(), body))


def _dechunk(data):
    body, pos = [], 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            end = data.find(b"\r\n\r\n", eol)
            return None if end < 0 else (b"".join(body), end + 4)
        if len(data) < eol + 2 + size + 2:
            return None
        body.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2


# -- checks ---------------------------------------------------------------------------------------

def _values(headers, name):
    return [v for n, v in headers if n == name]


def _auth_valid(values):
    for v in values:
        scheme, _, cred = v.strip().partition(b" ")
        if scheme.lower() == b"basic" and cred.strip() == AUTH_OK.split(b" ")[1]:
            return True
    return False


def _origin_path(target):
    """The path of a target as the proxy routes it (absolute-form: the part after authority)."""
    if not target.startswith(b"/"):
        scheme, sep, rest = target.partition(b"://")
        if sep:
            slash = rest.find(b"/")
            target = rest[slash:] if slash >= 0 else b"/"
    return target.partition(b"?")[0]


def check_backend_request(backend, method, target, headers, body, expect):
    """Return the problems with one request a backend received (empty list: none).

    Args:
        backend (str): backend name (a key of ``BACKENDS``).
        method (bytes), target (bytes): the request line.
        headers (list[tuple[bytes, bytes]]): lower-case names, values as received.
        body (bytes): the body.
        expect (dict[str, dict]): id -> expectations registered by the client side
            (``headers``: lower name -> value, ``host``: absolute-form authority, ``body``).
    Returns:
        list[tuple[str, str]]: (kind, detail) pairs.
    """
    problems = []
    m = ID_RE.search(target)
    rid = m.group(1).decode() if m else None  # (the target's: a splice shows there)
    where = f"{backend} got {method.decode('latin-1')} {target[:100].decode('latin-1')}"
    via = b",".join(_values(headers, b"via")).split(b",")[-1].strip()
    if VIA_RE.match(via) is None:
        problems.append(("no_via", f"{where} without the proxy's Via (Via {via!r})"))
    ids = {m.decode() for v in _values(headers, ID_HEADER.lower())
           for m in _ID_TOKEN_RE.findall(v)}
    exp = expect.get(rid or request_id(target, headers))
    if rid is not None and ids - ({rid} | (exp or {}).get("ids", set())):
        problems.append(("spliced", f"{where} carrying X-Fz-Id {sorted(ids)}: two requests "
                                    f"in one"))
    if not target.startswith(b"/") and not (method == b"OPTIONS" and target == b"*"):
        problems.append(("target_form", f"{where}: not origin-form"))
    path = _origin_path(target)
    if path.startswith(ADMIN_PREFIX) and not _auth_valid(_values(headers, b"authorization")):
        problems.append(("auth_bypass", f"{where} without valid credentials"))
    group = BACKENDS[backend]
    if group == "admin" and not path.startswith(ADMIN_PREFIX):
        problems.append(("route_bypass", f"{where}: not an /admin path"))
    if group == "canary" and b"1" not in [v.strip() for v in _values(headers, b"x-canary")]:
        problems.append(("route_bypass", f"{where} without X-Canary: 1"))
    if group == "beta" and not any(re.search(rb"(^|;)\s*beta=", v)
                                   for v in _values(headers, b"cookie")):
        problems.append(("route_bypass", f"{where} without the beta cookie"))
    if exp is not None:
        for name, value in exp.get("headers", {}).items():
            got = [v.strip().lower() for v in _values(headers, name)]
            if value.lower() not in got:
                problems.append(("header_lost", f"{where}: {name.decode()} {got!r}, "
                                                f"client sent {value!r}"))
        host = exp.get("host")
        if host is not None and [v.strip().lower() for v in _values(headers, b"host")] != [host]:
            problems.append(("host_mismatch", f"{where}: Host {_values(headers, b'host')!r}, "
                                              f"target authority {host!r}"))
        if "body" in exp and exp["body"] != body:
            problems.append(("body_mismatch", f"{where}: body {body[:60]!r}, "
                                              f"client sent {exp['body'][:60]!r}"))
    return problems


def expectations(case, refs):
    """Return id -> expectations for the requests of ``case`` (for ``check_backend_request``).

    Args:
        case (Case): the case.
        refs (list[tuple[str|None, bytes]]): its reference parse (bodies to expect).
    Returns:
        dict[str, dict]: request id -> ``headers``/``host``/``body`` expectations and the
        ``ids`` its head may carry (see ``client_ids_by_head``).
    """
    out = {}
    for r in case.reqs:
        exp = {}
        headers = {n: v for n, v in r.expect.items() if n in ROUTING_HEADERS}
        if r.expect_host is not None:
            headers.pop(b"host", None)
            exp["host"] = r.expect_host
        elif not r.target.startswith(b"/"):
            headers.pop(b"host", None)
        exp["headers"] = headers
        out[r.rid] = exp
    seen = [rid for rid, _ in refs]
    for rid, body in refs:
        if rid is not None and seen.count(rid) == 1:
            out.setdefault(rid, {})["body"] = body
    for rid, ids in client_ids_by_head(case.data).items():
        out.setdefault(rid, {})["ids"] = ids
    return out


def check_responses(case, responses, refs, ref_clean, error):
    """Return the problems with the responses one case's client read (empty list: none).

    The k-th response answers the k-th request the strict reference parse found; a response
    that echoes an id must echo that one (or, past what the reference parsed, an id this
    connection sent, in order). Proxy-made responses (401, 400, 503...) echo nothing.

    Args:
        case (Case): the case.
        responses (list[Response]): what the client read, in order.
        refs (list[tuple[str|None, bytes]]), ref_clean (bool): the case's reference parse.
        error (str|None): why the client could not parse the proxy's bytes.
    Returns:
        list[tuple[str, str]]: (kind, detail) pairs.
    """
    problems = []
    if error is not None:
        problems.append(("client_parse_error", f"{error}"))
    own = case.ids()
    last = -1
    for k, resp in enumerate(responses):
        if resp.echo is None:
            continue
        if k < len(refs):
            if resp.echo != (refs[k][0] or "-"):
                problems.append(("wrong_response", f"response {k + 1} echoes "
                                 f"{resp.echo}, request {k + 1} was {refs[k][0]}"))
        elif resp.echo not in own or own.index(resp.echo) <= last:
            problems.append(("wrong_response", f"response {k + 1} echoes {resp.echo}, "
                                               f"not a later request of this client ({own})"))
        if resp.echo in own:
            last = own.index(resp.echo)
    if case.expect_status is not None and (not responses or
                                           responses[0].status != case.expect_status):
        got = responses[0].status if responses else "nothing"
        problems.append(("unexpected_status", f"{got}, expected {case.expect_status}"))
    if (case.must_answer or (case.half_close and ref_clean and refs)) and not responses:
        problems.append(("lost_response", "no response to a complete request"
                                          f"{' (half-closed)' if case.half_close else ''}"))
    return problems
