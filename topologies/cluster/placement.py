"""Which server runs each node of a topology graph (pure but for the cluster edition's placers).

Two kinds of placement:

* ``role`` (lblab's): hosts go where their role says (by default the clients on the first server,
  the balancer and the backends on the last), and each switch goes to the server holding most of
  the hosts attached to it (ties: the earlier server), so only switch links cross servers where
  the roles split.
* a policy of Mininet's cluster edition (``mininet.examples.cluster``), run as it is:
  ``switchbin`` (``SwitchBinPlacer``: switches in even bins, hosts beside their switch),
  ``roundrobin`` (``RoundRobinPlacer``) and ``random`` (``RandomPlacer``, seeded here).
  ``HostSwitchBinPlacer`` is not offered: under Python 3 it indexes its server table with a float
  (``self.hind / self.hbin``) and fails.
"""
import random

from topologies import graphs

LOCAL = "localhost"
POLICIES = ("role", "switchbin", "roundrobin", "random")
ROLES = ("client", "lb", "backend")
_EDITION = {"switchbin": "SwitchBinPlacer", "roundrobin": "RoundRobinPlacer",
            "random": "RandomPlacer"}


class PlacementError(ValueError):
    """A placement cannot be made; the message names the server, role or policy."""


def default_roles(servers):
    """Return ``{role: server}`` of the role policy: clients first, balancer and backends last."""
    return {"client": servers[0], "lb": servers[-1], "backend": servers[-1]}


def role_placement(graph, servers, host_roles, roles=None):
    """Place hosts by role and each switch beside most of its hosts.

    Args:
        graph (networkx.Graph): from ``topologies.graphs``.
        servers (list[str]): server names, in order.
        host_roles (dict): ``{host: role}`` (roles other than client/lb/backend go with the
            clients).
        roles (dict|None): ``{role: server}``; missing roles take ``default_roles``.
    Returns:
        dict: ``{node: server}`` for every host and switch.
    """
    where = default_roles(servers)
    for role, server in (roles or {}).items():
        if role not in ROLES:
            raise PlacementError(f"cluster.roles: {role!r}: expected one of {', '.join(ROLES)}")
        if server not in servers:
            raise PlacementError(f"cluster.roles.{role}: {server!r} is not one of the servers "
                                 f"({', '.join(servers)})")
        where[role] = server
    placed = {}
    for host in graphs.hosts(graph):
        role = host_roles.get(host, graph.nodes[host].get("role"))
        placed[host] = where.get(role, where["client"])
    for switch in graphs.switches(graph):
        votes = {}
        for peer in graph.neighbors(switch):
            if graph.nodes[peer]["kind"] == "host":
                votes[placed[peer]] = votes.get(placed[peer], 0) + 1
        placed[switch] = (max(servers, key=lambda s: (votes.get(s, 0), -servers.index(s)))
                          if votes else None)
    # switches with no host: beside the switch neighbour placed most often (else first server)
    for switch in graphs.switches(graph):
        if placed[switch] is None:
            near = [placed[p] for p in graph.neighbors(switch) if placed.get(p)]
            placed[switch] = max(near, key=near.count) if near else servers[0]
    return placed


def edition_placement(graph, servers, policy, seed=1):
    """Place with one of the cluster edition's placers (needs Mininet importable)."""
    from mininet.examples import cluster as edition
    hosts, switches = graphs.hosts(graph), graphs.switches(graph)
    links = [(a, b) for a, b in graph.edges()]
    state = random.getstate()
    random.seed(seed)           # RandomPlacer draws from the module's random.randrange
    try:
        placer = getattr(edition, _EDITION[policy])(
            servers=list(servers), nodes=hosts + switches, hosts=hosts, switches=switches,
            links=links)
        return {node: placer.place(node) for node in switches + hosts}
    finally:
        random.setstate(state)


def place(graph, servers, policy="role", host_roles=None, roles=None, seed=1):
    """Return ``{node: server}``; one server places everything on it."""
    servers = list(servers)
    if not servers:
        raise PlacementError("cluster.servers: empty: expected at least one server")
    if len(set(servers)) != len(servers):
        raise PlacementError(f"cluster.servers: {','.join(servers)}: a server is named twice")
    if policy not in POLICIES:
        raise PlacementError(f"cluster.placement: {policy!r}: expected one of "
                             f"{', '.join(POLICIES)}")
    if policy == "role":
        return role_placement(graph, servers, host_roles or {}, roles)
    return edition_placement(graph, servers, policy, seed)


def cross_links(graph, placed):
    """Return the edges whose ends are on different servers, as ``(a, b, data)``."""
    return [(a, b, d) for a, b, d in graph.edges(data=True) if placed[a] != placed[b]]


def by_server(placed):
    """Return ``{server: sorted nodes}``."""
    out = {}
    for node, server in placed.items():
        out.setdefault(server, []).append(node)
    return {s: sorted(nodes, key=graphs._node_key) for s, nodes in out.items()}
