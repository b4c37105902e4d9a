"""A spec's configuration as a modelled system: clients, backends and the balancer's route (pure).

Everything is planned the way the runner plans a real run (``experiments.run_plan``: host roles,
addresses, each load generator's settings and seed, each backend's seed), so a model window of
repetition ``r`` draws from the same seeds as the emulated repetition ``r``.

The balancer decides with lblab's own classes (``lb_apps.balancing.make_balancer``) at the
granularity of its layer and mode (``Route`` classes below):

* ``request`` - L7 (builtin proxy, HAProxy, nginx): one decision per request, in-flight counts
  from dispatch to response (``L7Route``);
* ``connection`` - ``l2``/``l4`` modes and ``group``: one decision per new TCP connection, so
  with keep-alive a few long-lived connections carry every request (``ConnRoute``);
* ``client`` - ``l3``, ``proactive`` (and L7 ``ip_hash``, per request but with the client
  address as key): one decision per client address (``ClientRoute``, ``StaticRoute``).

What stands in where lblab does not decide is listed, per balancer, in ``System.notes``.
"""
import bisect
import dataclasses
import itertools
import random

from controllers.config import ControllerSettings, ServiceSpec
from controllers.pipeline import PREFIX_BITS, split_prefixes
from controllers.views import CONNTRACK_PATH_ALGORITHMS
from experiments import run_plan as plan
from lb_apps.backend import model as backend_model
from lb_apps.balancing import make_balancer
from lb_apps.engines.support import WEIGHTED_ALGORITHMS
from lb_apps.l7config import DEFAULT_GROUP, parse_l7_config
from lb_apps.maglev import stable_hash
from lb_apps.loadgen import workload as wl
from lb_apps.proxy.routing import Router
from lb_apps.proxy.runtime import IN_FLIGHT_ALGORITHMS
from topologies import graphs

GRANULARITIES = ("request", "connection", "client")
# The controller config the runner writes sets no idle_timeout: the model takes its default.
IDLE_TIMEOUT_SEC = float(ServiceSpec.model_fields["idle_timeout"].default)
# in_flight counters/group: a connection's end reaches the balancer at the next counter poll
REWEIGHT_SEC = float(ControllerSettings.model_fields["reweight_interval"].default)


def close_lag(balancer):
    """How long after a connection ends its in-flight count ends (l4 ``in_flight``)."""
    if getattr(balancer, "in_flight", None) in ("counters", "group"):
        return REWEIGHT_SEC
    return IDLE_TIMEOUT_SEC
TCP = 6


def _ip_int(ip):
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


# -- routes: where each request goes ---------------------------------------------------------

class L7Route:
    """Per request: the proxy's groups, routes, hash keys and sticky cookies."""

    def __init__(self, backends, groups, entry_group, entry_keys, hash_types, tracks, lb_ip,
                 sticky):
        self.uses_ports = "five_tuple" in hash_types
        self.backends = backends          # name -> BackendSim
        self.groups = groups              # [Balancer] per group
        self.entry_group = entry_group    # mix entry -> group index
        self.entry_keys = entry_keys      # mix entry -> static hash key (uri/header/cookie)
        self.hash_types = hash_types      # group index -> None|client_ip|five_tuple|static
        self.tracks = tracks              # group index -> counts in-flight
        self.lb_ip = lb_ip
        self.sticky = {} if sticky else None

    def connect(self, conn):
        """A client connection to the proxy: nothing is decided yet."""

    def request(self, req):
        """The request reaches the proxy: pick a backend of its group and send it there."""
        g = self.entry_group[req.entry]
        balancer = self.groups[g]
        if self.sticky is None and self.hash_types[g] is None:   # the common case, short
            name = balancer.choose()
            if name is not None:
                if self.tracks[g]:
                    balancer.on_open(name)
                    req.group = g
                req.backend = name
                self.backends[name].arrive(req)
                return
        name = None
        if self.sticky is not None:
            key = (req.client, req.user, g)
            name = self.sticky.get(key)
        if name is None:
            kind = self.hash_types[g]
            if kind is None:
                name = balancer.choose()
            elif kind == "client_ip":
                name = balancer.choose(req.conn.client.ip)
            elif kind == "five_tuple":
                name = balancer.choose(("tcp", req.conn.client.ip, req.conn.port, self.lb_ip,
                                        plan.PROXY_PORT))
            else:
                name = balancer.choose(self.entry_keys[g][req.entry])
            if self.sticky is not None and name is not None:
                self.sticky[key] = name
        if name is None:              # no backend: the proxy answers 503 itself
            req.status, req.nbytes = 503, 0
            req.conn.client.response(req)
            return
        if self.tracks[g]:
            balancer.on_open(name)
            req.group = g
        req.backend = name
        self.backends[name].arrive(req)

    def respond(self, req):
        """The backend answered: the proxy counts the request as ended and forwards it."""
        if req.group is not None:
            self.groups[req.group].on_close(req.backend)
        req.conn.client.response(req)

    def closed(self, conn):
        """A client connection closed: nothing to do at L7."""


