"""The fuzz cases: the lab's routes, the seed attacks and seeded mutations (pure, no sockets).
Ids and what they mean: see ``tests/fuzzkit/__init__.py``."""
import base64
import random
import re

HOST = b"lab"
ID_HEADER = b"X-Fz-Id"
ID_RE = re.compile(rb"/fz/([0-9a-z.]+)")
_ANY_ID_RE = re.compile(rb"/fz/([0-9a-z.]+)|(?i:x-fz-id):[ \t]*([0-9a-z.]+)")
AUTH_OK = b"Basic " + base64.b64encode(b"alice:secret")
AUTH_BAD = b"Basic " + base64.b64encode(b"mallory:guess")
ADMIN_PREFIX = b"/admin"
# backend name -> group; the lab's routes send /admin (basic auth) to a1, X-Canary: 1 to the
# canary group (consistent hash on X-User), a "beta" cookie to k1, everything else to b1.
BACKENDS = {"b1": "default", "a1": "admin", "c1": "canary", "c2": "canary", "k1": "beta"}
# headers the proxy routes, hashes or authenticates on: they must reach the backend unchanged
ROUTING_HEADERS = (b"host", b"x-canary", b"x-user", b"cookie", b"authorization")


def lab_groups_and_routes(ports):
    """Return the ``groups`` and ``routes`` of the fuzz lab's L7 config.

    Args:
        ports (dict[str, int]): backend name -> port on 127.0.0.1 (keys as in ``BACKENDS``).
    Returns:
        dict: ``groups``, ``routes`` and the other top-level keys besides listen/backends.
    """
    def be(name):
        return {"name": name, "address": "127.0.0.1", "port": ports[name]}
    return {
        "groups": {
            "admin": {"backends": [be("a1")]},
            "canary": {"algorithm": "consistent_hash",
                       "hash_key": {"type": "header", "name": "X-User"},
                       "backends": [be("c1"), be("c2")]},
            "beta": {"backends": [be("k1")]},
        },
        "routes": [
            {"match": {"path_prefix": "/admin"}, "group": "admin",
             "auth": {"type": "basic", "users": {"alice": "secret"}, "realm": "fuzz"}},
            {"match": {"header": {"name": "X-Canary", "value": "1"}}, "group": "canary"},
            {"match": {"cookie": {"name": "beta"}}, "group": "beta"},
        ],
        # a backend closing on a parse error must not eject it: later cases would only see 503s
        "passive_health": False,
        "timeouts": {"connect": 1.0, "response": 3.0, "client_header": 2.0,
                     "keepalive_idle": 10.0},
    }


# -- requests ---------------------------------------------------------------------------------

class Req:
    """One client request under construction: rendered by ``render``, mutated in place.

    ``expect`` maps a lower-case header name to the value the backend must receive for it
    (routing headers the mutations did not touch); ``expect_host`` is the Host the backend must
    see when the target is absolute-form.
    """

    def __init__(self, rid, method=b"GET", path=b"/", body=b"", version=b"HTTP/1.1"):
        self.rid = rid
        self.method = method
        self.target = self.origin = path.rstrip(b"/") + b"/fz/" + rid.encode()
        self.version = version
        self.headers = [[b"Host", HOST], [ID_HEADER, rid.encode()]]
        self.body = body  # bytes as sent (framing is in the headers)
        self.payload = body  # the body before any chunked encoding
        self.framing = None  # None | "cl" | "chunked"
        self.line_sep = b" "
        self.eol = b"\r\n"
        self.prefix = b""
        self.expect = {b"host": HOST}
        self.expect_host = None

    def add(self, name, value, expect=False):
        self.headers.append([name, value])
        if expect:
            self.expect[name.lower()] = value
        return self

    def with_cl_body(self, body):
        self.body = self.payload = body
        self.framing = "cl"
        return self.add(b"Content-Length", b"%d" % len(body))

    def with_chunked_body(self, body, sizes=None):
        self.framing = "chunked"
        self.payload = body
        self.body = chunked(body, sizes)
        return self.add(b"Transfer-Encoding", b"chunked")

    def touch(self, name):
        """Forget the expectation on a header a mutation changed."""
        self.expect.pop(name.lower(), None)

    def render(self):
        eol = self.eol
        lines = [self.prefix + self.method + self.line_sep + self.target + self.line_sep +
                 self.version]
        lines += [n + (b" " if n.endswith(b":") else b": ") + v for n, v in self.headers]
        return eol.join(lines) + eol + eol + self.body


