"""docs/examples/: one commented, working config per standalone tool, each checked by the tool
itself (the ``--check`` command written at its top, run as a user would) and by its loader."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from controllers.config import load_config
from lb_apps.backend.model import BackendConfig
from lb_apps.l7config import load_l7_config
from lb_apps.loadgen.workload import LoadgenConfig
from lblab_core import loader

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
TOOLS = {"controller.yaml": "controller", "proxy.yaml": "proxy",
         "proxy-own-balancer.yaml": "proxy", "backend.yaml": "backend",
         "loadgen.yaml": "loadgen"}
_CHECK = re.compile(r"^#\s+(lblab \S+ --config \S+ --check)\s*(#.*)?$")


def test_every_tool_has_an_example_and_the_readme_lists_each_file():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(TOOLS)
    assert set(TOOLS.values()) == {"controller", "proxy", "backend", "loadgen"}
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name, tool in TOOLS.items():
        assert f"[{name}]({name})" in readme
        assert f"lblab {tool} --config docs/examples/{name} --check" in readme


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_the_check_command_at_the_top_passes(name):
    lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    commands = [m.group(1) for m in map(_CHECK.match, lines) if m]
    assert commands == [f"lblab {TOOLS[name]} --config docs/examples/{name} --check"]
    argv = shlex.split(commands[0])[1:]
    out = subprocess.run([sys.executable, "-m", "experiments.cli", *argv], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "error" not in out.stderr


def test_each_loader_takes_its_example():
    config = load_config(EXAMPLES / "controller.yaml")
    assert [(s.name, s.mode, s.algorithm) for s in config.services] == [
        ("web", "l4", "weighted_round_robin")]
    proxy = load_l7_config(str(EXAMPLES / "proxy.yaml"))
    assert list(proxy.groups) == ["default", "static"] and len(proxy.routes) == 1
    own = load_l7_config(str(EXAMPLES / "proxy-own-balancer.yaml"))
    template = ROOT / "docs" / "labs" / "lab8" / "template" / "my_balancer.py"
    assert own.groups["default"].algorithm == f"file:{template}:MyBalancer"
    for name, model in (("backend.yaml", BackendConfig), ("loadgen.yaml", LoadgenConfig)):
        data, _ = loader.load(EXAMPLES / name)
        settings = model.model_validate(data)  # closed models: an unknown key is refused
        assert {key: getattr(settings, key) for key in ("seed",)} == {"seed": 1}


def test_a_broken_example_fails_its_check(tmp_path):
    """The check can fail: the same example with a key misspelt is refused by the tool."""
    text = (EXAMPLES / "loadgen.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "loadgen.yaml"
    bad.write_text(text.replace("think_ms: 50", "think_sec: 50"), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "loadgen", "--config",
                          str(bad), "--check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert "think_sec" in out.stderr and "Traceback" not in out.stderr
