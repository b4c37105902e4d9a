"""`python -m <module>` entry points of the L7 processes started on Mininet hosts.

A module without a ``__main__`` block imports and exits 0 doing nothing, so a backend started
that way on a host silently never listens (seen with ``lb_apps.backend.server``).
"""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module, prog", [("lb_apps.backend.server", "lblab backend"),
                                          ("lb_apps.proxy.server", "lblab proxy"),
                                          ("lb_apps.loadgen.client", "lblab loadgen"),
                                          ("controllers.launcher", "lblab controller")])
def test_python_dash_m_runs_the_command(module, prog):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {prog}"), out.stdout


def test_python_dash_m_backend_reports_usage_errors_in_one_line():
    out = subprocess.run([sys.executable, "-m", "lb_apps.backend.server", "--port", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
