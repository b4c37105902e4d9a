"""The controller config's ``topology:`` section and its address types (pure): the pydantic
models of networkx node-link data (:class:`Node`, :class:`Link`, :class:`Topology`), the checks
that need the whole graph (:func:`check_graph`) and the graph they give.

Part of the controller config (``controllers.config``, which re-exports every name here and
owns the file, its other sections and the errors).
"""
import ipaddress
import re
from typing import Annotated, Any, Optional

import networkx as nx
from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from lblab_core import config as C
from topologies import graphs

_MAC_RE = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")  # fullmatch: "$" passes a final "\n"


# -- address types ----------------------------------------------------------------------------

def _ipv4(value):
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise PydanticCustomError("ipv4", "expected an IPv4 address like 10.0.0.100") from None


def _mac(value):
    if not _MAC_RE.fullmatch(value.lower()):
        raise PydanticCustomError("mac", "expected a MAC address like 02:00:00:00:00:01")
    return value.lower()


IPv4 = Annotated[str, AfterValidator(_ipv4)]
MAC = Annotated[str, AfterValidator(_mac)]


# -- node-link data ---------------------------------------------------------------------------

def _switch_name(value):
    # topologies.forwarding orders switches by (letter, number): "s12" -> ("s", 12)
    if not re.fullmatch(r"[A-Za-z][0-9]{1,9}", value):
        raise PydanticCustomError("switch_name", "expected a switch name: a letter and a "
                                                 "number, like s1")
    return value


def _dpid(value):
    if not re.fullmatch(r"[0-9A-Fa-f]{1,16}", value):
        raise PydanticCustomError("dpid", "expected a datapath id of 1-16 hex digits")
    return value


def _must_be_false(value):
    if value:
        raise PydanticCustomError("not_false", "expected false: the controller takes an "
                                               "undirected simple graph")
    return value


OF_PORT_MAX = 0xFFFFFF00  # OFPP_MAX: the highest physical OpenFlow port number


class Node(C.Model):
    """A node of node-link data: a host (``ip``, ``mac``) or a switch (``dpid``, ``tier``)."""
    id: C.Name
    kind: Annotated[str, C.one_of(("host", "switch"))]
    index: Annotated[int, Field(ge=1, le=2 ** 31)]
    role: Optional[Annotated[str, C.one_of(graphs.ROLES)]] = None
    ip: Optional[IPv4] = None
    prefixlen: Optional[Annotated[int, Field(ge=0, le=32)]] = None
    mac: Optional[MAC] = None
    dpid: Optional[Annotated[str, AfterValidator(_dpid)]] = None
    tier: Optional[C.Name] = None

    @model_validator(mode="after")
    def _fields_of_kind(self):
        needs, refuses = (("ip", "mac"), ("dpid", "tier")) if self.kind == "host" else \
            (("dpid",), ("ip", "mac", "prefixlen"))
        missing = [k for k in needs if getattr(self, k) is None]
        extra = [k for k in refuses if getattr(self, k) is not None]
        roles = graphs.HOST_ROLES if self.kind == "host" else ("switch",)
        problems = [f"no {k!r}; expected " + {"ip": "an IPv4 address", "mac": "a MAC address",
                                              "dpid": "a datapath id"}[k] for k in missing]
        problems += [f"{k!r} is not a {self.kind} attribute" for k in extra]
        if self.role is not None and self.role not in roles:
            problems.append(f"role {self.role!r}: expected one of {', '.join(roles)}")
        if self.kind == "switch":
            try:
                _switch_name(self.id)
            except PydanticCustomError as exc:
                problems.append(f"id {self.id!r}: {exc.message()}")
        if problems:
            raise ValueError(f"{self.kind} {self.id!r}: " + "; ".join(problems))
        return self


class Link(C.Model):
    """A link of node-link data: its two ends, their OpenFlow ports and the link parameters."""
    source: C.Name
    target: C.Name
    ports: dict[C.Name, Annotated[int, Field(ge=0, le=OF_PORT_MAX)]]
    bw: Optional[C.PosFloat] = None
    delay: Optional[str] = None
    loss: Optional[Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]] = None
    max_queue: Optional[Annotated[int, Field(ge=1, le=10 ** 7)]] = None

    @model_validator(mode="after")
    def _ports_of_both_ends(self):
        if self.source == self.target:
            raise ValueError(f"links {self.source!r} to itself; expected two different nodes")
        if set(self.ports) != {self.source, self.target}:
            raise ValueError(f"ports: {sorted(self.ports)}: expected the port of each end, "
                             f"{{{self.source}: n, {self.target}: m}}")
        return self