class ConnRoute:
    """Per connection: one decision when a connection opens (``l2``/``l4`` modes, ``group``)."""

    def __init__(self, ev, backends, balancer, key, counting, idle_timeout, uses_ports=False):
        self.ev = ev
        self.uses_ports = uses_ports      # the key hashes the connection's source port
        self.backends = backends
        self.balancer = balancer
        self.key = key                    # conn -> balancer key (or None)
        self.counting = counting
        self.idle_timeout = idle_timeout

    def connect(self, conn):
        """A new connection's first packet: the balancer places it."""
        name = self.balancer.choose(self.key(conn))
        conn.backend = name
        if self.counting and name is not None:
            self.balancer.on_open(name)

    def request(self, req):
        """A request goes where its connection was placed."""
        name = req.conn.backend
        if name is None:
            req.status, req.nbytes = 503, 0
            req.conn.client.response(req)
            return
        req.backend = name
        self.backends[name].arrive(req)

    def respond(self, req):
        """The backend's response goes straight back to the client."""
        req.conn.client.response(req)

    def closed(self, conn):
        """A connection ended: an in-flight count ends when its counting flow idles out."""
        if self.counting and conn.backend is not None:
            self.ev.at(self.ev.now + self.idle_timeout, self.balancer.on_close, conn.backend)


class ClientRoute(ConnRoute):
    """Per client (``l3``): one decision per client address, kept while its flows are used."""

    def __init__(self, ev, backends, balancer, key, counting, idle_timeout):
        super().__init__(ev, backends, balancer, key, counting, idle_timeout)
        self.entries = {}                 # client name -> [backend, open connections, last end]

    def connect(self, conn):
        """A client's connection: its client's backend, or a new decision once it idled out."""
        now = self.ev.now
        client = conn.client
        entry = self.entries.get(client.name)
        if entry is None or (entry[1] == 0 and now - entry[2] >= self.idle_timeout):
            if entry is not None and self.counting:
                self.balancer.on_close(entry[0])
            name = self.balancer.choose(self.key(conn))
            if self.counting and name is not None:
                self.balancer.on_open(name)
            entry = self.entries[client.name] = [name, 0, now]
        entry[1] += 1
        conn.backend = entry[0]

    def closed(self, conn):
        """A connection ended: the client's flows idle out ``idle_timeout`` after its last."""
        entry = self.entries[conn.client.name]
        entry[1] -= 1
        entry[2] = self.ev.now


class StaticRoute(ConnRoute):
    """Per client (``proactive``): a fixed client -> backend map from the switch's rules."""

    def __init__(self, backends, by_client):
        super().__init__(None, backends, None, None, False, 0.0)
        self.by_client = by_client

    def connect(self, conn):
        """The client's prefix rule decides."""
        conn.backend = self.by_client.get(conn.client.ip)

    def closed(self, conn):
        """Nothing to count."""


class WeightedHash:
    """Stands in for Open vSwitch's select group: a uniform hash of the key over bucket weights.

    ``dp_hash`` is the datapath's hash of the 5-tuple; the model hashes the modelled 5-tuple
    with ``lb_apps.maglev.stable_hash`` and picks the bucket whose weight range holds it.
    """

    def __init__(self, weights):
        self.names = [n for n, w in weights.items() if w > 0]
        self.cumulative = list(itertools.accumulate(weights[n] for n in self.names))

    def choose(self, key):
        """Return the bucket (backend) of ``key``, or None without buckets."""
        if not self.names:
            return None
        return self.names[bisect.bisect_right(self.cumulative,
                                              stable_hash(key) % self.cumulative[-1])]


# -- the system ------------------------------------------------------------------------------

