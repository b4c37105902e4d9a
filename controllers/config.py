"""Parse and validate the controller config (a plain dict from YAML/JSON) into frozen objects.

Pure: no I/O except :func:`load_config`, which only reads the file, and a service's balancer
from a file (``algorithm: {file: my_lb.py, class: MyBalancer}``, l2/l3/l4 only), which
:func:`parse_config` loads and tries on a test pool (lb_apps.custom_balancer). Three sections
(every key and default: docs/controller.md, "Config")::

    controller: {ofp_port: 6653, api_port: 8080, seed: 0, ...}   # all optional
    topology: {name: lb_lab, params: {...}}     # or networkx.node_link_data(graph)
    services:
      web: {vip: 10.0.0.100, port: 80, mode: l4, algorithm: round_robin,
            backends: {h6: 1, h7: {weight: 2}}, health: {kind: tcp}}

The file's shape is the pydantic models below (:class:`ConfigFile`: :class:`ControllerSettings`,
:class:`Topology` with :class:`Node` and :class:`Link`, :class:`ServiceSpec`, on
``lblab_core.config``; the ``topology:`` models, the address types and :func:`check_graph` are
in ``controllers.config_topology``, re-exported here); what needs the whole graph (node-link
consistency, backend hosts, addresses in use) is checked by functions after it. Errors are a
:class:`ConfigError` with every problem, one line each, e.g.
``ctl.yaml:9: services.web.mode: 'l5': expected one of l2, l3, l4, group, proactive``.
"""
import ipaddress
from dataclasses import dataclass
from typing import Annotated, Optional

import networkx as nx
import pydantic
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, field_validator
from pydantic_core import PydanticCustomError

from controllers.config_topology import (  # noqa: F401 -- re-exported
    IPv4, MAC, OF_PORT_MAX, Link, Node, Topology, _graph_of, check_graph)
from lb_apps import custom_balancer as cb
from lb_apps.algorithm_field import file_form
from lblab_core.config import Problem, format_problem, input_problems
from lblab_core import config as C
from lblab_core import loader
from lblab_core.errors import InputError
from topologies import graphs

MODES = ("l2", "l3", "l4", "group", "proactive")
# Modes whose data path is a packet-in per new connection/client (exact algorithm choices) and
# modes that run entirely in Open vSwitch conntrack (no packet-in per flow).
REACTIVE_MODES = ("l2", "l3", "l4")
# l4 least connections (docs/controller.md): flows = a packet-in and a counting flow per
# connection, whose removal ends it (the default); counters = a packet-in per connection, ends
# from the switch's FIN/RST counters read every reweight_interval; group = no packet-in, a
# select group re-weighted from the switch's counters every reweight_interval
IN_FLIGHT_SOURCES = ("flows", "counters", "group")
SWITCH_IN_FLIGHT_ALGORITHMS = ("least_connections", "weighted_least_connections")
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
ALGORITHMS = tuple(dict.fromkeys(a for algs in MODE_ALGORITHMS.values() for a in algs))
DEFAULT_ALGORITHM = {"l2": "round_robin", "l3": "round_robin", "l4": "round_robin",
                     "group": "five_tuple_hash", "proactive": "ip_prefix"}
PROTOCOLS = {"tcp": 6, "udp": 17}
HEALTH_KINDS = ("tcp", "arp", "none")
MAX_WEIGHT = 65535  # an OpenFlow bucket weight is 16 bits


class ConfigError(InputError, ValueError):
    """Invalid controller config: every problem, one line each (``errors``).

    Args:
        problems (list[lblab_core.config.Problem]): the located problems.
        source (str|None): the file name (None: lines are ``key.path: problem``).
    Attributes:
        problems (list): as given.
        path (str): the first problem's key path (``services.web.port``).
        problem (str): the first problem's message.
    """

    def __init__(self, problems, source=None):
        self.problems = list(problems)
        first = self.problems[0]
        self.path, self.problem = first.path, first.message
        super().__init__([format_problem(source, p) for p in self.problems])


# -- value types ------------------------------------------------------------------------------

def _pool_entry(value):
    # `h6: 2` is short for `h6: {weight: 2}`; a bad short weight is reported at `h6`.
    return value if isinstance(value, dict) else {"weight": _WEIGHT.validate_python(value)}


Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]
_WEIGHT = TypeAdapter(Weight, config=pydantic.ConfigDict(strict=True))


