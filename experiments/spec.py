"""Experiment specs: one YAML file -> typed, frozen, validated objects (pure; reads only the file).

Every error names the file, the line, the key path, the value and what was expected, with a
"did you mean" when a close name exists, e.g.::

    quick.yaml:12: balancers[2].algorithm: unknown 'leastconn'; expected one of round_robin, ...;
    did you mean least_connections?

All errors of a spec are collected and raised together as one :class:`SpecError` before
anything starts. Duplicate YAML keys are an error. ``--set key.path=value`` overrides are applied
to the parsed YAML before validation (:func:`apply_overrides`).
"""
import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass, field

from controllers.config import DEFAULT_ALGORITHM, MODE_ALGORITHMS
from lb_apps.balancing import ALGORITHMS
from lb_apps.engines import check_support
from lb_apps.l7config import L7ConfigError, parse_l7_config
from lblab_core import loader
from lblab_core.errors import InputError
from topologies import graphs

TOPOLOGIES = ("lb_lab", "single", "linear", "tree", "fat_tree", "leaf_spine", "dumbbell")
LAYERS = ("l4", "l7")
L4_MODES = ("l2", "l3", "l4", "group", "proactive")
L7_ENGINES = ("builtin", "haproxy", "nginx")
SERVICE_DISTS = ("fixed", "exponential", "lognormal")
WORKLOAD_TYPES = ("http", "iperf3")
HTTP_MODES = ("open", "closed")
ARRIVALS = ("poisson", "constant")
IPERF_PROTOCOLS = ("tcp", "udp")
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
FAULT_ACTIONS = ("kill_backend", "restore_backend", "link_down", "link_up", "drain_backend",
                 "set_weight", "stop_controller")
BACKEND_FAULTS = ("kill_backend", "restore_backend", "drain_backend", "set_weight")
LINK_FAULTS = ("link_down", "link_up")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# L4 balancing that keeps all connections of a client on one backend (per client, not per
# connection): what an iperf3 test (a control and N data connections) needs.
IPERF_MODES = ("l3", "proactive")
IPERF_ALGORITHMS = ("ip_hash",)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,47}$")
_BITRATE_RE = re.compile(r"^\d+(\.\d+)?[KMG]?$")
_SET_PATH_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class SpecError(InputError, ValueError):
    """An invalid spec; ``errors`` holds every problem found, one line each."""


# ---------------------------------------------------------------------------------------------
# The objects a valid spec becomes.

@dataclass(frozen=True)
class Topology:
    """A topology generator and its parameters (as ``topologies.graphs.build`` takes them)."""
    name: str
    params: dict


@dataclass(frozen=True)
class ServiceTime:
    """Per-request service time: ``dist`` with mean ``mean_ms``; ``sigma`` shapes lognormal."""
    dist: str = "fixed"
    mean_ms: float = 0.0
    sigma: float = 0.5


@dataclass(frozen=True)
class Backend:
    """One backend server; ``capacity`` = most requests served at once (None: unlimited).

    ``weight`` is the share the backend should get; it defaults to its capacity (or 1), and
    fairness metrics normalise each backend's load by it.
    """
    name: str
    weight: float = 1
    capacity: int | None = None
    service: ServiceTime = ServiceTime()
    response_size: int = 1024
    error_rate: float = 0.0


@dataclass(frozen=True)
class Balancer:
    """One balancer to compare: L4 (``mode``) or L7 (``engine`` and the ``l7`` proxy config)."""
    name: str
    layer: str
    algorithm: str
    mode: str | None = None
    engine: str | None = None
    l7: dict | None = None
    conntrack: bool = False  # mode group: keep connections in OVS conntrack (else stateless)


@dataclass(frozen=True)
class RequestKind:
    """One entry of an HTTP request mix, drawn with probability proportional to ``weight``."""
    path: str = "/"
    method: str = "GET"
    weight: float = 1.0
    headers: tuple = ()
    cookies: tuple = ()


@dataclass(frozen=True)
class HttpWorkload:
    """HTTP load: open loop (``rate`` req/s) or closed loop (``users``, ``think_ms``).

    ``rate`` and ``users`` are totals over all clients (the runner splits them evenly); in open
    loop ``users`` bounds the concurrent connections.
    """
    type: str = "http"
    mode: str = "closed"
    rate: float | None = None
    arrival: str = "poisson"
    users: int = 4
    think_ms: float = 0.0
    keepalive: bool = True
    timeout_s: float = 5.0
    session: bool = False
    mix: tuple = (RequestKind(),)


@dataclass(frozen=True)
class IperfWorkload:
    """iperf3 flows from each client to the service (``bitrate`` as iperf3's ``-b``)."""
    type: str = "iperf3"
    protocol: str = "tcp"
    flows: int = 1
    bitrate: str | None = None


@dataclass(frozen=True)
class Sweep:
    """One swept parameter (a key path such as ``workload.users``) and its values."""
    param: str
    values: tuple