def chunked(body, sizes=None):
    """Encode ``body`` as chunks of the given sizes (one chunk if None), then the last chunk."""
    out, pos = [], 0
    for size in sizes or [len(body)]:
        piece = body[pos:pos + size]
        pos += len(piece)
        if piece:
            out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
    if pos < len(body):
        out.append(b"%x\r\n" % (len(body) - pos) + body[pos:] + b"\r\n")
    return b"".join(out) + b"0\r\n\r\n"


def inner_request(rid, path=b"/SMUGGLED", complete=True, host=True):
    """A request hidden in a body. Complete: with its own id header. Incomplete: it stops in a
    header value, so whatever the backend reads next (another client's request, with its Host
    and id) joins it."""
    head = b"GET " + path + b"/fz/" + rid.encode() + b" HTTP/1.1\r\n"
    if host:
        head += b"Host: lab\r\n"
    if complete:
        return head + ID_HEADER + b": " + rid.encode() + b"\r\n\r\n"
    return head + b"X-Pad: "


class Case:
    """What one client connection sends, and what must hold afterwards.

    Attributes:
        no (int): case number (ids start with it); name (str): ``seed:<name>`` or ``mut:<no>``.
        chunks (list[bytes]): the writes, in order; half_close (bool): shut the write side after.
        reqs (list[Req]): the requests the case was built from (expectations live there).
        must_answer (bool): a response is required (complete valid requests).
        expect_status (int|None): the first response's status must be this (sanity seeds).
        victim (bool): a second client sends a marked plain GET afterwards.
        pause_sec (float), pause_turns (int|None): the pause between writes, in seconds or
            in event-loop turns (varied: a write read in the same turn as an upstream response
            finds ordering races).
    """

    def __init__(self, no, name, reqs, tail=b"", half_close=False, must_answer=False,
                 expect_status=None, victim=True):
        self.no = no
        self.name = name
        self.reqs = reqs
        self.data = b"".join(r.render() for r in reqs) + tail
        self.chunks = [self.data]
        self.half_close = half_close
        self.must_answer = must_answer
        self.expect_status = expect_status
        self.victim = victim
        self.pause_sec = 0.002  # between writes
        self.pause_turns = None  # or: this many event-loop turns between writes

    def ids(self):
        """Every id that appears in the bytes the case sends (outer and hidden requests), in
        order: in a ``/fz/<id>`` path or in an ``X-Fz-Id`` header (a mutation may have broken
        one of the two, and the backends echo the header's)."""
        out = []
        for m in _ANY_ID_RE.finditer(self.data):
            rid = (m.group(1) or m.group(2)).decode()
            if rid not in out:
                out.append(rid)
        return out


def plain_get(rid, path=b"/plain"):
    """The bytes of a marked plain GET (victims and probes)."""
    return Req(rid, path=path).render()


# -- seed corpus: every attack of issue 9 section 2, as an explicit case -----------------------

