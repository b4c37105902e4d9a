"""OpenFlow 1.3 message builders: pipeline decisions -> os-ken messages with ``datapath=None``
(like faucet/valve_of.py). The shim sets ``msg.datapath`` just before sending, so tests can
encode and inspect every message without a switch.
"""
import socket
import struct

from os_ken.ofproto import nicira_ext
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controllers.pipeline import CtFlush, Flow, GroupMod, MeterMod, PacketOut, StatsRequest

# ovs-actions(7): nat(dst=...) sets NX_NAT_F_DST; recirc table 255 means "do not recirculate".
NX_NAT_F_DST = 1 << 1
NX_CT_RECIRC_NONE = 255
GROUP_COMMANDS = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY, "delete": ofp.OFPGC_DELETE}


def output_port(port):
    """Return the OpenFlow port number for an int or ``"controller"``/``"in_port"``."""
    if port == "controller":
        return ofp.OFPP_CONTROLLER
    if port == "in_port":
        return ofp.OFPP_IN_PORT
    return port


def action(spec):
    """Return the os-ken action for one action tuple of :mod:`controllers.pipeline`.

    Args:
        spec (tuple): ``("output", port)``, ``("set_field", name, value)``, ``("group", id)``,
            ``("resubmit", table)`` or ``("ct", {...})``.
    Returns:
        os_ken.ofproto.ofproto_v1_3_parser.OFPAction: the encoded action.
    Raises:
        ValueError: unknown action kind.
    """
    kind = spec[0]
    if kind == "output":
        port = output_port(spec[1])
        max_len = ofp.OFPCML_NO_BUFFER if port == ofp.OFPP_CONTROLLER else 0
        return parser.OFPActionOutput(port, max_len)
    if kind == "set_field":
        return parser.OFPActionSetField(**{spec[1]: spec[2]})
    if kind == "group":
        return parser.OFPActionGroup(spec[1])
    if kind == "resubmit":
        return parser.NXActionResubmitTable(table_id=spec[1])  # in_port: os-ken's "this port"
    if kind == "ct":
        ct = spec[1]
        inner = []
        if ct.get("nat_dst"):
            inner = [parser.NXActionNAT(flags=NX_NAT_F_DST, range_ipv4_min=ct["nat_dst"],
                                      range_ipv4_max=ct["nat_dst"])]
        elif ct.get("nat"):
            inner = [parser.NXActionNAT(flags=0)]
        if ct.get("mark") is not None:
            inner.append(parser.OFPActionSetField(ct_mark=ct["mark"]))
        table = ct.get("table")
        return parser.NXActionCT(
            flags=nicira_ext.NX_CT_F_COMMIT if ct.get("commit") else 0,
            zone_src="", zone_ofs_nbits=ct["zone"],
            recirc_table=NX_CT_RECIRC_NONE if table is None else table, alg=0, actions=inner)
    raise ValueError(f"action: unknown kind {kind!r}; expected output, set_field, group, "
                     "resubmit or ct")


def flow_mod(flow):
    """Return the OFPFlowMod of a :class:`controllers.pipeline.Flow`."""
    match = parser.OFPMatch(**flow.match)
    if flow.command in ("delete", "delete_strict"):
        strict = flow.command == "delete_strict"
        return parser.OFPFlowMod(
            datapath=None, cookie=flow.cookie,
            cookie_mask=flow.cookie_mask if not strict else 0,
            table_id=flow.table if strict else ofp.OFPTT_ALL,
            command=ofp.OFPFC_DELETE_STRICT if strict else ofp.OFPFC_DELETE,
            priority=flow.priority, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
            match=match)
    instructions = []
    if flow.meter is not None:
        instructions.append(parser.OFPInstructionMeter(flow.meter, ofp.OFPIT_METER))
    if flow.actions:
        instructions.append(parser.OFPInstructionActions(
            ofp.OFPIT_APPLY_ACTIONS, [action(a) for a in flow.actions]))
    if flow.goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(flow.goto))
    return parser.OFPFlowMod(
        datapath=None, cookie=flow.cookie, table_id=flow.table, command=ofp.OFPFC_ADD,
        idle_timeout=flow.idle_timeout, hard_timeout=flow.hard_timeout,
        priority=flow.priority, buffer_id=ofp.OFP_NO_BUFFER,
        flags=ofp.OFPFF_SEND_FLOW_REM if flow.send_flow_rem else 0,
        match=match, instructions=instructions)


METER_COMMANDS = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY, "delete": ofp.OFPMC_DELETE}


def meter_mod(meter):
    """Return the OFPMeterMod of a :class:`controllers.pipeline.MeterMod` (packets/s, drop band)."""
    meter_id = ofp.OFPM_ALL if meter.meter_id == "all" else meter.meter_id
    bands = [] if meter.command == "delete" else [
        parser.OFPMeterBandDrop(rate=meter.rate, burst_size=meter.burst)]
    return parser.OFPMeterMod(datapath=None, command=METER_COMMANDS[meter.command],
                              flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
                              meter_id=meter_id, bands=bands)


def meter_stats_request():
    """Return a request for the statistics of every meter."""
    return parser.OFPMeterStatsRequest(datapath=None, flags=0, meter_id=ofp.OFPM_ALL)


def group_mod(group):
    """Return the OFPGroupMod (select type) of a :class:`controllers.pipeline.GroupMod`."""
    buckets = [parser.OFPBucket(weight=weight, actions=[action(a) for a in actions])
               for weight, actions in group.buckets]
    return parser.OFPGroupMod(datapath=None, command=GROUP_COMMANDS[group.command],
                              type_=ofp.OFPGT_SELECT, group_id=group.group_id,
                              buckets=buckets)