@dataclass(frozen=True)
class Fault:
    """At ``at_s`` s after the measurement starts, do ``action`` to ``target`` (``value``)."""
    at_s: float
    action: str
    target: str | None = None
    value: float | None = None


@dataclass(frozen=True)
class Spec:
    """A validated experiment. ``data`` is the resolved plain dict (the spec as run)."""
    name: str
    seed: int
    question: str
    topology: Topology
    backends: tuple
    balancers: tuple
    workload: object
    repetitions: int
    warmup_s: float
    duration_s: float
    sweep: Sweep | None
    faults: tuple
    source: str = field(default="<spec>", compare=False)
    data: dict = field(default_factory=dict, compare=False, repr=False)

    def balancer(self, name):
        """Return the balancer called ``name``."""
        return next(b for b in self.balancers if b.name == name)

    def to_dict(self):
        """Return the spec as a JSON-ready dict (dataclasses as dicts, tuples as lists)."""
        out = dataclasses.asdict(self)
        out.pop("data")
        return out


# ---------------------------------------------------------------------------------------------
# YAML with line numbers, duplicate-key detection and bounds: the one loader in lblab_core.

_fmt = loader.format_path


def _compose(text, source):
    """Parse YAML into plain values plus a map {key path tuple: line number}."""
    try:
        return loader.compose(text, source)
    except InputError as exc:
        raise SpecError(exc.errors) from None


def parse_set_path(text):
    """Split ``balancers[1].algorithm`` or ``balancers.1.algorithm`` into a key path tuple.

    Raises:
        ValueError: an empty or malformed path.
    """
    parts = []
    text = text.strip()
    if not text:
        raise ValueError("empty key path")
    for piece in text.split("."):
        if not piece:
            raise ValueError(f"malformed key path {text!r}")
        matches = list(_SET_PATH_RE.finditer(piece))
        if "".join(m.group(0) for m in matches) != piece:
            raise ValueError(f"malformed key path {text!r}")
        for m in matches:
            if m.group(2) is not None:
                parts.append(int(m.group(2)))
            elif m.group(1).isdigit() and parts:
                parts.append(int(m.group(1)))
            else:
                parts.append(m.group(1))
    return tuple(parts)


def set_path(data, path, value):
    """Return a deep copy of ``data`` with ``value`` at key path ``path`` (creating mappings).

    Raises:
        ValueError: the path goes through a value that is not a mapping or list, or an index
            is out of range.
    """
    data = copy.deepcopy(data) if data is not None else {}
    if not path:
        raise ValueError("empty key path")
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = _fmt(path[:i + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{_fmt(path[:i]) or 'the spec'} is not a list, cannot index "
                                 f"[{part}]")
            if not 0 <= part < len(node):
                raise ValueError(f"{where}: index out of range (the list has {len(node)} "
                                 f"items)")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{_fmt(path[:i]) or 'the spec'} is not a mapping, cannot set "
                                 f"{part!r}")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if isinstance(path[i + 1], int) else {}
                node = node[part]
    return data


def apply_overrides(data, overrides):
    """Apply ``["key.path=value", ...]`` to plain spec data; values are parsed as YAML scalars.

    Returns:
        tuple[dict, list[tuple]]: the new data and the overridden key paths.
    Raises:
        SpecError: a malformed override.
    """
    touched = []
    errors = []
    for item in overrides or ():
        if "=" not in item:
            errors.append(f"--set {item}: expected key.path=value")
            continue
        key, raw = item.split("=", 1)
        try:
            path = parse_set_path(key)
            value = loader.compose(raw, f"--set {key}")[0] if raw.strip() else ""
            data = set_path(data, path, value)
            touched.append(path)
        except InputError as exc:
            errors.extend(exc.errors)
        except ValueError as exc:
            errors.append(f"--set {item}: {exc}")
    if errors:
        raise SpecError(errors)
    return data, touched


# ---------------------------------------------------------------------------------------------
# Validation helpers: each records an error and returns _BAD instead of raising, so every
# problem of a spec is reported at once.

_BAD = object()


def known_algorithms():
    """Return the balancing algorithm names (``lb_apps.balancing.ALGORITHMS``)."""
    return tuple(ALGORITHMS)