def seed_cases(start=0):
    """Return the seed attacks, one ``Case`` each, numbered from ``start``.

    Args:
        start (int): the first case number.
    Returns:
        list[Case]: two sanity cases first (a plain GET gets 200, an unauthenticated /admin
        request 401), then framing, Host and routing headers named in Connection (smuggling),
        asterisk and absolute-form targets, half-close, pipelining behind a smuggled request,
        a pipelined body that ends in a later write (response order), and a request
        pipelined behind one answered locally (401) while its body was still arriving.
    """
    seeds = []

    def add(name, build, **kw):
        no = start + len(seeds)
        reqs, tail = build(no)
        seeds.append(Case(no, "seed:" + name, reqs, tail=tail, **kw))

    def post_smuggling(connection_lines, path=b"/SMUGGLED", complete=True, host=True):
        def build(no):
            r = Req(f"{no}r0", b"POST", b"/a")
            for line in connection_lines:
                r.add(b"Connection", line)
            r.with_cl_body(inner_request(f"{no}s0", path, complete, host))
            return [r], b""
        return build

    add("plain_get", lambda no: ([Req(f"{no}r0")], b""), must_answer=True, expect_status=200)
    add("admin_without_auth", lambda no: ([Req(f"{no}r0", path=b"/admin/x")], b""),
        expect_status=401)
    add("connection_content_length", post_smuggling([b"content-length"]))
    add("connection_content_length_admin", post_smuggling([b"content-length"], b"/admin/x"))
    add("connection_content_length_truncated",
        post_smuggling([b"content-length"], complete=False))
    add("connection_content_length_truncated_no_host",
        post_smuggling([b"content-length"], b"/admin/x", complete=False, host=False))
    add("connection_close_content_length", post_smuggling([b"close, content-length"]))
    add("second_connection_header", post_smuggling([b"keep-alive", b"Content-Length"]))

    def te(no):
        r = Req(f"{no}r0", b"POST", b"/a").add(b"Connection", b"transfer-encoding")
        return [r.with_chunked_body(inner_request(f"{no}s0", b"/admin/x"))], b""
    add("connection_transfer_encoding", te)

    def named(path, extra, token):
        def build(no):
            r = Req(f"{no}r0", path=path)
            for name, value in extra:
                r.add(name, value, expect=True)
            return [r.add(b"Connection", token)], b""
        return build
    add("connection_host", named(b"/a", [], b"host"))
    add("connection_cookie", named(b"/a", [(b"Cookie", b"beta=1")], b"cookie"))
    add("connection_authorization",
        named(b"/admin/x", [(b"Authorization", AUTH_OK)], b"authorization"))
    add("connection_routing_header", named(b"/a", [(b"X-Canary", b"1")], b"X-Canary"))
    add("connection_hash_header",
        named(b"/a", [(b"X-Canary", b"1"), (b"X-User", b"u7")], b"x-user"))

    def target(t, expect_host=None):
        def build(no):
            r = Req(f"{no}r0")
            r.target = t.replace(b"{id}", f"{no}r0".encode())
            r.expect_host = expect_host
            return [r], b""
        return build
    add("asterisk_get", target(b"*"))
    add("absolute_form", target(b"http://other.example:8080/abs/fz/{id}", b"other.example:8080"))
    add("absolute_form_admin", target(b"http://lab/admin/x/fz/{id}"))

    add("half_close_get", lambda no: ([Req(f"{no}r0")], b""), half_close=True, must_answer=True)
    add("half_close_post", lambda no: ([Req(f"{no}r0", b"POST").with_cl_body(b"hello")], b""),
        half_close=True, must_answer=True)

    def pipelined(no):
        reqs, _ = post_smuggling([b"content-length"])(no)
        return reqs + [Req(f"{no}r1", path=b"/after")], b""
    add("pipelined_behind_smuggled", pipelined)

    # A pipelined request whose body ends in a second write, read in the same event-loop turn
    # as the response to the request before it (the in-process proxy, backend and client share
    # one loop: two turns after the first write, with a pooled upstream connection). Its
    # response must still come before the next request's.
    def pipelined_race(no):
        return [Req(f"{no}r0", path=b"/a"), Req(f"{no}r1", b"POST", b"/b").with_cl_body(b"hello"),
                Req(f"{no}r2", path=b"/c")], b""
    for turns in (1, 2, 3, 4):
        add(f"pipelined_body_split_{turns}_turns", pipelined_race)
        last = seeds[-1]
        cut = len(last.data) - len(last.reqs[2].render()) - 3
        last.chunks = [last.data[:cut], last.data[cut:]]
        last.pause_turns = turns

    def answered_locally_then_pipelined(no):
        r = Req(f"{no}r0", path=b"/admin/y").with_chunked_body(b"")
        return [r, Req(f"{no}r1", path=b"/next")], b""
    add("answered_locally_then_pipelined", answered_locally_then_pipelined)
    return seeds


