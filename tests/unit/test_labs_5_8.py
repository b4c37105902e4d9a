"""Labs 5-8: their checks on fixtures recorded from real runs of the right and of a wrong
configuration (tests/unit/fixtures/labs/lab5_right, lab5_wrong, ...; see the instructor notes
for the commands), the checks' logic on small made-up requests, lab 7's verdicts, and the spec
features the labs need (https to a TLS proxy, a backend's Cache-Control, uploads)."""
import os
import subprocess
import sys

import pytest

from experiments import run_plan as P
from experiments import spec as spec_mod
from experiments.labs import lab5, lab6, lab7, lab8
from experiments.labs import measure as M
from experiments.labs import registry
from experiments.labs import results as results_mod
from experiments.labs.cmd import grade
from topologies import graphs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "labs")
LABS = {5: lab5, 6: lab6, 7: lab7, 8: lab8}


def load_fixture(name):
    return results_mod.load(os.path.join(FIXTURES, name))


def failed(verdict):
    return [c["name"] for c in verdict["checks"] if not c["passed"]]


# -- every lab's spec, handout and registration ---------------------------------------------------

@pytest.mark.parametrize("number", sorted(LABS))
def test_lab_is_registered_with_valid_specs(number):
    lab = registry.get(number)
    assert lab is LABS[number].LAB
    for name in lab.specs:
        spec_mod.load_spec(registry.spec_path(name))      # raises on any problem


# -- fixtures from real runs ----------------------------------------------------------------------

@pytest.mark.parametrize("number", sorted(LABS))
def test_a_real_run_of_the_lab_passes(number):
    verdict = grade(registry.get(number), load_fixture(f"lab{number}_right"))
    assert verdict["passed"], failed(verdict)
    assert verdict["student"] == "alice" and verdict["run_id"]
    assert len(verdict["checks"]) >= 5


# (lab, what the wrong run changed, a check that must fail, a check that must still pass)
WRONG = [
    (5, "workload.session false, keep-alive off only", "a user's requests on its cookie's backend",
     "requests on a reused connection"),
    (5, "workload.session false, keep-alive off only", "ok runs of each balancer", None),
    (6, "l7.cache false", "answered from the cache", "anonymous /admin refused with 401"),
    (8, "round_robin at L4 and L7 where the weights are 1:2:3", "share before the drain",
     "requests sent to the drained b1 after the drain"),
]


@pytest.mark.parametrize("number, change, must_fail, still_passes", WRONG)
def test_a_real_run_of_a_wrong_configuration_fails(number, change, must_fail, still_passes):
    verdict = grade(registry.get(number), load_fixture(f"lab{number}_wrong"))
    assert not verdict["passed"], change
    assert any(must_fail in name for name in failed(verdict)), (change, failed(verdict))
    if still_passes:
        passing = [c["name"] for c in verdict["checks"] if c["passed"]]
        assert any(still_passes in name for name in passing), (change, passing)
    assert verdict["student"] == "bob"


def test_lab8_wrong_fails_each_weighted_share_at_both_layers():
    verdict = grade(registry.get(8), load_fixture("lab8_wrong"))
    shares = [c for c in verdict["checks"] if "share before the drain" in c["name"]]
    # b1 (weight 1/6) and b3 (3/6) miss their shares under equal picks, at L4 and at L7
    bad = {c["name"].split(":")[1].split("'")[0].strip() + "@" + c["name"].split("-")[0]
           for c in shares if not c["passed"]}
    assert {"b1@l4_mine", "b3@l4_mine", "b1@l7_mine", "b3@l7_mine"} <= bad, bad


def test_lab7_verdicts_of_the_real_run():
    verdicts = {v.claim: v for v in lab7.claims(load_fixture("lab7_right"))}
    assert len(verdicts) == 9 and all(v.measured for v in verdicts.values())
    assert verdicts["L7 can route on content"].verdict == lab7.TRUE
    assert verdicts["L4 is simpler"].verdict == lab7.UNMEASURABLE
    # the builtin proxy streams an upload (like L4), nginx buffers it by default
    upload = verdicts["L7 needs to buffer the entire request"]
    assert upload.verdict == lab7.CONDITIONAL and "l7_nginx" in upload.why
    streamed = upload.why.split(";")[1].split("streamed")[0]
    assert "l7_builtin" in streamed and "l7_nginx" not in streamed
    secure = verdicts["L7 is more secure (can inspect requests)"]
    assert secure.verdict == lab7.CONDITIONAL


