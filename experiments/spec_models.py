"""The experiment spec's shape: pydantic models on ``lblab_core.config``, the one source of truth
for what a spec may hold (keys, types, ranges, choices, defaults) and for its JSON Schema.

Rules that relate several fields (a fault's target must be a backend of the spec, an algorithm
must suit the balancer's mode, ...) are in :mod:`experiments.spec_checks`. Every choice comes
from the module that owns it: algorithms from ``lb_apps.balancing``, modes and the algorithms of
each mode from ``controllers.config``, HTTP methods, loop modes and arrivals from
``lb_apps.loadgen.workload``, service distributions from ``lb_apps.backend.model``, engines from
``lb_apps.engines.render``, topologies from ``topologies.graphs``. Every limit is its consumer's.
"""
import itertools
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BeforeValidator, ConfigDict, Discriminator, Field,
                      PrivateAttr, Tag, WithJsonSchema, model_validator)
from pydantic_core import PydanticCustomError, PydanticKnownError

from controllers.config import (DEFAULT_ALGORITHM, IN_FLIGHT_SOURCES, MAX_WEIGHT,
                                MODE_ALGORITHMS, MODES, SWITCH_IN_FLIGHT_ALGORITHMS)
from lb_apps.backend import model as backend_model
from lb_apps.loadgen import workload as load_model
from lb_apps.algorithm_field import algorithm_type
from lb_apps.balancing import ALGORITHMS
from lb_apps.engines.render import ENGINES
from lblab_core import config as C
from topologies import graphs
from topologies.cluster import placement as cluster_placement

TOPOLOGIES = tuple(sorted(graphs.GENERATORS, key=lambda name: name != "lb_lab"))
LAYERS = ("l4", "l7")
L4_MODES = MODES
# an l4 least-connections balancer's in_flight when the spec gives none (docs/controller.md)
DEFAULT_IN_FLIGHT = "counters"
L7_ENGINES = ("builtin",) + tuple(ENGINES)
# What an L4 balancer may name: every shared algorithm and the controller's own (ip_prefix);
# which of them a mode can do is checked against MODE_ALGORITHMS.
L4_ALGORITHMS = tuple(dict.fromkeys(ALGORITHMS + tuple(a for algos in MODE_ALGORITHMS.values()
                                                       for a in algos)))
SERVICE_DISTS = backend_model.SERVICE_DISTS
WORKLOAD_TYPES = ("http", "iperf3")
HTTP_MODES = load_model.MODES
ARRIVALS = load_model.ARRIVALS
HTTP_METHODS = load_model.HTTP_METHODS
IPERF_PROTOCOLS = ("tcp", "udp")
FAULT_ACTIONS = ("kill_backend", "restore_backend", "link_down", "link_up", "drain_backend",
                 "set_weight", "stop_controller", "backend_fault", "link_delay", "link_loss")
BACKEND_FAULTS = ("kill_backend", "restore_backend", "drain_backend", "set_weight",
                  "backend_fault")
# What a backend_fault switches a running backend to (its POST /admin/fault modes).
BACKEND_FAULT_MODES = tuple(backend_model.FAULT_MODES)
LINK_FAULTS = ("link_down", "link_up", "link_delay", "link_loss")
# Link faults that need tc's netem qdisc, with the unit and bound of their value (a delay as a
# topology link takes it, topologies.graphs.MAX_DELAY_MS; a loss in percent).
NETEM_FAULTS = {"link_delay": ("ms", graphs.MAX_DELAY_MS), "link_loss": ("%", 100.0)}
MAX_RESPONSE_BYTES = backend_model.MAX_RESPONSE_BYTES
# L4 balancing that keeps all connections of a client on one backend (per client, not per
# connection): what an iperf3 test (a control and N data connections) needs.
IPERF_MODES = ("l3", "proactive")
IPERF_ALGORITHMS = ("ip_hash",)

