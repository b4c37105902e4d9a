"""Pure load-generator logic: config, arrival schedules, think times, request mix, requests, records, summary.

Nothing here does I/O; ``lb_apps.loadgen.client`` is the asyncio shell that calls it. The settings are
the pydantic model :class:`LoadgenConfig` (a mix entry as written: :class:`MixItem`).
"""
import bisect
import dataclasses
import functools
import math
import random
import re
from json.encoder import encode_basestring_ascii
from typing import Annotated, Optional
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from lb_apps.backend.model import FilePath, Seed64
from lblab_core.config import validate_input
from lb_apps.loadgen.ports import SOURCE_PORT_MODES  # noqa: F401 - the spec imports it from here
from lb_apps.records import FORMAT_VERSION
from lblab_core import config as C

MODES = ("open", "closed")
ARRIVALS = ("poisson", "constant")
THINK_DISTS = ("fixed", "exponential")
WARMUP_RECORDS = ("mark", "drop")
# Transport-level error kinds of a record's "error" field (null when a full response arrived).
ERROR_KINDS = ("connect_refused", "connect_timeout", "connect_error", "tls_error", "reset",
               "closed", "timeout", "bad_response")
MAX_DURATION_SEC = 24 * 3600.0
MAX_THINK_MS = 3_600_000.0
# Settings renamed to name their unit (issue 11): old name -> (new name, how to convert). The
# old names in a settings file or as flags are refused with a pointer to the new one.
RENAMED_SETTINGS = {
    "think": ("think_ms", "milliseconds, as the spec's think_ms: 0.1 s is 100"),
    "duration": ("duration_s", "seconds, as before"),
    "warmup": ("warmup_s", "seconds, as before"),
    "timeout": ("timeout_s", "seconds, as before"),
    "connect_timeout": ("connect_timeout_s", "seconds, as before"),
    "flush_period": ("flush_period_s", "seconds, as before"),
}
MAX_RATE_PER_SEC = 1_000_000.0
MAX_USERS = 100_000
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_REQUESTS = 10 ** 9
DEFAULT_OPEN_POOL_SIZE = 64
# Closed loop: pause after a transport error before the user's next request. A refused connect
# fails in ~0.1 ms, so without it a user with think time 0 retries in a tight loop: ~8,000
# records/s from 4 users and a full core taken from the host that also runs the balancer.
DEFAULT_ERROR_BACKOFF_MS = 20.0
MAX_ERROR_BACKOFF_MS = 60_000.0
# The HTTP methods a workload may send (CONNECT and TRACE are not load-balancing workloads);
# the one list: the spec's workload mix should import it from here.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


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


def parse_url(url):
    """Parse the target URL.

    Args:
        url (str): ``http://host[:port]/path`` or ``https://...``, printable ASCII, no spaces.
    Returns:
        Target: scheme, host, port, path.
    Raises:
        ValueError: not http(s), no host, bad port, spaces or control characters (the message
            says what was expected).
    """
    if not _URL_RE.fullmatch(url):
        raise ValueError("expected a URL of printable ASCII without spaces or CR/LF")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"expected an http:// or https:// URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("expected an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("expected a URL with a host (http://host[:port]/path)")
    if port == 0:
        raise ValueError("expected a port in 1..65535")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if not path.startswith("/"):
        raise ValueError("expected a path starting with '/'")
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path)


_URL_RE = re.compile(r"[\x21-\x7e]{1,2048}")  # fullmatch: "$" would let a final "\n" in
# RFC 6265 cookie-octet: visible ASCII except '"', ',', ';' and '\'.
_COOKIE_VALUE_RE = re.compile(r'[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*')


def _url(value):
    try:
        parse_url(value)
    except ValueError as exc:
        raise PydanticCustomError("url", str(exc)) from None
    return value


def _cookie_value(value):
    if len(value) > 4096 or not _COOKIE_VALUE_RE.fullmatch(value):
        raise PydanticCustomError("cookie_value", "expected a cookie value (printable ASCII "
                                                  "without spaces, '\"', ',', ';' or '\\')")
    return value


