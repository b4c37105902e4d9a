"""The model twin's discrete-event core: clients, a balancer's path and backends (pure).

One window of an HTTP experiment is simulated in virtual time with the standard library's
``heapq``; nothing here does I/O, sleeps or needs root. The parts that decide are lblab's own:

* load generators: ``lb_apps.loadgen.workload`` (``seeded_rngs``, ``arrival_offsets``,
  ``RequestMix``, ``make_think``, ``pause_after``, ``build_record``) with the same connection
  pool as ``lb_apps.loadgen.client`` (idle connections reused last-in first-out, requests
  waiting first-in first-out for a free connection, ``pool_size`` connections at most, a
  connection per request without keep-alive, timeouts checked on the client's sweep grid);
* backends: ``lb_apps.backend.model`` (``seeded_rngs``, ``make_service_sampler``,
  ``make_error_decider``, ``admit``, ``size_for_path``), in the order the real backend draws;
* balancers: a *route* object (``experiments.model.systems``) that holds lblab's balancer
  classes (``lb_apps.balancing.make_balancer``) and decides per request, connection or client.

A request's life: created (open loop: at its planned time; closed loop: when its user is
ready) -> a pooled connection (or a wait for one) -> half the path overhead -> the route picks
a backend -> the backend admits, queues or rejects it -> service -> the other half of the path
overhead -> the client records it exactly as the load generator would.
"""
import heapq
import itertools
import math
from collections import deque

from lb_apps.backend import model as backend_model
from lb_apps.loadgen import workload as wl
from lb_apps.loadgen.ports import SourcePorts

# lb_apps.loadgen.client checks request timeouts this often (SWEEP_PERIOD_SEC there; the shell
# module is not imported here: it pulls in asyncio and uvloop).
SWEEP_PERIOD_SEC = 0.05
# TCP source ports of modelled connections: Linux's default ephemeral range.
EPHEMERAL_PORTS = (32768, 61000)


def source_ports(cfg, rng):
    """Return ``next_port()`` for a client's connections.

    With ``source_ports: seeded`` the load generator binds the ports of its seeded sequence
    (``lb_apps.loadgen.ports.SourcePorts``), and so does the model; otherwise the kernel
    chooses, modelled as uniform draws from Linux's default ephemeral range.
    """
    if cfg.source_ports == "seeded":
        return SourcePorts("seeded", cfg.seed).next
    low, high = EPHEMERAL_PORTS
    return lambda: rng.randrange(low, high)


class Events:
    """A virtual clock and its event heap: ``at(t, fn, arg)`` calls ``fn(arg)`` at time ``t``."""

    __slots__ = ("heap", "now", "_seq")

    def __init__(self):
        self.heap = []
        self.now = 0.0
        self._seq = itertools.count()

    def at(self, when, fn, arg=None):
        """Schedule ``fn(arg)`` at virtual time ``when`` (ties run in scheduling order)."""
        heapq.heappush(self.heap, (when, next(self._seq), fn, arg))

    def run(self):
        """Run events in time order until none is left."""
        heap, pop = self.heap, heapq.heappop
        while heap:
            when, _, fn, arg = pop(heap)
            self.now = when
            fn(arg)


class Request:
    """One HTTP request as the load generator tracks it."""

    __slots__ = ("rid", "client", "user", "scheduled", "start", "end", "status", "nbytes",
                 "backend", "error", "entry", "warmup", "conn", "kind", "done", "timer",
                 "group", "queued", "pool_wait")

    def __init__(self, rid, client, user, scheduled, entry, warmup, timer):
        self.rid = rid
        self.client = client
        self.user = user
        self.scheduled = scheduled
        self.entry = entry            # index into the client's mix
        self.warmup = warmup
        self.timer = timer            # when the load generator times it out
        self.start = None
        self.end = None
        self.status = None
        self.nbytes = 0
        self.backend = None
        self.error = None
        self.conn = None
        self.kind = None              # "new" or "reused": the record's conn field
        self.done = False
        self.group = None
        self.queued = None            # when it began to wait for a pooled connection
        self.pool_wait = 0.0


class Conn:
    """One client connection (to the VIP for L4, to the proxy for L7)."""

    __slots__ = ("client", "port", "backend", "closed", "req")

    def __init__(self, client, port):
        self.client = client
        self.port = port
        self.backend = None           # L4: the backend the connection was placed on
        self.closed = False
        self.req = None


