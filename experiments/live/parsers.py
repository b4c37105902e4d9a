"""Pure parsers of what the telemetry sampler reads: Open vSwitch's and the proxy's output.

Each takes the text (or decoded JSON) one command gives and returns plain data; each is tested
on outputs recorded from real runs (``tests/unit/fixtures/telemetry/``). A line a parser does not
know is skipped, not guessed: Open vSwitch adds fields between releases.
"""
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
    """Return ``{"in_flight", "health", "cache"}`` of the builtin proxy's stats answer.

    ``health`` is ``up`` for a backend the proxy sends to (``serving``), else ``down``;
    ``cache`` is ``{"hits", "misses"}`` or None when the proxy has no cache.
    """
    backends = (stats or {}).get("backends") or {}
    in_flight = {n: b.get("in_flight") for n, b in sorted(backends.items())}
    health = {n: ("up" if (b.get("health") or {}).get("serving") else "down")
              for n, b in sorted(backends.items())}
    cache = (stats or {}).get("cache")
    return {"in_flight": in_flight, "health": health,
            "cache": ({"hits": cache.get("hits"), "misses": cache.get("misses")}
                      if isinstance(cache, dict) else None)}


def http_json_body(raw):
    """Return the body of a raw ``HTTP/1.x 200`` answer (bytes), or None for anything else."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
        return None
    return body
