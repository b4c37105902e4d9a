"""JSON API of the controller on localhost: read pools and stats, change pools at run time.

Routes (all bodies and answers are JSON)::

    GET    /services                            pools, weights, health states, algorithms
    GET    /stats                               per backend and per switch counters
    POST   /services/<svc>/backends             {"backend": "h6", "weight": 1}   add
    PUT    /services/<svc>/backends/<backend>   {"weight": 2} or {"drain": true}
    POST   /services/<svc>/backends/<backend>/drain                              weight 0
    DELETE /services/<svc>/backends/<backend>                                    remove
    PUT    /services/<svc>                      {"algorithm": "least_connections"}

Bad input answers 400 with ``{"error": message, "field": name}``; unknown services/backends 404.
Types are JSON's and strict: ``drain`` is ``true``/``false`` (not 1), ``weight`` an integer
(not ``true``, ``"2"`` or ``2.0``), ``backend`` and ``algorithm`` strings. A body is UTF-8 JSON
nested at most :data:`MAX_JSON_DEPTH` deep (checked before parsing: no recursion error).
Routing is :func:`handle`, a pure function of (app, method, path, body), tested without sockets.

The HTTP shell bounds what one client can hold: ``Content-Length`` must be digits (else 400),
at most :data:`MAX_BODY_BYTES` (else 413, the body unread), one value (else 400), no
``Transfer-Encoding`` (else 501), and the body must arrive within :data:`READ_TIMEOUT_SEC` in
all (else 408); each read of the request line and headers has that socket timeout too. Every answer closes the connection (HTTP/1.0).
"""
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controllers.changes import ChangeError
from controllers.config import MAX_WEIGHT

LOG = logging.getLogger("lblab.controller.api")
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
# A client that stops sending (a short body, headers never finished) holds a handler thread at
# most this long; serve() reads it at start-up.
READ_TIMEOUT_SEC = 5.0
SHOWN_CHARS = 60
SHUTDOWN_POLL_SEC = 0.1   # how soon server.shutdown() returns (socketserver's default: 0.5)
_CONTENT_LENGTH = re.compile(r"[0-9]{1,20}")
# A JSON string (an unterminated one runs to the end: one pass, no backtracking) or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def _error(status, field, message):
    return status, {"error": message, "field": field}


def _shown(value):
    """Return a decoded JSON value as JSON text (``true``, ``"2"``, ``2.0``), cut short."""
    text = json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _check_depth(text):
    """Raise ChangeError if ``text`` nests arrays/objects deeper than MAX_JSON_DEPTH.

    Counts brackets outside strings in one linear pass, without recursion, so a body of
    64 KiB of ``[`` is refused here instead of raising RecursionError inside ``json.loads``.
    """
    depth = 0
    for token in _JSON_TOKEN.findall(text):
        if token == "[" or token == "{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ChangeError("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels; "
                                          f"expected at most {MAX_JSON_DEPTH}")
        elif token == "]" or token == "}":
            depth -= 1


