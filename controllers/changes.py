"""API changes of the balancer core: weights, drain, backends joining and leaving, algorithms.

Pure like the rest of the core: each change returns the switch decisions it needs (group
buckets, prefix rules, per-backend flows). :class:`PoolChanges` is mixed into
:class:`controllers.decisions.Core`, whose state (``services``, ``connected``, ``graph``) it
uses. No change moves an established connection, except in a stateless group (its buckets are
all it has; docs/controller.md).
"""
from controllers import pipeline
from controllers.config import (MODE_ALGORITHMS, SWITCH_IN_FLIGHT_ALGORITHMS, ConfigError,
                                parse_weight)
from controllers.health import HealthState
from controllers.pipeline import GroupMod
from controllers.state import BackendState


class ChangeError(ValueError):
    """A rejected API change: ``field`` names the bad input (answered with HTTP ``status``)."""

    def __init__(self, field_name, message, status=400):
        self.field = field_name
        self.status = status
        super().__init__(f"{field_name}: {message}")


class PoolChanges:
    """The pool-change entry points of the core (a mixin of ``Core``)."""

    def _buckets(self, ss):
        if pipeline.group_in_flight(ss.svc):  # weights from in-flight counts
            weights = ss.steering.weights or {}
            pool = [(b.ip, b.mac, weights.get(b.name, b.weight)) for b in ss.backends.values()
                    if b.live and weights.get(b.name, b.weight) > 0]
            return pipeline.group_buckets(ss.sid, pool, conntrack=True)
        pool = [(b.ip, b.mac, b.weight) for b in ss.backends.values() if b.live]
        return pipeline.group_buckets(ss.sid, pool, conntrack=ss.svc.conntrack)

    def _pool_changed(self, ss):
        """Return the switch changes after a pool change of a conntrack service."""
        msgs = []
        if pipeline.group_in_flight(ss.svc):
            return self.reweight(ss, poll=False)
        if ss.svc.mode == "group":
            buckets = self._buckets(ss)
            for switch in sorted(self.connected):
                msgs.append(GroupMod(switch, pipeline.group_id(ss.sid), "modify", buckets))
        elif ss.svc.mode == "proactive":
            for switch in sorted(self.connected):
                old = pipeline.prefix_flows(switch, ss.sid, ss.svc, ss.backends,
                                            ss.prefix_rules)
                new = pipeline.prefix_flows(switch, ss.sid, ss.svc, ss.backends,
                                            ss.effective_weights())
                # Add first (same match and priority replaces), then delete what is gone, so
                # no new connection ever finds no rule.
                msgs += new
                keep = {(f.priority, tuple(sorted(f.match.items()))) for f in new}
                msgs += [f._replace(command="delete_strict", actions=()) for f in old
                         if (f.priority, tuple(sorted(f.match.items()))) not in keep]
            ss.prefix_rules = ss.effective_weights()
        return msgs

    def _service(self, name):
        for ss in self.services:
            if ss.svc.name == name:
                return ss
        raise ChangeError("service", f"unknown {name!r}; expected one of "
                          f"{', '.join(s.svc.name for s in self.services)}", status=404)

    def _backend(self, ss, name):
        b = ss.backends.get(name)
        if b is None or b.removed:
            live = ", ".join(n for n, x in ss.backends.items() if not x.removed)
            raise ChangeError("backend", f"unknown {name!r} in service {ss.svc.name}; "
                              f"expected one of {live}")
        return b

    def set_weight(self, service, backend, weight):
        """Change a backend's weight (0 = drain: no new flows, open ones stay)."""
        ss = self._service(service)
        b = self._backend(ss, backend)
        try:
            weight = parse_weight("weight", weight)
        except ConfigError as exc:
            raise ChangeError("weight", exc.problem) from None
        b.weight = weight
        if ss.balancer is not None:
            ss.balancer.set_weight(b.name, weight)
        return self._pool_changed(ss)

    def add_backend(self, service, host, weight=1):
        """Add topology host ``host`` to a pool (or bring a removed one back)."""
        ss = self._service(service)
        node = self.graph.nodes.get(host) if isinstance(host, str) else None
        if node is None or node.get("kind") != "host":
            raise ChangeError("backend", f"unknown host {host!r}; expected a host of the "
                                         "topology")
        if host in ss.backends and not ss.backends[host].removed:
            raise ChangeError("backend", f"{host!r} is already in service {service}")
        try:
            weight = parse_weight("weight", weight)
        except ConfigError as exc:
            raise ChangeError("weight", exc.problem) from None
        if host in ss.backends:
            b = ss.backends[host]
            b.removed, b.weight, b.health = False, weight, HealthState()
        else:
            bid = 1 + max((x.bid for x in ss.backends.values()), default=0)
            b = BackendState(host, node["ip"], node["mac"].lower(), bid, weight)
            ss.backends[host] = b
            self._register_probe_port(ss, b)
        if ss.balancer is not None:
            ss.balancer.add_backend(host, weight)
            for conn in ss.conns.values():
                if conn.backend == host:
                    ss.balancer.on_open(host)
        msgs = []
        if ss.svc.mode in pipeline.BACKEND_FLOW_MODES:
            for switch in sorted(self.connected):
                msgs += pipeline.service_flows(switch, ss.sid, ss.svc, [b],
                                               self.meter_ports(switch))
        return msgs + self._pool_changed(ss)

    def remove_backend(self, service, backend):
        """Take a backend out of the pool; its established connections are left to finish."""
        ss = self._service(service)
        b = self._backend(ss, backend)
        b.removed = True
        if ss.balancer is not None:
            ss.balancer.remove_backend(b.name)
        return self._pool_changed(ss)

    def set_algorithm(self, service, algorithm):
        """Switch a service to another algorithm; open connections keep their backends."""
        ss = self._service(service)
        allowed = MODE_ALGORITHMS[ss.svc.mode]
        if ss.steering is not None:  # its pipeline counts in the switch: least connections only
            allowed = SWITCH_IN_FLIGHT_ALGORITHMS
        if algorithm not in allowed:
            raise ChangeError("algorithm", f"unknown {algorithm!r} for mode {ss.svc.mode}; "
                                           f"expected one of {', '.join(allowed)}")
        ss.algorithm = algorithm
        if ss.reactive:
            ss.balancer = ss._new_balancer(algorithm)
            for conn in ss.conns.values():
                if not ss.backends[conn.backend].removed:
                    ss.balancer.on_open(conn.backend)
        return []
