"""A fake OpenFlow 1.3 switch for tests (like faucet's clib/fakeoftable.py): applies the pure
pipeline decisions (Flow, GroupMod) to in-memory tables, with a toy connection tracker, and
tells where a packet would go. Packets are dicts of OXM names (``eth_dst``, ``ipv4_src``…).
"""
import ipaddress
import zlib

from controllers.pipeline import (CT_EST, CT_NEW, CT_RPL, CT_TRK, CtFlush, Flow, GroupMod,
                                  MeterMod)

MAX_STEPS = 32


def _as_int(value):
    if isinstance(value, int):
        return value
    if ":" in value:
        return int(value.replace(":", ""), 16)
    return int(ipaddress.IPv4Address(value))


def field_matches(want, have):
    """Return whether packet value ``have`` matches match value ``want`` (maybe (value, mask))."""
    if have is None:
        return False
    if isinstance(want, tuple):
        value, mask = (_as_int(x) for x in want)
        return _as_int(have) & mask == value & mask
    return _as_int(want) == _as_int(have) if isinstance(want, str) else want == have


class FakeSwitch:
    """Flow tables, groups and a conntrack table of one switch."""

    def __init__(self, name):
        self.name = name
        self.flows = []
        self.groups = {}
        self.conntrack = {}  # (zone, orig 5-tuple) -> nat destination
        self.marks = {}      # (zone, orig 5-tuple) -> ct_mark
        self.meters = {}     # meter id -> (rate, burst); packets are not metered here
        self.packet_counts = {}  # flow key -> packets that matched it (process() only)

    def apply(self, decision):
        """Apply one Flow, GroupMod or MeterMod addressed to this switch."""
        if isinstance(decision, MeterMod):
            if decision.command == "delete":
                if decision.meter_id == "all":
                    self.meters.clear()
                else:
                    self.meters.pop(decision.meter_id, None)
                # as in OpenFlow: flows using a deleted meter go with it
                self.flows = [f for f in self.flows if f.meter is None or f.meter in self.meters]
            else:
                self.meters[decision.meter_id] = (decision.rate, decision.burst)
            return
        if isinstance(decision, GroupMod):
            if decision.command == "delete":
                self.groups.pop(decision.group_id, None)
            else:
                self.groups[decision.group_id] = decision.buckets
            return
        if not isinstance(decision, Flow):
            return
        key = (decision.table, decision.priority, tuple(sorted(decision.match.items())))
        if decision.command == "add":
            self.flows = [f for f in self.flows if self._key(f) != key] + [decision]
        elif decision.command == "delete_strict":
            self.flows = [f for f in self.flows if self._key(f) != key]
        elif decision.command == "delete":
            mask = decision.cookie_mask
            self.flows = [f for f in self.flows if f.cookie & mask != decision.cookie & mask]

    def flow_stats(self, cookie, cookie_mask):
        """Return (cookie, match, packets, bytes) of the flows whose cookie matches, as a flow
        stats reply gives them to the core (bytes are not counted here: 0)."""
        return [(f.cookie, dict(f.match), self.packet_counts.get(self._key(f), 0), 0)
                for f in self.flows if f.cookie & cookie_mask == cookie & cookie_mask]

    @staticmethod
    def _key(flow):
        return (flow.table, flow.priority, tuple(sorted(flow.match.items())))

    def lookup(self, table, pkt):
        """Return the highest-priority flow of ``table`` matching ``pkt`` (None: table miss)."""
        best = None
        for flow in self.flows:
            if flow.table != table:
                continue
            if all(field_matches(v, pkt.get(k)) for k, v in flow.match.items()):
                if best is None or flow.priority > best.priority:
                    best = flow
        return best

    def _tuple(self, pkt):
        sport = pkt.get("tcp_src", pkt.get("udp_src"))
        dport = pkt.get("tcp_dst", pkt.get("udp_dst"))
        return (pkt.get("ip_proto"), pkt.get("ipv4_src"), sport, pkt.get("ipv4_dst"), dport)

    def _ct(self, spec, pkt):
        zone = spec["zone"]
        orig = self._tuple(pkt)
        proto, src, sport, dst, dport = orig
        if spec.get("commit"):
            target = spec.get("nat_dst")
            self.conntrack[(zone, orig)] = target
            self.marks[(zone, orig)] = spec.get("mark") or 0
            if target:
                pkt["ipv4_dst"] = target
            pkt["ct_state"] = CT_NEW | CT_TRK
            pkt["ct_mark"] = self.marks[(zone, orig)]
            return
        if (zone, orig) in self.conntrack:
            target = self.conntrack[(zone, orig)]
            if spec.get("nat") and target:
                pkt["ipv4_dst"] = target
            pkt["ct_state"] = CT_EST | CT_TRK
            pkt["ct_mark"] = self.marks.get((zone, orig), 0)
            return
        pkt["ct_mark"] = 0
        for (z, (p, c, cport, vip, vport)), target in self.conntrack.items():
            if z == zone and p == proto and target == src and sport == vport \
                    and dst == c and dport == cport:
                if spec.get("nat"):
                    pkt["ipv4_src"] = vip
                pkt["ct_state"] = CT_EST | CT_RPL | CT_TRK
                return
        pkt["ct_state"] = CT_NEW | CT_TRK

    def process(self, in_port, pkt, table=0):
        """Run ``pkt`` (a dict) through the pipeline from ``table``.

        Returns:
            list[tuple]: (port | "controller" | "in_port", packet dict as it leaves).
        """
        pkt = dict(pkt, in_port=in_port)
        outputs = []
        for _ in range(MAX_STEPS):
            flow = self.lookup(table, pkt)
            if flow is None:
                return outputs
            self.packet_counts[self._key(flow)] = self.packet_counts.get(self._key(flow), 0) + 1
            next_table = flow.goto
            for action in flow.actions:
                kind = action[0]
                if kind == "output":
                    outputs.append((action[1], dict(pkt)))
                elif kind == "set_field":
                    pkt[action[1]] = action[2]
                elif kind == "group":
                    buckets = self.groups.get(action[1], ())
                    if not buckets:
                        return outputs
                    total = sum(w for w, _ in buckets)
                    point = zlib.crc32(repr(self._tuple(pkt)).encode()) % total
                    for weight, bucket_actions in buckets:
                        if point < weight:
                            break
                        point -= weight
                    for bucket_action in bucket_actions:
                        if bucket_action[0] == "ct":
                            self._ct(bucket_action[1], pkt)
                            next_table = bucket_action[1]["table"]
                        elif bucket_action[0] == "set_field":
                            pkt[bucket_action[1]] = bucket_action[2]
                        elif bucket_action[0] == "resubmit":
                            next_table = bucket_action[1]
                        else:
                            raise AssertionError(f"{self.name}: bucket action {bucket_action}")
                elif kind == "ct":
                    self._ct(action[1], pkt)
                    next_table = action[1]["table"]
            if next_table is None:
                return outputs
            table = next_table
        raise AssertionError(f"{self.name}: pipeline loop for {pkt}")


    def packet_out(self, in_port, pkt, actions):
        """Apply a packet-out's actions (set_field, output, ct with recirculation).

        Returns:
            list[tuple]: (port | "in_port", packet dict as it leaves).
        """
        pkt = dict(pkt, in_port=in_port)
        outputs = []
        for action in actions:
            if action[0] == "set_field":
                pkt[action[1]] = action[2]
            elif action[0] == "output":
                outputs.append((action[1], dict(pkt)))
            elif action[0] == "ct":
                self._ct(action[1], pkt)
                if action[1]["table"] is not None:
                    return outputs + self.process(in_port, pkt, table=action[1]["table"])
        return outputs


class FakeNetwork:
    """One FakeSwitch per switch name; routes decisions to them."""

    def __init__(self, switch_names):
        self.switches = {name: FakeSwitch(name) for name in switch_names}

    def apply(self, decisions):
        """Apply Flow/GroupMod/MeterMod/CtFlush decisions; return the PacketOuts (not applied).

        A CtFlush empties matching entries of every switch, as the switches of one Open vSwitch
        datapath share one conntrack table.
        """
        outs = []
        for d in decisions:
            if isinstance(d, (Flow, GroupMod, MeterMod)):
                self.switches[d.switch].apply(d)
            elif isinstance(d, CtFlush):
                for switch in self.switches.values():
                    switch.conntrack = {
                        (zone, orig): target for (zone, orig), target in switch.conntrack.items()
                        if not (zone == d.zone and orig[0] == d.ip_proto and target == d.reply_src
                                and orig[4] == d.reply_src_port)}
            else:
                outs.append(d)
        return outs
