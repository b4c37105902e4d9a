"""The live view's feed: frames from telemetry samples and load generator records (pure).

This docstring and docs/live.md ("Feed") are the contract between the server and the page.

Endpoints (GET/HEAD only; everything else 405; JSON unless said)::

    GET /                                   the page (static/index.html)
    GET /static/<path>                      the page's assets (offline, served by lblab)
    GET /api/run                            {"mode": "live"|"replay", "run": RUN, "runs": [RUN]}
    GET /api/topology[?run=NAME]            {"nodes": [NODE], "links": [LINK]}
    GET /api/state[?run=NAME]               the latest frame ({} before the first)
    GET /events                             SSE (live only): "event: frame" one FRAME a second,
                                            "event: run" a RUN when a run starts
    GET /api/frames?run=NAME&from=S&to=S    {"run": NAME, "frames": [FRAME]} with
                                            from <= elapsed_s <= to (both optional)
    GET /api/summary?run=NAME               the measurement window's numbers as runs.csv has
                                            them, and "config_mean" as summary.csv (replay)

RUN   {"run", "config", "rep", "index", "runs", "balancer": {name, layer, mode, engine,
       algorithm}, "warmup_s", "duration_s", "status": "running"|"ok"|"failed"}
NODE  {"id", "kind": "host"|"switch", "role": "client"|"lb"|"backend"|None, "ip", "backend"}
LINK  {"id", "src", "dst", "src_port", "dst_port", "bw_mbit"}   (a host's port is 0)
FRAME {"v": 1, "t", "elapsed_s",
       "run": {"run", "index", "runs", "rep", "phase": warmup|measure|drain|done,
               "time_left_s"},
       "links": [{"id", "fwd_bps", "rev_bps"}],        src->dst and dst->src, bit/s
       "backends": {name: {"rps", "requests"}}, "total_rps",
       "latency_ms": {"p50", "p99", "n", "window_s": 60},
       "errors": {kind: n},                            since the run's start
       "l4": {"flows": {switch: n}, "packet_in_rate", "packet_ins",
              "conntrack": {backend: n}} | None,
       "l7": {"engine": "builtin"|"haproxy"|"nginx"|None, "in_flight": {backend: n},
              "queued": {backend: n}|None, "health": {backend: state},
              "cache_hit_rate", "cache": {"hits", "misses"}|None, "clients",
              "request_rate", "connections": {"reading", "writing", "waiting"}|None}
             | None,
       "faults": [{"t", "elapsed_s", "action", "target", "value", "skipped", "failed"}]}

``elapsed_s`` counts from the start of the measurement (warm-up negative). Unknown numbers are
None. No I/O here: :class:`FrameBuilder` is fed records and samples by its shells
(``experiments.live.hub`` live, ``experiments.live.replay`` from a results folder).
"""
import bisect
import math

from experiments.metrics import error_kind

FRAME_VERSION = 1
LATENCY_WINDOW_S = 60.0


def _merge_sorted(kept, new):
    """Merge the unsorted list ``new`` into the sorted list ``kept``, in place."""
    new.sort()
    if not kept or new[0] >= kept[-1]:
        kept.extend(new)
        return
    i = bisect.bisect_right(kept, new[0])
    tail = kept[i:] + new
    tail.sort()
    kept[i:] = tail


def _nearest_rank(values, p):
    """The nearest-rank percentile of a numpy array (``experiments.metrics.percentile``'s
    rank, ceil(p/100*n)), or None when empty; partitions instead of sorting."""
    import numpy as np
    n = values.size
    if n == 0:
        return None
    k = max(1, math.ceil(round(p / 100.0 * n, 9))) - 1
    return float(np.partition(values, k)[k])


def topology(graph, backend_hosts=None):
    """Return the page's topology ``{"nodes", "links"}`` of a lblab graph.

    Args:
        graph (networkx.Graph): a ``topologies.graphs`` graph (``kind``/``role``/``ip`` on
            nodes, ``ports`` and ``bw`` on edges).
        backend_hosts (dict|None): ``{backend name: host}`` of the run.
    """
    by_host = {h: b for b, h in (backend_hosts or {}).items()}
    nodes = []
    for name, data in graph.nodes(data=True):
        kind = "switch" if data.get("kind") == "switch" else "host"
        nodes.append({"id": name, "kind": kind,
                      "role": data.get("role") if kind == "host" else None,
                      "ip": data.get("ip") if kind == "host" else None,
                      "backend": by_host.get(name)})
    links = []
    for i, (a, b, data) in enumerate(graph.edges(data=True)):
        ports = data.get("ports") or {}
        links.append({"id": i, "src": a, "dst": b, "src_port": ports.get(a),
                      "dst_port": ports.get(b), "bw_mbit": data.get("bw")})
    return {"nodes": nodes, "links": links}


