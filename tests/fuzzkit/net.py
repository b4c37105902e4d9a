"""The fuzzer's I/O (asyncio, 127.0.0.1 only): strict recording backends (h11) and the client
that runs cases against a proxy, with a second client's marked GET after each case and liveness
probes.
"""
import asyncio
import collections
import itertools
import os
import re

import h11

from tests.fuzzkit import cases, checks

HOST = "127.0.0.1"
MAX_DETAILS_PER_KIND = 30
EXPECT_KEEP_SEC = 10.0  # a backend request checked after its case ended still finds its rules
_CASE_NO_RE = re.compile(r"^(\d+)")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TESTS = os.path.join(_REPO, "tests") + os.sep


class Recorder:
    """What a fuzz run found: counts per kind, a few details each, and the run's counters.

    Attributes:
        counts (collections.Counter): kind -> number of findings.
        details (dict[str, list[str]]): kind -> the first details (case name: what).
        cases_by_kind (dict[str, set[str]]): kind -> names of seed cases with that finding.
        expect (dict[str, dict]): request id -> expectations (see checks.expectations).
        requests_sent, backend_requests, cases (int): counters.
    """

    def __init__(self):
        self.counts = collections.Counter()
        self.details = collections.defaultdict(list)
        self.cases_by_kind = collections.defaultdict(set)
        self.expect = {}
        self.seed_names = {}
        self.requests_sent = 0
        self.backend_requests = 0
        self.cases = 0
        self.patient_timeouts = 0  # cases whose owed responses never came (not a finding)

    def case_name(self, rid):
        """Name of the case a request id belongs to ("?" for a request without an id)."""
        m = _CASE_NO_RE.match(rid or "")
        if m is None:
            return "?" if not rid else f"probe {rid}"
        no = int(m.group(1))
        return self.seed_names.get(no, f"mut:{no}")

    def add(self, kind, case, detail):
        self.counts[kind] += 1
        if case.startswith("seed:"):
            self.cases_by_kind[kind].add(case)
        if len(self.details[kind]) < MAX_DETAILS_PER_KIND:
            self.details[kind].append(f"{case}: {detail}")

    def loop_exception_handler(self, loop, context):
        """An event-loop exception handler: an exception raised in a proxy callback (the
        in-process equivalent of a crash) is a ``proxy_exception`` finding."""
        exc = context.get("exception")
        where, rid = "?", None
        tb = exc.__traceback__ if exc is not None else None
        while tb is not None:  # the innermost frame of the project's code outside tests/
            code = tb.tb_frame.f_code
            if code.co_filename.startswith(_REPO) and not code.co_filename.startswith(_TESTS):
                where = f"{code.co_filename[len(_REPO) + 1:]}:{tb.tb_lineno} {code.co_name}"
                url = getattr(tb.tb_frame.f_locals.get("self"), "url", None)
                if isinstance(url, bytes):  # the client connection's last request target
                    rid = _rid(url) or rid
            tb = tb.tb_next
        kind = "proxy_exception" if where != "?" else "loop_exception"
        self.add(kind, self.case_name(rid), f"{context.get('message')}: {exc!r} at {where}")

    def report(self):
        """Return the findings as text lines (empty list: nothing found)."""
        lines = []
        for kind, n in self.counts.most_common():
            seeds = ", ".join(sorted(self.cases_by_kind[kind])) or "-"
            lines.append(f"{kind}: {n} (seed cases: {seeds})")
            lines += ["    " + d for d in self.details[kind][:8]]
        return lines


class StrictBackend:
    """An HTTP/1.1 backend that parses every byte with h11, records and checks each request
    (``checks.check_backend_request``) and answers with the request's id echoed."""

    def __init__(self, name, recorder):
        self.name = name
        self.recorder = recorder
        self.server = None
        self.port = None
        self.conns = itertools.count(1)

    async def start(self):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _StrictConnection(self), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self):
        self.server.close()


