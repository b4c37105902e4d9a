"""Parse and validate the L7 proxy config (plain dict from YAML/JSON) into frozen dataclasses.

Pure: no I/O except :func:`load_l7_config`, which only reads the file. The same dict is the ``l7``
part of an experiment spec's balancer, and the HAProxy/nginx templates render from the parsed
:class:`L7Config`, so every consumer sees one validated object.

Errors are :class:`L7ConfigError` naming the key path, the value and what was expected, e.g.
``routes[2].match.path_regex: invalid regex '(': missing ), unterminated subpattern at position 0``.
"""
import dataclasses
import difflib
import ipaddress
import re
from dataclasses import dataclass, field

from lblab_core import loader
from lblab_core.errors import InputError

DEFAULT_GROUP = "default"
HASH_KEY_TYPES = ("uri", "header", "cookie", "client_ip")
AUTH_TYPES = ("basic", "bearer")
# Used only when lb_apps.balancing is not importable (it is written concurrently).
_FALLBACK_ALGORITHMS = ("round_robin", "weighted_round_robin", "least_connections", "random",
                        "ip_hash", "consistent_hash")
_HASHING_ALGORITHMS = ("ip_hash", "consistent_hash")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOSTNAME_RE = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9\-]{0,62})(\.[A-Za-z0-9][A-Za-z0-9\-]{0,62})*\.?$")
MAX_WORKERS = 64
MAX_RETRIES = 10


class L7ConfigError(ValueError):
    """Invalid L7 config; ``path`` is the key path (``routes[2].match.path_regex``)."""

    def __init__(self, source, path, message):
        self.source = source
        self.path = path
        self.problem = message
        where = f"{path}: " if path else ""
        # source None: the message is already located (``file:line: ...`` from the loader)
        super().__init__(f"{where}{message}" if source is None else f"{source}: {where}{message}")


@dataclass(frozen=True)
class Listen:
    """Listener address (``port`` 0 = any free port, for tests)."""
    host: str = "0.0.0.0"
    port: int = 80


@dataclass(frozen=True)
class TLS:
    """TLS termination on the listener: PEM certificate and key paths."""
    cert: str
    key: str


@dataclass(frozen=True)
class HashKey:
    """What consistent_hash hashes: ``uri``, a ``header``/``cookie`` (``name``), or ``client_ip``."""
    type: str = "uri"
    name: str | None = None


@dataclass(frozen=True)
class Backend:
    """One upstream server."""
    name: str
    address: str
    port: int
    weight: int = 1
    tls: bool = False


@dataclass(frozen=True)
class Health:
    """Active health check: ``GET path`` every ``interval`` s; up after ``rise``, down after ``fall``."""
    path: str = "/health"
    interval: float = 1.0
    rise: int = 2
    fall: int = 3
    timeout: float = 1.0


@dataclass(frozen=True)
class PassiveHealth:
    """Passive health: ``max_fails`` consecutive errors mark a backend down for ``fail_timeout`` s."""
    max_fails: int = 3
    fail_timeout: float = 10.0


@dataclass(frozen=True)
class Group:
    """A backend pool with its own algorithm and health settings.

    ``health`` is None when active checks are off; ``passive_health`` None when passive checks are off.
    """
    name: str
    algorithm: str
    hash_key: HashKey
    backends: tuple
    health: Health | None
    passive_health: PassiveHealth | None


@dataclass(frozen=True)
class NameValue:
    """A header/cookie/query condition; ``value`` None means "present with any value"."""
    name: str
    value: str | None = None


@dataclass(frozen=True)
class Match:
    """Route conditions, all of which must hold (an empty match matches every request).

    ``path_prefix`` is a raw prefix of the path (no query); ``path_regex`` is searched in the path
    (anchor it with ``^`` yourself); ``host`` is case-insensitive without port, ``*.x`` matches
    subdomains of x; ``methods`` are upper case.
    """
    path_prefix: str | None = None
    path_regex: str | None = None
    host: str | None = None
    methods: tuple = ()
    header: NameValue | None = None
    cookie: NameValue | None = None
    query: NameValue | None = None


@dataclass(frozen=True)
class Auth:
    """Per-route authentication: ``basic`` (``users`` name -> password) or ``bearer`` (``tokens``)."""
    type: str
    users: dict = field(default_factory=dict)
    tokens: tuple = ()
    realm: str = "lblab"


