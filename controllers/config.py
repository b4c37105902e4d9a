"""Parse and validate the controller config (a plain dict from YAML/JSON) into frozen objects.

Pure: no I/O except :func:`load_config`, which only reads the file. The config has three sections::

    controller:            # all optional
      ofp_host: 127.0.0.1  # OpenFlow listen address
      ofp_port: 6653
      api_host: 127.0.0.1  # JSON API (localhost only)
      api_port: 8080       # 0 = do not serve the API
      packet_in_rate: 5000 # packet-ins accepted per second per switch (token bucket)
      packet_in_port_share: 0.5  # most of that one switch port (one host) may take
      packet_in_meter: true  # also meter VIP packet-ins per port in the switch (OpenFlow meters)
      probe_ip: 10.255.255.254    # source address of health probes (answered by the controller)
      probe_mac: 02:00:00:00:fe:fe
      stats_interval: 2.0  # seconds between flow/table/group stats polls (0 = never)
      seed: 0
    topology:              # networkx.node_link_data(graph), or {name: lb_lab, params: {...}}
    services:
      web:
        vip: 10.0.0.100
        vmac: 02:00:00:00:00:64   # optional, derived from the VIP
        protocol: tcp             # tcp | udp
        port: 80
        mode: l4                  # l2 | l3 | l4 | group | proactive
        algorithm: round_robin    # see MODE_ALGORITHMS
        idle_timeout: 5           # seconds, per-connection/per-client flows (reactive modes)
        conntrack: false          # group only: true commits each connection in OVS conntrack
                                  # so bucket changes never move it; false: stateless buckets
        backends: {h6: 1, h7: {weight: 2}}   # graph host name -> weight
        health: {kind: tcp, interval: 1.0, rise: 2, fall: 3}   # kind: tcp | arp | none

Errors are :class:`ConfigError` naming the key path, the value and what was expected, e.g.
``services.web.mode: unknown 'l5'; expected one of l2, l3, l4, group, proactive``.
"""
import ipaddress
import re
from dataclasses import dataclass, field

import networkx as nx

from lblab_core import loader
from lblab_core.errors import InputError
from topologies import graphs

MODES = ("l2", "l3", "l4", "group", "proactive")
# Modes whose data path is a packet-in per new connection/client (exact algorithm choices) and
# modes that run entirely in Open vSwitch conntrack (no packet-in per flow).
REACTIVE_MODES = ("l2", "l3", "l4")
CONNTRACK_MODES = ("group", "proactive")
REACTIVE_ALGORITHMS = ("round_robin", "weighted_round_robin", "least_connections",
                       "weighted_least_connections", "random", "power_of_two", "ip_hash",
                       "five_tuple_hash", "consistent_hash")
# group: OVS select group (dp_hash over the 5-tuple, bucket weights); proactive: client-address
# prefixes split in proportion to weights (Wang, Butnariu & Rexford 2011).
MODE_ALGORITHMS = {
    "l2": REACTIVE_ALGORITHMS,
    "l3": REACTIVE_ALGORITHMS,
    "l4": REACTIVE_ALGORITHMS,
    "group": ("five_tuple_hash",),
    "proactive": ("ip_prefix",),
}
DEFAULT_ALGORITHM = {"l2": "round_robin", "l3": "round_robin", "l4": "round_robin",
                     "group": "five_tuple_hash", "proactive": "ip_prefix"}
PROTOCOLS = {"tcp": 6, "udp": 17}
HEALTH_KINDS = ("tcp", "arp", "none")
MAX_WEIGHT = 65535  # an OpenFlow bucket weight is 16 bits
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ConfigError(ValueError):
    """Invalid controller config; ``path`` names the key (``services.web.port``)."""

    located = False  # True when the message already names the file (and line)

    def __init__(self, path, message):
        self.path = path
        self.problem = message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class Health:
    """Active health probing of a service's backends."""
    kind: str = "tcp"
    interval: float = 1.0
    rise: int = 2
    fall: int = 3


