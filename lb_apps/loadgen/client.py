"""HTTP load generator: open loop (Poisson/constant, latency from the planned send time) or closed loop.

uvloop, ``asyncio.Protocol`` callbacks and httptools' response parser; a request is a small
object moved between callbacks, never a coroutine (both in ``lb_apps.loadgen.protocol``).
Connections bind their source ports from the seed (``lb_apps.loadgen.ports``, ``connect``). Workload decisions come from
``lb_apps.loadgen.workload``. Every run ends by itself: the send window is bounded by warm-up + duration
(and ``max_requests``), and every request by its timeout.
"""
import argparse
import asyncio
import collections
import json
import ssl
import sys
import time

from lb_apps.host_settings import add_renamed_flags, check_record_path, settings_from_argv
from lb_apps.loadgen import connect as lc
from lb_apps.loadgen import protocol
from lb_apps.loadgen.protocol import ClientConnection, Request
from lb_apps.loadgen import workload as wl
from lb_apps.loadgen.ports import SOURCE_PORT_MODES, SourcePorts
from lblab_core import entry
from lblab_core.errors import UsageError
from lb_apps.records import RecordWriter

FLUSH_RECORDS_AT = 5000
SWEEP_PERIOD_SEC = 0.05     # request timeouts are checked this often
# An open-loop sender behind its schedule yields to the event loop at least this often, so
# that connects, responses, timeouts and SIGINT go on during a catch-up burst.
SENDER_SLICE_SEC = 0.001
_now = protocol.now      # monotonic, ns resolution (see lb_apps.loadgen.protocol)