# The spec's own bounds: what one lab on one server runs in reasonable time.
MAX_BACKENDS = 64
MAX_TOTAL_USERS = 4096          # virtual users over all clients (each load generator takes more)
MAX_REPETITIONS = 100
MAX_WARMUP_SEC = 600.0
MIN_DURATION_SEC = 0.5
MAX_DURATION_SEC = 3600.0
# Every balancer runs once per sweep point and repetition, in a fresh lab each (~10 s or more):
# past these a spec is a typo, and checking each balancer's l7 section and each sweep point as
# its own spec would keep `lblab validate` busy for minutes.
MAX_BALANCERS = 64
MAX_SWEEP_VALUES = 100
MAX_SWEEP_PARAMS = 8
MAX_SWEEP_POINTS = 100
# balancers x sweep points x repetitions: at ~10 s a run, 5000 runs are about 14 hours
MAX_RUNS = 5000
MAX_FAULTS = 256
# Consumers' bounds. iperf3 opens at most 128 parallel streams (-P).
MAX_IPERF_FLOWS = 128
# lb_apps.loadgen.workload takes a request timeout in (0, 3600] s and a think time in 0..3600 s.
MAX_TIMEOUT_SEC = 3600.0
MAX_THINK_MS = 3_600_000.0
MAX_SERVICE_MS = backend_model.MAX_SERVICE_SEC * 1000.0

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.]{0,47}$"
BITRATE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?[KMG]?$"


def _grammar(pattern, description):
    """A str type that must match ``pattern`` in full (``re.fullmatch``: no final newline)."""
    regex = re.compile(pattern)

    def check(value):
        if not regex.fullmatch(value):
            raise PydanticCustomError("grammar", "expected {what}", {"what": description})
        return value
    return Annotated[str, AfterValidator(check),
                     WithJsonSchema({"type": "string", "pattern": pattern})]


def choice(choices):
    """A str type that must be one of ``choices`` (owned by another module), shown as an enum."""
    return Annotated[str, C.one_of(choices), WithJsonSchema({"type": "string",
                                                             "enum": list(choices)})]


def _tagged(field, default=None):
    """A discriminator: the value of ``field`` picks the model (``default`` when it is absent)."""
    def pick(value):
        # a dict when validating, a model when serialising
        tag = value.get(field, default) if isinstance(value, dict) else getattr(value, field, None)
        return tag if isinstance(tag, str) else None
    pick.field = field  # read by experiments.spec_errors to name the key in messages
    return Discriminator(pick)


def _as_tuple(value):
    return tuple(value) if isinstance(value, list) else value


def _none_is_empty(value):
    return {} if value is None else value


def _no_default(schema):
    schema.pop("default", None)


SpecName = _grammar(NAME_PATTERN, "a name: 1-48 letters, digits, '_' or '.', starting with a "
                                  "letter or digit (no '-': it separates run folder names)")
Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False)]


class Topology(C.Model):
    """A topology generator of ``topologies.graphs`` and its parameters (``lblab topo list``)."""
    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(
        allOf=_params_by_topology()))

    name: choice(TOPOLOGIES) = Field(description="the generator")
    params: Annotated[dict[str, Any], BeforeValidator(_none_is_empty)] = Field(
        default={}, description="the generator's parameters; lb_lab gets `backends` from the "
                                "spec when not given; checked by the generator, including "
                                "the per-server size limits")


def _params_by_topology():
    """JSON Schema hints: each generator's parameter names (the generator checks the values)."""
    out = []
    for name in TOPOLOGIES:
        props = {}
        for param, default in graphs.generator_params(name).items():
            if isinstance(default, int) and not isinstance(default, bool):
                props[param] = {"type": "integer", "default": default}
            elif param.endswith("delay"):
                props[param] = {"type": ["string", "number", "null"]}
            elif param.endswith("max_queue"):
                props[param] = {"type": ["integer", "null"]}
            else:
                props[param] = {"type": ["number", "null"]}
        out.append({"if": {"properties": {"name": {"const": name}}},
                    "then": {"properties": {"params": {"properties": props,
                                                       "additionalProperties": False}}}})
    return out


class ServiceTime(C.Model):
    """Per-request service time: ``dist`` with mean ``mean_ms``; ``sigma`` shapes lognormal."""
    dist: choice(SERVICE_DISTS) = "fixed"
    mean_ms: Annotated[float, Field(ge=0, le=MAX_SERVICE_MS, allow_inf_nan=False)] = 0.0
    sigma: Annotated[float, Field(gt=0, le=backend_model.MAX_SIGMA, allow_inf_nan=False)] = 0.5