def run_info(meta, index, runs, warmup_s, duration_s, status="running"):
    """Return the RUN dict of a run from its ``meta.json``-shaped dict."""
    return {"run": meta["run"], "config": meta["config"], "rep": meta["rep"], "index": index,
            "runs": runs, "balancer": dict(meta["balancer"]), "warmup_s": warmup_s,
            "duration_s": duration_s, "status": status}


def _switch_side(link, switches):
    """Return (switch, port, forward_is_tx) of the end of a link whose counters are read."""
    if link["src"] in switches:
        return link["src"], link["src_port"], True
    if link["dst"] in switches:
        return link["dst"], link["dst_port"], False
    return None, None, None


def link_rates(topo, prev, cur):
    """Return ``[{"id", "fwd_bps", "rev_bps"}]`` from two samples' port counters.

    Args:
        topo (dict): :func:`topology`'s answer.
        prev, cur (dict): telemetry samples with ``t`` and ``ports`` ``{switch: {port:
            [rx_bytes, tx_bytes]}}`` (ports as strings, as JSON keeps them).
    A switch's tx on the port is the link's direction away from that switch.
    """
    if prev is None or cur is None:
        return []
    dt = cur["t"] - prev["t"]
    if dt <= 0:
        return []
    switches = {n["id"] for n in topo["nodes"] if n["kind"] == "switch"}
    out = []
    for link in topo["links"]:
        sw, port, fwd_is_tx = _switch_side(link, switches)
        if sw is None:
            continue
        a = (prev.get("ports") or {}).get(sw, {}).get(str(port))
        b = (cur.get("ports") or {}).get(sw, {}).get(str(port))
        if a is None or b is None:
            continue
        rx = max(0, b[0] - a[0]) * 8.0 / dt
        tx = max(0, b[1] - a[1]) * 8.0 / dt
        fwd, rev = (tx, rx) if fwd_is_tx else (rx, tx)
        out.append({"id": link["id"], "fwd_bps": round(fwd, 1), "rev_bps": round(rev, 1)})
    return out