# -- mutations ----------------------------------------------------------------------------------

CONN_TOKENS = [b"close", b"keep-alive", b"Keep-Alive", b"content-length", b"Content-Length",
               b"CONTENT-LENGTH", b"transfer-encoding", b"host", b"cookie", b"authorization",
               b"x-canary", b"x-user", b"te", b"upgrade", b"x-foo", b"via", b"expect",
               b"x-forwarded-for", b"forwarded", b"trailer", b"proxy-connection", b""]
CONN_JOINERS = [b",", b", ", b" ,", b",,", b"\t,", b" , "]
CL_VALUES = [b"+{n}", b"0{n}", b"{n} ", b" {n}", b"{n},{n}", b"{n}, {n}", b"-1", b"0x{n}",
             b"{n}.0", b"99999999999999999999", b"", b"{n}\t", b"1{n}", b"0"]
TE_VALUES = [b"chunked", b"Chunked", b"CHUNKED", b" chunked", b"chunked ", b"chunked, chunked",
             b"identity", b"gzip, chunked", b"chunked;q=1", b"xchunked", b"chunked\x0b",
             b"identity, chunked", b"chunked, identity", b"\tchunked", b"chunk"]
TE_NAMES = [b"Transfer-Encoding", b"transfer-encoding", b"Transfer_Encoding",
            b"Transfer-Encoding :", b"Transfer-Encoding\t:", b" Transfer-Encoding",
            b"Transfer-Encoding\x0b"]
NAME_EDITS = [lambda n: n.upper(), lambda n: n.lower(), lambda n: n + b" :",
              lambda n: n + b"\t:", lambda n: b" " + n, lambda n: n.replace(b"-", b"_"),
              lambda n: n + b"\x00", lambda n: n + b"\x7f", lambda n: n + b"\xe9",
              lambda n: b"", lambda n: n + b"x" * 300, lambda n: n[:1] + b"\r\n" + n[1:]]
VALUE_EDITS = [lambda v: b"  " + v, lambda v: v + b"  ", lambda v: b"\t" + v + b"\t",
               lambda v: v + b"\r", lambda v: v + b"\n", lambda v: v + b"\r\n x",
               lambda v: v + b"\x00", lambda v: v + b"\x7f", lambda v: v + b"\xff",
               lambda v: b"", lambda v: v + b", " + v, lambda v: b'"' + v + b'"',
               lambda v: v + b"\r\nX-Injected: 1", lambda v: v * 200]
AUTHORITIES = [(b"lab", b"lab"), (b"LAB", b"lab"), (b"other.example", b"other.example"),
               (b"other.example:8080", b"other.example:8080"), (b"127.0.0.1:1", b"127.0.0.1:1"),
               (b"u@lab", None), (b"lab:", None), (b"[::1]:80", b"[::1]:80"), (b"", None),
               (b"lab%2f", None), (b"a b", None)]
SCHEMES = [b"http://", b"https://", b"HTTP://", b"ftp://", b"http:/", b"//"]
METHODS = [b"get", b"GETX", b"CONNECT", b"PRI", b"OPTIONS", b"TRACE", b"PATCH", b"PURGE",
           b"G\x00T", b"DELETE", b"HEAD"]
VERSIONS = [b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1 ", b"HTTP/1.10",
            b"HTTP/01.1", b"HTTPS/1.1", b"http/1.1", b"HTTP/1.1\r"]
