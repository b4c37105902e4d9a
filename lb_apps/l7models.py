"""The L7 config's models: the one definition of its shape, grammars and ranges (pure).

Every string that reaches a header, a command line or a rendered HAProxy/nginx config is checked
against its grammar here, and every number carries the range of the consumer that reads it
(the builtin proxy, the balancers, HAProxy 2.6, nginx 1.22). :class:`L7Spec` is the file as
written (and the JSON Schema); :mod:`lb_apps.l7config` assembles it into the ``L7Config`` the
proxy and the engines read. The leaf models (``Backend``, ``Health``, ``Match``, ``Auth``, ...)
are shared by both.
"""
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (AfterValidator, BeforeValidator, Field, ValidationError, ValidationInfo,
                      WrapValidator, field_validator, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from lb_apps.algorithm_field import algorithm_type
from lb_apps.balancing import ALGORITHMS
from lblab_core.config import (TOKEN_PATTERN, HeaderValue, Model, Name, Port, PortOrAny, Token,
                               TupleOf, UrlPath, one_of)

DEFAULT_GROUP = "default"
HASH_KEY_TYPES = ("uri", "header", "cookie", "client_ip")
AUTH_TYPES = ("basic", "bearer")
MAX_WORKERS = 64  # HAProxy 2.6's nbthread limit (MAX_THREADS); also SO_REUSEPORT processes
MAX_RETRIES = 10
# The builtin balancers and nginx take any weight; HAProxy's are 0-256 (engines.check_support).
MAX_WEIGHT = 1000
MAX_TIMEOUT_SEC = 86400.0
MAX_HEALTH_SEC = 3600.0
MAX_HOST_CHARS = 253  # RFC 1035 2.3.4, without the trailing dot
MIB, GIB = 1024 ** 2, 1024 ** 3


def _grammar(pattern, expected, max_length=None, min_length=1):
    """A str type checked by Python's ``re.fullmatch`` with a readable error.

    Python's regex rather than ``Field(pattern=...)`` so the error says what is expected
    (``lblab_core.config`` names only its own patterns); ``fullmatch`` has no "$ before a final
    newline" loophole. The JSON Schema gets the same pattern, anchored.
    """
    compiled = re.compile(pattern)

    def check(value):
        if compiled.fullmatch(value) is None:
            raise PydanticCustomError("grammar", "expected {expected}", {"expected": expected})
        return value
    return Annotated[str, Field(min_length=min_length, max_length=max_length,
                                json_schema_extra={"pattern": f"^{pattern}$"}),
                     AfterValidator(check)]


# -- hosts ------------------------------------------------------------------------------------
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


def _is_host(value, wildcard=False):
    if len(value) > MAX_HOST_CHARS + 1:
        return False
    if "%" not in value:  # IPv6 zone ids would reach the engines' listen lines
        try:
            ipaddress.ip_address(value)
            return True
        except ValueError:
            pass
    name = value[2:] if wildcard and value.startswith("*.") else value
    # A name whose last label is all digits is a mistyped IPv4 address (999.1.1.1), not a name.
    return (_HOST_NAME_RE.fullmatch(name) is not None
            and not name.rstrip(".").rsplit(".", 1)[-1].isdigit())


def _host(value):
    if not _is_host(value):
        raise PydanticCustomError("host", "expected an IP address or a host name (letters, "
                                          "digits, '-' and dots; not all-numeric)")
    return value


def _host_pattern(value):
    if not _is_host(value, wildcard=True):
        raise PydanticCustomError("host", "expected a host name, '*.' and a domain, or an IP "
                                          "address")
    return value.lower().rstrip(".")


_HOST_SCHEMA = {"description": "an IP address or a host name (not all-numeric)",
                "maxLength": MAX_HOST_CHARS + 1}
Host = Annotated[str, Field(json_schema_extra=_HOST_SCHEMA), AfterValidator(_host)]
HostPattern = Annotated[str, Field(json_schema_extra={
    "description": "a host name, '*.domain' for its subdomains, or an IP address"}),
    AfterValidator(_host_pattern)]

# -- other grammars ---------------------------------------------------------------------------
# The realm sits inside a quoted-string of WWW-Authenticate (RFC 9110 11.6.1) and of both
# engines' configs: a header value without '"' and '\'.
Realm = _grammar(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", "a realm: printable ASCII without '\"', "
                 "'\\', CR or LF", max_length=256, min_length=0)
# A basic-auth user id cannot hold ':' (RFC 7617 2); it is also an htpasswd line's first field.
User = _grammar(r"[\x21-\x39\x3b-\x7e]+", "a user name: printable ASCII without spaces or ':'",
                max_length=256)
Password = _grammar(r"[\x20-\x7e]+", "a password: printable ASCII (no CR, LF, tab or NUL)",
                    max_length=1024)
# A credential compares against what follows "Bearer " (spaces stripped): visible ASCII.
BearerToken = _grammar(r"[\x21-\x7e]+", "a bearer token: printable ASCII without spaces",
                       max_length=4096)
FilePath = _grammar(r"[^\x00-\x1f\x7f]+", "a file path without control characters",
                    max_length=4096)
# A regex reaches both engines' configs in quotes: printable ASCII, no control characters.
_REGEX_TEXT = _grammar(r"[\x20-\x7e]+", "a regular expression of printable ASCII",
                       max_length=1024)


def _compiles(value):
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


Regex = Annotated[_REGEX_TEXT, AfterValidator(_compiles)]
# a builtin algorithm or a balancer from a file ({file, class}: lb_apps.algorithm_field)
Algorithm = algorithm_type(ALGORITHMS)


def _not_reserved(value):
    if value == DEFAULT_GROUP:
        raise PydanticCustomError("reserved", "the name 'default' is reserved for the top-level "
                                              "backends")
    return value


GroupName = Annotated[Name, AfterValidator(_not_reserved)]
Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]


