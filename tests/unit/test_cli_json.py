"""``--json`` of ``lblab validate`` and ``lblab topo list``: stable keys, documented in
``--help``, and for validate the same problems as the text lines (every malformed spec row of
tests/unit/malformed/test_spec_inputs.py round-trips)."""
import base64
import json
import os

import pytest

from experiments import spec as spec_mod
from experiments import topo_cmd, validate_cmd
from tests.unit.malformed import test_spec_inputs as malformed
from topologies import graphs

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "specs")
BAD = """\
name: x
balancers:
  - name: a
    layer: l7
    algorithm: leastconn
workload:
  type: http
  rate: -5
repetitions: "3"
bogus: {deep: [1, 2]}
"""


def _validate(argv, capsys):
    status = validate_cmd.main(argv + ["--json"])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, json.loads(captured.out)


def test_problems_name_file_line_field_value(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    status, out = _validate([str(path)], capsys)
    assert status == 2 and out["ok"] is False
    (spec,) = out["specs"]
    assert spec["spec"] == str(path) and spec["ok"] is False and spec["summary"] is None
    by_field = {p["field"]: p for p in spec["problems"]}
    for p in spec["problems"]:
        assert sorted(p) == ["field", "file", "line", "message", "value"]
        assert p["file"] == str(path)
    assert by_field["balancers[0].algorithm"]["value"] == "leastconn"
    assert by_field["balancers[0].algorithm"]["line"] == 5
    assert "did you mean least_connections" in by_field["balancers[0].algorithm"]["message"]
    assert by_field["workload.rate"]["value"] == -5
    assert by_field["workload.rate"]["message"] == "-5: expected a number > 0"
    assert by_field["repetitions"]["value"] == "3"            # the string, as written
    assert by_field["bogus"]["value"] == {"deep": [1, 2]}
    assert by_field["topology"] == {"file": str(path), "line": 1, "field": "topology",
                                    "value": None, "message": "is required"}


def test_a_file_problem_has_no_field(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    status, out = _validate([str(broken), str(tmp_path / "missing.yaml")], capsys)
    assert status == 2
    yaml_problem, = out["specs"][0]["problems"]
    assert yaml_problem["field"] is None and yaml_problem["line"] == 2
    assert yaml_problem["message"].startswith("not valid YAML")
    missing, = out["specs"][1]["problems"]
    assert missing["field"] is None and missing["line"] is None
    assert missing["message"].startswith("cannot read the file")


def test_an_override_problem_has_the_overridden_value(capsys):
    path = os.path.join(SPECS, "quickstart.yaml")
    status, out = _validate([path, "--set", "workload.users=lots"], capsys)
    assert status == 2
    problem, = out["specs"][0]["problems"]
    assert problem["field"] == "workload.users" and problem["value"] == "lots"
    assert problem["line"] is None


def test_a_valid_spec_gets_its_summary(capsys):
    path = os.path.join(SPECS, "quickstart.yaml")
    status, out = _validate([path], capsys)
    assert status == 0 and out["ok"] is True
    (entry,) = out["specs"]
    assert entry["problems"] == [] and entry["ok"] is True
    summary = entry["summary"]
    spec = spec_mod.load_spec(path)
    configs = spec_mod.configurations(spec)
    assert summary["name"] == spec.name
    assert summary["balancers"] == [b.name for b in spec.balancers]
    assert summary["configurations"] == [c[0] for c in configs]
    assert summary["runs"] == len(configs) * spec.repetitions
    assert summary["estimated_s"] == validate_cmd.estimated_s(spec, summary["runs"])
    assert summary["resolved"]["name"] == spec.name
    assert summary["sweep"] == [] and summary["points"] == 1


def test_a_swept_spec_names_its_parameters(tmp_path, capsys):
    path = tmp_path / "swept.yaml"
    text = open(os.path.join(SPECS, "quickstart.yaml"), encoding="utf-8").read()
    path.write_text(text + "sweep: {param: workload.users, values: [2, 4, 8]}\n")
    status, out = _validate([str(path)], capsys)
    assert status == 0, out
    summary = out["specs"][0]["summary"]
    assert summary["sweep"] == ["workload.users"] and summary["points"] == 3
    assert summary["runs"] == 3 * len(summary["balancers"]) * summary["repetitions"]


def test_json_keys_are_in_the_help():
    for key in ("ok", "specs", "spec", "problems", "file", "line", "field", "value",
                "message", "summary", "name", "balancers", "sweep", "points", "repetitions",
                "configurations", "runs", "estimated_s", "resolved"):
        assert f'"{key}"' in validate_cmd.JSON_HELP, key
    assert "--json" in validate_cmd.build_parser().format_help()


def _text_line(problem):
    where = problem["file"] + (f":{problem['line']}" if problem["line"] is not None else "")
    body = f"{problem['field']}: {problem['message']}" if problem["field"] else \
        problem["message"]
    return where, body


@pytest.mark.timeout(300)
def test_every_malformed_spec_row_round_trips(tmp_path):
    """Each malformed spec's one text line is rebuilt from its JSON problem: same line number,
    and file + field + message give the text back."""
    cases = [c for c in malformed.CASES if c["command"] is None and not c["extra"]]
    assert len(cases) >= 70
    for case in cases:
        path = tmp_path / case["filename"]
        path.write_bytes(base64.b64decode(case["content"]))
        try:
            spec_mod.load_spec(str(path))
        except spec_mod.SpecError as exc:
            errors = exc.errors
        else:
            pytest.fail(f"{case['id']}: valid")
        problems = validate_cmd.problems(errors, str(path), validate_cmd._data(str(path), ()))
        assert len(problems) == len(errors)
        for text, problem in zip(errors, problems):
            where, body = _text_line(problem)
            assert text in (f"{where}: {body}", f"{problem['file']}: {body}"), case["id"]
            if case["line"] is not None:
                assert problem["line"] == case["line"], case["id"]
            # every row of this table is about a key (file-level problems are the loader's
            # table): the field is found, and the message is what follows it
            assert problem["field"] and not problem["message"].startswith(
                problem["field"]), case["id"]
            json.dumps(problem)          # every value is JSON


def test_topo_list_json(capsys):
    assert topo_cmd.main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out) == ["limits", "topologies"]
    assert [t["name"] for t in out["topologies"]] == list(graphs.GENERATORS)
    for t in out["topologies"]:
        assert sorted(t) == ["description", "name", "params"]
        assert t["params"] == graphs.generator_params(t["name"])
        assert list(t["params"]) == list(graphs.generator_params(t["name"]))   # in order
        assert t["description"] and "\n" not in t["description"] and "``" not in \
            t["description"]
    assert out["limits"] == {"hosts": graphs.MAX_HOSTS_PER_SERVER,
                             "switches": graphs.MAX_SWITCHES_PER_SERVER,
                             "links": graphs.MAX_LINKS_PER_SERVER}
    for key in ("topologies", "name", "description", "params", "limits", "hosts",
                "switches", "links"):
        assert f'"{key}"' in topo_cmd.LIST_JSON_HELP, key