def did_you_mean(value, choices):
    """Return ``"; did you mean X?"`` for the closest of ``choices``, or ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class _Check:
    """Collects located errors while a spec is validated."""

    def __init__(self, source, lines, overridden=()):
        self.source = source
        self.lines = lines
        self.overridden = set(overridden)
        self.errors = []

    def where(self, path):
        for i in range(len(path), -1, -1):
            if path[:i] in self.overridden:
                return f"{self.source} (--set {_fmt(path[:i])})"
            if path[:i] in self.lines:
                return f"{self.source}:{self.lines[path[:i]]}"
        return self.source

    def fail(self, path, message):
        self.errors.append(f"{self.where(path)}: {_fmt(path)}: {message}")
        return _BAD

    def mapping(self, path, value, allowed, required=()):
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with keys {', '.join(allowed)}, "
                            f"got {_show(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.fail(path + (key,), f"unknown key {key!r}; expected one of "
                                         f"{', '.join(allowed)}{did_you_mean(key, allowed)}")
        for key in required:
            if key not in value:
                self.fail(path, f"missing required key {key!r}")
        return value

    def choice(self, path, value, choices):
        if value not in choices or isinstance(value, bool):
            return self.fail(path, f"unknown {_show(value)}; expected one of "
                                   f"{', '.join(choices)}{did_you_mean(value, choices)}")
        return value

    def integer(self, path, value, lo=None, hi=None):
        if isinstance(value, bool) or not isinstance(value, int):
            return self.fail(path, f"expected an integer{_range_text(lo, hi)}, got {_show(value)}")
        return self._range(path, value, lo, hi)

    def number(self, path, value, lo=None, hi=None, positive=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            what = "a number > 0" if positive else f"a number{_range_text(lo, hi)}"
            return self.fail(path, f"expected {what}, got {_show(value)}")
        if positive and value <= 0:
            return self.fail(path, f"expected a number > 0, got {value}")
        return self._range(path, value, lo, hi)

    def _range(self, path, value, lo, hi):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return self.fail(path, f"{value} is out of range; expected{_range_text(lo, hi)}")
        return value

    def string(self, path, value):
        if not isinstance(value, str) or not value:
            return self.fail(path, f"expected a non-empty string, got {_show(value)}")
        return value

    def boolean(self, path, value):
        if not isinstance(value, bool):
            return self.fail(path, f"expected true or false, got {_show(value)}")
        return value

    def name(self, path, value):
        if not isinstance(value, str) or not _NAME_RE.match(value):
            return self.fail(path, f"expected a name of letters, digits, '_' or '.' "
                                   f"(1-48 characters, no '-'), got {_show(value)}")
        return value


def _range_text(lo, hi):
    if lo is not None and hi is not None:
        return f" in {lo}..{hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _show(value):
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    return f"{value!r} ({type(value).__name__})"


def _ok(*values):
    return all(v is not _BAD for v in values)


# ---------------------------------------------------------------------------------------------
# Sections.

TOP_KEYS = ("name", "seed", "question", "topology", "backends", "balancers", "workload",
            "repetitions", "warmup_s", "duration_s", "sweep", "faults")
TOPOLOGY_KEYS = ("name", "params")
BACKEND_KEYS = ("name", "weight", "capacity", "service", "response_size", "error_rate")
SERVICE_KEYS = ("dist", "mean_ms", "sigma")
BALANCER_KEYS = ("name", "layer", "mode", "engine", "algorithm", "l7", "conntrack")
HTTP_KEYS = ("type", "mode", "rate", "arrival", "users", "think_ms", "keepalive", "timeout_s",
             "session", "mix")
IPERF_KEYS = ("type", "protocol", "flows", "bitrate")
MIX_KEYS = ("path", "method", "weight", "headers", "cookies")
SWEEP_KEYS = ("param", "values")
FAULT_KEYS = ("at_s", "action", "target", "value")


def _topology(ck, raw, n_backends):
    path = ("topology",)
    if ck.mapping(path, raw, TOPOLOGY_KEYS, required=("name",)) is None:
        return _BAD, None
    name = ck.choice(path + ("name",), raw.get("name"), TOPOLOGIES)
    params = raw.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        ck.fail(path + ("params",), f"expected a mapping of generator parameters, got "
                                    f"{_show(params)}")
        return _BAD, None
    if name is _BAD:
        return _BAD, None
    params = dict(params)
    known = graphs.generator_params(name)
    for key in params:
        if key not in known:
            ck.fail(path + ("params", key), f"unknown parameter {key!r} of {name}; expected one "
                                            f"of {', '.join(known)}{did_you_mean(key, known)}")
            return _BAD, None
    if name == "lb_lab" and "backends" not in params and isinstance(n_backends, int):
        params["backends"] = n_backends
    try:
        graph = graphs.build(name, params)
    except graphs.TopologyError as exc:
        match = re.search(r"parameter '([a-z_]+)'", str(exc))
        key = path + ("params", match.group(1)) if match else path + ("params",)
        ck.fail(key, str(exc))
        return _BAD, None
    return Topology(name=name, params=params), graph


def _service(ck, path, raw):
    if raw is None:
        return ServiceTime()
    if ck.mapping(path, raw, SERVICE_KEYS) is None:
        return _BAD
    dist = ck.choice(path + ("dist",), raw.get("dist", "fixed"), SERVICE_DISTS)
    mean = ck.number(path + ("mean_ms",), raw.get("mean_ms", 0.0), lo=0)
    sigma = ck.number(path + ("sigma",), raw.get("sigma", 0.5), positive=True)
    if "sigma" in raw and dist != "lognormal" and dist is not _BAD:
        ck.fail(path + ("sigma",), f"sigma only applies to dist: lognormal, not {dist!r}")
    if not _ok(dist, mean, sigma):
        return _BAD
    return ServiceTime(dist=dist, mean_ms=float(mean), sigma=float(sigma))


def _backends(ck, raw):
    path = ("backends",)
    if isinstance(raw, int) and not isinstance(raw, bool):
        if ck.integer(path, raw, lo=1, hi=64) is _BAD:
            return _BAD
        return tuple(Backend(name=f"b{i + 1}") for i in range(raw))
    if not isinstance(raw, list) or not raw:
        return ck.fail(path, f"expected a count (integer >= 1) or a non-empty list of "
                             f"backends, got {_show(raw)}")
    out = []
    seen = set()
    for i, item in enumerate(raw):
        p = path + (i,)
        if item is None:
            item = {}
        if ck.mapping(p, item, BACKEND_KEYS) is None:
            out.append(_BAD)
            continue
        name = ck.name(p + ("name",), item.get("name", f"b{i + 1}"))
        if name in seen:
            ck.fail(p + ("name",), f"duplicate backend name {name!r}")
        seen.add(name)
        capacity = item.get("capacity")
        if capacity is not None:
            capacity = ck.integer(p + ("capacity",), capacity, lo=1)
        default_weight = capacity if isinstance(capacity, int) and capacity is not _BAD else 1
        weight = ck.number(p + ("weight",), item.get("weight", default_weight), positive=True)
        service = _service(ck, p + ("service",), item.get("service"))
        size = ck.integer(p + ("response_size",), item.get("response_size", 1024), lo=0,
                          hi=MAX_RESPONSE_BYTES)
        error_rate = ck.number(p + ("error_rate",), item.get("error_rate", 0.0), lo=0, hi=1)
        if _ok(name, capacity, weight, service, size, error_rate):
            out.append(Backend(name=name, weight=weight, capacity=capacity, service=service,
                               response_size=size, error_rate=float(error_rate)))
        else:
            out.append(_BAD)
    return tuple(out) if _ok(*out) else _BAD


def _balancers(ck, raw, algorithms, l7_parser, backends):
    path = ("balancers",)
    if not isinstance(raw, list) or not raw:
        return ck.fail(path, f"expected a non-empty list of balancers, got {_show(raw)}")
    out = []
    seen = set()
    for i, item in enumerate(raw):
        p = path + (i,)
        if ck.mapping(p, item, BALANCER_KEYS, required=("name", "layer")) is None:
            out.append(_BAD)
            continue
        name = ck.name(p + ("name",), item.get("name"))
        if name in seen:
            ck.fail(p + ("name",), f"duplicate balancer name {name!r}")
        seen.add(name)
        layer = ck.choice(p + ("layer",), item.get("layer"), LAYERS)
        mode = engine = l7 = None
        algorithm = _BAD
        conntrack = False
        if "conntrack" in item:
            conntrack = ck.boolean(p + ("conntrack",), item["conntrack"])
            if layer == "l4" and item.get("mode", "l4") != "group":
                conntrack = ck.fail(p + ("conntrack",), "applies to mode: group only (the "
                                                        "other modes choose their data path "
                                                        "by mode and algorithm)")
            elif layer != "l4":
                conntrack = ck.fail(p + ("conntrack",), "applies to layer: l4, mode: group only")
        if layer == "l4":
            for key in ("engine", "l7"):
                if key in item:
                    ck.fail(p + (key,), f"{key!r} applies to layer: l7 only; an l4 balancer "
                                        f"takes mode and algorithm")
            mode = ck.choice(p + ("mode",), item.get("mode", "l4"), L4_MODES)
            if mode is not _BAD:
                choices, default = l4_algorithms(mode, algorithms)
                algorithm = item.get("algorithm", default)
                if algorithm not in choices and algorithm in algorithms:
                    algorithm = ck.fail(p + ("algorithm",), f"mode {mode} cannot balance by "
                                                            f"{algorithm!r}; expected one of "
                                                            f"{', '.join(choices)}")
                else:
                    algorithm = ck.choice(p + ("algorithm",), algorithm, choices)
        elif layer == "l7":
            if "mode" in item:
                ck.fail(p + ("mode",), "'mode' applies to layer: l4 only; an l7 balancer "
                                       "takes engine, algorithm and l7")
            algorithm = ck.choice(p + ("algorithm",), item.get("algorithm", "round_robin"),
                                  algorithms)
            engine = ck.choice(p + ("engine",), item.get("engine", "builtin"), L7_ENGINES)
            l7 = item.get("l7", {})
            if l7 is None:
                l7 = {}
            l7 = _check_l7(ck, p + ("l7",), l7, algorithm, l7_parser, backends)
            if _ok(l7, engine, algorithm) and engine != "builtin":
                _check_engine(ck, p + ("engine",), engine, l7, algorithm, backends)
        if _ok(name, layer, algorithm, mode, engine, l7, conntrack):
            out.append(Balancer(name=name, layer=layer, algorithm=algorithm, mode=mode,
                                engine=engine, l7=l7, conntrack=conntrack))
        else:
            out.append(_BAD)
    return tuple(out) if _ok(*out) else _BAD


def l4_algorithms(mode, algorithms):
    """Return ``(choices, default)`` of L4 ``mode``: what the controller can do in that mode.

    The controller's data path decides: reactive modes (l2, l3, l4) take any algorithm; the
    conntrack modes take one each (``group``: five_tuple_hash, ``proactive``: ip_prefix).
    """
    return tuple(MODE_ALGORITHMS[mode]), DEFAULT_ALGORITHM[mode]


def _check_engine(ck, path, engine, l7, algorithm, backends):
    """HAProxy and nginx cannot express every L7 feature: say which, before anything starts."""
    addresses = {b.name: (f"10.255.0.{i + 1}", b.weight) for i, b in enumerate(backends)}
    problems = check_support(engine, parse_l7_config(resolve_l7(l7, addresses, algorithm)))
    if problems:
        ck.fail(path, f"{engine} cannot express {'; '.join(problems)}; use engine builtin")


def resolve_l7(l7, addresses, algorithm=None, port=80):
    """Return the L7 proxy config with backends filled in from the spec's backends.

    In a spec, the ``l7`` section names backends rather than addressing them: the top-level
    ``backends`` defaults to every spec backend, and a group's ``backends`` is a list of backend
    names. This turns those into the ``{name, address, port, weight}`` entries the proxy takes.

    Args:
        l7 (dict): the balancer's ``l7`` section.
        addresses (dict): backend name -> (address, weight), in spec order.
        algorithm (str|None): the balancer's algorithm (used when ``l7`` sets none).
        port (int): the backends' port.
    Returns:
        dict: a config for ``lb_apps.l7config.parse_l7_config``.
    Raises:
        ValueError: a group names an unknown backend (message names the group and the choices).
    """
    def entry(name):
        if name not in addresses:
            raise ValueError(f"unknown backend {name!r}; expected one of "
                             f"{', '.join(addresses)}{did_you_mean(name, addresses)}")
        address, weight = addresses[name]
        return {"name": name, "address": address, "port": port,
                "weight": max(1, int(round(weight)))}

    data = copy.deepcopy(l7)
    if algorithm is not None:
        data.setdefault("algorithm", algorithm)
    if "backends" not in data:
        data["backends"] = [entry(n) for n in addresses]
    elif isinstance(data["backends"], list):
        data["backends"] = [entry(b) if isinstance(b, str) else b for b in data["backends"]]
    for gname, group in (data.get("groups") or {}).items():
        if isinstance(group, dict) and isinstance(group.get("backends"), list):
            try:
                group["backends"] = [entry(b) if isinstance(b, str) else b
                                     for b in group["backends"]]
            except ValueError as exc:
                raise ValueError(f"groups.{gname}.backends: {exc}") from None
    return data


def _check_l7(ck, path, l7, algorithm, l7_parser, backends):
    if not isinstance(l7, dict):
        return ck.fail(path, f"expected a mapping (the L7 proxy config), got {_show(l7)}")
    if backends is _BAD:
        return dict(l7)
    # Placeholder addresses: the runner resolves the real ones when it writes the proxy config.
    addresses = {b.name: (f"10.255.0.{i + 1}", b.weight) for i, b in enumerate(backends)}
    try:
        data = resolve_l7(l7, addresses, None if algorithm is _BAD else algorithm)
    except ValueError as exc:
        text = str(exc)
        sub, _, problem = text.partition(": ") if text.startswith("groups.") else ("", "", text)
        return ck.fail(path + (parse_set_path(sub) if sub else ()), problem)
    parse, error_type = l7_parser
    try:
        parse(data, ck.source)
    except error_type as exc:
        sub = getattr(exc, "path", "") or ""
        problem = getattr(exc, "problem", None) or str(exc)
        sub_path = parse_set_path(sub) if sub else ()
        return ck.fail(path + sub_path, problem)
    return dict(l7)


def _l7_parser():
    return parse_l7_config, L7ConfigError


def _headers(ck, path, raw, what):
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        return ck.fail(path, f"expected a mapping of {what} name -> value, got {_show(raw)}")
    out = []
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float)) \
                or isinstance(value, bool):
            return ck.fail(path + (key,), f"expected a {what} value (string), got "
                                          f"{_show(value)}")
        out.append((key, str(value)))
    return tuple(out)


def _workload(ck, raw):
    path = ("workload",)
    if not isinstance(raw, dict):
        return ck.fail(path, f"expected a mapping with 'type: http' or 'type: iperf3', got "
                             f"{_show(raw)}")
    kind = ck.choice(path + ("type",), raw.get("type", "http"), WORKLOAD_TYPES)
    if kind is _BAD:
        return _BAD
    if kind == "iperf3":
        ck.mapping(path, raw, IPERF_KEYS)
        protocol = ck.choice(path + ("protocol",), raw.get("protocol", "tcp"), IPERF_PROTOCOLS)
        flows = ck.integer(path + ("flows",), raw.get("flows", 1), lo=1, hi=128)
        bitrate = raw.get("bitrate")
        if bitrate is not None:
            bitrate = str(bitrate)
            if not _BITRATE_RE.match(bitrate):
                bitrate = ck.fail(path + ("bitrate",), f"expected a rate as iperf3 takes it "
                                                       f"('10M', '500K', '1G'), got {bitrate!r}")
        if not _ok(protocol, flows, bitrate):
            return _BAD
        return IperfWorkload(protocol=protocol, flows=flows, bitrate=bitrate)
    ck.mapping(path, raw, HTTP_KEYS)
    mode = ck.choice(path + ("mode",), raw.get("mode", "closed"), HTTP_MODES)
    rate = raw.get("rate")
    if mode == "open":
        if rate is None:
            rate = ck.fail(path + ("rate",), "an open-loop workload needs rate (requests/s, "
                                             "all clients together)")
        else:
            rate = ck.number(path + ("rate",), rate, positive=True)
    elif rate is not None and mode is not _BAD:
        rate = ck.fail(path + ("rate",), "rate applies to mode: open only (closed loop sets "
                                         "users and think_ms)")
    arrival = ck.choice(path + ("arrival",), raw.get("arrival", "poisson"), ARRIVALS)
    users = ck.integer(path + ("users",), raw.get("users", 4), lo=1, hi=4096)
    think = ck.number(path + ("think_ms",), raw.get("think_ms", 0.0), lo=0)
    keepalive = ck.boolean(path + ("keepalive",), raw.get("keepalive", True))
    timeout = ck.number(path + ("timeout_s",), raw.get("timeout_s", 5.0), positive=True)
    session = ck.boolean(path + ("session",), raw.get("session", False))
    mix = raw.get("mix", [{"path": "/"}])
    if not isinstance(mix, list) or not mix:
        mix = ck.fail(path + ("mix",), f"expected a non-empty list of requests, got "
                                       f"{_show(mix)}")
    else:
        kinds = []
        for i, item in enumerate(mix):
            p = path + ("mix", i)
            if ck.mapping(p, item, MIX_KEYS) is None:
                kinds.append(_BAD)
                continue
            req_path = ck.string(p + ("path",), item.get("path", "/"))
            if req_path is not _BAD and not req_path.startswith("/"):
                req_path = ck.fail(p + ("path",), f"a request path starts with '/', got "
                                                  f"{req_path!r}")
            method = ck.choice(p + ("method",), item.get("method", "GET"), HTTP_METHODS)
            weight = ck.number(p + ("weight",), item.get("weight", 1.0), positive=True)
            headers = _headers(ck, p + ("headers",), item.get("headers"), "header")
            cookies = _headers(ck, p + ("cookies",), item.get("cookies"), "cookie")
            if _ok(req_path, method, weight, headers, cookies):
                kinds.append(RequestKind(path=req_path, method=method, weight=float(weight),
                                         headers=headers, cookies=cookies))
            else:
                kinds.append(_BAD)
        mix = tuple(kinds) if _ok(*kinds) else _BAD
    if not _ok(mode, rate, arrival, users, think, keepalive, timeout, session, mix):
        return _BAD
    return HttpWorkload(mode=mode, rate=None if rate is None else float(rate), arrival=arrival,
                        users=users, think_ms=float(think), keepalive=keepalive,
                        timeout_s=float(timeout), session=session, mix=mix)


def _faults(ck, raw, backends, graph, duration):
    path = ("faults",)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        return ck.fail(path, f"expected a list of faults, got {_show(raw)}")
    names = [b.name for b in backends] if backends is not _BAD else None
    out = []
    for i, item in enumerate(raw):
        p = path + (i,)
        if ck.mapping(p, item, FAULT_KEYS, required=("at_s", "action")) is None:
            out.append(_BAD)
            continue
        at = ck.number(p + ("at_s",), item.get("at_s"), lo=0)
        if at is not _BAD and isinstance(duration, (int, float)) and at >= duration:
            at = ck.fail(p + ("at_s",), f"{at} is not within the measurement "
                                        f"(duration_s: {duration}); expected 0 <= at_s < "
                                        f"{duration}")
        action = ck.choice(p + ("action",), item.get("action"), FAULT_ACTIONS)
        target = item.get("target")
        value = item.get("value")
        if action in BACKEND_FAULTS:
            if names is not None:
                target = ck.choice(p + ("target",), target, names)
        elif action in LINK_FAULTS:
            target = _link_target(ck, p + ("target",), target, graph)
        elif action == "stop_controller" and target is not None:
            target = ck.fail(p + ("target",), "stop_controller takes no target")
        if action == "set_weight":
            value = ck.number(p + ("value",), value, lo=0)
        elif value is not None and action is not _BAD:
            value = ck.fail(p + ("value",), f"value applies to set_weight only, not {action}")
        if _ok(at, action, target, value):
            out.append(Fault(at_s=float(at), action=action, target=target,
                             value=None if value is None else float(value)))
        else:
            out.append(_BAD)
    if not _ok(*out):
        return _BAD
    return tuple(sorted(out, key=lambda f: f.at_s))


def _link_target(ck, path, target, graph):
    if not isinstance(target, str) or target.count("-") != 1:
        return ck.fail(path, f"expected a link as 'a-b' (e.g. 's1-h6'), got {_show(target)}")
    if graph is None:
        return target
    a, b = target.split("-")
    if not graph.has_edge(a, b):
        links = sorted(f"{x}-{y}" for x, y in graph.edges)
        return ck.fail(path, f"no link {target!r} in the topology; links are "
                             f"{', '.join(links[:12])}{' …' if len(links) > 12 else ''}"
                             f"{did_you_mean(target, links)}")
    return target


def _roles_fit(ck, graph, backends, balancers, workload):
    """The topology must have hosts for the clients, the backends and (for L7) the lb."""
    if graph is None or backends is _BAD:
        return
    n_hosts = len(graphs.hosts(graph))
    needs_lb = balancers is not _BAD and any(b.layer == "l7" for b in balancers)
    role_backends = graphs.hosts(graph, "backend")
    if role_backends and len(role_backends) != len(backends):
        ck.fail(("backends",), f"{len(backends)} backends but the topology has "
                               f"{len(role_backends)} backend hosts "
                               f"({', '.join(role_backends)}); make them equal")
        return
    if role_backends and needs_lb and not graphs.hosts(graph, "lb"):
        ck.fail(("topology", "name"), f"{graph.graph['topology']} has no lb host for the "
                                      f"layer: l7 balancers; use lb_lab or a topology "
                                      f"without host roles (single, tree, …)")
        return
    if not role_backends:
        need = len(backends) + 1 + (1 if needs_lb else 0)
        if n_hosts < need:
            ck.fail(("topology", "params"), f"{n_hosts} hosts cannot hold {len(backends)} "
                                            f"backends, {'an lb host and ' if needs_lb else ''}"
                                            f"at least one client (need {need})")


def parse_spec(data, source="<spec>", lines=None, overridden=()):
    """Validate plain spec data (a dict from YAML) and build a :class:`Spec`.

    Args:
        data (dict): the parsed YAML.
        source (str): file name for messages.
        lines (dict|None): {key path tuple: line} from the YAML loader.
        overridden (iterable[tuple]): key paths set by ``--set`` (named in messages).
    Returns:
        Spec: the validated spec.
    Raises:
        SpecError: every problem found, each naming file, line, key path and what was expected.
    """
    ck = _Check(source, lines or {}, overridden)
    return _parse(ck, data, source, sweep_check=True)


def _parse(ck, data, source, sweep_check):
    if ck.mapping((), data, TOP_KEYS, required=("name", "topology", "backends", "balancers",
                                                "workload")) is None:
        raise SpecError(ck.errors)
    name = ck.name(("name",), data.get("name")) if "name" in data else _BAD
    seed = ck.integer(("seed",), data.get("seed", 1), lo=0)
    question = data.get("question", "")
    if not isinstance(question, str):
        question = ck.fail(("question",), f"expected text, got {_show(question)}")
    backends = _backends(ck, data.get("backends")) if "backends" in data else _BAD
    n_backends = len(backends) if backends is not _BAD else None
    topology, graph = (_topology(ck, data.get("topology"), n_backends) if "topology" in data
                       else (_BAD, None))
    balancers = (_balancers(ck, data.get("balancers"), known_algorithms(), _l7_parser(),
                            backends)
                 if "balancers" in data else _BAD)
    workload = _workload(ck, data.get("workload")) if "workload" in data else _BAD
    repetitions = ck.integer(("repetitions",), data.get("repetitions", 1), lo=1, hi=100)
    warmup = ck.number(("warmup_s",), data.get("warmup_s", 1.0), lo=0, hi=600)
    duration = ck.number(("duration_s",), data.get("duration_s", 10.0), lo=0.5, hi=3600)
    faults = _faults(ck, data.get("faults"), backends, graph,
                     duration if duration is not _BAD else None)
    if faults is not _BAD and faults and workload is not _BAD and workload.type == "iperf3":
        ck.fail(("faults",), "faults are only supported with an http workload")
    if workload is not _BAD and workload.type == "iperf3" and balancers is not _BAD:
        if workload.protocol == "udp":
            ck.fail(("workload", "protocol"), "udp is not supported yet: an iperf3 UDP test "
                                              "needs a TCP control connection to the same "
                                              "VIP and port, and the controller balances one "
                                              "protocol per VIP; use tcp")
        for i, b in enumerate(balancers):
            if b.layer == "l7":
                ck.fail(("balancers", i, "layer"), "an iperf3 workload needs layer: l4 "
                                                   "balancers (the L7 proxy speaks HTTP)")
            elif not (b.mode in IPERF_MODES or b.algorithm in IPERF_ALGORITHMS):
                ck.fail(("balancers", i), f"{b.mode}/{b.algorithm} balances each connection "
                                          f"on its own, but an iperf3 test's control and "
                                          f"data connections must reach the same server; "
                                          f"use mode {' or '.join(IPERF_MODES)}, or "
                                          f"algorithm {' or '.join(IPERF_ALGORITHMS)}")
    _roles_fit(ck, graph, backends, balancers, workload)
    sweep = None
    if data.get("sweep") is not None:
        # Check each sweep point only once the base spec is valid, so a problem is said once.
        sweep = _sweep(ck, data, source) if sweep_check and not ck.errors else _BAD
    if ck.errors:
        raise SpecError(ck.errors)
    return Spec(name=name, seed=seed, question=question, topology=topology, backends=backends,
                balancers=balancers, workload=workload, repetitions=repetitions,
                warmup_s=float(warmup), duration_s=float(duration), sweep=sweep,
                faults=faults, source=source, data=copy.deepcopy(data))


def _sweep(ck, data, source):
    path = ("sweep",)
    raw = data["sweep"]
    if ck.mapping(path, raw, SWEEP_KEYS, required=("param", "values")) is None:
        return _BAD
    param = ck.string(path + ("param",), raw.get("param"))
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        return ck.fail(path + ("values",), f"expected a non-empty list of values, got "
                                           f"{_show(values)}")
    if param is _BAD:
        return _BAD
    try:
        key = parse_set_path(param)
    except ValueError as exc:
        return ck.fail(path + ("param",), str(exc))
    if key[0] in ("sweep", "name", "balancers"):
        return ck.fail(path + ("param",), f"cannot sweep {param!r}; balancers are already "
                                          f"compared, sweep a workload, backend or topology "
                                          f"parameter")
    if len(set(map(repr, values))) != len(values):
        return ck.fail(path + ("values",), "values must be distinct")
    for i, value in enumerate(values):
        try:
            variant = set_path(data, key, value)
        except ValueError as exc:
            ck.fail(path + ("param",), str(exc))
            return _BAD
        variant.pop("sweep")
        sub = _Check(source, {})
        try:
            _parse(sub, variant, source, sweep_check=False)
        except SpecError as exc:
            for err in exc.errors:
                ck.fail(path + ("values", i), f"with {param} = {value!r}: "
                                              f"{err.split(': ', 1)[1]}")
    return Sweep(param=param, values=tuple(values))


def variant(spec, value):
    """Return the spec with its swept parameter set to ``value`` (and no sweep).

    Args:
        spec (Spec): a spec with a sweep.
        value: one of ``spec.sweep.values``.
    Returns:
        Spec: the spec for that sweep point.
    """
    data = set_path(spec.data, parse_set_path(spec.sweep.param), value)
    data.pop("sweep")
    return _parse(_Check(spec.source, {}), data, spec.source, sweep_check=False)


def loads_spec(text, source="<spec>", overrides=()):
    """Parse and validate spec text (YAML), applying ``--set`` overrides first.

    Raises:
        SpecError: invalid YAML, duplicate keys or an invalid spec (every problem, located).
    """
    data, lines = _compose(text, source)
    data, touched = apply_overrides(data if data is not None else {}, overrides)
    return parse_spec(data, source, lines, touched)


def load_spec(path, overrides=()):
    """Read, parse and validate the spec file at ``path`` (see :func:`loads_spec`).

    Raises:
        SpecError: the file is unreadable or the spec invalid.
    """
    try:
        text = loader.read(path)
    except InputError as exc:
        raise SpecError(exc.errors) from None
    return loads_spec(text, str(path), overrides)


def configurations(spec):
    """Return the runs of a spec: ``(config_id, balancer, sweep_value, spec_for_point)``.

    ``config_id`` names the raw folder (``<balancer>`` or ``<balancer>-<param>=<value>``
    without characters that are unsafe in file names).
    """
    points = [(None, spec)] if spec.sweep is None else [(v, variant(spec, v))
                                                         for v in spec.sweep.values]
    out = []
    for balancer in spec.balancers:
        for value, point in points:
            if value is None:
                config = balancer.name
            else:
                short = spec.sweep.param.split(".")[-1]
                config = f"{balancer.name}-{short}{_safe(value)}"
            out.append((config, balancer, value, point))
    return out


def _safe(value):
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(value))
