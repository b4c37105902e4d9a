"""Pure load-generator logic: config, arrival schedules, think times, request mix, requests, records, summary.

Nothing here does I/O; ``lb_apps.loadgen`` is the asyncio shell that calls it.
"""
import bisect
import dataclasses
import math
import random
from json.encoder import encode_basestring_ascii
from urllib.parse import urlsplit

from lb_apps.records import FORMAT_VERSION

MODES = ("open", "closed")
ARRIVALS = ("poisson", "constant")
THINK_DISTS = ("fixed", "exponential")
WARMUP_RECORDS = ("mark", "drop")
# Transport-level error kinds of a record's "error" field (null when a full response arrived).
ERROR_KINDS = ("connect_refused", "connect_timeout", "connect_error", "tls_error", "reset",
               "closed", "timeout", "bad_response")
MAX_DURATION_SEC = 24 * 3600.0
MAX_RATE_PER_SEC = 1_000_000.0
MAX_USERS = 100_000
MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_OPEN_POOL_SIZE = 64
# Closed loop: pause after a transport error before the user's next request. A refused connect
# fails in ~0.1 ms, so without it a user with think time 0 retries in a tight loop: ~8,000
# records/s from 4 users and a full core taken from the host that also runs the balancer.
DEFAULT_ERROR_BACKOFF_MS = 20.0
MAX_ERROR_BACKOFF_MS = 60_000.0
# Request methods of the mix (CONNECT and TRACE are not load-balancing workloads).
MIX_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class LoadgenConfigError(ValueError):
    """A bad load generator setting; the message names the field, the value and what was expected."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where requests go: ``scheme`` http|https, ``host``, ``port``, default ``path``."""
    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self):
        """The Host header value (port omitted when it is the scheme's default)."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class MixEntry:
    """One kind of request in the mix, chosen with probability ``weight / sum(weights)``."""
    path: str
    method: str = "GET"
    weight: float = 1.0
    headers: tuple = ()      # ((name, value), ...)
    cookies: tuple = ()      # ((name, value), ...)
    body_size: int = 0


@dataclasses.dataclass(frozen=True)
class LoadgenConfig:
    """Settings of one load generator run (see docs/loadgen.md for each field)."""
    url: str
    target: Target
    mode: str = "closed"
    rate: float = 100.0
    arrival: str = "poisson"
    users: int = 1
    think: float = 0.0
    think_dist: str = "fixed"
    duration: float = 10.0
    warmup: float = 0.0
    warmup_records: str = "mark"
    max_requests: int = None
    keepalive: bool = True
    pool_size: int = None
    seed: int = 1
    mix: tuple = ()
    session: bool = False
    timeout: float = 5.0
    connect_timeout: float = 2.0
    record: str = None
    name: str = "loadgen"
    flush_period: float = 1.0
    error_backoff_ms: float = DEFAULT_ERROR_BACKOFF_MS

    @property
    def connections(self):
        """Most connections open at once (``pool_size``, else users or 64 for open loop)."""
        if self.pool_size is not None:
            return self.pool_size
        return self.users if self.mode == "closed" else DEFAULT_OPEN_POOL_SIZE


_FIELD_TYPES = {
    "url": (str,), "mode": (str,), "rate": (int, float), "arrival": (str,), "users": (int,),
    "think": (int, float), "think_dist": (str,), "duration": (int, float),
    "warmup": (int, float), "warmup_records": (str,), "max_requests": (int, type(None)),
    "keepalive": (bool,), "pool_size": (int, type(None)), "seed": (int,), "mix": (list, tuple),
    "session": (bool,), "timeout": (int, float), "connect_timeout": (int, float),
    "record": (str, type(None)), "name": (str,), "flush_period": (int, float),
    "error_backoff_ms": (int, float),
}
_MIX_KEYS = {"path", "method", "weight", "headers", "cookies", "body_size"}


def _expect(ok, field, value, expected):
    if not ok:
        raise LoadgenConfigError(f"loadgen setting {field!r} is {value!r}; expected {expected}")


def parse_url(url):
    """Parse the target URL.

    Args:
        url (str): ``http://host[:port]/path`` or ``https://...``.
    Returns:
        Target: scheme, host, port, path.
    Raises:
        LoadgenConfigError: not http(s), no host, bad port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LoadgenConfigError(f"loadgen setting 'url' is {url!r}; {exc}") from None
    _expect(parts.scheme in ("http", "https"), "url", url, "an http:// or https:// URL")
    _expect(bool(parts.hostname), "url", url, "a URL with a host")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path)


