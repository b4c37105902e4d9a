"""Statistics of one experiment run and across repetitions (pure: no I/O, no plotting).

Inputs are the raw records the lab writes (``lb_apps.records`` JSONL from load generators,
iperf3 ``--json`` output) already decoded into Python objects; ``experiments.report`` reads the
files.

Definitions (all per configuration and repetition, over the measurement window):

* A request *counts* when its ``scheduled`` time lies in the window ``[t0, t1)`` and it is not a
  warm-up record. ``sent`` = counted requests; ``ok`` = no transport error and status 200-399;
  every other counted request is an error of one kind: the record's ``error`` (``timeout``,
  ``refused``, ``reset``…) or ``http_<status>`` for a status >= 400, or ``no_response``.
* ``throughput_rps`` = requests that got an HTTP response (any status) / window length;
  ``goodput_rps`` = ok requests / window length; ``throughput_mbps`` and ``goodput_mbps`` the same
  with response bytes (``bytes``, the body and headers the client read) in Mbit/s (10^6 bit/s).
* Latency = ``end - scheduled`` of ok requests (open loop: from the planned send time, so queueing
  behind a slow server is not hidden — no coordinated omission). Percentiles use the
  **nearest-rank** method: the p-th percentile of n sorted values is the value of rank
  ``ceil(p/100 * n)`` (1-based; p = 0 gives the minimum). It is always an observed latency.
* Backend share = ok requests answered by that backend / ok requests with a known backend
  (likewise for bytes). Jain's fairness index J(x) = (sum x)^2 / (n * sum x^2) is computed over
  backends with x_i = requests_i / weight_i (so a perfectly weighted split gives 1) and over
  clients with x_i = their goodput. ``imbalance`` = max(x)/mean(x); ``cov`` = population standard
  deviation / mean of the same x.
* Across repetitions: the run (repetition) is the unit of replication, so every interval is
  over the n per-run values of a metric, never over requests. See ``interval95`` and
  ``HOW_COMPUTED``.
"""
import math
import statistics

from scipy import stats

FORMAT_VERSION = 1
PERCENTILES = (50, 90, 99, 99.9)

def percentile(sorted_values, p):
    """Return the nearest-rank p-th percentile of already sorted values.

    Args:
        sorted_values (list[float]): ascending values.
        p (float): percentile in 0..100.
    Returns:
        float|None: the value of rank ceil(p/100*n), or None for no values.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in 0..100, got {p}")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(round(p / 100.0 * n, 9)))
    return sorted_values[rank - 1]


def jain(values):
    """Return Jain's fairness index (sum x)^2 / (n sum x^2), 1/n..1; None if empty or all 0."""
    values = list(values)
    square_sum = sum(x * x for x in values)
    if not values or square_sum == 0:
        return None
    return sum(values) ** 2 / (len(values) * square_sum)


def imbalance(values):
    """Return max/mean of the values (1 = perfectly even); None if empty or mean 0."""
    values = list(values)
    if not values or sum(values) == 0:
        return None
    return max(values) / (sum(values) / len(values))


def cov(values):
    """Return the coefficient of variation pstdev/mean; None if empty or mean 0."""
    values = list(values)
    if not values or sum(values) == 0:
        return None
    return statistics.pstdev(values) / statistics.fmean(values)


CONFIDENCE = 0.95
MIN_RUNS_FOR_INTERVAL = 3
UNIT_METRICS = frozenset({"jain_backends", "jain_clients", "jain_flows", "min_max_flows",
                          "error_rate", "backend_share"})
"""Metrics that live in [0, 1]; every other scalar metric is a rate, count, time or ratio >= 0."""

METHOD_LOGIT = "logit-t"
METHOD_LOG = "log-t"
METHOD_CLIPPED = "t-clipped"
METHOD_NONE = "none"

