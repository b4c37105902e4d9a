"""HTTP/1.1 protocol hygiene for the L7 proxy (RFC 9110/9112): request checks, hop-by-hop
stripping, forwarding headers and message framing. Pure: headers in, bytes/decisions out.

Message boundaries and byte-level syntax (bare CR, NUL, obs-fold, whitespace before colon,
CL+TE, duplicate or malformed Content-Length, bad chunk sizes) are enforced by httptools (llhttp,
strict mode); this module adds the checks llhttp leaves to the application: Host presence and
uniqueness, Transfer-Encoding on HTTP/1.0 and codings other than ``chunked``, the request-target
forms (RFC 9112 3.2), a ``Connection`` header naming a field the proxy relies on, and maps parser
errors to a status (400/501) the way h11's ``error_status_hint`` does.

Framing is the proxy's own: the upstream head carries ``Host`` and ``Content-Length`` written
from the values the proxy parsed and acted on, never the client's lines copied through, so no
``Connection`` option can make the bytes sent upstream differ from the one request the proxy saw.
"""
import re
from http import HTTPStatus

# RFC 9110 7.6.1 connection-specific fields, plus the de-facto Proxy-Connection and the
# proxy-auth pair (hop-by-hop in RFC 2616 13.5.1). Transfer-Encoding is re-framed by the proxy.
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade", b"proxy-authorization",
                        b"proxy-authenticate"))
