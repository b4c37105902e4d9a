"""Topology generators: counts, roles, determinism and parameter errors (no root)."""
import math

import networkx as nx
import pytest

from topologies import forwarding, graphs


def counts(graph):
    return (len(graphs.switches(graph)), len(graphs.hosts(graph)), graph.number_of_edges())


@pytest.mark.parametrize("name, params, expected", [
    ("single", dict(n=5), (1, 5, 5)),
    ("linear", dict(n=3), (3, 3, 5)),
    ("linear", dict(n=3, hosts_per_switch=2), (3, 6, 8)),
    ("tree", dict(depth=2, fanout=3), (4, 9, 12)),
    ("tree", dict(depth=2, fanout=16), (17, 256, 272)),
    ("fat_tree", dict(k=4), (20, 16, 48)),
    ("fat_tree", dict(k=6), (45, 54, 162)),
    ("leaf_spine", dict(spines=2, leaves=4, hosts_per_leaf=4), (6, 16, 24)),
    ("dumbbell", dict(hosts_per_side=3, bottleneck_bw=10), (2, 6, 7)),
    ("lb_lab", dict(), (1, 9, 9)),
    ("lb_lab", dict(clients=2, backends=3, switches=3), (3, 6, 8)),
])
def test_counts(name, params, expected):
    assert counts(graphs.build(name, params)) == expected


def test_lb_lab_roles_and_addresses():
    g = graphs.lb_lab(clients=4, backends=4)
    assert graphs.hosts(g, "client") == ["h1", "h2", "h3", "h4"]
    assert graphs.hosts(g, "lb") == ["h5"]
    assert graphs.hosts(g, "backend") == ["h6", "h7", "h8", "h9"]
    assert g.nodes["h6"]["ip"] == "10.0.0.6"
    assert g.nodes["h6"]["mac"] == "00:00:00:00:00:06"
    assert g.nodes["s1"]["dpid"] == "0000000000000001"
    assert g.nodes["s1"]["role"] == "switch"


def test_lb_lab_chain_places_roles():
    g = graphs.lb_lab(clients=2, backends=2, switches=3)
    assert set(g.neighbors("h1")) == {"s1"}
    assert set(g.neighbors("h3")) == {"s2"}  # lb on the middle switch
    assert set(g.neighbors("h5")) == {"s3"}


def test_dumbbell_bottleneck_and_roles():
    g = graphs.dumbbell(hosts_per_side=2, bottleneck_bw=20, bw=100)
    assert g.edges["s1", "s2"]["bw"] == 20.0
    assert g.edges["h1", "s1"]["bw"] == 100.0
    assert graphs.hosts(g, "client") == ["h1", "h2"]
    assert graphs.hosts(g, "backend") == ["h3", "h4"]


def test_ports_are_unique_per_node_and_hosts_use_eth0():
    g = graphs.fat_tree(k=4)
    for node in g.nodes:
        ports = [g.edges[node, n]["ports"][node] for n in g.neighbors(node)]
        assert len(ports) == len(set(ports))
        if g.nodes[node]["kind"] == "host":
            assert ports == [0]
        else:
            assert min(ports) == 1


@pytest.mark.parametrize("name", list(graphs.GENERATORS))
def test_deterministic(name):
    a, b = graphs.build(name, {}), graphs.build(name, {})
    assert nx.node_link_data(a, edges="links") == nx.node_link_data(b, edges="links")


def test_tree_names_match_mininet_treetopo():
    # mininet.topolib.TreeTopo numbers switches in pre-order: s1 root, s2 first child...
    g = graphs.tree(depth=2, fanout=2)
    assert set(g.neighbors("s1")) == {"s2", "s3"}
    assert set(g.neighbors("s2")) == {"s1", "h1", "h2"}


def test_loops_detected():
    assert graphs.has_loops(graphs.fat_tree(k=4))
    assert graphs.has_loops(graphs.leaf_spine(spines=2, leaves=2, hosts_per_leaf=1))
    assert not graphs.has_loops(graphs.tree(depth=3, fanout=2))
    assert not graphs.has_loops(graphs.leaf_spine(spines=1, leaves=3, hosts_per_leaf=1))