SPECIAL_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b"\x0b", b":", b",", b"\xff"]


def _base_request(rng, rid):
    kind = rng.choice(("get", "get", "post", "chunked", "admin", "canary", "beta", "http10",
                       "smuggle", "smuggle_partial"))
    path = rng.choice((b"/", b"/a", b"/b/c", b"/admin/x", b"/x?q=1&r=2"))
    if kind == "get":
        return Req(rid, path=path)
    if kind == "post":
        return Req(rid, b"POST", path).with_cl_body(rng.choice((b"", b"x", b"hello world" * 3)))
    if kind == "chunked":
        body = bytes(rng.choice(b"abcdef\r\n0123") for _ in range(rng.randrange(0, 40)))
        sizes = [rng.randrange(1, 9) for _ in range(6)]
        return Req(rid, rng.choice((b"POST", b"PUT")), path).with_chunked_body(body, sizes)
    if kind == "admin":
        r = Req(rid, path=b"/admin/y")
        return r.add(b"Authorization", rng.choice((AUTH_OK, AUTH_BAD)), expect=True)
    if kind == "canary":
        return Req(rid, path=path.replace(b"/admin", b"/c")).add(
            b"X-Canary", b"1", expect=True).add(b"X-User", b"u%d" % rng.randrange(9), expect=True)
    if kind == "beta":
        return Req(rid, path=b"/beta").add(b"Cookie", b"beta=1; x=2", expect=True)
    if kind == "http10":
        return Req(rid, path=b"/old", version=b"HTTP/1.0")
    hidden = inner_request(rid.replace("r", "s"), rng.choice((b"/SMUGGLED", b"/admin/z")),
                           complete=kind == "smuggle", host=rng.random() < 0.5)
    r = Req(rid, b"POST", b"/a")
    if rng.random() < 0.5:
        return r.with_cl_body(hidden)
    return r.with_chunked_body(hidden, [rng.randrange(1, 40) for _ in range(4)])


def _mutate_connection(rng, r):
    for _ in range(rng.choice((1, 1, 2))):
        tokens = rng.sample(CONN_TOKENS, rng.randrange(1, 4))
        joined = tokens[0]
        for t in tokens[1:]:
            joined += rng.choice(CONN_JOINERS) + t
        name = rng.choice((b"Connection", b"connection", b"CONNECTION", b"Proxy-Connection"))
        r.headers.insert(rng.randrange(1, len(r.headers) + 1), [name, joined])


def _mutate_framing(rng, r):
    n = len(r.body)
    op = rng.choice(("cl_short", "cl_long", "cl_dup_same", "cl_dup_diff", "cl_weird", "te_cl",
                     "te_value", "te_twice", "te_name", "none", "cl_zero_body"))
    drop = [h for h in r.headers if h[0].lower() in (b"content-length", b"transfer-encoding")]
    for h in drop:
        r.headers.remove(h)
    if op == "cl_short":
        r.add(b"Content-Length", b"%d" % rng.randrange(0, max(n, 1)))
    elif op == "cl_long":
        r.add(b"Content-Length", b"%d" % (n + rng.randrange(1, 20)))
    elif op == "cl_dup_same":
        r.add(b"Content-Length", b"%d" % n).add(b"content-length", b"%d" % n)
    elif op == "cl_dup_diff":
        r.add(b"Content-Length", b"%d" % n).add(b"Content-Length", b"%d" % (n + 1))
    elif op == "cl_weird":
        r.add(b"Content-Length", rng.choice(CL_VALUES).replace(b"{n}", b"%d" % n))
    elif op == "te_cl":
        r.add(b"Transfer-Encoding", b"chunked").add(b"Content-Length", b"%d" % n)
        if rng.random() < 0.5:
            r.headers[-2], r.headers[-1] = r.headers[-1], r.headers[-2]
    elif op == "te_value":
        r.add(b"Transfer-Encoding", rng.choice(TE_VALUES))
    elif op == "te_twice":
        r.add(b"Transfer-Encoding", b"chunked").add(b"Transfer-Encoding", rng.choice(TE_VALUES))
    elif op == "te_name":
        r.add(rng.choice(TE_NAMES), b"chunked")
    elif op == "cl_zero_body":
        r.add(b"Content-Length", b"0")
    # "none": a body without framing headers (it is the next request, if anything)