def _open_only(value, info):
    if info.data.get("mode") == "closed":
        raise PydanticCustomError("mode_only", "applies to mode open only (mode is closed)")
    return value


def _closed_only(value, info):
    if info.data.get("mode") == "open":
        raise PydanticCustomError("mode_only", "applies to mode closed only (mode is open)")
    return value


class MixItem(C.Model):
    """One entry of the ``mix`` setting as written (see :class:`MixEntry` for the resolved one)."""
    path: Optional[C.UrlPath] = None          # default: the URL's path
    method: Annotated[str, C.one_of(HTTP_METHODS)] = "GET"
    weight: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] = 1.0
    headers: dict[C.Token, C.HeaderValue] = {}
    cookies: dict[C.Token, Annotated[str, AfterValidator(_cookie_value)]] = {}
    body_size: Annotated[int, Field(ge=0, le=MAX_BODY_BYTES)] = 0


class LoadgenConfig(C.Model):
    """Settings of one load generator run (see docs/loadgen.md for each field): the one
    description of the settings file and the flags. ``mix`` holds the resolved
    :class:`MixEntry` tuple (an entry without a path, or an empty mix, takes the URL's path)."""
    url: Annotated[str, AfterValidator(_url)]
    mode: Annotated[str, C.one_of(MODES)] = "closed"
    rate: Annotated[float, Field(gt=0, le=MAX_RATE_PER_SEC, allow_inf_nan=False),
                    AfterValidator(_open_only)] = 100.0
    arrival: Annotated[str, C.one_of(ARRIVALS), AfterValidator(_open_only)] = "poisson"
    users: Annotated[int, Field(ge=1, le=MAX_USERS)] = 1
    think_ms: Annotated[float, Field(ge=0, le=MAX_THINK_MS, allow_inf_nan=False),
                        AfterValidator(_closed_only)] = 0.0
    think_dist: Annotated[str, C.one_of(THINK_DISTS), AfterValidator(_closed_only)] = "fixed"
    duration_s: Annotated[float, Field(gt=0, le=MAX_DURATION_SEC, allow_inf_nan=False)] = 10.0
    warmup_s: Annotated[float, Field(ge=0, le=MAX_DURATION_SEC, allow_inf_nan=False)] = 0.0
    warmup_records: Annotated[str, C.one_of(WARMUP_RECORDS)] = "mark"
    max_requests: Optional[Annotated[int, Field(ge=1, le=MAX_REQUESTS)]] = None
    keepalive: bool = True
    pool_size: Optional[Annotated[int, Field(ge=1, le=MAX_USERS)]] = None
    seed: Seed64 = 1
    source_ports: Annotated[str, C.one_of(SOURCE_PORT_MODES)] = "seeded"
    mix: C.TupleOf(MixItem) = Field(default=(), validate_default=True)
    session: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 5.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 2.0
    record: Optional[FilePath] = None
    name: C.Name = "loadgen"
    flush_period_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    error_backoff_ms: Annotated[float, Field(ge=0, le=MAX_ERROR_BACKOFF_MS,
                                             allow_inf_nan=False)] = DEFAULT_ERROR_BACKOFF_MS

    @field_validator("mix")
    @classmethod
    def _resolve_mix(cls, items, info):
        url = info.data.get("url")
        default_path = parse_url(url).path if url else "/"
        return tuple(_entry(item, default_path) for item in items) or (MixEntry(default_path),)

    @functools.cached_property
    def target(self):
        """Target: scheme, host, port and path of ``url``."""
        return parse_url(self.url)

    @property
    def connections(self):
        """Most connections open at once (``pool_size``, else users or 64 for open loop)."""
        if self.pool_size is not None:
            return self.pool_size
        return self.users if self.mode == "closed" else DEFAULT_OPEN_POOL_SIZE


def _entry(item, default_path):
    return MixEntry(item.path or default_path, item.method, item.weight,
                    tuple(item.headers.items()), tuple(item.cookies.items()), item.body_size)