class Backend(C.Model):
    """One backend server; ``capacity`` = most requests served at once (None: unlimited).

    ``weight`` is the share the backend should get; it defaults to its capacity (or 1), and
    fairness metrics normalise each backend's load by it. The controller keeps weights in 16
    bits (``controllers.config.MAX_WEIGHT``), so a capacity above that needs its own weight.
    """
    name: SpecName = Field(default=None, description="default: b<position>",
                           json_schema_extra=_no_default)
    weight: Weight = Field(default=1.0, description="default: the capacity, else 1")
    capacity: Annotated[int, Field(ge=1, le=backend_model.MAX_CAPACITY)] | None = None
    service: ServiceTime = ServiceTime()
    response_size: Annotated[int, Field(ge=0, le=MAX_RESPONSE_BYTES)] = 1024
    error_rate: C.Fraction = 0.0
    cache_control: C.HeaderValue | None = Field(
        default=None, description="Cache-Control header of every response (e.g. 'max-age=60': "
                                  "an L7 cache may store it); default none")

    @model_validator(mode="before")
    @classmethod
    def _weight_from_capacity(cls, data):
        if isinstance(data, dict) and "weight" not in data:
            capacity = data.get("capacity")
            if isinstance(capacity, int) and not isinstance(capacity, bool) \
                    and 1 <= capacity <= backend_model.MAX_CAPACITY:
                data = {**data, "weight": capacity}
        return data


def _backends_input(value):
    """A count becomes that many default backends; unnamed backends get ``b<position>``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PydanticKnownError("greater_than_equal", {"ge": 1})
        if value > MAX_BACKENDS:
            raise PydanticKnownError("less_than_equal", {"le": MAX_BACKENDS})
        return tuple({"name": f"b{i + 1}"} for i in range(value))
    if isinstance(value, list):
        if not value or len(value) > MAX_BACKENDS:
            raise PydanticCustomError("value_error", "{error}", {
                "error": f"expected 1 to {MAX_BACKENDS} backends, got {len(value)}"})
        items = [{} if item is None else item for item in value]
        return tuple({"name": f"b{i + 1}", **item} if isinstance(item, dict) else item
                     for i, item in enumerate(items))
    raise PydanticCustomError("backends", f"expected a count (1..{MAX_BACKENDS}) or a list of "
                                          f"backends")


class L4Balancer(C.Model):
    """An OpenFlow balancer run by the controller: ``mode`` picks its data path."""
    name: SpecName
    layer: Literal["l4"]
    mode: choice(L4_MODES) = "l4"
    algorithm: algorithm_type(L4_ALGORITHMS) = Field(
        default=None, json_schema_extra=_no_default,
        description="default: the mode's own (" + ", ".join(
            f"{m}: {a}" for m, a in DEFAULT_ALGORITHM.items()) + "); or a balancer from a "
        "file, {file: PATH, class: NAME} (modes l2, l3, l4; PATH relative to the spec)")
    conntrack: bool = Field(default=False, description="mode group only: keep connections in "
                                                       "OVS conntrack (else stateless)")
    in_flight: choice(IN_FLIGHT_SOURCES) | None = Field(
        default=None, json_schema_extra=_no_default,
        description="mode l4 with " + " or ".join(SWITCH_IN_FLIGHT_ALGORITHMS) + " only: where "
        "the in-flight counts come from (docs/controller.md). counters (the default there): a "
        "packet-in per connection, exact choice, ends from the switch's FIN/RST counters; "
        "group: no packet-in, a select group re-weighted from those counters (approximate); "
        "flows: a packet-in and a counting flow per connection, ends after idle_timeout")

    @model_validator(mode="before")
    @classmethod
    def _mode_default_algorithm(cls, data):
        if isinstance(data, dict) and "algorithm" not in data:
            mode = data.get("mode", "l4")
            mode = mode if isinstance(mode, str) and mode in DEFAULT_ALGORITHM else "l4"
            data = {**data, "algorithm": DEFAULT_ALGORITHM[mode]}
        if isinstance(data, dict) and "in_flight" not in data and \
                data.get("mode", "l4") == "l4" and data.get("algorithm") in \
                SWITCH_IN_FLIGHT_ALGORITHMS:
            data = {**data, "in_flight": DEFAULT_IN_FLIGHT}
        return data

    @property
    def engine(self):
        """None: an L4 balancer has no proxy engine."""
        return None

    @property
    def l7(self):
        """None: an L4 balancer has no proxy config."""
        return None


class L7Balancer(C.Model):
    """A reverse proxy on the lb host: ``engine`` runs the ``l7`` config (see docs/l7.md)."""
    name: SpecName
    layer: Literal["l7"]
    engine: choice(L7_ENGINES) = "builtin"
    algorithm: algorithm_type(ALGORITHMS) = Field(
        default="round_robin", description="or a balancer from a file, {file: PATH, class: "
                                            "NAME} (engine builtin; PATH relative to the spec)")
    l7: Annotated[dict[str, Any], BeforeValidator(_none_is_empty)] = Field(
        default={}, description="the L7 proxy config without addresses: `backends` and a "
                                "group's `backends` name spec backends (default: all)")

    @property
    def mode(self):
        """None: an L7 balancer has no controller mode."""
        return None

    @property
    def conntrack(self):
        """False: conntrack is an L4 group option."""
        return False

    @property
    def in_flight(self):
        """None: in_flight is an L4 least-connections option."""
        return None


Balancer = Annotated[Union[Annotated[L4Balancer, Tag("l4")], Annotated[L7Balancer, Tag("l7")]],
                     _tagged("layer")]


def _loadgen_type(name):
    """The load generator's own type of a mix field: the spec takes what it takes."""
    return load_model.MixItem.model_fields[name].rebuild_annotation()


