"""HAProxy 2.6 and nginx 1.22 as alternative L7 engines, rendered from the same L7Config.

Pure core: :func:`check_support` (from :mod:`lb_apps.engines.support`) says what an engine cannot
express, :func:`render_haproxy` and :func:`render_nginx` turn a parsed
:class:`lb_apps.l7config.L7Config` into config text with the jinja2 templates in
``lb_apps/engines/templates/``, behind the wall of :mod:`lb_apps.engines.text` (no interpolated value can
break out of its line or word). Files the configs refer to (TLS PEM, htpasswd, logs,
sockets) live in a run directory; :mod:`lb_apps.engines.proc` writes them, runs the engines and
implements ``lblab engine render|check`` (``lb_apps.engines.proc.main``). The feature mapping is
documented in ``docs/engines.md``.
"""
import hashlib
import hmac
import math
import os
import re

from lb_apps.engines.support import (ENGINES, HAPROXY_MAX_WEIGHT,  # noqa: F401 - re-exported
                                    WEIGHTED_ALGORITHMS, check_support, require_support)
from lb_apps.engines.text import (EngineError, control_chars, environment, hq, nexact, nkey,
                                 nq)
from lb_apps.l7config import DEFAULT_GROUP

# File descriptors HAProxy needs beyond 2 per connection (listeners, stats socket, health checks,
# log pipes); measured here: maxconn 9990 needs 20008 fds with a small config.
HAPROXY_FD_RESERVE = 256
# Above this, HAProxy's per-fd tables cost memory for nothing in a lab.
HAPROXY_MAXCONN_CAP = 100_000
# Idle keep-alive connections each nginx worker keeps per upstream group.
NGINX_UPSTREAM_KEEPALIVE = 32
NGINX_FD_RESERVE = 64
# sun_path is 108 bytes on Linux, including the terminating NUL, but HAProxy 2.6 binds
# "<path>.<pid>.tmp" first and renames it, so it refuses paths over 97 ("too long (max 97)").
UNIX_SOCKET_PATH_MAX = 97
HAPROXY_SOCKET = "haproxy.sock"
HAPROXY_CONFIG = "haproxy.cfg"
NGINX_CONFIG = "nginx.conf"
TLS_PEM = "tls.pem"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
STICKY_VALUE_HEX_CHARS = 16

_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------

def _ms(seconds):
    return f"{max(1, round(seconds * 1000))}ms"


def _safe_name(name, index):
    """Section/server name for ``name`` (HAProxy allows letters, digits, '-', '_', '.')."""
    safe = _SAFE_NAME_RE.sub("_", name)
    return safe if safe == name else f"{safe}_{index}"


def _server_weight(algorithm, backend):
    if backend.weight == 0:
        return 0
    return backend.weight if algorithm in WEIGHTED_ALGORITHMS else 1


def _group_ids(cfg):
    """Group name -> engine section name, default group first."""
    return {name: f"g_{_safe_name(name, i)}" for i, name in enumerate(cfg.groups)}


def _check_run_dir(run_dir):
    run_dir = str(run_dir)
    if not os.path.isabs(run_dir):
        raise EngineError(f"run_dir: expected an absolute path, got {run_dir!r}")
    if control_chars(run_dir) or any(c in run_dir for c in " \"'$;{}#\\"):
        raise EngineError(f"run_dir: {run_dir!r} holds a space, quote or one of $;{{}}#\\ "
                          f"(it is written unquoted into engine configs); pick a plain path")
    return run_dir.rstrip("/") or "/"


def sticky_cookie_value(sticky, backend_name):
    """Return the sticky cookie value for a backend: an HMAC of its name under the secret.

    Args:
        sticky (Sticky): cookie name and secret.
        backend_name (str): the backend's name.
    Returns:
        str: hex digest prefix (it does not reveal the backend's name).
    """
    digest = hmac.new(sticky.secret.encode(), backend_name.encode(), hashlib.sha256).hexdigest()
    return digest[:STICKY_VALUE_HEX_CHARS]