def _header_pairs(field, value):
    _expect(isinstance(value, dict), field, value, "a mapping of name: value")
    pairs = []
    for name, val in value.items():
        ok = isinstance(name, str) and isinstance(val, (str, int, float)) and name and \
            not any(c in name for c in " :\r\n") and not any(c in str(val) for c in "\r\n")
        _expect(ok, field, {name: val}, "names without spaces/colons, values without line breaks")
        pairs.append((name, str(val)))
    return tuple(pairs)


def parse_mix(items, default_path):
    """Validate the request mix.

    Args:
        items (list[dict]): entries with keys path, method, weight, headers, cookies, body_size.
        default_path (str): the URL's path, used when the mix is empty or an entry has no path.
    Returns:
        tuple[MixEntry]: at least one entry.
    Raises:
        LoadgenConfigError: unknown key, bad value (names the entry index).
    """
    if not items:
        return (MixEntry(path=default_path),)
    entries = []
    for i, item in enumerate(items):
        field = f"mix[{i}]"
        _expect(isinstance(item, dict), field, item, "a mapping")
        unknown = sorted(set(item) - _MIX_KEYS)
        _expect(not unknown, field, unknown, f"keys among {sorted(_MIX_KEYS)}")
        path = item.get("path", default_path)
        _expect(isinstance(path, str) and path.startswith("/") and
                not any(c in path for c in " \r\n"), f"{field}.path", path,
                "a path starting with / and without spaces")
        method = item.get("method", "GET")
        _expect(method in MIX_METHODS, f"{field}.method", method, f"one of {MIX_METHODS}")
        weight = item.get("weight", 1.0)
        _expect(isinstance(weight, (int, float)) and not isinstance(weight, bool) and
                math.isfinite(weight) and weight > 0, f"{field}.weight", weight, "a number > 0")
        body = item.get("body_size", 0)
        _expect(isinstance(body, int) and not isinstance(body, bool) and
                0 <= body <= MAX_BODY_BYTES, f"{field}.body_size", body,
                f"bytes in 0..{MAX_BODY_BYTES}")
        entries.append(MixEntry(path, method, float(weight),
                                _header_pairs(f"{field}.headers", item.get("headers", {})),
                                _header_pairs(f"{field}.cookies", item.get("cookies", {})),
                                body))
    return tuple(entries)


