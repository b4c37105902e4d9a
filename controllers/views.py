"""JSON views of the balancer core's state (what ``GET /services`` and ``GET /stats`` return)."""
from controllers import pipeline

# l2/l4 algorithms that need no connection-end facts take the conntrack path (one packet-in and
# one packet-out per connection, no flow-mod); the least-connections family and power of two
# need in-flight counts: per-connection flows whose removal reports the end.
CONNTRACK_PATH_ALGORITHMS = ("round_robin", "weighted_round_robin", "random", "ip_hash",
                             "five_tuple_hash", "consistent_hash")


def data_path(ss):
    """Return how new connections of a service are set up (see docs/controller.md)."""
    if ss.svc.mode == "group" and not ss.svc.conntrack:
        return "select-group"
    if ss.svc.mode in ("group", "proactive"):
        return "conntrack"
    if pipeline.group_in_flight(ss.svc):
        return "conntrack+reweighted-group"
    if pipeline.counts_in_switch(ss.svc):
        return "packet-in+conntrack+counters"
    if ss.svc.mode in ("l2", "l4") and ss.algorithm in CONNTRACK_PATH_ALGORITHMS:
        return "packet-in+conntrack"
    if ss.svc.mode == "l4":
        return "packet-in+conntrack+counting-flow"
    return "packet-in+flows"


def services_view(core):
    """Return the JSON-ready pools, weights and states of every service of ``core``."""
    out = {}
    for ss in core.services:
        svc = ss.svc
        in_flight = ss.balancer.in_flight() if ss.balancer is not None else {}
        if pipeline.group_in_flight(ss.svc):
            in_flight = core.steering_in_flight(ss)
        out[svc.name] = {
            "vip": svc.vip, "vmac": svc.vmac, "protocol": svc.protocol, "port": svc.port,
            "mode": svc.mode, "algorithm": ss.algorithm, "idle_timeout": svc.idle_timeout,
            "conntrack": pipeline.tracks_connections(svc),
            "conntrack_zone": (pipeline.ct_zone(ss.sid) if pipeline.tracks_connections(svc)
                               else None),
            "data_path": data_path(ss),
            "health": {"kind": svc.health.kind, "interval": svc.health.interval,
                       "rise": svc.health.rise, "fall": svc.health.fall},
            "backends": {b.name: {"ip": b.ip, "mac": b.mac, "weight": b.weight,
                                  "state": b.health.state,
                                  "draining": b.weight == 0 and not b.removed,
                                  "in_flight": in_flight.get(b.name)}
                         for b in ss.backends.values() if not b.removed},
        }
    return out


def stats_view(core):
    """Return JSON-ready per-backend flow counters and per-switch counters."""
    services = {}
    for ss in core.services:
        active, packets_, bytes_ = {}, {}, {}
        for conn in ss.conns.values():
            active[conn.backend] = active.get(conn.backend, 0) + 1
            packets_[conn.backend] = packets_.get(conn.backend, 0) + conn.packets
            bytes_[conn.backend] = bytes_.get(conn.backend, 0) + conn.bytes
        backends = {}
        for b in ss.backends.values():
            polled_p = sum(p for p, _ in b.polled.values())
            polled_b = sum(x for _, x in b.polled.values())
            backends[b.name] = {
                "state": b.health.state, "removed": b.removed,
                "active_flows": active.get(b.name, 0) if ss.reactive else None,
                # l4 on the conntrack path: connections live in the switch, not here
                "flows_total": b.flows_total if ss.reactive else None,
                "packets": b.closed_packets + packets_.get(b.name, 0) + polled_p,
                "bytes": b.closed_bytes + bytes_.get(b.name, 0) + polled_b,
                "probes_sent": b.health.probes_sent,
                "probes_inconclusive": b.health.inconclusive,
            }
        services[ss.svc.name] = {"mode": ss.svc.mode, "backends": backends,
                                 "packet_ins": ss.packet_ins}
    return {"services": services,
            "switches": {s: dict(v, connected=s in core.connected)
                         for s, v in sorted(core.switch_stats.items())}}