@pytest.mark.parametrize("name, params, message", [
    ("fat_tree", dict(k=3), "fat_tree: parameter 'k' must be even, got 3"),
    ("fat_tree", dict(k=0), "fat_tree: parameter 'k' must be an integer >= 2, got 0"),
    ("single", dict(n=0), "single: parameter 'n' must be an integer >= 1, got 0"),
    ("single", dict(n="4"), "single: parameter 'n' must be an integer >= 1, got '4' (str)"),
    ("lb_lab", dict(backends=0), "lb_lab: parameter 'backends' must be an integer >= 1, got 0"),
    ("single", dict(bw=-1), "single: parameter 'bw' must be a rate in Mbit/s > 0, got -1"),
    ("single", dict(loss=101), "single: parameter 'loss' must be a percentage in 0..100, got 101"),
    ("single", dict(delay="fast"), "single: parameter 'delay': a delay must look like"),
    ("single", dict(max_queue=0), "single: parameter 'max_queue' must be an integer >= 1, got 0"),
    ("dumbbell", dict(bottleneck_bw=0),
     "dumbbell: parameter 'bottleneck_bw' must be a rate in Mbit/s > 0, got 0"),
    ("leaf_spine", dict(spines=0), "leaf_spine: parameter 'spines' must be an integer >= 1"),
    ("tree", dict(fanout=True), "tree: parameter 'fanout' must be an integer >= 1, got True"),
    ("single", dict(hosts=3), "single: unknown parameter 'hosts'; expected one of n, bw"),
    ("torus", dict(), "unknown topology 'torus'; expected one of single, linear"),
])
def test_invalid_parameters(name, params, message):
    with pytest.raises(graphs.TopologyError) as info:
        graphs.build(name, params)
    assert message in str(info.value)


def test_delay_normalised():
    g = graphs.single(n=1, delay="0.5s")
    assert g.edges["h1", "s1"]["delay"] == "500ms"
    assert graphs.parse_delay_ms("200us") == pytest.approx(0.2)


def test_summary():
    info = graphs.summary(graphs.lb_lab(bw=100))
    assert info["switches"] == 1 and info["hosts"] == 9 and info["links"] == 9
    assert info["roles"]["lb"] == ["h5"]
    assert info["link_features"] == ["bw"]


@pytest.mark.parametrize("name, params", [
    ("fat_tree", dict(k=4)), ("leaf_spine", dict()), ("tree", dict(depth=3, fanout=2)),
    ("linear", dict(n=5)), ("lb_lab", dict(switches=3)),
])
def test_forwarding_reaches_every_host_on_shortest_paths(name, params):
    g = graphs.build(name, params)
    hosts = graphs.hosts(g)
    for src in hosts[:4]:
        for dst in hosts:
            if src == dst:
                continue
            hops = forwarding.shortest_path(g, src, dst)
            assert len(hops) == nx.shortest_path_length(g, src, dst) - 1


def test_flood_tree_reaches_every_host_once():
    g = graphs.fat_tree(k=4)
    flood = forwarding.flood_ports(g)
    loc = forwarding.host_location(g)
    # simulate a broadcast from h1 along the flood rules
    switch, port = loc["h1"]
    reached, frontier, visits = [], [(switch, port)], 0
    while frontier:
        sw, in_port = frontier.pop()
        visits += 1
        assert visits < 500, "broadcast loops"
        for out in flood[sw][in_port]:
            neigh = forwarding._neighbour_on_port(g, sw, out)
            if g.nodes[neigh]["kind"] == "host":
                reached.append(neigh)
            else:
                frontier.append((neigh, g.edges[sw, neigh]["ports"][neigh]))
    assert sorted(reached, key=graphs._node_key) == graphs.hosts(g)[1:]


def test_ovs_flow_lines():
    flows = forwarding.ovs_flows(graphs.single(n=2))
    assert "priority=100,dl_dst=00:00:00:00:00:01,actions=output:1" in flows["s1"]
    assert ("priority=90,in_port=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:2"
            in flows["s1"])