INTERVAL_METHODS = (
    (METHOD_LOGIT, "backend shares, Jain's indices, min/max of flows, error rate", "[0, 1]",
     "Student-t interval of the mean of logit(x) = ln(x / (1 - x)), transformed back"),
    (METHOD_LOG, "rates, counts, latencies, times, imbalance, cov", "≥ 0",
     "Student-t interval of the mean of ln(x), transformed back (an interval for the geometric "
     "mean)"),
    (METHOD_CLIPPED, "either kind, when a run's value lies exactly on a bound (0, or 1)",
     "the metric's", "the plain t interval mean ± t·s/√n, clipped to the metric's range"),
    (METHOD_NONE, f"any metric with fewer than {MIN_RUNS_FOR_INTERVAL} runs", "",
     "no interval: the mean, and each run's value as a point in the figures"),
)
"""``(method, metrics, range, how)`` of every interval method ``interval95`` can give; the
report's "How the numbers are computed" renders it (``HOW_COMPUTED`` holds the constants the
prose there quotes)."""

HOW_COMPUTED = {"confidence": CONFIDENCE, "min_runs": MIN_RUNS_FOR_INTERVAL,
                "percentiles": PERCENTILES, "methods": INTERVAL_METHODS}


def _t_quantile(n):
    """Return t(1 - (1 - CONFIDENCE)/2, n - 1) from scipy."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2.0, n - 1))


def _t_bounds(values):
    """Return (low, high) of the plain t interval of the mean of values (n >= 2)."""
    n = len(values)
    mean = statistics.fmean(values)
    half = _t_quantile(n) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


def _logit(x):
    return math.log(x / (1.0 - x))


def _expit(y):
    if y >= 0:
        return 1.0 / (1.0 + math.exp(-y))
    e = math.exp(y)
    return e / (1.0 + e)


def _exp(y):
    return math.exp(min(y, 700.0))   # exp(710) overflows a float


def interval95(values, unit=False):
    """Return the mean and the bounded 95% interval of one metric over runs.

    Args:
        values (list[float|None]): one value per run (the unit of replication); None values
            are ignored.
        unit (bool): the metric lives in [0, 1] (logit scale); otherwise it is >= 0 (log scale).
    Returns:
        dict: ``mean`` (arithmetic), ``low``, ``high`` (None with fewer than
        ``MIN_RUNS_FOR_INTERVAL`` values), ``ci95`` (half the width ``(high - low) / 2``, or
        None), ``n`` and ``method`` (``logit-t``, ``log-t``, ``t-clipped`` or ``none``).
    """
    values = [float(v) for v in values if v is not None]
    n = len(values)
    out = {"mean": statistics.fmean(values) if values else None, "low": None, "high": None,
           "ci95": None, "n": n, "method": METHOD_NONE}
    if n < MIN_RUNS_FOR_INTERVAL:
        return out
    lo_bound, hi_bound = (0.0, 1.0) if unit else (0.0, math.inf)
    if unit and all(0.0 < v < 1.0 for v in values):
        low, high = _t_bounds([_logit(v) for v in values])
        low, high, method = _expit(low), _expit(high), METHOD_LOGIT
    elif not unit and all(v > 0.0 for v in values):
        low, high = _t_bounds([math.log(v) for v in values])
        low, high, method = _exp(low), _exp(high), METHOD_LOG
    else:
        low, high = _t_bounds(values)
        method = METHOD_CLIPPED
    low = min(max(low, lo_bound), hi_bound)
    high = min(max(high, lo_bound), hi_bound)
    out.update(low=low, high=high, ci95=(high - low) / 2.0, method=method)
    return out


def error_kind(record):
    """Return the error kind of a load generator record, or None when it is ok."""
    error = record.get("error")
    status = record.get("status")
    if error:
        return str(error)
    if not status:
        return "no_response"
    if status >= 400:
        return f"http_{status}"
    return None


def in_window(records, window):
    """Return the records scheduled in ``[t0, t1)`` and not marked as warm-up.

    Args:
        records (iterable[dict]): load generator records.
        window (tuple|dict|None): measurement window ``(t0, t1)`` (epoch s), or a dict
            ``{client: (t0, t1)}`` of per-client windows (clients start a little apart);
            None keeps all.
    """
    out = []
    per_client = isinstance(window, dict)
    for r in records:
        if r.get("warmup"):
            continue
        w = window.get(r["client"]) if per_client else window
        if per_client and w is None:
            continue
        if w is not None and not w[0] <= r["scheduled"] < w[1]:
            continue
        out.append(r)
    return out


def _window_length(records, window):
    if isinstance(window, dict):
        if not window:
            return 0.0
        return statistics.fmean(w[1] - w[0] for w in window.values())
    if window is not None:
        return window[1] - window[0]
    if not records:
        return 0.0
    return max(r["end"] or r["scheduled"] for r in records) - min(r["scheduled"] for r in records)


def http_run_metrics(records, window, backends, clients=None):
    """Compute the metrics of one run of an HTTP workload.

    Args:
        records (iterable[dict]): load generator records of all clients of the run.
        window (tuple|dict|None): measurement window ``[t0, t1)`` in epoch seconds, or
            per-client windows (see ``in_window``); rates divide by the (mean) window length.
        backends (list[dict]): ``{"name", "weight"}`` of each configured backend, in order.
        clients (list[str]|None): client names (clients that sent nothing count as 0).
    Returns:
        dict: flat metrics (see the module docstring); per-backend values under
        ``backend_requests``, ``backend_share``, ``backend_bytes_share``.
    """
    counted = in_window(records, window)
    length = _window_length(counted, window)
    ok = [r for r in counted if error_kind(r) is None]
    answered = [r for r in counted if r.get("status")
                and not r.get("error")]
    errors = {}
    for r in counted:
        kind = error_kind(r)
        if kind is not None:
            errors[kind] = errors.get(kind, 0) + 1
    latencies = sorted(r["end"] - r["scheduled"] for r in ok)
    out = {
        "sent": len(counted),
        "ok": len(ok),
        "errors": sum(errors.values()),
        "error_rate": (sum(errors.values()) / len(counted)) if counted else None,
        "errors_by_kind": dict(sorted(errors.items())),
        "duration_s": length,
    }
    per_s = (1.0 / length) if length > 0 else 0.0
    out["throughput_rps"] = len(answered) * per_s
    out["goodput_rps"] = len(ok) * per_s
    out["throughput_mbps"] = sum(r.get("bytes") or 0 for r in answered) * 8e-6 * per_s
    out["goodput_mbps"] = sum(r.get("bytes") or 0 for r in ok) * 8e-6 * per_s
    for p in PERCENTILES:
        value = percentile(latencies, p)
        out[f"latency_p{_pname(p)}_ms"] = None if value is None else value * 1000.0
    out["latency_max_ms"] = latencies[-1] * 1000.0 if latencies else None
    out["latency_mean_ms"] = statistics.fmean(latencies) * 1000.0 if latencies else None

    names = [b["name"] for b in backends]
    counts = {n: 0 for n in names}
    nbytes = {n: 0 for n in names}
    unknown = 0
    for r in ok:
        name = r.get("backend")
        if name in counts:
            counts[name] += 1
            nbytes[name] += r.get("bytes") or 0
        else:
            unknown += 1
    attributed = sum(counts.values())
    total_bytes = sum(nbytes.values())
    out["backend_requests"] = counts
    out["backend_share"] = {n: (counts[n] / attributed if attributed else None) for n in names}
    out["backend_bytes_share"] = {n: (nbytes[n] / total_bytes if total_bytes else None)
                                  for n in names}
    out["unattributed"] = unknown
    normalised = [counts[b["name"]] / b.get("weight", 1) for b in backends]
    out["jain_backends"] = jain(normalised)
    out["imbalance_backends"] = imbalance(normalised)
    out["cov_backends"] = cov(normalised)

    per_client = {c: 0 for c in clients or ()}
    for r in ok:
        per_client[r["client"]] = per_client.get(r["client"], 0) + 1
    out["client_requests"] = dict(sorted(per_client.items()))
    out["jain_clients"] = jain(per_client.values())
    return out


def _pname(p):
    """50 -> '50', 99.9 -> '99_9' (a name usable as a CSV column)."""
    return f"{p:g}".replace(".", "_")


def iperf3_stream_rates_bps(result):
    """Return the received rate (bit/s) of each stream of one iperf3 ``--json`` result.

    TCP: ``end.streams[i].receiver.bits_per_second`` (falling back to
    ``end.sum_received.bits_per_second`` for a result without streams); UDP:
    ``bits_per_second`` scaled by the delivered fraction (1 - lost_percent/100), so it is what
    arrived.

    Raises:
        ValueError: the result holds an iperf3 error or no end summary.
    """
    if result.get("error"):
        raise ValueError(f"iperf3 failed: {result['error']}")
    end = result.get("end") or {}
    streams = end.get("streams") or []
    rates = []
    for stream in streams:
        if "receiver" in stream:
            rates.append(float(stream["receiver"]["bits_per_second"]))
        elif "udp" in stream:
            udp = stream["udp"]
            rates.append(float(udp["bits_per_second"]) * (1.0 - (udp.get("lost_percent")
                                                                 or 0.0) / 100.0))
    if rates:
        return rates
    if "sum_received" in end:
        return [float(end["sum_received"]["bits_per_second"])]
    if "sum" in end:
        s = end["sum"]
        lost = s.get("lost_percent") or 0.0
        return [float(s["bits_per_second"]) * (1.0 - lost / 100.0)]
    raise ValueError("iperf3 result has no end.streams / end.sum_received / end.sum")


def iperf3_run_metrics(flows, backends=None):
    """Compute the metrics of one run of an iperf3 workload.

    Each parallel stream of an iperf3 client is a flow (``<flow>/<k>`` when a client ran
    several streams).

    Args:
        flows (list[dict]): ``{"flow", "client", "backend", "result"}`` per iperf3 client, where
            ``result`` is the decoded ``--json`` output and ``backend`` the server that carried
            it (None if unknown).
        backends (list[dict]|None): ``{"name", "weight"}`` of each configured backend.
    Returns:
        dict: ``flows``, ``failed_flows``, ``total_mbps``, ``flow_mbps`` {flow: Mbit/s},
        ``jain_flows``, ``cov_flows``, ``min_max_flows`` and per-backend flow counts.
    """
    rates = {}
    failed = {}
    carried = {}
    for f in flows:
        try:
            streams = iperf3_stream_rates_bps(f["result"])
        except (ValueError, KeyError, TypeError) as exc:
            failed[f["flow"]] = str(exc)
            continue
        for k, bps in enumerate(streams):
            name = f["flow"] if len(streams) == 1 else f"{f['flow']}/{k + 1}"
            rates[name] = bps / 1e6
            carried[name] = f.get("backend")
    values = [rates[k] for k in sorted(rates)]
    out = {
        "flows": len(rates) + len(failed),
        "failed_flows": len(failed),
        "flow_errors": dict(sorted(failed.items())),
        "total_mbps": sum(values),
        "flow_mbps": dict(sorted(rates.items())),
        "jain_flows": jain(values),
        "cov_flows": cov(values),
        "min_max_flows": (min(values) / max(values)) if values and max(values) > 0 else None,
    }
    if backends:
        counts = {b["name"]: 0 for b in backends}
        for backend in carried.values():
            if backend in counts:
                counts[backend] += 1
        total = sum(counts.values())
        out["backend_flows"] = counts
        out["backend_share"] = {n: (c / total if total else None) for n, c in counts.items()}
        normalised = [counts[b["name"]] / b.get("weight", 1) for b in backends]
        out["jain_backends"] = jain(normalised)
        out["imbalance_backends"] = imbalance(normalised)
    return out


def timeseries(records, window, names, bin_s=1.0):
    """Return ok responses per second per backend over the window, binned by completion time.

    Args:
        records (iterable[dict]): load generator records.
        window (tuple[float, float]): the measurement window.
        names (list[str]): backend names (others go under ``"?"``).
        bin_s (float): bin width in seconds.
    Returns:
        dict: ``{"t": [bin start, s from t0], "backends": {name: [req/s per bin]},
        "errors": [errors/s per bin]}``.
    """
    t0, t1 = window
    nbins = max(1, int(math.ceil((t1 - t0) / bin_s - 1e-9)))
    series = {n: [0] * nbins for n in names}
    errors = [0] * nbins
    for r in in_window(records, window):
        when = r["end"] if r.get("end") else r["scheduled"]
        i = min(nbins - 1, max(0, int((when - t0) // bin_s)))
        if error_kind(r) is None:
            series.setdefault(r.get("backend") if r.get("backend") in series else "?",
                              [0] * nbins)[i] += 1
        else:
            errors[i] += 1
    scale = 1.0 / bin_s
    return {"t": [i * bin_s for i in range(nbins)], "bin_s": bin_s,
            "backends": {n: [c * scale for c in v] for n, v in series.items()},
            "errors": [c * scale for c in errors]}


def latency_cdf(records, window, points=200):
    """Return ``(latencies_ms, fractions)`` of ok requests, thinned to about ``points`` steps.

    ``window`` is as for ``in_window``.
    """
    lat = sorted((r["end"] - r["scheduled"]) * 1000.0 for r in in_window(records, window)
                 if error_kind(r) is None)
    n = len(lat)
    if n == 0:
        return [], []
    step = max(1, n // points)
    idx = list(range(step - 1, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [lat[i] for i in idx], [(i + 1) / n for i in idx]


def bin_width(length_s):
    """Bin width (s) of the series over time: 1 s from 20 s on, else about 20 bins (>= 0.1 s)."""
    return 1.0 if length_s >= 20 else max(0.1, round(length_s / 20, 1))


def ok_latency_points(records, window, t0):
    """Return ``(scheduled - t0 in s, latency in ms)`` of every counted ok request, sorted.

    ``window`` is as for ``in_window``; ``t0`` is the start of the run's (union) window, so the
    series of several repetitions line up on their own starts.
    """
    return sorted((r["scheduled"] - t0, (r["end"] - r["scheduled"]) * 1000.0)
                  for r in in_window(records, window) if error_kind(r) is None)


def latency_over_time(point_lists, length_s, bin_s, percentiles=(50, 99)):
    """Pool runs' ok latencies into bins of send time and give nearest-rank percentiles per bin.

    Args:
        point_lists (iterable[list]): per run, ``(t, latency_ms)`` from ``ok_latency_points``
            (t from that run's window start; every run's bins start at 0).
        length_s (float): the window length (bins cover ``[0, length_s)``; a request past the
            end goes into the last bin, one before 0 into the first).
        bin_s (float): bin width in seconds.
        percentiles (tuple[float]): which percentiles.
    Returns:
        dict: ``{"t": [bin start], "bin_s", "n": [requests per bin], "p<p>": [ms or None]}``
        (``p50``, ``p99``, ``p99_9`` …).
    """
    nbins = max(1, int(math.ceil(length_s / bin_s - 1e-9)))
    bins = [[] for _ in range(nbins)]
    for points in point_lists:
        for t, latency in points:
            bins[min(nbins - 1, max(0, int(t // bin_s)))].append(latency)
    out = {"t": [i * bin_s for i in range(nbins)], "bin_s": bin_s,
           "n": [len(b) for b in bins]}
    for b in bins:
        b.sort()
    for p in percentiles:
        out[f"p{_pname(p)}"] = [percentile(b, p) for b in bins]
    return out


def latency_ccdf(sorted_ms, points=300):
    """Return ``(latencies_ms, fractions)``: the share of values >= each latency (the empirical
    complementary CDF, from 1 down to 1/n), thinned to at most about ``2 * points`` steps,
    geometrically towards the tail so a log axis shows every decade down to the largest value.

    Args:
        sorted_ms (list[float]): ascending latencies (pooled runs: concatenate, then sort).
    """
    n = len(sorted_ms)
    if n == 0:
        return [], []
    tail = {max(1, min(n, round(n ** (k / max(1, points - 1))))) for k in range(points)}
    tail |= {max(1, n - (k * n) // points) for k in range(points)}
    idx = sorted(n - c for c in tail)
    return [sorted_ms[i] for i in idx], [(n - i) / n for i in idx]


def fault_impact(records, window, faults):
    """Measure what a backend kill did: failed requests, how long failures lasted, recovery.

    For the first applied ``kill_backend`` fault at ``t_k`` and the next ``restore_backend`` of
    the same backend at ``t_r`` (or the window's end):

    * ``fault_errors``: failed requests scheduled in ``[t_k, t_r)``;
    * ``error_period_s``: from ``t_k`` to the last of those failures (0 without failures) —
      how long the balancer kept sending to the dead backend;
    * ``recovery_s``: from ``t_r`` to the start of the first ok request the restored backend
      served (None without a restore, or if it never served again).

    Args:
        records (iterable[dict]): load generator records.
        window (tuple|dict|None): as for ``in_window``.
        faults (list[dict]): applied faults ``{"action", "target", "applied", "skipped"}``.
    Returns:
        dict: the three values, or {} when no backend was killed.
    """
    applied = [f for f in faults or () if not f.get("skipped") and f.get("applied")]
    kill = next((f for f in applied if f["action"] == "kill_backend"), None)
    if kill is None:
        return {}
    t_k = kill["applied"]
    restore = next((f for f in applied if f["action"] == "restore_backend"
                    and f["target"] == kill["target"] and f["applied"] >= t_k), None)
    counted = in_window(records, window)
    t_r = restore["applied"] if restore else max((r["scheduled"] for r in counted),
                                                 default=t_k)
    failed = [r["scheduled"] for r in counted
              if t_k <= r["scheduled"] < t_r and error_kind(r) is not None]
    recovery = None
    if restore is not None:
        back = [r["start"] for r in counted if r.get("backend") == kill["target"]
                and r["start"] >= t_r and error_kind(r) is None]
        recovery = (min(back) - t_r) if back else None
    return {"fault_errors": len(failed),
            "error_period_s": (max(failed) - t_k) if failed else 0.0,
            "recovery_s": recovery}


SCALAR_METRICS = (
    "sent", "ok", "errors", "throughput_rps", "goodput_rps", "throughput_mbps", "goodput_mbps",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p99_9_ms", "latency_max_ms",
    "latency_mean_ms", "jain_backends", "imbalance_backends", "cov_backends", "jain_clients",
    "flows", "failed_flows", "total_mbps", "jain_flows", "cov_flows", "min_max_flows",
    "fault_errors", "error_period_s", "recovery_s", "error_rate",
)


def aggregate(runs):
    """Aggregate the per-repetition metrics of one configuration (the run is the unit).

    Args:
        runs (list[dict]): metrics of each repetition (as from ``http_run_metrics``).
    Returns:
        dict: ``{metric: interval}`` for every scalar metric present, plus ``backend_share``
        {backend: interval}; each interval as from :func:`interval95` plus ``values`` (the
        per-run values, in run order, None where a run had none).
    """
    out = {}
    for key in SCALAR_METRICS:
        values = [r.get(key) for r in runs if key in r]
        if not values:
            continue
        out[key] = dict(interval95(values, unit=key in UNIT_METRICS), values=values)
    shares = {}
    for r in runs:
        for name, value in (r.get("backend_share") or {}).items():
            shares.setdefault(name, []).append(value)
    out["backend_share"] = {name: dict(interval95(values, unit=True), values=values)
                            for name, values in shares.items()}
    return out