def htpasswd_text(users):
    """Return an nginx htpasswd file for ``users`` (``{PLAIN}`` scheme: no crypt(3) needed).

    Args:
        users (dict): user name -> password.
    Returns:
        str: one ``user:{PLAIN}password`` line per user.
    Raises:
        EngineError: a user with ':' or a control character, or a password with one (the
            models refuse them; this keeps a forced value from adding an htpasswd line).
    """
    for user, password in users.items():
        if ":" in user or control_chars(user) or control_chars(password):
            raise EngineError(f"refusing to write basic auth user {user!r} into an htpasswd "
                              f"file: ':' or a control character would forge another entry")
    return "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in users.items())


def htpasswd_files(cfg, run_dir):
    """Return path -> text of the htpasswd files nginx needs (one per basic-auth route).

    Args:
        cfg (L7Config): the parsed L7 config.
        run_dir (str): absolute run directory.
    Returns:
        dict[str, str]: file path -> contents.
    """
    return {os.path.join(str(run_dir), f"htpasswd-r{r.index}"): htpasswd_text(r.auth.users)
            for r in cfg.routes if r.auth is not None and r.auth.type == "basic"}


# ---------------------------------------------------------------------------------------------
# HAProxy
# ---------------------------------------------------------------------------------------------

def haproxy_maxconn(ulimit_n):
    """Return the global ``maxconn`` HAProxy can start with under a file-descriptor limit.

    HAProxy needs two fds per proxied connection plus a reserve, and refuses to start when that
    exceeds the hard limit ("Cannot raise FD limit to 20028, limit is 20000" for maxconn 10000).

    Args:
        ulimit_n (int): the hard ``RLIMIT_NOFILE`` (HAProxy raises its soft limit itself).
    Returns:
        int: maxconn, at least 1 and at most ``HAPROXY_MAXCONN_CAP``.
    Raises:
        EngineError: ``ulimit_n`` is not an int > ``HAPROXY_FD_RESERVE``.
    """
    if isinstance(ulimit_n, bool) or not isinstance(ulimit_n, int) or ulimit_n <= HAPROXY_FD_RESERVE + 2:
        raise EngineError(f"ulimit_n: expected an int > {HAPROXY_FD_RESERVE + 2} (open files "
                          f"limit), got {ulimit_n!r}; raise it with 'ulimit -n'")
    return min(HAPROXY_MAXCONN_CAP, (ulimit_n - HAPROXY_FD_RESERVE) // 2)


def haproxy_socket_path(run_dir):
    """Return where HAProxy's stats socket goes: ``run_dir/haproxy.sock`` if that fits in a
    unix socket address, else a short ``/tmp`` path derived from run_dir.

    A filesystem socket (not an abstract one) because abstract sockets belong to a network
    namespace, and the runner talks to HAProxy on a Mininet host from the root namespace.

    Args:
        run_dir (str): absolute run directory.
    Returns:
        str: the socket path.
    """
    path = os.path.join(str(run_dir), HAPROXY_SOCKET)
    if len(path) <= UNIX_SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]
    return f"/tmp/lblab-haproxy-{digest}.sock"


def _hap_name_value(kind, nv):
    fetch = {"header": f"req.fhdr({nv.name})", "cookie": f"req.cook({nv.name})",
             # url_dec: the builtin proxy compares decoded query values (parse_qsl).
             "query": f"urlp({nv.name}),url_dec"}[kind]
    if nv.value is None:
        present = {"header": f"req.fhdr_cnt({nv.name}) gt 0",
                   "cookie": f"req.cook_cnt({nv.name}) gt 0", "query": f"urlp({nv.name}) -m found"}
        return "{ " + present[kind] + " }"
    if nv.value == "":
        return "{ " + fetch + " -m len 0 }"
    return "{ " + fetch + " -m str -- " + hq(nv.value) + " }"


def _hap_conditions(match):
    """Return the anonymous ACLs (ANDed) for a route's match."""
    conds = []
    if match.path_prefix is not None:
        conds.append("{ path_beg -- " + hq(match.path_prefix) + " }")
    if match.path_regex is not None:
        conds.append("{ path_reg -- " + hq(match.path_regex) + " }")
    if match.host is not None:
        host = "req.hdr(host),field(1,:),lower"
        if match.host.startswith("*."):
            conds.append("{ " + host + " -m end -- " + hq(match.host[1:]) + " }")
        else:
            conds.append("{ " + host + " -m str -- " + hq(match.host) + " }")
    if match.methods:
        conds.append("{ method " + " ".join(hq(m) for m in match.methods) + " }")
    for kind in ("header", "cookie", "query"):
        nv = getattr(match, kind)
        if nv is not None:
            conds.append(_hap_name_value(kind, nv))
    return conds


