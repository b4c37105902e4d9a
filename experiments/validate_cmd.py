"""``lblab validate SPEC…``: check experiment specs without running them; ``--schema``
prints their JSON Schema."""
import argparse
import sys

from experiments import spec as spec_mod


def build_parser():
    """Return the argparse parser of ``lblab validate``."""
    parser = argparse.ArgumentParser(
        prog="lblab validate",
        description="Check experiment specs (YAML) without running them: every problem is "
                    "reported with file, line, key path and the allowed values.")
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="spec file(s)")
    parser.add_argument("--schema", action="store_true",
                        help=f"print the spec's JSON Schema (regenerate "
                             f"{spec_mod.SCHEMA_PATH} with: lblab validate --schema > "
                             f"{spec_mod.SCHEMA_PATH})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="override a spec value (repeatable), e.g. workload.users=8")
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    return parser


def describe(spec):
    """Return a one-line summary of a valid spec (what would run and for how long).

    Args:
        spec (experiments.spec.Spec): a validated spec.
    Returns:
        str: e.g. ``quickstart: 4 balancers x 1 point x 2 reps = 8 runs, ~3.2 min``.
    """
    points = len(spec_mod.points(spec))
    runs = len(spec.balancers) * points * spec.repetitions
    # ~6 s per run for building the lab and starting processes, measured on a 2-core VM.
    seconds = runs * (spec.warmup_s + spec.duration_s + 6.0)
    return (f"{spec.name}: {len(spec.balancers)} balancers x {points} point(s) x "
            f"{spec.repetitions} rep(s) = {runs} runs, about {seconds / 60:.1f} min")


def main(argv=None):
    """Validate each spec; print ``OK`` lines or every problem (or, with ``--schema``, the
    spec's JSON Schema).

    Returns:
        int: 0 when all specs are valid, 2 otherwise.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.schema:
        if args.specs or args.overrides:
            parser.error("--schema takes no spec and no --set")
        sys.stdout.write(spec_mod.schema_text())
        return 0
    if not args.specs:
        parser.error("give at least one SPEC (or --schema)")
    status = 0
    for path in args.specs:
        try:
            spec = spec_mod.load_spec(path, args.overrides)
        except spec_mod.SpecError as exc:
            for line in exc.errors:
                print(line, file=sys.stderr)
            print(f"lblab validate: {path}: {len(exc.errors)} problem(s)", file=sys.stderr)
            status = 2
            continue
        if not args.quiet:
            print(f"OK {path}: {describe(spec)}")
    return status
