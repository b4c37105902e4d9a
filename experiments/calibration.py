"""Calibration of the model's per-request path overheads, measured by ``lblab run``.

At the start of a batch with an HTTP workload, ``lblab run`` measures each distinct data path
of the spec's balancers (``path_key``: layer and mode for L4, engine and TLS for L7) and the
direct path (client -> backend, no balancer) at low load: one short lab per path, an open
Poisson loop of ``CAL_RATE`` req/s for ``CAL_DURATION_S`` s after ``CAL_WARMUP_S`` s, against
the spec's own backends with their service time set to 0 (``fixed``, 0 ms) and no errors, so a
request's whole latency is what the model does not simulate: the network, the balancer, the
backend's and the load generator's own processing. The per-request figures (mean, standard
deviation, p50, p95, p99, n) go into ``manifest.json`` ``calibration``; the model
(``experiments.model.twin``) adds each balancer's path mean as its per-request overhead.
``lblab run --no-calibration`` skips it: the model then says its overheads are zero.

Pure part: ``path_key``, ``calibration_data``, ``overhead_stats``, ``overheads_ms``. The shell
(``calibrate``) builds the labs with ``experiments.run_lab.Run``.
"""
import copy
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

from lb_apps.loadgen.workload import percentile

CAL_RATE = 50.0           # requests/s over all clients: low load, queues stay empty
CAL_WARMUP_S = 1.0
CAL_DURATION_S = 4.0      # ~200 measured requests per path
CAL_USERS = 64            # open-loop pool: never binds at 50 req/s with ms latencies
SETUP_SEC = 6.0           # building and tearing down a lab here (runner.SETUP_SEC_PER_RUN)
DIRECT = "direct"
MANIFEST_KEY = "calibration"


def path_key(balancer):
    """The data path a balancer's requests take: balancers with one key share a calibration.

    ``l4/<mode>`` for the controller's modes, ``l7/<engine>`` (``+tls`` when the proxy
    terminates TLS) for the proxies; the algorithm does not change the path's per-request cost.
    """
    if balancer.layer == "l4":
        return f"l4/{balancer.mode}"
    tls = bool((balancer.l7 or {}).get("tls")) if isinstance(balancer.l7, dict) else False
    return f"l7/{balancer.engine}" + ("+tls" if tls else "")


def plan_paths(spec):
    """Return ``[(path key, first balancer on it)]`` in spec order and ``{balancer: key}``."""
    paths, of = {}, {}
    for b in spec.balancers:
        key = path_key(b)
        paths.setdefault(key, b)
        of[b.name] = key
    return list(paths.items()), of


def calibration_data(spec, balancer):
    """The spec data of one calibration lab: the spec's topology, backends (service 0 ms, no
    errors) and ``balancer``; an open Poisson loop at ``CAL_RATE``; no sweep, no faults."""
    data = {k: v for k, v in copy.deepcopy(dict(spec.data)).items()
            if k not in ("source", "sweep", "faults")}
    data["name"] = f"{spec.name}_calibration"[:48]
    data["repetitions"] = 1
    data["warmup_s"] = CAL_WARMUP_S
    data["duration_s"] = CAL_DURATION_S
    if not isinstance(data.get("backends"), list):     # absent, or a count (backends: 2)
        data["backends"] = [{k: v for k, v in b.items() if v is not None}
                            for b in spec.to_dict()["backends"]]
    for b in data["backends"]:
        b["service"] = {"dist": "fixed", "mean_ms": 0.0}
        b["error_rate"] = 0.0
    w = data.get("workload") or {}
    data["workload"] = {"type": "http", "mode": "open", "rate": CAL_RATE,
                        "arrival": "poisson", "users": CAL_USERS,
                        **{k: w[k] for k in ("keepalive", "timeout_s", "session",
                                             "source_ports", "mix") if k in w}}
    data["balancers"] = [b for b in data["balancers"] if b["name"] == balancer.name]
    return data


def overhead_stats(records):
    """Per-request latency (ms) of measured ok requests: ``n``, ``mean_ms``, ``sd_ms``
    (sample), ``p50_ms``, ``p95_ms``, ``p99_ms`` (nearest rank); None values without
    requests."""
    lat = sorted((r["end"] - r["scheduled"]) * 1000.0 for r in records
                 if not r.get("warmup") and r.get("error") is None and r.get("status")
                 and r.get("end") is not None)
    if not lat:
        return {"n": 0, "mean_ms": None, "sd_ms": None, "p50_ms": None, "p95_ms": None,
                "p99_ms": None}
    return {"n": len(lat), "mean_ms": round(statistics.fmean(lat), 4),
            "sd_ms": round(statistics.stdev(lat), 4) if len(lat) > 1 else 0.0,
            **{f"p{p}_ms": round(percentile(lat, p), 4) for p in (50, 95, 99)}}