class Health(C.Model):
    """Active health probing of a service's backends."""
    kind: Annotated[str, C.one_of(HEALTH_KINDS)] = "tcp"
    interval: Annotated[float, Field(ge=0.05, le=3600, allow_inf_nan=False)] = 1.0
    rise: Annotated[int, Field(ge=1, le=100)] = 2
    fall: Annotated[int, Field(ge=1, le=100)] = 3


class PoolEntry(C.Model):
    """One backend of a pool as written: ``{weight: n}`` (or just ``n``); 0 = drained."""
    weight: Weight = 1


def _pool_not_empty(pool):
    if not pool:
        raise PydanticCustomError("empty_pool", "expected at least one backend host")
    return pool


class ServiceSpec(C.Model):
    """One service as written in ``services:`` (resolved into :class:`Service`)."""
    vip: IPv4
    vmac: Optional[MAC] = None
    protocol: Annotated[str, C.one_of(tuple(PROTOCOLS))] = "tcp"
    port: C.Port
    mode: Annotated[str, C.one_of(MODES)] = "l4"
    algorithm: Optional[Annotated[str, BeforeValidator(file_form)]] = None
    backends: Annotated[dict[C.Name, Annotated[PoolEntry, BeforeValidator(_pool_entry)]],
                        AfterValidator(_pool_not_empty)]
    idle_timeout: Annotated[int, Field(ge=1, le=65535)] = 5
    health: Health = Health()
    conntrack: bool = False
    in_flight: Annotated[str, C.one_of(IN_FLIGHT_SOURCES)] = "flows"

    @field_validator("algorithm")
    @classmethod
    def _algorithm_of_mode(cls, value, info):
        mode = info.data.get("mode")
        choices = MODE_ALGORITHMS.get(mode, ALGORITHMS)
        if cb.is_file_algorithm(value):
            if mode in MODE_ALGORITHMS and mode not in REACTIVE_MODES:
                raise PydanticCustomError(
                    "file_mode", "a balancer from a file ({file}) needs a mode that asks the "
                    "balancer per connection or client (l2, l3, l4); mode {mode} balances in "
                    "the switch without asking it", {"file": cb.describe(value), "mode": mode})
            return value
        if value not in choices:
            where = f" (mode {mode})" if mode in MODE_ALGORITHMS else ""
            raise PydanticCustomError("one_of", "unknown algorithm", {
                "value": repr(value), "expected": ", ".join(choices) + where,
                "choices": choices})
        return value

    @field_validator("conntrack")
    @classmethod
    def _conntrack_of_group(cls, value, info):
        mode = info.data.get("mode")
        if value and mode is not None and mode != "group":
            raise PydanticCustomError(
                "group_only", "applies to mode group only, not {mode} (the other modes choose "
                "their data path by mode and algorithm)", {"mode": mode})
        return value

    @field_validator("in_flight")
    @classmethod
    def _in_flight_switch(cls, value, info):
        mode, protocol = info.data.get("mode"), info.data.get("protocol")
        algorithm = info.data.get("algorithm") or DEFAULT_ALGORITHM.get(mode)
        if value != "flows" and mode is not None and (
                mode != "l4" or protocol != "tcp" or algorithm not in SWITCH_IN_FLIGHT_ALGORITHMS):
            raise PydanticCustomError(
                "in_flight_l4", "expected mode l4, protocol tcp and algorithm "
                "{algorithms} (got mode {mode}, protocol {protocol}, algorithm {algorithm})",
                {"algorithms": " or ".join(SWITCH_IN_FLIGHT_ALGORITHMS), "mode": mode,
                 "protocol": protocol, "algorithm": algorithm})
        return value


def _api_port_free(value, info):
    hosts = {info.data.get("ofp_host"), info.data.get("api_host")}
    if value and value == info.data.get("ofp_port") and (len(hosts) == 1 or "0.0.0.0" in hosts):
        raise PydanticCustomError("port_clash", "is also the OpenFlow port (ofp_port) on "
                                                "{host}; expected another port, or 0 for no API",
                                  {"host": info.data.get("api_host")})
    return value