def _hap_balance(group):
    """Return (lines, hash_type) for a group's algorithm in a HAProxy backend section."""
    algo, key = group.algorithm, group.hash_key
    if algo in ("round_robin", "weighted_round_robin"):
        return ["balance roundrobin"], None
    if algo in ("least_connections", "weighted_least_connections"):
        return ["balance leastconn"], None
    if algo == "random":
        return ["balance random(1)"], None
    if algo == "power_of_two":
        return ["balance random(2)"], None
    if algo == "ip_hash":
        return ["balance source"], "map-based"
    if algo == "five_tuple_hash":
        return ["http-request set-var-fmt(txn.lblab_l4) '%[src]:%[src_port]-%[dst]:%[dst_port]'",
                "balance hash var(txn.lblab_l4)"], "map-based"
    if algo == "consistent_hash":
        balance = {"uri": "balance uri", "client_ip": "balance source",
                   "header": f"balance hdr({key.name})",
                   "cookie": f"balance hash req.cook({key.name})"}[key.type]
        return [balance], "consistent"
    raise EngineError(f"algorithm: {algo!r} has no HAProxy mapping")


def _hap_backend(cfg, group, section):
    balance, hash_type = _hap_balance(group)
    servers = []
    for i, backend in enumerate(group.backends):
        opts = [f"weight {_server_weight(group.algorithm, backend)}"]
        if backend.tls:
            opts.append("ssl verify none")
        if cfg.sticky is not None:
            opts.append(f"cookie {sticky_cookie_value(cfg.sticky, backend.name)}")
        health, passive = group.health, group.passive_health
        if health is not None:
            opts.append(f"check inter {_ms(health.interval)} rise {health.rise} fall {health.fall}")
        elif passive is not None:
            # observe needs checks enabled: a TCP connect check every fail_timeout brings a
            # server that observe marked down back (rise 1), like nginx retrying after fail_timeout.
            opts.append(f"check inter {_ms(passive.fail_timeout)} rise 1 fall {passive.max_fails}")
        if passive is not None:
            opts.append(f"observe layer7 error-limit {passive.max_fails} on-error mark-down")
        servers.append({"name": _safe_name(backend.name, i),
                        "address": f"{backend.address}:{backend.port}", "options": " ".join(opts)})
    health = group.health
    return {"section": section, "name": group.name, "balance": balance, "hash_type": hash_type,
            "servers": servers,
            "check_path": None if health is None else health.path,
            "check_timeout": None if health is None else _ms(health.timeout)}


def _hap_auth_lines(route):
    """Return (userlist or None, http-request lines) for a route's auth."""
    auth = route.auth
    if auth is None:
        return None, []
    selected = "{ var(txn.lblab_route) -m int " + str(route.index) + " }"
    if auth.type == "basic":
        name = f"lblab_r{route.index}"
        users = [f"user {hq(u)} insecure-password {hq(p)}" for u, p in auth.users.items()]
        line = (f"http-request auth realm {hq(auth.realm)} if {selected} "
                f"!{{ http_auth({name}) }}")
        return {"name": name, "users": users}, [line]
    realm = auth.realm.replace("%", "%%")
    line = (f"http-request return status 401 hdr WWW-Authenticate "
            f"{hq(f'Bearer realm={chr(34)}{realm}{chr(34)}')} if {selected} "
            f"!{{ req.fhdr(authorization) -m reg -- {hq(bearer_regex(auth.tokens))} }}")
    return None, [line]


def bearer_regex(tokens):
    """Return a PCRE matching an Authorization value the builtin accepts for these tokens.

    The scheme is case-insensitive and followed by spaces; the token compares exactly.

    Args:
        tokens (tuple[str]): the accepted bearer tokens.
    Returns:
        str: the anchored regex.
    """
    return "^(?i:bearer) +(?:" + "|".join(re.escape(t) for t in tokens) + ")$"


