"""Every fault action on real Open vSwitch and Mininet (root), judged on the wire: what the
clients and the backends recorded, not only what meta.json says.

Three labs, each one run of ``experiments.run_lab.Run`` with several faults in turn:

* the builtin L7 proxy (weighted round robin): ``set_weight`` moves shares, ``drain_backend``
  sends no new request to the drained backend while its in-flight ones finish, ``kill_backend``
  stops its traffic and ``restore_backend`` brings it back, ``backend_fault`` mode slow shows in
  the clients' latency;
* the L4 controller (mode l4, weighted round robin, a new connection per request): the same
  ``set_weight`` and ``drain_backend`` through the controller, ``link_down``/``link_up`` cut a
  client off and back on, ``backend_fault`` mode close turns a backend's responses into client
  errors, ``stop_controller`` leaves new connections without a path, and an optional fault
  after it is skipped with its reason and a warning;
* a fault that cannot be applied (draining the last backend of the proxy) fails its run,
  naming the fault, its time and why; so does a netem fault (``link_delay``, ``link_loss``) on a
  kernel without netem, before the lab is built, and an optional one is skipped with the
  reason (where netem exists, ``link_delay`` is judged on the wire instead).

Timing: every check is relative to the times the runner recorded for each fault (when it began
and how long its confirmation took), with a grace only for a response already on the wire.
"""
import json
import os

import pytest

from experiments import metrics, runner
from experiments import spec as spec_mod
from experiments.run_lab import Run
from lb_apps.records import read_records
from tests.conftest import require_qdisc
from topologies.capabilities import qdisc_available

# A response already on its way when a fault took effect (a kill, a link down).
GRACE_SEC = 0.3

L7_SPEC = """\
name: faults_l7
seed: 3
topology: {name: lb_lab, params: {clients: 2}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 300}}
  - {name: b2, service: {dist: fixed, mean_ms: 2}}
  - {name: b3, service: {dist: fixed, mean_ms: 2}}
balancers:
  - name: px
    layer: l7
    engine: builtin
    algorithm: weighted_round_robin
    l7: {passive_health: {max_fails: 1, fail_timeout: 0.5}}
workload: {type: http, mode: closed, users: 6, think_ms: 5, keepalive: true, timeout_s: 2}
warmup_s: 1
duration_s: 7
faults:
  - {at_s: 1, action: set_weight, target: b2, value: 3}
  - {at_s: 2.5, action: drain_backend, target: b1}
  - {at_s: 3.5, action: kill_backend, target: b3}
  - {at_s: 4.5, action: restore_backend, target: b3}
  - {at_s: 5.5, action: backend_fault, target: b2, mode: slow, value: 150}
  - {at_s: 6.5, action: link_loss, target: s1-h1, value: 1, optional: true}
"""

L4_SPEC = """\
name: faults_l4
seed: 4
topology: {name: lb_lab, params: {clients: 2}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 200}}
  - {name: b2, service: {dist: fixed, mean_ms: 2}}
  - {name: b3, service: {dist: fixed, mean_ms: 2}}
balancers:
  - {name: l4, layer: l4, mode: l4, algorithm: weighted_round_robin}
workload: {type: http, mode: closed, users: 6, think_ms: 5, keepalive: false, timeout_s: 1}
warmup_s: 1
duration_s: 7.5
faults:
  - {at_s: 1, action: set_weight, target: b2, value: 3}
  - {at_s: 2.5, action: drain_backend, target: b1}
  - {at_s: 3.5, action: link_down, target: s1-h1}
  - {at_s: 4.9, action: link_up, target: s1-h1}
  - {at_s: 5, action: backend_fault, target: b3, mode: close}
  - {at_s: 6, action: stop_controller}
  - {at_s: 6.5, action: set_weight, target: b2, value: 1, optional: true}
"""

FAILING_SPEC = """\
name: faults_fail
seed: 5
topology: {name: lb_lab, params: {clients: 1}}
backends: 2
balancers:
  - {name: px, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: true}
warmup_s: 0.5
duration_s: 3
faults:
  - {at_s: 0.5, action: drain_backend, target: b1}
  - {at_s: 1, action: drain_backend, target: b2}
"""


