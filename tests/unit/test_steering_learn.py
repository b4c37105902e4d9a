"""``learn: true`` (l2, l4): a select group whose bucket learns each connection's flow in the
switch (Open vSwitch's learn action) — no packet-in, no conntrack. The config's rules, the
pipeline on a fake switch (first packet, later packets, replies, drain, a backend down) and
the learn action's encoding as Open vSwitch itself reads it."""
import shutil
import subprocess

import pytest

from controllers import config, ofmsgs, packets, pipeline
from tests.unit.test_controller_decisions import BACKENDS, VIP, lab, make, served_by
from tests.unit.test_controller_ofmsgs import FakeDatapath


def learned(net, switch="s1"):
    return [f for f in net.switches[switch].flows
            if pipeline.cookie_parts(f.cookie)[0] == pipeline.COOKIE_LEARNED]


# -- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["l2", "l4"])
@pytest.mark.parametrize("algorithm", config.LEARN_ALGORITHMS)
def test_learn_is_taken_by_l2_and_l4_with_the_hashable_algorithms(mode, algorithm):
    core, _net, cfg = make(mode, algorithm, learn=True)
    assert cfg.services[0].learn is True
    assert core.services_view()["web"]["data_path"] == "select-group+learned-flows"


@pytest.mark.parametrize("mode, algorithm", [("l3", "round_robin"), ("group", None),
                                             ("proactive", None),
                                             ("l4", "least_connections"), ("l2", "ip_hash")])
def test_learn_elsewhere_is_one_line_naming_mode_and_algorithm(mode, algorithm):
    with pytest.raises(config.ConfigError) as info:
        make(mode, algorithm, learn=True)
    [error] = info.value.errors
    assert error.startswith("services.web.learn: true: expected mode l2 or l4 and algorithm "
                            "round_robin, weighted_round_robin, random, five_tuple_hash (got "
                            f"mode {mode}, algorithm ")


# -- pipeline ----------------------------------------------------------------------------------

def test_the_vip_goes_through_the_learned_flows_and_the_group_with_no_controller_or_conntrack():
    core, net, _cfg = make("l4", "round_robin", learn=True)
    flows = net.switches["s1"].flows
    vip = [f for f in flows if f.match.get("ipv4_dst") == VIP and f.table != pipeline.T_PICK]
    assert {(f.table, f.actions, f.goto) for f in vip} == {
        (pipeline.T_CLASSIFY, (("resubmit", pipeline.T_LEARN),), pipeline.T_L2),
        (pipeline.T_LEARN, (("group", pipeline.group_id(1)),), None)}
    assert not [f for f in flows if ("output", "controller") in f.actions
                and f.match.get("ipv4_dst") == VIP]
    assert not [f for f in flows if any(a[0] == "ct" for a in f.actions)]
    buckets = net.switches["s1"].groups[pipeline.group_id(1)]
    assert buckets == tuple((1, (("set_field", "reg0", bid), ("resubmit", pipeline.T_PICK)))
                            for bid in (1, 2, 3, 4))
    [pick] = [f for f in flows if f.table == pipeline.T_PICK and f.match.get("reg0") == 1]
    learn = pick.actions[0][1]
    assert pick.actions[1:] == (("set_field", "eth_dst", "00:00:00:00:00:06"),
                                ("set_field", "ipv4_dst", "10.0.0.6"),
                                ("resubmit", pipeline.T_L2))
    assert learn["table"] == pipeline.T_LEARN
    assert learn["copy"] == ("ipv4_src", "tcp_src", "ipv4_dst", "tcp_dst")
    assert learn["load"] == (("eth_dst", "00:00:00:00:00:06"), ("ipv4_dst", "10.0.0.6"))
    assert (learn["idle_timeout"], learn["fin_idle_timeout"], learn["limit"]) == (
        5, pipeline.LEARN_FIN_IDLE_SEC, pipeline.LEARN_LIMIT)
    assert core.services[0].packet_ins == 0


def test_first_packet_learns_the_flow_and_the_connection_stays_with_no_controller():
    lab_ = lab("l4", "round_robin", learn=True)
    first = lab_.send("h1", lab_.tcp("h1", VIP, 40000))
    backend = served_by(first)
    assert first[0][1]["ipv4_dst"] == lab_.nodes[backend]["ip"]
    assert first[0][1]["eth_dst"] == lab_.nodes[backend]["mac"]
    [flow] = learned(lab_.net)
    assert flow.table == pipeline.T_LEARN and flow.priority == pipeline.PRIORITY_CONNECTION
    assert flow.match == {"eth_type": 0x0800, "ip_proto": 6, "ipv4_src": "10.0.0.1",
                          "tcp_src": 40000, "ipv4_dst": VIP, "tcp_dst": 80}
    bid = pipeline.cookie_parts(flow.cookie)[2]
    assert lab_.core.services[0].by_bid(bid).name == backend
    again = lab_.send("h1", lab_.tcp("h1", VIP, 40000, flags=packets.TCP_ACK))
    assert served_by(again) == backend
    assert len(learned(lab_.net)) == 1
    reply = lab_.tcp(backend, "10.0.0.1", 80, dport=40000, flags=0x12,
                     dst_mac="00:00:00:00:00:01")
    back = lab_.send(backend, reply)
    assert served_by(back) == "h1"
    assert (back[0][1]["ipv4_src"], back[0][1]["eth_src"]) == (VIP, lab_.svc.vmac)
    assert lab_.packet_outs == [] and lab_.core.services[0].packet_ins == 0