def _mutate_chunks(rng, r):
    """Rewrite the body as chunks with one of the chunk-size games."""
    data = r.payload
    r.headers = [h for h in r.headers if h[0].lower() not in (b"content-length",
                                                               b"transfer-encoding")]
    r.add(b"Transfer-Encoding", b"chunked")
    r.framing = "chunked"
    game = rng.choice(("upper", "zeros", "0x", "ext", "ext_quoted", "size_space", "longer",
                       "shorter", "no_last", "last_00", "trailer", "lf_only", "huge", "negative",
                       "ext_crlf", "zero_then_request"))
    size = len(data)
    line = b"%x" % size
    if game == "upper":
        line = line.upper()
    elif game == "zeros":
        line = b"000" + line
    elif game == "0x":
        line = b"0x" + line
    elif game == "ext":
        line += b";a=b"
    elif game == "ext_quoted":
        line += b';a="b\\"c"'
    elif game == "size_space":
        line += rng.choice((b" ", b"\t", b" ;a"))
    elif game == "huge":
        line = b"f" * rng.choice((16, 17, 21))
    elif game == "negative":
        line = b"-" + line
    elif game == "ext_crlf":
        line += b";a\rb"
    body = line + b"\r\n" + data + b"\r\n"
    if game == "longer":
        body = b"%x\r\n" % max(size - 2, 0) + data + b"\r\n"
    elif game == "shorter":
        body = b"%x\r\n" % (size + 3) + data + b"\r\n"
    last = b"0\r\n\r\n"
    if game == "no_last":
        last = b""
    elif game == "last_00":
        last = b"00\r\n\r\n"
    elif game == "trailer":
        last = b"0\r\nX-Trailer: 1\r\nContent-Length: 5\r\n\r\n"
    elif game == "zero_then_request":
        body, last = b"0\r\n\r\n", inner_request(r.rid.replace("r", "s") + "z")
    if game == "lf_only":
        body, last = body.replace(b"\r\n", b"\n"), last.replace(b"\r\n", b"\n")
    r.body = body + last


def _editable(r):
    return [h for h in r.headers if h[0] != ID_HEADER]


def _mutate_header_name(rng, r):
    if not _editable(r):
        return
    h = rng.choice(_editable(r))
    r.touch(h[0])
    h[0] = rng.choice(NAME_EDITS)(h[0])


def _mutate_header_value(rng, r):
    if not _editable(r):
        return
    h = rng.choice(_editable(r))
    r.touch(h[0])
    h[1] = rng.choice(VALUE_EDITS)(h[1])


def _mutate_host(rng, r):
    r.touch(b"host")
    op = rng.randrange(6)
    hosts = [h for h in r.headers if h[0] == b"Host"]
    if not hosts:
        r.add(b"Host", HOST)
    elif op == 0:
        r.headers.remove(hosts[0])
    elif op == 1:
        r.add(b"Host", rng.choice((HOST, b"other")))
    else:
        hosts[0][1] = rng.choice((b"", b"lab:80", b"a b", b"lab, other", b"LAB", b"lab.",
                                  b"lab\x00", b"lab/x", b"[::1]", b"l@b"))


def _mutate_target(rng, r):
    path = r.origin  # always from the origin-form target: the expectations describe one change
    r.expect_host = None
    op = rng.randrange(5)
    if op <= 1:
        auth, host = rng.choice(AUTHORITIES)
        scheme = rng.choice(SCHEMES)
        r.target = scheme + auth + path
        if scheme.lower() in (b"http://", b"https://") and host is not None:
            r.expect_host = host
    elif op == 2:
        r.target = b"*"
    elif op == 3:
        r.target = b"lab:80"
    else:
        r.target = rng.choice((b"//x", b"/%2e%2e/admin/x", b"/./admin/x", b"/a#frag",
                               b"/a?/admin", b"/\xff")) + path