# Requests a server must not see twice on the wire if a retry happens (RFC 9110 9.2.2).
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
VIA_NAME = b"lblab"
# Fields the proxy itself relies on (framing, routing, auth, stickiness, caching decisions on
# Authorization): a request whose Connection names one is refused with 400 (RFC 9110 7.6.1 lets
# an intermediary drop Connection-named fields, but then the proxy would act on a field the
# backend never sees, or frame a body the backend cannot). Routing and hash-key headers of the
# running config are added to this set (``Runtime.protected``).
PROTECTED_FIELDS = frozenset((b"host", b"content-length", b"transfer-encoding", b"cookie",
                              b"authorization"))
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class RequestError(Exception):
    """A request the proxy refuses; ``status`` is the response status (then close)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class RequestHead:
    """Facts about one request head, gathered in one pass over its headers.

    Attributes:
        host (bytes|None): the Host value.
        chunked (bool): Transfer-Encoding: chunked.
        content_length (int|None): the Content-Length value.
        forward (list[bytes]): header lines to pass upstream, as a flat list of parts
            (``name, b": ", value, b"\\r\\n"`` per line; join them).
        xff (bytes|None), forwarded (bytes|None), via (bytes|None): existing values to append to.
        cookie (bytes|None), authorization (bytes|None): for stickiness/routing and auth.
        conn_close (bool): the client asked to close (``Connection: close``).
        conn_keep_alive (bool): ``Connection: keep-alive`` (HTTP/1.0).
        expect_continue (bool): ``Expect: 100-continue``.
    """

    # Class-level defaults: a request sets only the facts its headers carry (one is made per
    # request, and most requests have none of these headers).
    host = content_length = xff = forwarded = via = None
    cookie = authorization = cache_control = pragma = None
    chunked = conn_close = conn_keep_alive = expect_continue = False

    def __init__(self):
        self.forward = []


def _connection_tokens(values):
    out = set()
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                out.add(token)
    return out


# Request header name -> what analyze_request does with it; anything else is forwarded as is.
_HOST, _CONNECTION, _TE, _HOP, _CL, _XFF, _FWD, _VIA, _COOKIE, _AUTHZ, _EXPECT, _CC, _PRAGMA = \
    range(13)
_REQUEST_SPECIAL = {b"host": _HOST, b"connection": _CONNECTION, b"transfer-encoding": _TE,
                    b"content-length": _CL, b"x-forwarded-for": _XFF, b"forwarded": _FWD,
                    b"via": _VIA, b"cookie": _COOKIE, b"authorization": _AUTHZ,
                    b"expect": _EXPECT, b"cache-control": _CC, b"pragma": _PRAGMA}
for _name in HOP_BY_HOP:
    _REQUEST_SPECIAL.setdefault(_name, _HOP)
# Host: reg-name / IPv4 / [IPv6] with optional port; no whitespace, '/', '@', '?', '#', ','.
_HOST_RE = re.compile(rb"^[A-Za-z0-9\-._~!$&'()*+;=:\[\]%]{1,255}$")


def analyze_request(headers, http_minor, protected=PROTECTED_FIELDS):
    """Check a request's headers and split them into what to forward and what the proxy uses.

    Args:
        headers (list[tuple[bytes, bytes]]): (name, value) as httptools reported them.
        http_minor (int): 0 for HTTP/1.0, 1 for HTTP/1.1.
        protected (frozenset[bytes]): lower-case field names the proxy relies on; a
            ``Connection`` header naming one of them is refused.
    Returns:
        RequestHead: the facts; ``b"".join(forward)`` is the end-to-end header lines to pass
        upstream (hop-by-hop, Connection-named, forwarding, Host and Content-Length excluded:
        ``build_request_head`` writes the last two from the parsed values).
    Raises:
        RequestError: 400 for missing/duplicate/invalid Host, TE on HTTP/1.0 or a Connection
            header naming a protected field, 501 for a transfer coding other than chunked.
    """
    head = RequestHead()
    forward = head.forward
    connection = None
    hosts = 0
    special = _REQUEST_SPECIAL
    for name, value in headers:
        kind = special.get(name.lower())
        if kind is None:
            forward += (name, b": ", value, b"\r\n")
        elif kind == _HOST:
            hosts += 1
            head.host = value  # written upstream by build_request_head
        elif kind == _CL:
            head.content_length = int(value)  # the proxy frames the body itself
        elif kind == _HOP:
            continue
        elif kind == _CONNECTION:
            connection = [value] if connection is None else connection + [value]
        elif kind == _TE:
            if head.chunked or value.strip().lower() != b"chunked":
                raise RequestError(501, f"Transfer-Encoding {value!r} not implemented "
                                        f"(only a single 'chunked' is)")
            head.chunked = True
        elif kind == _XFF:
            head.xff = value if head.xff is None else head.xff + b", " + value
        elif kind == _FWD:
            head.forwarded = value if head.forwarded is None else head.forwarded + b", " + value
        elif kind == _VIA:
            head.via = value if head.via is None else head.via + b", " + value
        else:
            if kind == _COOKIE:
                head.cookie = value if head.cookie is None else head.cookie + b"; " + value
            elif kind == _AUTHZ:
                head.authorization = value
            elif kind == _EXPECT:
                head.expect_continue = value.strip().lower() == b"100-continue"
            elif kind == _CC:
                head.cache_control = value
            else:
                head.pragma = value
            forward += (name, b": ", value, b"\r\n")
    if hosts != 1:
        if hosts > 1:
            raise RequestError(400, "more than one Host header")
        if http_minor >= 1:
            raise RequestError(400, "missing Host header (required in HTTP/1.1)")
    elif _HOST_RE.match(head.host) is None:
        raise RequestError(400, f"invalid Host {head.host!r}")
    if head.chunked and http_minor == 0:
        raise RequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if connection is not None:
        if len(connection) == 1:  # the common case: one plain option, no other names
            option = connection[0].lower()
            if option == b"close":
                head.conn_close = True
                return head
            if option == b"keep-alive":
                head.conn_keep_alive = True
                return head
        tokens = _connection_tokens(connection)
        head.conn_close = b"close" in tokens
        head.conn_keep_alive = b"keep-alive" in tokens
        named = tokens - {b"close", b"keep-alive"}
        if named:
            refused = named & protected
            if refused:
                raise RequestError(400, "Connection names " + ", ".join(
                    sorted(t.decode("latin-1") for t in refused)) + ": a field the proxy relies "
                    "on (framing, routing, auth or stickiness) cannot be hop-by-hop")
            head.forward = _without(forward, named)
            # what the backend will not see, the proxy does not act on either
            if b"x-forwarded-for" in named:
                head.xff = None
            if b"forwarded" in named:
                head.forwarded = None
            if b"via" in named:
                head.via = None
            if b"expect" in named:
                head.expect_continue = False
            if b"cache-control" in named:
                head.cache_control = None
            if b"pragma" in named:
                head.pragma = None
    return head


def origin_form(method, url, head):
    """Check the request-target's form and return it in origin-form (RFC 9112 3.2).

    Origin-form (``/path?q``) passes as is; asterisk-form (``*``) only with OPTIONS;
    absolute-form (``http://authority/path``) becomes origin-form, and its authority replaces
    the Host header (RFC 9112 3.2.2: a server uses the target's authority and ignores Host),
    so routing, caching and the upstream ``Host`` all use the same authority.

    Args:
        method (bytes): the request method.
        url (bytes): the request-target as received.
        head (RequestHead): the analysed request; ``host`` is replaced for absolute-form.
    Returns:
        bytes: the target to route on and forward.
    Raises:
        RequestError: 400 for ``*`` with another method, an authority-form target, a scheme
            other than http/https, userinfo or an invalid authority.
    """
    if url[:1] == b"/":
        return url
    if url == b"*":
        if method != b"OPTIONS":
            raise RequestError(400, "request-target '*' is only valid with OPTIONS")
        return url
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise RequestError(400, f"request-target {url[:64]!r} is not origin-form "
                                f"('/path') or absolute-form ('http://host/path')")
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        at = rest.find(stop)
        if 0 <= at < end:
            end = at
    authority, path = rest[:end], rest[end:]
    if b"@" in authority or _HOST_RE.match(authority) is None:
        raise RequestError(400, f"invalid authority {authority[:64]!r} in the request-target")
    head.host = authority
    if not path.startswith(b"/"):
        path = b"/" + path
    return path


def _without(parts, names):
    """Drop the header lines whose name is in ``names`` from a flat list of 4-part lines."""
    out = []
    for i in range(0, len(parts), 4):
        if parts[i].lower() not in names:
            out += parts[i:i + 4]
    return out


def parser_error_status(message):
    """Map an httptools parser error message to a response status.

    Args:
        message (str): ``str(exc)`` of an ``httptools.HttpParserError``.
    Returns:
        int: 501 for an unknown transfer coding, else 400.
    """
    if "invalid `Transfer-Encoding`" in message and "header value" not in message:
        return 501
    return 400


def forwarding_lines(head, client_ip, proto, http_minor):
    """Return the Via, X-Forwarded-For, X-Forwarded-Proto and Forwarded lines for a request.

    Args:
        head (RequestHead): the analysed request.
        client_ip (str): the socket peer address.
        proto (bytes): b"http" or b"https".
        http_minor (int): the client's HTTP minor version (for Via).
    Returns:
        bytes: header lines, each ending in CRLF.
    """
    ip = client_ip.encode()
    via = b"1.%d " % http_minor + VIA_NAME
    xff = ip if head.xff is None else head.xff + b", " + ip
    node = b'"[' + ip + b']"' if b":" in ip else ip
    fwd = b"for=" + node + b";proto=" + proto
    if head.host is not None:
        fwd += b';host="' + head.host + b'"'
    if head.forwarded is not None:
        fwd = head.forwarded + b", " + fwd
    return (b"Via: " + (via if head.via is None else head.via + b", " + via) + b"\r\n"
            b"X-Forwarded-For: " + xff + b"\r\nX-Forwarded-Proto: " + proto + b"\r\n"
            b"Forwarded: " + fwd + b"\r\n")


def build_request_head(method, url, head, extra):
    """Encode the upstream request head (always HTTP/1.1, keep-alive, framed by the proxy).

    ``Host`` and the body's framing are written from the parsed values, so the head describes
    exactly the request the proxy parsed, whatever the client's headers said.

    Args:
        method (bytes): request method.
        url (bytes): request target (origin-form, see :func:`origin_form`).
        head (RequestHead): analysed request.
        extra (bytes): additional header lines (forwarding headers, Host for HTTP/1.0).
    Returns:
        bytes: the head, ending in an empty line.
    """
    host = b"" if head.host is None else b"Host: " + head.host + b"\r\n"
    if head.chunked:
        framing = b"Transfer-Encoding: chunked\r\n"
    elif head.content_length is not None:
        framing = b"Content-Length: %d\r\n" % head.content_length
    else:
        framing = b""
    return b"".join((method, b" ", url, b" HTTP/1.1\r\n", host, *head.forward, extra, framing,
                     b"\r\n"))


class ResponseHead:
    """Facts about an upstream response head, and the lines to forward to the client.

    Attributes:
        forward (list[bytes]): end-to-end header lines as a flat list of parts (join them).
        content_length (int|None), chunked (bool): upstream framing.
        upstream_close (bool): upstream said Connection: close.
        cache_control (bytes|None), vary (bytes|None), has_set_cookie (bool): for caching.
    """

    __slots__ = ("forward", "content_length", "chunked", "upstream_close", "cache_control",
                 "vary", "has_set_cookie", "expires", "age")

    def __init__(self):
        self.forward = []
        self.content_length = self.cache_control = self.vary = self.expires = self.age = None
        self.chunked = self.upstream_close = self.has_set_cookie = False


_R_CONNECTION, _R_TE, _R_HOP, _R_CL, _R_CC, _R_VARY, _R_SETCOOKIE, _R_EXPIRES, _R_AGE = range(9)
_RESPONSE_SPECIAL = {b"connection": _R_CONNECTION, b"transfer-encoding": _R_TE,
                     b"content-length": _R_CL, b"cache-control": _R_CC, b"vary": _R_VARY,
                     b"set-cookie": _R_SETCOOKIE, b"expires": _R_EXPIRES, b"age": _R_AGE}
for _name in HOP_BY_HOP:
    _RESPONSE_SPECIAL.setdefault(_name, _R_HOP)


def analyze_response(headers):
    """Split upstream response headers into end-to-end lines and framing facts.

    Args:
        headers (list[tuple[bytes, bytes]]): (name, value) as httptools reported them.
    Returns:
        ResponseHead: the facts; ``b"".join(forward)`` is the header lines without hop-by-hop
        headers and those named in Connection.
    """
    resp = ResponseHead()
    forward = resp.forward
    connection = None
    special = _RESPONSE_SPECIAL
    for name, value in headers:
        kind = special.get(name.lower())
        if kind is not None:
            if kind == _R_HOP:
                continue
            if kind == _R_CONNECTION:
                connection = [value] if connection is None else connection + [value]
                continue
            if kind == _R_TE:
                resp.chunked = value.strip().lower().endswith(b"chunked")
                continue
            if kind == _R_CL:
                resp.content_length = int(value)
            elif kind == _R_CC:
                resp.cache_control = value if resp.cache_control is None else \
                    resp.cache_control + b", " + value
            elif kind == _R_VARY:
                resp.vary = value if resp.vary is None else resp.vary + b", " + value
            elif kind == _R_SETCOOKIE:
                resp.has_set_cookie = True
            elif kind == _R_EXPIRES:
                resp.expires = value
            else:
                resp.age = value
        forward += (name, b": ", value, b"\r\n")
    if connection is not None:
        tokens = _connection_tokens(connection)
        resp.upstream_close = b"close" in tokens
        named = tokens - {b"close", b"keep-alive"}
        if named:
            resp.forward = _without(forward, named)
    return resp


def reason(status):
    """Return the standard reason phrase for a status code (b"" if unknown)."""
    return _REASONS.get(status, b"")


def error_response(status, message="", close=True, extra=b""):
    """Encode a small text/plain response generated by the proxy.

    Args:
        status (int): status code.
        message (str): body text (the reason phrase if empty).
        close (bool): add ``Connection: close``.
        extra (bytes): additional header lines, CRLF-terminated.
    Returns:
        bytes: the whole response.
    """
    body = (message or reason(status).decode()).encode("utf-8", "replace") + b"\n"
    return b"".join((b"HTTP/1.1 %d " % status, reason(status), b"\r\n",
                     b"Content-Type: text/plain; charset=utf-8\r\n",
                     b"Content-Length: %d\r\n" % len(body), extra,
                     b"Connection: close\r\n" if close else b"", b"Via: 1.1 " + VIA_NAME + b"\r\n",
                     b"\r\n", body))


def parse_cookies(value):
    """Parse a Cookie header value into name -> value (first occurrence wins).

    Args:
        value (bytes|None): the Cookie header.
    Returns:
        dict[str, str]: cookies.
    """
    out = {}
    if not value:
        return out
    for part in value.decode("latin-1").split(";"):
        name, sep, val = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = val.strip().strip('"')
    return out


def split_target(url):
    """Split a request target into (path, query), both str; absolute-form keeps only the path.

    Args:
        url (bytes): the request target.
    Returns:
        tuple[str, str]: path (``/`` if empty) and query (without ``?``, ``""`` if none).
    """
    text = url.decode("latin-1")
    if not text.startswith("/"):
        scheme, sep, rest = text.partition("://")
        if sep:
            slash = rest.find("/")
            text = rest[slash:] if slash >= 0 else "/"
    path, _, query = text.partition("?")
    return path or "/", query


def is_idempotent(method):
    """Return True for methods that may be retried once they reached a backend (RFC 9110 9.2.2)."""
    return method in IDEMPOTENT_METHODS
