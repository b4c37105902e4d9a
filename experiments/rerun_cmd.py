"""``lblab rerun RESULTS_DIR``: run a results folder's batch again into a new results folder.

The new batch is the old one's spec as it was written (``spec.yaml`` in the folder, not the
file it came from, which may have changed since), with the same ``--set`` overrides,
``--repetitions``, run order and order seed. ``styles.json`` (each balancer's colour and
hatch in the figures) is copied over, so both reports draw a balancer alike and ``lblab
compare OLD NEW`` reads naturally. The new manifest names the folder it reran
(``rerun_of``). A batch that skipped the model twin's calibration skips it again. A balancer
from a file runs from the old folder's copy (``inputs/``, written by ``lblab run``): one more
``--set`` per use, recorded in the new manifest like the others.
"""
import argparse
import os
import shutil

from experiments import metadata, runner
from lb_apps.custom_balancer import copied_overrides

STYLES_FILE = "styles.json"


def build_parser():
    """Return the argparse parser of ``lblab rerun``."""
    parser = argparse.ArgumentParser(
        prog="lblab rerun",
        description="Run a results folder's batch again into a new results folder: its "
                    "spec.yaml as written, with the same overrides, order mode and order "
                    "seed (and no calibration if it had none); balancers from a file run "
                    "from the folder's copies (inputs/); "
                    "styles.json (balancer colours) is copied over. Then compare the two "
                    "with lblab compare OLD NEW.")
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="a results folder made by lblab run")
    parser.add_argument("--out", metavar="DIR",
                        help="parent folder of the new results folder (default: the parent "
                             "of RESULTS_DIR)")
    parser.add_argument("--quiet", action="store_true", help="no progress, only the report path")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary (results folder, per-configuration means)")
    return parser


def rerun_argv(man, results_dir, out=None, copies=()):
    """Return the ``lblab run`` arguments that run a folder's batch again (pure).

    Args:
        man (dict): the folder's ``manifest.json`` (format 2).
        results_dir (str): the folder.
        out (str|None): parent of the new results folder (default: the folder's parent).
        copies (iterable[str]): ``--set`` items pointing balancers from a file at the folder's
            copies (``custom_balancer.copied_overrides``), after the recorded overrides.
    Returns:
        list[str]: e.g. ``[DIR/spec.yaml, --set, k=v, --order, shuffled, --out, PARENT]``;
        ``--order-seed`` only when the batch was given one (else the spec's seed is used, as
        then); ``--no-calibration`` when the batch skipped it (``lblab lab run``'s default).
    """
    given = man.get("args") or {}
    order = man.get("order") or {}
    argv = [os.path.join(results_dir, man.get("spec_verbatim") or metadata.SPEC_FILE)]
    for item in list(given.get("overrides") or []) + list(copies):
        argv += ["--set", item]
    if given.get("repetitions") is not None:
        argv += ["--repetitions", str(given["repetitions"])]
    argv += ["--order", order.get("mode") or runner.ORDERS[0]]
    if order.get("seed_from") == "--order-seed":
        argv += ["--order-seed", str(order["seed"])]
    if (man.get("calibration") or {}).get("skipped"):
        argv.append("--no-calibration")
    parent = os.path.dirname(os.path.abspath(results_dir))
    argv += ["--out", out if out is not None else parent]
    return argv


def main(argv=None):
    """Run ``lblab rerun``.

    Returns:
        int: as ``lblab run``: 0 when every run succeeded, 1 when some failed.
    """
    args = build_parser().parse_args(argv)
    old = args.results_dir.rstrip("/") or "/"
    man = runner.read_manifest(old)
    copies = copied_overrides(old)
    run_args = runner.build_parser().parse_args(
        rerun_argv(man, old, args.out, copies) + (["--quiet"] if args.quiet else [])
        + (["--json"] if args.json else []))
    spec, raw = runner.read_spec(run_args.spec, runner.overrides_of(run_args))
    runner.check_machine()
    results_dir = runner.make_results_dir(run_args.out, spec.name)
    styles = os.path.join(old, STYLES_FILE)
    if os.path.isfile(styles):
        shutil.copyfile(styles, os.path.join(results_dir, STYLES_FILE))
    say = runner.progress_for(run_args)
    say.log("lblab run " + " ".join(rerun_argv(man, old, args.out, copies)))
    result = runner.run_experiment(spec, results_dir, run_args, say, raw,
                                   extra={"rerun_of": os.path.abspath(old)})
    return runner.finish(run_args, result, results_dir)