def check_graph(topo, prefix):
    """Check node-link data as a whole (what one node or link cannot tell).

    Node ids, host addresses, MACs and datapath ids unique; links between known nodes, at most
    one per pair; a switch port used once, numbered from 1; each host on exactly one link, to a
    switch (``topologies.forwarding`` needs each host's one switch port).

    Args:
        topo (Topology): validated node-link data.
        prefix (tuple): the key path of ``topology`` in the file.
    Returns:
        list[tuple[tuple, str]]: (key path, problem), empty when the graph is consistent.
    """
    found = []
    key = "edges" if topo.edges else "links"
    nodes, seen = {}, {}
    for i, node in enumerate(topo.nodes):
        for attr in ("id", "ip", "mac", "dpid"):
            value = getattr(node, attr)
            if value is None:
                continue
            if (attr, value) in seen:
                found.append((prefix + ("nodes", i, attr), f"{value!r} is already the {attr} "
                              f"of node {seen[(attr, value)]!r}; expected a unique {attr}"))
            seen.setdefault((attr, value), node.id)
        nodes.setdefault(node.id, node)
    pairs, ports, host_links = {}, {}, {}
    for i, link in enumerate(getattr(topo, key)):
        at = prefix + (key, i)
        ends = [n for n in (link.source, link.target) if n not in nodes]
        for name in ends:
            found.append((at + ("source" if name == link.source else "target",),
                          f"unknown node {name!r}; expected a node id of 'nodes'"
                          f"{C.did_you_mean(name, list(nodes))}"))
        if ends:
            continue
        pair = frozenset((link.source, link.target))
        if pair in pairs:
            found.append((at, f"a second link between {link.source} and {link.target} "
                              f"(first: {key}[{pairs[pair]}]); expected one"))
        pairs.setdefault(pair, i)
        for name in (link.source, link.target):
            port = link.ports[name]
            if nodes[name].kind == "host":
                host_links.setdefault(name, []).append(link)
            elif port < 1:
                found.append((at + ("ports", name), f"{port}: expected a switch port >= 1"))
            elif (name, port) in ports:
                found.append((at + ("ports", name), f"port {port} of {name} is already used "
                                                    f"by {key}[{ports[(name, port)]}]"))
            ports.setdefault((name, port), i)
    for i, node in enumerate(topo.nodes):
        links = host_links.get(node.id, [])
        if node.kind != "host" or nodes[node.id] is not node:
            continue
        peers = [link.target if link.source == node.id else link.source for link in links]
        if len(links) != 1 or nodes[peers[0]].kind != "switch":
            found.append((prefix + ("nodes", i), f"host {node.id!r} has {len(links)} links"
                          f"{' (to ' + ', '.join(peers) + ')' if peers else ''}; expected one "
                          "link, to a switch"))
    return found


def _graph_of(topo):
    graph = nx.Graph(**topo.graph)
    for node in topo.nodes:
        attrs = node.model_dump(exclude={"id"}, exclude_none=True)
        attrs.setdefault("role", "host" if node.kind == "host" else "switch")
        graph.add_node(node.id, **attrs)
    for link in topo.edges or topo.links:
        graph.add_edge(link.source, link.target, **link.model_dump(
            exclude={"source", "target"}))
    return graph


class Topology(C.Model):
    """``topology:``: a generator (``name``, ``params``) or networkx node-link data (``nodes``,
    ``edges`` or ``links``, ``graph``, ``directed``, ``multigraph``) whose nodes and links are
    :class:`Node` and :class:`Link`."""
    name: Optional[Annotated[str, C.one_of(tuple(graphs.GENERATORS))]] = None
    params: dict[str, Any] = {}
    nodes: Optional[C.TupleOf(Node)] = None
    edges: C.TupleOf(Link) = ()
    links: C.TupleOf(Link) = ()
    graph: dict[str, Any] = {}
    directed: Annotated[bool, AfterValidator(_must_be_false)] = False
    multigraph: Annotated[bool, AfterValidator(_must_be_false)] = False

    @model_validator(mode="after")
    def _one_form(self):
        given = self.model_fields_set
        if (self.name is None) == (self.nodes is None):
            raise ValueError(("expected either" if self.name else "expected") +
                             " 'name' (a generator, with 'params') or 'nodes' (node-link data)"
                             + (", not both" if self.name else ""))
        wrong = given & ({"edges", "links", "graph", "directed", "multigraph"} if self.name
                         else {"params"})
        if wrong:
            raise ValueError(f"{', '.join(sorted(wrong))}: not part of "
                             + ("a generator's topology" if self.name else "node-link data"))
        if self.edges and self.links:
            raise ValueError("expected the links in 'edges' or in 'links', not in both")
        return self
