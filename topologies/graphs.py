"""Pure topology generators: networkx graphs of hosts and switches with roles and link parameters.

Every generator returns an undirected ``networkx.Graph`` with

* nodes named as Mininet names them (``h1``…``hN`` for hosts, ``s1``…``sN`` for switches), each
  with ``kind`` (``host`` | ``switch``) and ``role`` (``client`` | ``lb`` | ``backend`` | ``host``
  for hosts, ``switch`` for switches); hosts carry ``ip`` (``10.0.0.N``), ``prefixlen`` (8) and
  ``mac``; switches carry ``dpid`` (16 hex digits);
* edges carrying the link parameters ``bw`` (Mbit/s), ``delay`` (e.g. ``"5ms"``), ``loss``
  (percent), ``max_queue`` (packets) — each ``None`` when not asked for — and ``ports``, a dict
  ``{node: port number}`` giving both ends' OpenFlow port numbers (hosts use port 0 = ``eth0``);
* ``graph.graph`` holding ``topology`` (the generator's name) and ``params`` (its arguments).

Ports are numbered in the order links are added, so the same parameters give the same graph,
names, addresses and ports every time. No I/O, no Mininet: safe to import anywhere.
"""
import ipaddress
import math
import re

import networkx as nx

HOST_ROLES = ("client", "lb", "backend", "host")
ROLES = HOST_ROLES + ("switch",)
IP_BASE = ipaddress.IPv4Address("10.0.0.0")
PREFIX_LEN = 8
MAX_HOSTS = 2 ** (32 - PREFIX_LEN) - 2
LINK_PARAMS = ("bw", "delay", "loss", "max_queue")
_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$")

# What one server builds: one Mininet on one Open vSwitch. Every host is a shell in its own
# network namespace, every link a veth pair, every switch a bridge; a 256-host tree takes ~19 s
# to build and tear down here (bench/topo_build.py). A lab spread over several servers (a later
# issue) bounds each server's share by these. Generators check them before building anything.
MAX_HOSTS_PER_SERVER = 1024
MAX_SWITCHES_PER_SERVER = 256
MAX_LINKS_PER_SERVER = 4096
# Mininet's TCIntf ignores a bw above its bwParamMax (1000 Mbit/s) with only a log line.
MAX_BW_MBPS = 1000.0
# With a one-way delay above a minute no TCP handshake completes before Linux gives up on the
# SYN (tcp_syn_retries = 6: ~127 s); a larger delay is a unit mistake.
MAX_DELAY_MS = 60_000.0
# netem's queue limit is a 32-bit packet count (struct tc_netem_qopt.limit).
MAX_QUEUE_PACKETS = 2 ** 32 - 1
_SIZE_LIMITS = (("hosts", MAX_HOSTS_PER_SERVER, "MAX_HOSTS_PER_SERVER"),
                ("switches", MAX_SWITCHES_PER_SERVER, "MAX_SWITCHES_PER_SERVER"),
                ("links", MAX_LINKS_PER_SERVER, "MAX_LINKS_PER_SERVER"))


class TopologyError(ValueError):
    """A generator was given an impossible parameter; the message names it and its value.

    Args:
        message (str): the problem.
        param (str|None): the parameter to blame (for locating the error in a spec).
    """

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