class BackendSim:
    """One backend: capacity slots, a FIFO queue, service times and errors from its seed.

    Args:
        ev (Events): the clock.
        name (str): the backend's name.
        capacity (int|None): requests served at once (None: unlimited).
        dist, mean, sigma: the service-time distribution (seconds), as the backend takes them.
        error_rate (float): fraction of requests answered 500.
        seed (int): the backend's seed (``lb_apps.backend.model.seeded_rngs``).
        respond (callable): ``respond(req)`` when the response leaves the backend.
        sizes (tuple): ``(status, body bytes)`` per mix entry (``size_for_path``; HEAD: 0).
        overflow, queue_limit: what a full backend does (``lb_apps.backend.model.admit``).
    """

    def __init__(self, ev, name, capacity, dist, mean, sigma, error_rate, seed, respond, sizes,
                 overflow="queue", queue_limit=None):
        service_rng, error_rng = backend_model.seeded_rngs(seed)
        self.ev = ev
        self.sizes = sizes
        self.name = name
        self.capacity = capacity
        self.overflow = overflow
        self.queue_limit = queue_limit
        self.sample = backend_model.make_service_sampler(dist, mean, sigma, service_rng)
        self.fail = backend_model.make_error_decider(error_rate, error_rng)
        self.may_fail = error_rate > 0    # the decider draws nothing and says no otherwise
        self.respond = respond
        self.busy = 0
        self.waiting = deque()
        self.served = 0

    def arrive(self, req):
        """A request reaches the backend: serve, queue or reject (``backend_model.admit``)."""
        capacity = self.capacity
        if capacity is None or (self.busy < capacity and not self.waiting):
            self._serve(req)          # admit's SERVE, without the call on the hot path
            return
        decision = backend_model.admit(self.busy, len(self.waiting), capacity,
                                       self.overflow, self.queue_limit)
        if decision == backend_model.SERVE:
            self._serve(req)
        elif decision == backend_model.QUEUE:
            self.waiting.append(req)
        else:
            req.status = 503
            req.nbytes = 0
            self.respond(req)

    def _serve(self, req):
        self.busy += 1
        self.ev.at(self.ev.now + self.sample(), self._finish, req)

    def _finish(self, req):
        self.busy -= 1
        self.served += 1
        if self.may_fail and self.fail():
            req.status, req.nbytes = 500, 0
        else:
            req.status, req.nbytes = self.sizes[req.entry]
        self.respond(req)
        waiting = self.waiting
        if waiting and (self.capacity is None or self.busy < self.capacity):
            self._serve(waiting.popleft())


