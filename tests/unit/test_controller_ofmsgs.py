"""OpenFlow encoding of pipeline decisions: every message of every mode serialises and parses
back to what was meant (no switch needed: datapath=None until sending)."""
import struct

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controllers import config, ofmsgs, packets, pipeline
from controllers.decisions import Core
from lb_apps.balancing import make_balancer
from topologies import graphs


class FakeDatapath:
    ofproto = ofp
    ofproto_parser = parser
    id = 1


def round_trip(msg):
    """Serialise ``msg`` and parse the bytes back into an os-ken message."""
    msg.datapath = FakeDatapath()
    msg.set_xid(1)
    msg.serialize()
    version, msg_type, msg_len, xid = ofproto_parser.header(msg.buf)
    return ofproto_parser.msg(FakeDatapath(), version, msg_type, msg_len, xid, msg.buf)


def core_for(mode):
    cfg = config.parse_config({"topology": {"name": "lb_lab"}, "services": {"web": {
        "vip": "10.0.0.100", "port": 80, "mode": mode, "backends": {"h6": 1, "h7": 3}}}})
    return Core(cfg, make_balancer)


@pytest.mark.parametrize("mode", ["l2", "l3", "l4", "group", "proactive"])
def test_every_proactive_message_encodes(mode):
    core = core_for(mode)
    decisions = core.switch_up("s1")
    assert decisions
    for decision in decisions:
        msg = ofmsgs.encode(decision)
        assert msg.datapath is None
        round_trip(msg)


def test_flow_mod_fields_round_trip():
    flow = pipeline.Flow("s1", 0, 600, {"eth_type": 0x0800, "ipv4_src": "10.0.0.1",
                                        "ipv4_dst": "10.0.0.100", "ip_proto": 6,
                                        "tcp_src": 1234, "tcp_dst": 80},
                         (("set_field", "ipv4_dst", "10.0.0.6"),), goto=3,
                         cookie=pipeline.cookie(pipeline.COOKIE_CONNECTION, 1, 2),
                         idle_timeout=5, send_flow_rem=True)
    back = round_trip(ofmsgs.flow_mod(flow))
    assert back.cookie == flow.cookie and back.idle_timeout == 5 and back.priority == 600
    assert back.flags & ofp.OFPFF_SEND_FLOW_REM
    assert back.match["tcp_src"] == 1234 and back.match["ipv4_dst"] == "10.0.0.100"
    apply_, goto = back.instructions
    assert apply_.actions[0].key == "ipv4_dst" and apply_.actions[0].value == "10.0.0.6"
    assert goto.table_id == 3


def test_delete_by_cookie_mask_spans_all_tables():
    flow = pipeline.Flow("s1", 0, 0, {}, (), cookie=pipeline.cookie(3, 1, 2), command="delete",
                         cookie_mask=pipeline.COOKIE_BACKEND_MASK)
    msg = ofmsgs.flow_mod(flow)
    assert msg.command == ofp.OFPFC_DELETE and msg.table_id == ofp.OFPTT_ALL
    assert msg.cookie_mask == pipeline.COOKIE_BACKEND_MASK
    round_trip(msg)


def test_select_group_bucket_is_ct_commit_with_dst_nat():
    decision = pipeline.GroupMod("s1", 1, "add", pipeline.group_buckets(
        0, [("10.0.0.6", "00:00:00:00:00:06", 3)]))
    msg = ofmsgs.group_mod(decision)
    assert msg.type == ofp.OFPGT_SELECT and msg.group_id == 1
    msg.datapath = FakeDatapath()
    msg.serialize()
    # os-ken parses no GroupMod (a switch never sends one): read the bucket after the header
    bucket = parser.OFPBucket.parser(msg.buf, ofp.OFP_GROUP_MOD_SIZE)
    assert bucket.weight == 3
    (ct,) = bucket.actions
    assert ct.flags == 1 and ct.zone_ofs_nbits == 1 and ct.recirc_table == pipeline.T_POST
    (nat,) = ct.actions
    assert nat.flags == ofmsgs.NX_NAT_F_DST
    assert nat.range_ipv4_min == nat.range_ipv4_max == "10.0.0.6"


def test_stateless_bucket_rewrites_and_resubmits_to_forwarding():
    decision = pipeline.GroupMod("s1", 1, "add", pipeline.group_buckets(
        0, [("10.0.0.6", "00:00:00:00:00:06", 3)], conntrack=False))
    msg = ofmsgs.group_mod(decision)
    msg.datapath = FakeDatapath()
    msg.serialize()
    bucket = parser.OFPBucket.parser(msg.buf, ofp.OFP_GROUP_MOD_SIZE)
    eth, ip, resubmit = bucket.actions
    assert (eth.key, eth.value, ip.key, ip.value) == ("eth_dst", "00:00:00:00:00:06",
                                                      "ipv4_dst", "10.0.0.6")
    assert resubmit.table_id == pipeline.T_L2 and resubmit.in_port == 0xfff8  # OF1.0 IN_PORT


def test_ct_flush_is_what_ovs_ofctl_sends():
    # captured from Open vSwitch 3.1.0: ovs-ofctl -O OpenFlow13 ct-flush <switch> zone=3 ''
    # 'ct_nw_src=10.0.0.9,ct_nw_proto=6,ct_tp_src=85' (talking to a socket that printed it)
    expected = bytes.fromhex(
        "0404004800000002" "0000232000000020" "0600000000000000"
        "0001002800000000" "0000001400000000000000000000ffff0a00000900000000"
        "0002000800550000" "0002000800030000")
    msg = ofmsgs.ct_flush(pipeline.CtFlush("s1", 3, 6, "10.0.0.9", 85))
    msg.datapath = FakeDatapath()
    msg.set_xid(2)
    msg.serialize()
    assert bytes(msg.buf) == expected