def _body(raw, allowed):
    if not raw:
        data = {}
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChangeError("body", f"not UTF-8 ({exc}); expected UTF-8 JSON") from None
        _check_depth(text)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ChangeError("body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ChangeError("body", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ChangeError(unknown[0], f"unknown field; expected one of {', '.join(allowed)}")
    return data


def _string(data, field):
    value = data[field]
    if not isinstance(value, str):
        raise ChangeError(field, f"must be a string, got {_shown(value)}")
    return value


def _weight(data, field="weight"):
    # The range is checked again by the core (config.parse_weight); the JSON type only here.
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
        raise ChangeError(field, f"must be an integer in 0..{MAX_WEIGHT}, got {_shown(value)}")
    return value


def _bool(data, field):
    value = data[field]
    if not isinstance(value, bool):
        raise ChangeError(field, f"must be true or false, got {_shown(value)}")
    return value


def handle(app, method, path, raw_body=b""):
    """Route one request.

    Args:
        app: object with ``services()``, ``stats()`` and ``change(method, *args)``.
        method (str): HTTP method.
        path (str): request path (query string ignored).
        raw_body (bytes): request body.
    Returns:
        tuple[int, dict]: HTTP status and JSON-ready answer.
    """
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    try:
        if method == "GET" and parts == ["services"]:
            return 200, app.services()
        if method == "GET" and parts == ["stats"]:
            return 200, app.stats()
        if len(parts) == 2 and parts[0] == "services" and method == "PUT":
            data = _body(raw_body, ("algorithm",))
            if "algorithm" not in data:
                raise ChangeError("algorithm", "is required")
            app.change("set_algorithm", parts[1], _string(data, "algorithm"))
            return 200, {"ok": True}
        if len(parts) == 3 and parts[0] == "services" and parts[2] == "backends":
            if method != "POST":
                return _error(405, "method", f"{method} not allowed here; expected POST")
            data = _body(raw_body, ("backend", "weight"))
            if "backend" not in data:
                raise ChangeError("backend", "is required")
            backend = _string(data, "backend")
            weight = _weight(data) if "weight" in data else 1
            app.change("add_backend", parts[1], backend, weight)
            return 201, {"ok": True}
        if len(parts) == 4 and parts[0] == "services" and parts[2] == "backends":
            if method == "DELETE":
                app.change("remove_backend", parts[1], parts[3])
                return 200, {"ok": True}
            if method == "PUT":
                data = _body(raw_body, ("weight", "drain"))
                drain = _bool(data, "drain") if "drain" in data else None
                weight = _weight(data) if "weight" in data else None
                if drain and weight is not None:
                    raise ChangeError("weight", f"{_shown(weight)} given with drain: true; "
                                                "expected one or the other, not both "
                                                "(drain sets weight 0)")
                if drain:
                    weight = 0
                elif weight is None:
                    raise ChangeError("weight", "is required (or drain: true)")
                app.change("set_weight", parts[1], parts[3], weight)
                return 200, {"ok": True}
            return _error(405, "method", f"{method} not allowed here; expected PUT or DELETE")
        if (len(parts) == 5 and parts[0] == "services" and parts[2] == "backends"
                and parts[4] == "drain" and method == "POST"):
            app.change("set_weight", parts[1], parts[3], 0)
            return 200, {"ok": True}
    except ChangeError as exc:
        return _error(exc.status, exc.field, str(exc))
    return _error(404, "path", f"no route for {method} {path}; see GET /services, GET /stats")


class _BodyError(Exception):
    """The request's framing is wrong: answer ``status`` for ``field`` and close."""

    def __init__(self, status, field_name, message):
        super().__init__(f"{field_name}: {message}")
        self.answer = _error(status, field_name, str(self))


class _Handler(BaseHTTPRequestHandler):
    server_version = "lblab-controller"
    app = None
    timeout = READ_TIMEOUT_SEC   # socket timeout: request line, headers, body, answer

    def _content_length(self):
        if "Transfer-Encoding" in self.headers:
            raise _BodyError(501, "Transfer-Encoding",
                             f"{self.headers['Transfer-Encoding']!r} is not supported; "
                             "expected a body sent with a Content-Length")
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            return 0
        if len(set(values)) > 1:
            raise _BodyError(400, "Content-Length", f"given {len(values)} times with different "
                                                    f"values {values}; expected one")
        if not _CONTENT_LENGTH.fullmatch(values[0]):
            raise _BodyError(400, "Content-Length", f"{values[0][:SHOWN_CHARS]!r} is not a "
                                                    "length; expected digits only (bytes)")
        length = int(values[0])
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "body", f"Content-Length {length} is too large; expected at "
                                          f"most {MAX_BODY_BYTES} bytes")
        return length

    def _read_body(self, length):
        # One deadline for the whole body, so a client trickling bytes is bounded too.
        deadline = time.monotonic() + self.timeout
        chunks, got = [], 0
        try:
            while got < length:
                self.connection.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError:
            raise _BodyError(408, "body", f"got {got} of {length} bytes (Content-Length) in "
                                          f"{self.timeout:g} s; expected the whole body") from None
        finally:
            self.connection.settimeout(self.timeout)   # the answer gets the full timeout
        if got < length:
            raise _BodyError(400, "body", f"got {got} of {length} bytes (Content-Length) before "
                                          "the connection closed; expected the whole body")
        return b"".join(chunks)

    def _serve(self):
        self.close_connection = True
        try:
            raw = self._read_body(self._content_length())
        except _BodyError as exc:
            status, payload = exc.answer
        else:
            try:
                status, payload = handle(self.app, self.command, self.path, raw)
            except Exception as exc:  # noqa: BLE001 -- answer 500, keep serving
                LOG.exception("lblab controller API: %s %s failed", self.command, self.path)
                status, payload = _error(500, "server", f"internal error: {exc}")
        body = json.dumps(payload, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, fmt, *args):  # quiet: one line per request at debug level
        LOG.debug("api: " + fmt, *args)


def serve(host, port, app):
    """Start the API on ``host:port`` in a daemon thread and return the server.

    Raises:
        OSError: the port is taken.
    """
    handler = type("Handler", (_Handler,), {"app": app, "timeout": READ_TIMEOUT_SEC})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL_SEC,), name="lblab-api",
                     daemon=True).start()
    return server