class LoadGenerator:
    """Runs one workload against one target and writes records.

    Args:
        cfg (workload.LoadgenConfig): settings.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.loop = None
        arrival_rng, mix_rng, think_rng = wl.seeded_rngs(cfg.seed)
        self.arrival_rng = arrival_rng
        self.mix = wl.RequestMix(cfg.mix, mix_rng)
        self.templates = [wl.compile_request(e, cfg.target.host_header, cfg.keepalive)
                          for e in cfg.mix]
        self.think = wl.make_think(cfg.think_dist, cfg.think_ms / 1000.0, think_rng)
        self.error_backoff = cfg.error_backoff_ms / 1000.0
        self.jars = collections.defaultdict(dict) if cfg.session else None
        self.ssl = None
        if cfg.target.scheme == "https":
            # The lab's certificate is self-signed: encrypt, do not verify.
            self.ssl = ssl.create_default_context()
            self.ssl.check_hostname = False
            self.ssl.verify_mode = ssl.CERT_NONE
        avoid = lc.ephemeral_range() if cfg.source_ports == "seeded" else None
        try:
            self.ports = SourcePorts(cfg.source_ports, cfg.seed, avoid=avoid)
        except ValueError as exc:
            raise UsageError(f"source_ports: seeded: {exc}; use source_ports: kernel") from None
        self._address = None
        self.idle = []
        self.open = 0
        self.waiters = collections.deque()
        self.connecting = set()
        self._sweeper = None
        self.outstanding = 0
        self.created = 0
        self.limit = cfg.max_requests
        self.sending = True
        self.summary = wl.SummaryBuilder()
        self.writer = None
        self._finished = None
        self._window_over = None
        self.window_end = None
        self._connections = set()

    # ----- clock -------------------------------------------------------------------------

    def _start_clock(self):
        self.loop = asyncio.get_running_loop()
        mono, wall = _now(), time.time()
        self.epoch_offset = wall - mono
        self.t0 = mono
        self.warmup_end = self.t0 + self.cfg.warmup_s
        self.deadline = self.warmup_end + self.cfg.duration_s

    # ----- requests ----------------------------------------------------------------------

    def new_request(self, scheduled, user, on_done=None):
        """Create (and count) the next request; None once ``max_requests`` were created."""
        if self.limit is not None and self.created >= self.limit:
            self._end_window(_now())
            return None
        self.created += 1
        index = self.mix.choose_index()
        rid = f"{self.cfg.name}-{self.created}"
        jar = self.jars[user] if self.jars is not None else None
        data = wl.render_request(self.templates[index], rid, jar)
        return Request(rid, scheduled, self.mix.entries[index], data, user,
                       scheduled < self.warmup_end, on_done)

    def submit(self, req):
        """Send ``req`` on an idle connection, a new one, or queue it for the next free one."""
        self.outstanding += 1
        req.timer = _now() + self.cfg.timeout_s
        self._dispatch(req)

    def _dispatch(self, req):
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                conn.send(req, "reused")
                return
        if self.open < self.cfg.connections:
            self.open += 1
            self.connecting.add(req)
            self.loop.create_task(self._connect(req))
        else:
            if req.queued is None:
                req.queued = _now()
            self.waiters.append(req)

    @staticmethod
    def _dequeued(req):
        """``req`` leaves the pool's queue: its pool wait grows by how long it was in it."""
        if req.queued is not None:
            req.pool_wait += _now() - req.queued
            req.queued = None

    async def _open(self):
        target = self.cfg.target
        if self._address is None:
            self._address = await lc.resolve(self.loop, target.host, target.port)
        return await lc.open_connection(
            self.loop, lambda: ClientConnection(self), self._address, self.ports, self.ssl,
            target.host if self.ssl else None)

    async def _connect(self, req):
        error = None
        began = _now()
        try:
            _, conn = await asyncio.wait_for(self._open(), self.cfg.connect_timeout_s)
        except asyncio.TimeoutError:
            error = "connect_timeout"
        except ConnectionRefusedError:
            error = "connect_refused"
        except ssl.SSLError:
            error = "tls_error"
        except OSError:
            error = "connect_error"
        self.connecting.discard(req)
        if error is not None:
            self.open -= 1
            if not req.done:
                req.start = _now()
                self.fail(req, error)
            self._next_waiter()
            return
        self._connections.add(conn)
        if req.done:                           # timed out while connecting
            self._release(conn)
        else:
            req.connect = _now() - began
            conn.send(req, "new")

    def _next_waiter(self):
        while self.waiters:
            req = self.waiters.popleft()
            if not req.done:
                self._dequeued(req)
                self._dispatch(req)
                return

    def _release(self, conn):
        """A connection is free: give it to a waiting request or park it."""
        while self.waiters:
            req = self.waiters.popleft()
            if not req.done:
                self._dequeued(req)
                conn.send(req, "reused")
                return
        if self.sending:
            self.idle.append(conn)
        else:
            conn.transport.close()

    def complete(self, conn, req, keep):
        """A full response arrived."""
        if req.done:
            return
        # free the connection first: the closed-loop user's next request (started from
        # _finish) then reuses it instead of opening another
        if keep and self.cfg.keepalive:
            self._release(conn)
        else:
            conn.transport.close()
        self._finish(req, None)

    def fail(self, req, error):
        """The request ended without a full response (``error`` is a workload.ERROR_KINDS)."""
        if not req.done:
            self._finish(req, error)

    def _sweep(self):
        """Time out overdue requests (one periodic sweep instead of a timer per request)."""
        now = _now()
        for conn in list(self._connections):
            req = conn.req
            if req is not None and not req.done and req.timer <= now:
                conn.req = None
                conn.transport.abort()
                self._finish(req, "timeout")
        for req in list(self.waiters):
            if not req.done and req.timer <= now:
                self._finish(req, "timeout")
        for req in list(self.connecting):
            if not req.done and req.timer <= now:
                self._finish(req, "timeout")
        self._sweeper = self.loop.call_later(SWEEP_PERIOD_SEC, self._sweep)

    def connection_lost(self, conn):
        self._connections.discard(conn)
        self.open -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        self._next_waiter()

    def _finish(self, req, error):
        req.done = True
        req.error = error
        end = _now()
        if req.queued is not None:       # ended (timed out) in the pool's queue
            req.pool_wait += end - req.queued
        self.outstanding -= 1
        off = self.epoch_offset
        if not req.warmup:
            self.summary.add(req.scheduled, end, req.status, error, req.start, req.pool_wait)
        if self.writer is not None and not (req.warmup and self.cfg.warmup_records == "drop"):
            entry = req.entry
            self.writer.add((req.rid, self.cfg.name, req.scheduled + off,
                             None if req.start is None else req.start + off, end + off,
                             req.status, req.nbytes, req.backend, error, entry.method,
                             entry.path, req.conn, req.cache, req.warmup, req.pool_wait,
                             req.connect))
            if len(self.writer) >= FLUSH_RECORDS_AT:
                self.writer.flush()
        if req.on_done is not None:
            req.on_done(req)
        self._check_finished()

    def _end_window(self, when):
        """Close the send window (deadline, schedule exhausted, max_requests or stop)."""
        if self.window_end is None:
            self.window_end = when
            self._window_over.set()

    def _check_finished(self):
        if not self.sending and self.outstanding == 0 and self._finished is not None \
                and not self._finished.done():
            self._finished.set_result(None)

    # ----- the two loops -----------------------------------------------------------------

    async def _open_loop(self):
        cfg = self.cfg
        t0, now = self.t0, _now
        offsets = wl.arrival_offsets(cfg.arrival, cfg.rate, cfg.warmup_s + cfg.duration_s,
                                     self.arrival_rng, cfg.max_requests)
        user = 0
        last_yield = now()
        for offset in offsets:
            when = t0 + offset
            t = now()
            delay = when - t
            if delay > 0:
                while delay > 0:    # never send early: uvloop timers round to milliseconds
                    await asyncio.sleep(delay)
                    delay = when - now()
                last_yield = when
            elif t - last_yield > SENDER_SLICE_SEC:
                # Overdue (a stall, or a rate above what this process can send): without
                # this the loop never awaited and created the whole backlog (500,000
                # requests at --rate 1000000) before a single connect or SIGTERM ran.
                await asyncio.sleep(0)
                last_yield = now()
            if not self.sending:
                break
            req = self.new_request(when, user)
            if req is None:
                break
            user = (user + 1) % cfg.users
            self.submit(req)

    def _user_next(self, user):
        if not self.sending:
            return
        now = _now()
        if now >= self.deadline:
            return
        req = self.new_request(now, user, self._user_done)
        if req is not None:
            self.submit(req)

    def _user_done(self, req):
        pause = wl.pause_after(self.think(), req.error, self.error_backoff)
        if pause > 0:
            self.loop.call_later(pause, self._user_next, req.user)
        else:
            self._user_next(req.user)     # safe: sending never completes a request inline

    async def run(self, stop=None):
        """Run the whole workload; returns the summary dict.

        Args:
            stop (asyncio.Event|None): set it to end the send window early (SIGINT/SIGTERM).
        """
        cfg = self.cfg
        self._start_clock()
        self._finished = self.loop.create_future()
        self._window_over = asyncio.Event()
        if cfg.record:
            self.writer = RecordWriter(cfg.record, encode=wl.encode_record_line)
        flush_timer = None

        def periodic_flush():
            nonlocal flush_timer
            self.writer.flush()
            flush_timer = self.loop.call_later(cfg.flush_period_s, periodic_flush)
        if self.writer is not None:
            flush_timer = self.loop.call_later(cfg.flush_period_s, periodic_flush)
        try:
            if cfg.mode == "open":
                sender = self.loop.create_task(self._open_loop())
                sender.add_done_callback(lambda _: self._end_window(self.deadline))
            else:
                sender = None
                for user in range(cfg.users):
                    self.loop.call_soon(self._user_next, user)
            # Open loop: the window ends with the schedule (its arrivals end at the deadline),
            # so a sender still behind at the deadline sends the rest of the planned arrivals
            # late (their latency shows it) rather than dropping them.
            timer = None if sender is not None else \
                self.loop.call_at(self.deadline, self._end_window, self.deadline)
            self._sweeper = self.loop.call_later(SWEEP_PERIOD_SEC, self._sweep)
            stopper = None
            if stop is not None:
                stopper = self.loop.create_task(stop.wait())
                stopper.add_done_callback(lambda _: self._end_window(_now()))
            await self._window_over.wait()
            self.sending = False
            if timer is not None:
                timer.cancel()
            for task in (sender, stopper):
                if task is not None:
                    task.cancel()
            for conn in self.idle:
                conn.transport.close()
            self._check_finished()
            # every outstanding request ends by its own timeout
            try:
                await asyncio.wait_for(self._finished, cfg.timeout_s + cfg.connect_timeout_s + 1.0)
            except asyncio.TimeoutError:
                pass        # cannot happen unless a timer was lost; the summary says what ended
            measured = min(self.window_end, self.deadline) - self.warmup_end
            return self.summary.result(round(max(measured, 0.0), 6))
        finally:
            self.sending = False
            if flush_timer is not None:
                flush_timer.cancel()
            if self._sweeper is not None:
                self._sweeper.cancel()
            for conn in list(self._connections):
                conn.transport.abort()
            if self.writer is not None:
                self.writer.close()


