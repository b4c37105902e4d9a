"""``lblab run SPEC``: run an experiment — spec in, results folder out.

For each balancer x sweep value x repetition, ``experiments.run_lab.Run`` builds a fresh lab,
runs the workload and writes ``raw/<config>-r<rep>/``; then ``experiments.report`` computes
``summary.csv``, ``summary.json``, ``plots/`` and ``report.html`` from ``raw/`` alone.

The runs are interleaved and shuffled by default (``--order``): every configuration's
repetition 1 runs before any repetition 2, each round in an order drawn from
``random.Random(order_seed)``, so drift of the machine spreads over the balancers instead of
becoming a difference between them. ``order_seed`` is the spec's ``seed`` unless
``--order-seed`` says otherwise; both and the run ids in order are in ``manifest.json``.

Results go to ``<out>/<name>-<UTC YYYYmmddTHHMMSS>/`` (``<out>`` defaults to ``results``); an
existing folder is never reused or overwritten.
"""
import argparse
import datetime
import glob
import json
import os
import random
import shutil
import sys
import time

from experiments import metadata, progress
from experiments import run_plan as plan
from experiments import spec as spec_mod
from lblab_core.errors import UsageError

# Building a lab, starting its processes and tearing it down, measured here (2-core VM).
SETUP_SEC_PER_RUN = 6.0
# Run orders of ``--order``; the first is the default.
ORDERS = ("shuffled", "interleaved", "sequential")
MAX_ORDER_SEED = 2 ** 32 - 1


def _order_seed(text):
    """argparse type of ``--order-seed``: an integer in 0..2**32-1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
    if not 0 <= value <= MAX_ORDER_SEED:
        raise argparse.ArgumentTypeError(f"{value}: expected 0..{MAX_ORDER_SEED}")
    return value


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
    parser.add_argument("--order", choices=ORDERS, default="shuffled",
                        help="run order: shuffled (default) = round by round over the "
                             "repetitions (every configuration's r1 before any r2), each round "
                             "shuffled by the order seed; interleaved = the same rounds "
                             "unshuffled; sequential = each configuration's repetitions in a "
                             "row")
    parser.add_argument("--order-seed", type=_order_seed, metavar="N",
                        help="seed of the shuffle (0..2^32-1; default: the spec's seed); "
                             "recorded in manifest.json")
    parser.add_argument("--quiet", action="store_true", help="no progress, only the report path")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary (results folder, per-configuration means)")
    return parser


# -- manifest ------------------------------------------------------------------------------------

# -- running -------------------------------------------------------------------------------------

def order_seed_of(spec, override=None):
    """Return the seed of the run order: ``override`` (``--order-seed``) or the spec's seed."""
    return spec.seed if override is None else override


def order_runs(runs, order="shuffled", seed=0):
    """Return ``runs`` (sequential: each configuration's repetitions in a row) in ``order``.

    ``sequential`` keeps them; ``interleaved`` takes them round by round (every
    configuration's repetition 1, then every repetition 2, …, each round in configuration
    order); ``shuffled`` is ``interleaved`` with each round shuffled, one round after the other,
    by one ``random.Random(seed)``, so the same seed gives the same order.

    Args:
        runs (list[tuple]): ``(order, config, balancer, sweep, point, rep)`` tuples.
        order (str): one of ``ORDERS``.
        seed (int): the order seed (used by ``shuffled`` only).
    Returns:
        list[tuple]: the same tuples, in the order to run them.
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: expected one of {', '.join(ORDERS)}")
    if order == "sequential":
        return list(runs)
    rounds = {}
    for run in runs:
        rounds.setdefault(run[5], []).append(run)
    rng = random.Random(seed)
    out = []
    for rep in sorted(rounds):
        batch = list(rounds[rep])
        if order == "shuffled":
            rng.shuffle(batch)
        out.extend(batch)
    return out


def plan_runs(spec, order="shuffled", order_seed=None):
    """Return every run of a spec in the order to run them.

    Each run is ``(order, config, balancer, sweep, point, rep)``, where ``order`` is the
    configuration's index in the spec (what ``meta.json`` and the report sort by), not the
    run's position. See ``order_runs``; ``order_seed`` defaults to the spec's seed.
    """
    runs = []
    for index, (config, balancer, value, point) in enumerate(spec_mod.configurations(spec)):
        sweep = None if value is None else {"param": spec.sweep.param, "value": value}
        for rep in range(1, spec.repetitions + 1):
            runs.append((index, config, balancer, sweep, point, rep))
    return order_runs(runs, order, order_seed_of(spec, order_seed))


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
    order = getattr(args, "order", None) or ORDERS[0]
    override = getattr(args, "order_seed", None)
    runs = plan_runs(spec, order, override)
    man["order"] = {"mode": order, "seed": order_seed_of(spec, override),
                    "seed_from": "spec seed" if override is None else "--order-seed",
                    "runs": [plan.run_name(r[1], r[5]) for r in runs]}
    metadata.write_manifest(man_path, man)
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
