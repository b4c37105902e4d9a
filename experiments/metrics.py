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
* Across repetitions: the mean and the half-width of the 95% confidence interval of the mean,
  t(0.975, n-1) * s / sqrt(n) with the sample standard deviation s (Student's t table below).
"""
import math
import statistics

FORMAT_VERSION = 1
PERCENTILES = (50, 90, 99, 99.9)

# Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30, then selected larger df.
# (scipy is not a dependency; values from standard tables, 3 decimals.)
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
    26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}
_Z975 = 1.960


def t_quantile_975(df):
    """Return t(0.975, df), the two-sided 95% Student t quantile.

    Between tabulated degrees of freedom the next smaller tabulated df is used (a slightly
    wider, conservative interval); above 120 the normal quantile 1.960.

    Args:
        df (int): degrees of freedom (>= 1).
    Returns:
        float: the quantile.
    Raises:
        ValueError: df < 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df > 120:
        return _Z975
    return _T975[max(k for k in _T975 if k <= df)]


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


def mean_ci95(values):
    """Return ``(mean, half_width)`` of a 95% Student t interval; half_width None if n < 2.

    Args:
        values (list[float|None]): one value per repetition; None values are ignored.
    Returns:
        tuple[float|None, float|None]: mean and half-width (None when undefined).
    """
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    s = statistics.stdev(values)
    return mean, t_quantile_975(len(values) - 1) * s / math.sqrt(len(values))


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
    "fault_errors", "error_period_s", "recovery_s",
)


def aggregate(runs):
    """Aggregate the per-repetition metrics of one configuration.

    Args:
        runs (list[dict]): metrics of each repetition (as from ``http_run_metrics``).
    Returns:
        dict: ``{metric: {"mean", "ci95", "n"}}`` for every scalar metric present, plus
        ``backend_share`` {backend: {"mean", "ci95", "n"}}.
    """
    out = {}
    for key in SCALAR_METRICS:
        values = [r.get(key) for r in runs if key in r]
        if not values:
            continue
        mean, half = mean_ci95(values)
        out[key] = {"mean": mean, "ci95": half, "n": sum(v is not None for v in values)}
    shares = {}
    for r in runs:
        for name, value in (r.get("backend_share") or {}).items():
            shares.setdefault(name, []).append(value)
    out["backend_share"] = {}
    for name, values in shares.items():
        mean, half = mean_ci95(values)
        out["backend_share"][name] = {"mean": mean, "ci95": half,
                                      "n": sum(v is not None for v in values)}
    return out