def Seconds(high):  # noqa: N802 - reads as a type
    """A finite number of seconds > 0 and <= ``high``."""
    return Annotated[float, Field(gt=0, le=high, allow_inf_nan=False)]


def Count(low, high):  # noqa: N802 - reads as a type
    """An int in ``[low, high]``."""
    return Annotated[int, Field(ge=low, le=high)]


def _false_is_off(value, handler):
    return False if value is False else handler(value)


def _schema_with_false(schema):
    schema.setdefault("anyOf", []).append({"const": False})


def Switch(model):  # noqa: N802 - reads as a type
    """An optional section that ``false`` turns off: the model, ``null`` (absent) or False."""
    return Annotated[model | None, WrapValidator(_false_is_off),
                     Field(json_schema_extra=_schema_with_false)]


def _keys_schema(**extra):
    """JSON Schema of a mapping whose keys have a grammar: every key is checked
    (``propertyNames``), not only those matching a pattern (``patternProperties``)."""
    def fix(schema):
        ((pattern, value),) = schema.pop("patternProperties").items()
        schema["additionalProperties"] = value
        schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern,
                                   **extra}
    return fix


def _fail(errors, loc, kind, template, value, ctx=None):
    errors.append(InitErrorDetails(type=PydanticCustomError(kind, template, ctx or {}),
                                   loc=loc, input=value))


def _raise(title, errors):
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def _non_empty(what):
    def check(items):
        if not items:
            raise ValueError(f"expected {what}")
        return items
    return AfterValidator(check)


# -- leaf sections (also what the proxy and the engines read) --------------------------------

class Listen(Model):
    """Listener address (``port`` 0 = any free port, for tests)."""
    host: Host = "0.0.0.0"
    port: PortOrAny = 80


class Stats(Model):
    """JSON stats endpoint address."""
    host: Host = "127.0.0.1"
    port: PortOrAny = 9901


class TLS(Model):
    """TLS termination on the listener: PEM certificate and key paths."""
    cert: FilePath
    key: FilePath


class HashKey(Model):
    """What consistent_hash hashes: ``uri``, a ``header``/``cookie`` (``name``), ``client_ip``."""
    type: Literal[HASH_KEY_TYPES] = "uri"
    name: Token | None = None

    @model_validator(mode="after")
    def _name_goes_with_type(self):
        errors = []
        if self.type in ("header", "cookie") and self.name is None:
            _fail(errors, ("name",), "value_error", f"required when type is {self.type!r} (the "
                  f"{self.type} name to hash)", None)
        if self.type not in ("header", "cookie") and self.name is not None:
            _fail(errors, ("name",), "value_error", f"only valid for type header or cookie, not "
                  f"{self.type!r}", self.name)
        _raise("HashKey", errors)
        return self


class Backend(Model):
    """One upstream server."""
    name: Name
    address: Host
    port: Port
    weight: Weight = 1
    tls: bool = False


class Health(Model):
    """Active health check: ``GET path`` every ``interval`` s; up after ``rise``, down after
    ``fall`` consecutive results."""
    path: UrlPath = "/health"
    interval: Seconds(MAX_HEALTH_SEC) = 1.0
    rise: Count(1, 100) = 2
    fall: Count(1, 100) = 3
    timeout: Seconds(MAX_HEALTH_SEC) = 1.0


class PassiveHealth(Model):
    """Passive health: ``max_fails`` consecutive errors mark a backend down for ``fail_timeout``."""
    max_fails: Count(1, 1000) = 3
    fail_timeout: Seconds(MAX_TIMEOUT_SEC) = 10.0