@dataclass(frozen=True)
class Route:
    """One routing rule; ``index`` is its position in ``routes`` (for errors and stats)."""
    index: int
    match: Match
    group: str
    auth: Auth | None = None


@dataclass(frozen=True)
class Sticky:
    """Cookie-insert stickiness: cookie ``cookie`` = HMAC-signed backend name."""
    cookie: str
    secret: str


@dataclass(frozen=True)
class Cache:
    """Response cache bounds (LRU)."""
    max_entries: int = 1024
    max_bytes: int = 64 * 1024 * 1024
    max_object_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds: upstream connect, upstream response (to first byte and between reads), client
    request head deadline, and idle keep-alive between requests."""
    connect: float = 1.0
    response: float = 10.0
    client_header: float = 10.0
    keepalive_idle: float = 60.0


@dataclass(frozen=True)
class Limits:
    """Request limits: header block bytes (431), header count (431), URI bytes (414), body (413),
    concurrent client connections per worker."""
    max_header_bytes: int = 8192
    max_headers: int = 100
    max_uri: int = 8192
    max_body: int = 10 * 1024 * 1024
    max_connections: int = 1000


@dataclass(frozen=True)
class Stats:
    """JSON stats endpoint address."""
    host: str = "127.0.0.1"
    port: int = 9901


@dataclass(frozen=True)
class L7Config:
    """The whole validated L7 config.

    ``groups`` maps group name -> :class:`Group` and always holds ``DEFAULT_GROUP`` (the top-level
    ``algorithm``/``hash_key``/``backends``/``health``) first. Treat it as read-only.
    """
    listen: Listen
    tls: TLS | None
    workers: int
    groups: dict
    routes: tuple
    sticky: Sticky | None
    cache: Cache | None
    timeouts: Timeouts
    limits: Limits
    retries: int
    stats: Stats | None

    @property
    def default_group(self):
        """Group: the group used when no route matches."""
        return self.groups[DEFAULT_GROUP]

    @property
    def algorithm(self):
        """str: the default group's algorithm."""
        return self.default_group.algorithm

    @property
    def hash_key(self):
        """HashKey: the default group's hash key."""
        return self.default_group.hash_key

    @property
    def backends(self):
        """tuple[Backend]: the default group's backends."""
        return self.default_group.backends

    def all_backends(self):
        """Return every distinct backend across groups, by name, in first-seen order.

        Returns:
            list[Backend]: one entry per backend name.
        """
        seen = {}
        for group in self.groups.values():
            for backend in group.backends:
                seen.setdefault(backend.name, backend)
        return list(seen.values())


def known_algorithms():
    """Return the balancing algorithm names (from ``lb_apps.balancing.ALGORITHMS``).

    Returns:
        tuple[str]: algorithm names.
    """
    try:
        from lb_apps.balancing import ALGORITHMS
    except ImportError:
        return _FALLBACK_ALGORITHMS
    return tuple(ALGORITHMS)


