"""Pure parsers of what the telemetry sampler reads: Open vSwitch's and the proxies' output.

Each takes the text (or decoded JSON) one command gives and returns plain data; each is tested
on outputs recorded from real runs (``tests/unit/fixtures/telemetry/``). A line a parser does not
know is skipped, not guessed: Open vSwitch adds fields between releases.
"""
import csv
import re

# ovs-ofctl -O OpenFlow13 dump-ports BRIDGE:
#   port  4: rx pkts=82, bytes=41274, drop=0, ...
#            tx pkts=104, bytes=14974, drop=0, ...
_PORT = re.compile(r"^\s*port\s+(\S+?):\s*rx pkts=(\d+|\?), bytes=(\d+|\?)")
_TX = re.compile(r"^\s*tx pkts=(\d+|\?), bytes=(\d+|\?)")
_FLOW_COUNT = re.compile(r"\bflow_count=(\d+)")
# ovs-appctl dpctl/dump-conntrack:
#   tcp,orig=(src=10.0.0.1,dst=10.254.0.1,sport=4711,dport=80),reply=(src=10.0.0.4,...),...
_CT = re.compile(r"orig=\(src=([^,)]*),dst=([^,)]*)[^)]*\),reply=\(src=([^,)]*)")


def _int(text):
    return None if text == "?" else int(text)


def dump_ports(text):
    """Parse ``ovs-ofctl -O OpenFlow13 dump-ports BRIDGE``.

    Returns:
        dict: ``{port: [rx_bytes, tx_bytes]}`` with the port number as a string (as JSON keeps
        it), for numbered ports only (``LOCAL`` is the bridge's own port); a counter the
        switch does not keep (``?``) is None.
    """
    out = {}
    current = None
    for line in text.splitlines():
        m = _PORT.match(line)
        if m:
            current = m.group(1) if m.group(1).isdigit() else None
            if current is not None:
                out[current] = [_int(m.group(3)), None]
            continue
        m = _TX.match(line)
        if m and current is not None:
            out[current][1] = _int(m.group(2))
            current = None
    return out


def flow_count(text):
    """Parse ``ovs-ofctl -O OpenFlow13 dump-aggregate BRIDGE``: the number of flows, or None."""
    m = _FLOW_COUNT.search(text)
    return int(m.group(1)) if m else None


def conntrack_by_backend(text, backend_ips):
    """Count ``ovs-appctl dpctl/dump-conntrack`` entries per backend.

    An entry belongs to a backend when its original direction goes to the backend's address
    (a client reaching it directly, or a ``nat(dst=)`` already applied) or when its reply comes
    from it (the VIP translated to the backend).

    Args:
        text (str): the command's output, one entry a line.
        backend_ips (dict): ``{ip: backend name}``.
    Returns:
        dict: ``{backend name: entries}`` for every backend (0 when none).
    """
    counts = {name: 0 for name in backend_ips.values()}
    for line in text.splitlines():
        m = _CT.search(line)
        if not m:
            continue
        _src, dst, reply_src = m.groups()
        name = backend_ips.get(dst) or backend_ips.get(reply_src)
        if name is not None:
            counts[name] += 1
    return counts


def controller_packet_ins(stats):
    """Return the packet-ins of every service of the controller's ``GET /stats`` answer."""
    services = (stats or {}).get("services") or {}
    values = [s.get("packet_ins") for s in services.values() if isinstance(s, dict)]
    values = [v for v in values if isinstance(v, int)]
    return sum(values) if values else None


def proxy_state(stats):
    """Return the ``proxy`` part of a sample from the builtin proxy's stats answer(s).

    Args:
        stats (dict|list[dict]): one worker's ``GET /`` answer of its stats port, or every
            worker's (each worker keeps its own counters and health states).
    Returns:
        dict: ``{"engine": "builtin", "in_flight", "queued": None, "health", "cache",
        "clients", "requests", "nginx": None}``; ``in_flight``, ``clients`` and ``requests``
        are summed over the workers; ``requests`` counts the requests answered (by a backend,
        from the cache, or by the proxy itself: ``local_responses``); ``health`` is ``up`` for
        a backend every worker sends to (``serving``), ``down`` for one none does, else
        ``partial``; ``cache`` is ``{"hits", "misses"}`` (summed) or None when the proxy has no
        cache.
    """
    workers = [s for s in (stats if isinstance(stats, list) else [stats]) if s]
    in_flight, serving, hits, misses = {}, {}, None, None
    clients = requests = None
    for one in workers:
        answered = [v for v in (one.get("local_responses") or {}).values()
                    if isinstance(v, int)]
        for n, b in sorted(((one.get("backends") or {}).items())):
            if isinstance(b.get("in_flight"), int):
                in_flight[n] = in_flight.get(n, 0) + b["in_flight"]
            if isinstance(b.get("requests"), int):
                answered.append(b["requests"])
            serving.setdefault(n, []).append(bool((b.get("health") or {}).get("serving")))
        if isinstance((one.get("cache") or {}).get("hits"), int):
            answered.append(one["cache"]["hits"])
        if answered:
            requests = (requests or 0) + sum(answered)
        cache = one.get("cache")
        if isinstance(cache, dict):
            hits = (hits or 0) + (cache.get("hits") or 0)
            misses = (misses or 0) + (cache.get("misses") or 0)
        if isinstance(one.get("connections"), int):
            clients = (clients or 0) + one["connections"]
    health = {n: ("up" if all(v) else "down" if not any(v) else "partial")
              for n, v in sorted(serving.items())}
    return {"engine": "builtin", "in_flight": dict(sorted(in_flight.items())), "queued": None,
            "health": health,
            "cache": None if hits is None else {"hits": hits, "misses": misses},
            "clients": clients, "requests": requests, "nginx": None}