def parse_mix(items, default_path):
    """Validate a request mix (the ``mix`` setting) on its own.

    Args:
        items (list[dict]): entries with keys path, method, weight, headers, cookies, body_size.
        default_path (str): the URL's path, used when the mix is empty or an entry has no path.
    Returns:
        tuple[MixEntry]: at least one entry.
    Raises:
        lblab_core.errors.InputError: every problem, named ``mix[i].key``.
    """
    mix = validate_input(_Mix, {"mix": items}, "loadgen settings").mix
    return tuple(_entry(item, default_path) for item in mix) or (MixEntry(default_path),)


class _Mix(C.Model):
    mix: C.TupleOf(MixItem) = ()


def config_from_dict(data, source="loadgen settings", lines=None):
    """Build and validate a ``LoadgenConfig`` from a plain dict (a parsed config file or flags).

    Args:
        data (dict): setting name -> value; ``url`` is required.
        source (str): where it came from, for errors.
        lines (dict[tuple, int]|None): key path -> line (``lblab_core.loader``).
    Returns:
        LoadgenConfig: the validated settings.
    Raises:
        lblab_core.errors.InputError: every unknown key, wrong type or value out of range.
    """
    return validate_input(LoadgenConfig, data, source, lines)


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
        raise ValueError(f"arrival {kind!r} must be one of {ARRIVALS}")
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
    raise ValueError(f"think_dist {kind!r} must be one of {THINK_DISTS}")


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
                 path, conn, cache, warmup=False, pool_wait=0.0, connect=0.0):
    """Return one load generator record (see ``lb_apps.records.LOADGEN_FIELDS``)."""
    record = {"v": FORMAT_VERSION, "id": rid, "client": client, "scheduled": scheduled,
              "start": start, "end": end, "status": status, "bytes": nbytes,
              "backend": backend, "error": error, "method": method, "path": path,
              "conn": conn, "cache": cache, "pool_wait": pool_wait, "connect": connect}
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
     cache, warmup, pool_wait, connect) = item
    return ('{"backend":%s,"bytes":%d,"cache":%s,"client":%s,"conn":%s,"connect":%r,"end":%s,'
            '"error":%s,"id":%s,"method":%s,"path":%s,"pool_wait":%r,"scheduled":%r,"start":%s,'
            '"status":%s,"v":%d%s}\n'
            % (_json_str(backend), nbytes, _json_str(cache), _json_str(client), _json_str(conn),
               connect, _json_float(end), _json_str(error), _json_str(rid), _json_str(method),
               _json_str(path), pool_wait, scheduled, _json_float(start),
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
        self.pool_waits = []

    def add(self, scheduled, end, status, error, start=None, pool_wait=0.0):
        """Count one finished measured request (latency = end - scheduled, ok responses only).

        ``start - scheduled`` (the send lag) is kept too: in open loop it grows when the
        generator or its connection pool, not the server, falls behind; ``pool_wait`` (the
        part spent waiting for a free pooled connection) says which.
        """
        self.sent += 1
        if start is not None:
            self.lags.append(start - scheduled)
        if pool_wait:
            self.pool_waits.append(pool_wait)
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
                rps (finished requests per second), ok_rps, latency_ms p50/p90/p99/max,
                send_lag_ms p50/p99, pool_waited (requests that waited for a connection)
                and pool_wait_ms_max.
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
                                "p99": ms(percentile(lags, 99))},
                "pool_waited": len(self.pool_waits),
                "pool_wait_ms_max": ms(max(self.pool_waits) if self.pool_waits else None)}


def summarize(records, duration):
    """Compute the summary from loadgen records (warm-up records are left out)."""
    builder = SummaryBuilder()
    for r in records:
        if not r.get("warmup"):
            builder.add(r["scheduled"], r["end"], r["status"], r["error"], r["start"],
                        r.get("pool_wait") or 0.0)
    return builder.result(duration)
