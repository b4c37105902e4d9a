"""Draw a topology graph to an image file (networkx + matplotlib, headless)."""
import networkx as nx

from topologies import graphs

ROLE_COLOURS = {
    "client": "#4C72B0",
    "lb": "#DD8452",
    "backend": "#55A868",
    "host": "#8C8C8C",
    "switch": "#C44E52",
}
TIER_ORDER = ("core", "spine", "aggregation", "leaf", "edge", None)


def _layout(graph):
    """Deterministic layout with no solver: the lab's roles left to right (clients, switches,
    backends; the lb above its switch), otherwise switches layered by tier with hosts below."""
    hosts = graphs.hosts(graph)
    sws = graphs.switches(graph)
    roles = {graph.nodes[h]["role"] for h in hosts}
    pos = {}
    if roles & {"client", "backend", "lb"}:
        for i, name in enumerate(sws):
            pos[name] = (1 + i, 0.0)
        right = len(sws) + 1
        for role, x in (("client", 0), ("backend", right)):
            column = graphs.hosts(graph, role)
            for i, name in enumerate(column):
                pos[name] = (x, (len(column) - 1) / 2 - i)
        for name in graphs.hosts(graph, "lb") + graphs.hosts(graph, "host"):
            (sw,) = [n for n in graph.neighbors(name) if graph.nodes[n]["kind"] == "switch"]
            pos[name] = (pos[sw][0], 1.2)
        return pos
    if graph.graph["topology"] == "tree":
        lengths = nx.single_source_shortest_path_length(graph.subgraph(sws), "s1")
        layers = {}
        for name in sws:
            layers.setdefault(lengths[name], []).append(name)
    else:
        layers = {}
        for name in sws:
            tier = graph.nodes[name].get("tier")
            layers.setdefault(TIER_ORDER.index(tier) if tier in TIER_ORDER else 0,
                              []).append(name)
    depth = 0
    for depth, level in enumerate(sorted(layers)):
        names = layers[level]
        for i, name in enumerate(names):
            pos[name] = ((i + 0.5) / len(names), -depth)
    for i, name in enumerate(hosts):
        pos[name] = ((i + 0.5) / len(hosts), -(depth + 1))
    return pos


def draw(graph, path, title=None, dpi=150):
    """Draw ``graph`` to ``path`` (PNG, SVG or PDF by extension).

    Roles are coloured (legend included); shaped links are labelled with their rate, delay and
    loss. Large graphs drop node labels to stay readable.

    Args:
        graph (networkx.Graph): a topology from ``topologies.graphs``.
        path (str): output file.
        title (str|None): figure title (default: the topology and its parameters).
        dpi (int): resolution for raster formats.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = graph.number_of_nodes()
    size = min(4 + n * 0.18, 18)
    fig, ax = plt.subplots(figsize=(size, size * 0.62))
    pos = _layout(graph)
    shapes = {"switch": "s", "host": "o"}
    for kind, marker in shapes.items():
        nodes = [v for v in graph.nodes if graph.nodes[v]["kind"] == kind]
        nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_shape=marker, ax=ax,
                               node_color=[ROLE_COLOURS[graph.nodes[v]["role"]] for v in nodes],
                               node_size=520 if n <= 40 else 160, edgecolors="black",
                               linewidths=0.8)
    nx.draw_networkx_edges(graph, pos, ax=ax, width=1.0, edge_color="#555555")
    if n <= 60:
        nx.draw_networkx_labels(graph, pos, labels={v: v for v in graph.nodes}, ax=ax,
                                font_size=7)
        ys = [y for _, y in pos.values()]
        offset = (max(ys) - min(ys) or 1.0) * 0.07
        ip_pos = {v: (x, y - offset) for v, (x, y) in pos.items()}
        nx.draw_networkx_labels(graph, ip_pos, ax=ax, font_size=6, font_color="#333333",
                                labels={v: graph.nodes[v]["ip"] for v in graphs.hosts(graph)})
    edge_labels = {}
    for a, b, data in graph.edges(data=True):
        parts = []
        if data.get("bw") is not None:
            parts.append(f"{data['bw']:g} Mbit/s")
        if data.get("delay"):
            parts.append(data["delay"])
        if data.get("loss"):
            parts.append(f"{data['loss']:g}% loss")
        if parts:
            edge_labels[(a, b)] = ", ".join(parts)
    if edge_labels:
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=edge_labels, ax=ax, font_size=7)
    used = sorted({graph.nodes[v]["role"] for v in graph.nodes}, key=list(ROLE_COLOURS).index)
    handles = [Line2D([0], [0], marker="s" if r == "switch" else "o", color="w",
                      markerfacecolor=ROLE_COLOURS[r], markeredgecolor="black", markersize=9,
                      label=r) for r in used]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=True)
    if title is None:
        params = {k: v for k, v in graph.graph["params"].items() if v is not None}
        title = f"{graph.graph['topology']} " + " ".join(f"{k}={v}" for k, v in params.items())
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