class FrameBuilder:
    """Builds the frames of one run from its records and samples, in time order.

    Feed it load generator records (:meth:`add_records`, any order, as they are read) and
    call :meth:`frame` with each telemetry sample in time order. Pure: no I/O, no clock.
    """

    def __init__(self, run, topo, measure_start, backends):
        """
        Args:
            run (dict): RUN (:func:`run_info`).
            topo (dict): :func:`topology`'s answer.
            measure_start (float|None): epoch s of the measurement's start (None: not yet
                known; ``elapsed_s`` is then from the first sample).
            backends (list[str]): the backends' names in spec order.
        """
        self.run = run
        self.topo = topo
        self.measure_start = measure_start
        self.backends = list(backends)
        self.layer = run["balancer"]["layer"]
        self._ends = {b: [] for b in self.backends}   # sorted end times of ok records
        self._pending = {b: [] for b in self.backends}
        self._lat = {}           # second -> [(end, latency s)] of ok records ending in it
        self._lat_arrays = {}    # second -> numpy array of its latencies (made once complete)
        self._bad = []           # (end, kind) sorted by end
        self._bad_pending = []
        self._prev = None
        self._first_t = None
        # where measure_start is not known yet (live, before the first measured record)
        self.start_estimate = None

    def add_records(self, records):
        """Add load generator records (dicts as ``lb_apps.records`` reads them)."""
        for r in records:
            end = r.get("end")
            if end is None:
                end = r.get("scheduled")
            if end is None:
                continue
            kind = error_kind(r)
            if kind is None:
                sec = int(end // 1)
                self._lat.setdefault(sec, []).append((end, end - r["scheduled"]))
                self._lat_arrays.pop(sec, None)
                if r.get("backend") in self._pending:
                    self._pending[r["backend"]].append(end)
            else:
                self._bad_pending.append((end, kind))

    def _merge(self):
        # Records come nearly in time order: sort the new ones and re-sort only the tail of the
        # kept list they reach into (cheap), never the whole run's list.
        for b, new in self._pending.items():
            if new:
                _merge_sorted(self._ends[b], new)
                self._pending[b] = []
        if self._bad_pending:
            _merge_sorted(self._bad, self._bad_pending)
            self._bad_pending = []

    def _latencies(self, t):
        """Return the latencies (s) of ok records ended in ``(t - 60 s, t]`` (numpy array)."""
        import numpy as np
        lo = t - LATENCY_WINDOW_S
        parts = []
        for sec in range(int(lo // 1), int(t // 1) + 1):
            items = self._lat.get(sec)
            if not items:
                continue
            if sec > lo and sec + 1 <= t:          # the whole second is inside the window
                arr = self._lat_arrays.get(sec)
                if arr is None:
                    arr = self._lat_arrays[sec] = np.fromiter((x[1] for x in items), float,
                                                              len(items))
                parts.append(arr)
            else:
                parts.append(np.fromiter((x[1] for x in items if lo < x[0] <= t), float))
        return np.concatenate(parts) if parts else np.empty(0)

    def _elapsed(self, t):
        if self.measure_start is not None:
            return t - self.measure_start
        if self.start_estimate is not None:
            return t - self.start_estimate
        return t - self._first_t

    def _phase(self, elapsed):
        duration = self.run.get("duration_s") or 0.0
        if elapsed < 0:
            return "warmup", duration - elapsed
        if elapsed <= duration:
            return "measure", duration - elapsed
        return "drain", 0.0

    def frame(self, sample, faults=()):
        """Return the FRAME at ``sample["t"]`` (records ended by then are counted).

        Args:
            sample (dict): a telemetry sample (``kind`` "sample"; see docs/data.md).
            faults (iterable[dict]): faults as ``meta.json``'s ``faults`` (with ``applied``).
        """
        t = sample["t"]
        self._merge()
        if self._first_t is None:
            self._first_t = t
        prev, self._prev = self._prev, sample
        dt = (t - prev["t"]) if prev is not None and t > prev["t"] else 1.0
        elapsed = self._elapsed(t)
        phase, left = self._phase(elapsed)
        counts, recent = {}, {}
        for b, ends in self._ends.items():
            counts[b] = bisect.bisect_right(ends, t)
            recent[b] = counts[b] - bisect.bisect_right(ends, t - dt)
        backends = {b: {"rps": round(recent[b] / dt, 3), "requests": counts[b]}
                    for b in self.backends}
        lats = self._latencies(t)
        for sec in [s for s in self._lat if s < (t - LATENCY_WINDOW_S) // 1]:
            del self._lat[sec]                 # frames go forward: never needed again
            self._lat_arrays.pop(sec, None)
        p50, p99 = _nearest_rank(lats, 50), _nearest_rank(lats, 99)
        errors = {}
        for end, kind in self._bad:
            if end > t:
                break
            errors[kind] = errors.get(kind, 0) + 1
        return {
            "v": FRAME_VERSION, "t": t, "elapsed_s": round(elapsed, 3),
            "run": {"run": self.run["run"], "index": self.run["index"],
                    "runs": self.run["runs"], "rep": self.run["rep"], "phase": phase,
                    "time_left_s": round(left, 1)},
            "links": link_rates(self.topo, prev, sample),
            "backends": backends,
            "total_rps": round(sum(recent.values()) / dt, 3),
            "latency_ms": {"p50": None if p50 is None else round(p50 * 1000.0, 3),
                           "p99": None if p99 is None else round(p99 * 1000.0, 3),
                           "n": int(lats.size), "window_s": LATENCY_WINDOW_S},
            "errors": dict(sorted(errors.items())),
            "l4": self._l4(sample, prev, dt) if self.layer != "l7" else None,
            "l7": self._l7(sample, prev, dt) if self.layer == "l7" else None,
            "faults": [self._fault(f) for f in faults
                       if f.get("applied") is not None and f["applied"] <= t],
        }

    def _fault(self, f):
        return {"t": f["applied"], "elapsed_s": round(self._elapsed(f["applied"]), 3),
                "action": f.get("action"), "target": f.get("target"),
                "value": f.get("value"), "skipped": f.get("skipped"),
                "failed": f.get("failed")}

    def _l4(self, sample, prev, dt):
        pins = sample.get("packet_ins")
        rate = None
        if pins is not None and prev is not None and prev.get("packet_ins") is not None:
            rate = round(max(0, pins - prev["packet_ins"]) / dt, 3)
        return {"flows": dict(sample.get("flows") or {}), "packet_in_rate": rate,
                "packet_ins": pins, "conntrack": dict(sample.get("conntrack") or {})}

    def _l7(self, sample, prev, dt):
        proxy = sample.get("proxy")
        if not proxy:
            return {"engine": None, "in_flight": {}, "queued": None, "health": {},
                    "cache_hit_rate": None, "cache": None, "clients": None,
                    "request_rate": None, "connections": None}
        cache = proxy.get("cache")
        rate = None
        if cache and (cache.get("hits") or 0) + (cache.get("misses") or 0) > 0:
            rate = round(cache["hits"] / (cache["hits"] + cache["misses"]), 4)
        engine = proxy.get("engine") or "builtin"      # telemetry before engines were read
        own = 1 if engine == "nginx" else 0            # nginx counts the sampler's request
        request_rate = None
        before = (prev or {}).get("proxy") or {}
        if proxy.get("requests") is not None and before.get("requests") is not None:
            request_rate = round(max(0, proxy["requests"] - before["requests"] - own) / dt, 3)
        page = proxy.get("nginx")
        return {"engine": engine, "in_flight": dict(proxy.get("in_flight") or {}),
                "queued": proxy.get("queued"), "health": dict(proxy.get("health") or {}),
                "cache_hit_rate": rate, "cache": cache, "clients": proxy.get("clients"),
                "request_rate": request_rate,
                "connections": None if not page else {
                    "reading": page["reading"], "writing": max(0, page["writing"] - own),
                    "waiting": page["waiting"]}}
