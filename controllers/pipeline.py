"""Pure OpenFlow pipeline of the balancer: tables, priorities, cookies and the proactive flows.

Everything here is plain data (:class:`Flow`, :class:`GroupMod`, :class:`PacketOut`) that
``controllers/ofmsgs.py`` encodes; nothing imports os-ken, so the whole pipeline can be checked
on a fake flow table in tests.

Tables::

    0 T_CLASSIFY  ARP/probe traffic for the controller; VIP traffic (to the controller in l2
                  and l3, through conntrack in l4/proactive/group with conntrack, straight to
                  the select group in stateless group mode); per-connection and per-client NAT
                  flows installed on packet-in; stateless reverse NAT of group replies;
                  everything else -> T_L2
    1 T_CT        after ct(nat): new VIP connections -> select group (group with conntrack),
                  client-prefix rule (proactive), both ct(commit,nat(dst=backend)), or the
                  controller (l4); the rest (established, replies) -> T_POST
    2 T_POST      fix MACs after NAT (VMAC -> backend MAC, backend MAC -> VMAC) -> T_L2
    3 T_L2        shortest-path unicast by destination MAC, broadcast along one spanning tree

Cookies: bits 56-63 the flow class, 40-55 the service id, 24-39 the backend id, so one
delete with a cookie mask removes "all connection flows of backend 3 of service 1".
"""
from collections import namedtuple

from topologies import forwarding, graphs

T_CLASSIFY, T_CT, T_POST, T_L2 = 0, 1, 2, 3

PRIORITY_CONTROL = 1000      # ARP for VIPs and the probe address, probe replies
PRIORITY_CONNECTION = 600    # per-connection / per-client NAT flows (reactive modes)
PRIORITY_MARK = 550          # l2: committed connections by their ct_mark (= backend id)
PRIORITY_VIP = 500           # VIP -> controller (reactive) or -> conntrack
PRIORITY_PREFIX_BASE = 500   # + prefix length: proactive client-prefix rules in T_CT
PRIORITY_POST = 100
PRIORITY_UNICAST = 100
PRIORITY_FLOOD = 90
PRIORITY_DEFAULT = 0

COOKIE_STATIC = 0x01         # forwarding, control and VIP flows installed at switch connect
COOKIE_CONNECTION = 0x03     # forward per-connection/per-client flow (sends flow-removed)
COOKIE_REVERSE = 0x04        # its reverse-NAT partner
COOKIE_PREFIX = 0x05         # proactive client-prefix rules
COOKIE_POST = 0x06           # per-backend flow whose counters are the backend's traffic: the
                             # T_POST MAC fix-up (conntrack modes), the reply rewrite (stateless
                             # group)
COOKIE_OPENED = 0x07         # l4 in_flight counters/group: a backend's client SYNs (opened)
COOKIE_CLOSED = 0x08         # ... and its client FINs/RSTs (connections closed)
COOKIE_CLASS_MASK = 0xFF << 56
COOKIE_SERVICE_MASK = COOKIE_CLASS_MASK | (0xFFFF << 40)
COOKIE_BACKEND_MASK = COOKIE_SERVICE_MASK | (0xFFFF << 24)

# conntrack state bits (ovs-fields(7)) and the NAT flag for a destination rewrite.
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
OFPP_CONTROLLER = "controller"
OFPP_IN_PORT = "in_port"
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
# the counters of in_flight counters/group, as (cookie class, tcp_flags value, mask)
COUNTER_FLAGS = ((COOKIE_OPENED, TCP_SYN, TCP_SYN | TCP_ACK),   # a client's SYN
                 (COOKIE_CLOSED, TCP_FIN, TCP_FIN),             # its FIN
                 (COOKIE_CLOSED, TCP_RST, TCP_RST | TCP_FIN))   # or a RST without FIN
# Modes with static per-backend flows (installed when a backend joins the pool).
BACKEND_FLOW_MODES = ("l2", "l4", "group", "proactive")
PREFIX_BITS = 6              # proactive mode splits the client space into 2**6 slices

Flow = namedtuple("Flow", ("switch", "table", "priority", "match", "actions", "goto",
                           "cookie", "idle_timeout", "hard_timeout", "send_flow_rem",
                           "command", "cookie_mask", "meter"))
