"""The batched build's plan (topologies.network.link_plan): pure, no root, no Mininet."""
import re

import networkx as nx
import pytest

from topologies import graphs
from topologies.network import host_batch_command, link_plan, root_interfaces


def _pids(graph):
    return {h: 1000 + i for i, h in enumerate(graphs.hosts(graph))}


@pytest.mark.parametrize("name,params", [("tree", {"depth": 2, "fanout": 3}),
                                         ("lb_lab", {"clients": 2, "backends": 3}),
                                         ("fat_tree", {"k": 4}), ("dumbbell", {})])
def test_one_pair_per_edge_and_every_interface_configured(name, params):
    graph = graphs.build(name, params)
    pids = _pids(graph)
    plan = link_plan(graph, pids)
    adds = [line for line in plan.root if line.startswith("link add ")]
    assert len(adds) == graph.number_of_edges() == len(plan.links)
    made = set()
    for line in adds:
        made.update(re.findall(r"name (\S+)", line))
    expected = {f"{n}-eth{d['ports'][n]}" for a, b, d in graph.edges(data=True) for n in (a, b)}
    assert made == expected
    # every root-namespace interface lblab's registry expects is made and set up there
    ups = {line.split()[2] for line in plan.root if line.endswith(" up")}
    assert set(root_interfaces(graph)) - set(graphs.switches(graph)) == ups
    for host in graphs.hosts(graph):
        data = graph.nodes[host]
        lines = plan.hosts[host]
        assert lines[0] == f"addr add {data['ip']}/{data['prefixlen']} brd + dev " \
                           f"{host}-eth{min(p for p in _host_ports(graph, host))}"
        assert lines[-1] == "link set lo up"
        assert {f"link set {host}-eth{p} up" for p in _host_ports(graph, host)} <= set(lines)


def _host_ports(graph, host):
    return [graph.edges[host, nb]["ports"][host] for nb in graph.neighbors(host)]


def test_host_ends_go_to_their_namespace_with_the_host_mac():
    graph = graphs.tree(depth=1, fanout=2)
    pids = _pids(graph)
    plan = link_plan(graph, pids)
    for host in graphs.hosts(graph):
        line = next(x for x in plan.root if f"peer name {host}-eth" in x)
        assert line.endswith(f"address {graph.nodes[host]['mac']} netns {pids[host]}")
    for a, b, _pa, _pb, mac_a, mac_b in plan.links:
        assert graph.nodes[a]["kind"] == "switch"  # the root-namespace end first
        assert mac_a is None and mac_b == graph.nodes[b]["mac"]


def test_a_link_between_two_hosts_moves_both_ends():
    graph = nx.Graph()
    for i, name in enumerate(("h1", "h2")):
        graph.add_node(name, kind="host", index=i + 1, ip=f"10.0.0.{i + 1}", prefixlen=8,
                       mac=f"00:00:00:00:00:0{i + 1}")
    graph.add_edge("h1", "h2", ports={"h1": 0, "h2": 0})
    plan = link_plan(graph, {"h1": 11, "h2": 12})
    assert plan.root == ["link add name h1-eth0 address 00:00:00:00:00:01 type veth peer name "
                         "h2-eth0 address 00:00:00:00:00:02 netns 12",
                         "link set h1-eth0 netns 11"]
    assert plan.hosts["h1"] == ["addr add 10.0.0.1/8 brd + dev h1-eth0", "link set h1-eth0 up",
                                "link set lo up"]


def test_host_command_is_one_line_of_ip_batch():
    cmd = host_batch_command(["addr add 10.0.0.1/8 brd + dev h1-eth0", "link set lo up"])
    assert "\n" not in cmd
    assert cmd == "ip -batch - <<< $'addr add 10.0.0.1/8 brd + dev h1-eth0\\nlink set lo up'"
