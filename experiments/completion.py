"""Shell completion for ``lblab`` (argcomplete): commands, each command's options, topology
names and, in ``--set`` values, algorithms, modes and topologies.

The dispatcher stays a plain router; only when the shell asks for completions (argcomplete sets
``_ARGCOMPLETE``) does this module import the commands' parsers and join them under one parser.
Enable it with ``eval "$(register-python-argcomplete lblab)"`` (see README).
"""
import argparse
import importlib

from controllers.config import MODES
from lb_apps.balancing import ALGORITHMS
from topologies.graphs import GENERATORS

# --set keys whose values are names from a fixed set: key suffix -> choices
SET_VALUE_CHOICES = {"algorithm": tuple(ALGORITHMS), "mode": tuple(MODES),
                     "topology.name": tuple(GENERATORS)}


def _command_parser(module_name):
    module = importlib.import_module(module_name)
    for name in ("build_parser", "_parser"):
        build = getattr(module, name, None)
        if build is not None:
            return build()
    return None


def set_completer(prefix, **_):
    """Complete ``--set KEY=VALUE``: the value of an algorithm, mode or topology key."""
    key, sep, value = prefix.partition("=")
    if not sep:
        return []
    for suffix, choices in SET_VALUE_CHOICES.items():
        if key == suffix or key.endswith("." + suffix):
            return [f"{key}={c}" for c in choices if c.startswith(value)]
    return []


def _topology_completer(prefix, **_):
    return [name for name in GENERATORS if name.startswith(prefix)]


def _attach(parser):
    """Give known arguments their completers, in this parser and its sub-parsers."""
    for action in parser._actions:  # argparse has no public walk over actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _attach(sub)
        elif action.dest == "overrides":
            action.completer = set_completer
        elif action.dest == "name" and parser.prog.startswith("lblab topo"):
            action.completer = _topology_completer


def build_parser(commands):
    """Return one parser with a sub-parser per command (for completion only).

    Args:
        commands (dict[str, tuple[str, str]]): ``experiments.cli.COMMANDS``.
    Returns:
        argparse.ArgumentParser: ``lblab`` with every command's options.
    """
    parser = argparse.ArgumentParser(prog="lblab")
    parser.add_argument("--version", "-V", action="store_true")
    sub = parser.add_subparsers(dest="command")
    for name, (module_name, text) in commands.items():
        own = _command_parser(module_name)
        if own is None:
            sub.add_parser(name, help=text)
        else:
            sub.add_parser(name, help=text, parents=[own], add_help=False)
    _attach(parser)
    return parser


def complete(commands):
    """Answer the shell's completion request (argcomplete's protocol) and exit."""
    import argcomplete
    argcomplete.autocomplete(build_parser(commands))
