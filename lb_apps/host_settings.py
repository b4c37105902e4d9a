"""Settings of the programs that run on lab hosts (``lblab backend``, ``lblab loadgen``): the
``--config`` file and the flags into one validated model, renamed settings refused with their
new name, and the records file checked before a start.

Shared by ``lb_apps.backend.server`` and ``lb_apps.loadgen.client``; the models themselves are
``lb_apps.backend.model.BackendConfig`` and ``lb_apps.loadgen.workload.LoadgenConfig``.
"""
import argparse
import os

from lblab_core import config as C
from lblab_core import loader
from lblab_core.errors import InputError, UsageError


def load_settings_file(path):
    """Return the settings file's value and its key-path line map (``lblab_core.loader``).

    Returns:
        tuple: (the parsed value, ``{key path: line}``); an empty file is ``{}``.
    Raises:
        lblab_core.errors.InputError: unreadable file or bad syntax.
    """
    data, lines = loader.load(path)
    return ({} if data is None else data), lines


def settings_from_argv(parser, model_cls, argv, renamed=None):
    """Parse flags and the ``--config`` file into validated settings (flags override the file).

    Args:
        parser (argparse.ArgumentParser): the command's parser (``argument_default=SUPPRESS``).
        model_cls (type): the settings model (``BackendConfig`` or ``LoadgenConfig``).
        argv (list[str]): the arguments.
        renamed (dict|None): the model's ``RENAMED_SETTINGS``: a file key of an old name is
            refused with the new one.
    Returns:
        tuple: (settings, the flags that are not settings: ``check``, ``json``...).
    Raises:
        lblab_core.errors.InputError: every problem of the file and the flags, one line each.
    """
    args = vars(parser.parse_args(argv))
    extra = {k: args.pop(k) for k in list(args) if k not in model_cls.model_fields
             and k != "config"}
    data, lines, source = {}, None, "command line"
    if "config" in args:
        source = args.pop("config")
        data, lines = load_settings_file(source)
    renamed = renamed or {}
    if isinstance(data, dict) and renamed.keys() & data.keys():
        raise InputError([
            f"{source}{'' if (lines or {}).get((key,)) is None else ':' + str(lines[(key,)])}: "
            f"{key}: renamed {renamed[key][0]} ({renamed[key][1]})"
            for key in data if key in renamed])
    return C.validate_input(model_cls, data, source, lines, flags=args), extra


class _RenamedFlag(argparse.Action):
    """A flag that was renamed: using it is a usage error that names the new flag."""

    def __init__(self, option_strings, dest, new=None, unit=None, **kwargs):
        self.new, self.unit = new, unit
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        raise UsageError(f"{option_string} was renamed {self.new} ({self.unit})")


def add_renamed_flags(parser, renamed):
    """Add a hidden flag per renamed setting that refuses itself with a pointer to the new one.

    Args:
        parser (argparse.ArgumentParser): the command's parser.
        renamed (dict): old setting name -> (new setting name, unit and conversion text), the
            model's ``RENAMED_SETTINGS``.
    """
    for old, (new, unit) in renamed.items():
        parser.add_argument("--" + old.replace("_", "-"), action=_RenamedFlag, dest="renamed_"
                            + old, new="--" + new.replace("_", "-"), unit=unit)


def check_record_path(path):
    """Refuse a records file that exists: results are never overwritten (checked before start).

    Raises:
        lblab_core.errors.UsageError: ``path`` exists.
    """
    if path and os.path.lexists(path):
        raise UsageError(f"--record {path} already exists; results are never overwritten")
