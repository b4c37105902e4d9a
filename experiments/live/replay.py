"""A finished results folder as the live view's source: frames by time, the window's numbers.

``lblab view RESULTS_DIR`` serves this (no root, any machine). Frames are made by the same
:class:`experiments.live.feed.FrameBuilder` as the live ones, from ``raw/<run>/telemetry.jsonl``
and the load generators' records; a run without telemetry (recorded before it existed) gets a
frame a second with the records' numbers only. ``summary`` computes the measurement window's
numbers with ``experiments.report.read_run`` and ``experiments.metrics.aggregate``, the
functions that write ``runs.csv`` and ``summary.csv``, so the replay and the tables agree.
"""
import glob
import json
import math
import os
import threading

from experiments import metrics as M
from experiments import report
from experiments.live import feed
from lblab_core.errors import UsageError


def read_telemetry(path):
    """Return the samples of a ``telemetry.jsonl`` and its ``end`` line (or None).

    A line that is not JSON (a run killed while writing) ends the read.
    """
    samples, end = [], None
    try:
        with open(path, encoding="utf-8") as fp:
            for line in fp:
                try:
                    rec = json.loads(line)
                except ValueError:
                    break
                if rec.get("kind") == "sample":
                    samples.append(rec)
                elif rec.get("kind") == "end":
                    end = rec
    except FileNotFoundError:
        pass
    return samples, end


def read_records(run_dir):
    """Return the load generator records of a raw run folder (``lb_apps.records``)."""
    from lb_apps.records import iter_records
    records = []
    for path in sorted(glob.glob(os.path.join(run_dir, "loadgen-*.jsonl"))):
        records.extend(iter_records(path, "loadgen"))
    return records


def synthetic_samples(records, meta):
    """Return one empty sample a second over a run without telemetry (records only)."""
    times = [r.get("end") or r["scheduled"] for r in records]
    t0 = min([r["scheduled"] for r in records] or [meta.get("start") or 0.0])
    t1 = max(times or [meta.get("end") or t0])
    n = int(math.ceil(t1 - t0)) + 1
    return [{"v": 1, "kind": "sample", "t": t0 + i + 1.0, "ports": {}, "flows": None,
             "packet_ins": None, "conntrack": None, "proxy": None} for i in range(n)]


def window_summary(meta, metrics):
    """Return the SUMMARY dict of one run from ``report.read_run``'s metrics."""
    return {"run": meta["run"], "config": meta["config"], "status": meta.get("status"),
            "requests": dict(metrics.get("backend_requests") or {}),
            "total": metrics.get("ok"),
            "latency_ms": {"p50": metrics.get("latency_p50_ms"),
                           "p99": metrics.get("latency_p99_ms")},
            "errors": dict(metrics.get("errors_by_kind") or {}),
            "throughput_rps": metrics.get("throughput_rps")}


def config_mean(metrics_list, backends):
    """Return the means over a configuration's ok runs, as ``summary.csv``'s ``_mean``s."""
    agg = M.aggregate(metrics_list)

    def mean(key):
        return (agg.get(key) or {}).get("mean")

    requests = {}
    for b in backends:
        values = [(m.get("backend_requests") or {}).get(b) for m in metrics_list]
        values = [v for v in values if v is not None]
        requests[b] = sum(values) / len(values) if values else None
    return {"n": len(metrics_list), "requests": requests,
            "share": {b: (agg["backend_share"].get(b) or {}).get("mean") for b in backends},
            "latency_ms": {"p50": mean("latency_p50_ms"), "p99": mean("latency_p99_ms")},
            "throughput_rps": mean("throughput_rps"), "ok": mean("ok")}


class Replay:
    """The source of ``lblab view``: a results folder, read lazily, one run at a time."""

    mode = "replay"

    def __init__(self, results_dir):
        self.dir = os.path.abspath(results_dir)
        if not os.path.isdir(os.path.join(self.dir, "raw")):
            raise UsageError(f"RESULTS_DIR {results_dir}: no raw/ folder here; expected a "
                             f"folder written by lblab run")
        try:
            self.manifest = report.load_json(os.path.join(self.dir, "manifest.json"))
        except report.ReportError as exc:
            raise UsageError(f"RESULTS_DIR {results_dir}: {exc}") from None
        try:
            self.metas = report.run_folders(self.dir)
        except report.ReportError as exc:
            raise UsageError(str(exc)) from None
        spec = self.manifest.get("spec") or {}
        self.warmup_s = spec.get("warmup_s") or 0.0
        self.duration_s = spec.get("duration_s") or 0.0
        topo = spec.get("topology") or {}
        from topologies import graphs
        self.graph = graphs.build(topo.get("name"), topo.get("params") or {})
        self._cache = {}
        self._lock = threading.Lock()
        self.selected = self.metas[0][1]["run"]

    # -- lookups ---------------------------------------------------------------------------
    def _find(self, name):
        name = name or self.selected
        for i, (folder, meta) in enumerate(self.metas):
            if meta["run"] == name:
                return i, folder, meta
        raise LookupError(f"run={name}: no such run; expected one of "
                          f"{', '.join(m['run'] for _, m in self.metas)}")

    def _info(self, i, meta):
        return feed.run_info(meta, i, len(self.metas), self.warmup_s, self.duration_s,
                             meta.get("status") or "failed")

    def runs(self):
        """Return every RUN of the folder, in run order."""
        return [self._info(i, m) for i, (_, m) in enumerate(self.metas)]

    def run(self, name=None):
        """Return the RUN called ``name`` (default: the first)."""
        i, _, meta = self._find(name)
        return self._info(i, meta)

    def topology(self, name=None):
        """Return the TOPOLOGY of a run."""
        _, _, meta = self._find(name)
        return feed.topology(self.graph, {b["name"]: b["host"] for b in meta["backends"]})

    def frames(self, name=None):
        """Return every FRAME of a run (computed once, then kept)."""
        i, folder, meta = self._find(name)
        with self._lock:
            if meta["run"] in self._cache:
                return self._cache[meta["run"]]
        samples, _ = read_telemetry(os.path.join(folder, "telemetry.jsonl"))
        records = read_records(folder) if meta.get("workload") == "http" else []
        if not samples:
            samples = synthetic_samples(records, meta)
        window = meta.get("window")
        builder = feed.FrameBuilder(self._info(i, meta), self.topology(meta["run"]),
                                    window[0] if window else None,
                                    [b["name"] for b in meta["backends"]])
        builder.add_records(records)
        frames = [builder.frame(s, meta.get("faults") or []) for s in samples]
        if frames:
            frames[-1]["run"]["phase"] = "done"
        with self._lock:
            self._cache[meta["run"]] = frames
        return frames

    def summary(self, name=None):
        """Return the SUMMARY of a run and its configuration's means (as the tables)."""
        _, folder, meta = self._find(name)
        if meta.get("workload") != "http":
            raise LookupError(f"run={meta['run']}: an {meta.get('workload')} run has no "
                              f"request counts; expected an HTTP run")
        _, metrics, _ = report.read_run(folder)
        out = window_summary(meta, metrics)
        ok = [report.read_run(f)[1] for f, m in self.metas
              if m["config"] == meta["config"] and m.get("status") == "ok"]
        out["config_mean"] = config_mean(ok, [b["name"] for b in meta["backends"]])
        return out