# HAProxy's `status` of a server (show stat): "UP", "UP 1/3" (going down), "DOWN", "DOWN 1/2"
# (going up), "NOLB", "MAINT", "MAINT (via g/b)", "MAINT (resolution)", "DRAIN", "no check".
_HAPROXY_HEALTH = {"UP": "up", "DOWN": "down", "NOLB": "nolb", "MAINT": "maint",
                   "DRAIN": "drain", "no": "up"}      # "no check": HAProxy sends to it


def haproxy_health(status):
    """Return the health state (up, down, maint, drain, nolb) of a server's ``status`` field,
    or the field lowercased when HAProxy says something else."""
    word = (status or "").split(" ")[0]
    return _HAPROXY_HEALTH.get(word, (status or "").strip().lower() or None)


def _num(row, key):
    value = (row.get(key) or "").strip()
    return int(value) if value.isdigit() else None


def haproxy_stat(text, skip_proxies=("lblab_stats",)):
    """Parse HAProxy's ``show stat`` (the stats socket's CSV) into the ``proxy`` of a sample.

    Args:
        text (str): the answer, its first line ``# pxname,svname,...``.
        skip_proxies (tuple[str]): proxies that are not the balancer (the HTTP stats page).
    Returns:
        dict: ``{"engine": "haproxy", "in_flight": {server: scur}, "queued": {server: qcur},
        "health": {server: state}, "cache": {"hits", "misses"}, "clients", "requests",
        "nginx": None}``: a server's current sessions (``scur``: requests it is serving) and
        queued requests (``qcur``), summed where a server name is in several backends (its
        health then the first backend's); the cache's hits and misses from the backends'
        ``cache_hits`` and ``cache_lookups`` (the sampler sets None where no cache is
        configured); ``clients`` the frontends' current sessions (client connections) and
        ``requests`` their ``req_tot``. A field HAProxy leaves empty is not counted.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"show stat: expected a '# pxname,svname,...' header, got "
                         f"{(lines[0] if lines else '')[:40]!r}")
    rows = csv.DictReader([lines[0][2:]] + [x for x in lines[1:] if x.strip()])
    in_flight, queued, health = {}, {}, {}
    hits = lookups = clients = requests = 0
    for row in rows:
        if row.get("pxname") in skip_proxies:
            continue
        name = row.get("svname")
        if name == "FRONTEND":
            clients += _num(row, "scur") or 0
            requests += _num(row, "req_tot") or 0
        elif name == "BACKEND":
            hits += _num(row, "cache_hits") or 0
            lookups += _num(row, "cache_lookups") or 0
        elif name:
            for out, key in ((in_flight, "scur"), (queued, "qcur")):
                value = _num(row, key)
                if value is not None:
                    out[name] = out.get(name, 0) + value
            health.setdefault(name, haproxy_health(row.get("status")))
    return {"engine": "haproxy", "in_flight": dict(sorted(in_flight.items())),
            "queued": dict(sorted(queued.items())), "health": dict(sorted(health.items())),
            "cache": {"hits": hits, "misses": lookups - hits}, "clients": clients,
            "requests": requests, "nginx": None}


_STUB = re.compile(r"Active connections:\s*(\d+)\s+server accepts handled requests\s+"
                   r"(\d+)\s+(\d+)\s+(\d+)\s+Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+"
                   r"Waiting:\s*(\d+)")


def nginx_stub_status(text):
    """Parse nginx's ``stub_status`` page (connections and requests only: nginx open source
    keeps no per-upstream state that a page can read) into the ``proxy`` of a sample.

    Returns:
        dict: ``{"engine": "nginx", "in_flight": {}, "queued": None, "health": {}, "cache":
        None, "clients": active - 1, "requests": requests, "nginx": {"active", "accepts",
        "handled", "requests", "reading", "writing", "waiting"}}``; ``nginx`` is the page as
        nginx gives it, which counts the sampler's own connection (active, writing) and its
        request (requests); ``clients`` leaves that connection out.
    Raises:
        ValueError: not a stub_status page.
    """
    m = _STUB.search(text or "")
    if not m:
        raise ValueError(f"stub_status: expected 'Active connections: N ...', got "
                         f"{(text or '')[:40]!r}")
    keys = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
    page = dict(zip(keys, (int(g) for g in m.groups())))
    return {"engine": "nginx", "in_flight": {}, "queued": None, "health": {}, "cache": None,
            "clients": max(0, page["active"] - 1), "requests": page["requests"], "nginx": page}


def http_json_body(raw):
    """Return the body of a raw ``HTTP/1.x 200`` answer (bytes), or None for anything else."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
        return None
    return body
