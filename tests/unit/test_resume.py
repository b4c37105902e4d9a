"""lblab run --resume and lblab rerun: the pure resume plan, the loop with a fake Run (no lab),
the refusals, the spec kept verbatim, and the rerun's arguments rebuilt from the manifest."""
import argparse
import json
import os

import pytest

from experiments import rerun_cmd, runner
from experiments import run_plan as plan
from lblab_core.errors import UsageError
from topologies import registry

SPEC = """\
# a comment that spec.yaml keeps
name: res   # the results folder prefix
seed: 4
topology: {name: lb_lab, params: {clients: 2}}
backends: 2
balancers:
  - {name: a, layer: l7, algorithm: round_robin}
  - {name: b, layer: l7, algorithm: random}
workload: {type: http, mode: closed, users: 2}
repetitions: 2
warmup_s: 0
duration_s: 1
sweep: {param: workload.users, values: [2, 4]}
"""


# -- the pure plan ---------------------------------------------------------------------------

def test_resume_plan_keeps_ok_runs_and_redoes_the_rest_in_the_planned_order():
    planned = ["a-r1", "b-r1", "c-r1", "a-r2", "b-r2", "c-r2"]
    found = {"a-r1": "ok", "b-r1": "failed", "c-r1": None, "a-r2": "ok"}
    todo = plan.resume_plan(planned, found)
    assert todo.keep == ("a-r1", "a-r2")
    assert todo.redo == ("b-r1", "c-r1", "b-r2", "c-r2")   # planned order, missing ones too
    assert todo.move == ("b-r1", "c-r1")                     # folders to move aside
    assert todo.unknown == ()
    assert plan.resume_plan(planned, {"x-r1": "ok"}).unknown == ("x-r1",)
    done = plan.resume_plan(planned, {r: "ok" for r in planned})
    assert done.redo == () and done.keep == tuple(planned)


def test_attempt_names_count_up():
    assert plan.attempt_name("a-r1", set()) == "a-r1-a1"
    assert plan.attempt_name("a-r1", {"a-r1-a1", "b-r1-a1"}) == "a-r1-a2"


# -- the loop, with a fake Run ---------------------------------------------------------------

class FakeRun:
    """Stands in for experiments.run_lab.Run: writes meta.json as the real one does (status
    failed and the KeyboardInterrupt re-raised when interrupted)."""
    executed = []
    interrupt_at = None     # the run id that gets Ctrl-C
    fail = ()               # run ids that fail

    def __init__(self, point, balancer, config, rep, order, sweep, raw_dir, seed, log=None):
        self.name = plan.run_name(config, rep)
        self.dir = raw_dir
        self.sweep = sweep

    def execute(self):
        os.makedirs(self.dir)            # as the real Run: never reuses a folder
        # the batch holds the lab lock for all its runs
        assert registry.held_here()
        FakeRun.executed.append(self.name)
        interrupted = self.name == FakeRun.interrupt_at
        ok = not interrupted and self.name not in FakeRun.fail
        meta = {"v": 2, "run": self.name, "sweep": self.sweep,
                "status": "ok" if ok else "failed",
                "failure": None if ok else ("interrupted (Ctrl-C)" if interrupted else "boom")}
        with open(os.path.join(self.dir, "meta.json"), "w") as fp:
            json.dump(meta, fp)
        if interrupted:
            raise KeyboardInterrupt
        return meta


class Say:
    def __init__(self):
        self.lines = []

    def start(self, total, estimate): pass
    def run(self, i, name): pass
    def log(self, msg): self.lines.append(msg)
    def done(self, meta): pass
    def stop(self): pass


@pytest.fixture
def fake(tmp_path, monkeypatch):
    from experiments import report, run_lab
    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(run_lab, "Run", FakeRun)
    built = []
    monkeypatch.setattr(report, "build", lambda d: built.append(d) or {"report": "r.html"})
    FakeRun.executed, FakeRun.interrupt_at, FakeRun.fail = [], None, ()
    return built


def start_batch(tmp_path, text=SPEC, overrides=(), repetitions=None, order="shuffled",
                order_seed=None):
    src = tmp_path / "res.yaml"
    src.write_bytes(text.encode())
    args = argparse.Namespace(overrides=list(overrides), repetitions=repetitions, order=order,
                              order_seed=order_seed)
    spec, raw = runner.read_spec(str(src), runner.overrides_of(args))
    results = runner.make_results_dir(str(tmp_path / "results"), spec.name)
    return spec, raw, args, results


def manifest(results):
    with open(os.path.join(results, "manifest.json")) as fp:
        return json.load(fp)