def test_lab7_table_command_prints_every_claim():
    out = subprocess.run([sys.executable, "-m", "experiments.labs.lab7",
                          os.path.join(FIXTURES, "lab7_right")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("| claim |") and len(lines) == 2 + 9
    bad = subprocess.run([sys.executable, "-m", "experiments.labs.lab7", "/nonexistent"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr


def test_lab7_check_fails_on_a_folder_without_its_runs():
    one = load_fixture("lab7_right").part("lab7_content")     # the content spec alone
    verdict = grade(registry.get(7), one)
    missing = failed(verdict)
    assert "claim: L4 is faster (lower latency)" in missing
    assert "claim: L7 needs to buffer the entire request" in missing
    assert "claim: L7 can route on content" not in missing


# -- the checks' logic on made-up requests --------------------------------------------------------

class Fake(results_mod.LabResults):
    """Results in memory: runs.csv rows, metas, requests and backend records."""

    def __init__(self, runs, requests, metas=None, backend=None):
        super().__init__("/fake", {"spec": {"name": "fake"}}, runs, metas or {}, None,
                         requests=requests)
        self._backend = backend or {}

    def backend_records(self, run):
        return self._backend.get(run, [])


def req(run, i, backend, start, client="h1", conn="new", status=200, path="/", cache=None):
    return {"run": run, "id": f"{client}-{i}", "client": client, "scheduled": start,
            "start": start, "end": start + 0.002, "status": status, "backend": backend,
            "error": None, "path": path, "conn": conn, "cache": cache, "connect": 0.0,
            "counted": True}


def lab8_results(picks_before, picks_after, drained_at=10.0):
    rows, requests, metas = [], [], {}
    backends = [{"name": "b1", "weight": 1}, {"name": "b2", "weight": 2},
                {"name": "b3", "weight": 3}]
    for layer in ("l4", "l7"):
        run = f"{layer}_mine-r1"
        rows.append({"run": run, "status": "ok", "layer": layer, "errors": 0,
                     "balancer": f"{layer}_mine"})
        metas[run] = {"backends": backends, "faults": [
            {"action": "drain_backend", "target": "b1", "applied": drained_at, "took_s": 0.1}]}
        t = 0.0
        for i, backend in enumerate(picks_before + picks_after):
            t = drained_at - 5 + i * 0.01 if i < len(picks_before) else \
                drained_at + 0.5 + (i - len(picks_before)) * 0.01
            requests.append(req(run, i, backend, t))
    return Fake(rows, requests, metas)


def test_lab8_weighted_picks_pass_and_equal_picks_fail():
    wrr = ["b1", "b2", "b2", "b3", "b3", "b3"] * 50
    assert all(c.passed for c in lab8.check(lab8_results(wrr, ["b2", "b3", "b3"] * 20)))
    equal = ["b1", "b2", "b3"] * 100
    checks = lab8.check(lab8_results(equal, ["b2", "b3", "b3"] * 20))
    assert {c.name.split(": ")[1].split("'")[0] for c in checks if not c.passed} == {"b1", "b3"}


def test_lab8_a_drained_backend_chosen_fails():
    wrr = ["b1", "b2", "b2", "b3", "b3", "b3"] * 50
    checks = lab8.check(lab8_results(wrr, ["b1", "b2", "b3"] * 20))
    late = [c for c in checks if "after the drain" in c.name and "drained" in c.name]
    assert late and all(not c.passed and c.value == 20 for c in late)


def test_lab8_without_the_drain_says_what_is_missing():
    results = lab8_results(["b1", "b2", "b2", "b3", "b3", "b3"] * 50, [])
    for meta in results.metas.values():
        meta["faults"] = []
    checks = lab8.check(results)
    assert checks and not any(c.passed for c in checks)
    assert "drain_backend" in checks[0].missing


def test_measure_helpers():
    reqs = [req("r", 1, "b1", 1.0, conn="new"), req("r", 2, "b1", 2.0, conn="reused"),
            req("r", 3, "b2", 3.0, client="h2", conn="reused", cache="HIT"),
            req("r", 4, "b1", 4.0, client="h2", conn="reused", status=503)]
    assert M.reused_share(reqs) == 0.75
    assert M.top_backend_share(reqs) == {"h1": 1.0, "h2": 1.0}
    assert M.backend_shares(reqs) == {"b1": 2 / 3, "b2": 1 / 3}
    assert M.cache_hit_rate(reqs) == pytest.approx(1 / 3)
    assert M.statuses(reqs) == {200: 3, 503: 1}
    backend = [{"id": "h1-1", "arrival": 1.25}, {"id": "h1-2", "arrival": 2.5}]
    assert M.upload_ms(reqs, backend) == pytest.approx(375.0)
    assert M.median_latency_ms(reqs) == pytest.approx(2.0)


def upload_part(times_ms):
    """A lab7_upload part whose uploads take ``times_ms[balancer]`` to reach the backend."""
    runs, requests, backend = [], [], {}
    for name, ms in times_ms.items():
        run = f"{name}-r1"
        runs.append({"run": run, "status": "ok", "balancer": name})
        requests += [req(run, i, "b1", 10.0 + i) for i in range(3)]
        backend[run] = [{"id": f"h1-{i}", "arrival": 10.0 + i + ms / 1000} for i in range(3)]
    return Fake(runs, requests, backend=backend)


@pytest.mark.parametrize("times, verdict", [
    ({"l4_reactive": 220, "l7_builtin": 230, "l7_haproxy": 235, "l7_nginx": 450},
     lab7.CONDITIONAL),
    ({"l4_reactive": 220, "l7_builtin": 230, "l7_haproxy": 235, "l7_nginx": 240}, lab7.FALSE),
    ({"l4_reactive": 220, "l7_builtin": 440, "l7_haproxy": 450, "l7_nginx": 460}, lab7.TRUE),
])
def test_lab7_upload_verdict(times, verdict):
    [v] = lab7.upload_claim(upload_part(times))
    assert v.verdict == verdict and v.measured


def test_lab7_upload_without_a_balancer_is_not_measured():
    [v] = lab7.upload_claim(upload_part({"l4_reactive": 220, "l7_builtin": 230}))
    assert not v.measured and "lab7_upload" in v.why


# -- what the labs need from the spec and the runner ----------------------------------------------

def test_tls_balancer_is_loaded_over_https_and_the_rest_over_http():
    spec = spec_mod.load_spec(registry.spec_path("lab5_session.yaml"))
    graph = graphs.build("lb_lab", dict(spec.topology.params))
    roles = P.assign_roles(graph, spec.backends)
    assert P.service_url(spec.balancer("tls"), graph, roles).startswith("https://10.0.0.3:")
    assert P.service_url(spec.balancer("plain"), graph, roles).startswith("http://10.0.0.3:")


def test_backend_cache_control_and_upload_body_reach_their_programs():
    spec = spec_mod.load_spec(registry.spec_path("lab6_application.yaml"))
    args = P.backend_args(spec.backends[2], "/r/b3.jsonl", 1)
    assert args[args.index("--cache-control") + 1] == "public, max-age=60"
    assert "--cache-control" not in P.backend_args(spec.backends[0], "/r/b1.jsonl", 1)
    upload = spec_mod.load_spec(registry.spec_path("lab7_upload.yaml"))
    graph = graphs.build("lb_lab", dict(upload.topology.params))
    roles = P.assign_roles(graph, upload.backends)
    cfgs = P.loadgen_configs(upload, roles, "http://10.0.0.2:80/", 1, lambda c: f"/r/{c}")
    [mix] = cfgs["h1"]["mix"]
    assert mix["method"] == "POST" and mix["body_size"] == 524288
    from lb_apps.loadgen.workload import config_from_dict
    assert config_from_dict(cfgs["h1"]).mix[0].body_size == 524288
