# PYTHON_ARGCOMPLETE_OK (argcomplete's marker: this entry point answers completion requests)
"""The lblab command line: one entry point that dispatches to each command's own ``main(argv)``.

Each command lives in the module that owns it and exposes ``main(argv) -> int`` with an argparse
parser whose ``prog`` is ``lblab <command>``; this file only routes. Errors that are the user's
(bad spec, bad parameter, missing root) are printed as one clear line and exit 2, never as a
traceback (``lblab_core.entry.run``, the same wrapper each host process's ``__main__`` uses).
"""
import importlib
import os
import sys

from experiments import __version__
from lblab_core import entry

# command -> (module, one-line help). Modules are imported only when their command runs, so
# `lblab --help` stays fast and a command's heavy imports (os-ken, Mininet) stay in its own shell.
COMMANDS = {
    "doctor": ("experiments.doctor", "what this machine can emulate (datapath, tc qdiscs, engines)"),
    "topo": ("experiments.topo_cmd", "list, describe and draw topologies"),
    "clean": ("experiments.clean_cmd", "remove what lblab left behind (and nothing else)"),
    "run": ("experiments.runner", "run an experiment: spec in, results folder out"),
    "rerun": ("experiments.rerun_cmd", "run a results folder's batch again into a new folder"),
    "validate": ("experiments.validate_cmd", "check an experiment spec without running it"),
    "report": ("experiments.report", "rebuild summary, plots and report.html from raw/"),
    "compare": ("experiments.compare", "put several runs side by side"),
    "model": ("experiments.model.cli", "predict an HTTP spec with the model twin (no root)"),
    "view": ("experiments.view_cmd", "replay a results folder in the live view's page (no root)"),
    "shell": ("experiments.shell_cmd", "bring a spec's lab up and open a mininet> prompt"),
    "lab": ("experiments.labs.cmd", "course labs: list, start, run and check (docs/labs/)"),
    "demo": ("experiments.demo", "run the default experiment (experiments/specs/quickstart.yaml)"),
    "controller": ("controllers.launcher", "run the os-ken L2/L3/L4 balancer (OpenFlow 1.3)"),
    "proxy": ("lb_apps.proxy.server", "run the L7 reverse proxy"),
    "backend": ("lb_apps.backend.server", "run a tunable HTTP backend"),
    "loadgen": ("lb_apps.loadgen.client", "run the HTTP load generator"),
    "engine": ("lb_apps.engines.proc", "render HAProxy/nginx configs from an L7 spec"),
}


def _usage():
    width = max(len(c) for c in COMMANDS)
    lines = [
        "usage: lblab [--version] [--help] <command> [<args>]",
        "",
        "lblab: a network lab emulator for load balancing (Mininet + Open vSwitch + os-ken).",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run 'lblab <command> --help' or 'lblab help <command>' for a command's options."]
    return "\n".join(lines)


def main(argv=None):
    """Run the lblab command line.

    Args:
        argv (list[str]|None): arguments without the program name (default ``sys.argv[1:]``).
    Returns:
        int: the process exit status.
    """
    if argv is None and "_ARGCOMPLETE" in os.environ:  # the shell asks for completions
        from experiments import completion
        completion.complete(COMMANDS)  # prints them and exits
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["help"] and len(argv) > 1:  # `lblab help topo draw`: `lblab topo draw --help`
        argv = argv[1:] + ["--help"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"lblab {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"lblab: error: unknown command {command!r}; expected one of "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"lblab: error: the '{command}' command is not built yet ({module_name})",
                  file=sys.stderr)
            return 2
        raise
    return entry.run(command, module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