DELAY_SPEC = """\
name: faults_delay
seed: 6
topology: {name: lb_lab, params: {clients: 1}}
backends: 2
balancers:
  - {name: px, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: true}
warmup_s: 0.5
duration_s: 3
faults:
  - {at_s: 1, action: link_delay, target: s1-h1, value: 100}
"""


def run_one(tmp_path_factory, text):
    """Run the spec's only balancer once; return ``(meta, raw folder)``."""
    base = tmp_path_factory.mktemp("faults")
    spec = spec_mod.loads_spec(text, "faults.yaml")
    ((order, config, balancer, sweep, point, rep),) = runner.plan_runs(spec, "sequential")
    run = Run(point, balancer, config, rep, order, sweep, str(base / config), seed=11)
    return run.execute(), run.dir


def loadgen_records(meta, raw):
    records = []
    for client in meta["clients"]:
        records += read_records(os.path.join(raw, f"loadgen-{client}.jsonl"), "loadgen")
    return records


def fault(meta, action, target=None):
    (found,) = [f for f in meta["faults"] if f["action"] == action
                and (target is None or f["target"] == target)]
    return found


def done_at(f):
    """When the fault's effect was confirmed (epoch seconds)."""
    return f["applied"] + f["took_s"]


def sent(r):
    """When a request was sent (its scheduled time if it never got a connection)."""
    return r["scheduled"] if r["start"] is None else r["start"]


def served(records, backend, t0=float("-inf"), t1=float("inf")):
    """Ok responses from ``backend`` to requests sent in [t0, t1)."""
    return [r for r in records if r["backend"] == backend and r["status"] == 200
            and t0 <= sent(r) < t1]


def check_applied(meta):
    assert meta["status"] == "ok", meta["failure"]
    for f in meta["faults"]:
        if not f["optional"]:
            assert f["skipped"] is None and f["failed"] is None, f


def check_set_weight(records, meta):
    """b2's weight goes from 1 to 3: its share against b3 (weight 1) moves from 1:1 to 3:1."""
    change = fault(meta, "set_weight", "b2")
    drain = fault(meta, "drain_backend", "b1")
    before = [len(served(records, b, t1=change["applied"])) for b in ("b2", "b3")]
    after = [len(served(records, b, done_at(change) + GRACE_SEC, drain["applied"]))
             for b in ("b2", "b3")]
    assert min(before + after) > 0, (before, after)
    # the ratio moves to whichever of the two weights' ratios (1 and 3) it is closer to
    assert before[0] / before[1] < 2 < after[0] / after[1], (before, after)


def check_drain(records, meta, backend_records):
    """No new request reaches the drained b1; those it was serving finish ok. (A connection
    whose first packet was on its way as the drain was confirmed may still reach b1: GRACE.)"""
    drain = fault(meta, "drain_backend", "b1")
    assert served(records, "b1", t1=drain["applied"]), "b1 served nothing before the drain"
    late = served(records, "b1", t0=done_at(drain) + GRACE_SEC)
    assert late == [], f"b1 got {len(late)} requests after the drain"
    in_flight = [r for r in records if sent(r) < drain["applied"] < r["end"]
                 and r["backend"] == "b1"]
    assert in_flight, "no request was on b1 when it was drained"
    assert all(r["status"] == 200 for r in in_flight), in_flight
    assert max(r["arrival"] for r in backend_records) < done_at(drain) + 2 * GRACE_SEC


# -- L7: the builtin proxy ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def l7(tmp_path_factory):
    meta, raw = run_one(tmp_path_factory, L7_SPEC)
    return meta, raw, loadgen_records(meta, raw)


def test_l7_faults_applied(l7):
    meta, raw, _ = l7
    check_applied(meta)
    assert [f["action"] for f in meta["faults"]] == [
        "set_weight", "drain_backend", "kill_backend", "restore_backend", "backend_fault",
        "link_loss"]
    config = json.load(open(os.path.join(raw, "proxy.json")))
    assert [b["name"] for b in config["backends"]] == ["b2", "b3"]


def test_l7_set_weight_moves_shares(l7):
    meta, _, records = l7
    check_set_weight(records, meta)


def test_l7_drain_lets_in_flight_finish(l7):
    meta, raw, records = l7
    check_drain(records, meta, read_records(os.path.join(raw, "backend-b1.jsonl"), "backend"))