class ControllerSettings(C.Model):
    """Where the controller listens, its rate limits, probe addresses and seed."""
    ofp_host: IPv4 = "127.0.0.1"
    ofp_port: C.Port = 6653
    api_host: IPv4 = "127.0.0.1"
    api_port: Annotated[C.PortOrAny, AfterValidator(_api_port_free)] = \
        Field(default=8080, validate_default=True)
    packet_in_rate: Annotated[int, Field(ge=1, le=10 ** 6)] = 5000
    packet_in_port_share: Annotated[float, Field(ge=0.01, le=1.0, allow_inf_nan=False)] = 0.5
    packet_in_meter: bool = True
    probe_ip: IPv4 = "10.255.255.254"
    probe_mac: MAC = "02:00:00:00:fe:fe"
    stats_interval: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 2.0
    reweight_interval: Annotated[float, Field(ge=0.01, le=60, allow_inf_nan=False)] = 0.1
    seed: C.Seed = 0


class ConfigFile(C.Model):
    """The whole file as written: the three sections."""
    controller: ControllerSettings = ControllerSettings()
    topology: Topology
    services: dict[C.Name, ServiceSpec] = {}


# -- what the rest of the controller reads ----------------------------------------------------

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
    health: Health = Health()
    conntrack: bool = False  # group mode: connections pinned in conntrack (else stateless)
    in_flight: str = "flows"  # l4 least connections: flows | counters | group

    @property
    def ip_proto(self):
        """int: the IP protocol number (6 or 17)."""
        return PROTOCOLS[self.protocol]


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


def vmac_for(vip):
    """Return the default virtual MAC of a VIP: locally administered, low 32 bits = the address.

    Args:
        vip (str): IPv4 address.
    Returns:
        str: ``02:00:`` followed by the four address bytes in hex.
    """
    raw = ipaddress.IPv4Address(vip).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in raw)


def graph_to_data(graph):
    """Return JSON-ready node-link data of ``graph`` (what ``topology:`` accepts)."""
    return nx.node_link_data(graph, edges="edges")


def parse_weight(path, value):
    """Return a backend weight (0 = drain) or raise :class:`ConfigError` naming ``path``."""
    try:
        return _WEIGHT.validate_python(value)
    except pydantic.ValidationError as exc:
        problems = input_problems(PoolEntry, exc)
    raise ConfigError([p._replace(path=path) for p in problems])


def _validate(model, data, lines, prefix, problems):
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems.extend(input_problems(model, exc, lines, prefix))
        return None


def _build_graph(topo, lines, problems):
    """Return the graph of a validated :class:`Topology` (None after a problem)."""
    if topo.name is not None:
        try:
            return graphs.build(topo.name, topo.params)
        except graphs.TopologyError as exc:
            param = getattr(exc, "param", None)  # the parameter it blames, if it names one
            at = ("topology", "params") + ((param,) if param in topo.params else ())
            problems.append(Problem(_line(lines, at), at, loader.format_path(at), str(exc)))
            return None
    found = check_graph(topo, ("topology",))
    problems.extend(Problem(_line(lines, loc), loc, loader.format_path(loc), message)
                    for loc, message in found)
    return None if found else _graph_of(topo)


def _line(lines, loc):
    lines = lines or {}
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc)


