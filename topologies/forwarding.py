"""Pure loop-free L2 forwarding computed from a topology graph (shortest paths, one flood tree).

Used twice: by the runtime to program standalone multi-path topologies (fat-tree, leaf-spine)
without a controller, and by the controller app to install forwarding for everything that is not a
virtual IP. A shortest-path tree per destination host is loop-free by construction, so no STP is
needed; broadcast and multicast follow one spanning tree of the switches.
"""
import networkx as nx

from topologies import graphs


def host_location(graph):
    """Return where each host is attached.

    Args:
        graph (networkx.Graph): a topology from ``topologies.graphs``.
    Returns:
        dict: ``{host: (switch, switch_port)}``.
    """
    location = {}
    for host in graphs.hosts(graph):
        (switch,) = [n for n in graph.neighbors(host) if graph.nodes[n]["kind"] == "switch"]
        location[host] = (switch, graph.edges[host, switch]["ports"][switch])
    return location


def _switch_graph(graph):
    return graph.subgraph(graphs.switches(graph))


def _sorted_bfs_parents(core, root):
    """BFS parents from ``root`` visiting neighbours in index order: deterministic trees."""
    order = sorted(core.nodes, key=graphs._node_key)
    rank = {n: i for i, n in enumerate(order)}
    parents = {root: None}
    frontier = [root]
    while frontier:
        nxt = []
        for node in frontier:
            for neigh in sorted(core.neighbors(node), key=rank.get):
                if neigh not in parents:
                    parents[neigh] = node
                    nxt.append(neigh)
        frontier = nxt
    return parents


def unicast_ports(graph):
    """Return, per switch, the output port towards every host's MAC.

    Args:
        graph (networkx.Graph): a topology.
    Returns:
        dict: ``{switch: {host_mac: out_port}}`` along a shortest-path tree rooted at each host's
        switch (ties broken by switch index, so the result is deterministic).
    """
    core = _switch_graph(graph)
    table = {sw: {} for sw in core.nodes}
    for host, (edge_switch, port) in host_location(graph).items():
        mac = graph.nodes[host]["mac"]
        table[edge_switch][mac] = port
        for switch, parent in _sorted_bfs_parents(core, edge_switch).items():
            if parent is not None:
                table[switch][mac] = graph.edges[switch, parent]["ports"][switch]
    return table


def spanning_tree_edges(graph):
    """Return the switch-to-switch edges of the flood tree (BFS from the lowest-numbered switch
    of each connected component)."""
    core = _switch_graph(graph)
    edges = set()
    seen = set()
    for root in graphs.switches(graph):
        if root in seen:
            continue
        parents = _sorted_bfs_parents(core, root)
        seen.update(parents)
        edges.update(frozenset((n, p)) for n, p in parents.items() if p is not None)
    return edges


def flood_ports(graph):
    """Return, per switch and input port, where a broadcast/multicast frame is copied.

    Only ports on the flood tree (and host ports) take part, so a frame reaches every host exactly
    once and never loops. Input ports not on the tree flood nowhere.

    Returns:
        dict: ``{switch: {in_port: [out_ports]}}`` with out ports sorted.
    """
    tree = spanning_tree_edges(graph)
    result = {}
    for switch in graphs.switches(graph):
        member = []
        for neigh in graph.neighbors(switch):
            if graph.nodes[neigh]["kind"] == "host" or frozenset((switch, neigh)) in tree:
                member.append(graph.edges[switch, neigh]["ports"][switch])
        member.sort()
        result[switch] = {port: [p for p in member if p != port] for port in member}
    return result


def shortest_path(graph, src_host, dst_host):
    """Return the hops of the path a frame from ``src_host`` to ``dst_host`` takes.

    Returns:
        list[tuple]: ``[(switch, in_port, out_port), …]`` following ``unicast_ports``.
    Raises:
        networkx.NetworkXNoPath: the hosts are not connected.
    """
    table = unicast_ports(graph)
    mac = graph.nodes[dst_host]["mac"]
    switch, in_port = host_location(graph)[src_host]
    hops = []
    for _ in range(graph.number_of_nodes()):
        out_port = table[switch].get(mac)
        if out_port is None:
            raise nx.NetworkXNoPath(f"no path from {src_host} to {dst_host}")
        hops.append((switch, in_port, out_port))
        neigh = _neighbour_on_port(graph, switch, out_port)
        if graph.nodes[neigh]["kind"] == "host":
            return hops
        in_port = graph.edges[switch, neigh]["ports"][neigh]
        switch = neigh
    raise AssertionError("forwarding loop")  # unreachable: trees have no cycles


def _neighbour_on_port(graph, switch, port):
    for neigh in graph.neighbors(switch):
        if graph.edges[switch, neigh]["ports"][switch] == port:
            return neigh
    raise KeyError(f"{switch} has no port {port}")


def ovs_flows(graph, priority_unicast=100, priority_flood=90):
    """Return ovs-ofctl flow lines that program static forwarding on every switch.

    Args:
        graph (networkx.Graph): a topology.
        priority_unicast (int): priority of the per-destination-MAC rules.
        priority_flood (int): priority of the broadcast/multicast rules.
    Returns:
        dict: ``{switch: [flow line, …]}`` for ``ovs-ofctl add-flows``; anything unmatched is
        dropped (table-miss with fail_mode=secure).
    """
    unicast = unicast_ports(graph)
    flood = flood_ports(graph)
    flows = {}
    for switch in graphs.switches(graph):
        lines = [f"priority={priority_unicast},dl_dst={mac},actions=output:{port}"
                 for mac, port in sorted(unicast[switch].items())]
        for in_port, outs in sorted(flood[switch].items()):
            actions = ",".join(f"output:{p}" for p in outs) or "drop"
            lines.append(f"priority={priority_flood},in_port={in_port},"
                         f"dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions={actions}")
        flows[switch] = lines
    return flows
