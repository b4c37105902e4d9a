"""Malformed and smuggling requests: the builtin L7 proxy, HAProxy and nginx side by side.

Sends every case of ``BAD_REQUESTS`` (tests/unit/test_proxy_protocol.py) and ``SMUGGLING``
(tests/unit/test_proxy_smuggling.py) to each engine, one connection per case. All three engines
are built from the same L7 config (an auth route on /admin, a header route on X-Tenant, like the
smuggling tests' lab) and stand in front of the same recording backend on 127.0.0.1, which keeps
the raw bytes of every connection and the requests parsed from them. After each case a marker
request on a fresh connection makes the round trip before the backend is read, so an engine had
every chance to forward the case's bytes. Prints one Markdown table (the status each engine
answered, what reached the backend), the cases where the builtin differs from both engines with
the reason from DIFFERS_FROM_BOTH, and every request an engine let through. HAProxy and nginx
can express the whole config (basic auth and header routes), so nothing is dropped. No root
needed; loopback only; at most 1 s per case (CASE_TIMEOUT_SEC), about 4 s in all here.

Usage: .venv/bin/python bench/malformed_engines.py [--engines builtin,haproxy,nginx]
"""
import argparse
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httptools  # noqa: E402

from lb_apps.engines import proc as engine_proc  # noqa: E402
from lb_apps.l7config import parse_l7_config  # noqa: E402
from lblab_core.netutil import free_port  # noqa: E402
from tests.unit.test_engines_e2e import wait_listening  # noqa: E402
from tests.unit.test_proxy_harness import LoopThread, Proxy  # noqa: E402
from tests.unit.test_proxy_protocol import BAD_REQUESTS  # noqa: E402
from tests.unit.test_proxy_smuggling import ADMIN_ROUTE, SMUGGLING  # noqa: E402

HOST = "127.0.0.1"
ENGINES = ("builtin", "haproxy", "nginx")
SMUGGLING_STATUS = 400  # test_proxy_smuggling.py expects 400 for every case
# (name, raw bytes, status the builtin must answer); smuggling cases: nothing may go upstream
CASES = tuple(BAD_REQUESTS) + tuple((name, data, SMUGGLING_STATUS) for name, data in SMUGGLING)
SMUGGLING_NAMES = frozenset(name for name, _ in SMUGGLING)
CASE_TIMEOUT_SEC = 1.0   # an engine that has not answered by then waits for bytes never sent
IDLE_SEC = 0.1           # after a complete response, a second one (smuggled) must come by then
MARKER_PREFIX = "/lblab-marker/"
BACKEND_STOP_SEC = 2.0

_DROP = "RFC 9110 7.6.1: a proxy removes the fields Connection names; "
# Cases where the builtin's status differs from both HAProxy's and nginx's, and why the builtin
# answers as it does. tests/unit/test_engines_malformed.py checks that this is exactly the set
# measured and that docs/l7.md gives each case with this reason.
DIFFERS_FROM_BOTH = {
    "bare_lf": "RFC 9112 2.2 only allows (MAY) a bare LF as line end; the builtin keeps llhttp "
               "strict, where CRLF is the only line end",
    "chunk_lf_only": "RFC 9112 7.1 ends chunk lines with CRLF; lenient chunk parsing is a known "
                     "proxy/backend desync, so the builtin keeps llhttp strict",
    "connect": "RFC 9110 9.1: a method the server does not implement gets 501 (15.6.2); "
               "the builtin has no tunnels",
    "upgrade_with_body": "RFC 9110 7.8 lets a server ignore Upgrade (the builtin does without "
                         "content); with content llhttp hands the bytes over as the new protocol, "
                         "so 501 rather than frame the body itself",
    "connection_content_length": _DROP + "without Content-Length the body (a whole request) "
                                         "would reach the backend unframed",
    "connection_close_content_length": _DROP + "`close` beside it changes nothing: without "
                                               "Content-Length the body would be unframed",
    "second_connection_header": _DROP + "a second Connection line counts as much as the first "
                                        "(RFC 9110 5.3); the body would be unframed",
    "connection_transfer_encoding": _DROP + "without Transfer-Encoding the chunked body would "
                                            "reach the backend unframed",
    "connection_host": _DROP + "the backend would get an HTTP/1.1 request without Host "
                               "(RFC 9112 3.2) for an authority the proxy routed on",
    "connection_authorization": _DROP + "the proxy would admit /admin on credentials the "
                                        "backend never sees",
    "connection_cookie": _DROP + "the proxy would make its sticky-session choice on a cookie the "
                                 "backend never sees",
    "connection_routing_header": _DROP + "the proxy would route on X-Tenant while the backend "
                                         "never sees it",
}