def _resolve(file, graph, lines, base=None):
    """Return (services, problems): each :class:`ServiceSpec` against the graph (a balancer
    file's path made absolute against ``base``, then loaded and tried on a test pool)."""
    problems = []

    def fail(loc, message):
        problems.append(Problem(_line(lines, loc), loc, loader.format_path(loc), message))

    hosts = graphs.hosts(graph)
    host_ips = {graph.nodes[h]["ip"]: h for h in hosts}
    host_macs = {graph.nodes[h]["mac"].lower(): h for h in hosts}
    settings = file.controller
    if settings.probe_ip in host_ips:
        fail(("controller", "probe_ip"), f"{settings.probe_ip} is the address of host "
                                         f"{host_ips[settings.probe_ip]}; expected an unused "
                                         "address")
    ips = {settings.probe_ip: "controller.probe_ip"}
    macs = {settings.probe_mac: "controller.probe_mac"}
    owners = {}
    services = []
    for name, spec in file.services.items():
        at = ("services", name)
        vmac = spec.vmac or vmac_for(spec.vip)
        for value, used, kind, key in ((spec.vip, ips, host_ips, "vip"),
                                       (vmac, macs, host_macs, "vmac")):
            if key == "vmac" and spec.vmac is None and spec.vip in ips | host_ips.keys():
                continue  # derived from a VIP already reported
            if value in kind:
                fail(at + (key,), f"{value} is the address of host {kind[value]}; expected an "
                                  "unused address")
            elif value in used:
                fail(at + (key,), f"{value} is already used by {used[value]}")
            used[value] = f"services.{name}.{key}"
        backends = []
        for host, entry in spec.backends.items():
            if host not in hosts:
                shown = ", ".join(hosts[:12]) + (", ..." if len(hosts) > 12 else "")
                fail(at + ("backends", host), f"unknown backend host {host!r}; expected a host "
                     f"of the topology ({shown or 'none'}){C.did_you_mean(host, hosts)}")
                continue
            key = (host, spec.protocol, spec.port)
            if owners.setdefault(key, name) != name:
                fail(at + ("backends", host), f"{host} {spec.protocol}/{spec.port} already serves "
                                              f"service {owners[key]}; expected one service per "
                                              "port")
            node = graph.nodes[host]
            backends.append(Backend(host, node["ip"], node["mac"].lower(), entry.weight))
        health = spec.health
        if spec.protocol == "udp" and health.kind == "tcp":
            health = health.model_copy(update={"kind": "arp"})  # a TCP probe cannot test UDP
        algorithm = cb.resolve(spec.algorithm or DEFAULT_ALGORITHM[spec.mode],
                               base or cb.base_dir(None))
        if cb.is_file_algorithm(algorithm):
            try:
                cb.check_file(algorithm)
            except cb.BalancerFileError as exc:
                fail(at + ("algorithm",), str(exc))
        services.append(Service(
            name=name, vip=spec.vip, vmac=vmac, protocol=spec.protocol, port=spec.port,
            mode=spec.mode, algorithm=algorithm,
            backends=tuple(backends), idle_timeout=spec.idle_timeout, health=health,
            conntrack=spec.conntrack, in_flight=spec.in_flight))
    return tuple(services), problems


def parse_config(data, source=None, lines=None):
    """Return a validated :class:`Config` from a plain dict.

    Args:
        data (dict): the parsed YAML/JSON document.
        source (str|None): the file name, for errors (None: errors are ``key.path: problem``).
        lines (dict[tuple, int]|None): key path -> line, from ``lblab_core.loader``.
    Returns:
        Config: settings, graph and services.
    Raises:
        ConfigError: every problem of the file's shape (or, once that is right, of the graph
            and the services against it), each naming its key path, value and expectation.
    """
    problems = []
    file = _validate(ConfigFile, data, lines, (), problems)
    if file is None:
        raise ConfigError(problems, source)
    graph = _build_graph(file.topology, lines, problems)
    if graph is None:
        raise ConfigError(problems, source)
    services, problems = _resolve(file, graph, lines, cb.base_dir(source))
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0), source)
    return Config(controller=file.controller, graph=graph, services=services)


def with_overrides(config, **overrides):
    """Return ``config`` with controller settings replaced (command-line flags), checked as the
    file's are.

    Args:
        config (Config): a parsed config.
        **overrides: setting name -> value (e.g. ``ofp_port=7000``).
    Returns:
        Config: the new config.
    Raises:
        ConfigError: ``--ofp-port: 0: expected a number >= 1`` for a flag's problem, or the
            setting it clashes with.
    """
    if not overrides:
        return config
    try:
        settings = ControllerSettings.model_validate({**config.controller.model_dump(),
                                                      **overrides})
    except pydantic.ValidationError as exc:
        problems = [p._replace(path=f"--{p.loc[0].replace('_', '-')}" if p.loc[0] in overrides
                               else f"controller.{p.path}")
                    for p in input_problems(ControllerSettings, exc)]
        raise ConfigError(problems) from None
    return Config(controller=settings, graph=config.graph, services=config.services)


def load_config(path):
    """Read and parse a YAML or JSON config file (with lblab_core's loader).

    Raises:
        ConfigError: unreadable file, bad YAML/JSON, or an invalid config; every problem, one
            line each, starting with the file name (and line).
    """
    try:
        data, lines = loader.load(path)
    except InputError as exc:
        raise ConfigError([Problem(None, (), "", line) for line in exc.errors]) from None
    return parse_config(data, str(path), lines)