def packet_out(out):
    """Return the OFPPacketOut of a :class:`controllers.pipeline.PacketOut`."""
    in_port = ofp.OFPP_CONTROLLER if out.in_port is None else out.in_port
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                               actions=[action(a) for a in out.actions], data=out.data)


_PACKET_OUT_HEADER = "!BBHIIIH6x"  # ofp_header, buffer_id, in_port, actions_len, pad
_ACTIONS_CACHE_ENTRIES = 4096
_actions_cache = {}


def packet_out_bytes(out, xid=0):
    """Return the wire bytes of a PacketOut, with its encoded actions cached.

    The l4 conntrack path sends one packet-out per new connection, all with one of a few action
    lists (one per backend); building os-ken objects for each costs more than the rest of the
    decision, so the encoded actions are kept by their repr.

    Args:
        out (controllers.pipeline.PacketOut): the decision.
        xid (int): OpenFlow transaction id.
    Returns:
        bytes: an OFPT_PACKET_OUT message, byte-identical to ``packet_out(out)`` serialised.
    """
    key = repr(out.actions)
    actions = _actions_cache.get(key)
    if actions is None:
        buf = bytearray()
        for spec in out.actions:
            action(spec).serialize(buf, len(buf))
        actions = bytes(buf)
        if len(_actions_cache) >= _ACTIONS_CACHE_ENTRIES:
            _actions_cache.clear()
        _actions_cache[key] = actions
    in_port = ofp.OFPP_CONTROLLER if out.in_port is None else out.in_port
    data = out.data or b""
    header = struct.pack(_PACKET_OUT_HEADER, ofp.OFP_VERSION, ofp.OFPT_PACKET_OUT,
                         struct.calcsize(_PACKET_OUT_HEADER) + len(actions) + len(data), xid,
                         ofp.OFP_NO_BUFFER, in_port, len(actions))
    return header + actions + data


# Open vSwitch's NXT_CT_FLUSH (nicira-ext.h, OVS >= 3.1): a nx_ct_flush body (ip_proto, family,
# 6 zero bytes) followed by OpenFlow properties (type, length, value, padded to 8 bytes).
NX_EXPERIMENTER_ID = 0x00002320
NXT_CT_FLUSH = 32
NXT_CT_ORIG_DIRECTION, NXT_CT_REPLY_DIRECTION, NXT_CT_ZONE_ID = 0, 1, 2
NXT_CT_TUPLE_SRC, NXT_CT_TUPLE_DST, NXT_CT_TUPLE_SRC_PORT, NXT_CT_TUPLE_DST_PORT = 0, 1, 2, 3


def _prop(prop_type, value):
    length = 4 + len(value)
    return struct.pack("!HH", prop_type, length) + value + bytes(-length % 8)


def _nested_prop(prop_type, inner):
    """A property holding properties: header, 4 bytes of padding, then the (aligned) inner ones."""
    return struct.pack("!HH4x", prop_type, 8 + len(inner)) + inner


def ct_flush_body(flush):
    """Return the NXT_CT_FLUSH body of a :class:`controllers.pipeline.CtFlush`.

    The reply tuple names the backend (source address, as IPv4-mapped IPv6, and source port);
    16-bit values are padded to 4 bytes, as Open vSwitch encodes them.
    """
    mapped = bytes(10) + b"\xff\xff" + socket.inet_aton(flush.reply_src)
    reply = (_prop(NXT_CT_TUPLE_SRC, mapped)
             + _prop(NXT_CT_TUPLE_SRC_PORT, struct.pack("!H2x", flush.reply_src_port)))
    return (struct.pack("!BB6x", flush.ip_proto, 0)
            + _nested_prop(NXT_CT_REPLY_DIRECTION, reply)
            + _prop(NXT_CT_ZONE_ID, struct.pack("!H2x", flush.zone)))


def ct_flush(flush):
    """Return the OFPExperimenter message of a :class:`controllers.pipeline.CtFlush`."""
    return parser.OFPExperimenter(datapath=None, experimenter=NX_EXPERIMENTER_ID,
                                  exp_type=NXT_CT_FLUSH, data=ct_flush_body(flush))


def encode(decision):
    """Return the os-ken message of any decision (Flow, GroupMod, PacketOut, CtFlush, MeterMod,
    StatsRequest)."""
    if isinstance(decision, Flow):
        return flow_mod(decision)
    if isinstance(decision, GroupMod):
        return group_mod(decision)
    if isinstance(decision, PacketOut):
        return packet_out(decision)
    if isinstance(decision, CtFlush):
        return ct_flush(decision)
    if isinstance(decision, MeterMod):
        return meter_mod(decision)
    if isinstance(decision, StatsRequest):
        return flow_stats_request(decision.cookie, decision.cookie_mask)
    raise TypeError(f"decision: unknown type {type(decision).__name__}; "
                    "expected Flow, GroupMod, PacketOut, CtFlush, MeterMod or StatsRequest")


def flow_stats_request(cookie=0, cookie_mask=0):
    """Return a request for the flows of all tables whose cookie matches under the mask."""
    return parser.OFPFlowStatsRequest(datapath=None, table_id=ofp.OFPTT_ALL,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                      cookie=cookie, cookie_mask=cookie_mask,
                                      match=parser.OFPMatch())


def table_stats_request():
    """Return a table statistics request (active flows per table)."""
    return parser.OFPTableStatsRequest(datapath=None, flags=0)


def barrier_request():
    """Return a barrier request."""
    return parser.OFPBarrierRequest(datapath=None)


def match_dict(match):
    """Return a plain dict of an OFPMatch (what the pure code reads)."""
    return dict(match.items())
