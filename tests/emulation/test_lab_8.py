"""Lab 8 (your own balancer) end to end on real Open vSwitch and Mininet (root), as a student
does it, with the handout's template balancer (docs/labs/lab8/template/my_balancer.py):

- ``lblab lab run 8 --student`` with the template at L4 (controller) and L7 (builtin proxy),
  then ``lblab lab check 8 DIR --json``: every check passes, the student and run id are the
  ones the run printed, and the folder keeps the balancer file it ran (``inputs/``);
- the same lab with a wrong configuration, equal picks (``round_robin``) at both layers, for a
  shorter measurement: the checker fails it, on the weighted shares of b1 and b3 and nothing
  else;
- ``lblab lab start 8`` at its ``mininet>`` prompt on a pseudo-terminal (pexpect), as a
  student types: a request from h1 answered through the proxy, ``lb stats`` counting it,
  ``exit``; lblab exits 0 and leaves nothing behind.

Why a pty: Mininet's CLI prints a host command's output through its logger, on stderr, and
forwards its own stdin to the running host command; with stdin a pipe at end of input it also
spins (poll reports the hang-up at once, every time). A pty is what a student's terminal is:
both streams on it, and the CLI's tty handling in effect. (The earlier test, which fed the
prompt through a pipe and looked for the host command's answer on stdout, failed in CI.)

Run it under the lab lock: ``flock /tmp/lblab-emulation.lock .venv/bin/python -m pytest
tests/emulation/test_lab_8.py -q``.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

import pexpect
import psutil

from experiments.labs import registry as labs
from topologies import registry

LBLAB = [sys.executable, "-m", "experiments.cli"]
TEMPLATE = os.path.join(labs.REPO, "docs", "labs", "lab8", "template", "my_balancer.py")
MINE = [f"--set=balancers.{i}.algorithm={{file: {TEMPLATE}, class: MyBalancer}}"
        for i in (0, 1)]
EQUAL = [f"--set=balancers.{i}.algorithm=round_robin" for i in (0, 1)]
# The wrong run is graded on the shares before the drain (at 4 s): 1 s after it is enough.
SHORT = ["--set=warmup_s=0.5", "--set=duration_s=5"]
# Deadlines against a hang, not timings: the lab lock may be held by another lab for a while.
RUN_SEC = 600
PROMPT_SEC = 300
ANSWER_SEC = 60


def lblab(*args):
    return subprocess.run(LBLAB + list(args), capture_output=True, text=True, timeout=RUN_SEC,
                          cwd=labs.REPO)


def run_and_check(tmp_path, *options):
    """``lblab lab run 8`` with ``options``, then ``lblab lab check 8 --json`` of its folder."""
    run = lblab("lab", "run", "8", "--out", str(tmp_path), *options)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    folder = re.search(r"lab 8 results: (\S+)", run.stdout).group(1)
    run_id = re.search(r"run id ([0-9a-f]{32})", run.stdout).group(1)
    check = lblab("lab", "check", "8", folder, "--json")
    assert check.returncode in (0, 1), check.stderr
    verdict = json.loads(check.stdout)
    assert check.returncode == (0 if verdict["passed"] else 1)
    return folder, run_id, verdict


def sha256(path):
    with open(path, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


def test_lab_8_with_the_template_balancer_passes_every_check(tmp_path):
    folder, run_id, verdict = run_and_check(tmp_path, "--student", "s42", *MINE)
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert verdict["passed"] and not failed, failed
    assert verdict["student"] == "s42" and verdict["run_id"] == run_id
    # both layers graded: the weighted shares, the drain, requests after it, no errors
    names = [c["name"] for c in verdict["checks"]]
    for layer in ("l4_mine", "l7_mine"):
        assert sum(n.startswith(f"{layer}-r1: ") for n in names) == 6, names
    # the file that ran is in the folder, as it was
    with open(os.path.join(folder, "inputs", "balancers.json")) as fp:
        index = json.load(fp)
    assert [e["at"] for e in index["files"]] == ["balancers[0].algorithm",
                                                 "balancers[1].algorithm"]
    assert sha256(os.path.join(folder, "inputs", "my_balancer.py")) == sha256(TEMPLATE)
    with open(os.path.join(folder, "manifest.json")) as fp:
        assert json.load(fp)["calibration"]["skipped"] is True   # lab run's default


def test_lab_8_with_equal_picks_fails_on_the_weighted_shares(tmp_path):
    _, _, verdict = run_and_check(tmp_path, *EQUAL, *SHORT)
    assert not verdict["passed"]
    failed = {c["name"] for c in verdict["checks"] if not c["passed"]}
    # weights 1:2:3 ask for 0.167, 0.333, 0.5; equal picks give each a third: b1 and b3 miss
    # by 0.17 at both layers, b2 is right, and the drain is honoured
    for layer in ("l4_mine", "l7_mine"):
        for backend in ("b1", "b3"):
            assert any(n.startswith(f"{layer}-r1: {backend}'s share before the drain")
                       for n in failed), (layer, backend, failed)
    assert all("share before the drain" in n for n in failed), failed


def leftovers():
    """What a lab can leave on the machine: tagged bridges, root-namespace links, registry
    records, Mininet host shells."""
    runs = os.path.join(registry.state_dir(), "runs")
    shells = {p.pid for p in psutil.process_iter(["cmdline"])
              if any("mininet:" in part for part in p.info["cmdline"] or ())}
    return {"bridges": set(registry.tagged_bridges()), "links": registry.existing_links(),
            "records": set(os.listdir(runs)) if os.path.isdir(runs) else set(),
            "shells": shells}


def test_lab_8_start_at_the_prompt_on_a_terminal(tmp_path):
    before = leftovers()
    lab = labs.get(8)
    env = dict(os.environ, HOME=str(tmp_path))   # Mininet's CLI keeps ~/.mininet_history
    child = pexpect.spawn(LBLAB[0], LBLAB[1:] + ["lab", "start", "8"], cwd=labs.REPO, env=env,
                          encoding="utf-8", codec_errors="replace", timeout=PROMPT_SEC,
                          dimensions=(50, 250))
    try:
        child.expect_exact(f"first step: {lab.first_step}")
        child.expect_exact("mininet> ")
        # a request through the proxy (10.0.0.3): the host command's answer on the terminal
        child.sendline("h1 curl -s -m 5 --retry 5 --retry-connrefused -D - -o /dev/null "
                       "http://10.0.0.3/")
        child.expect(r"(?i)x-backend:\s*(b[123])", timeout=ANSWER_SEC)
        child.expect_exact("mininet> ", timeout=ANSWER_SEC)
        child.sendline("lb stats")
        child.expect(r"builtin proxy: \d+ worker\(s\), algorithm weighted_round_robin",
                     timeout=ANSWER_SEC)
        child.expect_exact("mininet> ", timeout=ANSWER_SEC)
        table = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", child.before)
        rows = {m.group(1): m.groups()[1:] for m in re.finditer(
            r"(?m)^(b[123])\s+(h\d+)\s+(\d+)\s+(\d+)\s", table)}
        assert sorted(rows) == ["b1", "b2", "b3"], table
        assert [rows[b][1] for b in ("b1", "b2", "b3")] == ["1", "2", "3"], table   # weights
        assert sum(int(r[2]) for r in rows.values()) >= 1, table                  # requests
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)
    after = leftovers()
    for key, found in after.items():
        assert found - before[key] == set(), (key, found - before[key])