class ClientSim:
    """One load generator: its workload from its own settings and seed, and its pool.

    Args:
        ev (Events): the clock.
        cfg (lb_apps.loadgen.workload.LoadgenConfig): the client's settings, as the runner
            gives them (``experiments.run_plan.loadgen_configs``).
        ip (str): the client's address (what address and 5-tuple hashes see).
        route: the balancer's route (``connect``, ``request``, ``closed``).
        port_rng (random.Random): draws source ports when the kernel would choose them.
        delay_in, delay_out (float): path overhead before the balancer decides and after the
            backend answers, seconds.
        records (list): where finished requests' records go.
    """

    def __init__(self, ev, cfg, ip, route, port_rng, delay_in, delay_out, records):
        arrival_rng, mix_rng, think_rng = wl.seeded_rngs(cfg.seed)
        self.ev = ev
        self.cfg = cfg
        self.name = cfg.name
        self.ip = ip
        self.route = route
        self.arrival_rng = arrival_rng
        self.mix = wl.RequestMix(cfg.mix, mix_rng)
        self.choose_index = self.mix.choose_index
        self.limit = cfg.max_requests
        self.users = cfg.users
        self.think = wl.make_think(cfg.think_dist, cfg.think_ms / 1000.0, think_rng)
        self.backoff = cfg.error_backoff_ms / 1000.0
        # source ports are drawn only where the route hashes them (5-tuple keys, OVS groups)
        self.ports = source_ports(cfg, port_rng) if route.uses_ports else None
        self.delay_in = delay_in
        self.delay_out = delay_out
        self.records = records
        self.pool = cfg.connections
        self.keepalive = cfg.keepalive
        self.timeout = cfg.timeout_s
        self.warmup_end = cfg.warmup_s
        self.deadline = cfg.warmup_s + cfg.duration_s
        self.idle = []
        self.waiters = deque()
        self.open = 0
        self.created = 0
        self.sending = True
        self.pending = deque()        # submitted requests in submit order (timers ascend)
        self.checking = False
        self.entries = cfg.mix
        self.closed_loop = cfg.mode == "closed"
        self.drop_warmup = cfg.warmup_records == "drop"
        # response(req): the response left the balancer; it reaches the client after the path
        self.response = self._delayed_response if delay_out > 0 else self._complete

    # -- start and end ----------------------------------------------------------------------

    def start(self):
        """Schedule the workload from time 0."""
        cfg = self.cfg
        if cfg.mode == "open":
            self._offsets = wl.arrival_offsets(cfg.arrival, cfg.rate, self.deadline,
                                               self.arrival_rng, cfg.max_requests)
            self._user = 0
            self._next_arrival()
        else:
            for user in range(cfg.users):
                self.ev.at(0.0, self._user_next, user)
            self.ev.at(self.deadline, self._end_window)

    def _end_window(self, _=None):
        if not self.sending:
            return
        self.sending = False
        for conn in self.idle:
            self._close(conn)
        self.idle = []

    # -- requests ---------------------------------------------------------------------------

    def _new_request(self, scheduled, user):
        if self.limit is not None and self.created >= self.limit:
            self._end_window()
            return None
        self.created += 1
        return Request(f"{self.name}-{self.created}", self.name, user, scheduled,
                       self.choose_index(), scheduled < self.warmup_end,
                       self.ev.now + self.timeout)

    def _next_arrival(self):
        offset = next(self._offsets, None)
        if offset is None:            # the sender is done: the window ends with it
            self._end_window()
            return
        self.ev.at(offset, self._arrive, offset)

    def _arrive(self, offset):
        if self.sending:
            req = self._new_request(offset, self._user)
            if req is not None:
                self._user = (self._user + 1) % self.users
                self.pending.append(req)
                if not self.checking:
                    self._schedule_check()
                self._dispatch(req)
                offset = next(self._offsets, None)
                if offset is None:    # the sender is done: the window ends with it
                    self._end_window()
                else:
                    self.ev.at(offset, self._arrive, offset)

    def _user_next(self, user):
        if not self.sending or self.ev.now >= self.deadline:
            return
        req = self._new_request(self.ev.now, user)
        if req is not None:
            self._submit(req)

    def _submit(self, req):
        self.pending.append(req)
        if not self.checking:
            self._schedule_check()
        self._dispatch(req)

    def _dispatch(self, req):
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self._send(conn, req, "reused")
                return
        if self.open < self.pool:
            self.open += 1
            conn = Conn(self, self.ports() if self.ports is not None else 0)
            self.route.connect(conn)
            self._send(conn, req, "new")
        else:
            req.queued = self.ev.now
            self.waiters.append(req)

    def _send(self, conn, req, kind):
        req.start = self.ev.now
        if req.queued is not None:
            req.pool_wait += req.start - req.queued
            req.queued = None
        req.kind = kind
        req.conn = conn
        conn.req = req
        if self.delay_in > 0:
            self.ev.at(self.ev.now + self.delay_in, self.route.request, req)
        else:
            self.route.request(req)

    def _delayed_response(self, req):
        self.ev.at(self.ev.now + self.delay_out, self._complete, req)

    def _complete(self, req):
        if req.done:                  # timed out: its connection is gone already
            return
        conn = req.conn
        conn.req = None
        if self.keepalive:
            self._release(conn)
        else:
            self._close(conn)
        self._finish(req, None)

    def _release(self, conn):
        waiters = self.waiters
        while waiters:
            req = waiters.popleft()
            if not req.done:
                self._send(conn, req, "reused")
                return
        if self.sending:
            self.idle.append(conn)
        else:
            self._close(conn)

    def _close(self, conn):
        if conn.closed:
            return
        conn.closed = True
        self.open -= 1
        self.route.closed(conn)
        waiters = self.waiters
        while waiters:
            req = waiters.popleft()
            if not req.done:
                self._dispatch(req)
                return

    def _finish(self, req, error):
        req.done = True
        req.error = error
        req.end = self.ev.now
        if req.queued is not None:    # timed out while waiting for a connection
            req.pool_wait += req.end - req.queued
        if not (req.warmup and self.drop_warmup):
            entry = self.entries[req.entry]
            self.records.append(wl.build_record(
                req.rid, self.name, req.scheduled, req.start, req.end,
                None if error is not None else req.status, req.nbytes,
                None if error is not None else req.backend, error, entry.method, entry.path,
                req.kind, None, req.warmup, pool_wait=req.pool_wait))
        if self.closed_loop:
            pause = wl.pause_after(self.think(), error, self.backoff)
            if pause > 0:
                self.ev.at(self.ev.now + pause, self._user_next, req.user)
            else:
                self._user_next(req.user)

    # -- timeouts ----------------------------------------------------------------------------

    def _schedule_check(self):
        pending = self.pending
        while pending and pending[0].done:
            pending.popleft()
        if not pending:
            self.checking = False
            return
        self.checking = True
        # the load generator sweeps every SWEEP_PERIOD_SEC: a timeout fires on that grid
        when = math.ceil(pending[0].timer / SWEEP_PERIOD_SEC - 1e-9) * SWEEP_PERIOD_SEC
        self.ev.at(max(when, self.ev.now), self._check)

    def _check(self, _=None):
        now = self.ev.now
        pending = self.pending
        while pending and (pending[0].done or pending[0].timer <= now):
            req = pending.popleft()
            if not req.done:
                self._time_out(req)
        self._schedule_check()

    def _time_out(self, req):
        conn = req.conn
        if conn is not None and conn.req is req:
            conn.req = None
            self._close(conn)         # the load generator aborts the connection
        self._finish(req, "timeout")