class NameValue(Model):
    """A header/cookie/query condition; ``value`` None means "present with any value"."""
    name: Token
    value: HeaderValue | None = None


def _one_or_list(value):
    return [value] if isinstance(value, str) else value


def _upper(methods):
    return tuple(m.upper() for m in methods)


def _method_schema(schema):
    item = {"type": "string", "pattern": TOKEN_PATTERN}
    schema.clear()
    schema.update({"anyOf": [item, {"type": "array", "items": item, "minItems": 1}],
                   "description": "a method or a list of methods (any case)"})


Methods = Annotated[TupleOf(Token), BeforeValidator(_one_or_list),
                    Field(json_schema_extra=_method_schema),
                    _non_empty("a method or a non-empty list of methods"), AfterValidator(_upper)]


class Match(Model):
    """Route conditions, all of which must hold (an empty match matches every request).

    ``path_prefix`` is a raw prefix of the path (no query); ``path_regex`` is searched in the
    path (anchor it with ``^`` yourself); ``host`` is case-insensitive without port, ``*.x``
    matches subdomains of x; ``method`` (``methods``) is upper case.
    """
    path_prefix: UrlPath | None = None
    path_regex: Regex | None = None
    host: HostPattern | None = None
    method: Methods = ()
    header: NameValue | None = None
    cookie: NameValue | None = None
    query: NameValue | None = None

    @property
    def methods(self):
        """tuple[str]: the methods, upper case (empty: any)."""
        return self.method


class Auth(Model):
    """Per-route authentication: ``basic`` (``users`` name -> password) or ``bearer``
    (``tokens``)."""
    type: Literal[AUTH_TYPES]
    users: Annotated[dict[User, Password], Field(json_schema_extra=_keys_schema())] = {}
    tokens: TupleOf(BearerToken) = ()
    realm: Realm = "lblab"

    @model_validator(mode="after")
    def _fields_of_the_type(self):
        errors = []
        need, other = ("users", "tokens") if self.type == "basic" else ("tokens", "users")
        if not getattr(self, need):
            what = "mapping user -> password" if need == "users" else "list of tokens"
            _fail(errors, (need,), "value_error", f"required for {self.type} auth: a non-empty "
                  f"{what}", None)
        if getattr(self, other):
            _fail(errors, (other,), "value_error", f"only valid for type "
                  f"{'bearer' if other == 'tokens' else 'basic'} ({self.type} uses {need})", None)
        _raise("Auth", errors)
        return self


class Sticky(Model):
    """Cookie-insert stickiness: cookie ``cookie`` = HMAC-signed backend name."""
    cookie: Token = "LBSRV"
    secret: Annotated[str, Field(min_length=1, max_length=4096)]


class Cache(Model):
    """Response cache bounds (LRU); ``max_object_bytes`` defaults to min(1 MiB, max_bytes)."""
    max_entries: Count(1, 10_000_000) = 1024
    max_bytes: Count(1, 1024 * GIB) = 64 * MIB
    max_object_bytes: Count(1, 1024 * GIB) = MIB

    @model_validator(mode="before")
    @classmethod
    def _cap_default_object_size(cls, data):
        if isinstance(data, dict) and "max_object_bytes" not in data:
            size = data.get("max_bytes")
            if isinstance(size, int) and not isinstance(size, bool) and 1 <= size < MIB:
                return {**data, "max_object_bytes": size}
        return data

    @field_validator("max_object_bytes")
    @classmethod
    def _fits(cls, value, info: ValidationInfo):
        total = info.data.get("max_bytes", 64 * MIB)
        if value > total:
            raise PydanticCustomError("cache_object", "expected a number <= cache.max_bytes "
                                                      "({total})", {"total": total})
        return value


class Timeouts(Model):
    """Seconds: upstream connect, upstream response (to first byte and between reads), client
    request head deadline, and idle keep-alive between requests."""
    connect: Seconds(MAX_TIMEOUT_SEC) = 1.0
    response: Seconds(MAX_TIMEOUT_SEC) = 10.0
    client_header: Seconds(MAX_TIMEOUT_SEC) = 10.0
    keepalive_idle: Seconds(MAX_TIMEOUT_SEC) = 60.0


class Limits(Model):
    """Request limits: header block bytes (431), header count (431), URI bytes (414), body
    (413), concurrent client connections per worker."""
    max_header_bytes: Count(1, MIB) = 8192
    max_headers: Count(1, 10_000) = 100
    max_uri: Count(1, MIB) = 8192
    max_body: Count(1, 1024 * GIB) = 10 * MIB
    max_connections: Count(1, 1_000_000) = 1000


# -- groups, routes and the whole file --------------------------------------------------------

