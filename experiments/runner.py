"""``lblab run SPEC``: run an experiment — spec in, results folder out.

For each balancer x sweep value x repetition, ``experiments.run_lab.Run`` builds a fresh lab,
runs the workload and writes ``raw/<config>-r<rep>/``; then ``experiments.report`` computes
``summary.csv``, ``summary.json``, ``plots/`` and ``report.html`` from ``raw/`` alone.

Results go to ``<out>/<name>-<UTC YYYYmmddTHHMMSS>/`` (``<out>`` defaults to ``results``); an
existing folder is never reused or overwritten.
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import sys
import time

from experiments import metadata, progress
from experiments import run_plan as plan
from experiments import spec as spec_mod
from lblab_core.errors import UsageError

# Building a lab, starting its processes and tearing it down, measured here (2-core VM).
SETUP_SEC_PER_RUN = 6.0


def build_parser():
    """Return the argparse parser of ``lblab run``."""
    parser = argparse.ArgumentParser(
        prog="lblab run",
        description="Run an experiment spec: every balancer x sweep value x repetition in a "
                    "fresh Mininet lab; writes results/<name>-<UTC time>/ with manifest.json, "
                    "raw/, summary.csv, summary.json, plots/ and report.html.")
    parser.add_argument("spec", metavar="SPEC", help="experiment spec (YAML)")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="parent folder of the results folder (default: results)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a spec value (repeatable)")
    parser.add_argument("--repetitions", type=int, metavar="N",
                        help="override the spec's repetitions")
    parser.add_argument("--quiet", action="store_true", help="no progress, only the report path")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary (results folder, per-configuration means)")
    return parser


# -- manifest ------------------------------------------------------------------------------------

# -- running -------------------------------------------------------------------------------------

def plan_runs(spec):
    """Return every run of a spec in order: ``(order, config, balancer, sweep, point, rep)``."""
    runs = []
    for order, (config, balancer, value, point) in enumerate(spec_mod.configurations(spec)):
        sweep = None if value is None else {"param": spec.sweep.param, "value": value}
        for rep in range(1, spec.repetitions + 1):
            runs.append((order, config, balancer, sweep, point, rep))
    return runs


def make_results_dir(out, name, now=None):
    """Create and return ``<out>/<name>-<UTC timestamp>``; never reuse an existing folder.

    Raises:
        lblab_core.errors.UsageError: the folder exists (a second run within the same second).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    path = os.path.join(out, plan.results_dir_name(name, now))
    try:
        os.makedirs(out, exist_ok=True)
        os.mkdir(path)
    except FileExistsError:
        raise UsageError(f"{path} already exists; results are never overwritten "
                         f"(wait a second and run again)") from None
    os.mkdir(os.path.join(path, "raw"))
    return path


def run_experiment(spec, results_dir, args, say):
    """Run every configuration and repetition, then build the report.

    Args:
        spec (experiments.spec.Spec): the validated spec.
        results_dir (str): the new, empty results folder.
        args (argparse.Namespace): parsed options (for the manifest).
        say (Progress-like): ``start(total, estimate)``, ``run(i, name)``, ``log(msg)``,
            ``done(meta)``, ``stop()``.
    Returns:
        dict: ``experiments.report.build`` result plus ``"metas"``.
    """
    from experiments import report
    from experiments.run_lab import Run

    started = time.time()
    man = metadata.manifest(spec, args, metadata.utc(started))
    man_path = os.path.join(results_dir, "manifest.json")
    metadata.write_manifest(man_path, man)
    runs = plan_runs(spec)
    per_run = spec.warmup_s + spec.duration_s + SETUP_SEC_PER_RUN
    say.start(len(runs), per_run)
    metas = []
    result = None
    try:
        for i, (order, config, balancer, sweep, point, rep) in enumerate(runs):
            name = plan.run_name(config, rep)
            say.run(i, name)
            seed = spec.seed * 1000 + rep
            run = Run(point, balancer, config, rep, order, sweep,
                      os.path.join(results_dir, "raw", name), seed, log=say.log)
            meta = run.execute()
            metas.append(meta)
            man["runs"].append({"run": name, "status": meta["status"],
                                "failure": meta["failure"]})
            man["datapath"] = man["datapath"] or meta.get("datapath")
            metadata.write_manifest(man_path, man)
            say.done(meta)
    except KeyboardInterrupt:
        man["interrupted"] = True
        raise
    finally:
        say.stop()
        man["end"] = metadata.utc(time.time())
        metadata.write_manifest(man_path, man)
        # also after Ctrl-C: the interrupted run wrote its meta.json (status failed)
        if glob.glob(os.path.join(results_dir, "raw", "*", "meta.json")):
            say.log("building the report")
            try:
                result = report.build(results_dir)
            except Exception as exc:  # noqa: BLE001 - the raw data stays; `lblab report` again
                say.log(f"the report failed: {exc}; rerun: lblab report {results_dir}")
                result = None
            if man["interrupted"] and result:
                print(f"partial report: {result['report']}", file=sys.stderr, flush=True)
    return dict(result or {}, metas=metas)


def check_machine():
    """Raise UsageError when this machine cannot run a lab (root, Open vSwitch, Mininet)."""
    if os.geteuid() != 0:
        raise UsageError("lblab run needs root (Mininet and Open vSwitch): run it as root or "
                         "with sudo")
    for tool in ("ovs-vsctl", "mnexec", "curl"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} not found: run 'make setup'")


def load(args):
    """Load and validate the spec with overrides; print every problem and raise UsageError."""
    overrides = list(args.overrides)
    if args.repetitions is not None:
        overrides.append(f"repetitions={args.repetitions}")
    try:
        return spec_mod.load_spec(args.spec, overrides)
    except spec_mod.SpecError as exc:
        for line in exc.errors[:-1]:
            print(line, file=sys.stderr)
        raise UsageError(exc.errors[-1] + (f" ({len(exc.errors)} problems)"
                                           if len(exc.errors) > 1 else "")) from None


def main(argv=None):
    """Run ``lblab run``.

    Returns:
        int: 0 when every run succeeded, 1 when some failed (the report says which).
    """
    args = build_parser().parse_args(argv)
    spec = load(args)
    check_machine()
    results_dir = make_results_dir(args.out, spec.name)
    say = progress.Quiet() if (args.quiet or args.json) else progress.RichProgress()
    result = run_experiment(spec, results_dir, args, say)
    if args.json:
        print(json.dumps(progress.json_summary(result, results_dir), indent=1, sort_keys=True))
    elif args.quiet:
        print(result.get("report") or results_dir)
    else:
        progress.print_summary(result, results_dir)
    failed = [m for m in result["metas"] if m["status"] != "ok"]
    return 1 if failed or not result.get("report") else 0
