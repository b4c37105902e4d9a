"""Pure decisions of the HTTP backend: config, service times, capacity, errors, faults, records.

Nothing here does I/O; ``lb_apps.backend.server`` is the asyncio shell that calls it. The settings are
the pydantic model :class:`BackendConfig`; ``lblab_core.config.validate_input`` turns its errors
into lblab's one-line messages.
"""
import dataclasses
import ipaddress
import math
import random
import re
from json.encoder import encode_basestring_ascii
from typing import Annotated, Optional
from urllib.parse import parse_qs

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from lb_apps.records import FORMAT_VERSION
from lblab_core import config as C

SERVICE_DISTS = ("fixed", "exponential", "lognormal")
OVERFLOW_POLICIES = ("queue", "reject")

# Largest body one response may carry (/size/<n> or response_size): keeps a typo from
# allocating gigabytes on a small Mininet host.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

# Admission decisions (see ``admit``).
SERVE = "serve"
QUEUE = "queue"
REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class FaultMode:
    """What one fault mode does.

    Attributes:
        extra_delay (bool): add ``slow_delay`` to every service time.
        answer (bool): send responses at all (False: the request hangs forever).
        truncate (bool): send half a response, then close the connection.
        listen (bool): keep the listening socket open (False: new connections are refused).
        health_status (int): what ``GET /health`` answers in this mode.
    """
    extra_delay: bool = False
    answer: bool = True
    truncate: bool = False
    listen: bool = True
    health_status: int = 200


# The fault-mode table: every behaviour a mode changes lives here (one place to read).
FAULT_MODES = {
    "none": FaultMode(),
    "slow": FaultMode(extra_delay=True),
    "hang": FaultMode(answer=False, health_status=503),
    "close": FaultMode(truncate=True, health_status=503),
    "refuse": FaultMode(listen=False, health_status=503),
}


def _path_text(value):
    if not value or len(value) > 4096 or not value.isprintable():
        raise PydanticCustomError("file_path", "expected a file path (1-4096 printable "
                                               "characters)")
    return value


def _host_text(value):
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(value):
        raise PydanticCustomError("host", "expected an IP address or a host name")
    return value


# fullmatch, not match with "$": Python's "$" also matches before a final newline.
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*")
FilePath = Annotated[str, AfterValidator(_path_text)]
HostText = Annotated[str, AfterValidator(_host_text)]
# random.Random takes any integer; the bound keeps a seed a signed 64-bit integer.
Seed64 = Annotated[int, Field(ge=0, le=2 ** 63 - 1)]
MAX_SERVICE_SEC = 3600.0
MAX_SERVICE_MS = MAX_SERVICE_SEC * 1000.0
# Settings renamed to name their unit (issue 11): old name -> (new name, how to convert). The
# old names in a settings file or as flags are refused with a pointer to the new one.
RENAMED_SETTINGS = {
    "service_mean": ("service_mean_ms", "milliseconds: 0.005 s is 5"),
    "slow_delay": ("slow_delay_ms", "milliseconds: 0.1 s is 100"),
    "flush_period": ("flush_period_s", "seconds, as before"),
}
MAX_SIGMA = 10.0  # exp(10 * z) stays finite for any z a normal draw gives
MAX_CAPACITY = 1_000_000
MAX_QUEUE = 10_000_000


