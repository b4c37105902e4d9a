"""``lblab shell SPEC``: a spec's lab up with its backends and a balancer, at ``mininet>``."""
import argparse
import os
import tempfile

from experiments import run_plan as plan
from experiments.lb_prompt import open_prompt
from experiments.live.hub import serving
from experiments.live.server import add_live_flag
from lblab_core.errors import UsageError


def build_parser():
    """Return the argparse parser of ``lblab shell``."""
    parser = argparse.ArgumentParser(
        prog="lblab shell",
        description="Build a spec's topology, start its backends and one of its balancers "
                    "(the first, or --balancer NAME), and open Mininet's CLI with the lb "
                    "commands (lb help: stats, drain, weight, flows, conns). Everything "
                    "stops when you leave the prompt (exit or Ctrl-D).")
    parser.add_argument("spec", metavar="SPEC", help="experiment spec (YAML)")
    parser.add_argument("--balancer", metavar="NAME", help="which balancer to start")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a spec value (repeatable)")
    add_live_flag(parser, "the shell")
    return parser


def main(argv=None):
    """Run ``lblab shell``; returns 0 when the prompt is left."""
    from experiments import runner
    from experiments.run_lab import Run
    from experiments.spec import points, variant

    args = build_parser().parse_args(argv)
    args.repetitions = None
    spec = runner.load(args)
    names = [b.name for b in spec.balancers]
    name = args.balancer or names[0]
    if name not in names:
        raise UsageError(f"--balancer {name!r}: expected one of {', '.join(names)}")
    runner.check_machine()
    balancer = spec.balancer(name)
    point = spec if spec.sweep is None else variant(spec, points(spec)[0])
    work = tempfile.mkdtemp(prefix="lblab-shell-")
    run = Run(point, balancer, name, 1, 0, None, os.path.join(work, "raw"), spec.seed,
              log=lambda msg: print(f"lblab shell: {msg}", flush=True))
    run.on_ready = _prompt(run)
    with serving(args.live, lambda line: print(f"lblab shell: {line}", flush=True)) as hub:
        run.live = hub
        meta = run.execute()
    if meta["status"] != "ok":
        raise UsageError(f"the lab did not come up: {meta['failure']} (logs in {work})")
    return 0


def _prompt(run):
    """Return the callback that opens Mininet's CLI inside the running lab (no workload)."""
    def open_cli(meta):
        from mininet.log import setLogLevel
        # the CLI prints command output at Mininet's "output" level, which the lab keeps quiet
        setLogLevel("output")
        url = plan.service_url(run.balancer, run.graph, run.roles)
        print(f"lblab shell: {run.balancer.name} is serving {url}; backends "
              + ", ".join(f"{n} on {h}" for n, h in run.roles.backends.items())
              + f"; clients {', '.join(run.roles.clients)}. Try: "
              f"{run.roles.clients[0]} curl -s {url}, or lb help for the balancer's commands "
              "(lb stats, lb drain b2, lb weight b3 4, lb flows s1, lb conns)", flush=True)
        open_prompt(run)
    return open_cli