def overheads_ms(calibration, balancers):
    """``{balancer: overhead ms}`` for the model from a manifest's ``calibration`` (None or
    skipped: ``{}``, every overhead zero). A path whose measurement failed counts zero."""
    if not isinstance(calibration, dict) or calibration.get("skipped"):
        return {}
    paths = calibration.get("paths") or {}
    of = calibration.get("balancers") or {}
    out = {}
    for name in balancers:
        mean = (paths.get(of.get(name)) or {}).get("mean_ms")
        if isinstance(mean, (int, float)) and math.isfinite(mean) and mean > 0:
            out[name] = float(mean)
    return out


def estimate_s(spec):
    """Seconds the calibration of a spec takes: one lab per path."""
    paths, _ = plan_paths(spec)
    return len(paths) * (CAL_WARMUP_S + CAL_DURATION_S + SETUP_SEC) + CAL_WARMUP_S \
        + CAL_DURATION_S


def skipped(reason):
    """The manifest's ``calibration`` of a batch that did not calibrate."""
    return {"skipped": True, "reason": reason, "paths": {}, "balancers": {}}


# -- the shell: labs -------------------------------------------------------------------------

def _records(folder, pattern):
    from lb_apps.records import iter_records
    out = []
    for file in sorted(glob.glob(os.path.join(folder, pattern))):
        out.extend(iter_records(file, "loadgen"))
    return out


def _direct_load(run, meta):
    """In a calibration lab: the load generators against the first backend directly."""
    from experiments import run_plan as plan

    backend = run.spec.backends[0].name
    ip = run.graph.nodes[run.roles.backends[backend]]["ip"]
    url = f"http://{ip}:{plan.BACKEND_PORT}/"
    configs = plan.loadgen_configs(run.spec, run.roles, url, run.seed * 1000 + 500,
                                   lambda c: run.path(f"direct-{c}.jsonl"))
    procs = {}
    for client, cfg in configs.items():
        path = run.path(f"direct-{client}.json")
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(cfg, fp)
        out = run._logfile(f"direct-{client}.log")
        procs[client] = run.lab.popen(client, [sys.executable, "-m", "lb_apps.loadgen.client",
                                               "--config", path, "--json"],
                                      stdout=out, stderr=subprocess.STDOUT)
        out.close()
    limit = time.time() + CAL_WARMUP_S + CAL_DURATION_S + 30.0
    for client, proc in procs.items():
        try:
            proc.wait(max(0.1, limit - time.time()))
        except subprocess.TimeoutExpired:
            run.lab.stop_process(proc)
            raise RuntimeError(f"the direct-path load generator on {client} did not finish")


def calibrate(spec, results_dir, log):
    """Measure every path of the spec's balancers and the direct path; return the manifest's
    ``calibration`` dict. Labs go to ``results_dir/calibration/<path>/`` (kept, not read by
    the report). A failed path is recorded with its failure (the model counts it zero)."""
    from experiments import spec as spec_mod
    from experiments.run_lab import Run

    paths, of = plan_paths(spec)
    out = {"skipped": False, "rate": CAL_RATE, "duration_s": CAL_DURATION_S,
           "warmup_s": CAL_WARMUP_S, "service_ms": 0.0, "paths": {}, "balancers": of}
    started = time.time()
    for i, (key, balancer) in enumerate(paths):
        try:
            cal = spec_mod.parse_spec(calibration_data(spec, balancer),
                                      f"{spec.source} (calibration)")
        except spec_mod.SpecError as exc:
            out["paths"][key] = dict(overhead_stats([]), balancer=balancer.name,
                                     status="failed", failure=exc.errors[0])
            continue
        folder = os.path.join(results_dir, "calibration", key.replace("/", "-"))
        direct = i == 0

        log(f"calibration {i + 1}/{len(paths)}: {key} at {CAL_RATE:g} req/s for "
            f"{CAL_DURATION_S:g} s")
        try:
            run = Run(cal, cal.balancers[0], f"calibration-{key}", 1, 0, None, folder,
                      spec.seed * 1000, log=log, on_ready=None)
            run.on_ready = lambda meta, run=run: (run._run_load(meta),
                                                  _direct_load(run, meta) if direct else None)
            meta = run.execute()
        except Exception as exc:  # noqa: BLE001 - a failed calibration never stops the batch
            meta = {"status": "failed", "failure": f"{type(exc).__name__}: {exc}"}
        stats = overhead_stats(_records(folder, "loadgen-*.jsonl"))
        out["paths"][key] = dict(stats, balancer=balancer.name, status=meta["status"],
                                 failure=meta["failure"])
        if direct:
            out["paths"][DIRECT] = dict(overhead_stats(_records(folder, "direct-*.jsonl")),
                                        balancer=None, status=meta["status"],
                                        failure=meta["failure"])
    out["seconds"] = round(time.time() - started, 1)
    return out