class BackendConfig(C.Model):
    """Settings of one backend (see docs/backend.md for each field): the one description of
    the settings file and the flags, checked by pydantic (strict types, closed, ranges)."""
    name: C.Name = "backend"
    host: HostText = "0.0.0.0"
    port: C.PortOrAny = 8080
    record: Optional[FilePath] = None
    response_size: Annotated[int, Field(ge=0, le=MAX_RESPONSE_BYTES)] = 100
    service_dist: Annotated[str, C.one_of(SERVICE_DISTS)] = "fixed"
    service_mean_ms: Annotated[float, Field(ge=0, le=MAX_SERVICE_MS, allow_inf_nan=False)] = 0.0
    service_sigma: Annotated[float, Field(gt=0, le=MAX_SIGMA, allow_inf_nan=False)] = 0.5
    capacity: Optional[Annotated[int, Field(ge=1, le=MAX_CAPACITY)]] = None
    overflow: Annotated[str, C.one_of(OVERFLOW_POLICIES)] = "queue"
    queue_limit: Optional[Annotated[int, Field(ge=0, le=MAX_QUEUE)]] = None
    error_rate: C.Fraction = 0.0
    seed: Seed64 = 1
    fault: Annotated[str, C.one_of(tuple(FAULT_MODES))] = "none"
    slow_delay_ms: Annotated[float, Field(ge=0, le=MAX_SERVICE_MS, allow_inf_nan=False)] = 100.0
    cache_control: Optional[C.HeaderValue] = None
    flush_period_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 0.25

    @field_validator("queue_limit")
    @classmethod
    def _queue_limit_needs_a_queue(cls, value, info):
        if value is not None and info.data.get("capacity", 0) is None:
            raise PydanticCustomError("no_queue", "applies only with a capacity (without one "
                                                  "nothing ever waits)")
        if value is not None and info.data.get("overflow") == "reject":
            raise PydanticCustomError("no_queue", "applies to overflow: queue only (reject "
                                                  "answers 503 at once)")
        return value


def config_from_dict(data, source="backend settings", lines=None):
    """Build and validate a ``BackendConfig`` from a plain dict (a parsed config file or flags).

    Args:
        data (dict): setting name -> value; missing settings take the defaults.
        source (str): where it came from, for errors.
        lines (dict[tuple, int]|None): key path -> line (``lblab_core.loader``).
    Returns:
        BackendConfig: the validated settings.
    Raises:
        lblab_core.errors.InputError: every unknown key, wrong type or value out of range.
    """
    return C.validate_input(BackendConfig, data, source, lines)


def make_service_sampler(dist, mean, sigma, rng):
    """Return a function that draws one service time (seconds) per call.

    Args:
        dist (str): ``fixed`` (always ``mean``), ``exponential`` (mean ``mean``) or
            ``lognormal`` (mean ``mean``, ``sigma`` the standard deviation of the log).
        mean (float): mean service time in seconds.
        sigma (float): shape of the lognormal.
        rng (random.Random): the seeded source; the sampler draws only from it.
    Returns:
        callable: ``sample() -> float``.
    Raises:
        ValueError: unknown distribution.
    """
    if dist == "fixed" or mean == 0:
        return lambda: mean
    if dist == "exponential":
        rate = 1.0 / mean
        return lambda: rng.expovariate(rate)
    if dist == "lognormal":
        # E[exp(N(mu, sigma))] = exp(mu + sigma^2 / 2); pick mu so the mean is `mean`.
        mu = math.log(mean) - sigma * sigma / 2.0
        return lambda: rng.lognormvariate(mu, sigma)
    raise ValueError(f"service_dist {dist!r} must be one of {SERVICE_DISTS}")


def make_error_decider(error_rate, rng):
    """Return ``fail() -> bool``: True for the requests to answer 500 (a seeded fraction)."""
    if error_rate <= 0:
        return lambda: False
    if error_rate >= 1:
        return lambda: True
    draw = rng.random
    return lambda: draw() < error_rate


def seeded_rngs(seed):
    """Return independent seeded sources ``(service_rng, error_rng)`` for one backend seed."""
    return random.Random(f"{seed}:service"), random.Random(f"{seed}:errors")


def admit(in_service, queued, capacity, overflow, queue_limit):
    """Decide what to do with a new request.

    Args:
        in_service (int): requests being served now.
        queued (int): requests waiting for a slot now.
        capacity (int|None): most requests served at once (None: unlimited).
        overflow (str): ``queue`` or ``reject`` when full.
        queue_limit (int|None): most requests waiting (None: unlimited); beyond it, reject.
    Returns:
        str: ``SERVE``, ``QUEUE`` or ``REJECT`` (answer 503).
    """
    if capacity is None or (in_service < capacity and queued == 0):
        return SERVE
    if overflow == "reject":
        return REJECT
    if queue_limit is not None and queued >= queue_limit:
        return REJECT
    return QUEUE