def _shown(value):
    """repr() of a parameter value, short for huge integers (a 5000-digit repr would fail)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37] + "...")
    return repr(value)


def _require_int(topology, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(
            f"{topology}: parameter '{name}' must be an integer >= {minimum}, "
            f"got {_shown(value)} ({type(value).__name__})", name)
    if value < minimum:
        raise TopologyError(
            f"{topology}: parameter '{name}' must be an integer >= {minimum}, got {value}", name)
    return value


def check_size(topology, params, hosts, switches, links, at_least=False):
    """Refuse a topology larger than one server builds, before anything is built.

    Args:
        topology (str): generator name, for the message.
        params (dict): the size parameters and their values (the largest is blamed).
        hosts, switches, links (int): the counts the parameters make.
        at_least (bool): the counts are lower bounds (counting stopped once over a limit).
    Raises:
        TopologyError: a count is over its ``MAX_*_PER_SERVER``; the message names the limit.
    """
    for what, count in zip(("hosts", "switches", "links"), (hosts, switches, links)):
        _, limit, constant = next(x for x in _SIZE_LIMITS if x[0] == what)
        if count > limit:
            blame = max(params, key=lambda k: params[k])
            given = ", ".join(f"{k}={_shown(v)}" for k, v in params.items())
            amount = f"more than {limit}" if at_least or count.bit_length() > 64 else count
            raise TopologyError(
                f"{topology}: parameter '{blame}' is too large: {given} gives {amount} {what}; "
                f"one server builds at most {limit} {what} "
                f"(topologies.graphs.{constant})", blame)


def parse_delay_ms(value):
    """Return a link delay in milliseconds.

    Args:
        value (str|int|float|None): ``"5ms"``, ``"200us"``, ``"0.1s"`` or a number of ms.
    Returns:
        float|None: milliseconds, or None when no delay is asked for.
    Raises:
        ValueError: the value is not a delay in 0..MAX_DELAY_MS.
    """
    if value is None:
        return None
    delay_ms = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        delay_ms = float(value) if not isinstance(value, int) or value.bit_length() < 64 \
            else math.inf
    elif isinstance(value, str):
        match = _DELAY_RE.fullmatch(value)
        if match:
            number, unit = float(match.group(1)), match.group(2)
            delay_ms = number * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if delay_ms is None:
        raise ValueError(f"a delay must look like '5ms', '200us' or '0.1s', got "
                         f"{_shown(value)}")
    if not 0 <= delay_ms <= MAX_DELAY_MS:
        raise ValueError(f"a delay must be 0..{MAX_DELAY_MS:g} ms (no TCP handshake completes "
                         f"over a longer one), got {_shown(value)}")
    return delay_ms


def check_link_params(topology, where, bw=None, delay=None, loss=None, max_queue=None):
    """Validate link parameters and return them normalised as a dict.

    Args:
        topology (str): generator name, for the error message.
        where (str): which parameter family (``"bw"`` or ``"bottleneck_bw"``…), for the message.
        bw (float|None): rate in Mbit/s, > 0.
        delay (str|float|None): one-way delay (``"5ms"`` or ms as a number).
        loss (float|None): loss in percent, 0..100.
        max_queue (int|None): queue limit in packets, >= 1.
    Returns:
        dict: ``{"bw", "delay", "loss", "max_queue"}`` with delay as ``"<ms>ms"`` or None.
    Raises:
        TopologyError: a value is out of range; the message names the parameter.
    """
    prefix = "" if where in ("", None) else where + "_"
    if bw is not None:
        if isinstance(bw, bool) or not isinstance(bw, (int, float)) or not bw > 0:
            raise TopologyError(
                f"{topology}: parameter '{prefix}bw' must be a rate in Mbit/s > 0, got "
                f"{_shown(bw)}", f"{prefix}bw")
        if not bw <= MAX_BW_MBPS:
            raise TopologyError(
                f"{topology}: parameter '{prefix}bw' must be at most {MAX_BW_MBPS:g} Mbit/s "
                f"(Mininet ignores a larger rate), got {_shown(bw)}", f"{prefix}bw")
        bw = float(bw)
    if delay is not None:
        try:
            delay_ms = parse_delay_ms(delay)
        except ValueError as exc:
            raise TopologyError(f"{topology}: parameter '{prefix}delay': {exc}",
                                f"{prefix}delay") from None
        delay = None if delay_ms == 0 else f"{delay_ms:g}ms"
    if loss is not None:
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not 0 <= loss <= 100:
            raise TopologyError(
                f"{topology}: parameter '{prefix}loss' must be a percentage in 0..100, "
                f"got {_shown(loss)}", f"{prefix}loss")
        loss = None if loss == 0 else float(loss)
    if max_queue is not None:
        _require_int(topology, f"{prefix}max_queue", max_queue, 1)
        if max_queue > MAX_QUEUE_PACKETS:
            raise TopologyError(
                f"{topology}: parameter '{prefix}max_queue' must be at most {MAX_QUEUE_PACKETS} "
                f"packets (netem's limit is 32 bits), got {_shown(max_queue)}",
                f"{prefix}max_queue")
    return {"bw": bw, "delay": delay, "loss": loss, "max_queue": max_queue}


class _Builder:
    """Adds hosts, switches and links with deterministic names, addresses and port numbers."""

    def __init__(self, topology, params):
        self.graph = nx.Graph(topology=topology, params=dict(params))
        self.hosts = 0
        self.switches = 0
        self.next_port = {}

    def host(self, role="host"):
        self.hosts += 1
        index = self.hosts
        if index > MAX_HOSTS:
            raise TopologyError(
                f"{self.graph.graph['topology']}: {index} hosts do not fit in 10.0.0.0/8")
        name = f"h{index}"
        self.graph.add_node(
            name, kind="host", role=role, index=index,
            ip=str(IP_BASE + index), prefixlen=PREFIX_LEN, mac=mac_for_index(index))
        self.next_port[name] = 0
        return name

    def switch(self, tier=None):
        self.switches += 1
        index = self.switches
        name = f"s{index}"
        self.graph.add_node(name, kind="switch", role="switch", index=index,
                            dpid=f"{index:016x}", tier=tier)
        self.next_port[name] = 1
        return name

    def link(self, a, b, params):
        ports = {}
        for node in (a, b):
            ports[node] = self.next_port[node]
            self.next_port[node] += 1
        self.graph.add_edge(a, b, ports=ports, **params)


def mac_for_index(index):
    """Return the MAC Mininet gives host number ``index`` (``00:00:00:00:00:01`` for h1)."""
    raw = f"{index:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def single(n=4, bw=None, delay=None, loss=None, max_queue=None):
    """Single switch connected to n hosts.

    Args:
        n (int): number of hosts (>= 1).
        bw, delay, loss, max_queue: link parameters applied to every link.
    Returns:
        networkx.Graph: the topology.
    """
    _require_int("single", "n", n, 1)
    check_size("single", {"n": n}, n, 1, n)
    link = check_link_params("single", "", bw, delay, loss, max_queue)
    b = _Builder("single", dict(n=n, bw=bw, delay=delay, loss=loss, max_queue=max_queue))
    s1 = b.switch("edge")
    for _ in range(n):
        b.link(b.host(), s1, link)
    return b.graph


def linear(n=4, hosts_per_switch=1, bw=None, delay=None, loss=None, max_queue=None):
    """A chain of n switches, each with ``hosts_per_switch`` hosts.

    Args:
        n (int): number of switches (>= 1).
        hosts_per_switch (int): hosts on each switch (>= 1).
        bw, delay, loss, max_queue: link parameters applied to every link.
    """
    _require_int("linear", "n", n, 1)
    _require_int("linear", "hosts_per_switch", hosts_per_switch, 1)
    check_size("linear", {"n": n, "hosts_per_switch": hosts_per_switch}, n * hosts_per_switch,
               n, n * hosts_per_switch + n - 1)
    link = check_link_params("linear", "", bw, delay, loss, max_queue)
    b = _Builder("linear", dict(n=n, hosts_per_switch=hosts_per_switch, bw=bw, delay=delay,
                                loss=loss, max_queue=max_queue))
    switches = [b.switch("edge") for _ in range(n)]
    for sw in switches:
        for _ in range(hosts_per_switch):
            b.link(b.host(), sw, link)
    for left, right in zip(switches, switches[1:]):
        b.link(left, right, link)
    return b.graph


def tree(depth=2, fanout=2, bw=None, delay=None, loss=None, max_queue=None):
    """A tree of switches of the given depth and fanout, hosts at the leaves (as Mininet's TreeTopo).

    Args:
        depth (int): levels of switches (>= 1).
        fanout (int): children per switch (>= 1); fanout**depth hosts.
        bw, delay, loss, max_queue: link parameters applied to every link.
    """
    _require_int("tree", "depth", depth, 1)
    _require_int("tree", "fanout", fanout, 1)
    # fanout**depth hosts and 1 + fanout + ... + fanout**(depth-1) switches, counted level by
    # level and stopped once over a limit: tree(depth=10**12) must not compute 2**(10**12).
    n_hosts, n_switches, over = 1, 0, False
    for _ in range(depth):
        n_switches += n_hosts
        n_hosts *= fanout
        if n_hosts > MAX_HOSTS_PER_SERVER or n_switches > MAX_SWITCHES_PER_SERVER:
            over = True
            break
    check_size("tree", {"depth": depth, "fanout": fanout}, n_hosts, n_switches,
               n_hosts + n_switches - 1, at_least=over)
    link = check_link_params("tree", "", bw, delay, loss, max_queue)
    b = _Builder("tree", dict(depth=depth, fanout=fanout, bw=bw, delay=delay, loss=loss,
                              max_queue=max_queue))

    def add_tree(level):
        # Pre-order numbering, as mininet.topolib.TreeTopo does: the same names as `mn --topo tree`.
        if level == 0:
            return b.host()
        node = b.switch("core" if level == depth else ("edge" if level == 1 else "aggregation"))
        for _ in range(fanout):
            child = add_tree(level - 1)
            b.link(node, child, link)
        return node

    add_tree(depth)
    return b.graph


def fat_tree(k=4, bw=None, delay=None, loss=None, max_queue=None):
    """A k-ary fat-tree (Al-Fares et al. 2008): (k/2)^2 core switches, k pods of k/2 aggregation
    and k/2 edge switches, k/2 hosts per edge switch — 5k^2/4 switches, k^3/4 hosts.

    Args:
        k (int): an even number >= 2 of ports per switch.
        bw, delay, loss, max_queue: link parameters applied to every link.
    """
    _require_int("fat_tree", "k", k, 2)
    if k % 2:
        raise TopologyError(f"fat_tree: parameter 'k' must be even, got {_shown(k)}", "k")
    check_size("fat_tree", {"k": k}, k ** 3 // 4, 5 * k * k // 4, 3 * k ** 3 // 4)
    link = check_link_params("fat_tree", "", bw, delay, loss, max_queue)
    b = _Builder("fat_tree", dict(k=k, bw=bw, delay=delay, loss=loss, max_queue=max_queue))
    half = k // 2
    cores = [b.switch("core") for _ in range(half * half)]
    for _pod in range(k):
        aggs = [b.switch("aggregation") for _ in range(half)]
        edges = [b.switch("edge") for _ in range(half)]
        for edge in edges:
            for _ in range(half):
                b.link(b.host(), edge, link)
        for edge in edges:
            for agg in aggs:
                b.link(edge, agg, link)
        for i, agg in enumerate(aggs):
            for j in range(half):
                b.link(agg, cores[i * half + j], link)
    return b.graph


def leaf_spine(spines=2, leaves=4, hosts_per_leaf=4, bw=None, delay=None, loss=None,
               max_queue=None):
    """A two-tier Clos: every leaf switch linked to every spine switch, hosts on the leaves.

    Args:
        spines (int): spine switches (>= 1).
        leaves (int): leaf switches (>= 1).
        hosts_per_leaf (int): hosts on each leaf (>= 1).
        bw, delay, loss, max_queue: link parameters applied to every link.
    """
    for name, value in (("spines", spines), ("leaves", leaves),
                        ("hosts_per_leaf", hosts_per_leaf)):
        _require_int("leaf_spine", name, value, 1)
    check_size("leaf_spine", {"spines": spines, "leaves": leaves,
                              "hosts_per_leaf": hosts_per_leaf},
               leaves * hosts_per_leaf, spines + leaves, leaves * (hosts_per_leaf + spines))
    link = check_link_params("leaf_spine", "", bw, delay, loss, max_queue)
    b = _Builder("leaf_spine", dict(spines=spines, leaves=leaves, hosts_per_leaf=hosts_per_leaf,
                                    bw=bw, delay=delay, loss=loss, max_queue=max_queue))
    spine_sw = [b.switch("spine") for _ in range(spines)]
    leaf_sw = [b.switch("leaf") for _ in range(leaves)]
    for leaf in leaf_sw:
        for _ in range(hosts_per_leaf):
            b.link(b.host(), leaf, link)
    for leaf in leaf_sw:
        for spine in spine_sw:
            b.link(leaf, spine, link)
    return b.graph


def dumbbell(hosts_per_side=2, bottleneck_bw=10, bw=None, delay=None, loss=None,
             max_queue=None, bottleneck_delay=None, bottleneck_loss=None,
             bottleneck_max_queue=None):
    """Two switches joined by one bottleneck link, ``hosts_per_side`` hosts on each.

    Hosts on the left (h1…hn) are ``client`` hosts, those on the right ``backend`` hosts, so the
    same graph serves flow-fairness experiments with or without a balancer.

    Args:
        hosts_per_side (int): hosts on each side (>= 1).
        bottleneck_bw (float): rate of the s1-s2 link in Mbit/s (> 0).
        bw, delay, loss, max_queue: parameters of the access links.
        bottleneck_delay, bottleneck_loss, bottleneck_max_queue: more for the bottleneck.
    """
    _require_int("dumbbell", "hosts_per_side", hosts_per_side, 1)
    check_size("dumbbell", {"hosts_per_side": hosts_per_side}, 2 * hosts_per_side, 2,
               2 * hosts_per_side + 1)
    if bottleneck_bw is None:
        raise TopologyError("dumbbell: parameter 'bottleneck_bw' is required (Mbit/s > 0)")
    access = check_link_params("dumbbell", "", bw, delay, loss, max_queue)
    neck = check_link_params("dumbbell", "bottleneck", bottleneck_bw, bottleneck_delay,
                             bottleneck_loss, bottleneck_max_queue)
    b = _Builder("dumbbell", dict(
        hosts_per_side=hosts_per_side, bottleneck_bw=bottleneck_bw, bw=bw, delay=delay,
        loss=loss, max_queue=max_queue, bottleneck_delay=bottleneck_delay,
        bottleneck_loss=bottleneck_loss, bottleneck_max_queue=bottleneck_max_queue))
    left, right = b.switch("edge"), b.switch("edge")
    for _ in range(hosts_per_side):
        b.link(b.host("client"), left, access)
    for _ in range(hosts_per_side):
        b.link(b.host("backend"), right, access)
    b.link(left, right, neck)
    return b.graph


def lb_lab(clients=4, backends=4, switches=1, bw=None, delay=None, loss=None, max_queue=None,
           backend_bw=None):
    """The load-balancing lab: clients, one ``lb`` host and backends on a chain of switches.

    Hosts are numbered clients first (h1…hc), then the lb host, then the backends, so with the
    defaults h1–h4 are clients, h5 is the lb and h6–h9 are backends. With one switch all hosts
    share it; with more, the switches form a chain: clients on the first, backends on the last,
    the lb host on the middle one (``switches // 2``, counting from 0).

    Args:
        clients (int): client hosts (>= 1).
        backends (int): backend hosts (>= 1).
        switches (int): switches in the chain (>= 1).
        bw, delay, loss, max_queue: parameters of every link.
        backend_bw (float|None): rate of the backends' access links (Mbit/s), if they differ.
    """
    _require_int("lb_lab", "clients", clients, 1)
    _require_int("lb_lab", "backends", backends, 1)
    _require_int("lb_lab", "switches", switches, 1)
    n_hosts = clients + backends + 1
    check_size("lb_lab", {"clients": clients, "backends": backends, "switches": switches},
               n_hosts, switches, n_hosts + switches - 1)
    link = check_link_params("lb_lab", "", bw, delay, loss, max_queue)
    backend_link = dict(link)
    if backend_bw is not None:
        backend_link.update(check_link_params("lb_lab", "backend", backend_bw, delay, loss,
                                              max_queue))
    b = _Builder("lb_lab", dict(clients=clients, backends=backends, switches=switches, bw=bw,
                                delay=delay, loss=loss, max_queue=max_queue,
                                backend_bw=backend_bw))
    chain = [b.switch("edge") for _ in range(switches)]
    for _ in range(clients):
        b.link(b.host("client"), chain[0], link)
    b.link(b.host("lb"), chain[switches // 2], link)
    for _ in range(backends):
        b.link(b.host("backend"), chain[-1], backend_link)
    for left, right in zip(chain, chain[1:]):
        b.link(left, right, link)
    return b.graph


GENERATORS = {
    "single": single,
    "linear": linear,
    "tree": tree,
    "fat_tree": fat_tree,
    "leaf_spine": leaf_spine,
    "dumbbell": dumbbell,
    "lb_lab": lb_lab,
}


def generator_params(name):
    """Return ``{parameter: default}`` of the generator called ``name``."""
    import inspect
    signature = inspect.signature(GENERATORS[name])
    return {p.name: p.default for p in signature.parameters.values()}


def build(name, params=None):
    """Build the topology ``name`` with ``params``, rejecting unknown names and parameters.

    Args:
        name (str): one of ``GENERATORS``.
        params (dict|None): generator arguments.
    Returns:
        networkx.Graph: the topology.
    Raises:
        TopologyError: unknown topology or parameter, or an impossible value.
    """
    if name not in GENERATORS:
        raise TopologyError(
            f"unknown topology {name!r}; expected one of {', '.join(GENERATORS)}")
    params = dict(params or {})
    known = generator_params(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TopologyError(
            f"{name}: unknown parameter {unknown[0]!r}; expected one of {', '.join(known)}")
    return GENERATORS[name](**params)


def hosts(graph, role=None):
    """Return host names in index order, optionally only those with ``role``."""
    names = [n for n, d in graph.nodes(data=True) if d["kind"] == "host"
             and (role is None or d["role"] == role)]
    return sorted(names, key=lambda n: graph.nodes[n]["index"])


def switches(graph):
    """Return switch names in index order."""
    names = [n for n, d in graph.nodes(data=True) if d["kind"] == "switch"]
    return sorted(names, key=lambda n: graph.nodes[n]["index"])


def switch_links(graph):
    """Return the switch-to-switch edges as (a, b) pairs in a deterministic order."""
    return sorted((tuple(sorted((a, b), key=_node_key)) for a, b in graph.edges
                   if graph.nodes[a]["kind"] == "switch" and graph.nodes[b]["kind"] == "switch"),
                  key=lambda e: (_node_key(e[0]), _node_key(e[1])))


def _node_key(name):
    return (name[0], int(name[1:]))


def has_loops(graph):
    """True when the switches form a cycle (fat-tree, leaf-spine): flooding would loop."""
    core = graph.subgraph(switches(graph))
    return not nx.is_forest(core)


def link_features(graph):
    """Return the sorted set of link features used (``bw``, ``delay``, ``loss``, ``max_queue``)."""
    return sorted({p for _, _, d in graph.edges(data=True) for p in LINK_PARAMS
                   if d.get(p) is not None})


def summary(graph):
    """Return a JSON-ready description: counts of switches, hosts, links and hosts per role."""
    roles = {}
    for name in hosts(graph):
        roles.setdefault(graph.nodes[name]["role"], []).append(name)
    return {
        "topology": graph.graph["topology"],
        "params": {k: v for k, v in graph.graph["params"].items() if v is not None},
        "switches": len(switches(graph)),
        "hosts": len(hosts(graph)),
        "links": graph.number_of_edges(),
        "switch_links": len(switch_links(graph)),
        "loops": has_loops(graph),
        "roles": roles,
        "link_features": link_features(graph),
    }