class RequestKind(C.Model):
    """One entry of an HTTP request mix, drawn with probability proportional to ``weight``."""
    path: C.UrlPath = "/"
    method: choice(HTTP_METHODS) = "GET"
    weight: _loadgen_type("weight") = 1.0
    headers: _loadgen_type("headers") = {}
    cookies: _loadgen_type("cookies") = {}
    body_size: _loadgen_type("body_size") = Field(
        default=0, description="request body bytes (an upload); POST/PUT/PATCH send "
                               "Content-Length even when 0")


class HttpWorkload(C.Model):
    """HTTP load: open loop (``rate`` req/s) or closed loop (``users``, ``think_ms``).

    ``rate`` and ``users`` are totals over all clients (the runner splits them evenly); in open
    loop ``users`` bounds the concurrent connections.
    """
    type: Literal["http"] = "http"
    mode: choice(HTTP_MODES) = "closed"
    rate: Annotated[float, Field(gt=0, le=load_model.MAX_RATE_PER_SEC,
                                 allow_inf_nan=False)] | None = Field(
        default=None, description="requests/s over all clients; open loop only, and required")
    arrival: choice(ARRIVALS) = "poisson"
    users: Annotated[int, Field(ge=1, le=MAX_TOTAL_USERS)] = 4
    think_ms: Annotated[float, Field(ge=0, le=MAX_THINK_MS, allow_inf_nan=False)] = 0.0
    keepalive: bool = True
    timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_SEC, allow_inf_nan=False)] = 5.0
    session: bool = False
    source_ports: choice(load_model.SOURCE_PORT_MODES) = Field(
        default="seeded", description="seeded: each client connection binds its source port "
        "from the run's seed, so a balancer hashing the 5-tuple makes the same choices in "
        "every run of the same seed (repetitions differ in seed on purpose); kernel: the "
        "kernel picks ephemeral ports, new in every run")
    mix: Annotated[tuple[RequestKind, ...], Field(min_length=1),
                   BeforeValidator(_as_tuple)] = (RequestKind(),)


def _bitrate_input(value):
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class IperfWorkload(C.Model):
    """iperf3 flows from each client to the service (``bitrate`` as iperf3's ``-b``)."""
    type: Literal["iperf3"]
    protocol: choice(IPERF_PROTOCOLS) = "tcp"
    flows: Annotated[int, Field(ge=1, le=MAX_IPERF_FLOWS)] = 1
    bitrate: Annotated[_grammar(BITRATE_PATTERN, "a rate as iperf3 takes it ('10M', '500K', "
                                                 "'1G')"),
                       BeforeValidator(_bitrate_input,
                                       json_schema_input_type=Union[str, int])] | None = None