def test_l7_kill_and_restore(l7):
    meta, raw, records = l7
    kill, restore = fault(meta, "kill_backend", "b3"), fault(meta, "restore_backend", "b3")
    assert served(records, "b3", kill["applied"] - 1.0, kill["applied"]), \
        "b3 served nothing just before the kill"
    assert served(records, "b3", kill["applied"] + GRACE_SEC, restore["applied"]) == []
    first = read_records(os.path.join(raw, "backend-b3.jsonl"), "backend")
    assert max(r["arrival"] for r in first) < kill["applied"] + GRACE_SEC
    # the restored process (its own records file) serves clients again
    again = read_records(os.path.join(raw, "backend-b3-2.jsonl"), "backend")
    assert again and min(r["arrival"] for r in again) >= restore["applied"]
    assert served(records, "b3", t0=done_at(restore))
    impact = metrics.fault_impact(records, None, meta["faults"])
    assert impact["recovery_s"] is not None and impact["recovery_s"] >= 0


def test_l7_backend_slow_mode_shows_in_client_latency(l7):
    """b2's responses take at least the added 150 ms once it is slow, and took less before."""
    meta, _, records = l7
    slow = fault(meta, "backend_fault", "b2")
    before = sorted(r["end"] - r["start"] for r in served(records, "b2", t1=slow["applied"]))
    after = [r["end"] - r["start"] for r in served(records, "b2", t0=done_at(slow))]
    assert before and after
    assert min(after) >= 0.150, min(after)
    assert before[len(before) // 2] < min(after)


# -- L4: the controller ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def l4(tmp_path_factory):
    meta, raw = run_one(tmp_path_factory, L4_SPEC)
    return meta, raw, loadgen_records(meta, raw)


def test_l4_faults_applied_and_the_optional_one_skipped(l4):
    meta, _, _ = l4
    check_applied(meta)
    skipped = meta["faults"][-1]
    assert skipped["optional"] and skipped["failed"] is None
    assert "controller is not running" in skipped["skipped"]
    assert any("set_weight b2" in w and "was not applied" in w
               for w in meta["fidelity"]["warnings"]), meta["fidelity"]["warnings"]


def test_l4_set_weight_moves_shares(l4):
    meta, _, records = l4
    (change, _) = [f for f in meta["faults"] if f["action"] == "set_weight"]
    drain = fault(meta, "drain_backend", "b1")
    before = [len(served(records, b, t1=change["applied"])) for b in ("b2", "b3")]
    after = [len(served(records, b, done_at(change) + GRACE_SEC, drain["applied"]))
             for b in ("b2", "b3")]
    assert min(before + after) > 0, (before, after)
    assert before[0] / before[1] < 2 < after[0] / after[1], (before, after)


def test_l4_drain_lets_in_flight_finish(l4):
    meta, raw, records = l4
    check_drain(records, meta, read_records(os.path.join(raw, "backend-b1.jsonl"), "backend"))


def test_l4_link_down_cuts_the_client_off_and_up_brings_it_back(l4):
    """The link is down for 1.4 s: a connection h1 starts as it goes down loses its SYN and
    the retransmission 1 s later, and its next try (3 s later) comes after the loader's 2-s
    connect timeout, so it fails whatever the timing. (With 1.0 s down, the retransmission
    raced the link's return: once it won, and no request of h1 failed.)"""
    meta, _, records = l4
    down, up = fault(meta, "link_down", "s1-h1"), fault(meta, "link_up", "s1-h1")
    h1 = [r for r in records if r["client"] == "h1"]
    h2 = [r for r in records if r["client"] == "h2"]
    cut = [r for r in h1 if r["status"] == 200 and done_at(down) + GRACE_SEC < r["end"]
           and sent(r) < up["applied"]]
    assert cut == [], f"h1 got {len(cut)} responses while its link was down"
    assert [r for r in h1 if sent(r) < up["applied"] and r["end"] > done_at(down)
            and r["error"]], "no request of h1 failed while its link was down"
    # h2 went on meanwhile, and h1 came back after the link came up
    assert [r for r in h2 if r["status"] == 200 and done_at(down) < sent(r) < up["applied"]]
    assert [r for r in h1 if r["status"] == 200 and sent(r) > done_at(up)]


def test_l4_backend_close_mode_shows_as_client_errors(l4):
    """From its close mode on, b3 sends half a response and closes: its clients get no ok
    response from it, and errors instead (a new connection per request, so b3 keeps its
    share of them until the controller stops)."""
    meta, _, records = l4
    close, stop = fault(meta, "backend_fault", "b3"), fault(meta, "stop_controller")
    assert served(records, "b3", t1=close["applied"])
    assert served(records, "b3", t0=done_at(close)) == []
    assert [r for r in records if done_at(close) < sent(r) < stop["applied"] and r["error"]
            and r["backend"] == "b3"]


def test_l4_stop_controller_leaves_new_connections_without_a_path(l4):
    meta, _, records = l4
    stop = fault(meta, "stop_controller")
    before = [r for r in records if r["status"] == 200 and sent(r) < stop["applied"]]
    after = [r for r in records if r["status"] == 200 and sent(r) > done_at(stop) + GRACE_SEC]
    assert before and after == [], f"{len(after)} new connections answered after the stop"
    assert [r for r in records if sent(r) > done_at(stop) and r["error"]]


def test_l7_optional_netem_fault_is_applied_or_skipped_with_the_reason(l7):
    """link_loss needs netem: applied where the kernel has it, else skipped, saying why."""
    meta, _, _ = l7
    loss = fault(meta, "link_loss", "s1-h1")
    assert loss["failed"] is None
    if qdisc_available("netem"):
        assert loss["skipped"] is None
    else:
        assert "netem" in loss["skipped"], loss
        assert any("link_loss s1-h1" in w and "netem" in w
                   for w in meta["fidelity"]["warnings"]), meta["fidelity"]["warnings"]


def test_link_delay_on_the_wire(tmp_path_factory):
    """A 100 ms delay on both ends of h1's link: each of its requests then takes at least a
    round trip of 200 ms more."""
    require_qdisc("netem")
    meta, raw = run_one(tmp_path_factory, DELAY_SPEC)
    check_applied(meta)
    delay = fault(meta, "link_delay", "s1-h1")
    records = loadgen_records(meta, raw)
    before = sorted(r["end"] - r["start"] for r in records
                    if r["status"] == 200 and sent(r) < delay["applied"])
    after = [r["end"] - r["start"] for r in records
             if r["status"] == 200 and sent(r) > done_at(delay)]
    assert before and after
    assert min(after) >= 0.200 and before[len(before) // 2] < min(after)


def test_a_netem_fault_fails_its_run_before_the_lab_where_there_is_no_netem(tmp_path_factory):
    if qdisc_available("netem"):
        pytest.skip("this kernel has netem: the refusal cannot be seen here")
    meta, raw = run_one(tmp_path_factory, DELAY_SPEC)
    assert meta["status"] == "failed"
    assert meta["failure"] == (
        "RunFailed: fault link_delay s1-h1 at 1 s cannot be applied on this machine: "
        "link_delay needs tc's netem qdisc (sch_netem), which this kernel does not have "
        "(lblab doctor says so); mark it optional: true to run without it")
    assert meta["network_up"] is None and not os.path.exists(os.path.join(raw, "logs"))


# -- a fault that cannot be applied ----------------------------------------------------------------

def test_a_fault_that_cannot_be_applied_fails_the_run(tmp_path_factory):
    meta, raw = run_one(tmp_path_factory, FAILING_SPEC)
    assert meta["status"] == "failed"
    assert meta["failure"].startswith("RunFailed: fault drain_backend b2 at 1 s could not be "
                                      "applied: the proxy would reject its new config"), \
        meta["failure"]
    first, second = meta["faults"]
    assert first["failed"] is None and first["skipped"] is None
    assert second["failed"] and second["skipped"] is None and not second["optional"]
    # the proxy kept the first drain's config (b2 alone) and served from b2 alone after it
    config = json.load(open(os.path.join(raw, "proxy.json")))
    assert [b["name"] for b in config["backends"]] == ["b2"]
    records = loadgen_records(meta, raw)
    assert served(records, "b2", t0=done_at(first))
    assert served(records, "b1", t0=done_at(first)) == []
