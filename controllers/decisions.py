"""Pure balancer decisions: packet facts, flow removals, probe results and API changes in;
flows, group changes, meters, conntrack flushes and packet-outs out (like faucet/valve.py). No
os-ken, no sockets, no clock: every entry point takes ``now``.

The reactive modes (l2, l3, l4) take one packet-in per new connection (l2, l4) or per new client
(l3) and ask the :mod:`lb_apps.balancing` balancer. Where the algorithm needs no facts about
connections ending (round robin, hashing, random), l2 and l4 commit the connection in the
switch's conntrack with one packet-out (l4 with its NAT, l2 with the backend as ``ct_mark``).
The in-flight algorithms (least connections, power of two) need those facts: l4 adds a counting
flow per connection, l2 and l3 install forward flows (plus reverse-NAT flows for l3), all with
an idle timeout and ``OFPFF_SEND_FLOW_REM``. Such a connection counts as open until its flow is
removed, so least-connections counts lag the real end of a connection by ``idle_timeout``.

The in-switch modes (group, proactive) have no per-flow state here: Open vSwitch's connection
tracker keeps each connection on its backend (a stateless group keeps none: its select group
hashes every packet); pool changes (controllers/changes.py) rewrite group buckets or prefix
rules. The JSON views are in controllers/views.py.
"""
from controllers import packets, pipeline, views
from controllers.changes import ChangeError, PoolChanges  # noqa: F401 -- ChangeError re-exported
from controllers.health import DOWN, UP
from controllers.pipeline import Flow, GroupMod, PacketOut
from controllers.state import Conn, ServiceState, TokenBucket
from controllers.steering import SwitchSteering
from controllers.views import CONNTRACK_PATH_ALGORITHMS
from lb_apps.balancing import is_file_algorithm
from topologies import forwarding

PROBE_PORT_BASE = 40000
PROBE_SEQ = 0x10000000
# A repeated packet-in of a known connection re-sends its flows only after this long (a flow
# may have been refused or expired); sooner, it is a packet that raced the flow-mod.
REINSTALL_AFTER_SEC = 1.0
# A probe not answered within this fraction of the interval counts as failed, so a silent
# backend is down (fall - 1 + 0.5) intervals after its first missed probe.
PROBE_TIMEOUT_FRACTION = 0.5
CONTROLLER_IN_PORT = None


