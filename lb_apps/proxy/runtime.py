"""Per-worker runtime state of the L7 proxy built from an L7Config: groups with their balancers,
backends with health, counters and idle upstream connections, the router, cache and stickiness.
No asyncio here: the shells in ``lb_apps.proxy.conn``/``lb_apps.proxy.server`` drive it.
"""
import collections
import ssl

from lb_apps.balancing import HASHING_ALGORITHMS, is_file_algorithm, make_balancer
from lb_apps.proxy.cache import ResponseCache
from lb_apps.proxy.health import BackendHealth
from lb_apps.proxy.http_rules import PROTECTED_FIELDS
from lb_apps.l7config import DEFAULT_GROUP
from lb_apps.proxy.routing import Router

LATENCY_SAMPLES = 2048  # per backend, most recent first out
MAX_IDLE_PER_BACKEND = 256  # pooled keep-alive upstream connections kept per backend
IN_FLIGHT_ALGORITHMS = frozenset(("least_connections", "weighted_least_connections",
                                  "power_of_two"))


def protected_fields(config):
    """Return the request fields a ``Connection`` header may not name under this config.

    Args:
        config (lb_apps.l7config.L7Config): the validated config.
    Returns:
        frozenset[bytes]: lower-case names: framing, Host, Cookie, Authorization, and every
        header that a route matches on or a group hashes on.
    """
    names = set(PROTECTED_FIELDS)
    for route in config.routes:
        if route.match.header is not None:
            names.add(route.match.header.name.lower().encode("latin-1"))
    for group in config.groups.values():
        if group.hash_key.type == "header" and group.hash_key.name:
            names.add(group.hash_key.name.lower().encode("latin-1"))
    return frozenset(names)


class BackendRuntime:
    """One upstream server: health, counters and its pool of idle keep-alive connections."""

    def __init__(self, backend, health, passive):
        self.conf = backend
        self.name = backend.name
        self.address = backend.address
        self.port = backend.port
        self.ssl = None
        if backend.tls:
            ctx = ssl.create_default_context()
            # lab backends use the lab's self-signed certificate
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.ssl = ctx
        self.health = BackendHealth(health, passive)
        self.groups = []
        self.idle = []
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self.latency = collections.deque(maxlen=LATENCY_SAMPLES)
        self.retired = False

    def same_server(self, backend):
        """Return True if ``backend`` (config) is the same server (pool and health carry over)."""
        return (backend.address, backend.port, backend.tls) == (self.address, self.port, self.conf.tls)

    def forget(self, conn):
        """Remove a connection that closed while idle."""
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def set_serving_in_balancers(self):
        """Propagate the health verdict to every group's balancer."""
        up = self.health.serving()
        for group in self.groups:
            group.balancer.set_up(self.name, up)


class GroupRuntime:
    """A backend group with its balancer and hash key."""

    def __init__(self, group, backends, seed=0):
        self.conf = group
        self.name = group.name
        self.algorithm = group.algorithm
        self.members = {b.name: backends[b.name] for b in group.backends}
        self.balancer = make_balancer(group.algorithm, {b.name: b.weight for b in group.backends},
                                      seed=seed)
        # only these algorithms read the balancer's in-flight counts; skip the calls otherwise
        # a balancer from a file gets every fact: in-flight counts and the group's hash key
        from_file = is_file_algorithm(group.algorithm)
        self.tracks_in_flight = group.algorithm in IN_FLIGHT_ALGORITHMS or from_file
        self.hash_type = (group.hash_key.type if group.algorithm in HASHING_ALGORITHMS
                          or from_file else None)
        if group.algorithm == "ip_hash":
            self.hash_type = "client_ip"
        elif group.algorithm == "five_tuple_hash":
            self.hash_type = "five_tuple"
        name = group.hash_key.name
        self.hash_name = name.lower().encode() if name else None
        for member in self.members.values():
            member.groups.append(self)
            if not member.health.serving():
                self.balancer.set_up(member.name, False)

    def choose(self, key, exclude=()):
        """Pick a serving backend, avoiding the names in ``exclude`` (tried already).

        Args:
            key: hash key for hashing algorithms (None = round robin fallback).
            exclude (set[str]): backends tried for this request.
        Returns:
            BackendRuntime|None: the backend, or None if every member is down or tried.
        """
        name = self.balancer.choose(key)
        if name is None:
            return None
        if name not in exclude:
            return self.members[name]
        for _ in range(len(self.members)):
            name = self.balancer.choose(None)
            if name is not None and name not in exclude:
                return self.members[name]
        for name, member in self.members.items():
            if name not in exclude and member.health.serving() and member.conf.weight > 0:
                return member
        return None