# What HAProxy 2.6.12 and nginx 1.22.1 (Debian 12) let reach the backend, as measured and written
# in docs/l7.md. Engines change with distro updates: the test only warns when this differs.
ENGINE_FORWARDS = {
    "haproxy": frozenset((
        "cl_te", "te_cl", "cl_duplicate", "cl_list", "te_http10", "obs_fold", "bare_lf",
        "nul_header", "missing_host", "bad_host", "chunk_lf_only", "connect",
        "upgrade_with_body", "connection_content_length", "connection_close_content_length",
        "second_connection_header", "connection_transfer_encoding", "connection_host",
        "connection_authorization", "connection_cookie", "connection_routing_header",
        "asterisk_get", "absolute_form_userinfo")),
    "nginx": frozenset((
        "bare_lf", "chunk_lf_only", "upgrade_with_body", "connection_content_length",
        "connection_close_content_length", "second_connection_header",
        "connection_transfer_encoding", "connection_host", "connection_authorization",
        "connection_cookie", "connection_routing_header")),
}


def lab_config(port, backend_port):
    """Return the L7 config of the comparison: one backend, the smuggling tests' two routes.

    Args:
        port (int): the engine's listen port on 127.0.0.1.
        backend_port (int): the recording backend's port.
    Returns:
        L7Config: parsed config (every engine can express it).
    """
    return parse_l7_config({
        "listen": {"host": HOST, "port": port}, "passive_health": False,
        "backends": [{"name": "b1", "address": HOST, "port": backend_port}],
        "routes": [ADMIN_ROUTE, {"match": {"header": {"name": "X-Tenant", "value": "t"}}}]})


@dataclasses.dataclass
class _Conn:
    raw: bytearray = dataclasses.field(default_factory=bytearray)
    requests: list = dataclasses.field(default_factory=list)
    in_message: bool = False
    error: str = ""
    taken_raw: int = 0
    taken_requests: int = 0


@dataclasses.dataclass(frozen=True)
class SeenRequest:
    """One request as the backend parsed it."""
    method: str
    target: str
    headers: tuple       # (name, value) as received, latin-1
    body: bytes

    def line(self):
        """Return ``METHOD target [headers] body=N``, for reports."""
        headers = ", ".join(f"{n}: {v}" for n, v in self.headers)
        return f"{self.method} {self.target} [{headers}] body={len(self.body)}"


class _RequestSink:
    """httptools callbacks for one backend connection."""

    def __init__(self, conn):
        self.conn, self.parser, self.replies = conn, None, 0
        self.url, self.headers, self.body = b"", [], b""

    def on_message_begin(self):
        self.url, self.headers, self.body = b"", [], b""
        self.conn.in_message = True

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.conn.requests.append(SeenRequest(self.parser.get_method().decode("latin-1"),
                                              self.url.decode("latin-1"), tuple(self.headers),
                                              self.body))
        self.conn.in_message = False
        self.replies += 1


@dataclasses.dataclass(frozen=True)
class Reached:
    """What reached the backend for one case (marker requests left out)."""
    requests: tuple      # SeenRequest parsed by the backend
    partial: bool        # bytes that did not parse or never made a complete request
    raw: bytes = b""     # those connections' bytes since the previous case

    def __bool__(self):
        return bool(self.requests) or self.partial

    def text(self):
        """Return ``no``, ``1 req``, ``unparsed bytes``, ``1 req + unparsed bytes``."""
        if not self:
            return "no"
        parts = [f"{len(self.requests)} req"] if self.requests else []
        return " + ".join(parts + (["unparsed bytes"] if self.partial else []))


