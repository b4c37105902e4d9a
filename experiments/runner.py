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
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import yaml

from experiments import run_plan as plan
from experiments import spec as spec_mod
from lblab_core.errors import UsageError

MANIFEST_VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Building a lab, starting its processes and tearing it down, measured here (2-core VM).
SETUP_SEC_PER_RUN = 6.0
TERMINAL_DROPS = ("Mbit/s", "p50 ms", "Jain (clients)")     # HTTP runs only


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

def _first_line(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else None


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mininet_version():
    try:
        from mininet.net import VERSION
        return VERSION
    except ImportError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_state(repo=REPO):
    """Return ``{"commit", "dirty"}`` of the lblab checkout (None values outside git)."""
    commit = _first_line(["git", "-C", repo, "rev-parse", "HEAD"])
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True,
                            text=True) if commit else None
    return {"commit": commit, "dirty": bool(status and status.stdout.strip())}


def versions():
    """Return the versions of what the lab runs on (None where a tool is missing)."""
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "lblab": _package_version("lblab"),
        "mininet": _mininet_version(),
        "openvswitch": _first_line(["ovs-vsctl", "--version"]),
        "os-ken": _package_version("os-ken"),
        "haproxy": _first_line(["haproxy", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "iperf3": _first_line(["iperf3", "--version"]),
    }


def manifest(spec, args, started):
    """Return the manifest dict of a run (everything needed to reproduce and judge it)."""
    from topologies import graphs
    graph = graphs.build(spec.topology.name, spec.topology.params)
    return {
        "v": MANIFEST_VERSION,
        "spec": spec.to_dict(),
        "spec_yaml": yaml.safe_dump(spec.data, sort_keys=False, allow_unicode=True),
        "spec_file": os.path.abspath(spec.source),
        "overrides": list(args.overrides) + ([f"repetitions={args.repetitions}"]
                                             if args.repetitions else []),
        "seed": spec.seed,
        "git": git_state(),
        "versions": versions(),
        "datapath": None,
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "hostname": platform.node(),
        "python_hash_seed": os.environ.get("PYTHONHASHSEED"),
        "link_features": graphs.link_features(graph),
        "topology": graphs.summary(graph),
        "command": ["lblab", "run"] + list(sys.argv[2:] if sys.argv[1:2] == ["run"] else []),
        "start": started,
        "end": None,
        "runs": [],
        "interrupted": False,
    }


def _utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _write_manifest(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fp:
        json.dump(data, fp, sort_keys=True, indent=1)
        fp.write("\n")
    os.replace(tmp, path)


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
    man = manifest(spec, args, _utc(started))
    man_path = os.path.join(results_dir, "manifest.json")
    _write_manifest(man_path, man)
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
            _write_manifest(man_path, man)
            say.done(meta)
    except KeyboardInterrupt:
        man["interrupted"] = True
        raise
    finally:
        say.stop()
        man["end"] = _utc(time.time())
        _write_manifest(man_path, man)
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


class _Quiet:
    """Progress sink that prints nothing."""

    def start(self, total, per_run):
        pass

    def run(self, i, name):
        pass

    def log(self, msg):
        pass

    def done(self, meta):
        pass

    def stop(self):
        pass


class _RichProgress:
    """Terminal progress: current configuration and repetition, runs done, time left."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("left"),
                                 TimeRemainingColumn(), console=self.console, transient=False)
        self.task = None
        self.t0 = time.monotonic()

    def start(self, total, per_run):
        self.console.print(f"{total} runs, about {total * per_run / 60:.1f} min")
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total)

    def run(self, i, name):
        self.progress.update(self.task, description=name)

    def log(self, msg):
        elapsed = time.monotonic() - self.t0
        self.progress.console.print(f"  [dim]{elapsed:6.1f}s {msg}[/dim]", highlight=False)

    def done(self, meta):
        if meta["status"] != "ok":
            self.progress.console.print(f"[red]{meta['run']} failed: {meta['failure']}[/red]")
        self.progress.advance(self.task)

    def stop(self):
        self.progress.stop()


def summary_rows(summary):
    """Return ``(headers, rows)`` of the end-of-run table (mean ± CI per configuration)."""
    from experiments import report
    return report._table(summary)


def print_summary(result, results_dir):
    """Print the summary table, the warnings and the report path (rich)."""
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if not console.is_terminal:
        # piped or logged: no terminal width to respect, keep the table on one line per row
        console = Console(width=140)
    if result.get("summary"):
        headers, rows = summary_rows(result["summary"])
        # the terminal gets the key columns; report.html and summary.csv have them all
        drops = TERMINAL_DROPS if "ok req/s" in headers else ()
        if "failed after kill" in headers:
            drops += ("errors",)
        keep = [i for i, h in enumerate(headers) if h not in drops]
        table = Table(title=f"{os.path.basename(results_dir)} (mean ± 95% CI)")
        table.add_column("configuration", no_wrap=True)
        table.add_column("reps", justify="right")
        for i in keep:
            table.add_column(headers[i], justify="right")
        for r in rows:
            table.add_row(r["config"], str(r["reps"]), *[r["cells"][i] for i in keep])
        console.print(table)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {w}", markup=True, highlight=False)
    # plain print: a path rich wraps at the terminal width cannot be copied
    print(f"report: {result.get('report') or '(not built)'}", flush=True)


def json_summary(result, results_dir):
    """Return the ``--json`` output: folder, report, and per-configuration means and CIs."""
    out = {"results_dir": results_dir, "report": result.get("report"),
           "warnings": result.get("warnings", []), "configs": {}}
    for c in (result.get("summary") or {}).get("configs", []):
        out["configs"][c["config"]] = {k: v for k, v in c["aggregate"].items()
                                       if k != "backend_share"}
    out["failed_runs"] = [m["run"] for m in result.get("metas", []) if m["status"] != "ok"]
    return out


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
    say = _Quiet() if (args.quiet or args.json) else _RichProgress()
    result = run_experiment(spec, results_dir, args, say)
    if args.json:
        print(json.dumps(json_summary(result, results_dir), indent=1, sort_keys=True))
    elif args.quiet:
        print(result.get("report") or results_dir)
    else:
        print_summary(result, results_dir)
    failed = [m for m in result["metas"] if m["status"] != "ok"]
    return 1 if failed or not result.get("report") else 0