def render_haproxy(cfg, run_dir, ulimit_n, access_log=True):
    """Render ``haproxy.cfg`` for HAProxy 2.6 from an L7 config.

    Args:
        cfg (L7Config): the parsed L7 config.
        run_dir (str): absolute directory for the TLS PEM, stats socket (files written by
            :func:`lb_apps.engines.proc.prepare_run_dir`).
        ulimit_n (int): hard open-files limit HAProxy will run under.
        access_log (bool): log one line per request to stdout (the shell sends it to a file).
    Returns:
        str: the configuration text.
    Raises:
        EngineError: a feature HAProxy cannot express, ``max_connections`` beyond what the fd
            limit allows, or a bad run_dir.
    """
    require_support("haproxy", cfg)
    run_dir = _check_run_dir(run_dir)
    maxconn = haproxy_maxconn(ulimit_n)
    frontend_maxconn = cfg.limits.max_connections * cfg.workers
    if frontend_maxconn > maxconn:
        raise EngineError(f"haproxy: limits.max_connections {cfg.limits.max_connections} x "
                          f"workers {cfg.workers} = {frontend_maxconn} exceeds maxconn {maxconn} "
                          f"allowed by ulimit -n {ulimit_n}; raise the hard limit or lower "
                          f"limits.max_connections")
    socket = haproxy_socket_path(run_dir)
    ids = _group_ids(cfg)
    userlists, route_lines = [], []
    for route in cfg.routes:
        conds = " ".join(_hap_conditions(route.match))
        route_lines.append(f"http-request set-var(txn.lblab_route) int({route.index}) if "
                           f"!{{ var(txn.lblab_route) -m found }} {conds}".rstrip())
    for route in cfg.routes:
        userlist, lines = _hap_auth_lines(route)
        if userlist is not None:
            userlists.append(userlist)
        route_lines.extend(lines)
    use_backends = [f"use_backend {ids[r.group]} if {{ var(txn.lblab_route) -m int {r.index} }}"
                    for r in cfg.routes]
    limits, t = cfg.limits, cfg.timeouts
    cache = cfg.cache
    context = {
        "run_dir": run_dir, "socket": socket, "maxconn": maxconn, "nbthread": cfg.workers,
        "access_log": access_log,
        # +1: a request with exactly max_headers must parse so that the 431 rule can count it.
        "maxhdr": min(32767, max(101, limits.max_headers + 1)),
        # Headers must fit in one buffer minus maxrewrite (1024) to be parsed at all.
        "bufsize": max(16384, limits.max_header_bytes + limits.max_uri + 1024 + 1024),
        "timeouts": {"connect": _ms(t.connect), "server": _ms(t.response),
                     "client": _ms(max(t.response, t.client_header)),
                     "http_request": _ms(t.client_header),
                     "keep_alive": _ms(t.keepalive_idle)},
        "bind": f"{cfg.listen.host}:{cfg.listen.port}",
        "tls_pem": os.path.join(run_dir, TLS_PEM) if cfg.tls is not None else None,
        "frontend_maxconn": frontend_maxconn, "limits": limits,
        "route_lines": route_lines, "use_backends": use_backends, "userlists": userlists,
        "default_backend": ids[DEFAULT_GROUP],
        "backends": [_hap_backend(cfg, g, ids[name]) for name, g in cfg.groups.items()],
        "sticky": cfg.sticky, "retries": cfg.retries,
        "cache": None if cache is None else {
            "total_mb": min(4095, max(1, math.ceil(cache.max_bytes / (1024 * 1024)))),
            "max_object": min(cache.max_object_bytes,
                              max(1, math.ceil(cache.max_bytes / (1024 * 1024))) * 1024 * 1024 // 2)},
        "stats": None if cfg.stats is None else f"{cfg.stats.host}:{cfg.stats.port}",
    }
    return environment().get_template("haproxy.cfg.j2").render(**context)


# ---------------------------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------------------------

def nginx_worker_connections(max_connections):
    """Return ``worker_connections``: each client connection may hold one upstream connection.

    Args:
        max_connections (int): client connections per worker (``limits.max_connections``).
    Returns:
        int: connections per worker, including idle upstream keep-alive ones.
    """
    return 2 * max_connections + NGINX_UPSTREAM_KEEPALIVE + NGINX_FD_RESERVE


def _ngx_var(kind, name):
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_")
    return ("$cookie_" if kind == "cookie" else "$arg_") + name


def _ngx_route_maps(route):
    """Return (maps, source) for one route: per-condition maps and the string that is all '1'
    exactly when every condition holds."""
    m, i = route.match, route.index
    maps, flags = [], []

    def add(source, entries, name):
        var = f"$lblab_r{i}_{name}"
        maps.append({"source": source, "var": var, "entries": entries + [("default", "0")]})
        flags.append(var)

    if m.path_prefix is not None:
        add("$lblab_path", [(nq("~^" + re.escape(m.path_prefix)), "1")], "prefix")
    if m.path_regex is not None:
        add("$lblab_path", [(nq("~" + m.path_regex), "1")], "regex")
    if m.host is not None:
        key = (nq("~" + re.escape(m.host[1:]) + "$") if m.host.startswith("*.")
               else nkey(m.host))
        add("$host", [(key, "1")], "host")
    # Plain map keys compare case-insensitively; the builtin compares methods and values
    # exactly, so those are anchored case-sensitive regexes.
    if m.methods:
        add("$request_method", [(nexact(meth), "1") for meth in m.methods], "method")
    for kind in ("header", "cookie", "query"):
        nv = getattr(m, kind)
        if nv is None:
            continue
        if nv.value is None:
            add(_ngx_var(kind, nv.name), [('""', "0"), ("~.", "1")], kind)
        else:
            add(_ngx_var(kind, nv.name), [(nexact(nv.value), "1")], kind)
    return maps, "".join(flags) or "1", "1" * len(flags) or "1"


def _ngx_upstream(group, section):
    algo, key = group.algorithm, group.hash_key
    balance = {
        "round_robin": None, "weighted_round_robin": None,
        "least_connections": "least_conn", "weighted_least_connections": "least_conn",
        "random": "random", "power_of_two": "random two least_conn",
        # Not ip_hash: it hashes only the first three octets of an IPv4 address, so every
        # Mininet client (10.0.0.x) would land on one backend.
        "ip_hash": "hash $remote_addr",
        "five_tuple_hash": "hash $remote_addr:$remote_port-$server_addr:$server_port",
    }.get(algo, "")
    if algo == "consistent_hash":
        source = {"uri": "$request_uri", "client_ip": "$remote_addr",
                  "header": _ngx_var("header", key.name or ""),
                  "cookie": _ngx_var("cookie", key.name or "")}[key.type]
        balance = f"hash {source} consistent"
    elif balance == "":
        raise EngineError(f"algorithm: {algo!r} has no nginx mapping")
    passive = group.passive_health
    servers = []
    for backend in group.backends:
        weight = _server_weight(algo, backend)
        opts = ["down"] if weight == 0 else ([f"weight={weight}"] if weight != 1 else [])
        if passive is not None:
            opts += [f"max_fails={passive.max_fails}", f"fail_timeout={max(1, math.ceil(passive.fail_timeout))}s"]
        else:
            opts.append("max_fails=0")
        servers.append((f"{backend.address}:{backend.port}" if ":" not in backend.address
                        else f"[{backend.address}]:{backend.port}", " ".join(opts)))
    scheme = "https" if group.backends[0].tls else "http"
    return {"section": section, "name": group.name, "balance": balance, "servers": servers,
            "url": f"{scheme}://{section}", "tls": scheme == "https"}


def render_nginx(cfg, run_dir, ulimit_n, user=None, access_log=True):
    """Render ``nginx.conf`` for nginx 1.22 (open source) from an L7 config.

    Args:
        cfg (L7Config): the parsed L7 config.
        run_dir (str): absolute directory for pid, logs, temp files, TLS files and htpasswd files
            (nginx never touches /var).
        ulimit_n (int): hard open-files limit (``worker_rlimit_nofile``).
        user (str|None): ``user`` directive; needed when started as root, since workers must read
            the htpasswd files and write temp files inside run_dir.
        access_log (bool): log one line per request to ``run_dir/access.log``.
    Returns:
        str: the configuration text.
    Raises:
        EngineError: a feature nginx cannot express, or a bad run_dir.
    """
    require_support("nginx", cfg)
    run_dir = _check_run_dir(run_dir)
    ids = _group_ids(cfg)
    upstreams = [_ngx_upstream(g, ids[name]) for name, g in cfg.groups.items()]
    urls = {u["name"]: u["url"] for u in upstreams}
    maps, route_entries, upstream_entries = [], [], []
    realm_entries, file_entries, bearer_entries = [], [], []
    flag_sources = []
    for route in cfg.routes:
        route_maps, source, all_ones = _ngx_route_maps(route)
        maps.extend(route_maps)
        maps.append({"source": nq(source), "var": f"$lblab_r{route.index}",
                     "entries": [(nq(all_ones), "1"), ("default", "0")]})
        flag_sources.append(f"$lblab_r{route.index}")
        # First match wins: the route selected is the first '1' in "$lblab_r0$lblab_r1...".
        route_entries.append((nq("~^" + "0" * route.index + "1"), str(route.index)))
        upstream_entries.append((nq(str(route.index)), urls[route.group]))
        auth = route.auth
        if auth is not None and auth.type == "basic":
            realm_entries.append((nq(str(route.index)), nq(auth.realm)))
            file_entries.append((nq(str(route.index)),
                                 os.path.join(run_dir, f"htpasswd-r{route.index}")))
        elif auth is not None:
            # Regexes are tried in order: the accepted tokens first, then "any other value".
            accepted = bearer_regex(auth.tokens).replace("^", f"^{route.index}:", 1)
            bearer_entries.append((nq("~" + accepted), '""'))
            bearer_entries.append((nq(f"~^{route.index}:"), nq(auth.realm)))
    limits, t = cfg.limits, cfg.timeouts
    header_buffer_kb = max(1, math.ceil(max(limits.max_uri, 1024) / 1024))
    worker_connections = nginx_worker_connections(limits.max_connections)
    cache = cfg.cache
    context = {
        "run_dir": run_dir, "user": user, "workers": cfg.workers, "access_log": access_log,
        "rlimit_nofile": ulimit_n, "worker_connections": worker_connections,
        "listen": (f"{cfg.listen.host}:{cfg.listen.port}" if ":" not in cfg.listen.host
                   else f"[{cfg.listen.host}]:{cfg.listen.port}"),
        "tls": None if cfg.tls is None else {"cert": os.path.join(run_dir, TLS_CERT),
                                             "key": os.path.join(run_dir, TLS_KEY)},
        "upstreams": upstreams, "keepalive": NGINX_UPSTREAM_KEEPALIVE,
        "routes": bool(cfg.routes), "maps": maps,
        "route_source": nq("".join(flag_sources)), "route_entries": route_entries,
        "upstream_entries": upstream_entries, "default_url": urls[DEFAULT_GROUP],
        "realm_entries": realm_entries, "file_entries": file_entries,
        "bearer_entries": bearer_entries,
        "timeouts": {"connect": _ms(t.connect), "response": _ms(t.response),
                     "client_header": _ms(t.client_header), "keepalive": _ms(t.keepalive_idle)},
        "max_body": limits.max_body,
        "header_buffers": (max(2, math.ceil(limits.max_header_bytes / (header_buffer_kb * 1024))),
                           f"{header_buffer_kb}k"),
        "retries": cfg.retries,
        "any_tls_upstream": any(u["tls"] for u in upstreams),
        "cache": None if cache is None else {
            "path": os.path.join(run_dir, "cache"),
            # One megabyte of keys_zone holds about 8,000 keys (nginx docs).
            "keys_mb": max(1, math.ceil(cache.max_entries / 8000)),
            "max_size": f"{max(1, math.ceil(cache.max_bytes / 1024))}k"},
        "stats": (None if cfg.stats is None else
                  (f"{cfg.stats.host}:{cfg.stats.port}" if ":" not in cfg.stats.host
                   else f"[{cfg.stats.host}]:{cfg.stats.port}")),
    }
    return environment().get_template("nginx.conf.j2").render(**context)


def render(engine, cfg, run_dir, ulimit_n, **kwargs):
    """Render the config of ``engine`` (``haproxy`` or ``nginx``); see the render_* functions.

    Returns:
        str: the configuration text.
    Raises:
        EngineError: unknown engine, or a feature it cannot express.
    """
    if engine == "haproxy":
        return render_haproxy(cfg, run_dir, ulimit_n, **kwargs)
    if engine == "nginx":
        return render_nginx(cfg, run_dir, ulimit_n, **kwargs)
    raise EngineError(f"engine: unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
