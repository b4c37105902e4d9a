"""Lab 3 end to end on real Open vSwitch and Mininet (root), as a student runs it: ``lblab lab
start 3`` at a ``mininet>`` prompt fed a file of commands (``source FILE``: the first step
printed, a request through the VIP answered, the prompt left at the end of input), then
``lblab lab run 3 --student`` (short: one repetition of 3 s) and ``lblab lab check 3`` on its
folder: every check passes, and the student id and the run id the run printed are the ones
the checker prints and ``lab.json`` holds.
"""
import json
import os
import re
import subprocess
import sys

from experiments.labs import registry

LBLAB = [sys.executable, "-m", "experiments.cli"]
SHORT = ["--set", "repetitions=1", "--set", "duration_s=3"]


def lblab(*args, stdin=None, timeout=180):
    return subprocess.run(LBLAB + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=registry.REPO)


def test_lab_3_start_run_and_check(tmp_path):
    lab = registry.get(3)
    # Mininet's CLI forwards stdin to the running host command, so commands piped one per
    # line can be swallowed by the first one; `source FILE` reads them from a file instead
    steps = tmp_path / "steps.txt"
    steps.write_text("h1 curl -sI http://10.254.0.1/\n")
    start = lblab("lab", "start", "3", stdin=f"source {steps}\n")
    assert start.returncode == 0, start.stderr[-2000:]
    assert f"first step: {lab.first_step}" in start.stdout
    # the request through the VIP was answered by a backend of the lab (X-Backend names it;
    # curl bolds header names on the host's terminal)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", start.stdout)
    assert re.search(r"X-Backend: b[1-4]", shown), shown[-2000:]

    run = lblab("lab", "run", "3", "--student", "s42", "--out", str(tmp_path), *SHORT)
    assert run.returncode == 0, run.stderr[-2000:]
    folder = re.search(r"lab 3 results: (\S+)", run.stdout).group(1)
    run_id = re.search(r"run id ([0-9a-f]{32})", run.stdout).group(1)
    with open(os.path.join(folder, "lab.json"), encoding="utf-8") as fp:
        stamp = json.load(fp)
    assert stamp["student"] == "s42" and stamp["run_id"] == run_id and stamp["lab"] == 3

    check = lblab("lab", "check", "3", folder, "--json")
    verdict = json.loads(check.stdout)
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert check.returncode == 0 and not failed, failed
    assert verdict["student"] == "s42" and verdict["run_id"] == run_id