@dataclasses.dataclass
class System:
    """One configuration (balancer x sweep point) ready to simulate.

    Attributes:
        config (str): the configuration id (the raw folder's prefix).
        balancer: the spec's balancer.
        point: the sweep point (as ``experiments.spec.configurations`` gives it).
        spec: the spec of that point.
        granularity (str): one of ``GRANULARITIES``.
        notes (list[str]): what the model approximates for this balancer.
        overhead_s (float): per-request path delay (half before the balancer decides, half
            after the backend answers).
    """
    config: str
    balancer: object
    point: object
    spec: object
    granularity: str
    notes: list
    overhead_s: float
    graph: object = None
    roles: object = None
    url: str = ""
    l7: object = None
    base_clients: dict = dataclasses.field(default_factory=dict)
    shared: dict = dataclasses.field(default_factory=dict)

    @property
    def backend_list(self):
        """list[dict]: ``{"name", "weight"}`` per backend, as the report passes them."""
        return [{"name": b.name, "weight": b.weight} for b in self.spec.backends]

    @property
    def client_names(self):
        """list[str]: the clients that send load."""
        return list(self.base_clients)

    @property
    def window(self):
        """tuple: the measurement window ``[warmup, warmup + duration)`` in model seconds."""
        return (self.spec.warmup_s, self.spec.warmup_s + self.spec.duration_s)


def build_system(config, balancer, point, spec, overhead_s=0.0):
    """Plan one configuration of an HTTP spec as the runner would.

    Args:
        config (str): configuration id.
        balancer: the balancer (``experiments.spec_models.L4Balancer``/``L7Balancer``).
        point: the sweep point.
        spec (experiments.spec_models.Spec): the spec of the point (HTTP workload).
        overhead_s (float): per-request path delay, seconds.
    Returns:
        System: the system, with its granularity and its notes.
    """
    graph = graphs.build(spec.topology.name, spec.topology.params)
    roles = plan.assign_roles(graph, spec.backends)
    url = plan.service_url(balancer, graph, roles)
    system = System(config, balancer, point, spec, "request", [], overhead_s, graph, roles, url)
    raw = plan.loadgen_configs(spec, roles, url, 0, lambda c: f"model-{c}.jsonl")
    system.base_clients = {c: wl.config_from_dict(cfg) for c, cfg in raw.items()}
    if balancer.layer == "l7":
        system.l7 = parse_l7_config(plan.proxy_config(spec, balancer, graph, roles),
                                    f"balancer {balancer.name}")
        _l7_notes(system)
    else:
        _l4_notes(system)
    ports_matter = (balancer.layer == "l4" and (balancer.mode == "group" or (
        balancer.mode in ("l2", "l4") and balancer.algorithm in ("five_tuple_hash",
                                                                  "consistent_hash")))) or \
        any(g.algorithm == "five_tuple_hash" for g in (system.l7.groups.values()
                                                       if system.l7 else ()))
    if ports_matter:
        seeded = next(iter(system.base_clients.values())).source_ports
        system.notes.append("source ports: the load generator's seeded sequence"
                            if seeded == "seeded" else
                            "source ports: uniform in Linux's ephemeral range (the kernel "
                            "picks them)")
    return system


def _weights(spec):
    """The controller's bucket and pool weights (``run_plan.controller_config``)."""
    return {b.name: max(1, int(round(b.weight))) for b in spec.backends}


def _l7_notes(system):
    b, cfg, notes = system.balancer, system.l7, system.notes
    engine = b.engine
    system.granularity = "request"
    if engine == "builtin":
        notes.append(f"per request: lblab's {b.algorithm} (lb_apps.balancing, seed 0 as the "
                     f"proxy's worker 0)")
    else:
        notes.append(f"{engine}: modelled by its algorithm's definition - lblab's "
                     f"{b.algorithm} with the weights the engine gets; its own tie-breaks and "
                     f"hash functions are not modelled (which key lands where differs, the "
                     f"shape of the split does not)")
    for group in cfg.groups.values():
        where = "" if group.name == DEFAULT_GROUP else f"group {group.name}: "
        if group.algorithm in IN_FLIGHT_ALGORITHMS:
            notes.append(f"{where}in-flight counted from dispatch to response")
        if group.algorithm == "ip_hash" or (group.algorithm == "consistent_hash"
                                            and group.hash_key.type == "client_ip"):
            system.granularity = "client"
            notes.append(f"{where}the client address is the key: per client")
        elif group.algorithm == "consistent_hash":
            notes.append(f"{where}Maglev over the {group.hash_key.type} key")
        elif group.algorithm == "five_tuple_hash":
            notes.append(f"{where}hashes each client connection's 5-tuple")
    if cfg.routes:
        notes.append("routes: each mix entry routed once by the proxy's Router")
    if cfg.sticky is not None:
        notes.append("sticky cookie: a user keeps its first backend when the workload keeps "
                     "sessions, else every request is balanced afresh")
    if cfg.cache is not None:
        notes.append("cache: no hits (the spec's backends send no Cache-Control, so the proxy "
                     "stores nothing)")
    if cfg.workers > 1:
        notes.append(f"{cfg.workers} proxy workers modelled as one (in the lab each balances "
                     f"the connections the kernel gives it, with its own counts and seed)")
    if cfg.tls is not None:
        notes.append("TLS: handshake and encryption cost not modelled (overhead only)")


