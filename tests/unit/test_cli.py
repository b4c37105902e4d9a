"""The lblab CLI skeleton: dispatch, --version, topo commands and their errors (no root)."""
import json
import os
import subprocess
import sys

import pytest

from experiments import cli, topo_cmd
from lblab_core.errors import UsageError

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
    (["topo", "draw", "single", "-o", "x.gif"],
     "-o/--output: 'x.gif': expected a file ending in .png, .svg or .pdf, not '.gif'"),
    (["topo", "draw", "single", "-o", "lab"],
     "-o/--output: 'lab': expected a file ending in .png, .svg or .pdf, but it has no extension"),
    (["topo", "draw", "single", "-o", "/nonexistent/x.png"],
     "-o/--output: '/nonexistent/x.png': cannot write it: '/nonexistent' does not exist"),
    (["topo", "draw", "single", "-o", "/etc/hostname/x.svg"],
     "-o/--output: '/etc/hostname/x.svg': cannot write it: '/etc/hostname' is not a folder"),
])
def test_topo_errors(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_topo_draw_to_a_folder_is_a_usage_error(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UsageError, match=r"d\.png'?: is a folder; expected a file name"):
        topo_cmd.check_output(str(tmp_path / "d.png"))


def test_topo_list_shows_whole_first_sentences_without_markup(capsys):
    assert cli.main(["topo", "list"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and "`" not in out
    flat = " ".join(out.split())
    assert ("k/2 hosts per edge switch — 5k^2/4 switches, k^3/4 hosts. params: k=4" in flat)
    assert "each with hosts_per_switch hosts. params:" in flat
    assert max(len(line) for line in out.splitlines()[:-1]) <= topo_cmd.LIST_WIDTH


@pytest.mark.parametrize("doc, sentence", [
    ("Two switches, ``hosts_per_side`` hosts.\n\n    Args: x",
     "Two switches, hosts_per_side hosts."),
    ("A k-ary tree (Al-Fares et al. 2008): many\n    switches. Second one.",
     "A k-ary tree (Al-Fares et al. 2008): many switches."),
    ("Built by :func:`topologies.graphs.build` from `params`. More.",
     "Built by topologies.graphs.build from params."),
    (None, ""),
])
def test_first_sentence(doc, sentence):
    assert topo_cmd.first_sentence(doc) == sentence


@pytest.mark.parametrize("argv", [["help", "run"], ["help", "topo", "draw"], ["help", "loadgen"]])
def test_help_command_prints_that_commands_help(argv):
    proc = run(*argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run(*argv[1:], "--help").stdout
    assert proc.stdout.startswith(f"usage: lblab {' '.join(argv[1:])} ")


def test_help_alone_prints_the_top_level_help_and_unknown_is_an_error():
    proc = run("help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: lblab [--version]")
    bad = run("help", "frobnicate")
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr


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
