"""Shell completion through argcomplete's own protocol (COMP_LINE/COMP_POINT, answers in a file),
run against the real ``lblab`` entry point."""
import os
import subprocess
import sys

import pytest

from topologies.graphs import GENERATORS


def complete(line, tmp_path):
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line,
               COMP_POINT=str(len(line)), COMP_TYPE="9", _ARGCOMPLETE_STDOUT_FILENAME=str(out))
    proc = subprocess.run([sys.executable, "-m", "experiments.cli"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # argcomplete shell-escapes and adds a space after a unique answer, as a shell wants
    return {w.rstrip(" ").replace("\\", "") for w in out.read_text().split("\n")} - {""}


def test_subcommands(tmp_path):
    got = complete("lblab ", tmp_path)
    assert {"run", "validate", "topo", "controller", "proxy", "backend", "loadgen"} <= got
    assert complete("lblab va", tmp_path) == {"validate"}


def test_options_of_a_command(tmp_path):
    assert {"--set", "--quiet"} <= complete("lblab validate --", tmp_path)


@pytest.mark.parametrize("action", ["info", "draw"])
def test_topology_names(tmp_path, action):
    assert complete(f"lblab topo {action} ", tmp_path) >= set(GENERATORS)
    assert complete(f"lblab topo {action} fat", tmp_path) == {"fat_tree"}


def test_algorithms_in_set_values(tmp_path):
    got = complete("lblab validate s.yaml --set balancers[0].algorithm=least", tmp_path)
    assert got == {"balancers[0].algorithm=least_connections"}