def run(cfg, stop=None):
    """Run a workload on a fresh uvloop event loop (blocking); returns the summary dict."""
    import uvloop

    async def main():
        return await LoadGenerator(cfg).run(stop)
    return uvloop.run(main())


# ----- command line ------------------------------------------------------------------------

def build_parser():
    """Return the argparse parser of ``lblab loadgen``."""
    p = argparse.ArgumentParser(
        prog="lblab loadgen", argument_default=argparse.SUPPRESS,
        description="HTTP load generator: open loop (--mode open --rate R) or closed loop "
                    "(--mode closed --users N). Flags override the --config file. Prints a "
                    "summary at exit (JSON with --json).")
    p.add_argument("--url", help="target, e.g. http://10.0.0.5:80/ (https: certificate not "
                                 "verified)")
    p.add_argument("--config", help="JSON or YAML file of settings (same names, underscores; "
                                    "'mix' is a list of {path, method, weight, headers, cookies, "
                                    "body_size})")
    p.add_argument("--mode", choices=wl.MODES, help="open or closed loop (default closed)")
    p.add_argument("--rate", type=float, help="open loop: requests per second (default 100)")
    p.add_argument("--arrival", choices=wl.ARRIVALS, help="open loop arrivals (default poisson)")
    p.add_argument("--users", type=int, help="closed loop: concurrent users (default 1)")
    p.add_argument("--think-ms", type=float, help="closed loop: mean think time, milliseconds "
                                                  "(default 0), as the spec's think_ms")
    p.add_argument("--think-dist", choices=wl.THINK_DISTS, help="fixed (default) or exponential")
    p.add_argument("--duration-s", type=float, help="measured seconds (default 10)")
    p.add_argument("--warmup-s", type=float,
                   help="seconds before the measured window (default 0)")
    p.add_argument("--warmup-records", choices=wl.WARMUP_RECORDS,
                   help="mark warm-up records (default) or drop them")
    p.add_argument("--max-requests", type=int, help="stop after sending this many")
    p.add_argument("--keepalive", dest="keepalive", action="store_true",
                   help="reuse connections (default)")
    p.add_argument("--no-keepalive", dest="keepalive", action="store_false",
                   help="one connection per request (Connection: close)")
    p.add_argument("--pool-size", type=int, help="most open connections (default: users, or "
                                                 f"{wl.DEFAULT_OPEN_POOL_SIZE} in open loop)")
    p.add_argument("--seed", type=int, help="seed of arrivals, mix, think times and source "
                                            "ports (default 1)")
    p.add_argument("--source-ports", choices=SOURCE_PORT_MODES,
                   help="seeded (default): each connection binds its source port from the seed, "
                        "so 5-tuple hashing repeats with the seed; kernel: the kernel chooses")
    p.add_argument("--session", action="store_true",
                   help="each virtual user keeps the cookies it receives")
    p.add_argument("--timeout-s", type=float, help="seconds per request (default 5)")
    p.add_argument("--connect-timeout-s", type=float, help="seconds per connect (default 2)")
    p.add_argument("--flush-period-s", type=float,
                   help="seconds between record flushes (default 1)")
    p.add_argument("--error-backoff-ms", type=float,
                   help="closed loop: a user waits at least this long after a transport error "
                        "(refused, reset, timeout...) before its next request (default "
                        f"{wl.DEFAULT_ERROR_BACKOFF_MS:g}; 0 retries at once)")
    p.add_argument("--record", help="JSONL file of request records to create")
    p.add_argument("--name", help="client name in records and request ids (default loadgen)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--check", action="store_true",
                   help="check the settings (file and flags) as a start would, print one line "
                        "and exit")
    add_renamed_flags(p, wl.RENAMED_SETTINGS)
    return p