Workload = Annotated[Union[Annotated[HttpWorkload, Tag("http")],
                           Annotated[IperfWorkload, Tag("iperf3")]], _tagged("type", "http")]


SweepValues = Annotated[tuple[Any, ...], Field(min_length=1, max_length=MAX_SWEEP_VALUES),
                        BeforeValidator(_as_tuple)]
SweepParams = Annotated[dict[str, SweepValues],
                        Field(min_length=1, max_length=MAX_SWEEP_PARAMS)]


class Sweep(C.Model):
    """Swept parameters (key paths such as ``workload.users``) and their values.

    ``param``/``values`` sweeps one parameter; ``product`` sweeps every combination of its
    parameters' values; ``zip`` moves its parameters together (lists of equal length). The
    points are the product (or the one parameter) x the zipped tuples; the rules between the
    forms and the cap on points are checked by ``experiments.spec`` (``_check_sweep``).
    """
    param: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="one swept key path (with values)")
    values: SweepValues | None = Field(default=None, description="the values of param")
    product: SweepParams | None = Field(
        default=None, description="key path -> values: every combination")
    zip: SweepParams | None = Field(
        default=None, description="key path -> values (equal lengths): moved together")

    def params(self):
        """Return the swept key paths in spec order (param or product, then zip)."""
        one = {self.param: self.values} if self.param is not None else {}
        return tuple({**one, **(self.product or {}), **(self.zip or {})})

    def points(self):
        """Return every sweep point as a tuple of ``(key path, value)`` pairs in spec order.

        The product's first parameter changes slowest; each product combination is paired
        with every zipped tuple in turn. Assumes the forms were checked (equal zip lengths).
        """
        crossed = {self.param: self.values} if self.param is not None else {}
        crossed.update(self.product or {})
        combos = [tuple(zip(crossed, values)) for values in
                  itertools.product(*crossed.values())] if crossed else [()]
        zipped = self.zip or {}
        tuples = ([tuple(zip(zipped, values)) for values in zip(*zipped.values())]
                  if zipped else [()])
        return [combo + tup for combo in combos for tup in tuples]


class Fault(C.Model):
    """At ``at_s`` s after the measurement starts, do ``action`` to ``target`` (``value``).

    A fault that cannot be applied fails its run, and one a balancer of the spec cannot do
    fails the spec (``experiments.spec_checks``), unless it is ``optional``.
    """
    at_s: Annotated[float, Field(ge=0, le=MAX_DURATION_SEC, allow_inf_nan=False)]
    action: choice(FAULT_ACTIONS)
    target: str | None = Field(default=None, description="a backend name, or a link 'a-b' "
                                                         "(e.g. s1-h6)")
    value: Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)] | None = Field(
        default=None, description="set_weight: the new weight; backend_fault with mode slow: "
                                  "the delay added to each response in ms (default: the "
                                  "backend's 100); link_delay: the link's delay in ms; "
                                  "link_loss: its loss in percent")
    mode: choice(BACKEND_FAULT_MODES) | None = Field(
        default=None, description="backend_fault only: slow (responses delayed by value ms), "
                                  "hang (never answers), close (half a response, then close), "
                                  "refuse (connections refused), none (back to normal)")
    optional: bool = Field(default=False, description="a fault that cannot be applied (or "
                                                      "that a balancer cannot do) is skipped "
                                                      "with the reason and a warning, instead "
                                                      "of failing the run (or the spec)")


MAX_SERVERS = 16
PLACEMENTS = cluster_placement.POLICIES


class ClusterRoles(C.Model):
    """Which server runs each role's hosts (placement ``role``; unnamed roles: the clients on the
    first server, the balancer and the backends on the last)."""

    client: C.Name | None = None
    lb: C.Name | None = None
    backend: C.Name | None = None