Flow.__new__.__defaults__ = (None, 0, 0, 0, False, "add", 0, None)
Flow.__doc__ = """One flow-table change. ``match`` is a dict of OXM names (os-ken spelling) to a
value or a (value, mask) pair; ``actions`` a tuple of action tuples::

    ("output", port|"controller"|"in_port")  ("set_field", name, value)  ("group", group_id)
    ("ct", {"zone": int, "table": int|None, "commit": bool, "nat_dst": ip|None, "nat": bool,
            "mark": int|None})   (mark: set ct_mark when committing)
    ("resubmit", table)   (Open vSwitch's resubmit: continue in ``table``; group buckets)

``command`` is add, delete (by match/cookie mask, any priority) or delete_strict; ``meter`` a
meter id the packets pass first (OpenFlow 1.3 meter instruction) or None."""
MeterMod = namedtuple("MeterMod", ("switch", "meter_id", "command", "rate", "burst"))
MeterMod.__doc__ = """A packets-per-second drop meter: ``command`` add or delete (``meter_id``
"all" with delete removes every meter of the switch)."""
GroupMod = namedtuple("GroupMod", ("switch", "group_id", "command", "buckets"))
GroupMod.__doc__ = """A select group: ``buckets`` is a tuple of (weight, actions)."""
CtFlush = namedtuple("CtFlush", ("switch", "zone", "ip_proto", "reply_src", "reply_src_port"))
CtFlush.__doc__ = """Remove from conntrack the connections of ``zone`` whose replies come from
``reply_src:reply_src_port``, i.e. those NATed to one backend (Open vSwitch's NXT_CT_FLUSH
extension, OVS >= 3.1; all bridges of a datapath share one conntrack table)."""
StatsRequest = namedtuple("StatsRequest", ("switch", "cookie", "cookie_mask"))
StatsRequest.__doc__ = """Ask ``switch`` for the flows whose cookie matches under the mask."""
PacketOut = namedtuple("PacketOut", ("switch", "in_port", "actions", "data"))
PacketOut.__doc__ = """Send ``data`` from ``switch`` with ``actions`` (in_port None = controller)."""


def cookie(kind, service_id=0, backend_id=0):
    """Return a flow cookie for a flow class, service and backend."""
    return (kind << 56) | (service_id << 40) | (backend_id << 24)


def cookie_parts(value):
    """Return (kind, service_id, backend_id) of a cookie."""
    return value >> 56, (value >> 40) & 0xFFFF, (value >> 24) & 0xFFFF


def tp_fields(protocol):
    """Return the (src, dst) OXM names of the L4 ports of ``tcp``/``udp``."""
    return ("tcp_src", "tcp_dst") if protocol == "tcp" else ("udp_src", "udp_dst")


def vip_match(svc, **extra):
    """Return the match of packets for a service's VIP (addressed to its VMAC)."""
    _, dst = tp_fields(svc.protocol)
    match = {"eth_type": ETH_TYPE_IPV4, "eth_dst": svc.vmac, "ipv4_dst": svc.vip,
             "ip_proto": svc.ip_proto, dst: svc.port}
    match.update(extra)
    return match


def forwarding_flows(graph, switch):
    """Return the T_L2 flows of ``switch``: unicast by MAC and broadcast along the flood tree."""
    flows = []
    static = cookie(COOKIE_STATIC)
    for mac, port in sorted(forwarding.unicast_ports(graph)[switch].items()):
        flows.append(Flow(switch, T_L2, PRIORITY_UNICAST, {"eth_dst": mac.lower()},
                          (("output", port),), cookie=static))
    for in_port, outs in sorted(forwarding.flood_ports(graph)[switch].items()):
        flows.append(Flow(switch, T_L2, PRIORITY_FLOOD,
                          {"in_port": in_port,
                           "eth_dst": ("01:00:00:00:00:00", "01:00:00:00:00:00")},
                          tuple(("output", p) for p in outs), cookie=static))
    return flows


def ct_zone(svc_id):
    """Return the conntrack zone of a service (1 + service id; zone 0 is left to others)."""
    return 1 + svc_id


def ct_action(svc_id, table, commit=False, nat_dst=None, nat=True, mark=None):
    """Return a conntrack action tuple in the service's zone."""
    return ("ct", {"zone": ct_zone(svc_id), "table": table, "commit": commit,
                   "nat_dst": nat_dst, "nat": nat, "mark": mark})


def tracks_connections(svc):
    """Return whether a service's VIP traffic goes through the switch's conntrack.

    l2 and l4 (the controller commits each connection), proactive (so re-splitting never moves
    an open connection) and group with ``conntrack: true``; a stateless group rewrites every
    packet by the bucket its hash picks, and l3 uses per-client flows.
    """
    return svc.mode in ("l2", "l4", "proactive") or (svc.mode == "group" and svc.conntrack)