class _StrictConnection(asyncio.Protocol):
    def __init__(self, backend):
        self.backend = backend
        self.no = next(backend.conns)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 16)
        self.transport = None
        self.req = None
        self.body = []
        self.tail = b""  # the last bytes received, for error reports

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.tail = (self.tail + data)[-300:]
        self.conn.receive_data(data)
        self._drain(eof=False)

    def eof_received(self):
        self.conn.receive_data(b"")
        self._drain(eof=True)
        return False

    def _drain(self, eof):
        conn = self.conn
        while not self.transport.is_closing():
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # after EOF a message cut short is the proxy aborting (the client's body went
                # bad or away), not a framing error
                if not eof or conn.trailing_data[0] and conn.their_state is h11.IDLE:
                    rid = _rid(self.req.target) if self.req is not None else _last_rid(self.tail)
                    self.backend.recorder.add(
                        "backend_parse_error", self.backend.recorder.case_name(rid),
                        f"{self.backend.name} conn {self.no}: {exc}; last bytes {self.tail!r}")
                self.transport.close()
                return
            if ev is h11.NEED_DATA:
                return
            if ev is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return
            if isinstance(ev, h11.Request):
                self.req, self.body = ev, []
            elif isinstance(ev, h11.Data):
                self.body.append(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self._answer()
            elif isinstance(ev, h11.ConnectionClosed):
                self.transport.close()
                return

    def _answer(self):
        req, body = self.req, b"".join(self.body)
        self.req = None
        backend = self.backend
        rec = backend.recorder
        rec.backend_requests += 1
        headers = [(n.lower(), v) for n, v in req.headers.raw_items()]
        rid = checks.request_id(req.target, headers)
        name = rec.case_name(rid)
        for kind, detail in checks.check_backend_request(
                backend.name, req.method, req.target, headers, body, rec.expect):
            rec.add(kind, name, detail)
        out_body = b"%s %d\n" % ((rid or "-").encode(), len(body))
        conn = self.conn
        try:
            out = conn.send(h11.Response(status_code=200, headers=[
                (b"X-Echo-Id", (rid or "-").encode()), (b"X-Backend", backend.name.encode()),
                (b"X-Echo-Method", req.method), (b"Content-Length", b"%d" % len(out_body))]))
            if req.method != b"HEAD":
                out += conn.send(h11.Data(data=out_body))
            out += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # e.g. CONNECT: h11 switched protocols
            rec.add("backend_parse_error", rec.case_name(rid),
                    f"{backend.name}: cannot answer {req.method!r} {req.target[:80]!r}: {exc}")
            self.transport.close()
            return
        self.transport.write(out)
        if conn.our_state is h11.MUST_CLOSE:
            self.transport.close()
        elif conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()


_REQUEST_LINE_RE = re.compile(rb"(?:^|\r\n)[A-Z]+ [^ \r\n]*?/fz/([0-9a-z.]+)[^ \r\n]* HTTP/")


def _last_rid(data):
    """The id in the last request line of ``data`` (where a head the parser refused began)."""
    found = _REQUEST_LINE_RE.findall(data)
    return found[-1].decode() if found else None


def _rid(target):
    m = cases.ID_RE.search(target)
    return m.group(1).decode() if m else None


async def start_backends(recorder):
    """Start one StrictBackend per name in ``cases.BACKENDS``; return name -> backend."""
    out = {}
    for name in cases.BACKENDS:
        out[name] = await StrictBackend(name, recorder).start()
    return out


async def exchange(port, chunks, half_close, expected, quiet_sec, patient_sec, pause=0.002):
    """Send ``chunks`` on one connection and read the proxy's responses.

    Args:
        port (int): the proxy's port on 127.0.0.1.
        chunks (list[bytes]): writes, ``pause`` apart: seconds (float) or event-loop turns
            (int).
        half_close (bool): shut the write side after the last write (then read until the proxy
            closes, up to ``patient_sec`` per read).
        expected (int|None): responses owed (complete requests): wait up to ``patient_sec`` per
            read for them, then stop; None: read until nothing comes for ``quiet_sec``.
        quiet_sec (float): how long a connection that owes nothing may stay silent.
        patient_sec (float): how long to wait for something owed (also the total limit).
    Returns:
        tuple[list[checks.Response], str|None, bool, bool]: responses, a parse error, whether
        the proxy closed the connection, and whether a patient wait ran out.
    """
    parser = checks.ResponseReader()
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        return [], f"cannot connect: {exc}", True, False
    loop = asyncio.get_running_loop()
    end = loop.time() + patient_sec + quiet_sec
    closed = timed_out = False
    try:
        for i, chunk in enumerate(chunks):
            writer.write(chunk)
            if i + 1 < len(chunks):
                await writer.drain()
                if isinstance(pause, int):
                    for _ in range(pause):
                        await asyncio.sleep(0)
                else:
                    await asyncio.sleep(pause)
        if half_close and writer.can_write_eof():
            writer.write_eof()
        while expected is None or len(parser.responses) < expected:
            owed = half_close or expected is not None
            left = end - loop.time()
            if left <= 0:
                timed_out = owed
                break
            try:
                data = await asyncio.wait_for(reader.read(65536),
                                              min(patient_sec if owed else quiet_sec, left))
            except asyncio.TimeoutError:
                timed_out = owed
                break
            if not data:
                closed = True
                parser.feed_eof()
                break
            parser.feed(data)
            if parser.error is not None:
                break
    except (ConnectionError, OSError, RuntimeError):
        # (uvloop raises RuntimeError for a write on a transport the proxy already closed)
        closed = True
        parser.feed_eof()
    finally:
        writer.close()
    return parser.responses, parser.error, closed, timed_out


class Fuzzer:
    """Runs cases against a proxy and records what goes wrong in a Recorder.

    Args:
        port (int): the proxy's port on 127.0.0.1 (``port`` may be reassigned, e.g. after a
            restart in the bench).
        recorder (Recorder): where findings go.
        quiet_sec (float): how long a case's connection may stay silent before it is done.
        answer_sec (float): how long a victim, a probe or a case that is owed responses waits
            for them (more than the proxy's response timeout: a 504 is an answer).
    """

    def __init__(self, port, recorder, quiet_sec=0.25, answer_sec=5.0):
        self.port = port
        self.rec = recorder
        self.quiet_sec = quiet_sec
        self.answer_sec = answer_sec
        self.probes = itertools.count()

    async def run_case(self, case):
        """Send one case, check its responses, then send a second client's marked GET."""
        rec = self.rec
        rec.cases += 1
        if case.name.startswith("seed:"):
            rec.seed_names[case.no] = case.name
        refs, clean = checks.reference_parse(case.data, case.half_close)
        exps = checks.expectations(case, refs)
        rec.expect.update(exps)
        expected = len(refs) if clean and refs and not case.half_close else None
        responses, error, _, timed_out = await exchange(
            self.port, case.chunks, case.half_close, expected, self.quiet_sec, self.answer_sec,
            case.pause_sec if case.pause_turns is None else case.pause_turns)
        rec.patient_timeouts += timed_out
        rec.requests_sent += max(len(case.reqs), len(refs), 1)
        for kind, detail in checks.check_responses(case, responses, refs, clean, error):
            rec.add(kind, case.name, detail)
        if case.victim:
            await self.plain_get(f"{case.no}v", "victim", case.name)
        asyncio.get_running_loop().call_later(EXPECT_KEEP_SEC, _forget, rec.expect, list(exps))

    async def plain_get(self, rid, kind, case_name):
        """A marked plain GET on a fresh connection: it must get 200 and its own id back."""
        self.rec.requests_sent += 1
        responses, error, closed, _ = await exchange(
            self.port, [cases.plain_get(rid)], False, 1, self.answer_sec, self.answer_sec)
        if responses and responses[0].status == 200 and responses[0].echo == rid:
            return True
        got = (f"{responses[0]} ({responses[0].body[:60]!r})" if responses else
               error or ("connection closed" if closed else f"nothing in {self.answer_sec} s"))
        self.rec.add(kind, case_name, f"GET /plain/fz/{rid} got {got}")
        return False

    async def probe(self):
        """Liveness: a plain GET must still be answered (kind ``no_answer`` if not)."""
        return await self.plain_get(f"p{next(self.probes)}", "no_answer", "probe")

    async def run_sequential(self, cases):
        for case in cases:
            await self.run_case(case)

    async def run_concurrent(self, cases, concurrency, probe_every=200):
        """Run cases from an iterable with ``concurrency`` clients; probe every N cases."""
        it = iter(cases)
        done = itertools.count(1)

        async def worker():
            for case in it:
                await self.run_case(case)
                if next(done) % probe_every == 0:
                    await self.probe()
        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _forget(expect, ids):
    for rid in ids:
        expect.pop(rid, None)