class RecordingBackend:
    """An HTTP/1.1 backend on 127.0.0.1 that records the raw bytes of every connection.

    Each connection is parsed with httptools (llhttp, strict); every complete request gets
    ``200`` with a 3-byte body, keep-alive. A connection whose bytes do not parse is closed.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.conns = []
        self.stopping = False
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = _Conn()
            with self.lock:
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock, conn):
        sink = _RequestSink(conn)
        sink.parser = parser = httptools.HttpRequestParser(sink)
        sock.settimeout(0.1)
        with sock:
            while not self.stopping:
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    conn.raw += data
                    try:
                        parser.feed_data(data)
                    except httptools.HttpParserUpgrade:
                        pass
                    except httptools.HttpParserError as exc:
                        conn.error = str(exc) or type(exc).__name__
                replies, sink.replies = sink.replies, 0
                try:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n" * replies)
                except OSError:
                    return
                if conn.error:
                    return

    def take(self):
        """Return what arrived since the last call (marker requests left out) as ``Reached``."""
        requests, raw = [], b""
        with self.lock:
            for conn in self.conns:
                new = conn.requests[conn.taken_requests:]
                requests += [r for r in new if not r.target.startswith(MARKER_PREFIX)]
                if len(conn.raw) > conn.taken_raw and (conn.in_message or conn.error):
                    raw += bytes(conn.raw[conn.taken_raw:])
                conn.taken_raw, conn.taken_requests = len(conn.raw), len(conn.requests)
        return Reached(tuple(requests), bool(raw), raw)

    def close(self):
        self.stopping = True
        self.sock.close()
        for t in self.threads:
            t.join(BACKEND_STOP_SEC)


class _ResponseSink:
    def __init__(self):
        self.parser = None
        self.statuses, self.complete = [], 0

    def on_headers_complete(self):
        self.statuses.append(self.parser.get_status_code())

    def on_message_complete(self):
        self.complete += 1


def send_case(port, data, timeout=CASE_TIMEOUT_SEC):
    """Send ``data`` on a new connection; return the statuses of the responses read.

    Reads until the server closes, ``timeout`` passes, or ``IDLE_SEC`` passes with no byte
    after a complete response (a second response would be a smuggled request's).

    Returns:
        tuple[int]: status codes in order (empty: closed or timed out without an answer).
    """
    sink = _ResponseSink()
    sink.parser = parser = httptools.HttpResponseParser(sink)
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # answered and closed before reading everything: read what it said
        while True:
            now = time.monotonic()
            wait = deadline - now
            if sink.complete and len(sink.statuses) == sink.complete:
                wait = min(wait, IDLE_SEC)
            if wait <= 0:
                break
            sock.settimeout(wait)
            try:
                chunk = sock.recv(65536)
            except OSError:  # timeout or reset
                break
            if not chunk:
                break
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserError:
                break
    return tuple(sink.statuses)


def marker_round_trip(port, n):
    """A fresh-connection GET that must come back 200 through the engine (sync point)."""
    statuses = send_case(port, b"GET %s%d HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
                         % (MARKER_PREFIX.encode(), n), timeout=5.0)
    if statuses[:1] != (200,):
        raise RuntimeError(f"marker request {n}: expected status 200, got {statuses!r}")


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One case on one engine."""
    statuses: tuple
    reached: Reached

    @property
    def status(self):
        """The first status answered, or None."""
        return self.statuses[0] if self.statuses else None


def run_cases(port, backend, cases=CASES):
    """Send each case, then a marker; return ``{case: CaseResult}``."""
    backend.take()
    out = {}
    for n, (name, data, _) in enumerate(cases):
        statuses = send_case(port, data)
        try:
            marker_round_trip(port, n)
        except (OSError, RuntimeError) as exc:
            raise RuntimeError(f"after case {name!r} (answered {statuses!r}): {exc}") from exc
        out[name] = CaseResult(statuses, backend.take())
    return out


def _run_external(engine, cfg, run_dir, body):
    """Start HAProxy or nginx, run ``body()``, stop it; raise if any of its processes is left.

    Like test_engines_e2e's ``run_engine`` minus its nginx worker count, which this comparison
    does not need (at commit 08a26dc that count raced with nginx's fork: once in 40 runs here).
    """
    handle = engine_proc.start_engine(engine, cfg, run_dir, access_log=False)
    try:
        wait_listening(cfg.listen.port)
        body()
    finally:
        stopped = engine_proc.stop_engine(handle)
    left = engine_proc.session_processes(handle.process.pid)
    if stopped.leftovers_killed or left:
        raise RuntimeError(f"{engine}: stray processes {list(stopped.leftovers_killed)} were "
                           f"killed, {[p.pid for p in left]} are left")


def run_engine_cases(engine, backend, run_dir, cases=CASES):
    """Start ``engine`` in front of ``backend``, run every case, stop it.

    HAProxy and nginx are started and stopped by ``lb_apps.engines.proc`` (their whole session
    must be gone afterwards); the builtin runs in a uvloop thread, as in the proxy's tests.

    Returns:
        dict[str, CaseResult]
    """
    cfg = lab_config(free_port(), backend.port)
    results = {}
    if engine == "builtin":
        lt = LoopThread()
        try:
            proxy = Proxy(lt, cfg)
            try:
                wait_listening(cfg.listen.port)
                results = run_cases(cfg.listen.port, backend, cases)
            finally:
                proxy.stop()
        finally:
            lt.close()
        return results

    def body():
        results.update(run_cases(cfg.listen.port, backend, cases))

    _run_external(engine, cfg, os.path.join(run_dir, engine), body)
    return results


def compare(engines=ENGINES, cases=CASES):
    """Run every case on every engine against one recording backend.

    Returns:
        dict[str, dict[str, CaseResult]]: engine -> case -> result.
    """
    backend = RecordingBackend()
    run_dir = tempfile.mkdtemp(prefix="lblab-malformed-")
    try:
        return {engine: run_engine_cases(engine, backend, run_dir, cases) for engine in engines}
    finally:
        backend.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def differs_from_both(results):
    """Return the cases whose builtin status is neither HAProxy's nor nginx's."""
    return {name for name, r in results["builtin"].items()
            if r.status not in (results["haproxy"][name].status, results["nginx"][name].status)}


def forwarded(results, engine):
    """Return ``{case: Reached}`` for the cases where ``engine`` let something reach the backend."""
    return {name: r.reached for name, r in results[engine].items() if r.reached}


def _status_text(result):
    return "+".join(str(s) for s in result.statuses) if result.statuses else "none"


def table(results, engines=ENGINES):
    """Return the Markdown table: case, expected, status per engine, reached per engine."""
    head = (["case", "expected"] + list(engines) + [f"{e} → backend" for e in engines])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, _, expected in CASES:
        if not all(name in results[e] for e in engines):
            continue
        kind = " (smuggling)" if name in SMUGGLING_NAMES else ""
        row = [f"`{name}`{kind}", str(expected)]
        row += [_status_text(results[e][name]) for e in engines]
        row += [results[e][name].reached.text() for e in engines]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def versions():
    """Return the first line of ``haproxy -v`` and ``nginx -v``."""
    out = []
    for cmd in (["haproxy", "-v"], ["nginx", "-v"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out.append((proc.stdout + proc.stderr).strip().splitlines()[0])
        except (OSError, IndexError, subprocess.TimeoutExpired):
            out.append(f"{cmd[0]}: not found")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/malformed_engines.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated subset of builtin,haproxy,nginx")
    args = parser.parse_args(argv)
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"--engines: unknown engine {unknown[0]!r}; expected some of "
                     f"{', '.join(ENGINES)}")
    for engine in engines:
        if engine != "builtin" and shutil.which(engine) is None:
            parser.error(f"--engines: {engine} is not installed (run make setup)")
    t0 = time.monotonic()
    results = compare(engines)
    elapsed = time.monotonic() - t0
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          + "; ".join(versions()) + f"; {len(CASES)} cases in {elapsed:.1f} s")
    print(table(results, engines))
    if {"haproxy", "nginx"} <= set(engines) and "builtin" in engines:
        print("\nbuiltin differs from both engines:")
        for name in sorted(differs_from_both(results)):
            print(f"  {name}: {DIFFERS_FROM_BOTH.get(name, 'NOT DOCUMENTED in DIFFERS_FROM_BOTH')}")
    for engine in engines:
        found = forwarded(results, engine)
        if engine in ENGINE_FORWARDS and set(found) != ENGINE_FORWARDS[engine]:
            print(f"\n{engine}: differs from ENGINE_FORWARDS (docs/l7.md): newly forwarded "
                  f"{sorted(set(found) - ENGINE_FORWARDS[engine])}, no longer "
                  f"{sorted(ENGINE_FORWARDS[engine] - set(found))}")
        if found:
            print(f"\n{engine} let these reach the backend:")
            for name, reached in found.items():
                tag = " (SMUGGLING CASE)" if name in SMUGGLING_NAMES else ""
                print(f"  {name}{tag}: {reached.text()}")
                for req in reached.requests:
                    print(f"    {req.line()}")
                if reached.partial:
                    print(f"    unparsed bytes: {reached.raw[:300]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
