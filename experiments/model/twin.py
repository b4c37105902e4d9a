"""The model twin of a results folder: ``model/summary.csv``, ``model/summary.json`` and the
comparison with the emulated runs (the shell ``experiments.report.build`` calls).

The model is rebuilt from the folder alone: the spec kept byte for byte (``spec.yaml``) with
the manifest's overrides, and the manifest's ``calibration`` (each balancer's measured path
overhead; none: zero). It is seeded (window r uses repetition r's seeds), so the same folder
gives the same files, byte for byte.
"""
import csv
import io
import json
import os

from experiments import calibration
from experiments import spec as spec_mod
from experiments.model import flags
from experiments.model import predict as P
from lblab_core import loader
from lblab_core.errors import InputError, UsageError

MODEL_DIR = "model"
MAX_TOTAL_USERS = 4096       # experiments.spec_models' bound: the pool of an unbounded open loop
POOL_NOTE = ("open loop: the client pool (workload.users) is left unbounded in the model, so "
             "the prediction is the rate the spec asks for; a pool that binds in the lab shows "
             "as a departure (pool_limited)")
SPEC_NAME = "spec.yaml"      # the spec's source as the model files name it (no folder path)


def model_spec(run_dir, manifest):
    """Return ``(spec, None)`` or ``(None, why the folder has no model)``."""
    spec_file = os.path.join(run_dir, manifest.get("spec_verbatim") or SPEC_NAME)
    if not manifest or not os.path.isfile(spec_file):
        return None, "no spec.yaml in the results folder (made before the model twin)"
    try:
        spec = spec_mod.loads_spec(loader.read(spec_file), SPEC_NAME,
                                   manifest.get("overrides") or [])
    except InputError as exc:
        return None, f"its spec.yaml no longer loads: {exc.errors[0]}"
    if spec.workload.type != "http":
        return None, ("iperf3 workloads are outside the model: it models HTTP workloads only "
                      "(iperf3's TCP flows are not simulated)")
    if unbound_pool(spec):
        spec = spec_mod.loads_spec(loader.read(spec_file), SPEC_NAME,
                                   list(manifest.get("overrides") or [])
                                   + [f"workload.users={MAX_TOTAL_USERS}"])
    return spec, None


def unbound_pool(spec):
    """True when the twin models the spec with the client pool unbounded: an open loop whose
    pool (``workload.users``) is not swept. The open loop's load is its rate; the pool is the
    lab's load generator, and one too small is a distortion the flag is to show
    (``pool_limited``), not a part of the system to predict (``lblab model`` alone keeps
    it)."""
    if spec.workload.mode != "open":
        return False
    return not any(key == "workload.users" for point in spec_mod.points(spec)
                   for key, _ in (point or ()))


def overhead_source(manifest):
    """How the model got its overheads, as one line."""
    cal = manifest.get("calibration")
    if not isinstance(cal, dict):
        return "none: no calibration in the manifest (a batch made before it), so zero"
    if cal.get("skipped"):
        return f"none: the calibration was skipped ({cal.get('reason')}), so zero"
    return (f"calibrated: each path's mean latency at {cal.get('rate'):g} req/s with 0 ms "
            f"backends ({cal.get('duration_s'):g} s per path)")


def predict_folder(run_dir, manifest):
    """Return ``(spec, results, overheads)`` or raise UsageError/``ValueError`` with why not."""
    spec, why = model_spec(run_dir, manifest)
    if spec is None:
        raise ValueError(why)
    overheads = calibration.overheads_ms(manifest.get("calibration"),
                                         [b.name for b in spec.balancers])
    return spec, P.predict(spec, None, overheads), overheads


def summary_json(spec, results, overheads, manifest):
    """The JSON-ready ``model/summary.json``."""
    configs = []
    for r in results:
        configs.append({"config": r["config"], "balancer": r["balancer"],
                        "point": P.point_json(r["point"], spec), "layer": r["layer"],
                        "granularity": r["granularity"], "notes": r["notes"],
                        "overhead_ms": r["overhead_ms"], "window_s": r["window_s"],
                        "windows": r["windows"], "metrics": r["metrics"],
                        "backend_share": r["backend_share"]})
    return {"spec": spec.name, "quantiles": list(P.QUANTILES), "overhead_ms": overheads,
            "overhead_source": overhead_source(manifest),
            "model_notes": (results[0]["model_notes"] if results else [])
            + ([POOL_NOTE] if unbound_pool(spec) else []),
            "configurations": configs}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def summary_csv(results):
    """``model/summary.csv``: one row per configuration, each HTTP metric of the emulation's
    summary as ``<metric>`` (mean over windows), ``<metric>_low`` and ``<metric>_high``
    (2.5/97.5 % quantiles)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["config", "balancer", "layer", "granularity", "windows", "overhead_ms"]
    for key in P.HTTP_METRICS:
        head += [key, f"{key}_low", f"{key}_high"]
    writer.writerow(head)
    for r in results:
        row = [r["config"], r["balancer"], r["layer"], r["granularity"], r["windows"],
               r["overhead_ms"]]
        for key in P.HTTP_METRICS:
            s = r["metrics"].get(key) or {}
            row += [s.get("mean"), s.get("low"), s.get("high")]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def build_model(run_dir, summary, manifest):
    """Model a results folder, write ``model/`` and compare with its runs.

    Returns:
        dict: ``available`` False with ``reason``; or True with ``results``, ``comparison``
        (``experiments.model.flags.compare``), ``warnings`` (flag lines), ``files``,
        ``overhead_source``, ``calibration``.
    """
    try:
        spec, results, overheads = predict_folder(run_dir, manifest)
    except (ValueError, UsageError) as exc:
        return {"available": False, "reason": str(exc), "warnings": [], "files": []}
    folder = os.path.join(run_dir, MODEL_DIR)
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, "summary.csv"), os.path.join(folder, "summary.json")]
    with open(paths[0], "w", encoding="utf-8", newline="") as fp:
        fp.write(summary_csv(results))
    with open(paths[1], "w", encoding="utf-8") as fp:
        json.dump(summary_json(spec, results, overheads, manifest), fp, indent=1,
                  sort_keys=True)
        fp.write("\n")
    comparison = flags.compare(summary, results)
    if unbound_pool(spec):
        for r in results:
            r["model_notes"] = list(r["model_notes"]) + [POOL_NOTE]
    return {"available": True, "spec": spec, "results": results, "comparison": comparison,
            "warnings": flags.flag_lines(comparison), "files": paths,
            "overhead_source": overhead_source(manifest),
            "calibration": manifest.get("calibration")}