@pytest.mark.parametrize("name, params, blamed, limit", [
    ("lb_lab", dict(clients=10 ** 9), "clients", "MAX_HOSTS_PER_SERVER"),
    ("lb_lab", dict(switches=1000), "switches", "MAX_SWITCHES_PER_SERVER"),
    ("fat_tree", dict(k=1000), "k", "MAX_HOSTS_PER_SERVER"),
    ("fat_tree", dict(k=2 ** 4000), "k", "MAX_HOSTS_PER_SERVER"),
    ("tree", dict(depth=10 ** 12), "depth", "MAX_SWITCHES_PER_SERVER"),
    ("tree", dict(depth=10 ** 12, fanout=1), "depth", "MAX_SWITCHES_PER_SERVER"),
    ("tree", dict(depth=2, fanout=10 ** 6), "fanout", "MAX_HOSTS_PER_SERVER"),
    ("leaf_spine", dict(spines=100, leaves=100, hosts_per_leaf=1), "spines",
     "MAX_LINKS_PER_SERVER"),
    ("linear", dict(n=10 ** 5), "n", "MAX_HOSTS_PER_SERVER"),
    ("single", dict(n=10 ** 9), "n", "MAX_HOSTS_PER_SERVER"),
    ("dumbbell", dict(hosts_per_side=10 ** 6), "hosts_per_side", "MAX_HOSTS_PER_SERVER"),
])
def test_sizes_beyond_one_server_are_refused_before_anything_is_built(name, params, blamed,
                                                                       limit):
    with pytest.raises(graphs.TopologyError) as info:
        graphs.build(name, params)
    assert info.value.param == blamed
    assert f"parameter '{blamed}' is too large" in str(info.value)
    assert f"one server builds at most {getattr(graphs, limit)}" in str(info.value)
    assert f"(topologies.graphs.{limit})" in str(info.value)


def test_the_largest_topologies_one_server_builds():
    assert counts(graphs.tree(depth=2, fanout=32)) == (33, 1024, 1056)
    assert counts(graphs.fat_tree(k=14)) == (245, 686, 2058)
    assert counts(graphs.lb_lab(clients=1000, backends=23)) == (1, 1024, 1024)
    with pytest.raises(graphs.TopologyError):
        graphs.lb_lab(clients=1000, backends=24)


@pytest.mark.parametrize("params, message", [
    (dict(bw=float("inf")), "parameter 'bw' must be at most 1000 Mbit/s (Mininet ignores"),
    (dict(bw=float("nan")), "parameter 'bw' must be a rate in Mbit/s > 0, got nan"),
    (dict(bw=1001), "parameter 'bw' must be at most 1000 Mbit/s"),
    (dict(delay=float("inf")), "parameter 'delay': a delay must be 0..60000 ms"),
    (dict(delay=float("nan")), "parameter 'delay': a delay must be 0..60000 ms"),
    (dict(delay="9" * 400 + "ms"), "parameter 'delay': a delay must be 0..60000 ms"),
    (dict(delay="61s"), "parameter 'delay': a delay must be 0..60000 ms"),
    (dict(delay=10 ** 30), "got a 100-bit integer"),
    (dict(loss=float("nan")), "parameter 'loss' must be a percentage in 0..100, got nan"),
    (dict(max_queue=2 ** 40), "parameter 'max_queue' must be at most 4294967295 packets"),
])
def test_link_parameters_are_finite_and_within_what_mininet_and_tc_take(params, message):
    with pytest.raises(graphs.TopologyError) as info:
        graphs.build("single", params)
    assert message in str(info.value)
    assert info.value.param == next(iter(params))
    assert graphs.single(n=1, bw=1000, delay="60s").edges["h1", "s1"]["delay"] == "60000ms"


