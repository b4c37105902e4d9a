"""Seeded source ports on real Open vSwitch and Mininet (root): the same seed gives the same
5-tuples, so an OVS select group hashing them (``l4`` ``group`` ``five_tuple_hash``) sends the
same connections to the same backends, run after run; a different seed gives other 5-tuples.

``lblab run`` of one tiny spec twice: first with 2 repetitions (seeds 5001 and 5002), then with
1 (seed 5001 again). Open loop at a constant rate, a new connection per request, so every run
sends the same number of requests and each request's backend is its connection's; the
requests are compared from the first: there is no warm-up.

So this also checks that the runner starts the load only once the controller has every backend
up in its group: in each run b4's process is restarted once the service answers, the
controller's probes find its port closed and take it out of the group, and it is back only
after ``rise`` probes pass. Had the load started then, the first requests would have missed b4.
"""
import collections
import glob
import json
import os

import pytest

from experiments import run_lab, runner
from lb_apps.records import read_records
from tests.conftest import wait_for

SPEC = """\
name: seeded
question: Does one seed give the same 5-tuples and the same backend choices every time?
seed: 5
topology: {{name: lb_lab, params: {{clients: 2, backends: 4}}}}
backends:
  - {{name: b1}}
  - {{name: b2}}
  - {{name: b3}}
  - {{name: b4}}
balancers:
  - {{name: grp, layer: l4, mode: group, algorithm: five_tuple_hash}}
workload: {{type: http, mode: open, rate: 60, arrival: constant, users: 8, keepalive: false}}
repetitions: {reps}
warmup_s: 0
duration_s: 2
"""


# b4 must be in the group from the load's first request: with four backends and the seeded
# 5-tuples it gets some of the requests sent in the first half second (60 req/s: 30 requests).
FIRST_SEC = 0.5


class B4RestartedBeforeTheLoad(run_lab.Run):
    """The real Run; once the service answers, b4 is stopped until the controller reports it
    down, then started again (its second records file: ``backend-b4-2.jsonl``)."""

    def _wait_service(self):
        super()._wait_service()
        host = self.roles.backends["b4"]

        def b4_state():
            return self._controller_api("GET", "/services")["web"]["backends"][host]["state"]
        self.lab.stop_process(self.backends["b4"])
        wait_for(lambda: b4_state() == "down", "b4 down in the controller's pool")
        self._start_backend(self.spec.backends[3], 3)


def run_spec(base, reps):
    folder = base / f"reps{reps}"
    folder.mkdir()
    spec = folder / "seeded.yaml"
    spec.write_text(SPEC.format(reps=reps))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_lab, "Run", B4RestartedBeforeTheLoad)
        assert runner.main([str(spec), "--out", str(folder / "results"), "--quiet",
                            "--no-calibration"]) == 0
    (results,) = glob.glob(str(folder / "results" / "seeded-*"))
    return results


def served(results, run):
    """Return ``{(client ip, client port): backend}`` and the seed of one run."""
    raw = os.path.join(results, "raw", run)
    meta = json.load(open(os.path.join(raw, "meta.json")))
    assert meta["status"] == "ok", meta["failure"]
    # the runner waited for b4 to come back into the controller's group
    assert meta["pool_ready_s"] > 0
    # every request of the load generators (there is no warm-up); the runner's own readiness
    # check, a curl per client, reaches a backend too, from a kernel-chosen port, and is left
    # out by the ids
    records = [r for path in glob.glob(os.path.join(raw, "loadgen-*.jsonl"))
               for r in read_records(path, "loadgen")]
    assert records and not any(r.get("warmup") for r in records)
    start = min(r["scheduled"] for r in records)
    first = {r["backend"] for r in records if r["scheduled"] < start + FIRST_SEC}
    assert "b4" in first, f"b4 missed the first {FIRST_SEC:g} s: {first}"
    sent = {r["id"] for r in records}
    out = {}
    for path in glob.glob(os.path.join(raw, "backend-*.jsonl")):
        for r in read_records(path, "backend"):
            if r["id"] not in sent:
                continue
            ip, port = r["client"].rsplit(":", 1)
            assert (ip, int(port)) not in out, "a 5-tuple served twice"
            out[(ip, int(port))] = r["backend"]
    return out, meta["seed"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("seeded")
    first = run_spec(base, 2)
    again = run_spec(base, 1)
    return {"r1": served(first, "grp-r1"), "r2": served(first, "grp-r2"),
            "r1 again": served(again, "grp-r1")}


def test_same_seed_same_5_tuples_and_backend_counts(runs):
    (r1, seed1), (again, seed_again) = runs["r1"], runs["r1 again"]
    assert seed1 == seed_again == 5 * 1000 + 1
    assert len(r1) == 120                      # 60 req/s for 2 s, one connection each
    assert again == r1                         # every connection: same 5-tuple, same backend
    counts = collections.Counter(r1.values())
    assert counts == collections.Counter(again.values())
    assert len(counts) > 1, counts             # the hash did spread them
    assert all(20000 <= port < 32768 for _, port in r1)


def test_a_different_seed_gives_other_5_tuples(runs):
    (r1, seed1), (r2, seed2) = runs["r1"], runs["r2"]
    assert seed2 == seed1 + 1 and len(r2) == len(r1)
    assert len(set(r1) & set(r2)) < len(r1) // 10, "repetitions reuse the 5-tuples"