def nats_in_conntrack(svc):
    """Return whether conntrack also rewrites the service's addresses (all but l2's DSR).

    Those connections can be found by their reply tuple (source = the backend), which is what
    flushing a down backend's connections needs; l2's replies come from the VIP.
    """
    return tracks_connections(svc) and svc.mode != "l2"


def group_buckets(svc_id, pool, conntrack=True):
    """Return the select-group buckets of a group service.

    With conntrack a bucket commits the connection with its NAT (it then stays on its backend
    whatever the buckets become); stateless, a bucket rewrites the destination and forwarding
    continues in T_L2, so a packet's backend is whatever its hash picks now.

    Args:
        svc_id (int): service id (its conntrack zone is 1 + id).
        pool (list[tuple]): (backend ip, backend mac, weight) of the live backends, weight > 0.
        conntrack (bool): the service's ``conntrack`` setting.
    """
    if conntrack:
        return tuple((weight, (ct_action(svc_id, T_POST, commit=True, nat_dst=ip),))
                     for ip, _mac, weight in pool)
    return tuple((weight, (("set_field", "eth_dst", mac), ("set_field", "ipv4_dst", ip),
                           ("resubmit", T_L2)))
                 for ip, mac, weight in pool)


def group_in_flight(svc):
    """Whether a service takes l4's group path: least connections as a conntrack select group
    re-weighted from switch counters (``in_flight: group``), no packet-in per connection."""
    return svc.mode == "l4" and getattr(svc, "in_flight", "flows") == "group"


def counts_in_switch(svc):
    """Whether a service's connection ends come from switch counters (``in_flight: counters``
    or ``group``) rather than per-connection counting flows."""
    return svc.mode == "l4" and getattr(svc, "in_flight", "flows") in ("counters", "group")


def uses_group(svc):
    """Whether a service's new connections go through its select group."""
    return svc.mode == "group" or group_in_flight(svc)


def counter_flows(switch, svc_id, svc, b):
    """Return a backend's opened/closed counter flows of an ``in_flight: counters/group`` service.

    In T_POST, above the backend's MAC fix-up and with its actions: the client's packets after
    the NAT (eth_dst still the VMAC, ip_dst the backend). A SYN without ACK counts an opened
    connection, a FIN (or a RST without FIN) a closed one.
    """
    base = {"eth_type": ETH_TYPE_IPV4, "eth_dst": svc.vmac, "ipv4_dst": b.ip,
            "ip_proto": svc.ip_proto}
    return [Flow(switch, T_POST, PRIORITY_POST + 1, dict(base, tcp_flags=(value, mask)),
                 (("set_field", "eth_dst", b.mac),), goto=T_L2,
                 cookie=cookie(kind, svc_id, b.bid))
            for kind, value, mask in COUNTER_FLAGS]


def split_prefixes(weights, bits=PREFIX_BITS):
    """Split the client address space in proportion to weights (Wang, Butnariu & Rexford 2011).

    The ``bits`` lowest bits of the client address, read in reverse order, index 2**bits slices;
    each backend gets a contiguous run of slices (largest-remainder rounding) expressed as aligned
    blocks, i.e. wildcard rules on the low address bits. Reversing the bits spreads consecutive
    client addresses (10.0.0.1, .2, …) over the backends.

    Args:
        weights (list[tuple[str, int]]): (backend, weight) in pool order; weight 0 gets nothing.
        bits (int): how many address bits to split on.
    Returns:
        list[tuple[int, int, int, str]]: (value, mask, prefix_len, backend) on the 32-bit address.
    """
    total_slices = 1 << bits
    live = [(name, w) for name, w in weights if w > 0]
    if not live:
        return []
    wsum = sum(w for _, w in live)
    exact = [(name, w * total_slices / wsum) for name, w in live]
    counts = {name: int(share) for name, share in exact}
    spare = total_slices - sum(counts.values())
    by_remainder = sorted(exact, key=lambda item: -(item[1] - int(item[1])))
    for name, _ in by_remainder[:spare]:
        counts[name] += 1
    rules, start = [], 0
    for name, _ in live:
        end = start + counts[name]
        while start < end:
            size = 1
            while start % (size * 2) == 0 and start + size * 2 <= end:
                size *= 2
            plen = bits - (size.bit_length() - 1)
            value = 0
            for i in range(plen):  # index bit (bits-1-i) is address bit i
                value |= ((start >> (bits - 1 - i)) & 1) << i
            rules.append((value, (1 << plen) - 1, plen, name))
            start += size
    return rules