class Runtime:
    """Everything a worker needs to serve one config.

    Args:
        config (lb_apps.l7config.L7Config): the validated config.
        previous (Runtime|None): the runtime being replaced on reload; backends that are the
            same server keep their pools, counters and health.
        seed (int): balancer seed.
    """

    def __init__(self, config, previous=None, seed=0):
        self.config = config
        self.timeouts = config.timeouts
        self.limits = config.limits
        old = previous.backends if previous is not None else {}
        self.backends = {}
        for group in config.groups.values():
            for b in group.backends:
                if b.name in self.backends:
                    continue
                prev = old.get(b.name)
                if prev is not None and prev.same_server(b):
                    prev.conf = b
                    prev.groups = []
                    prev.health.active = group.health
                    prev.health.passive = group.passive_health
                    self.backends[b.name] = prev
                else:
                    self.backends[b.name] = BackendRuntime(b, group.health, group.passive_health)
        for name, prev in old.items():
            if self.backends.get(name) is not prev:
                prev.retired = True
                for conn in prev.idle:
                    conn.close()
                prev.idle.clear()
        self.groups = {name: GroupRuntime(g, self.backends, seed) for name, g in
                       config.groups.items()}
        self.default = self.groups[DEFAULT_GROUP]
        self.router = Router(config.routes)
        self.protected = protected_fields(config)
        self.route_hits = [0] * len(config.routes)
        self.default_hits = 0
        self.cache = None
        if config.cache is not None:
            if previous is not None and previous.cache is not None and \
                    previous.config.cache == config.cache:
                self.cache = previous.cache
            else:
                c = config.cache
                self.cache = ResponseCache(c.max_entries, c.max_bytes, c.max_object_bytes)
        self.sticky = config.sticky
        self.retries = config.retries
        self.local_responses = collections.Counter()

    def health_targets(self):
        """Return the backends with active checks and their settings.

        Returns:
            list[BackendRuntime]: backends whose ``health.active`` is set.
        """
        return [b for b in self.backends.values() if b.health.active is not None]

    def describe(self):
        """Return the JSON-ready stats of this runtime."""
        backends = {}
        for b in self.backends.values():
            backends[b.name] = {
                "address": b.address, "port": b.port, "groups": [g.name for g in b.groups],
                "requests": b.requests, "errors": b.errors, "in_flight": b.in_flight,
                "idle_connections": len(b.idle), "latency_ms": latency_summary(b.latency),
                "health": b.health.describe()}
        routes = [{"index": r.index, "group": r.group, "hits": self.route_hits[i]}
                  for i, r in enumerate(self.config.routes)]
        return {"backends": backends, "routes": routes, "default_route_hits": self.default_hits,
                "groups": {g.name: {"algorithm": g.algorithm, "balancer": g.balancer.backends()}
                           for g in self.groups.values()},
                "cache": self.cache.describe() if self.cache is not None else None,
                "local_responses": dict(self.local_responses)}


def latency_summary(samples):
    """Summarise latency samples (seconds) in milliseconds.

    Args:
        samples (Iterable[float]): latencies in seconds.
    Returns:
        dict: count, mean, p50, p90, p99, max (ms, 3 decimals); zeros when empty.
    """
    values = sorted(samples)
    n = len(values)
    if n == 0:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}

    def pct(p):
        return round(values[min(n - 1, int(p * n))] * 1000, 3)

    return {"count": n, "mean": round(sum(values) / n * 1000, 3), "p50": pct(0.50),
            "p90": pct(0.90), "p99": pct(0.99), "max": round(values[-1] * 1000, 3)}