class _Ctx:
    """Carries the source name so helpers can raise located errors."""

    def __init__(self, source):
        self.source = source

    def fail(self, path, message):
        raise L7ConfigError(self.source, path, message)

    def mapping(self, path, value, allowed, required=()):
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with keys {', '.join(allowed)}, "
                            f"got {type(value).__name__} {value!r}")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                did = f"; did you mean '{hint[0]}'?" if hint else ""
                self.fail(_join(path, str(key)),
                          f"unknown key {key!r}{did} (expected one of {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.fail(_join(path, key), "missing required key")
        return value

    def integer(self, path, value, lo=None, hi=None):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {type(value).__name__} {value!r}")
        self._range(path, value, lo, hi)
        return value

    def number(self, path, value, lo=None, hi=None, positive=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a number, got {type(value).__name__} {value!r}")
        if positive and not value > 0:
            self.fail(path, f"expected a number > 0, got {value!r}")
        self._range(path, value, lo, hi)
        return float(value)

    def _range(self, path, value, lo, hi):
        if lo is not None and value < lo:
            self.fail(path, f"expected a value >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            self.fail(path, f"expected a value <= {hi}, got {value!r}")

    def string(self, path, value, nonempty=True):
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {type(value).__name__} {value!r}")
        if nonempty and not value:
            self.fail(path, "expected a non-empty string, got ''")
        return value

    def boolean(self, path, value):
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {type(value).__name__} {value!r}")
        return value

    def token(self, path, value, what):
        self.string(path, value)
        if not _TOKEN_RE.match(value):
            self.fail(path, f"expected {what} (an HTTP token: letters, digits, !#$%&'*+-.^_`|~), "
                            f"got {value!r}")
        return value

    def host(self, path, value):
        self.string(path, value)
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            pass
        if not _HOSTNAME_RE.match(value) or value.startswith("*."):
            self.fail(path, f"expected an IP address or host name, got {value!r}")
        return value

    def port(self, path, value, allow_zero=False):
        return self.integer(path, value, 0 if allow_zero else 1, 65535)


def _join(path, key):
    return f"{path}.{key}" if path else key


def _listen(ctx, path, raw, default_port):
    if raw is None:
        raw = {}
    ctx.mapping(path, raw, ("host", "port"))
    host = ctx.host(_join(path, "host"), raw.get("host", "0.0.0.0" if path == "listen" else "127.0.0.1"))
    port = ctx.port(_join(path, "port"), raw.get("port", default_port), allow_zero=True)
    return host, port


def _tls(ctx, raw):
    if raw is None or raw is False:
        return None
    ctx.mapping("tls", raw, ("cert", "key"), required=("cert", "key"))
    return TLS(cert=ctx.string("tls.cert", raw["cert"]), key=ctx.string("tls.key", raw["key"]))


def _hash_key(ctx, path, raw, algorithm):
    default_type = "client_ip" if algorithm == "ip_hash" else "uri"
    if raw is None:
        raw = {}
    ctx.mapping(path, raw, ("type", "name"))
    kind = raw.get("type", default_type)
    if kind not in HASH_KEY_TYPES:
        ctx.fail(_join(path, "type"), f"expected one of {', '.join(HASH_KEY_TYPES)}, got {kind!r}")
    name = raw.get("name")
    if kind in ("header", "cookie"):
        if name is None:
            ctx.fail(_join(path, "name"), f"required when type is {kind!r} (the {kind} name to hash)")
        ctx.token(_join(path, "name"), name, f"a {kind} name")
    elif name is not None:
        ctx.fail(_join(path, "name"), f"only valid for type header or cookie, got {name!r} "
                                      f"with type {kind!r}")
    if algorithm == "ip_hash" and kind != "client_ip":
        ctx.fail(_join(path, "type"), f"ip_hash always hashes the client address; got {kind!r} "
                                      f"(use algorithm consistent_hash to hash a {kind})")
    return HashKey(type=kind, name=name)


def _backends(ctx, path, raw):
    if not isinstance(raw, list) or not raw:
        ctx.fail(path, f"expected a non-empty list of backends, got {raw!r}")
    out, names, addrs = [], set(), set()
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        ctx.mapping(p, item, ("name", "address", "port", "weight", "tls"),
                    required=("name", "address", "port"))
        name = ctx.token(_join(p, "name"), item["name"], "a backend name")
        if name in names:
            ctx.fail(_join(p, "name"), f"duplicate backend name {name!r} in this group")
        names.add(name)
        address = ctx.host(_join(p, "address"), item["address"])
        port = ctx.port(_join(p, "port"), item["port"])
        if (address, port) in addrs:
            ctx.fail(p, f"duplicate backend address {address}:{port} in this group")
        addrs.add((address, port))
        weight = ctx.integer(_join(p, "weight"), item.get("weight", 1), 0, 1000)
        tls = ctx.boolean(_join(p, "tls"), item.get("tls", False))
        out.append(Backend(name=name, address=address, port=port, weight=weight, tls=tls))
    return tuple(out)


def _health(ctx, path, raw, default):
    if raw is None:
        return default
    if raw is False:
        return None
    ctx.mapping(path, raw, ("path", "interval", "rise", "fall", "timeout"))
    hpath = ctx.string(_join(path, "path"), raw.get("path", "/health"))
    if not hpath.startswith("/"):
        ctx.fail(_join(path, "path"), f"expected a path starting with '/', got {hpath!r}")
    interval = ctx.number(_join(path, "interval"), raw.get("interval", 1.0), hi=3600, positive=True)
    timeout = ctx.number(_join(path, "timeout"), raw.get("timeout", 1.0), hi=3600, positive=True)
    return Health(path=hpath, interval=interval,
                  rise=ctx.integer(_join(path, "rise"), raw.get("rise", 2), 1, 100),
                  fall=ctx.integer(_join(path, "fall"), raw.get("fall", 3), 1, 100),
                  timeout=timeout)


def _passive(ctx, path, raw, default):
    if raw is None:
        return default
    if raw is False:
        return None
    ctx.mapping(path, raw, ("max_fails", "fail_timeout"))
    return PassiveHealth(
        max_fails=ctx.integer(_join(path, "max_fails"), raw.get("max_fails", 3), 1, 1000),
        fail_timeout=ctx.number(_join(path, "fail_timeout"), raw.get("fail_timeout", 10.0),
                                hi=86400, positive=True))


def _algorithm(ctx, path, value):
    algorithms = known_algorithms()
    if value not in algorithms:
        hint = difflib.get_close_matches(str(value), algorithms, n=1)
        did = f"; did you mean '{hint[0]}'?" if hint else ""
        ctx.fail(path, f"unknown algorithm {value!r}{did} (expected one of {', '.join(algorithms)})")
    return value


def _group(ctx, path, name, raw, default_health, default_passive):
    """Build a Group from a mapping with algorithm/hash_key/backends/health/passive_health."""
    prefix = (path + ".") if path else ""
    algorithm = _algorithm(ctx, prefix + "algorithm", raw.get("algorithm", "round_robin"))
    return Group(
        name=name, algorithm=algorithm,
        hash_key=_hash_key(ctx, prefix + "hash_key", raw.get("hash_key"), algorithm),
        backends=_backends(ctx, prefix + "backends", raw.get("backends")),
        health=_health(ctx, prefix + "health", raw.get("health"), default_health),
        passive_health=_passive(ctx, prefix + "passive_health", raw.get("passive_health"),
                                default_passive))


def _name_value(ctx, path, raw, what):
    if raw is None:
        return None
    ctx.mapping(path, raw, ("name", "value"), required=("name",))
    name = ctx.token(_join(path, "name"), raw["name"], f"a {what} name")
    value = raw.get("value")
    if value is not None:
        ctx.string(_join(path, "value"), value, nonempty=False)
    return NameValue(name=name, value=value)


def _match(ctx, path, raw):
    if raw is None:
        raw = {}
    ctx.mapping(path, raw, ("path_prefix", "path_regex", "host", "method", "header", "cookie",
                            "query"))
    prefix = raw.get("path_prefix")
    if prefix is not None:
        ctx.string(_join(path, "path_prefix"), prefix)
        if not prefix.startswith("/"):
            ctx.fail(_join(path, "path_prefix"), f"expected a path starting with '/', got {prefix!r}")
    regex = raw.get("path_regex")
    if regex is not None:
        ctx.string(_join(path, "path_regex"), regex)
        try:
            re.compile(regex)
        except re.error as exc:
            ctx.fail(_join(path, "path_regex"), f"invalid regex {regex!r}: {exc}")
    host = raw.get("host")
    if host is not None:
        ctx.string(_join(path, "host"), host)
        if not _HOSTNAME_RE.match(host) and not _is_ip(host):
            ctx.fail(_join(path, "host"), f"expected a host name (optionally '*.domain'), got {host!r}")
        host = host.lower().rstrip(".")
    method = raw.get("method")
    methods = ()
    if method is not None:
        items = method if isinstance(method, list) else [method]
        if not items:
            ctx.fail(_join(path, "method"), "expected a method or a non-empty list of methods, got []")
        methods = tuple(ctx.token(_join(path, "method"), m, "an HTTP method").upper() for m in items)
    return Match(path_prefix=prefix, path_regex=regex, host=host, methods=methods,
                 header=_name_value(ctx, _join(path, "header"), raw.get("header"), "header"),
                 cookie=_name_value(ctx, _join(path, "cookie"), raw.get("cookie"), "cookie"),
                 query=_name_value(ctx, _join(path, "query"), raw.get("query"), "query parameter"))


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _auth(ctx, path, raw):
    if raw is None:
        return None
    ctx.mapping(path, raw, ("type", "users", "tokens", "realm"), required=("type",))
    kind = raw["type"]
    if kind not in AUTH_TYPES:
        ctx.fail(_join(path, "type"), f"expected one of {', '.join(AUTH_TYPES)}, got {kind!r}")
    realm = ctx.string(_join(path, "realm"), raw.get("realm", "lblab"))
    if '"' in realm or "\\" in realm:
        ctx.fail(_join(path, "realm"), f"expected a realm without quotes or backslashes, got {realm!r}")
    users, tokens = {}, ()
    if kind == "basic":
        if "tokens" in raw:
            ctx.fail(_join(path, "tokens"), "only valid for type bearer (basic uses users)")
        raw_users = raw.get("users")
        if not isinstance(raw_users, dict) or not raw_users:
            ctx.fail(_join(path, "users"), f"expected a non-empty mapping user -> password for "
                                           f"basic auth, got {raw_users!r}")
        for user, password in raw_users.items():
            upath = _join(_join(path, "users"), str(user))
            ctx.string(upath, user)
            if ":" in user:
                ctx.fail(upath, f"expected a user name without ':', got {user!r}")
            users[user] = ctx.string(upath, password if not isinstance(password, int) or
                                     isinstance(password, bool) else str(password))
    else:
        if "users" in raw:
            ctx.fail(_join(path, "users"), "only valid for type basic (bearer uses tokens)")
        raw_tokens = raw.get("tokens")
        if not isinstance(raw_tokens, list) or not raw_tokens:
            ctx.fail(_join(path, "tokens"), f"expected a non-empty list of tokens for bearer auth, "
                                            f"got {raw_tokens!r}")
        tokens = tuple(ctx.string(f"{path}.tokens[{i}]", t) for i, t in enumerate(raw_tokens))
    return Auth(type=kind, users=users, tokens=tokens, realm=realm)


def _routes(ctx, raw, group_names):
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.fail("routes", f"expected a list of routes, got {type(raw).__name__} {raw!r}")
    out = []
    for i, item in enumerate(raw):
        p = f"routes[{i}]"
        ctx.mapping(p, item, ("match", "group", "auth"))
        group = item.get("group", DEFAULT_GROUP)
        ctx.string(_join(p, "group"), group)
        if group not in group_names:
            hint = difflib.get_close_matches(group, group_names, n=1)
            did = f"; did you mean '{hint[0]}'?" if hint else ""
            ctx.fail(_join(p, "group"), f"unknown group {group!r}{did} (defined: "
                                        f"{', '.join(group_names)})")
        out.append(Route(index=i, match=_match(ctx, _join(p, "match"), item.get("match")),
                         group=group, auth=_auth(ctx, _join(p, "auth"), item.get("auth"))))
    return tuple(out)


def _sticky(ctx, raw):
    if raw is None or raw is False:
        return None
    ctx.mapping("sticky", raw, ("cookie", "secret"), required=("secret",))
    return Sticky(cookie=ctx.token("sticky.cookie", raw.get("cookie", "LBSRV"), "a cookie name"),
                  secret=ctx.string("sticky.secret", raw["secret"]))


def _cache(ctx, raw):
    if raw is None or raw is False:
        return None
    ctx.mapping("cache", raw, ("max_entries", "max_bytes", "max_object_bytes"))
    max_bytes = ctx.integer("cache.max_bytes", raw.get("max_bytes", 64 * 1024 * 1024), 1)
    max_object = ctx.integer("cache.max_object_bytes",
                             raw.get("max_object_bytes", min(1024 * 1024, max_bytes)), 1)
    if max_object > max_bytes:
        ctx.fail("cache.max_object_bytes", f"expected a value <= cache.max_bytes ({max_bytes}), "
                                           f"got {max_object}")
    return Cache(max_entries=ctx.integer("cache.max_entries", raw.get("max_entries", 1024), 1),
                 max_bytes=max_bytes, max_object_bytes=max_object)


def _fields(ctx, path, raw, cls, kind):
    """Build a dataclass of numbers (``kind`` 'number' > 0 or 'integer' >= 1) with defaults."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    if raw is None:
        return cls()
    ctx.mapping(path, raw, names)
    values = {}
    for name in names:
        if name in raw:
            p = _join(path, name)
            values[name] = (ctx.number(p, raw[name], hi=86400, positive=True) if kind == "number"
                            else ctx.integer(p, raw[name], 1))
    return cls(**values)


TOP_LEVEL_KEYS = ("listen", "tls", "workers", "algorithm", "hash_key", "backends", "groups",
                  "routes", "sticky", "cache", "health", "passive_health", "timeouts", "limits",
                  "retries", "stats")


def parse_l7_config(data, source="<config>"):
    """Validate an L7 config dict and return it as frozen dataclasses with defaults filled in.

    Args:
        data (dict): the config (from YAML/JSON, or an experiment spec's ``l7`` section).
        source (str): where it came from, prefixed to error messages.
    Returns:
        L7Config: the validated config.
    Raises:
        L7ConfigError: an unknown key, wrong type or bad value; the message names the key path,
            the value and what was expected.
    """
    ctx = _Ctx(source)
    ctx.mapping("", data, TOP_LEVEL_KEYS, required=("backends",))
    host, port = _listen(ctx, "listen", data.get("listen"), 80)
    default_health = _health(ctx, "health", data.get("health"), None)
    default_passive = _passive(ctx, "passive_health", data.get("passive_health"), PassiveHealth())
    groups = {DEFAULT_GROUP: _group(ctx, "", DEFAULT_GROUP, data, default_health, default_passive)}
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        ctx.fail("groups", f"expected a mapping group name -> group, got {raw_groups!r}")
    for name, raw in raw_groups.items():
        p = f"groups.{name}"
        ctx.token(p, name, "a group name")
        if name == DEFAULT_GROUP:
            ctx.fail(p, f"the name {DEFAULT_GROUP!r} is reserved for the top-level backends")
        ctx.mapping(p, raw, ("algorithm", "hash_key", "backends", "health", "passive_health"),
                    required=("backends",))
        groups[name] = _group(ctx, p, name, raw, default_health, default_passive)
    _check_backend_names(ctx, groups)
    stats = None
    if data.get("stats") not in (None, False):
        shost, sport = _listen(ctx, "stats", data["stats"], 9901)
        stats = Stats(host=shost, port=sport)
    return L7Config(
        listen=Listen(host=host, port=port),
        tls=_tls(ctx, data.get("tls")),
        workers=ctx.integer("workers", data.get("workers", 1), 1, MAX_WORKERS),
        groups=groups,
        routes=_routes(ctx, data.get("routes"), list(groups)),
        sticky=_sticky(ctx, data.get("sticky")),
        cache=_cache(ctx, data.get("cache")),
        timeouts=_fields(ctx, "timeouts", data.get("timeouts"), Timeouts, "number"),
        limits=_fields(ctx, "limits", data.get("limits"), Limits, "integer"),
        retries=ctx.integer("retries", data.get("retries", 1), 0, MAX_RETRIES),
        stats=stats)


def _check_backend_names(ctx, groups):
    """A backend name names one server: the same name in two groups must be the same address."""
    seen = {}
    for gname, group in groups.items():
        for i, backend in enumerate(group.backends):
            where = "backends" if gname == DEFAULT_GROUP else f"groups.{gname}.backends"
            key = (backend.address, backend.port, backend.tls)
            if backend.name in seen and seen[backend.name][0] != key:
                other = seen[backend.name][1]
                ctx.fail(f"{where}[{i}].name",
                         f"backend {backend.name!r} is {backend.address}:{backend.port} here but "
                         f"a different server in {other}; use distinct names for distinct servers")
            seen.setdefault(backend.name, (key, where))


def load_l7_config(path):
    """Read a YAML or JSON L7 config file and parse it.

    Args:
        path (str): file path (YAML or JSON, read by ``lblab_core.loader``).
    Returns:
        L7Config: the validated config.
    Raises:
        L7ConfigError: unreadable file, syntax error, or invalid config.
    """
    try:
        data, _ = loader.load(path)
    except InputError as exc:
        raise L7ConfigError(None, "", "\n".join(exc.errors)) from None
    if data is None:
        raise L7ConfigError(path, "", "the file is empty; expected a mapping with 'backends'")
    return parse_l7_config(data, source=str(path))
