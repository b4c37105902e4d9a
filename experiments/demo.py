"""``lblab demo``: run experiments/specs/quickstart.yaml and print the report's path."""
import argparse
import os

from experiments import runner

SPECS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs")
QUICKSTART = os.path.join(SPECS_DIR, "quickstart.yaml")


def main(argv=None):
    """Run quickstart.yaml with ``lblab run`` and print where the report is.

    Returns:
        int: ``lblab run``'s exit status.
    """
    parser = argparse.ArgumentParser(
        prog="lblab demo",
        description="Run the default experiment (experiments/specs/quickstart.yaml: lb_lab with "
                    "4 clients and 4 backends of capacities 1:1:2:4, two L4 and two L7 "
                    "balancers; under 3 minutes on 2 cores) and print the report's path.")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="parent folder of the results folder (default: results)")
    parser.add_argument("--quiet", action="store_true", help="print only the report path")
    args = parser.parse_args(argv)
    argv = [QUICKSTART, "--out", args.out] + (["--quiet"] if args.quiet else [])
    return runner.main(argv)
