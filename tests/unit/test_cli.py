"""The lblab CLI skeleton: dispatch, --version, topo commands and their errors (no root)."""
import json
import os
import subprocess
import sys

import pytest

from experiments import cli

LBLAB = [sys.executable, "-m", "experiments.cli"]


def run(*args):
    return subprocess.run(LBLAB + list(args), capture_output=True, text=True, timeout=60)


def test_version_and_help():
    assert run("--version").stdout.strip() == "lblab 0.1.0"
    out = run("--help").stdout
    for command in ("doctor", "topo", "clean", "run", "report"):
        assert f"  {command}" in out


def test_unknown_command_is_a_clear_error():
    proc = run("frobnicate")
    assert proc.returncode == 2
    assert "unknown command 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["doctor", "topo", "clean"])
def test_every_command_has_help(command):
    proc = run(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: lblab {command}" in proc.stdout


def test_topo_info_json(capsys):
    assert cli.main(["topo", "info", "fat_tree", "--param", "k=4", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["switches"], info["hosts"], info["links"]) == (20, 16, 48)


def test_topo_info_param_types(capsys):
    assert cli.main(["topo", "info", "dumbbell", "-p", "bottleneck_bw=2.5", "-p", "delay=5ms",
                     "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"]["bottleneck_bw"] == 2.5
    assert info["link_features"] == ["bw", "delay"]


@pytest.mark.parametrize("args, message", [
    (["topo", "info", "fat_tree", "-p", "k=5"], "fat_tree: parameter 'k' must be even, got 5"),
    (["topo", "info", "fat_tree", "-p", "k"], "--param expects key=value, got 'k'"),
    (["topo", "info", "ring"], "unknown topology 'ring'"),
    (["topo", "draw", "single", "-o", "x.gif"], "must end in .png, .svg or .pdf"),
])
def test_topo_errors(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_topo_draw_writes_png(tmp_path):
    out = tmp_path / "lab.png"
    proc = run("topo", "draw", "lb_lab", "-p", "bw=100", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_doctor_json_lists_checks():
    proc = run("doctor", "--json")
    facts = json.loads(proc.stdout)
    names = {c["name"] for c in facts["checks"]}
    assert {"root", "openvswitch", "datapath", "tc htb", "tc netem", "mininet", "os-ken",
            "haproxy", "nginx", "wrk", "iperf3"} <= names
    for c in facts["checks"]:
        assert c["ok"] or c["fix"], c


def test_clean_needs_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["clean"]) == 2
    assert "needs root" in capsys.readouterr().err