def _mutate_line(rng, r):
    op = rng.randrange(6)
    if op == 0:
        r.line_sep = rng.choice((b"  ", b"\t", b" \t"))
    elif op == 1:
        r.prefix = rng.choice((b"\r\n", b"\r\n\r\n", b"\n", b" "))
    elif op == 2:
        r.eol = b"\n"
    elif op == 3:
        r.method = rng.choice(METHODS)
    else:
        r.version = rng.choice(VERSIONS)


def _mutate_extra_headers(rng, r):
    for _ in range(rng.randrange(1, 4)):
        name, value = rng.choice(((b"Expect", b"100-continue"), (b"Upgrade", b"websocket"),
                                  (b"Connection", b"Upgrade"), (b"TE", b"trailers"),
                                  (b"Keep-Alive", b"timeout=5"), (b"Via", b"1.1 edge"),
                                  (b"X-Forwarded-For", b"192.0.2.1"), (b"Trailer", b"X-T"),
                                  (b"Proxy-Connection", b"keep-alive"),
                                  (b"X-Canary", b"1"), (b"Cookie", b"beta=2"),
                                  (b"Authorization", AUTH_BAD), (b"X-Foo", b"bar")))
        if name.lower() in r.expect:
            r.touch(name)
        r.headers.insert(rng.randrange(1, len(r.headers) + 1), [name, value])


MUTATIONS = [(_mutate_connection, 6), (_mutate_framing, 5), (_mutate_chunks, 3),
             (_mutate_header_name, 2), (_mutate_header_value, 2), (_mutate_host, 1),
             (_mutate_target, 2), (_mutate_line, 2), (_mutate_extra_headers, 2)]
_MUT_FUNCS = [m for m, _ in MUTATIONS]
_MUT_WEIGHTS = [w for _, w in MUTATIONS]


def _id_spans(data):
    return [m.span() for m in re.finditer(rb"[0-9]+[rsv][0-9]*z?", data)]


def mutated_case(seed, no):
    """Return mutation case ``no`` of the run with ``seed`` (the same pair, the same bytes).

    Args:
        seed (int): the run's seed.
        no (int): case number (ids start with it).
    Returns:
        Case: 1-4 requests (pipelined), each mutated 0-3 times, then maybe a byte inserted
        (never inside an id), the bytes truncated, split into several writes, half-closed.
    """
    rng = random.Random(seed * 1_000_003 + no)
    reqs = [_base_request(rng, f"{no}r{k}") for k in range(rng.choice((1, 1, 1, 2, 2, 3, 4)))]
    for r in reqs:
        if rng.random() < 0.85:
            for mut in rng.choices(_MUT_FUNCS, _MUT_WEIGHTS, k=rng.choice((1, 1, 2, 3))):
                mut(rng, r)
    case = Case(no, f"mut:{no}", reqs, victim=True)
    data = case.data
    if rng.random() < 0.1:
        spans = _id_spans(data)
        pos = rng.randrange(len(data))
        if not any(a <= pos <= b for a, b in spans):
            data = data[:pos] + rng.choice(SPECIAL_BYTES) + data[pos:]
            case.reqs = []  # expectations no longer describe the bytes
    if rng.random() < 0.15:
        data = data[:rng.randrange(10, len(data))]
    case.data = data
    case.half_close = rng.random() < 0.2
    if rng.random() < 0.3 and len(data) > 2:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 5))))
        case.chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        case.pause_sec = rng.choice((0.0, 0.0005, 0.001, 0.002, 0.004))
        case.pause_turns = rng.choice((None, None, 1, 2, 3))
    else:
        case.chunks = [data]
    return case