def config_from_dict(data):
    """Build and validate a ``LoadgenConfig`` from a plain dict (a parsed config file or flags).

    Args:
        data (dict): setting name -> value; ``url`` is required.
    Returns:
        LoadgenConfig: the validated settings.
    Raises:
        LoadgenConfigError: unknown key, wrong type or value out of range.
    """
    if not isinstance(data, dict):
        raise LoadgenConfigError(f"loadgen config must be a mapping, not {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELD_TYPES))
    if unknown:
        raise LoadgenConfigError(f"unknown loadgen settings {unknown}; expected some of "
                                 f"{sorted(_FIELD_TYPES)}")
    _expect("url" in data, "url", None, "a target URL (http://host:port/path)")
    for key, value in data.items():
        types = _FIELD_TYPES[key]
        wrong_bool = isinstance(value, bool) and bool not in types
        _expect(isinstance(value, types) and not wrong_bool, key, value,
                "a value of type " + " or ".join(t.__name__ for t in types))
    target = parse_url(data["url"])
    values = dict(data)
    values["mix"] = parse_mix(list(data.get("mix", ())), target.path)
    cfg = LoadgenConfig(target=target, **values)
    _expect(cfg.mode in MODES, "mode", cfg.mode, f"one of {MODES}")
    _expect(cfg.arrival in ARRIVALS, "arrival", cfg.arrival, f"one of {ARRIVALS}")
    _expect(0 < cfg.rate <= MAX_RATE_PER_SEC, "rate", cfg.rate,
            f"requests/s in (0, {MAX_RATE_PER_SEC:g}]")
    _expect(1 <= cfg.users <= MAX_USERS, "users", cfg.users, f"1..{MAX_USERS}")
    _expect(cfg.think_dist in THINK_DISTS, "think_dist", cfg.think_dist, f"one of {THINK_DISTS}")
    _expect(math.isfinite(cfg.think) and 0 <= cfg.think <= 3600, "think", cfg.think,
            "seconds in 0..3600")
    _expect(0 < cfg.duration <= MAX_DURATION_SEC, "duration", cfg.duration,
            f"seconds in (0, {MAX_DURATION_SEC:g}]")
    _expect(0 <= cfg.warmup <= MAX_DURATION_SEC, "warmup", cfg.warmup,
            f"seconds in 0..{MAX_DURATION_SEC:g}")
    _expect(cfg.warmup_records in WARMUP_RECORDS, "warmup_records", cfg.warmup_records,
            f"one of {WARMUP_RECORDS}")
    _expect(cfg.max_requests is None or cfg.max_requests >= 1, "max_requests",
            cfg.max_requests, "an integer >= 1 or null")
    _expect(cfg.pool_size is None or 1 <= cfg.pool_size <= MAX_USERS, "pool_size",
            cfg.pool_size, f"1..{MAX_USERS} or null")
    _expect(0 < cfg.timeout <= 3600, "timeout", cfg.timeout, "seconds in (0, 3600]")
    _expect(0 < cfg.connect_timeout <= 600, "connect_timeout", cfg.connect_timeout,
            "seconds in (0, 600]")
    _expect(1 <= len(cfg.name) <= 64 and cfg.name.isprintable(), "name", cfg.name,
            "1-64 printable characters")
    _expect(0 < cfg.flush_period <= 60, "flush_period", cfg.flush_period, "seconds in (0, 60]")
    _expect(math.isfinite(cfg.error_backoff_ms) and
            0 <= cfg.error_backoff_ms <= MAX_ERROR_BACKOFF_MS, "error_backoff_ms",
            cfg.error_backoff_ms, f"milliseconds in 0..{MAX_ERROR_BACKOFF_MS:g} (0 disables it)")
    return cfg


def arrival_offsets(kind, rate, duration, rng, limit=None):
    """Yield planned send times (seconds from the start) of an open-loop schedule.

    Args:
        kind (str): ``poisson`` (exponential gaps, mean 1/rate) or ``constant`` (gap 1/rate).
        rate (float): requests per second.
        duration (float): the schedule ends before this offset.
        rng (random.Random): seeded source (poisson only).
        limit (int|None): most offsets to yield.
    Yields:
        float: offsets, increasing, in [0, duration).
    """
    count = 0
    if kind == "constant":
        gap = 1.0 / rate
        while limit is None or count < limit:
            offset = count * gap          # multiply, not add: no drift over long runs
            if offset >= duration:
                return
            yield offset
            count += 1
        return
    if kind != "poisson":
        raise LoadgenConfigError(f"arrival {kind!r} must be one of {ARRIVALS}")
    offset = rng.expovariate(rate)
    while offset < duration and (limit is None or count < limit):
        yield offset
        count += 1
        offset += rng.expovariate(rate)


def make_think(kind, mean, rng):
    """Return ``think() -> float``: seconds a closed-loop user waits between requests."""
    if mean == 0 or kind == "fixed":
        return lambda: mean
    if kind == "exponential":
        rate = 1.0 / mean
        return lambda: rng.expovariate(rate)
    raise LoadgenConfigError(f"think_dist {kind!r} must be one of {THINK_DISTS}")


def pause_after(think, error, backoff_sec):
    """Return the seconds a closed-loop user waits before its next request.

    After a full response (whatever its status) that is the think time; after a transport
    error it is at least the back-off, because such an error can end a request in a fraction
    of a millisecond (refused connect) and the user would otherwise retry in a tight loop.
    An HTTP error status (503 from a balancer without backends) is paced by the server that
    sent it and gets no back-off.

    Args:
        think (float): this request's think-time draw, seconds.
        error (str|None): the request's transport error kind (``ERROR_KINDS``) or None.
        backoff_sec (float): the error back-off, seconds (0 disables it).
    Returns:
        float: seconds to wait (0: send at once).
    """
    if error is None:
        return think
    return max(think, backoff_sec)


def seeded_rngs(seed):
    """Return independent seeded sources ``(arrival_rng, mix_rng, think_rng)``."""
    return (random.Random(f"{seed}:arrival"), random.Random(f"{seed}:mix"),
            random.Random(f"{seed}:think"))


class RequestMix:
    """Seeded weighted choice over the mix entries (one draw per request, even for one entry).

    Args:
        entries (tuple[MixEntry]): at least one.
        rng (random.Random): seeded source.
    """

    def __init__(self, entries, rng):
        self.entries = tuple(entries)
        total, cumulative = 0.0, []
        for entry in self.entries:
            total += entry.weight
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total
        self._random = rng.random

    def choose_index(self):
        """Return the index of the next entry."""
        i = bisect.bisect_right(self._cumulative, self._random() * self._total)
        return min(i, len(self.entries) - 1)

    def choose(self):
        """Return the next ``MixEntry``."""
        return self.entries[self.choose_index()]


@dataclasses.dataclass(frozen=True)
class RequestTemplate:
    """The fixed bytes of one mix entry's request; ``render`` adds the per-request parts."""
    head: bytes            # request line and fixed headers, without the blank line
    body: bytes
    cookie_prefix: str     # "a=1; b=2" from the entry's own cookies ("" if none)


def compile_request(entry, host_header, keepalive):
    """Pre-encode a mix entry's request.

    Args:
        entry (MixEntry): the request kind.
        host_header (str): Host header value.
        keepalive (bool): False sends ``Connection: close``.
    Returns:
        RequestTemplate: fixed bytes for ``render_request``.
    """
    lines = [f"{entry.method} {entry.path} HTTP/1.1", f"Host: {host_header}",
             "User-Agent: lblab-loadgen"]
    if not keepalive:
        lines.append("Connection: close")
    if entry.body_size or entry.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {entry.body_size}")
    lines += [f"{name}: {value}" for name, value in entry.headers]
    head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    cookies = "; ".join(f"{n}={v}" for n, v in entry.cookies)
    return RequestTemplate(head, b"x" * entry.body_size, cookies)


def render_request(template, request_id, jar=None):
    """Return the bytes of one request.

    Args:
        template (RequestTemplate): from ``compile_request``.
        request_id (str): sent as ``X-Request-Id`` (backends echo and record it).
        jar (dict|None): session cookies name -> value, sent after the entry's own.
    Returns:
        bytes: the full request.
    """
    extra = "X-Request-Id: " + request_id + "\r\n"
    cookies = template.cookie_prefix
    if jar:
        session = "; ".join(f"{n}={v}" for n, v in jar.items())
        cookies = f"{cookies}; {session}" if cookies else session
    if cookies:
        extra += "Cookie: " + cookies + "\r\n"
    return template.head + extra.encode("latin-1") + b"\r\n" + template.body


def parse_set_cookie(value):
    """Return ``(name, value)`` of a Set-Cookie header value, or None if it has no ``=``."""
    first = value.split(";", 1)[0]
    name, eq, val = first.partition("=")
    name = name.strip()
    if not eq or not name:
        return None
    return name, val.strip()


def build_record(rid, client, scheduled, start, end, status, nbytes, backend, error, method,
                 path, conn, cache, warmup=False):
    """Return one load generator record (see ``lb_apps.records.LOADGEN_FIELDS``)."""
    record = {"v": FORMAT_VERSION, "id": rid, "client": client, "scheduled": scheduled,
              "start": start, "end": end, "status": status, "bytes": nbytes,
              "backend": backend, "error": error, "method": method, "path": path,
              "conn": conn, "cache": cache}
    if warmup:
        record["warmup"] = True
    return record


def _json_str(value):
    return "null" if value is None else encode_basestring_ascii(value)


def _json_float(value):
    return "null" if value is None else repr(value)


def encode_record_line(item):
    """Return the JSONL line of a buffered tuple (the arguments of ``build_record`` in order).

    Equal to ``records.encode_record(build_record(*item))``, about four times faster.
    """
    (rid, client, scheduled, start, end, status, nbytes, backend, error, method, path, conn,
     cache, warmup) = item
    return ('{"backend":%s,"bytes":%d,"cache":%s,"client":%s,"conn":%s,"end":%s,"error":%s,'
            '"id":%s,"method":%s,"path":%s,"scheduled":%r,"start":%s,"status":%s,"v":%d%s}\n'
            % (_json_str(backend), nbytes, _json_str(cache), _json_str(client), _json_str(conn),
               _json_float(end), _json_str(error), _json_str(rid), _json_str(method),
               _json_str(path), scheduled, _json_float(start),
               "null" if status is None else "%d" % status, FORMAT_VERSION,
               ',"warmup":true' if warmup else ""))


def outcome(status, error):
    """Classify one request: ``"ok"``, a transport error kind, or ``status_4xx``/``status_5xx``."""
    if error is not None:
        return error
    if status is None or status >= 500:
        return "status_5xx"
    if status >= 400:
        return "status_4xx"
    return "ok"


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (None if empty); ``q`` in 0..100."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class SummaryBuilder:
    """Accumulates outcomes of the measured (non warm-up) requests into the exit summary."""

    def __init__(self):
        self.sent = 0
        self.ok = 0
        self.errors = {}
        self.status = {}
        self.latencies = []
        self.lags = []

    def add(self, scheduled, end, status, error, start=None):
        """Count one finished measured request (latency = end - scheduled, ok responses only).

        ``start - scheduled`` (the send lag) is kept too: in open loop it grows when the
        generator or its connection pool, not the server, falls behind.
        """
        self.sent += 1
        if start is not None:
            self.lags.append(start - scheduled)
        if status is not None:
            self.status[status] = self.status.get(status, 0) + 1
        kind = outcome(status, error)
        if kind == "ok":
            self.ok += 1
            self.latencies.append(end - scheduled)
        else:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def result(self, duration):
        """Return the summary dict.

        Args:
            duration (float): seconds of the measured window (after warm-up).
        Returns:
            dict: sent, ok, errors (kind -> count; sent == ok + sum(errors)), status counts,
                rps (finished requests per second), ok_rps, latency_ms p50/p90/p99/max.
        """
        lat = sorted(self.latencies)
        lags = sorted(self.lags)
        ms = (lambda v: None if v is None else round(v * 1000.0, 3))
        return {"sent": self.sent, "ok": self.ok, "errors": dict(sorted(self.errors.items())),
                "status": {str(k): v for k, v in sorted(self.status.items())},
                "duration": duration,
                "rps": round(self.sent / duration, 1) if duration > 0 else None,
                "ok_rps": round(self.ok / duration, 1) if duration > 0 else None,
                "latency_ms": {"p50": ms(percentile(lat, 50)), "p90": ms(percentile(lat, 90)),
                               "p99": ms(percentile(lat, 99)),
                               "max": ms(lat[-1] if lat else None)},
                "send_lag_ms": {"p50": ms(percentile(lags, 50)),
                                "p99": ms(percentile(lags, 99))}}


def summarize(records, duration):
    """Compute the summary from loadgen records (warm-up records are left out)."""
    builder = SummaryBuilder()
    for r in records:
        if not r.get("warmup"):
            builder.add(r["scheduled"], r["end"], r["status"], r["error"], r["start"])
    return builder.result(duration)
