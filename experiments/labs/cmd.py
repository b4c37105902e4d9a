"""``lblab lab list|start|run|check``: the course labs (see ``experiments/labs/__init__.py``)."""
import argparse
import datetime
import json
import os
import re
import sys

from experiments.labs import registry
from experiments.labs import results as results_mod
from experiments.live.hub import serving
from experiments.live.server import add_live_flag
from lblab_core.errors import UsageError

_STUDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _student(text):
    """argparse type of ``--student``: 1-64 letters, digits, '.', '_', '@', '-'."""
    if not _STUDENT.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a "
            f"letter or digit (e.g. a student number or login)")
    return text


def _lab_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a lab number "
                                         f"(lblab lab list)") from None


def build_parser():
    """Return the argparse parser of ``lblab lab``."""
    parser = argparse.ArgumentParser(
        prog="lblab lab",
        description="Course labs, one per OSI layer: list them, bring one up at a mininet> "
                    "prompt, run its measurements, and grade a results folder. Handouts: "
                    "docs/labs/. One lab runs at a time per machine (the lab lock), so each "
                    "student needs a VM of their own.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="the labs: number, OSI layer, title, handout")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p = sub.add_parser("start", help="bring lab N's topology and balancer up at a mininet> "
                                     "prompt and print the handout's first step (root)")
    p.add_argument("number", type=_lab_number, metavar="N", help="the lab's number")
    p.add_argument("--balancer", metavar="NAME",
                   help="which of the lab spec's balancers to start (default: the lab's)")
    add_live_flag(p, "the lab")
    p = sub.add_parser("run", help="run lab N's measurements into a results folder (root)")
    p.add_argument("number", type=_lab_number, metavar="N", help="the lab's number")
    p.add_argument("--student", type=_student, metavar="ID",
                   help="your student id: stamped into the results (lab.json) with a random "
                        "run id; the checker prints both")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="parent folder of the results folder (default: results)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY.PATH=VALUE",
                   help="override a value of the lab's spec (repeatable; recorded in "
                        "manifest.json, so the checker grades what really ran)")
    p.add_argument("--calibrate", action="store_true",
                   help="calibrate the model twin first, as lblab run does (~10 s per "
                        "balancer and spec, off by default: no lab's checks or questions use "
                        "it; lblab model SPEC predicts the ideal path without it)")
    p = sub.add_parser("check", help="grade a results folder of lab N: each check with "
                                     "pass/fail, the measured value and the expected range; "
                                     "exit 0 all pass, 1 some fail, 2 usage error")
    p.add_argument("number", type=_lab_number, metavar="N", help="the lab's number")
    p.add_argument("results", metavar="RESULTS_DIR",
                   help="the folder 'lblab lab run N' printed")
    p.add_argument("--json", action="store_true",
                   help="print the verdicts as JSON (for a course's grading script)")
    return parser


# -- list ----------------------------------------------------------------------------------------

def lab_rows():
    """Return one dict per lab for ``lblab lab list``."""
    return [{"number": lab.number, "layer": lab.layer, "title": lab.title,
             "specs": [f"experiments/specs/labs/{s}" for s in lab.specs],
             "handout": lab.handout, "minutes": lab.minutes}
            for lab in registry.labs().values()]


def _list(args):
    rows = lab_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title="lblab course labs (lblab lab start N; handouts in docs/labs/)")
    for col in ("N", "OSI layer", "title", "handout", "minutes"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["number"]), row["layer"], row["title"], row["handout"],
                      row["minutes"])
    Console().print(table)
    return 0


# -- start ---------------------------------------------------------------------------------------

def _start(args):
    """Bring the lab's spec up the way ``lblab shell`` does, printing the first step at the
    prompt (``experiments.shell_cmd``'s prompt, so its commands come along)."""
    import tempfile

    from experiments import runner, shell_cmd
    from experiments.run_lab import Run
    from experiments.spec import points, variant

    lab = registry.get(args.number)
    spec, _ = runner.read_spec(registry.spec_path(lab.spec_for_start))
    names = [b.name for b in spec.balancers]
    name = args.balancer or lab.start_balancer or names[0]
    if name not in names:
        raise UsageError(f"--balancer {name!r}: expected one of {', '.join(names)}")
    runner.check_machine()
    point = spec if spec.sweep is None else variant(spec, points(spec)[0])
    work = tempfile.mkdtemp(prefix=f"lblab-lab{lab.number}-")
    run = Run(point, spec.balancer(name), name, 1, 0, None, os.path.join(work, "raw"),
              spec.seed, log=lambda msg: print(f"lblab lab: {msg}", flush=True))
    prompt = shell_cmd._prompt(run)

    def open_cli(meta):
        print(f"lblab lab: lab {lab.number} ({lab.layer}): {lab.title}; handout: "
              f"{lab.handout}\nlblab lab: first step: {lab.first_step}", flush=True)
        prompt(meta)
    run.on_ready = open_cli
    with serving(args.live, lambda line: print(f"lblab lab: {line}", flush=True)) as hub:
        run.live = hub
        meta = run.execute()
    if meta["status"] != "ok":
        raise UsageError(f"the lab did not come up: {meta['failure']} (logs in {work})")
    return 0