def test_topo_command_refuses_a_huge_topology_quickly(capsys):
    from experiments import topo_cmd
    from lblab_core.errors import UsageError
    with pytest.raises(UsageError, match="MAX_SWITCHES_PER_SERVER"):
        topo_cmd.main(["info", "tree", "-p", "depth=1000000000000"])
    with pytest.raises(UsageError, match="MAX_HOSTS_PER_SERVER"):
        topo_cmd.main(["draw", "fat_tree", "-p", "k=1000", "-o", "x.png"])
    assert topo_cmd.main(["list"]) == 0
    assert "one server builds at most 1024 hosts, 256 switches and 4096 links" in \
        capsys.readouterr().out


def test_draw_colours_switches_by_layer_and_hosts_by_role():
    from topologies import draw
    styles = draw.node_styles(graphs.build("fat_tree", {"k": 4}))
    assert {styles[s] for s in ("s1", "s2", "s3", "s4")} == {(draw.TIER_COLOURS["core"],
                                                               "core switch")}
    assert styles["s5"] == (draw.TIER_COLOURS["aggregation"], "aggregation switch")
    assert styles["s7"] == (draw.TIER_COLOURS["edge"], "edge switch")
    assert len({styles[s][0] for s in ("s1", "s5", "s7", "h1")}) == 4
    spine = draw.node_styles(graphs.build("leaf_spine", {}))
    assert (spine["s1"][1], spine["s3"][1]) == ("spine switch", "leaf switch")
    flat = draw.node_styles(graphs.build("dumbbell", {}))  # one tier: the role colour
    assert flat["s1"] == flat["s2"] == (draw.ROLE_COLOURS["switch"], "switch")
    assert (flat["h1"][1], flat["h3"][1]) == ("client", "backend")


def _drawn(name, params, check):
    import matplotlib.pyplot as plt
    from topologies import draw
    fig = draw.render(graphs.build(name, params))
    try:
        fig.canvas.draw()
        check(fig, fig.canvas.get_renderer())
    finally:
        plt.close(fig)


def test_draw_keeps_a_long_title_and_the_legend_inside_the_figure():
    def check(fig, renderer):
        ax = fig.axes[0]
        title = ax.title.get_window_extent(renderer)
        assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1, (title, fig.bbox)
        assert title.y1 <= fig.bbox.y1, (title, fig.bbox)
        tight = fig.get_tightbbox(renderer)  # inches: every artist, title and legend included
        full = fig.bbox_inches
        assert full.x0 - 0.01 <= tight.x0 and tight.x1 <= full.x1 + 0.01, (tight, full)
        assert full.y0 - 0.01 <= tight.y0 and tight.y1 <= full.y1 + 0.01, (tight, full)
        assert "bottleneck_max_queue=100" in ax.get_title()
    _drawn("dumbbell", {"delay": "1ms", "bottleneck_delay": "5ms", "bottleneck_loss": 1,
                        "bottleneck_max_queue": 100}, check)


@pytest.mark.parametrize("name", ["leaf_spine", "dumbbell", "fat_tree", "lb_lab"])
def test_draw_puts_ip_labels_below_their_host_clear_of_nodes_and_each_other(name):
    graph = graphs.build(name, {})

    def check(fig, renderer):
        ax = fig.axes[0]
        ips = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts
               if t.get_text().startswith("10.0.0.")}
        assert len(ips) == len(graphs.hosts(graph))
        boxes = list(ips.values())
        for i, box in enumerate(boxes):
            for other in boxes[i + 1:]:
                assert not box.overlaps(other), (box, other)
        # each label lies below its host's marker: its top under the marker's bottom
        from topologies import draw
        (area_pt2,) = {size for c in ax.collections if hasattr(c, "get_sizes")
                       for size in c.get_sizes()}
        radius = math.sqrt(area_pt2) / 2 * fig.dpi / 72
        for h in graphs.hosts(graph):
            x, y = ax.transData.transform(draw._layout(graph)[h])
            box = ips[graph.nodes[h]["ip"]]
            assert box.y1 <= y - radius + 0.5, (h, box, y, radius)
            assert box.x0 <= x <= box.x1, (h, box, x)
    _drawn(name, {}, check)