def size_for_path(path, default_size):
    """Return ``(status, size)`` for a request path: ``/size/<n>`` asks for n bytes.

    Args:
        path (str): the URL path, without the query.
        default_size (int): size for any other path.
    Returns:
        tuple: (200, n) or (400, 0) for a bad or too large ``n``.
    """
    if path.startswith("/size/"):
        text = path[6:]
        if not text.isdigit() or len(text) > 10:
            return 400, 0
        size = int(text)
        if size > MAX_RESPONSE_BYTES:
            return 400, 0
        return 200, size
    return 200, default_size


class FaultRequestError(ValueError):
    """A bad ``POST /admin/fault`` query (answered 400 with this message)."""


def parse_fault_query(query):
    """Parse the query of ``POST /admin/fault``.

    Args:
        query (str): e.g. ``mode=slow&delay_ms=200&duration_s=5``.
    Returns:
        tuple: (mode, delay or None, duration or None), both in seconds: the slow delay, and
        the time until mode ``none``.
    Raises:
        FaultRequestError: missing or unknown mode, bad numbers, the renamed ``delay`` and
            ``duration`` (named with their new names).
    """
    params = parse_qs(query or "", keep_blank_values=True)
    renamed = [f"{old} was renamed {new}" for old, new in (("delay", "delay_ms (milliseconds)"),
                                                           ("duration", "duration_s"))
               if old in params]
    if renamed:
        raise FaultRequestError(f"fault parameter {'; '.join(renamed)}")
    unknown = sorted(set(params) - {"mode", "delay_ms", "duration_s"})
    if unknown:
        raise FaultRequestError(f"unknown fault parameters {unknown}; expected mode, delay_ms, "
                                "duration_s")
    mode = params.get("mode", [None])[-1]
    if mode not in FAULT_MODES:
        raise FaultRequestError(f"fault mode {mode!r} must be one of {sorted(FAULT_MODES)}")
    numbers = []
    for key, scale, unit in (("delay_ms", 1000.0, "milliseconds"),
                             ("duration_s", 1.0, "seconds")):
        if key not in params:
            numbers.append(None)
            continue
        text = params[key][-1]
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise FaultRequestError(f"fault {key} {text!r} must be {unit} >= 0")
        numbers.append(value / scale)
    return mode, numbers[0], numbers[1]


def build_record(rid, backend, arrival, wait, service_time, status, nbytes, method, path,
                 client):
    """Return one backend request record (see ``lb_apps.records.BACKEND_FIELDS``)."""
    return {"v": FORMAT_VERSION, "id": rid, "backend": backend, "arrival": arrival,
            "wait": wait, "service_time": service_time, "status": status, "bytes": nbytes,
            "method": method, "path": path, "client": client}


_LINE = ('{"arrival":%r,"backend":%s,"bytes":%d,"client":%s,"id":%s,"method":%s,"path":%s,'
         '"service_time":%r,"status":%d,"v":' + str(FORMAT_VERSION) + ',"wait":%r}\n')


def make_line_encoder(backend):
    """Return ``encode(item) -> str``: one JSONL line from the tuple the backend buffers.

    The tuple is ``(request_id bytes|None, seq, arrival, wait, service_time, status, bytes,
    method bytes, path bytes, client)``; a missing request id becomes ``<backend>-<seq>``.
    The line equals ``encode_record(build_record(...))`` parsed back, at a quarter of the cost
    of ``json.dumps`` (measured ~2.6 us vs ~9.8 us), which matters at tens of thousands of req/s.

    Args:
        backend (str): the backend name.
    Returns:
        callable: the encoder.
    """
    name = encode_basestring_ascii(backend)
    prefix = backend + "-"

    def encode(item):
        rid, seq, arrival, wait, service, status, nbytes, method, path, client = item
        rid = rid.decode("latin-1") if rid is not None else prefix + str(seq)
        return _LINE % (arrival, name, nbytes,
                        "null" if client is None else encode_basestring_ascii(client),
                        encode_basestring_ascii(rid),
                        encode_basestring_ascii(method.decode("latin-1")),
                        encode_basestring_ascii(path.decode("latin-1")), service, status, wait)
    return encode