# -- run -----------------------------------------------------------------------------------------

def _run(args):
    from experiments import runner

    lab = registry.get(args.number)
    loaded = []
    for name in lab.specs:
        loaded.append(runner.read_spec(registry.spec_path(name), args.overrides))
    runner.check_machine()
    stamp = results_mod.new_stamp(lab.number, args.student)
    top = None
    if len(lab.specs) > 1:
        now = datetime.datetime.now(datetime.timezone.utc)
        top = os.path.join(args.out, f"lab{lab.number}-{now:%Y%m%dT%H%M%S}")
        try:
            os.makedirs(top)
        except FileExistsError:
            raise UsageError(f"{top} already exists; results are never overwritten (wait a "
                             f"second and run again)") from None
        results_mod.write_stamp(top, stamp)
    failed = False
    out_dirs = []
    for name, (spec, raw) in zip(lab.specs, loaded):
        run_args = runner.build_parser().parse_args(
            [registry.spec_path(name), "--out", top or args.out]
            + [f"--set={item}" for item in args.overrides]
            + ([] if args.calibrate else ["--no-calibration"]))
        results_dir = runner.make_results_dir(top or args.out, spec.name)
        results_mod.write_stamp(results_dir, stamp)
        result = runner.run_experiment(spec, results_dir, run_args, runner.progress_for(run_args),
                                       raw)
        failed |= any(m["status"] != "ok" for m in result["metas"]) or not result.get("report")
        out_dirs.append(results_dir)
    folder = top or out_dirs[0]
    print(f"lblab lab: lab {lab.number} results: {folder}")
    print(f"lblab lab: student {stamp['student'] or '(none: use --student ID)'}, run id "
          f"{stamp['run_id']}")
    print(f"lblab lab: grade it with: lblab lab check {lab.number} {folder}")
    return 1 if failed else 0


# -- check ---------------------------------------------------------------------------------------

def grade(lab, results):
    """Return the verdict of lab ``lab`` on loaded ``results`` as a JSON-ready dict (pure)."""
    from experiments.labs.checks import check_true
    stamp = results.stamp or {}
    checks = []
    if results.stamp is not None:
        checks.append(check_true(
            "results are of this lab", stamp.get("lab") == lab.number, stamp.get("lab"),
            f"lab {lab.number}", f"lab.json says lab {stamp.get('lab')}: hand in the folder of "
                                 f"'lblab lab run {lab.number}'"))
    checks += lab.check(results)
    return {"lab": lab.number, "title": lab.title, "results": results.path,
            "student": stamp.get("student"), "run_id": stamp.get("run_id"),
            "made": stamp.get("made"), "stamped": results.stamp is not None,
            "passed": all(c.passed for c in checks), "checks": [c.as_dict() for c in checks]}


def print_verdict(verdict, out=sys.stdout):
    """Print a verdict for people: a header, one block per check, the total."""
    print(f"lab {verdict['lab']}: {verdict['title']}", file=out)
    print(f"results: {verdict['results']}", file=out)
    if verdict["stamped"]:
        print(f"student: {verdict['student'] or '(none)'}   run id: {verdict['run_id']}   "
              f"made: {verdict['made']}", file=out)
    else:
        print("student: (not stamped: no lab.json; the folder was not made by "
              "'lblab lab run --student ID')", file=out)
    for check in verdict["checks"]:
        mark = "PASS" if check["passed"] else "FAIL"
        print(f"  {mark}  {check['name']}: measured {check['value']}, expected "
              f"{check['expected']}", file=out)
        if check["missing"]:
            print(f"        missing: {check['missing']}", file=out)
    passed = sum(c["passed"] for c in verdict["checks"])
    print(f"{passed}/{len(verdict['checks'])} checks pass", file=out)


def _check(args):
    lab = registry.get(args.number)
    verdict = grade(lab, results_mod.load(args.results))
    if args.json:
        print(json.dumps(verdict, indent=1))
    else:
        print_verdict(verdict)
    return 0 if verdict["passed"] else 1


def main(argv=None):
    """Run ``lblab lab``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return {"list": _list, "start": _start, "run": _run, "check": _check}[args.action](args)
