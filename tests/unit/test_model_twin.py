"""The model twin in a results folder (experiments.model.twin via lblab report): model files
rebuilt byte for byte, the report's section, folders without a model."""
import json
import os
import shutil

from experiments import report
from experiments.model import flags, twin

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run_tiny")
SPEC = """\
name: tiny
seed: 1
topology: {name: lb_lab, params: {clients: 2, backends: 2}}
backends:
  - {name: b1, service: {dist: exponential, mean_ms: 2}}
  - {name: b2, service: {dist: exponential, mean_ms: 2}}
balancers:
  - {name: l4_rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: l7_rr, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: open, rate: 25, arrival: constant, users: 4}
repetitions: 2
warmup_s: 1
duration_s: 2
"""
MODEL_FILES = ("model/summary.csv", "model/summary.json")


def _folder(target, calibration=None):
    shutil.copytree(FIXTURE, target)
    with open(os.path.join(target, "spec.yaml"), "w", encoding="utf-8") as fp:
        fp.write(SPEC)
    if calibration is not None:
        path = os.path.join(target, "manifest.json")
        with open(path, encoding="utf-8") as fp:
            man = json.load(fp)
        man["calibration"] = calibration
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(man, fp)
    return str(target)


def _read(path):
    with open(path, "rb") as fp:
        return fp.read()


CAL = {"skipped": False, "rate": 50.0, "duration_s": 4.0, "balancers": {"l4_rr": "l4/l4",
       "l7_rr": "l7/builtin"}, "paths": {"l4/l4": {"n": 200, "mean_ms": 0.8, "sd_ms": 0.2},
                                         "l7/builtin": {"n": 200, "mean_ms": 1.6,
                                                        "sd_ms": 0.4}}}


def test_model_files_are_rebuilt_byte_for_byte_and_elsewhere(tmp_path):
    one = _folder(tmp_path / "a", CAL)
    other = _folder(tmp_path / "elsewhere" / "b", CAL)
    result = report.build(one, plots=False)
    assert [f for f in result["files"] if "/model/" in f] == [
        os.path.join(one, f) for f in MODEL_FILES]
    first = {f: _read(os.path.join(one, f)) for f in MODEL_FILES}
    for f in MODEL_FILES:
        os.remove(os.path.join(one, f))
    report.build(one, plots=False)
    report.build(other, plots=False)
    for f in MODEL_FILES:
        assert _read(os.path.join(one, f)) == first[f] == _read(os.path.join(other, f)), f


def test_the_calibration_reaches_the_model_per_balancer(tmp_path):
    run_dir = _folder(tmp_path / "a", CAL)
    report.build(run_dir, plots=False)
    with open(os.path.join(run_dir, "model", "summary.json"), encoding="utf-8") as fp:
        data = json.load(fp)
    assert data["overhead_ms"] == {"l4_rr": 0.8, "l7_rr": 1.6}
    assert data["overhead_source"].startswith("calibrated")
    assert [c["overhead_ms"] for c in data["configurations"]] == [0.8, 1.6]
    # the same metrics as the emulation's summary, each with its windows' values
    one = data["configurations"][0]["metrics"]["latency_mean_ms"]
    assert len(one["values"]) == one["n"] == data["configurations"][0]["windows"]
    head = _read(os.path.join(run_dir, "model", "summary.csv")).decode().splitlines()[0]
    for key in ("goodput_rps", "latency_mean_ms", "latency_p99_ms", "jain_backends"):
        assert f",{key},{key}_low,{key}_high" in head


def test_without_a_calibration_the_overheads_are_zero_and_said_so(tmp_path):
    run_dir = _folder(tmp_path / "a")
    result = report.build(run_dir, plots=False)
    assert "no calibration" in result["model"]["overhead_source"]
    html = _read(result["report"]).decode()
    assert "<h2>Model twin</h2>" in html and "no calibration in the manifest" in html
    assert "False-alarm rate: at most 1 % per report" in html


