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
Routing is :func:`handle`, a pure function of (app, method, path, body), tested without sockets.
"""
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controllers.changes import ChangeError

LOG = logging.getLogger("lblab.controller.api")
MAX_BODY_BYTES = 64 * 1024


def _error(status, field, message):
    return status, {"error": message, "field": field}


def _body(raw, allowed):
    if not raw:
        data = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ChangeError("body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ChangeError("body", f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ChangeError(unknown[0], f"unknown field; expected one of {', '.join(allowed)}")
    return data


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
            app.change("set_algorithm", parts[1], data["algorithm"])
            return 200, {"ok": True}
        if len(parts) == 3 and parts[0] == "services" and parts[2] == "backends":
            if method != "POST":
                return _error(405, "method", f"{method} not allowed here; expected POST")
            data = _body(raw_body, ("backend", "weight"))
            if "backend" not in data:
                raise ChangeError("backend", "is required")
            app.change("add_backend", parts[1], data["backend"], data.get("weight", 1))
            return 201, {"ok": True}
        if len(parts) == 4 and parts[0] == "services" and parts[2] == "backends":
            if method == "DELETE":
                app.change("remove_backend", parts[1], parts[3])
                return 200, {"ok": True}
            if method == "PUT":
                data = _body(raw_body, ("weight", "drain"))
                if data.get("drain") not in (None, True, False):
                    raise ChangeError("drain", f"must be true or false, got {data['drain']!r}")
                if data.get("drain"):
                    weight = 0
                elif "weight" in data:
                    weight = data["weight"]
                else:
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "lblab-controller"
    app = None

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, payload = _error(413, "body", f"larger than {MAX_BODY_BYTES} bytes")
        else:
            raw = self.rfile.read(length) if length else b""
            try:
                status, payload = handle(self.app, self.command, self.path, raw)
            except Exception as exc:  # noqa: BLE001 -- answer 500, keep serving
                LOG.exception("lblab controller API: %s %s failed", self.command, self.path)
                status, payload = _error(500, "server", f"internal error: {exc}")
        body = json.dumps(payload, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
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
    handler = type("Handler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="lblab-api", daemon=True).start()
    return server