def _l4_notes(system):
    b, notes = system.balancer, system.notes
    mode, algorithm = b.mode, b.algorithm
    if mode == "group":
        system.granularity = "connection"
        notes.append("per connection: the OVS select group's dp_hash modelled as a uniform "
                     "hash (lblab's stable_hash) of each modelled 5-tuple over the bucket "
                     "weights")
    elif mode == "proactive":
        system.granularity = "client"
        notes.append(f"per client: client addresses split by weight with the controller's "
                     f"prefix rules (controllers.pipeline.split_prefixes, {PREFIX_BITS} bits)")
    elif mode == "l3":
        system.granularity = "client"
        notes.append(f"per client: the controller's {algorithm} (seed {system.spec.seed}) once "
                     f"per client address, kept while its flows stay active "
                     f"(idle timeout {IDLE_TIMEOUT_SEC:g} s)")
    else:
        system.granularity = "connection"
        notes.append(f"per connection: the controller's {algorithm} (seed {system.spec.seed}) "
                     f"on each new connection")
        if getattr(b, "in_flight", None) in ("counters", "group"):
            notes.append(f"in-flight counts end {REWEIGHT_SEC:g} s (the counter poll) after a "
                         f"connection closes (in_flight: {b.in_flight})"
                         + ("; the switch's re-weighted select group is modelled as exact "
                            "least connections" if b.in_flight == "group" else ""))
        elif algorithm not in CONNTRACK_PATH_ALGORITHMS:
            notes.append(f"in-flight counts end {IDLE_TIMEOUT_SEC:g} s after a connection "
                         f"closes, when its counting flow idles out")
    if mode in ("l2", "l3", "l4"):
        notes.append("the first packet's trip to the controller is not modelled (overhead)")


def model_notes(spec, overheads):
    """What the model leaves out for every configuration of a spec, one line each.

    Args:
        spec: the spec.
        overheads (dict): balancer name (or ``"*"``) -> per-request overhead in ms.
    """
    given = {k: v for k, v in (overheads or {}).items() if v}
    if given:
        shown = ", ".join(f"{'every balancer' if k == '*' else k} {v:g} ms"
                          for k, v in given.items())
        lines = [f"overhead per request (--overhead-ms): {shown}; others zero; half before "
                 f"the balancer decides, half after the backend answers"]
    else:
        lines = ["overhead: none given, so zero - an ideal network and balancer (give "
                 "--overhead-ms from a low-load measurement)"]
    lines.append("not modelled: CPU, TCP and link limits; response headers (bytes are "
                 "bodies only)")
    if spec.faults:
        lines.append("faults: not modelled (the prediction is the fault-free system)")
    return lines


# -- one window ------------------------------------------------------------------------------

def _balancer(system, slot, algorithm, weights, seed):
    """A fresh lblab balancer for one window; a Maglev one is built once per system.

    consistent_hash's choice depends on its key alone (its round-robin fallback serves only
    keyless requests), and its table costs ~60 ms to build: every window shares one.
    """
    if algorithm != "consistent_hash":
        return make_balancer(algorithm, weights, seed=seed)
    if slot not in system.shared:
        system.shared[slot] = make_balancer(algorithm, weights, seed=seed)
    return system.shared[slot]


def window_seed(spec, window):
    """The runner's seed of repetition ``window`` (1-based): ``spec.seed * 1000 + window``."""
    return spec.seed * 1000 + window