def config_from_argv(argv):
    """Parse flags (and the --config file) into ``(LoadgenConfig, as_json)``.

    Raises:
        lblab_core.errors.UsageError: bad file or setting (an ``InputError``: every problem).
    """
    cfg, extra = _parse(argv)
    return cfg, extra.get("json", False)


def _parse(argv):
    cfg, extra = settings_from_argv(build_parser(), wl.LoadgenConfig, argv, wl.RENAMED_SETTINGS)
    check_record_path(cfg.record)
    return cfg, extra


def format_summary(summary):
    """Return the one-line human summary."""
    lat = summary["latency_ms"]
    errors = ", ".join(f"{k} {v}" for k, v in summary["errors"].items()) or "none"
    return (f"sent {summary['sent']}  ok {summary['ok']}  errors: {errors}  "
            f"{summary['rps']} req/s over {summary['duration']} s  "
            f"latency p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
            f"send lag p99 {summary['send_lag_ms']['p99']} ms")


def failure_line(summary):
    """Return the stderr line for a run in which no request succeeded, or None if one did.

    Args:
        summary (dict): ``SummaryBuilder.result``'s summary.
    Returns:
        str|None: ``"lblab loadgen: error: no request succeeded: ok 0 of N; most common
        error: KIND (COUNT)"``, or None when ``ok`` > 0.
    """
    if summary["ok"] > 0:
        return None
    if not summary["sent"]:
        return "lblab loadgen: error: no request succeeded: sent 0; expected at least one"
    kind, count = max(summary["errors"].items(), key=lambda item: (item[1], item[0]))
    return (f"lblab loadgen: error: no request succeeded: ok 0 of {summary['sent']}; "
            f"most common error: {kind} ({count})")