def int_to_ip(value):
    """Return the dotted quad of a 32-bit integer."""
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def prefix_flows(switch, svc_id, svc, backends_by_name, weights):
    """Return the proactive-mode T_CT rules of one service on one switch.

    Args:
        backends_by_name (dict): name -> object with ``ip`` and ``bid``.
        weights (list[tuple[str, int]]): (backend, effective weight) — 0 for down or drained.
    """
    flows = []
    for value, mask, plen, name in split_prefixes(weights):
        backend = backends_by_name[name]
        match = vip_match(svc, ct_state=(CT_NEW | CT_TRK, CT_NEW | CT_TRK))
        if plen:
            match["ipv4_src"] = (int_to_ip(value), int_to_ip(mask))
        flows.append(Flow(switch, T_CT, PRIORITY_PREFIX_BASE + plen, match,
                          (ct_action(svc_id, T_POST, commit=True, nat_dst=backend.ip),),
                          cookie=cookie(COOKIE_PREFIX, svc_id, backend.bid)))
    return flows


def control_flows(switch, vips, probe_ip):
    """Return the T_CLASSIFY flows sending ARP for VIPs/probe address and probe replies up."""
    static = cookie(COOKIE_STATIC)
    to_controller = (("output", OFPP_CONTROLLER),)
    flows = [Flow(switch, T_CLASSIFY, PRIORITY_CONTROL,
                  {"eth_type": ETH_TYPE_ARP, "arp_tpa": ip}, to_controller, cookie=static)
             for ip in list(vips) + [probe_ip]]
    flows.append(Flow(switch, T_CLASSIFY, PRIORITY_CONTROL,
                      {"eth_type": ETH_TYPE_IPV4, "ipv4_dst": probe_ip}, to_controller,
                      cookie=static))
    for table in (T_CLASSIFY, T_CT, T_POST):
        flows.append(Flow(switch, table, PRIORITY_DEFAULT, {}, (), goto=table + 1
                          if table != T_CLASSIFY else T_L2, cookie=static))
    return flows


def switch_ports(graph, switch):
    """Return the port numbers of a switch in the topology graph, sorted."""
    return sorted(data["ports"][switch] for _, _, data in graph.edges(switch, data=True))


def packet_in_meters(switch, ports, rate):
    """Return the meters of a switch: every old one deleted, then one per port at ``rate``.

    VIP packets bound for the controller pass the meter of the port they came in on, so the
    datapath itself drops a SYN flood from one host beyond its share, before Open vSwitch
    builds a packet-in, and the other ports keep theirs. (Deleting a meter also deletes the
    flows that use it; the caller re-sends them after these.)
    """
    return [MeterMod(switch, "all", "delete", 0, 0)] + [
        MeterMod(switch, port, "add", rate, rate) for port in ports]


def to_controller(switch, table, match, cookie_value, meter_ports=None):
    """Return the flows sending VIP packets matching ``match`` to the controller.

    Without ``meter_ports`` one flow; with them one flow per ingress port, through that port's
    meter (:func:`packet_in_meters`).
    """
    up = (("output", OFPP_CONTROLLER),)
    if not meter_ports:
        return [Flow(switch, table, PRIORITY_VIP, match, up, cookie=cookie_value)]
    return [Flow(switch, table, PRIORITY_VIP, dict(match, in_port=port), up,
                 cookie=cookie_value, meter=port) for port in meter_ports]