def make_route(system, ev, backends, window):
    """Return a fresh route (new balancer state) for one window."""
    b, spec = system.balancer, system.spec
    if b.layer == "l7":
        return _l7_route(system, backends)
    weights = _weights(spec)
    ips = {c: system.graph.nodes[c]["ip"] for c in system.roles.clients}
    if b.mode == "proactive":
        rules = split_prefixes(list(weights.items()))
        by_ip = {}
        for ip in ips.values():
            address = _ip_int(ip)
            best = max((r for r in rules if address & r[1] == r[0]), key=lambda r: r[2],
                       default=None)
            by_ip[ip] = None if best is None else best[3]
        return StaticRoute(backends, by_ip)
    if b.mode == "group":
        return ConnRoute(ev, backends, WeightedHash(weights), _l4_key("l4", "five_tuple_hash"),
                         False, 0.0, uses_ports=True)
    balancer = _balancer(system, "l4", b.algorithm, weights, spec.seed)
    key = _l4_key(b.mode, b.algorithm)
    if b.mode == "l3":
        counting = True               # l3 installs per-client flows: on_open/on_close always
        return ClientRoute(ev, backends, balancer, key, counting, IDLE_TIMEOUT_SEC)
    counting = b.algorithm not in CONNTRACK_PATH_ALGORITHMS
    return ConnRoute(ev, backends, balancer, key, counting, close_lag(b),
                     uses_ports=b.algorithm in ("five_tuple_hash", "consistent_hash"))


def _l4_key(mode, algorithm):
    """The controller's balancer key (``controllers.decisions.Core._balancer_key``)."""
    vip, port = plan.VIP, plan.SERVICE_PORT
    if algorithm == "ip_hash" or (algorithm == "consistent_hash" and mode == "l3"):
        return lambda conn: conn.client.ip
    if algorithm in ("five_tuple_hash", "consistent_hash"):
        if mode == "l3":
            return lambda conn: (TCP, conn.client.ip, 0, vip, port)
        return lambda conn: (TCP, conn.client.ip, conn.port, vip, port)
    return lambda conn: None


def _l7_route(system, backends):
    cfg, b = system.l7, system.balancer
    router = Router(cfg.routes)
    group_names = list(cfg.groups)
    host = system.url.split("//", 1)[1].split("/", 1)[0].encode()
    mix = next(iter(system.base_clients.values())).mix
    entry_group = []
    for entry in mix:
        path, _, query = entry.path.partition("?")
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in entry.headers]
        cookie = "; ".join(f"{n}={v}" for n, v in entry.cookies).encode() or None
        route = router.match(entry.method, path, query, host, headers, cookie)
        entry_group.append(group_names.index(route.group if route else DEFAULT_GROUP))
    balancers, keys, kinds, tracks = [], [], [], []
    for group in cfg.groups.values():
        weights = {m.name: (m.weight if b.engine == "builtin" or m.weight == 0
                            or group.algorithm in WEIGHTED_ALGORITHMS else 1)
                   for m in group.backends}
        balancers.append(_balancer(system, group.name, group.algorithm, weights, 0))
        tracks.append(group.algorithm in IN_FLIGHT_ALGORITHMS)
        kind = None
        if group.algorithm == "ip_hash":
            kind = "client_ip"
        elif group.algorithm == "five_tuple_hash":
            kind = "five_tuple"
        elif group.algorithm == "consistent_hash":
            kind = group.hash_key.type if group.hash_key.type == "client_ip" else "static"
        kinds.append(kind)
        keys.append([_static_key(group.hash_key, entry) for entry in mix])
    lb_ip = system.graph.nodes[system.roles.lb]["ip"]
    sticky = cfg.sticky is not None and system.spec.workload.session
    return L7Route(backends, balancers, entry_group, keys, kinds, tracks, lb_ip, sticky)


def _static_key(hash_key, entry):
    """What consistent_hash hashes for a mix entry: its URL, a header or a cookie."""
    if hash_key.type == "uri":
        return entry.path
    pairs = entry.headers if hash_key.type == "header" else entry.cookies
    name = (hash_key.name or "").lower()
    return next((v for n, v in pairs if n.lower() == name), None)


def response_sizes(backend, mix):
    """``(status, body bytes)`` per mix entry as the backend answers (``size_for_path``)."""
    out = []
    for entry in mix:
        status, size = backend_model.size_for_path(entry.path.partition("?")[0],
                                                   backend.response_size)
        out.append((status, 0 if entry.method == "HEAD" else size))
    return tuple(out)


def client_configs(system, window):
    """Return ``[(LoadgenConfig, ip)]`` of one window, seeded as the runner seeds them."""
    base = window_seed(system.spec, window) * 1000
    return [(cfg.model_copy(update={"seed": base + i}), system.graph.nodes[c]["ip"])
            for i, (c, cfg) in enumerate(system.base_clients.items())]


def port_rng(system, window):
    """The source of modelled source ports for one window."""
    return random.Random(f"{window_seed(system.spec, window)}:ports")
