"""The one entry-point wrapper: a command's ``main(argv)`` with lblab's error contract.

User errors (:class:`lblab_core.errors.UsageError`) print one line per problem on stderr as
``lblab <command>: error: <message>`` and exit 2, never a traceback; Ctrl-C exits 130. Used by
the ``lblab`` dispatcher and by every module that a virtual host runs with ``python -m``.
"""
import sys

from lblab_core.errors import UsageError


def run(command, main, argv=None):
    """Run ``main(argv)`` and turn user errors into one-line messages.

    Args:
        command (str): the command's name, as in ``lblab <command>``.
        main (Callable[[list[str]], int|None]): the command's entry point.
        argv (list[str]|None): its arguments (default ``sys.argv[1:]``).
    Returns:
        int: the process exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(argv) or 0
    except UsageError as exc:
        print(f"lblab {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lblab {command}: interrupted", file=sys.stderr)
        return 130
