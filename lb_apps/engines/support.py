"""What HAProxy 2.6 and nginx 1.22 cannot express of an L7 config, refused by name (pure).

:func:`check_support` lists each feature an engine cannot express with the reason;
:func:`require_support` raises it as one message that offers the engines that can. The renderers
in :mod:`lb_apps.engines.render` call it first, so a config that reaches a template is one the engine
can express.
"""
import re

from lb_apps.custom_balancer import describe, is_file_algorithm
from lb_apps.engines.text import WORD_SPECIAL, EngineError

ENGINES = ("haproxy", "nginx")
# Algorithms whose builtin implementation (lb_apps.balancing) uses backend weights; the others
# only honour weight 0 (drain), so the engines get weight 1 for every live server.
WEIGHTED_ALGORITHMS = ("weighted_round_robin", "weighted_least_connections", "random",
                       "power_of_two", "consistent_hash")
HAPROXY_MAX_WEIGHT = 256

_NGINX_VAR_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def _common_unsupported(cfg):
    out = []
    for group in cfg.groups.values():
        if is_file_algorithm(group.algorithm):
            out.append(("a balancer from a file",
                        f"the balancer from a file {describe(group.algorithm)} in group "
                        f"{group.name!r} (Python balancers run in the builtin proxy only)"))
    if cfg.listen.port == 0:
        out.append(("listen.port 0", "listen.port 0 (the engine cannot report which free port "
                                     "it picked; give a fixed port)"))
    if cfg.stats is not None and cfg.stats.port == 0:
        out.append(("stats.port 0", "stats.port 0 (give a fixed port)"))
    return out


def _bare_words(cfg):
    """Yield (label, text) for every config value HAProxy gets as a bare word (not quoted)."""
    if cfg.sticky is not None:
        yield "sticky.cookie", cfg.sticky.cookie
    for group in cfg.groups.values():
        if group.hash_key.name is not None:
            yield f"group {group.name!r} hash_key.name", group.hash_key.name
        if group.health is not None:
            yield f"group {group.name!r} health.path", group.health.path
    for route in cfg.routes:
        for kind in ("header", "cookie", "query"):
            nv = getattr(route.match, kind)
            if nv is not None:
                yield f"routes[{route.index}].match.{kind}.name", nv.name


def _haproxy_unsupported(cfg):
    out = []
    for label, text in _bare_words(cfg):
        special = "".join(sorted({c for c in text if c in WORD_SPECIAL}))
        if special:
            out.append((f"{special} in {label}",
                        f"{label} {text!r} (it is written unquoted into haproxy.cfg, where "
                        f"{special} would change its meaning)"))
    for group in cfg.groups.values():
        for backend in group.backends:
            if group.algorithm in WEIGHTED_ALGORITHMS and backend.weight > HAPROXY_MAX_WEIGHT:
                out.append((f"weight {backend.weight}",
                            f"weight {backend.weight} for backend {backend.name!r} in group "
                            f"{group.name!r} (HAProxy weights are 0-{HAPROXY_MAX_WEIGHT})"))
    return out


def _nginx_name(kind, name, where):
    """Return an unsupported entry if ``name`` cannot be an nginx ``$http_/$cookie_/$arg_`` name."""
    check = name.replace("-", "_") if kind == "header" else name
    if kind == "header" and "_" in name:
        return (f"{kind} name with '_'",
                f"{kind} name {name!r} in {where} (nginx drops header names with '_' by default "
                f"and cannot tell 'X_A' from 'X-A')")
    if not _NGINX_VAR_NAME_RE.match(check):
        allowed = "letters, digits and '-'" if kind == "header" else "letters, digits and '_'"
        return (f"{kind} name {name!r}",
                f"{kind} name {name!r} in {where} (nginx variables ${_NGINX_PREFIX[kind]}... "
                f"allow only {allowed})")
    return None


_NGINX_PREFIX = {"header": "http_", "cookie": "cookie_", "query": "arg_"}


def _nginx_unsupported(cfg):
    out = []
    for group in cfg.groups.values():
        where = f"group {group.name!r}"
        if group.health is not None:
            out.append(("active health checks",
                        f"active health checks in {where} (nginx open source has only passive "
                        f"checks: max_fails/fail_timeout; set health: false)"))
        if len({b.tls for b in group.backends}) > 1:
            out.append(("mixed TLS and plain backends",
                        f"mixed TLS and plain backends in {where} (proxy_pass picks http or https "
                        f"per upstream group; put TLS backends in their own group)"))
        key = group.hash_key
        if group.algorithm == "consistent_hash" and key.type in ("header", "cookie"):
            bad = _nginx_name(key.type, key.name, f"{where} hash_key")
            if bad:
                out.append(bad)
    if cfg.sticky is not None:
        out.append(("sticky cookie insert",
                    "sticky cookie insert (the 'sticky' directive is nginx Plus only; open source "
                    "has ip_hash/hash, which do not set a cookie)"))
    for route in cfg.routes:
        where = f"routes[{route.index}]"
        for kind in ("header", "cookie", "query"):
            nv = getattr(route.match, kind)
            if nv is None:
                continue
            bad = _nginx_name(kind, nv.name, f"{where}.match")
            if bad:
                out.append(bad)
            if nv.value == "":
                out.append((f"empty {kind} value",
                            f"an empty {kind} value in {where}.match (nginx cannot tell an empty "
                            f"{kind} from a missing one)"))
        auth = route.auth
        if auth is None:
            continue
        if "$" in auth.realm:
            out.append(("'$' in an auth realm",
                        f"'$' in {where}.auth.realm (nginx would read it as a variable)"))
        for user, password in auth.users.items():
            if user.startswith("#") or ":" in password:
                out.append(("basic auth user or password",
                            f"basic auth user {user!r} in {where} (an htpasswd line cannot hold a "
                            f"user starting with '#' or a password with ':')"))
    return out


def _unsupported(engine, cfg):
    if engine not in ENGINES:
        raise EngineError(f"engine: unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    specific = _haproxy_unsupported(cfg) if engine == "haproxy" else _nginx_unsupported(cfg)
    return _common_unsupported(cfg) + specific


def check_support(engine, cfg):
    """Return the features of ``cfg`` that ``engine`` cannot express (empty: it can render).

    Args:
        engine (str): ``haproxy`` or ``nginx``.
        cfg (L7Config): the parsed L7 config.
    Returns:
        list[str]: one entry per feature, "<feature> (<why>)".
    Raises:
        EngineError: unknown engine.
    """
    return [text for _, text in _unsupported(engine, cfg)]


def require_support(engine, cfg):
    """Raise unless ``engine`` can express ``cfg``, naming every feature and the alternatives.

    Args:
        engine (str): ``haproxy`` or ``nginx``.
        cfg (L7Config): the parsed L7 config.
    Raises:
        EngineError: ``"<engine>: cannot express <feature> (<why>); ...; use engine builtin
            or <other>"``, or an unknown engine.
    """
    problems = _unsupported(engine, cfg)
    if not problems:
        return
    keys = {key for key, _ in problems}
    others = [e for e in ENGINES if e != engine and not keys & {k for k, _ in _unsupported(e, cfg)}]
    use = " or ".join(["builtin"] + others)
    raise EngineError(f"{engine}: cannot express {'; '.join(t for _, t in problems)}; "
                      f"use engine {use}")