def test_l2_learns_the_backend_mac_only_and_leaves_the_vip():
    lab_ = lab("l2", "round_robin", learn=True)
    first = lab_.send("h1", lab_.tcp("h1", VIP, 40000))
    backend = served_by(first)
    assert first[0][1]["ipv4_dst"] == VIP
    assert first[0][1]["eth_dst"] == lab_.nodes[backend]["mac"]
    [flow] = learned(lab_.net)
    assert flow.actions == (("set_field", "eth_dst", lab_.nodes[backend]["mac"]),)


def test_a_drained_backend_keeps_its_learned_connections_and_gets_no_new_one():
    lab_ = lab("l4", "round_robin", learn=True)
    backend = served_by(lab_.send("h1", lab_.tcp("h1", VIP, 8000)))
    lab_.net.apply(lab_.core.set_weight("web", backend, 0))
    assert served_by(lab_.send("h1", lab_.tcp("h1", VIP, 8000, flags=packets.TCP_ACK))) == backend
    new = {served_by(lab_.send(c, lab_.tcp(c, VIP, 9000 + i)))
           for i in range(8) for c in ("h1", "h2", "h3", "h4")}
    assert backend not in new and len(new) == len(BACKENDS) - 1


def test_a_backend_down_loses_its_learned_flows_so_its_clients_are_rehashed():
    core, net, _cfg = make("l4", "round_robin", learn=True,
                           health={"kind": "tcp", "interval": 1.0, "rise": 1, "fall": 1})
    b = core.services[0].backends["h6"]
    msgs = core._probe_result(core.services[0], b, False, 0.0)
    deletes = [m for m in msgs if isinstance(m, pipeline.Flow) and m.command == "delete"]
    assert {(m.cookie, m.cookie_mask) for m in deletes} == {
        (pipeline.cookie(pipeline.COOKIE_LEARNED, 1, b.bid), pipeline.COOKIE_BACKEND_MASK)}
    assert not [m for m in msgs if isinstance(m, pipeline.CtFlush)]
    [group] = [m for m in msgs if isinstance(m, pipeline.GroupMod)]
    assert "00:00:00:00:00:06" not in str(group.buckets)


def test_round_robin_has_equal_buckets_and_weighted_round_robin_the_weights():
    core, net, _cfg = make("l4", "round_robin", weights=(1, 1, 2, 4), learn=True)
    weights = lambda buckets: sorted(w for w, _ in buckets)  # noqa: E731
    assert weights(net.switches["s1"].groups[pipeline.group_id(1)]) == [1, 1, 1, 1]
    [group] = core.set_algorithm("web", "weighted_round_robin")
    assert weights(group.buckets) == [1, 1, 2, 4]
    with pytest.raises(Exception) as info:
        core.set_algorithm("web", "least_connections")
    assert "expected one of round_robin, weighted_round_robin, random, five_tuple_hash" \
        in str(info.value)


def test_the_learn_limit_stops_new_flows_but_not_the_packet():
    lab_ = lab("l4", "round_robin", weights=(1, 0, 0, 0), learn=True)
    switch = lab_.net.switches["s1"]
    switch.flows = [f._replace(actions=tuple(("learn", dict(a[1], limit=2)) if a[0] == "learn"
                                             else a for a in f.actions)) for f in switch.flows]
    for port in range(3):
        assert served_by(lab_.send("h1", lab_.tcp("h1", VIP, 7000 + port))) == "h6"
    assert len(learned(lab_.net)) == 2


# -- encoding ----------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
@pytest.mark.parametrize("mode", ["l2", "l4"])
def test_open_vswitch_reads_the_learn_flows_and_buckets_as_meant(mode):
    core, _net, _cfg = make(mode, "round_robin", learn=True)
    msgs = core.switch_up("s1")
    [group] = [m for m in msgs if isinstance(m, pipeline.GroupMod) and m.command == "add"]
    [pick] = [m for m in msgs if isinstance(m, pipeline.Flow) and m.table == pipeline.T_PICK
              and m.match["reg0"] == 1]

    def printed(msg):
        msg.datapath = FakeDatapath()
        msg.set_xid(1)
        msg.serialize()
        return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "ofp-print", msg.buf.hex()],
                              capture_output=True, text=True, check=True).stdout

    buckets = printed(ofmsgs.group_mod(group)).split("bucket=")[1:]
    assert len(buckets) == len(BACKENDS)
    assert f"actions=set_field:0x1->reg0,resubmit(,{pipeline.T_PICK})" in buckets[0]
    text = printed(ofmsgs.flow_mod(pick))
    cookie = pipeline.cookie(pipeline.COOKIE_LEARNED, 1, 1)
    assert "reg0=0x1" in text and f"table:{pipeline.T_PICK}" in text.replace("table_id", "table")
    assert (f"learn(table={pipeline.T_LEARN},idle_timeout=5,"
            f"fin_idle_timeout={pipeline.LEARN_FIN_IDLE_SEC},priority=600,cookie={cookie:#x},"
            f"limit={pipeline.LEARN_LIMIT},eth_type=0x800,nw_proto=6,NXM_OF_IP_SRC[],"
            f"NXM_OF_TCP_SRC[],NXM_OF_IP_DST[],NXM_OF_TCP_DST[],load:0x6->NXM_OF_ETH_DST[]"
            in text), text
    assert ("load:0xa000006->NXM_OF_IP_DST[]" in text) == (mode == "l4")
    assert "set_field:00:00:00:00:00:06->eth_dst" in text
    assert f"resubmit(,{pipeline.T_L2})" in text