class Cluster(C.Model):
    """The servers a lab spans and how its nodes are placed on them (docs/scale.md);
    ``lblab run --servers a,b`` overrides ``servers``."""

    servers: Annotated[tuple[C.Name, ...], Field(min_length=1, max_length=MAX_SERVERS),
                       BeforeValidator(_as_tuple)] = Field(
        description="SSH destinations (Host aliases of the ssh config); localhost is this "
                    "machine")
    placement: choice(PLACEMENTS) = Field(
        default="role", description="role: by the hosts' roles (roles:), switches beside most "
                                    "of their hosts; switchbin, roundrobin, random: the "
                                    "cluster edition's placers")
    roles: ClusterRoles | None = Field(default=None, description="placement role: the server "
                                                                 "of each role")
    ssh_config: str | None = Field(default=None, description="the ssh -F file (default: "
                                                             "$LBLAB_SSH_CONFIG, else ssh's "
                                                             "own)")

    @model_validator(mode="after")
    def _servers_known(self):
        if len(set(self.servers)) != len(self.servers):
            raise PydanticCustomError("cluster", "a server is named twice: {servers}",
                                      {"servers": ", ".join(self.servers)})
        for role in ("client", "lb", "backend"):
            server = getattr(self.roles, role) if self.roles else None
            if server is not None and server not in self.servers:
                raise PydanticCustomError(
                    "cluster", "roles.{role}: {server} is not one of the servers ({servers})",
                    {"role": role, "server": server, "servers": ", ".join(self.servers)})
        return self


def _none_is_no_faults(value):
    return () if value is None else value  # `faults:` with every entry commented out


def _by_time(faults):
    return tuple(sorted(faults, key=lambda f: f.at_s))


class Spec(C.Model):
    """An lblab experiment spec: what to compare (balancers), on what (topology, backends),
    under which load (workload), how often and how long, and what breaks when (faults)."""
    model_config = ConfigDict(title="lblab experiment spec")

    name: SpecName = Field(description="results folder prefix")
    seed: C.Seed = Field(default=1, description="base seed of every random choice; the "
                                                "controller takes 32 bits")
    question: str = Field(default="", description="what the experiment asks; the report "
                                                  "opens with it")
    topology: Topology
    backends: Annotated[tuple[Backend, ...], BeforeValidator(
        _backends_input, json_schema_input_type=Union[
            Annotated[int, Field(ge=1, le=MAX_BACKENDS)],
            Annotated[list[Backend], Field(min_length=1, max_length=MAX_BACKENDS)]])] = Field(
        description="a count, or a list of backends")
    # Field before BeforeValidator: the other order puts minLength, not minItems, in the schema.
    balancers: Annotated[tuple[Balancer, ...], Field(min_length=1, max_length=MAX_BALANCERS),
                         BeforeValidator(_as_tuple)]
    workload: Workload
    repetitions: Annotated[int, Field(ge=1, le=MAX_REPETITIONS)] = 1
    warmup_s: Annotated[float, Field(ge=0, le=MAX_WARMUP_SEC, allow_inf_nan=False)] = 1.0
    duration_s: Annotated[float, Field(ge=MIN_DURATION_SEC, le=MAX_DURATION_SEC,
                                       allow_inf_nan=False)] = 10.0
    sweep: Sweep | None = None
    faults: Annotated[tuple[Fault, ...], Field(max_length=MAX_FAULTS), BeforeValidator(_as_tuple),
                      BeforeValidator(_none_is_no_faults), AfterValidator(_by_time)] = ()
    cluster: Cluster | None = Field(default=None, description="run the lab across several "
                                                              "servers (docs/scale.md)")

    _source: str = PrivateAttr(default="<spec>")
    _data: dict = PrivateAttr(default_factory=dict)

    @property
    def source(self):
        """str: the file the spec came from."""
        return self._source

    @property
    def data(self):
        """dict: the spec as run: the parsed file with ``--set`` overrides, before defaults."""
        return self._data

    def balancer(self, name):
        """Return the balancer called ``name``."""
        return next(b for b in self.balancers if b.name == name)

    def to_dict(self):
        """Return the spec as a JSON-ready dict (every balancer with every balancer key)."""
        out = self.model_dump(mode="json")
        out["balancers"] = [{key: getattr(b, key) for key in BALANCER_KEYS}
                            for b in self.balancers]
        out["source"] = self.source
        return out


BALANCER_KEYS = ("name", "layer", "algorithm", "mode", "engine", "l7", "conntrack", "in_flight")