Backends = Annotated[TupleOf(Backend), Field(json_schema_extra={"minItems": 1}),
                     _non_empty("at least one backend")]


def _check_hash_key(key, info):
    """ip_hash hashes the client address only."""
    if key is not None and info.data.get("algorithm") == "ip_hash" and key.type != "client_ip":
        errors = []
        _fail(errors, ("type",), "ip_hash_key", "ip_hash always hashes the client address (use "
              f"algorithm consistent_hash to hash a {key.type})", key.type)
        _raise("hash_key", errors)
    return key


def _check_backends(backends):
    """Names and addresses are unique within a group."""
    errors, names, addresses = [], set(), set()
    for i, b in enumerate(backends):
        if b.name in names:
            _fail(errors, (i, "name"), "duplicate", "duplicate backend name in this group",
                  b.name)
        if (b.address, b.port) in addresses:
            _fail(errors, (i,), "duplicate", f"duplicate backend address {b.address}:{b.port} "
                  f"in this group", None)
        names.add(b.name)
        addresses.add((b.address, b.port))
    _raise("backends", errors)
    return backends


class GroupSpec(Model):
    """A named backend pool with its own algorithm; health settings default to the top level."""
    algorithm: Algorithm = "round_robin"
    hash_key: HashKey | None = None
    backends: Backends
    health: Switch(Health) = None
    passive_health: Switch(PassiveHealth) = None

    _hash_key = field_validator("hash_key")(_check_hash_key)
    _backends = field_validator("backends")(_check_backends)


class RouteSpec(Model):
    """One routing rule as written: conditions, target group, optional auth."""
    match: Match = Match()
    group: Name = DEFAULT_GROUP
    auth: Auth | None = None


def _servers(top, groups):
    """Yield (loc, backend) for every backend, top level first."""
    for i, backend in enumerate(top or ()):
        yield ("backends", i), backend
    for gname, group in groups.items():
        for i, backend in enumerate(group.backends):
            yield ("groups", gname, "backends", i), backend


class L7Spec(Model):
    """The L7 proxy config as written (YAML or JSON; an experiment spec's ``l7`` section)."""
    listen: Listen = Listen()
    tls: Switch(TLS) = None
    workers: Count(1, MAX_WORKERS) = 1
    algorithm: Algorithm = "round_robin"
    hash_key: HashKey | None = None
    backends: Backends
    groups: Annotated[dict[GroupName, GroupSpec], Field(json_schema_extra=_keys_schema(
        **{"not": {"const": DEFAULT_GROUP}}))] = {}
    routes: TupleOf(RouteSpec) = ()
    sticky: Switch(Sticky) = None
    cache: Switch(Cache) = None
    health: Switch(Health) = None
    passive_health: Switch(PassiveHealth) = None
    timeouts: Timeouts = Timeouts()
    limits: Limits = Limits()
    retries: Count(0, MAX_RETRIES) = 1
    stats: Switch(Stats) = None

    _hash_key = field_validator("hash_key")(_check_hash_key)
    _backends = field_validator("backends")(_check_backends)

    @field_validator("workers")
    @classmethod
    def _fixed_port(cls, workers, info: ValidationInfo):
        listen = info.data.get("listen")
        if workers > 1 and listen is not None and listen.port == 0:
            raise PydanticCustomError("workers_port", "more than one worker needs a fixed "
                                                      "listen.port (SO_REUSEPORT), got port 0")
        return workers

    @field_validator("groups")
    @classmethod
    def _one_server_per_name(cls, groups, info: ValidationInfo):
        """A backend name names one server: the same name in two groups is the same address."""
        errors, seen = [], {}
        for loc, backend in _servers(info.data.get("backends"), groups):
            key = (backend.address, backend.port, backend.tls)
            if backend.name in seen and seen[backend.name][0] != key and loc[0] == "groups":
                _fail(errors, loc[1:] + ("name",), "same_name", "{here} here but a different "
                      "server in {other}; use distinct names for distinct servers", backend.name,
                      {"here": f"{backend.address}:{backend.port}",
                       "other": seen[backend.name][1]})
            seen.setdefault(backend.name, (key, ".".join(map(str, loc[:-1]))))
        _raise("groups", errors)
        return groups

    @field_validator("routes")
    @classmethod
    def _known_groups(cls, routes, info: ValidationInfo):
        if "groups" not in info.data:  # the groups were invalid: said there already
            return routes
        names = (DEFAULT_GROUP, *info.data["groups"])
        errors = []
        for i, route in enumerate(routes):
            if route.group not in names:
                _fail(errors, (i, "group"), "one_of", "unknown group {value}", route.group,
                      {"value": repr(route.group), "expected": ", ".join(names),
                       "choices": names})
        _raise("routes", errors)
        return routes
