"""A balancer from a file travels with its results folder (lab 8's workflow): ``lblab run``
copies each balancer file into ``inputs/`` with an index, and ``lblab rerun`` and ``lblab run
--resume`` run the copies, so a spec naming ``{file: my_lb.py}`` relative to its own folder (or
a file edited or deleted since) reruns as it ran. The batches run with the fake Run of
tests/unit/test_resume.py (no lab, no root)."""
import hashlib
import json
import os
import shutil

import pytest

from experiments import rerun_cmd, runner
from lb_apps import custom_balancer as cb
from lblab_core.errors import UsageError
from tests.unit.test_resume import FakeRun, Say, fake, manifest, start_batch  # noqa: F401

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "labs", "lab8",
                        "template", "my_balancer.py")
SPEC = """\
name: mine
seed: 3
topology: {name: lb_lab, params: {clients: 1}}
backends: 3
balancers:
  - {name: l4_mine, layer: l4, mode: l4, algorithm: {file: my_lb.py, class: MyBalancer}}
  - {name: l7_mine, layer: l7, engine: builtin, algorithm: {file: my_lb.py, class: MyBalancer}}
  - {name: l7_rr, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 1}
repetitions: 2
warmup_s: 0
duration_s: 1
"""


def sha256(path):
    with open(path, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


@pytest.fixture
def batch(tmp_path, fake):  # noqa: F811 - the fixture imported above
    """A batch whose spec names my_lb.py beside it (L4 and L7) and, by --set, a second file
    of the same name elsewhere given by its absolute path."""
    shutil.copyfile(TEMPLATE, tmp_path / "my_lb.py")
    other = tmp_path / "elsewhere"
    other.mkdir()
    text = open(TEMPLATE).read().replace("class MyBalancer", "class Other")
    (other / "my_lb.py").write_text(text)
    spec, raw, args, results = start_batch(
        tmp_path, text=SPEC, overrides=[f"balancers.2.algorithm=file:{other}/my_lb.py:Other"])
    return spec, raw, args, results


def test_the_pure_walk_finds_every_file_with_its_key_path():
    data = {"balancers": [
        {"name": "a", "algorithm": "file:/x/a.py:A", "l7": None},
        {"name": "b", "algorithm": "round_robin",
         "l7": {"groups": {"api": {"algorithm": "file:/y/a.py:B"}}}}]}
    assert cb.file_algorithms(data) == [
        (("balancers", 0, "algorithm"), "file:/x/a.py:A"),
        (("balancers", 1, "l7", "groups", "api", "algorithm"), "file:/y/a.py:B")]
    assert cb.file_algorithms({"algorithm": "round_robin"}) == []
    assert cb.copy_name("/x/a.py", set()) == "a.py"
    assert cb.copy_name("/y/a.py", {"a.py"}) == "a-2.py"
    assert cb.copy_name("/z/a.py", {"a.py", "a-2.py"}) == "a-3.py"


def test_run_copies_each_balancer_file_once_into_inputs(tmp_path, batch):
    spec, raw, args, results = batch
    runner.run_experiment(spec, results, args, Say(), raw)
    with open(os.path.join(results, "inputs", "balancers.json")) as fp:
        index = json.load(fp)
    assert index["v"] == 1
    assert [(e["at"], e["class"], e["copy"]) for e in index["files"]] == [
        ("balancers[0].algorithm", "MyBalancer", "my_lb.py"),
        ("balancers[1].algorithm", "MyBalancer", "my_lb.py"),
        ("balancers[2].algorithm", "Other", "my_lb-2.py")]
    assert index["files"][0]["file"] == str(tmp_path / "my_lb.py")
    assert sorted(os.listdir(os.path.join(results, "inputs"))) == [
        "balancers.json", "my_lb-2.py", "my_lb.py"]
    for entry in index["files"]:
        copy = os.path.join(results, "inputs", entry["copy"])
        assert sha256(copy) == sha256(entry["file"]) == entry["sha256"]


def test_a_spec_without_balancer_files_gets_no_inputs_folder(tmp_path, fake):  # noqa: F811
    spec, raw, args, results = start_batch(tmp_path)
    runner.run_experiment(spec, results, args, Say(), raw)
    assert not os.path.exists(os.path.join(results, "inputs"))
    assert cb.copied_overrides(results) == []


def test_rerun_runs_the_copies_when_the_originals_are_gone(tmp_path, batch, monkeypatch):
    spec, raw, args, results = batch
    runner.run_experiment(spec, results, args, Say(), raw)
    ran = sha256(os.path.join(results, "inputs", "my_lb.py"))
    os.remove(tmp_path / "my_lb.py")
    shutil.rmtree(tmp_path / "elsewhere")
    monkeypatch.setattr(runner, "check_machine", lambda: None)
    assert rerun_cmd.main([results, "--out", str(tmp_path / "again"), "--quiet"]) == 0
    (new,) = os.listdir(tmp_path / "again")
    new = os.path.join(tmp_path / "again", new)
    given = manifest(new)["args"]["overrides"]
    # the recorded override first, then one per use pointing at the old folder's copy
    assert given[0].startswith("balancers.2.algorithm=file:")
    copies = os.path.join(os.path.abspath(results), "inputs")
    assert given[1:] == [
        f'balancers[0].algorithm="file:{copies}/my_lb.py:MyBalancer"',
        f'balancers[1].algorithm="file:{copies}/my_lb.py:MyBalancer"',
        f'balancers[2].algorithm="file:{copies}/my_lb-2.py:Other"']
    algorithms = [b["algorithm"] for b in manifest(new)["spec"]["balancers"]]
    assert algorithms == [f"file:{copies}/my_lb.py:MyBalancer"] * 2 + [
        f"file:{copies}/my_lb-2.py:Other"]
    # the rerun keeps its own copies: a rerun of the rerun needs neither folder's originals
    assert sha256(os.path.join(new, "inputs", "my_lb.py")) == ran


def test_without_its_copies_a_rerun_is_refused_in_one_line(tmp_path, batch, monkeypatch):
    spec, raw, args, results = batch
    runner.run_experiment(spec, results, args, Say(), raw)
    os.remove(os.path.join(results, "inputs", "my_lb-2.py"))
    monkeypatch.setattr(runner, "check_machine", lambda: None)
    with pytest.raises(UsageError, match=r"balancers\[2\]\.algorithm: the copy 'my_lb-2.py' of "
                                         r".*elsewhere/my_lb.py is not in inputs/"):
        rerun_cmd.main([results, "--quiet"])
    # and what the copies are for: the spec.yaml kept in the folder names my_lb.py beside it,
    # which is not there (this is how a rerun failed before the copies)
    shutil.rmtree(os.path.join(results, "inputs"))
    with pytest.raises(UsageError, match=r"my_lb.py: cannot read the balancer file"):
        rerun_cmd.main([results, "--quiet"])
    os.makedirs(os.path.join(results, "inputs"))
    with open(os.path.join(results, "inputs", "balancers.json"), "w") as fp:
        fp.write("{not json")
    with pytest.raises(UsageError, match=r"balancers.json: cannot read it: .*expected the "
                                         r"index lblab run wrote"):
        rerun_cmd.main([results, "--quiet"])


def test_resume_runs_the_copies_too(tmp_path, batch):
    spec, raw, args, results = batch
    FakeRun.interrupt_at = "l7_mine-r1"
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(spec, results, args, Say(), raw)
    os.remove(tmp_path / "my_lb.py")
    FakeRun.executed, FakeRun.interrupt_at = [], None
    runner.resume_experiment(results, Say(), machine_check=lambda: None)
    assert "l7_mine-r1" in FakeRun.executed
    assert all(r["status"] == "ok" for r in manifest(results)["runs"][-len(FakeRun.executed):])


@pytest.mark.parametrize("calibration, flag", [
    ({"skipped": True, "reason": "--no-calibration", "paths": {}, "balancers": {}}, True),
    ({"paths": {"direct": {}}, "balancers": {}}, False),
    (None, False),                                   # an iperf3 batch: no calibration at all
])
def test_rerun_skips_the_calibration_when_the_batch_did(calibration, flag):
    """lblab lab run skips it by default: a rerun of a lab's folder must not add ~10 s per
    balancer of calibration the original never had."""
    man = {"args": {"overrides": []}, "order": {"mode": "shuffled"}, "calibration": calibration}
    argv = rerun_cmd.rerun_argv(man, "/r/x")
    assert ("--no-calibration" in argv) == flag
    assert runner.build_parser().parse_args(argv).no_calibration == flag
