"""The course-lab framework (experiments/labs): the registry, the labs' specs and handouts, the
lab.json stamp, loading a results folder, the verdict, and `lblab lab`'s errors (no root)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from experiments import runner
from experiments.labs import checks, cmd, registry
from experiments.labs import results as results_mod
from experiments.labs.model import Check
from lblab_core.errors import UsageError

LBLAB = [sys.executable, "-m", "experiments.cli"]
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "labs")
LABS = registry.labs()
HANDOUT_SECTIONS = ("## Goals", "## Predict first", "## Steps", "## Questions", "## Hand in")
MINE = (1, 2, 3, 4)  # the labs of this framework's first commit; later labs bring their docs


def _doc_or_skip(number, path):
    """Return ``path``; a lab past MINE whose document is not written yet is skipped, named."""
    if number not in MINE and not os.path.isfile(path):
        pytest.skip(f"lab {number}: {os.path.relpath(path, registry.REPO)} not written yet")
    return path


def run(*args):
    return subprocess.run(LBLAB + list(args), capture_output=True, text=True, timeout=60)


def test_the_registry_finds_every_lab_module_by_its_number():
    modules = sorted(int(m.group(1)) for name in os.listdir(os.path.dirname(registry.__file__))
                     if (m := re.fullmatch(r"lab(\d+)\.py", name)))
    assert list(LABS) == modules and {1, 2, 3, 4} <= set(LABS)
    assert [LABS[n].layer for n in (1, 2, 3, 4)] == ["physical", "data link", "network",
                                                     "transport"]


@pytest.mark.parametrize("number", sorted(LABS))
def test_each_lab_spec_validates(number):
    for name in LABS[number].specs:
        spec, _ = runner.read_spec(registry.spec_path(name))
        assert spec.name and spec.repetitions >= 1


@pytest.mark.parametrize("number", sorted(LABS))
def test_each_handout_has_its_sections_and_first_step(number):
    lab = LABS[number]
    with open(_doc_or_skip(number, registry.handout_path(lab)), encoding="utf-8") as fp:
        text = fp.read()
    for section in HANDOUT_SECTIONS:
        assert section in text, f"{lab.handout}: no '{section}'"
    # the step `lblab lab start` prints is the handout's own (its command part, verbatim)
    assert lab.first_step.split("   ")[0] in text, lab.handout
    assert f"lblab lab run {number} --student" in text
    assert "../shared" not in text


@pytest.mark.parametrize("number", sorted(LABS))
def test_instructor_notes_exist_with_a_measured_run(number):
    path = _doc_or_skip(number, os.path.join(registry.REPO, "docs", "labs", "instructor",
                                             f"lab{number}.md"))
    with open(path, encoding="utf-8") as fp:
        text = fp.read()
    assert f"lblab lab run {number}" in text and f"lblab lab check {number}" in text


def test_list_json_names_every_lab():
    proc = run("lab", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["number"] for r in rows] == list(LABS)
    for row in rows:
        if row["number"] in MINE:
            assert os.path.isfile(os.path.join(registry.REPO, row["handout"]))
        assert all(os.path.isfile(os.path.join(registry.REPO, s)) for s in row["specs"])


@pytest.mark.parametrize("argv, needle", [
    (["lab", "check", "99", "."], "lab 99: no such lab; expected one of 1, 2, 3, 4"),
    (["lab", "check", "1", "/nonexistent/x"], "RESULTS_DIR '/nonexistent/x': no such folder"),
    (["lab", "check", "x", "."], "argument N: 'x': expected a lab number"),
    (["lab", "run", "1", "--student", "a b"], "--student: 'a b': expected 1 to 64 letters"),
    (["lab", "start", "42"], "lab 42: no such lab"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, needle):
    proc = run(*argv)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_check_of_a_folder_that_is_not_results(tmp_path):
    with pytest.raises(UsageError, match="not a results folder"):
        results_mod.load(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(UsageError, match=r"no runs.csv \(the report was not built\); build it "
                                         r"with: lblab report"):
        results_mod.load(str(tmp_path))


def test_stamp_has_the_student_and_a_fresh_run_id(tmp_path):
    one, two = (results_mod.new_stamp(3, "s123") for _ in range(2))
    assert one["student"] == "s123" and one["lab"] == 3 and one["v"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", one["run_id"]) and one["run_id"] != two["run_id"]
    results_mod.write_stamp(str(tmp_path), one)
    assert json.loads((tmp_path / "lab.json").read_text()) == one


def test_in_range_and_its_text():
    assert checks.in_range("r", 5.0, 4, 6).passed
    low = checks.in_range("r", 3.0, 4, 6, "Mbit/s")
    assert not low.passed and low.expected == "4 .. 6 Mbit/s" and "outside" in low.missing
    assert checks.in_range("r", 7, None, 6).expected == "<= 6"
    missing = checks.in_range("r", None, 1, None, missing="run it")
    assert not missing.passed and missing.value is None and missing.missing == "run it"
    assert not checks.in_range("r", float("nan"), 0, 1).passed


def test_the_verdict_prints_the_stamp_and_a_wrong_lab_fails():
    folder = os.path.join(FIXTURES, "lab1_right")
    loaded = results_mod.load(folder)
    verdict = cmd.grade(LABS[1], loaded)
    assert verdict["stamped"] and verdict["student"] == loaded.stamp["student"]
    assert verdict["run_id"] == loaded.stamp["run_id"] and verdict["passed"]
    other = cmd.grade(LABS[3], loaded)
    first = other["checks"][0]
    assert first["name"] == "results are of this lab" and not first["passed"]
    assert not other["passed"]


def test_check_exit_status_and_json(tmp_path):
    folder = os.path.join(FIXTURES, "lab1_right")
    proc = run("lab", "check", "1", folder, "--json")
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["passed"] and verdict["student"] and len(verdict["run_id"]) == 32
    proc = run("lab", "check", "1", folder)
    assert proc.returncode == 0 and f"run id: {verdict['run_id']}" in proc.stdout
    # the same folder without its stamp: graded, and the checker says it is not stamped
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    os.remove(copy / "lab.json")
    proc = run("lab", "check", "1", str(copy))
    assert proc.returncode == 0 and "not stamped" in proc.stdout


def test_check_as_dict_rounds_floats():
    assert Check("c", True, 1.234567, "x").as_dict()["value"] == 1.2346


@pytest.mark.parametrize("extra, calibrates", [([], False), (["--calibrate"], True)])
def test_lab_run_skips_the_calibration_unless_asked(tmp_path, monkeypatch, extra, calibrates):
    """No lab's checks or questions use the model twin's calibration (lab 7's compare the
    ideal model of lblab model SPEC), so lblab lab run leaves it out; --calibrate puts it
    back. Every spec of a lab (lab 7 has three) gets the same choice."""
    seen = []

    def fake_run(spec, results_dir, args, say, raw):
        seen.append((spec.name, args.no_calibration))
        return {"metas": [{"status": "ok"}], "report": "report.html"}
    monkeypatch.setattr(runner, "check_machine", lambda: None)
    monkeypatch.setattr(runner, "run_experiment", fake_run)
    assert cmd.main(["run", "7", "--out", str(tmp_path), *extra]) == 0
    assert seen == [(name.removesuffix(".yaml"), not calibrates) for name in LABS[7].specs]