class Core(PoolChanges, SwitchSteering):
    """All balancer state and decisions of one controller process.

    Args:
        config (controllers.config.Config): the parsed config.
        make_balancer (callable): ``lb_apps.balancing.make_balancer`` (injected for tests).
    """

    def __init__(self, config, make_balancer):
        self.config = config
        self.graph = config.graph
        self.settings = config.controller
        self.unicast = forwarding.unicast_ports(self.graph)
        self.location = forwarding.host_location(self.graph)
        self.services = [ServiceState(sid, svc, make_balancer, config.controller.seed)
                         for sid, svc in enumerate(config.services, start=1)]
        self.by_vip = {ss.svc.vip: ss for ss in self.services}
        self.connected = set()
        self.switch_stats = {}
        self.buckets = {}
        self.port_buckets = {}
        self.probe_ports = {}
        for ss in self.services:
            for b in ss.backends.values():
                self._register_probe_port(ss, b)

    def _register_probe_port(self, ss, b):
        """Give a backend joining a pool the source port its probes come from."""
        self.probe_ports[PROBE_PORT_BASE + len(self.probe_ports)] = (ss, b)

    # -- switches -----------------------------------------------------------------------

    def _switch_stats(self, switch):
        """Return (creating) the counters of a switch."""
        return self.switch_stats.setdefault(switch, {
            "packet_ins": 0, "dropped": 0, "errors": 0, "flows": None, "meter_packets": None,
            "meter_dropped": None})

    def meter_ports(self, switch):
        """Return the ports whose packet-ins are metered on ``switch`` (None: no meters)."""
        if not self.settings.packet_in_meter:
            return None
        return pipeline.switch_ports(self.graph, switch)

    def meter_rate(self):
        """Return the packets/s of each port's meter: that port's share of the switch's rate."""
        return max(1, int(self.settings.packet_in_rate * self.settings.packet_in_port_share))

    def switch_up(self, switch):
        """Return every proactive flow, group and meter for a switch that (re)connected."""
        self.connected.add(switch)
        self._switch_stats(switch)
        self.buckets[switch] = TokenBucket(self.settings.packet_in_rate)
        meter_ports = self.meter_ports(switch)
        msgs = []
        if meter_ports:
            msgs += pipeline.packet_in_meters(switch, meter_ports, self.meter_rate())
        for ss in self.services:
            if pipeline.uses_group(ss.svc):
                msgs.append(GroupMod(switch, pipeline.group_id(ss.sid), "delete", ()))
                msgs.append(GroupMod(switch, pipeline.group_id(ss.sid), "add",
                                     self._buckets(ss)))
        msgs += pipeline.control_flows(switch, list(self.by_vip), self.settings.probe_ip)
        msgs += pipeline.forwarding_flows(self.graph, switch)
        for ss in self.services:
            msgs += pipeline.service_flows(switch, ss.sid, ss.svc, list(ss.backends.values()),
                                           meter_ports)
            if ss.svc.mode == "proactive":
                msgs += pipeline.prefix_flows(switch, ss.sid, ss.svc, ss.backends,
                                              ss.effective_weights())
        return msgs

    def switch_down(self, switch):
        """Forget that a switch is connected (its flows stay in it: fail_mode secure)."""
        self.connected.discard(switch)

    def admit(self, switch, now, in_port=None):
        """Return whether a packet-in fits the rate limits (and count it).

        Two token buckets: one per switch (``packet_in_rate``) and one per switch port
        (``packet_in_port_share`` of it), so a SYN flood from one host takes at most that share
        and connections from the other ports still get set up.
        """
        stats = self._switch_stats(switch)
        rate = self.settings.packet_in_rate
        port_ok = True
        if in_port is not None:
            port_bucket = self.port_buckets.get((switch, in_port))
            if port_bucket is None:
                port_bucket = TokenBucket(max(1.0, rate * self.settings.packet_in_port_share))
                self.port_buckets[(switch, in_port)] = port_bucket
            port_ok = port_bucket.admit(now)
        bucket = self.buckets.setdefault(switch, TokenBucket(rate))
        if port_ok and bucket.admit(now):
            stats["packet_ins"] += 1
            return True
        stats["dropped"] += 1
        return False

    # -- packet-ins ---------------------------------------------------------------------

    def packet_in(self, switch, in_port, data, now):
        """Return what to do about one packet sent to the controller.

        Args:
            switch (str): switch name.
            in_port (int): where the packet entered the switch.
            data (bytes): the Ethernet frame.
            now (float): the clock.
        Returns:
            list: Flow / GroupMod / PacketOut decisions (empty: drop it).
        """
        facts = packets.parse(data)
        if facts.eth_type == packets.ETH_TYPE_ARP:
            return self._arp(switch, in_port, facts, now)
        if facts.eth_type != packets.ETH_TYPE_IPV4 or facts.ip_dst is None:
            return []
        if facts.ip_dst == self.settings.probe_ip:
            return self._probe_reply(facts, now)
        ss = self.by_vip.get(facts.ip_dst)
        if ss is None:
            return []
        ss.packet_ins += 1
        if not ss.reactive or facts.ip_proto != ss.svc.ip_proto or facts.tp_dst != ss.svc.port:
            return []
        return self._reactive(ss, switch, in_port, facts, data, now)

    def _arp(self, switch, in_port, facts, now):
        if facts.arp_op == packets.ARP_REQUEST:
            ss = self.by_vip.get(facts.arp_tpa)
            if ss is not None:
                mac = ss.svc.vmac
            elif facts.arp_tpa == self.settings.probe_ip:
                mac = self.settings.probe_mac
            else:
                return []
            data = packets.arp(packets.ARP_REPLY, mac, facts.arp_tpa, facts.arp_sha,
                               facts.arp_spa, eth_dst=facts.eth_src)
            return [PacketOut(switch, CONTROLLER_IN_PORT, (("output", in_port),), data)]
        if facts.arp_op == packets.ARP_REPLY and facts.arp_tpa == self.settings.probe_ip:
            msgs = []
            for ss, b in self.probe_ports.values():
                if b.ip == facts.arp_spa and ss.svc.health.kind == "arp":
                    msgs += self._probe_result(ss, b, True, now)
            return msgs
        return []

    def _key(self, ss, facts):
        if ss.svc.mode == "l3":
            return facts.ip_src
        return (facts.ip_proto, facts.ip_src, facts.tp_src, facts.ip_dst, facts.tp_dst)

    def _balancer_key(self, ss, facts):
        algorithm = ss.algorithm
        if algorithm == "ip_hash" or (algorithm == "consistent_hash" and ss.svc.mode == "l3"):
            return facts.ip_src
        if is_file_algorithm(algorithm):  # a balancer from a file: the client (l3), the 5-tuple
            if ss.svc.mode == "l3":
                return facts.ip_src
            return (facts.ip_proto, facts.ip_src, facts.tp_src, facts.ip_dst, facts.tp_dst)
        if algorithm == "five_tuple_hash" or algorithm == "consistent_hash":
            tp_src = 0 if ss.svc.mode == "l3" else facts.tp_src
            return (facts.ip_proto, facts.ip_src, tp_src, facts.ip_dst, facts.tp_dst)
        return None

    def _reactive(self, ss, switch, in_port, facts, data, now):
        key = self._key(ss, facts)
        conn = ss.conns.get(key)
        if conn is not None and not ss.backends[conn.backend].live:
            self._close(ss, key)
            conn = None
        if conn is None:
            is_tcp = facts.ip_proto == packets.IP_PROTO_TCP
            if is_tcp and facts.tcp_flags is not None and facts.tcp_flags & packets.TCP_RST:
                return []
            name = ss.balancer.choose(self._balancer_key(ss, facts))
            if name is None:
                return []
            if ss.svc.mode in ("l2", "l4") and ss.algorithm in CONNTRACK_PATH_ALGORITHMS:
                # Commit the connection in the switch's conntrack (l4: with its NAT; l2: with
                # the backend's id as ct_mark): its next packets and replies never come up, and
                # no flow is installed.
                backend = ss.backends[name]
                backend.flows_total += 1
                return [self._commit(ss, switch, in_port, backend, data)]
            ss.balancer.on_open(name)
            ss.backends[name].flows_total += 1
            if ss.steering is not None:
                # in_flight counters: conntrack alone, no flow; the switch's FIN/RST counters
                # end the connection in the balancer (steering.release_closed)
                return [self._commit(ss, switch, in_port, ss.backends[name], data)]
            conn = Conn(name, facts.ip_src, None if ss.svc.mode == "l3" else facts.tp_src,
                        switch, now)
            ss.conns[key] = conn
            if ss.svc.mode == "l4":
                # In-flight algorithms: conntrack does the NAT; a counting flow, installed
                # before the packet is committed, tells when the connection ends.
                backend = ss.backends[name]
                return [self.counting_flow(ss, conn, backend),
                        self._commit(ss, switch, in_port, backend, data)]
        backend = ss.backends[conn.backend]
        if ss.svc.mode == "l4":
            # a packet that entered before the connection was committed: same backend
            return [self._commit(ss, switch, in_port, backend, data)]
        if conn.installed is not None and now - conn.installed < REINSTALL_AFTER_SEC:
            # A packet that left the switch's datapath cache before our flow-mod reached it
            # (Open vSwitch revalidates its cached "to controller" entry a moment later): the
            # flows are on their way, only this packet needs forwarding.
            msgs = []
        else:
            msgs = self.connection_flows(ss, conn, backend)
            conn.installed = now
        out_port = self.unicast.get(switch, {}).get(backend.mac)
        if out_port is None:
            return msgs
        rewrite = self._rewrite(ss, backend)
        out = pipeline.OFPP_IN_PORT if out_port == in_port else out_port
        msgs.append(PacketOut(switch, in_port, rewrite + (("output", out),), data))
        return msgs

    @staticmethod
    def _commit(ss, switch, in_port, backend, data):
        """Return the packet-out committing a connection to ``backend`` in conntrack.

        l4: with the NAT to the backend, continuing in T_POST; l2: no NAT, the backend's id as
        ``ct_mark``, back to T_CT, whose mark rule gives the packet the backend's MAC.
        """
        if ss.svc.mode == "l2":
            commit = pipeline.ct_action(ss.sid, pipeline.T_CT, commit=True, nat=False,
                                        mark=backend.bid)
        else:
            commit = pipeline.ct_action(ss.sid, pipeline.T_POST, commit=True,
                                        nat_dst=backend.ip)
        return PacketOut(switch, in_port, (commit,), data)

    def counting_flow(self, ss, conn, backend):
        """Return the per-connection flow of an l4 connection balanced by in-flight counts.

        It sits in T_POST, after conntrack's NAT, on the switch that committed the connection:
        it fixes the MAC like the static POST flow and counts the client's packets; its removal
        after ``idle_timeout`` without any (``OFPFF_SEND_FLOW_REM``) closes the connection in the
        balancer. Replies never touch it (conntrack un-NATs them).
        """
        svc = ss.svc
        src, dst = pipeline.tp_fields(svc.protocol)
        match = {"eth_type": pipeline.ETH_TYPE_IPV4, "ip_proto": svc.ip_proto,
                 "eth_dst": svc.vmac, "ipv4_src": conn.client_ip, src: conn.client_port,
                 "ipv4_dst": backend.ip, dst: svc.port}
        return Flow(conn.switch, pipeline.T_POST, pipeline.PRIORITY_CONNECTION, match,
                    (("set_field", "eth_dst", backend.mac),), goto=pipeline.T_L2,
                    cookie=pipeline.cookie(pipeline.COOKIE_CONNECTION, ss.sid, backend.bid),
                    idle_timeout=svc.idle_timeout, send_flow_rem=True)

    def _rewrite(self, ss, backend):
        if ss.svc.mode == "l2":
            return (("set_field", "eth_dst", backend.mac),)
        return (("set_field", "eth_dst", backend.mac), ("set_field", "ipv4_dst", backend.ip))

    def connection_flows(self, ss, conn, backend):
        """Return the forward (and reverse-NAT) flows of one reactive connection or client."""
        svc = ss.svc
        src, dst = pipeline.tp_fields(svc.protocol)
        match = pipeline.vip_match(svc, ipv4_src=conn.client_ip)
        if conn.client_port is not None:
            match[src] = conn.client_port
        forward = Flow(conn.switch, pipeline.T_CLASSIFY, pipeline.PRIORITY_CONNECTION, match,
                       self._rewrite(ss, backend), goto=pipeline.T_L2,
                       cookie=pipeline.cookie(pipeline.COOKIE_CONNECTION, ss.sid, backend.bid),
                       idle_timeout=svc.idle_timeout, send_flow_rem=True)
        if svc.mode == "l2":
            return [forward]
        reverse_match = {"eth_type": pipeline.ETH_TYPE_IPV4, "ipv4_src": backend.ip,
                         "ipv4_dst": conn.client_ip, "ip_proto": svc.ip_proto, src: svc.port}
        if conn.client_port is not None:
            reverse_match[dst] = conn.client_port
        edge = self.location.get(backend.name, (conn.switch, None))[0]
        reverse = Flow(edge, pipeline.T_CLASSIFY, pipeline.PRIORITY_CONNECTION, reverse_match,
                       (("set_field", "ipv4_src", svc.vip), ("set_field", "eth_src", svc.vmac)),
                       goto=pipeline.T_L2,
                       cookie=pipeline.cookie(pipeline.COOKIE_REVERSE, ss.sid, backend.bid),
                       idle_timeout=svc.idle_timeout)
        # The reverse flow goes first so a reply racing the first packet finds it.
        return [reverse, forward]

    def _close(self, ss, key):
        conn = ss.conns.pop(key, None)
        if conn is None:
            return None
        b = ss.backends.get(conn.backend)
        b.closed_packets += conn.packets
        b.closed_bytes += conn.bytes
        if not b.removed:
            ss.balancer.on_close(conn.backend)
        return conn

    # -- flow removals, stats and re-learning -------------------------------------------

    def _conn_from_flow(self, cookie_value, match):
        kind, sid, bid = pipeline.cookie_parts(cookie_value)
        if kind != pipeline.COOKIE_CONNECTION or not 1 <= sid <= len(self.services):
            return None, None, None
        ss = self.services[sid - 1]
        src, dst = pipeline.tp_fields(ss.svc.protocol)
        client = match.get("ipv4_src")
        if ss.svc.mode == "l3":
            key = client
        else:
            key = (ss.svc.ip_proto, client, match.get(src), ss.svc.vip, match.get(dst))
        return ss, key, ss.by_bid(bid)

    def flow_removed(self, switch, cookie_value, match, packets_, bytes_, reason, now):
        """Account for a removed connection flow (idle timeout, hard timeout or delete).

        Returns:
            list: the delete of its reverse-NAT partner.
        """
        ss, key, backend = self._conn_from_flow(cookie_value, match)
        if ss is None or backend is None:
            return []
        conn = ss.conns.get(key)
        if conn is None or conn.backend != backend.name:
            return []
        conn.packets, conn.bytes = packets_, bytes_
        self._close(ss, key)
        if ss.svc.mode == "l4":
            return []  # a counting flow has no partner: conntrack did the NAT
        msgs = self.connection_flows(ss, conn, backend)
        return [m._replace(command="delete_strict") for m in msgs[:-1]]

    def learn_flows(self, switch, flows, now):
        """Re-learn connections from a switch's flow table after a controller restart.

        Args:
            flows (list[tuple]): (cookie, match dict, packets, bytes) of its flows.
        Returns:
            int: connections learnt.
        """
        learnt = 0
        for cookie_value, match, packets_, bytes_ in flows:
            ss, key, backend = self._conn_from_flow(cookie_value, match)
            if ss is None or backend is None:
                continue
            conn = ss.conns.get(key)
            if conn is None:
                port = None if ss.svc.mode == "l3" else key[2]
                conn = Conn(backend.name, match.get("ipv4_src"), port, switch, now)
                ss.conns[key] = conn
                if not backend.removed:
                    ss.balancer.on_open(backend.name)
                backend.flows_total += 1
                learnt += 1
            conn.packets, conn.bytes = packets_, bytes_
        return learnt

    def meter_stats(self, switch, meters):
        """Take one meter poll of a switch.

        Args:
            meters (dict): meter id -> (packets that reached it, packets its band dropped).
        """
        stats = self._switch_stats(switch)
        stats["meter_packets"] = sum(p for p, _ in meters.values())
        stats["meter_dropped"] = sum(d for _, d in meters.values())
        return []

    def flow_stats(self, switch, flows, table_sizes=None, learn=False):
        """Take one poll of a switch: connection/backend flow counters and table sizes.

        Args:
            flows (list[tuple]): (cookie, match dict, packets, bytes).
            table_sizes (dict|None): table id -> active flows.
            learn (bool): also adopt connections not known yet (the poll right after a switch
                connects); periodic polls only update counters, since a reply can carry a flow
                whose removal was already processed.
        """
        if learn:
            self.learn_flows(switch, flows, None)
        for cookie_value, match, packets_, bytes_ in flows:
            ss, key, _backend = self._conn_from_flow(cookie_value, match)
            conn = ss.conns.get(key) if ss is not None else None
            if conn is not None:
                conn.packets, conn.bytes = packets_, bytes_
        seen = {}
        for cookie_value, _match, packets_, bytes_ in flows:
            kind, sid, bid = pipeline.cookie_parts(cookie_value)
            if kind == pipeline.COOKIE_POST and 1 <= sid <= len(self.services):
                p, b = seen.get((sid, bid), (0, 0))
                seen[(sid, bid)] = (p + packets_, b + bytes_)
        for (sid, bid), counters in seen.items():
            backend = self.services[sid - 1].by_bid(bid)
            if backend is not None:
                backend.polled[switch] = counters
        if table_sizes is not None:
            self._switch_stats(switch)["flows"] = table_sizes
        return self.steering_counts(switch, flows)

    # -- health ---------------------------------------------------------------------------

    def tick(self, now):
        """Return the health probes due at ``now``.

        A probe unanswered after half an interval counts as a failure; a TCP RST counts at once.
        """
        msgs = self.steering_requests(now)
        checked = [(port, ss, b) for port, (ss, b) in self.probe_ports.items()
                   if ss.svc.health.kind != "none" and not b.removed]
        timed_out = [(ss, b) for _port, ss, b in checked
                     if b.health.pending is not None
                     and now - b.health.pending >= ss.svc.health.interval * PROBE_TIMEOUT_FRACTION]
        for ss, b in timed_out:
            if self._whole_pool_silent(ss, timed_out):
                # Every backend still up missed the same round: that is the controller's or the
                # switches' own stall (a saturated host), not backends dying together, and a
                # verdict would only take the whole pool down and cut every connection.
                b.health.pending = None
                b.health.inconclusive += 1
                continue
            msgs += self._probe_result(ss, b, False, now)
        for port, ss, b in checked:
            health = ss.svc.health
            if b.next_probe is not None and now < b.next_probe:
                continue
            probe = self._probe(ss, b, port)
            if probe is None:
                b.next_probe = now + health.interval
                continue
            b.health.pending = now
            b.health.probes_sent += 1
            b.next_probe = now + health.interval
            msgs.append(probe)
        return msgs

    @staticmethod
    def _whole_pool_silent(ss, timed_out):
        """Whether the probes that timed out in this tick cover every backend of ``ss`` that is up.

        Then there is no live backend to fail over to, and marking them down would only delete
        every client's flows: such a round counts neither as a failure nor as a success.
        """
        up = {b.name for b in ss.backends.values()
              if not b.removed and b.health.state == UP}
        silent = {b.name for s, b in timed_out if s is ss}
        return bool(up) and up <= silent

    def _probe(self, ss, b, sport):
        switch, port = self.location.get(b.name, (None, None))
        if switch not in self.connected:
            return None
        s = self.settings
        if ss.svc.health.kind == "arp":
            data = packets.arp(packets.ARP_REQUEST, s.probe_mac, s.probe_ip,
                               "00:00:00:00:00:00", b.ip, eth_dst=b.mac)
        else:
            data = packets.tcp(s.probe_mac, b.mac, s.probe_ip, b.ip, sport, ss.svc.port,
                               PROBE_SEQ, 0, packets.TCP_SYN)
        return PacketOut(switch, CONTROLLER_IN_PORT, (("output", port),), data)

    def _probe_reply(self, facts, now):
        entry = self.probe_ports.get(facts.tp_dst)
        if entry is None or facts.ip_proto != packets.IP_PROTO_TCP or facts.tcp_flags is None:
            return []
        ss, b = entry
        if facts.ip_src != b.ip or b.health.pending is None:
            return []
        flags = facts.tcp_flags
        if flags & packets.TCP_SYN and flags & packets.TCP_ACK:
            msgs = self._probe_result(ss, b, True, now)
            switch, port = self.location[b.name]
            s = self.settings
            rst = packets.tcp(s.probe_mac, b.mac, s.probe_ip, b.ip, facts.tp_dst, facts.tp_src,
                              facts.tcp_ack, 0, packets.TCP_RST)
            return msgs + [PacketOut(switch, CONTROLLER_IN_PORT, (("output", port),), rst)]
        if flags & packets.TCP_RST:
            return self._probe_result(ss, b, False, now)
        return []

    def _probe_result(self, ss, b, ok, now):
        changed = b.health.record(ok, ss.svc.health.rise, ss.svc.health.fall, now)
        if changed is None:
            return []
        if ss.balancer is not None and not b.removed:
            ss.balancer.set_up(b.name, changed == UP)
        msgs = self._pool_changed(ss)
        if changed == DOWN:
            msgs += self._remove_backend_flows(ss, b)
            msgs += self._flush_backend_connections(ss, b)
        return msgs

    def _flush_backend_connections(self, ss, b):
        """Remove a down backend's connections from conntrack (one switch: the table is shared).

        Their next packets are then new connections: balanced onto a live backend, which resets
        them, so clients fail at once instead of waiting on a dead host.
        """
        if not pipeline.nats_in_conntrack(ss.svc) or not self.connected:
            return []
        return [pipeline.CtFlush(sorted(self.connected)[0], pipeline.ct_zone(ss.sid),
                                 ss.svc.ip_proto, b.ip, ss.svc.port)]

    def _remove_backend_flows(self, ss, b):
        """Delete a down backend's connection flows everywhere (flow-removed closes them)."""
        msgs = []
        if not ss.reactive:
            return msgs
        for switch in sorted(self.connected):
            for kind in (pipeline.COOKIE_CONNECTION, pipeline.COOKIE_REVERSE):
                msgs.append(Flow(switch, pipeline.T_CLASSIFY, 0, {}, (),
                                 cookie=pipeline.cookie(kind, ss.sid, b.bid), command="delete",
                                 cookie_mask=pipeline.COOKIE_BACKEND_MASK))
        return msgs

    # -- views --------------------------------------------------------------------------

    def services_view(self):
        """Return the JSON-ready pools, weights and states of every service."""
        return views.services_view(self)

    def stats_view(self):
        """Return JSON-ready per-backend flow counters and per-switch counters."""
        return views.stats_view(self)