def service_flows(switch, svc_id, svc, backends, meter_ports=None):
    """Return the static flows of one service on one switch (no per-connection state).

    Args:
        switch (str): switch name.
        svc_id (int): service id.
        svc (controllers.config.Service): the service.
        backends (list): every backend ever in the pool: objects with ``ip``, ``mac``, ``bid``.
        meter_ports (list[int]|None): meter the packet-ins of this switch per port (see
            :func:`to_controller`).
    """
    if svc.mode not in BACKEND_FLOW_MODES:
        return to_controller(switch, T_CLASSIFY, vip_match(svc), cookie(COOKIE_STATIC, svc_id),
                             meter_ports)
    src, _ = tp_fields(svc.protocol)
    if not tracks_connections(svc):
        return stateless_group_flows(switch, svc_id, svc, backends)
    if svc.mode == "l2":
        return dsr_flows(switch, svc_id, svc, backends, meter_ports)
    flows = [Flow(switch, T_CLASSIFY, PRIORITY_VIP, vip_match(svc), (ct_action(svc_id, T_CT),),
                  cookie=cookie(COOKIE_STATIC, svc_id))]
    for b in backends:
        flows.append(Flow(switch, T_CLASSIFY, PRIORITY_VIP,
                          {"eth_type": ETH_TYPE_IPV4, "ipv4_src": b.ip,
                           "ip_proto": svc.ip_proto, src: svc.port},
                          (ct_action(svc_id, T_CT),), cookie=cookie(COOKIE_STATIC, svc_id)))
        flows.append(Flow(switch, T_POST, PRIORITY_POST,
                          {"eth_type": ETH_TYPE_IPV4, "eth_dst": svc.vmac, "ipv4_dst": b.ip},
                          (("set_field", "eth_dst", b.mac),), goto=T_L2,
                          cookie=cookie(COOKIE_POST, svc_id, b.bid)))
    flows.append(Flow(switch, T_POST, PRIORITY_POST,
                      {"eth_type": ETH_TYPE_IPV4, "ipv4_src": svc.vip, "ip_proto": svc.ip_proto,
                       src: svc.port},
                      (("set_field", "eth_src", svc.vmac),), goto=T_L2,
                      cookie=cookie(COOKIE_STATIC, svc_id)))
    if counts_in_switch(svc):
        for b in backends:
            flows += counter_flows(switch, svc_id, svc, b)
    new_connection = vip_match(svc, ct_state=(CT_NEW | CT_TRK, CT_NEW | CT_TRK))
    if uses_group(svc):
        flows.append(Flow(switch, T_CT, PRIORITY_VIP, new_connection,
                          (("group", group_id(svc_id)),), cookie=cookie(COOKIE_STATIC, svc_id)))
    elif svc.mode == "l4":
        # l4: the controller decides each new connection; established ones never come up
        flows += to_controller(switch, T_CT, new_connection, cookie(COOKIE_STATIC, svc_id),
                               meter_ports)
    return flows


def dsr_flows(switch, svc_id, svc, backends, meter_ports=None):
    """Return the flows of an l2 (direct server return) service.

    VIP packets go through conntrack without NAT (only the client's direction ever passes the
    switch; Open vSwitch still tracks it: committed, later packets are +est). A new connection
    goes to the controller, which commits it with ``ct_mark`` = the backend's id; packets of a
    committed connection get that backend's MAC. Per-connection flows of the in-flight
    algorithms (T_CLASSIFY, higher priority) catch their connections before conntrack.
    """
    flows = [Flow(switch, T_CLASSIFY, PRIORITY_VIP, vip_match(svc),
                  (ct_action(svc_id, T_CT, nat=False),), cookie=cookie(COOKIE_STATIC, svc_id))]
    for b in backends:
        flows.append(Flow(switch, T_CT, PRIORITY_MARK,
                          vip_match(svc, ct_state=(CT_TRK, CT_TRK), ct_mark=b.bid),
                          (("set_field", "eth_dst", b.mac),), goto=T_L2,
                          cookie=cookie(COOKIE_POST, svc_id, b.bid)))
    flows += to_controller(switch, T_CT, vip_match(svc, ct_state=(CT_NEW | CT_TRK,
                                                                  CT_NEW | CT_TRK)),
                           cookie(COOKIE_STATIC, svc_id), meter_ports)
    return flows


def stateless_group_flows(switch, svc_id, svc, backends):
    """Return the flows of a stateless group service: VIP -> select group, replies rewritten.

    A reply is recognised by its source (backend address and service port) alone, so the
    service port of a backend answers only through the VIP (the config allows one service per
    backend port). The reply rule's counters are the backend's traffic in the stats.
    """
    src, _ = tp_fields(svc.protocol)
    flows = [Flow(switch, T_CLASSIFY, PRIORITY_VIP, vip_match(svc),
                  (("group", group_id(svc_id)),), cookie=cookie(COOKIE_STATIC, svc_id))]
    for b in backends:
        flows.append(Flow(switch, T_CLASSIFY, PRIORITY_VIP,
                          {"eth_type": ETH_TYPE_IPV4, "ipv4_src": b.ip,
                           "ip_proto": svc.ip_proto, src: svc.port},
                          (("set_field", "ipv4_src", svc.vip), ("set_field", "eth_src", svc.vmac)),
                          goto=T_L2, cookie=cookie(COOKIE_POST, svc_id, b.bid)))
    return flows


def group_id(svc_id):
    """Return the OpenFlow group id of a service's select group."""
    return 1 + svc_id


def all_switches(graph):
    """Return the switch names of the graph in index order."""
    return graphs.switches(graph)
