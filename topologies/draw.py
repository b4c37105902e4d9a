"""Draw a topology graph to an image file (networkx + matplotlib, headless)."""
import math
import textwrap

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
# Switch layers, coloured when a topology has more than one (fat_tree, tree, leaf_spine): the
# upper tier dark, the middle one the switch colour, the tier the hosts hang from light.
TIER_COLOURS = {
    "core": "#8172B3",
    "spine": "#8172B3",
    "aggregation": "#C44E52",
    "leaf": "#E5A3A5",
    "edge": "#E5A3A5",
}
TITLE_FONT_PT = 10
IP_FONT_PT = 6
IP_GAP_PT = 2.0  # between a host's circle and its IP label


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


def node_styles(graph):
    """Return each node's colour and legend entry: hosts by role, switches by layer.

    Switches are coloured by their tier (``TIER_COLOURS``) when the topology has more than one
    tier; otherwise they all take the ``switch`` role colour.

    Args:
        graph (networkx.Graph): a topology from ``topologies.graphs``.
    Returns:
        dict: node name -> ``(colour, legend label)``, e.g. ``("#8172B3", "core switch")``.
    """
    tiers = {graph.nodes[s].get("tier") for s in graphs.switches(graph)}
    layered = len(tiers) > 1 and tiers <= set(TIER_COLOURS)
    styles = {}
    for name, data in graph.nodes(data=True):
        if data["kind"] == "switch" and layered:
            styles[name] = (TIER_COLOURS[data["tier"]], f"{data['tier']} switch")
        else:
            styles[name] = (ROLE_COLOURS[data["role"]], data["role"])
    return styles


def default_title(graph):
    """Return the figure title: the topology and the parameters that are set."""
    params = {k: v for k, v in graph.graph["params"].items() if v is not None}
    return f"{graph.graph['topology']} " + " ".join(f"{k}={v}" for k, v in params.items())


def _wrap_title(title, width_in):
    # A long title (dumbbell with every bottleneck_* set) is wider than a small figure: wrap it
    # at the characters that fit, ~0.6 em each, instead of letting the figure's edge cut it.
    fits = max(20, int(width_in * 72 * 0.85 / (TITLE_FONT_PT * 0.6)))
    return "\n".join(textwrap.wrap(title, fits, break_on_hyphens=False)) or title


def _ip_rotation(pos, hosts, axes_width_pt):
    # Hosts in one row closer than an IP label is wide get vertical labels, so labels do not run
    # into each other (leaf_spine's 16 hosts in one row).
    rows = {}
    for h in hosts:
        rows.setdefault(pos[h][1], []).append(pos[h][0])
    xs = [x for x, _ in pos.values()]
    span = (max(xs) - min(xs)) or 1.0
    label_pt = IP_FONT_PT * 0.62 * len("10.0.0.100")
    for row in rows.values():
        row.sort()
        gaps = [b - a for a, b in zip(row, row[1:])]
        if gaps and min(gaps) / span * axes_width_pt < label_pt:
            return 90
    return 0


def render(graph, title=None):
    """Draw ``graph`` on a new matplotlib figure and return it (the caller saves and closes it).

    Args:
        graph (networkx.Graph): a topology from ``topologies.graphs``.
        title (str|None): figure title (default: ``default_title``).
    Returns:
        matplotlib.figure.Figure: the figure; its axes' texts include the IP labels.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    n = graph.number_of_nodes()
    size = min(4 + n * 0.18, 18)
    fig, ax = plt.subplots(figsize=(size, size * 0.62))
    pos = _layout(graph)
    styles = node_styles(graph)
    node_size = 520 if n <= 40 else 160  # marker area in pt^2
    shapes = {"switch": "s", "host": "o"}
    for kind, marker in shapes.items():
        nodes = [v for v in graph.nodes if graph.nodes[v]["kind"] == kind]
        nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_shape=marker, ax=ax,
                               node_color=[styles[v][0] for v in nodes],
                               node_size=node_size, edgecolors="black", linewidths=0.8)
    nx.draw_networkx_edges(graph, pos, ax=ax, width=1.0, edge_color="#555555")
    ax.margins(x=0.08, y=0.16)  # room for the outer nodes' markers and the IP labels
    if n <= 60:
        nx.draw_networkx_labels(graph, pos, labels={v: v for v in graph.nodes}, ax=ax,
                                font_size=7)
        # IP labels sit below the host's circle, offset in points (not data units), so they
        # clear the marker whatever the figure's size or the layout's spread.
        hosts = graphs.hosts(graph)
        rotation = _ip_rotation(pos, hosts, size * 72 * 0.75)
        below_pt = math.sqrt(node_size) / 2 + IP_GAP_PT
        for v in hosts:
            ax.annotate(graph.nodes[v]["ip"], xy=pos[v], xytext=(0, -below_pt),
                        textcoords="offset points", ha="center", va="top",
                        rotation=rotation, fontsize=IP_FONT_PT, color="#333333",
                        annotation_clip=False)
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
    order = list(ROLE_COLOURS) + [f"{t} switch" for t in TIER_ORDER if t]
    used = sorted(set(styles.values()), key=lambda style: order.index(style[1]))
    handles = [Line2D([0], [0], marker="s" if label.endswith("switch") else "o", color="w",
                      markerfacecolor=colour, markeredgecolor="black", markersize=9,
                      label=label) for colour, label in used]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=True)
    ax.set_title(_wrap_title(default_title(graph) if title is None else title, size),
                 fontsize=TITLE_FONT_PT)
    ax.axis("off")
    fig.tight_layout()
    return fig


def draw(graph, path, title=None, dpi=150):
    """Draw ``graph`` to ``path`` (PNG, SVG or PDF by extension).

    Hosts are coloured by role and switches by layer (legend included); hosts carry their IP
    below them; shaped links are labelled with their rate, delay and loss. Large graphs drop
    node labels to stay readable.

    Args:
        graph (networkx.Graph): a topology from ``topologies.graphs``.
        path (str): output file.
        title (str|None): figure title (default: the topology and its parameters).
        dpi (int): resolution for raster formats.
    Raises:
        OSError: the file cannot be written.
    """
    import matplotlib.pyplot as plt
    fig = render(graph, title)
    try:
        # "tight" grows the saved area to every artist: the title and the legend are never cut.
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)