def test_flags_are_warnings_of_the_report(tmp_path):
    run_dir = _folder(tmp_path / "a")
    result = report.build(run_dir, plots=False)
    comp = result["model"]["comparison"]
    assert comp["m"] == 4 * len(flags.KEY_METRICS)
    lines = [w for w in result["warnings"] if "fidelity flag" in w]
    assert lines == flags.flag_lines(comp)


def test_report_draws_one_model_figure_per_key_metric(tmp_path):
    run_dir = _folder(tmp_path / "a", CAL)
    result = report.build(run_dir)
    ids = [f["id"] for f in result["plots"] if f["section"] == "Model twin"]
    assert ids == [f"fig-model-{k}" for k, _ in flags.KEY_METRICS]
    assert 'id="figures-model-twin"' in _read(result["report"]).decode()


def test_a_folder_without_spec_yaml_has_no_model_and_says_why(tmp_path):
    run_dir = str(tmp_path / "a")
    shutil.copytree(FIXTURE, run_dir)
    result = report.build(run_dir, plots=False)
    assert not result["model"]["available"]
    assert not os.path.exists(os.path.join(run_dir, "model"))
    assert "No model for this folder: no spec.yaml" in _read(result["report"]).decode()


def test_iperf3_folders_are_outside_the_model(tmp_path):
    from tests.unit import resultsdirs
    run_dir = resultsdirs.iperf3(tmp_path / "ip")
    result = report.build(run_dir, plots=False)
    assert "iperf3 workloads are outside the model" in _read(result["report"]).decode()


def test_a_spec_that_no_longer_loads_is_a_reason_not_a_traceback(tmp_path):
    run_dir = _folder(tmp_path / "a")
    with open(os.path.join(run_dir, "spec.yaml"), "a", encoding="utf-8") as fp:
        fp.write("bogus_key: 1\n")
    spec, why = twin.model_spec(run_dir, {"spec_verbatim": "spec.yaml"})
    assert spec is None and "bogus_key" in why


def test_lblab_model_compare_prints_runs_beside_the_model(tmp_path, capsys):
    from experiments.model import cli
    run_dir = _folder(tmp_path / "a", CAL)
    assert cli.main(["--compare", run_dir]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["configuration", "metric", "emulated"]
    assert sum(line.startswith("l7_rr ") for line in out.splitlines()) == len(flags.KEY_METRICS)
    assert "false-alarm rate at most 1% per report" in out
    assert os.path.isfile(os.path.join(run_dir, "model", "summary.json"))


def test_lblab_model_compare_refuses_a_spec_and_a_folder_without_one(tmp_path):
    from experiments.model import cli
    from lblab_core.errors import UsageError
    import pytest
    with pytest.raises(SystemExit):
        cli.main(["x.yaml", "--compare", str(tmp_path)])
    bare = str(tmp_path / "bare")
    shutil.copytree(FIXTURE, bare)
    with pytest.raises(UsageError, match="no model: no spec.yaml"):
        cli.main(["--compare", bare])


def test_an_open_loop_is_modelled_with_the_pool_unbounded_unless_the_pool_is_swept(tmp_path):
    run_dir = _folder(tmp_path / "a")
    spec, _ = twin.model_spec(run_dir, {"spec_verbatim": "spec.yaml"})
    assert spec.workload.users == twin.MAX_TOTAL_USERS          # SPEC says users: 4
    result = report.build(run_dir, plots=False)
    with open(os.path.join(run_dir, "model", "summary.json"), encoding="utf-8") as fp:
        assert twin.POOL_NOTE in json.load(fp)["model_notes"]
    assert twin.POOL_NOTE in _read(result["report"]).decode()
    swept = {"spec_verbatim": "spec.yaml",
             "overrides": ["sweep={param: workload.users, values: [2, 8]}"]}
    spec, _ = twin.model_spec(run_dir, swept)
    assert spec is not None and not twin.unbound_pool(spec)
    with open(os.path.join(run_dir, "spec.yaml"), "w", encoding="utf-8") as fp:
        fp.write(SPEC.replace("mode: open, rate: 25, arrival: constant", "mode: closed"))
    spec, _ = twin.model_spec(run_dir, {"spec_verbatim": "spec.yaml"})
    assert spec.workload.users == 4 and not twin.unbound_pool(spec)
