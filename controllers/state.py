"""Runtime state of the balancer core (pure): services, backends, connections, rate limits."""
from dataclasses import dataclass, field

from controllers.config import MODE_ALGORITHMS, REACTIVE_MODES
from controllers.health import DOWN, UP, HealthState
from controllers.pipeline import counts_in_switch
from controllers.steering import SteeringState
from lb_apps.balancing import is_file_algorithm


@dataclass
class TokenBucket:
    """Packet-in admission per switch: ``rate`` per second, bursts up to ``rate``."""
    rate: float
    tokens: float = None
    last: float = None

    def admit(self, now):
        """Return True and take a token if one is available at time ``now``."""
        if self.last is None:
            self.tokens, self.last = self.rate, now
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Conn:
    """One balanced connection (l2/l4) or client (l3) of a reactive service."""
    backend: str
    client_ip: str
    client_port: int | None
    switch: str
    opened: float
    packets: int = 0
    bytes: int = 0
    installed: float | None = None  # when its flows were last sent


@dataclass
class BackendState:
    """A backend in a service's pool (kept after removal while it still has connections)."""
    name: str
    ip: str
    mac: str
    bid: int
    weight: int
    removed: bool = False
    health: HealthState = field(default_factory=HealthState)
    next_probe: float | None = None
    flows_total: int = 0
    closed_packets: int = 0
    closed_bytes: int = 0
    polled: dict = field(default_factory=dict)  # switch -> (packets, bytes) of its ct-mode flows

    @property
    def live(self):
        """bool: may receive new flows."""
        return not self.removed and self.health.state == UP and self.weight > 0


class ServiceState:
    """Runtime state of one service: its balancer, backends and (reactive) connections."""

    def __init__(self, sid, svc, make_balancer, seed):
        self.sid = sid
        self.svc = svc
        self.algorithm = svc.algorithm
        self.backends = {}
        for bid, b in enumerate(svc.backends, start=1):
            self.backends[b.name] = BackendState(b.name, b.ip, b.mac, bid, b.weight)
        self.make_balancer = make_balancer
        self.seed = seed
        self.balancer = self._new_balancer(svc.algorithm)
        self.conns = {}
        self.packet_ins = 0  # packets to the VIP that reached the controller
        # l4 in_flight counters/group: the switch's counters (and the group's bucket weights)
        self.steering = SteeringState() if counts_in_switch(svc) else None
        self.prefix_rules = self.effective_weights()  # proactive: weights the rules encode

    @property
    def reactive(self):
        """bool: one packet-in per new connection/client."""
        return self.svc.mode in REACTIVE_MODES

    def _new_balancer(self, algorithm):
        if algorithm not in MODE_ALGORITHMS["l4"] and not is_file_algorithm(algorithm):
            return None
        pool = {b.name: b.weight for b in self.backends.values() if not b.removed}
        balancer = self.make_balancer(algorithm, pool, seed=self.seed)
        for b in self.backends.values():
            if not b.removed and b.health.state == DOWN:
                balancer.set_up(b.name, False)
        return balancer

    def by_bid(self, bid):
        """Return the backend with id ``bid`` or None."""
        for b in self.backends.values():
            if b.bid == bid:
                return b
        return None

    def effective_weights(self):
        """Return [(name, weight)] with 0 for down, drained or removed backends."""
        return [(b.name, b.weight if b.live else 0) for b in self.backends.values()
                if not b.removed]