def test_interrupted_batch_resumes_in_the_recorded_order(tmp_path, fake):
    spec, raw, args, results = start_batch(tmp_path)
    planned = [plan.run_name(r[1], r[5]) for r in runner.plan_runs(spec)]
    FakeRun.interrupt_at = planned[3]
    FakeRun.fail = (planned[1],)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(spec, results, args, Say(), raw)
    assert FakeRun.executed == planned[:4]
    assert not registry.held_here()               # released, also on Ctrl-C
    man = manifest(results)
    assert man["interrupted"] and man["order"]["runs"] == planned
    # the run Ctrl-C stopped is in the manifest's runs too
    assert [(r["run"], r["status"]) for r in man["runs"]] == [
        (planned[0], "ok"), (planned[1], "failed"), (planned[2], "ok"), (planned[3], "failed")]
    assert man["runs"][3]["failure"] == "interrupted (Ctrl-C)"
    # the spec as written, byte for byte, whatever the file on disk becomes later
    assert open(os.path.join(results, "spec.yaml"), "rb").read() == SPEC.encode()
    (tmp_path / "res.yaml").write_text(SPEC.replace("values: [2, 4]", "values: [8]"))

    FakeRun.executed, FakeRun.interrupt_at, FakeRun.fail = [], None, ()
    say = Say()
    result = runner.resume_experiment(results, say, machine_check=lambda: None)
    # ok runs kept; the failed and the interrupted one moved aside and run again; in order
    assert FakeRun.executed == [planned[1], planned[3]] + planned[4:]
    assert sorted(os.listdir(os.path.join(results, "raw-attempts"))) == sorted(
        [f"{planned[1]}-a1", f"{planned[3]}-a1"])
    assert sorted(os.listdir(os.path.join(results, "raw"))) == sorted(planned)
    assert fake == [results, results]                 # the report was rebuilt
    assert result["report"] == "r.html" and len(result["metas"]) == len(planned) - 2
    man = manifest(results)
    (resume,) = man["resumes"]
    assert resume["runs"] == FakeRun.executed and resume["kept"] == 2
    assert resume["moved"] == {planned[1]: f"raw-attempts/{planned[1]}-a1",
                               planned[3]: f"raw-attempts/{planned[3]}-a1"}
    assert not man["interrupted"] and not resume["interrupted"] and resume["end"]
    assert [r["run"] for r in man["runs"] if r.get("resume") == 1] == FakeRun.executed
    # the sweep in meta.json is a list of {param, value}
    meta = json.load(open(os.path.join(results, "raw", planned[0], "meta.json")))
    users = int(planned[0].split("users=")[1].split("-")[0])
    assert meta["sweep"] == [{"param": "workload.users", "value": users}]

    with pytest.raises(UsageError, match=r"complete already \(all 8 runs ok\); rebuild its "
                                         r"report with: lblab report"):
        runner.resume_experiment(results, Say(), machine_check=lambda: None)


def test_a_second_failure_gets_a_second_attempt_folder(tmp_path, fake):
    spec, raw, args, results = start_batch(tmp_path, order="sequential")
    planned = [plan.run_name(r[1], r[5]) for r in runner.plan_runs(spec, "sequential")]
    FakeRun.fail = (planned[0],)
    runner.run_experiment(spec, results, args, Say(), raw)
    runner.resume_experiment(results, Say(), machine_check=lambda: None)   # fails again
    FakeRun.fail = ()
    runner.resume_experiment(results, Say(), machine_check=lambda: None)
    assert sorted(os.listdir(os.path.join(results, "raw-attempts"))) == [
        f"{planned[0]}-a1", f"{planned[0]}-a2"]
    assert len(manifest(results)["resumes"]) == 2


def test_resume_refuses_what_it_cannot_continue(tmp_path, fake):
    with pytest.raises(UsageError, match="no such folder"):
        runner.resume_experiment(str(tmp_path / "nope"), Say())
    with pytest.raises(UsageError, match=r"not a results folder \(no manifest.json\)"):
        runner.resume_experiment(str(tmp_path), Say())
    spec, raw, args, results = start_batch(tmp_path)
    runner.run_experiment(spec, results, args, Say(), raw)
    man = manifest(results)
    with open(os.path.join(results, "manifest.json"), "w") as fp:
        json.dump(dict(man, v=1), fp)
    with pytest.raises(UsageError, match="manifest format 1, this lblab runs format 2 only"):
        runner.resume_experiment(results, Say())
    with open(os.path.join(results, "manifest.json"), "w") as fp:
        json.dump(dict(man, order=dict(man["order"], runs=man["order"]["runs"][::-1])), fp)
    with pytest.raises(UsageError, match="no longer gives the runs its manifest recorded"):
        runner.resume_experiment(results, Say())
    # a batch still running (its recorded process alive) is not resumed under it
    assert man["running"] is None
    with open(os.path.join(results, "manifest.json"), "w") as fp:
        json.dump(dict(man, running=registry.process_entry(os.getpid(), "lblab run")), fp)
    with pytest.raises(UsageError, match=f"its batch is still running \\(pid {os.getpid()}\\)"):
        runner.resume_experiment(results, Say())
    with open(os.path.join(results, "manifest.json"), "w") as fp:
        json.dump(man, fp)
    os.makedirs(os.path.join(results, "raw", "stranger-r1"))
    with pytest.raises(UsageError, match="stranger-r1 is not a run of this batch"):
        runner.resume_experiment(results, Say())