@dataclass(frozen=True)
class Backend:
    """A backend host of a service (address taken from the topology graph)."""
    name: str
    ip: str
    mac: str
    weight: int = 1


@dataclass(frozen=True)
class Service:
    """One virtual IP: protocol/port, pool, mode and algorithm."""
    name: str
    vip: str
    vmac: str
    protocol: str
    port: int
    mode: str
    algorithm: str
    backends: tuple
    idle_timeout: int = 5
    health: Health = field(default_factory=Health)
    conntrack: bool = False  # group mode: connections pinned in conntrack (else stateless)

    @property
    def ip_proto(self):
        """int: the IP protocol number (6 or 17)."""
        return PROTOCOLS[self.protocol]


@dataclass(frozen=True)
class ControllerSettings:
    """Where the controller listens and its rate limits."""
    ofp_host: str = "127.0.0.1"
    ofp_port: int = 6653
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    packet_in_rate: int = 5000
    packet_in_port_share: float = 0.5
    packet_in_meter: bool = True
    probe_ip: str = "10.255.255.254"
    probe_mac: str = "02:00:00:00:fe:fe"
    stats_interval: float = 2.0
    seed: int = 0


@dataclass(frozen=True)
class Config:
    """The whole controller config: settings, the topology graph and the services."""
    controller: ControllerSettings
    graph: object
    services: tuple

    def service(self, name):
        """Return the service called ``name`` (KeyError if none)."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)


def _expect_dict(path, value):
    if not isinstance(value, dict):
        raise ConfigError(path, f"must be a mapping, got {value!r} ({type(value).__name__})")
    return value


def _check_keys(path, value, known):
    unknown = sorted(set(value) - set(known))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(where, f"unknown key; expected one of {', '.join(known)}")


def _int(path, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(path, f"must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _float(path, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(path, f"must be a number in {lo}..{hi}, got {value!r}")
    return float(value)


def _ipv4(path, value):
    try:
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ConfigError(path, f"must be an IPv4 address, got {value!r}") from None


def _mac(path, value):
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise ConfigError(path, f"must be a MAC address like 02:00:00:00:00:01, got {value!r}")
    return value.lower()


def _bool(path, value):
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {value!r}")
    return value


def _choice(path, value, choices):
    if value not in choices:
        raise ConfigError(path, f"unknown {value!r}; expected one of {', '.join(choices)}")
    return value


def vmac_for(vip):
    """Return the default virtual MAC of a VIP: locally administered, low 32 bits = the address.

    Args:
        vip (str): IPv4 address.
    Returns:
        str: ``02:00:`` followed by the four address bytes in hex.
    """
    raw = ipaddress.IPv4Address(vip).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in raw)


def parse_topology(value, path="topology"):
    """Return a networkx graph from node-link data or ``{name, params}``.

    Raises:
        ConfigError: neither form, or the generator rejected the parameters.
    """
    _expect_dict(path, value)
    if "nodes" in value:
        key = "edges" if "edges" in value else "links"
        try:
            graph = nx.node_link_graph(value, edges=key)
        except Exception as exc:  # networkx raises several types for malformed data
            raise ConfigError(path, f"not valid node-link data: {exc}") from None
        for node, data in graph.nodes(data=True):
            if data.get("kind") not in ("host", "switch"):
                raise ConfigError(f"{path}.nodes.{node}.kind",
                                  f"must be 'host' or 'switch', got {data.get('kind')!r}")
        return graph
    _check_keys(path, value, ("name", "params"))
    if "name" not in value:
        raise ConfigError(path, "needs 'nodes' (node-link data) or 'name' (a generator)")
    try:
        return graphs.build(value["name"], value.get("params") or {})
    except graphs.TopologyError as exc:
        raise ConfigError(path, str(exc)) from None


def graph_to_data(graph):
    """Return JSON-ready node-link data of ``graph`` (what ``topology:`` accepts)."""
    return nx.node_link_data(graph, edges="edges")


def parse_health(path, value):
    """Return :class:`Health` from a dict (None = defaults)."""
    value = _expect_dict(path, value if value is not None else {})
    _check_keys(path, value, ("kind", "interval", "rise", "fall"))
    return Health(
        kind=_choice(f"{path}.kind", value.get("kind", "tcp"), HEALTH_KINDS),
        interval=_float(f"{path}.interval", value.get("interval", 1.0), 0.05, 3600),
        rise=_int(f"{path}.rise", value.get("rise", 2), 1, 100),
        fall=_int(f"{path}.fall", value.get("fall", 3), 1, 100))


def parse_weight(path, value):
    """Return a backend weight (0 = drain) or raise :class:`ConfigError` naming ``path``."""
    return _int(path, value, 0, MAX_WEIGHT)


def parse_backend(path, name, value, graph):
    """Return :class:`Backend` for graph host ``name`` with ``value`` = weight or {weight}."""
    if not isinstance(name, str) or name not in graph or graph.nodes[name].get("kind") != "host":
        hosts = ", ".join(graphs.hosts(graph)[:12]) if graph.number_of_nodes() else "none"
        raise ConfigError(path, f"unknown backend host {name!r}; expected a host of the "
                                f"topology ({hosts})")
    weight_path = path
    if isinstance(value, dict):
        _check_keys(path, value, ("weight",))
        value, weight_path = value.get("weight", 1), f"{path}.weight"
    weight = parse_weight(weight_path, value)
    node = graph.nodes[name]
    return Backend(name=name, ip=node["ip"], mac=node["mac"].lower(), weight=weight)


def parse_service(name, value, graph):
    """Return a :class:`Service` from its dict; ``graph`` resolves backend host names."""
    path = f"services.{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(path, "service names are 1-64 of A-Z a-z 0-9 _ . -")
    value = _expect_dict(path, value)
    _check_keys(path, value, ("vip", "vmac", "protocol", "port", "mode", "algorithm",
                              "backends", "idle_timeout", "health", "conntrack"))
    for key in ("vip", "port", "backends"):
        if key not in value:
            raise ConfigError(f"{path}.{key}", "is required")
    vip = _ipv4(f"{path}.vip", value["vip"])
    mode = _choice(f"{path}.mode", value.get("mode", "l4"), MODES)
    algorithm = value.get("algorithm", DEFAULT_ALGORITHM[mode])
    _choice(f"{path}.algorithm", algorithm, MODE_ALGORITHMS[mode])
    pool = _expect_dict(f"{path}.backends", value["backends"])
    if not pool:
        raise ConfigError(f"{path}.backends", "must name at least one backend host")
    backends = tuple(parse_backend(f"{path}.backends.{b}", b, v, graph) for b, v in pool.items())
    protocol = _choice(f"{path}.protocol", value.get("protocol", "tcp"), tuple(PROTOCOLS))
    health = parse_health(f"{path}.health", value.get("health"))
    if protocol == "udp" and health.kind == "tcp":
        health = Health("arp", health.interval, health.rise, health.fall)
    conntrack = _bool(f"{path}.conntrack", value.get("conntrack", False))
    if "conntrack" in value and mode != "group":
        raise ConfigError(f"{path}.conntrack", f"applies to mode group only, not {mode} (the "
                                               "other modes choose their data path by mode and "
                                               "algorithm)")
    return Service(
        name=name, vip=vip,
        vmac=_mac(f"{path}.vmac", value["vmac"]) if "vmac" in value else vmac_for(vip),
        protocol=protocol, port=_int(f"{path}.port", value["port"], 1, 65535), mode=mode,
        algorithm=algorithm, backends=backends,
        idle_timeout=_int(f"{path}.idle_timeout", value.get("idle_timeout", 5), 1, 65535),
        health=health, conntrack=conntrack)


def parse_settings(value):
    """Return :class:`ControllerSettings` from the ``controller`` section (None = defaults)."""
    path = "controller"
    value = _expect_dict(path, value if value is not None else {})
    defaults = ControllerSettings()
    _check_keys(path, value, tuple(defaults.__dataclass_fields__))
    get = value.get
    return ControllerSettings(
        ofp_host=_ipv4(f"{path}.ofp_host", get("ofp_host", defaults.ofp_host)),
        ofp_port=_int(f"{path}.ofp_port", get("ofp_port", defaults.ofp_port), 1, 65535),
        api_host=_ipv4(f"{path}.api_host", get("api_host", defaults.api_host)),
        api_port=_int(f"{path}.api_port", get("api_port", defaults.api_port), 0, 65535),
        packet_in_rate=_int(f"{path}.packet_in_rate",
                            get("packet_in_rate", defaults.packet_in_rate), 1, 10 ** 6),
        packet_in_port_share=_float(f"{path}.packet_in_port_share",
                                    get("packet_in_port_share", defaults.packet_in_port_share),
                                    0.01, 1.0),
        packet_in_meter=_bool(f"{path}.packet_in_meter",
                              get("packet_in_meter", defaults.packet_in_meter)),
        probe_ip=_ipv4(f"{path}.probe_ip", get("probe_ip", defaults.probe_ip)),
        probe_mac=_mac(f"{path}.probe_mac", get("probe_mac", defaults.probe_mac)),
        stats_interval=_float(f"{path}.stats_interval",
                              get("stats_interval", defaults.stats_interval), 0, 3600),
        seed=_int(f"{path}.seed", get("seed", defaults.seed), 0, 2 ** 32 - 1))


def parse_config(data):
    """Return a validated :class:`Config` from a plain dict.

    Args:
        data (dict): the parsed YAML/JSON document.
    Returns:
        Config: settings, graph and services.
    Raises:
        ConfigError: the first problem found, naming its key path, value and what was expected.
    """
    data = _expect_dict("", data)
    _check_keys("", data, ("controller", "topology", "services"))
    if "topology" not in data:
        raise ConfigError("topology", "is required (node-link data or {name, params})")
    settings = parse_settings(data.get("controller"))
    graph = parse_topology(data["topology"])
    services_raw = _expect_dict("services", data.get("services", {}))
    services = tuple(parse_service(n, v, graph) for n, v in services_raw.items())
    host_ips = {d["ip"]: n for n, d in graph.nodes(data=True) if d.get("kind") == "host"}
    seen = {settings.probe_ip: "controller.probe_ip"}
    for svc in services:
        path = f"services.{svc.name}.vip"
        if svc.vip in host_ips:
            raise ConfigError(path, f"{svc.vip} is the address of host {host_ips[svc.vip]}; "
                                    "expected an unused address")
        if svc.vip in seen:
            raise ConfigError(path, f"{svc.vip} is already used by {seen[svc.vip]}")
        seen[svc.vip] = path
    owners = {}
    for svc in services:
        for backend in svc.backends:
            key = (backend.name, svc.protocol, svc.port)
            if key in owners and owners[key] != svc.name:
                raise ConfigError(f"services.{svc.name}.backends.{backend.name}",
                                  f"{backend.name} {svc.protocol}/{svc.port} already serves "
                                  f"service {owners[key]}; expected one service per port")
            owners[key] = svc.name
    return Config(controller=settings, graph=graph, services=services)


def load_config(path):
    """Read and parse a YAML or JSON config file (with lblab_core's loader).

    Raises:
        ConfigError: unreadable file, bad YAML/JSON (every problem, one per line), or an
            invalid config.
    """
    try:
        data, _ = loader.load(path)
    except InputError as exc:
        err = ConfigError("", "\n".join(exc.errors))
        err.located = True  # the loader's lines already start with the file name
        raise err from None
    return parse_config(data)