def test_metered_flow_and_meter_mod_encode():
    flow = pipeline.Flow("s1", 1, 500, {"eth_type": 0x0800, "in_port": 3},
                         (("output", "controller"),), meter=3)
    back = round_trip(ofmsgs.flow_mod(flow))
    meter, actions = back.instructions
    assert meter.meter_id == 3 and actions.actions[0].port == ofp.OFPP_CONTROLLER
    msg = ofmsgs.meter_mod(pipeline.MeterMod("s1", 3, "add", 250, 250))
    msg.datapath = FakeDatapath()
    msg.serialize()
    command, flags, meter_id = struct.unpack_from("!HHI", msg.buf, 8)
    band_type, _len, rate, burst = struct.unpack_from("!HHII", msg.buf, 16)
    assert (command, meter_id, rate, burst) == (ofp.OFPMC_ADD, 3, 250, 250)
    assert flags == ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS
    assert band_type == ofp.OFPMBT_DROP
    delete = ofmsgs.meter_mod(pipeline.MeterMod("s1", "all", "delete", 0, 0))
    assert delete.meter_id == ofp.OFPM_ALL and delete.bands == []


def test_conntrack_match_and_plain_nat_encode():
    flow = pipeline.Flow("s1", 1, 500, {"eth_type": 0x0800, "ct_state": (0x21, 0x21)},
                         (pipeline.ct_action(0, pipeline.T_CT),))
    back = round_trip(ofmsgs.flow_mod(flow))
    assert back.match["ct_state"] == (0x21, 0x21)
    (ct,) = back.instructions[0].actions
    assert ct.flags == 0 and ct.recirc_table == pipeline.T_CT and ct.actions[0].flags == 0


def test_packet_out_from_controller_with_data():
    data = packets.arp(2, "02:00:0a:00:00:64", "10.0.0.100", "00:00:00:00:00:01", "10.0.0.1")
    out = ofmsgs.packet_out(pipeline.PacketOut("s1", None, (("output", 1),), data))
    assert out.in_port == ofp.OFPP_CONTROLLER and out.buffer_id == ofp.OFP_NO_BUFFER
    out.datapath = FakeDatapath()
    out.serialize()
    assert out.buf.endswith(data)


def test_output_to_controller_sends_whole_packets():
    action = ofmsgs.action(("output", "controller"))
    assert action.port == ofp.OFPP_CONTROLLER and action.max_len == ofp.OFPCML_NO_BUFFER


def test_unknown_action_and_decision_are_rejected():
    with pytest.raises(ValueError, match="unknown kind 'meter'"):
        ofmsgs.action(("meter", 1))
    with pytest.raises(TypeError, match="expected Flow, GroupMod, PacketOut, CtFlush, MeterMod or StatsRequest"):
        ofmsgs.encode(object())


def test_every_lab_switch_of_a_fat_tree_gets_encodable_forwarding():
    cfg = config.parse_config({"topology": {"name": "fat_tree", "params": {"k": 4}},
                               "services": {}})
    core = Core(cfg, make_balancer)
    switches = graphs.switches(cfg.graph)
    assert len(switches) == 20  # k=4: 4 core, 8 aggregation, 8 edge switches
    host_macs = {cfg.graph.nodes[h]["mac"].lower() for h in graphs.hosts(cfg.graph)}
    assert len(host_macs) == 16
    for switch in switches:
        decisions = core.switch_up(switch)
        unicast = {d.match["eth_dst"] for d in decisions if isinstance(d, pipeline.Flow)
                   and d.table == pipeline.T_L2 and d.priority == pipeline.PRIORITY_UNICAST}
        assert unicast == host_macs, switch  # a way to every host
        for decision in decisions:
            msg = ofmsgs.encode(decision)
            if isinstance(decision, pipeline.Flow):
                back = round_trip(msg)
                assert (back.table_id, back.priority, back.cookie) == \
                    (decision.table, decision.priority, decision.cookie), (switch, decision)
                assert {k: back.match[k] for k in decision.match} == decision.match, decision
            else:
                # os-ken parses no MeterMod (a switch never sends one): check what was written
                assert isinstance(decision, pipeline.MeterMod), decision
                msg.datapath = FakeDatapath()
                msg.serialize()
                assert struct.unpack_from("!BBH", msg.buf) == \
                    (ofp.OFP_VERSION, ofp.OFPT_METER_MOD, len(msg.buf)), decision


@pytest.mark.parametrize("actions, in_port", [
    ((pipeline.ct_action(0, pipeline.T_POST, commit=True, nat_dst="10.0.0.7"),), 3),
    ((("set_field", "eth_dst", "00:00:00:00:00:06"), ("output", 6)), 1),
    ((("output", 2),), None),
])
def test_raw_packet_out_bytes_equal_os_ken_serialisation(actions, in_port):
    data = packets.tcp("00:00:00:00:00:01", "02:00:0a:00:00:64", "10.0.0.1", "10.0.0.100",
                       1234, 80, 1, 0, packets.TCP_SYN)
    decision = pipeline.PacketOut("s1", in_port, actions, data)
    msg = ofmsgs.packet_out(decision)
    msg.datapath = FakeDatapath()
    msg.set_xid(7)
    msg.serialize()
    assert ofmsgs.packet_out_bytes(decision, xid=7) == bytes(msg.buf)
    assert ofmsgs.packet_out_bytes(decision, xid=7) == bytes(msg.buf)  # from the cache