def test_resume_takes_no_spec_or_options(capsys):
    for extra in (["x.yaml"], ["--set", "seed=2"], ["--order", "sequential"], ["--out", "d"]):
        with pytest.raises(SystemExit):
            runner.main(["--resume", "some/dir"] + extra)
        assert "--resume takes the spec and its options from the results folder" in \
            capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main([])
    assert "give a SPEC (or --resume RESULTS_DIR)" in capsys.readouterr().err


# -- rerun -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    dict(),
    dict(overrides=["workload.users=3", "seed=9"], repetitions=3, order="interleaved"),
    dict(order="shuffled", order_seed=77),
])
def test_rerun_rebuilds_the_same_batch(tmp_path, fake, options):
    spec, raw, args, results = start_batch(tmp_path, **options)
    runner.run_experiment(spec, results, args, Say(), raw)
    man = manifest(results)
    argv = rerun_cmd.rerun_argv(man, results)
    assert argv[0] == os.path.join(results, "spec.yaml")
    assert argv[-2:] == ["--out", os.path.dirname(os.path.abspath(results))]
    assert ("--order-seed" in argv) == ("order_seed" in options)
    again = runner.build_parser().parse_args(argv)
    spec2, raw2 = runner.read_spec(again.spec, runner.overrides_of(again))
    assert raw2 == raw and spec2.to_dict() | {"source": None} == spec.to_dict() | {"source": None}
    # the same runs in the same order, with the same seeds
    def runs(s, order, seed):
        return [(r[:4], r[4].to_dict() | {"source": None}, r[5])
                for r in runner.plan_runs(s, order, seed)]
    assert runs(spec2, again.order, again.order_seed) == runs(spec, args.order, args.order_seed)
    assert rerun_cmd.rerun_argv(man, results, "elsewhere")[-2:] == ["--out", "elsewhere"]


def test_rerun_writes_a_new_folder_with_the_old_styles(tmp_path, fake, monkeypatch):
    spec, raw, args, results = start_batch(tmp_path, overrides=["workload.users=3"])
    runner.run_experiment(spec, results, args, Say(), raw)
    with open(os.path.join(results, "styles.json"), "w") as fp:
        fp.write('{"a": {"color": "#123456"}}\n')
    monkeypatch.setattr(runner, "check_machine", lambda: None)
    # a new folder even within the same second: --out elsewhere
    status = rerun_cmd.main([results, "--out", str(tmp_path / "again"), "--quiet"])
    assert status == 0
    (new,) = os.listdir(tmp_path / "again")
    new = os.path.join(tmp_path / "again", new)
    assert open(os.path.join(new, "styles.json")).read() == '{"a": {"color": "#123456"}}\n'
    assert open(os.path.join(new, "spec.yaml"), "rb").read() == SPEC.encode()
    man = manifest(new)
    assert man["rerun_of"] == os.path.abspath(results)
    assert man["args"]["overrides"] == ["workload.users=3"]
    assert man["order"]["runs"] == manifest(results)["order"]["runs"]


# -- the lab lock: once per batch, waited for with the owner named -----------------------------

HOLDER = """
import sys
from topologies import registry
lock = registry.NetworkLock(wait_sec=0).acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_the_batch_waits_for_another_lab_and_says_whose(tmp_path, fake, monkeypatch):
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        spec, raw, args, results = start_batch(tmp_path)
        monkeypatch.setattr(runner, "LOCK_REPORT_SEC", 0.1)

        class Waiting(Say):
            def wait(self, msg):
                self.lines.append(msg)
                if holder.poll() is None and holder.stdin and not holder.stdin.closed:
                    holder.stdin.write("\n")     # the other lab ends: the batch goes on
                    holder.stdin.close()
        say = Waiting()
        runner.run_experiment(spec, results, args, say, raw)
        waits = [m for m in say.lines if "waiting for the lab lock" in m]
        assert waits and f"held by pid {holder.pid} (" in waits[0]
        assert len(FakeRun.executed) == 8              # every run, after the wait
        assert holder.wait(timeout=30) == 0

        # a lab that never ends: the batch gives up with one line naming it
        holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(runner, "LOCK_WAIT_SEC", 0.3)
        FakeRun.executed = []
        (tmp_path / "again").mkdir()
        spec, raw, args, results = start_batch(tmp_path / "again")
        with pytest.raises(UsageError, match=f"another lblab network is running "
                                             f"\\(pid {holder.pid} "):
            runner.run_experiment(spec, results, args, Say(), raw)
        assert FakeRun.executed == []
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