def main(argv=None):
    """Run ``lblab loadgen``; SIGINT/SIGTERM end the send window early, records are flushed.

    Returns:
        int: 0 when at least one request succeeded, 1 when none did (one line on stderr).
    """
    import signal
    import uvloop
    cfg, extra = _parse(sys.argv[1:] if argv is None else argv)
    as_json = extra.get("json", False)
    if extra.get("check", False):
        load = (f"open {cfg.rate:g} req/s {cfg.arrival}" if cfg.mode == "open"
                else f"closed {cfg.users} users")
        print(f"lblab loadgen: {cfg.name} OK: would load {cfg.url} ({load}, "
              f"{cfg.duration_s:g} s, {len(cfg.mix)} mix entries)", flush=True)
        return 0

    async def go():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await LoadGenerator(cfg).run(stop)
    try:
        summary = uvloop.run(go())
    except FileExistsError as exc:
        raise UsageError(f"--record {exc.filename} already exists; results are never "
                         "overwritten") from None
    except OSError as exc:  # the records file: its folder, permissions
        if exc.filename is None:
            raise
        raise UsageError(f"--record {exc.filename}: cannot create it: {exc.strerror}") from None
    print(json.dumps(summary, sort_keys=True) if as_json else format_summary(summary),
          flush=True)
    failed = failure_line(summary)
    if failed:
        print(failed, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    # `python -m lb_apps.loadgen.client ...` (how processes start on Mininet hosts) is `lblab loadgen`
    sys.exit(entry.run("loadgen", main))
