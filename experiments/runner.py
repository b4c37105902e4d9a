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
existing folder is never reused or overwritten. The folder keeps the spec file byte for byte
(``spec.yaml``) beside the resolved one (``spec.resolved.yaml``).

A batch holds the machine's lab lock (``topologies.registry.NetworkLock``) from its first run
to its last; each run's lab re-takes it within this process. ``lblab run --resume DIR``
(:func:`resume_experiment`) continues an interrupted batch in its folder: the ok runs stay,
failed attempts move to ``raw-attempts/``, the rest run in the recorded order
(``experiments.run_plan.resume_plan`` decides which). ``lblab rerun`` is
``experiments.rerun_cmd``.
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

from experiments import calibration, cluster_run, metadata, progress
from experiments import run_plan as plan
from experiments import spec as spec_mod
from experiments.live import hub as live_view
from experiments.live import server as live_server
from lb_apps.custom_balancer import copied_overrides
from lblab_core import loader
from lblab_core.errors import InputError, UsageError

# Building a lab, starting its processes and tearing it down, measured here (2-core VM).
SETUP_SEC_PER_RUN = 6.0
# Run orders of ``--order``; the first is the default.
ORDERS = ("shuffled", "interleaved", "sequential")
MAX_ORDER_SEED = 2 ** 32 - 1
# How long a batch waits for another process's lab before giving up, and how often it says
# whose lock it waits for.
LOCK_WAIT_SEC = 600.0
LOCK_REPORT_SEC = 5.0


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
        description="Run an experiment spec: every balancer x sweep point x repetition in a "
                    "fresh Mininet lab; writes results/<name>-<UTC time>/ with spec.yaml (as "
                    "written), manifest.json, raw/, summary.csv, summary.json, plots/ and "
                    "report.html. The batch holds the machine's lab lock from its first run "
                    "to its last. --resume DIR continues an interrupted batch in its folder.")
    parser.add_argument("spec", metavar="SPEC", nargs="?", help="experiment spec (YAML)")
    parser.add_argument("--resume", metavar="RESULTS_DIR",
                        help="continue an interrupted batch in RESULTS_DIR: keep its ok runs, "
                             "run the missing, failed and interrupted ones (a failed attempt "
                             "moves to raw-attempts/<run>-a<N>/) in the recorded order, with "
                             "the spec, overrides and order recorded there; then rebuild the "
                             "report. Takes no SPEC and none of the options below but "
                             "--quiet/--json/--live (the live view shows the runs it runs)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="parent folder of the results folder (default: results)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a spec value (repeatable)")
    parser.add_argument("--repetitions", type=int, metavar="N",
                        help="override the spec's repetitions")
    parser.add_argument("--order", choices=ORDERS, default=None,
                        help="run order: shuffled (default) = round by round over the "
                             "repetitions (every configuration's r1 before any r2), each round "
                             "shuffled by the order seed; interleaved = the same rounds "
                             "unshuffled; sequential = each configuration's repetitions in a "
                             "row")
    parser.add_argument("--order-seed", type=_order_seed, metavar="N",
                        help="seed of the shuffle (0..2^32-1; default: the spec's seed); "
                             "recorded in manifest.json")
    parser.add_argument("--no-calibration", action="store_true",
                        help="skip the calibration (HTTP specs): at the batch's start a short "
                             "low-load lab per data path and the direct path measures the "
                             "per-request overheads the model twin adds (~10 s per path); "
                             "without it the model's overheads are zero (docs/model.md)")
    parser.add_argument("--servers", metavar="A,B",
                        help="run each lab across these servers (SSH destinations; localhost "
                             "is this machine): overrides the spec's cluster.servers "
                             "(docs/scale.md); not with --resume, which runs on the servers "
                             "the batch recorded")
    parser.add_argument("--ssh-config", metavar="FILE",
                        help="the ssh -F file for --servers (default: $LBLAB_SSH_CONFIG); "
                             "not with --resume")
    parser.add_argument("--quiet", action="store_true", help="no progress, only the report path")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary (results folder, per-configuration means)")
    live_server.add_live_flag(parser, "the batch")
    return parser


# -- planning ------------------------------------------------------------------------------------

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


def sweep_meta(point):
    """Return ``meta.json``'s ``sweep`` of a point: ``[{"param", "value"}, ...]`` or None."""
    return [{"param": param, "value": value} for param, value in point] or None


def plan_runs(spec, order="shuffled", order_seed=None):
    """Return every run of a spec in the order to run them.

    Each run is ``(order, config, balancer, sweep, point, rep)``, where ``order`` is the
    configuration's index in the spec (what ``meta.json`` and the report sort by), not the
    run's position, ``sweep`` is ``meta.json``'s list of ``{"param", "value"}`` (None without a
    sweep) and ``point`` the spec of that sweep point. See ``order_runs``; ``order_seed``
    defaults to the spec's seed.
    """
    runs = []
    for index, (config, balancer, point, point_spec) in enumerate(
            spec_mod.configurations(spec)):
        for rep in range(1, spec.repetitions + 1):
            runs.append((index, config, balancer, sweep_meta(point), point_spec, rep))
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


# -- running -------------------------------------------------------------------------------------

def run_experiment(spec, results_dir, args, say, spec_bytes=None, extra=None, live=None):
    """Run every configuration and repetition, then build the report.

    Args:
        spec (experiments.spec.Spec): the validated spec.
        results_dir (str): the new, empty results folder.
        args (argparse.Namespace): parsed options (for the manifest).
        say (Progress-like): ``start(total, estimate)``, ``run(i, name)``, ``log(msg)``,
            ``done(meta)``, ``stop()`` and optionally ``wait(msg)`` (the lab lock).
        spec_bytes (bytes|None): the spec file as read (kept as ``spec.yaml``); default: read
            again from ``spec.source``.
        extra (dict|None): more manifest keys (``rerun_of``).
        live (experiments.live.hub.Hub|None): the ``--live`` view's hub.
    Returns:
        dict: ``experiments.report.build`` result plus ``"metas"``.
    """
    started = time.time()
    order = getattr(args, "order", None) or ORDERS[0]
    override = getattr(args, "order_seed", None)
    metadata.write_spec_files(results_dir, spec, spec_bytes)
    man = metadata.manifest(spec, args, metadata.utc(started))
    man.update(extra or {})
    if spec.workload.type == "http":       # measured in run_batch, under the lab lock
        # args from lblab run's parser always say; a caller whose args predate the option
        # (a hand-made Namespace) gets no calibration
        man["calibration"] = ({"pending": True} if not getattr(args, "no_calibration", True)
                              else calibration.skipped("--no-calibration"))
    runs = plan_runs(spec, order, override)
    man["order"] = {"mode": order, "seed": order_seed_of(spec, override),
                    "seed_from": "spec seed" if override is None else "--order-seed",
                    "runs": [plan.run_name(r[1], r[5]) for r in runs]}
    return run_batch(spec, runs, results_dir, man, say, live=live)


def run_batch(spec, runs, results_dir, man, say, lock=None, live=None):
    """Run ``runs`` in order under one hold of the lab lock, then build the report.

    Writes ``manifest.json`` before the first run and after each; appends each run's status
    to ``man["runs"]`` (with the resume it belongs to, if any).

    Args:
        lock (registry.NetworkLock|None): the lab lock (default: the machine's, reporting its
            wait through ``say.wait``).
    Returns:
        dict: ``experiments.report.build`` result plus ``"metas"``.
    """
    from experiments import report
    from experiments.run_lab import Run
    from topologies import registry

    man_path = os.path.join(results_dir, "manifest.json")
    session = len(man.get("resumes") or [])
    # who runs the batch now (pid and start time): a resume refuses a batch still running
    man["running"] = registry.process_entry(os.getpid(), "lblab run")
    metadata.write_manifest(man_path, man)
    per_run = spec.warmup_s + spec.duration_s + SETUP_SEC_PER_RUN
    say.start(len(runs), per_run)
    wait = getattr(say, "wait", say.log)
    lock = lock or registry.NetworkLock(LOCK_WAIT_SEC, on_wait=wait, report_sec=LOCK_REPORT_SEC)
    metas = []
    result = None
    name = None
    if live is not None:
        live.planned = [plan.run_name(r[1], r[5]) for r in runs]
    try:
        try:
            lock.acquire()
        except registry.RegistryError as exc:
            raise UsageError(str(exc)) from None
        if (man.get("calibration") or {}).get("pending"):
            say.log(f"calibration: the direct path and each balancer's path at "
                    f"{calibration.CAL_RATE:g} req/s (~{calibration.estimate_s(spec):.0f} s)")
            man["calibration"] = calibration.calibrate(spec, results_dir, say.log)
            metadata.write_manifest(man_path, man)
        for i, (order, config, balancer, sweep, point, rep) in enumerate(runs):
            name = plan.run_name(config, rep)
            say.run(i, name)
            seed = spec.seed * 1000 + rep
            run = Run(point, balancer, config, rep, order, sweep,
                      os.path.join(results_dir, "raw", name), seed, log=say.log)
            run.live = live
            meta = run.execute()
            metas.append(meta)
            entry = {"run": name, "status": meta["status"], "failure": meta["failure"]}
            if session:
                entry["resume"] = session
            man["runs"].append(entry)
            man["datapath"] = man["datapath"] or meta.get("datapath")
            metadata.write_manifest(man_path, man)
            name = None                 # recorded: not the run a Ctrl-C would stop
            say.done(meta)
    except KeyboardInterrupt:
        man["interrupted"] = True
        if name is not None:
            # the run Ctrl-C stopped wrote its meta.json (status failed); the manifest says so
            man["runs"].append({"run": name, "status": "failed",
                                "failure": "interrupted (Ctrl-C)",
                                **({"resume": session} if session else {})})
        raise
    finally:
        lock.release()
        say.stop()
        man["end"] = metadata.utc(time.time())
        man["running"] = None
        if session:
            man["resumes"][-1]["end"] = man["end"]
            man["resumes"][-1]["interrupted"] = man["interrupted"]
        metadata.write_manifest(man_path, man)
        # also after Ctrl-C: the interrupted run wrote its meta.json (status failed)
        if glob.glob(os.path.join(results_dir, "raw", "*", "meta.json")):
            say.log("building the report")
            try:
                result = report.build(results_dir)
            except Exception as exc:  # noqa: BLE001 - the raw data stays; `lblab report` again
                say.log(f"the report failed: {exc}; build it again with: lblab report "
                        f"{results_dir}")
                result = None
            if man["interrupted"] and result:
                print(f"partial report: {result['report']}", file=sys.stderr, flush=True)
        if man["interrupted"]:
            print(f"continue with: lblab run --resume {results_dir}", file=sys.stderr,
                  flush=True)
    return dict(result or {}, metas=metas)


# -- resuming ------------------------------------------------------------------------------------

def read_manifest(results_dir):
    """Return the manifest of a results folder this lblab can run again.

    Raises:
        lblab_core.errors.UsageError: not a results folder, an unreadable manifest, or one of
            another format version.
    """
    path = os.path.join(results_dir, "manifest.json")
    if not os.path.isdir(results_dir):
        raise UsageError(f"{results_dir}: no such folder")
    if not os.path.isfile(path):
        raise UsageError(f"{results_dir}: not a results folder (no manifest.json)")
    try:
        with open(path, encoding="utf-8") as fp:
            man = json.load(fp)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it: {exc}") from None
    version = man.get("v") if isinstance(man, dict) else None
    if version != metadata.MANIFEST_VERSION:
        raise UsageError(f"{path}: manifest format {version!r}, this lblab runs format "
                         f"{metadata.MANIFEST_VERSION} only (made by another lblab version); "
                         f"run its spec again with lblab run")
    spec_path = os.path.join(results_dir, man.get("spec_verbatim") or metadata.SPEC_FILE)
    if not os.path.isfile(spec_path) or not isinstance(man.get("order"), dict):
        raise UsageError(f"{results_dir}: an incomplete results folder (no "
                         f"{os.path.basename(spec_path)} or no run order in manifest.json)")
    return man


def _found_runs(results_dir):
    """Return ``{run id: status or None}`` of the folders in ``raw/``."""
    found = {}
    raw = os.path.join(results_dir, "raw")
    for name in sorted(os.listdir(raw)) if os.path.isdir(raw) else ():
        if not os.path.isdir(os.path.join(raw, name)):
            continue
        try:
            with open(os.path.join(raw, name, "meta.json"), encoding="utf-8") as fp:
                found[name] = json.load(fp).get("status")
        except (OSError, ValueError, AttributeError):
            found[name] = None
    return found


def resume_experiment(results_dir, say, now=None, machine_check=None, live=None):
    """Continue an interrupted batch in its results folder (``lblab run --resume``).

    Keeps the runs whose ``meta.json`` says ok; moves the folders of failed and interrupted
    runs to ``raw-attempts/<run>-a<N>/``; runs what is left in the order ``manifest.json``
    recorded, with the spec kept in the folder (``spec.yaml``) and the recorded overrides;
    records the resume in the manifest's ``resumes``; rebuilds the report.

    Raises:
        lblab_core.errors.UsageError: see :func:`read_manifest`; the recorded spec no longer
            gives the recorded runs; a folder of a run the batch does not plan; every run is
            ok already.
    """
    from topologies import registry

    man = read_manifest(results_dir)
    running = man.get("running")
    if isinstance(running, dict) and registry.alive(running.get("pid"), running.get("start")):
        raise UsageError(f"{results_dir}: its batch is still running (pid {running['pid']}); "
                         f"resume it once that process has ended")
    spec, _ = read_spec(os.path.join(results_dir, man.get("spec_verbatim")
                                     or metadata.SPEC_FILE), (man.get("overrides") or [])
                        + copied_overrides(results_dir))   # its balancer files' copies
    order = man["order"]
    runs = plan_runs(spec, order.get("mode"), order.get("seed"))
    by_name = {plan.run_name(r[1], r[5]): r for r in runs}
    if list(by_name) != order.get("runs"):
        raise UsageError(f"{results_dir}: its spec.yaml no longer gives the runs its manifest "
                         f"recorded (made by another lblab version?); run it again with "
                         f"lblab rerun {results_dir}")
    todo = plan.resume_plan(order["runs"], _found_runs(results_dir))
    if todo.unknown:
        raise UsageError(f"{results_dir}/raw: {', '.join(todo.unknown[:3])} is not a run of "
                         f"this batch; move it out of raw/ first")
    if not todo.redo:
        raise UsageError(f"{results_dir}: complete already (all {len(todo.keep)} runs ok); "
                         f"rebuild its report with: lblab report {results_dir}")
    (machine_check or check_machine)()
    attempts = os.path.join(results_dir, plan.ATTEMPTS_DIR)
    moved = {}
    for run in todo.move:
        os.makedirs(attempts, exist_ok=True)
        dest = plan.attempt_name(run, set(os.listdir(attempts)))
        os.rename(os.path.join(results_dir, "raw", run), os.path.join(attempts, dest))
        moved[run] = f"{plan.ATTEMPTS_DIR}/{dest}"
        say.log(f"{run}: the failed attempt moved to {moved[run]}/")
    say.log(f"resuming: {len(todo.keep)} runs ok are kept, {len(todo.redo)} to run")
    man.setdefault("resumes", []).append({
        "start": metadata.utc(now or time.time()), "end": None, "interrupted": False,
        "kept": len(todo.keep), "runs": list(todo.redo), "moved": moved,
        "command": ["lblab", "run", "--resume", results_dir]})
    man["interrupted"] = False
    man["end"] = None
    return run_batch(spec, [by_name[r] for r in todo.redo], results_dir, man, say, live=live)


def check_machine():
    """Raise UsageError when this machine cannot run a lab (root, Open vSwitch, Mininet)."""
    if os.geteuid() != 0:
        raise UsageError("lblab run needs root (Mininet and Open vSwitch): run it as root or "
                         "with sudo")
    for tool in ("ovs-vsctl", "mnexec", "curl"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} not found: run 'make setup'")


def read_spec(path, overrides=()):
    """Read a spec file once: return ``(spec, the file's bytes)``; a bad spec raises
    UsageError after printing every problem but the last on stderr."""
    try:
        with open(path, "rb") as fp:
            raw = fp.read(loader.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        return spec_mod.loads_spec(loader.decode(raw, str(path)), str(path), overrides), raw
    except InputError as exc:
        for line in exc.errors[:-1]:
            print(line, file=sys.stderr)
        raise UsageError(exc.errors[-1] + (f" ({len(exc.errors)} problems)"
                                           if len(exc.errors) > 1 else "")) from None


def overrides_of(args):
    """Return the ``--set`` items of the options, ``--repetitions N`` last as ``repetitions=N``."""
    overrides = list(args.overrides)
    if args.repetitions is not None:
        overrides.append(f"repetitions={args.repetitions}")
    if getattr(args, "servers", None):
        overrides.append(f"cluster.servers=[{args.servers}]")
    if getattr(args, "ssh_config", None):
        overrides.append(f"cluster.ssh_config={os.path.abspath(args.ssh_config)}")
    return overrides


def load(args):
    """Load and validate the spec with overrides; print every problem and raise UsageError."""
    return read_spec(args.spec, overrides_of(args))[0]


def progress_for(args):
    """Return the progress sink the options ask for."""
    return progress.Quiet() if (args.quiet or args.json) else progress.RichProgress()


def finish(args, result, results_dir):
    """Print the outcome as the options ask; return the exit status (1: a run failed)."""
    if args.json:
        print(json.dumps(progress.json_summary(result, results_dir), indent=1, sort_keys=True))
    elif args.quiet:
        print(result.get("report") or results_dir)
    else:
        progress.print_summary(result, results_dir)
    failed = [m for m in result["metas"] if m["status"] != "ok"]
    return 1 if failed or not result.get("report") else 0


def main(argv=None):
    """Run ``lblab run``.

    Returns:
        int: 0 when every run succeeded, 1 when some failed (the report says which).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        given = [flag for flag, value in (
            ("SPEC", args.spec), ("--out", args.out), ("--set", args.overrides),
            ("--repetitions", args.repetitions), ("--order", args.order),
            ("--order-seed", args.order_seed),
            # a resumed batch runs on the servers it recorded (docs/scale.md)
            ("--servers", args.servers), ("--ssh-config", args.ssh_config))
            if value not in (None, [])]
        if given:
            parser.error(f"--resume takes the spec and its options from the results folder; "
                         f"drop {', '.join(given)}")
        with live_view.serving(args.live, _stderr) as hub:
            result = resume_experiment(args.resume, progress_for(args), live=hub)
        return finish(args, result, args.resume)
    if args.spec is None:
        parser.error("give a SPEC (or --resume RESULTS_DIR)")
    args.out = args.out or "results"
    spec, raw = read_spec(args.spec, overrides_of(args))
    check_machine()
    results_dir = make_results_dir(args.out, spec.name)
    with live_view.serving(args.live, _stderr) as hub:
        result = run_experiment(spec, results_dir, args, progress_for(args), raw, live=hub,
                                extra=cluster_run.manifest(spec))
    return finish(args, result, results_dir)


def _stderr(line):
    print(f"lblab run: {line}", file=sys.stderr, flush=True)
