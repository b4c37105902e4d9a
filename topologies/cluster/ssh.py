"""SSH command lines to a server of a cluster (pure, but for ``run`` and ``open_agent``).

A server is an SSH destination: a ``Host`` alias of the ``ssh -F`` config (port, user, key,
``SetEnv LBLAB_STATE_DIR=…`` live there), or ``localhost`` (this machine, no SSH). Commands run
as the SSH user, root: there is no ``sudo`` anywhere. Remote commands are one shell-quoted
string (``ssh`` joins its arguments with spaces; the cluster edition did not quote them).
"""
import os
import shlex
import subprocess
import sys

from topologies.cluster.placement import LOCAL

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR")
ENV_CONFIG = "LBLAB_SSH_CONFIG"


def is_local(server):
    return server in (LOCAL, None, "")


def config_path(explicit=None):
    """The ``ssh -F`` file: ``explicit``, else ``$LBLAB_SSH_CONFIG``, else None (ssh's own)."""
    path = explicit or os.environ.get(ENV_CONFIG) or None
    return os.path.abspath(path) if path else None


def ssh_base(server, config=None, tty=False):
    """Return the ``ssh`` argv prefix that runs a command on ``server``."""
    cmd = ["ssh"]
    if config:
        cmd += ["-F", config]
    cmd += list(SSH_OPTIONS)
    cmd += ["-tt"] if tty else ["-T"]
    return cmd + [server]


def remote(server, argv, config=None, tty=False):
    """Return the argv that runs ``argv`` on ``server`` (itself when local)."""
    if is_local(server):
        return list(argv)
    return ssh_base(server, config, tty) + [shlex.join(str(a) for a in argv)]


def python_argv(module, *args):
    """``python -m module args``, with this interpreter's path (the same path on every server)."""
    return [sys.executable, "-m", module] + list(args)


def run(server, argv, config=None, input=None, timeout=60):
    """Run ``argv`` on ``server``; return the CompletedProcess (text, output captured)."""
    return subprocess.run(remote(server, argv, config), input=input, capture_output=True,
                          text=True, timeout=timeout)
