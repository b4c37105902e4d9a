"""Two "servers" on one machine: this one and a private sshd on 127.0.0.2 (its own host key, a key
made for the test, its own state dir through the SSH config's SetEnv), reached from 127.0.0.3
(``BindAddress``), so the "server" sees this machine at 127.0.0.3 as a real second machine sees
it at an address other than 127.0.0.1. The system's sshd and /etc are not touched. A small spec
runs with its clients here and its balancer and backends on the other "server"; weighted round
robin's per-backend counts must match the single-server run's within the algorithm's own bound.
Then an L4 run, whose remote switch must reach the controller at 127.0.0.3 and whose backend on
the other "server" is killed and restored there, is SIGKILLed, and ``lblab clean --servers``
must leave nothing on either side. HAProxy, nginx, a reload and iperf3 on the other "server"
are opt-in (``LBLAB_CLUSTER_FULL=1``, ~90 s more).

By hand: ``flock /tmp/lblab-emulation.lock .venv/bin/python -m pytest tests/emulation/test_cluster.py``.
"""
import glob
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LBLAB = os.path.join(os.path.dirname(sys.executable), "lblab")
WEIGHTS = {"b1": 1, "b2": 2, "b3": 3}
USERS = 4
SEEN_AS = "127.0.0.3"       # this machine's address as the other "server" sees it
SPEC = f"""\
name: cluster_wrr
seed: 7
topology:
  name: lb_lab
  params: {{clients: 2, backends: 3}}
backends:
{''.join(f'  - {{name: {n}, weight: {w}, service: {{dist: fixed, mean_ms: 2}}}}{chr(10)}'
         for n, w in WEIGHTS.items())}balancers:
  - {{name: l7_wrr, layer: l7, engine: builtin, algorithm: weighted_round_robin}}
workload: {{type: http, mode: closed, users: {USERS}, keepalive: true}}
warmup_s: 0.5
duration_s: 3
"""


def wrr_deviation_bound(weights):
    """The most any backend's count strays from its exact share over any prefix of picks of the
    shared weighted round robin (``lb_apps.balancing``), measured over a few whole cycles."""
    from lb_apps.balancing import make_balancer
    balancer = make_balancer("weighted_round_robin", dict(weights))
    total = sum(weights.values())
    counts = dict.fromkeys(weights, 0)
    worst = 0.0
    for n in range(1, 4 * int(total) + 1):
        counts[balancer.choose()] += 1
        worst = max(worst, max(abs(counts[b] - n * w / total) for b, w in weights.items()))
    return worst


@pytest.fixture
def two_servers(tmp_path, monkeypatch):
    from topologies.cluster.private_sshd import PrivateSshd
    here, there = tmp_path / "state-here", tmp_path / "state-there"
    monkeypatch.setenv("LBLAB_STATE_DIR", str(here))
    with PrivateSshd(tmp_path / "sshd", name="server2", address="127.0.0.2",
                     env={"LBLAB_STATE_DIR": str(there)}, bind_address=SEEN_AS) as sshd:
        yield {"ssh_config": sshd.ssh_config, "here": here, "there": there, "tmp": tmp_path}


def _run(tmp, out, *extra, check=True, text=SPEC):
    spec = tmp / "spec.yaml"
    spec.write_text(text)
    proc = subprocess.run([LBLAB, "run", str(spec), "--out", str(out), "--no-calibration",
                           "--quiet", *extra], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _served(results, weights=WEIGHTS):
    """{backend: requests it served} and the load generators' failed requests, from raw records."""
    from lb_apps.records import iter_records
    (run,) = glob.glob(os.path.join(results, "*", "raw", "*"))
    counts = {name: sum(1 for _ in iter_records(os.path.join(run, f"backend-{name}.jsonl"),
                                                "backend"))
              for name in weights}
    failed = [r for path in glob.glob(os.path.join(run, "loadgen-*.jsonl"))
              for r in iter_records(path) if r["error"] is not None or r["status"] != 200]
    with open(os.path.join(run, "meta.json"), encoding="utf-8") as fp:
        meta = json.load(fp)
    return counts, len(failed), meta


def test_a_spec_across_two_servers_shares_like_one_server(two_servers):
    tmp = two_servers["tmp"]
    _run(tmp, tmp / "one")
    _run(tmp, tmp / "two", "--servers", "localhost,server2",
         "--ssh-config", two_servers["ssh_config"])
    one, one_errors, _ = _served(str(tmp / "one"))
    two, two_errors, meta = _served(str(tmp / "two"))
    assert one_errors == 0 and two_errors == 0
    placed = meta["cluster"]["placement"]
    assert {placed[c] for c in meta["clients"]} == {"localhost"}
    assert placed[meta["lb"]] == "server2"
    assert {placed[b["host"]] for b in meta["backends"]} == {"server2"}
    assert meta["cluster"]["server_info"]["server2"]["ssh_rate_mbit"] > 0
    # Per run, a backend's count is within the algorithm's bound of its exact share of the
    # picks, and the picks still in flight when the load stopped (at most one per user) were
    # made but not recorded: so the two runs agree within both runs' (bound + users).
    tolerance = wrr_deviation_bound(WEIGHTS) + USERS
    n_one, n_two = sum(one.values()), sum(two.values())
    assert n_one > 0 and n_two > 0
    for name in WEIGHTS:
        assert abs(two[name] - one[name] * n_two / n_one) <= tolerance * (1 + n_two / n_one), \
            (name, one, two, tolerance)


L4_SPEC = """\
name: cluster_l4
seed: 7
topology:
  name: lb_lab
  params: {clients: 2, backends: 2}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 2}}
  - {name: b2, service: {dist: fixed, mean_ms: 2}}
balancers:
  - {name: l4_rr, layer: l4, mode: l4, algorithm: round_robin}
workload: {type: http, mode: closed, users: 2, keepalive: false}
faults:
  - {at_s: 0.4, action: kill_backend, target: b2}
  - {at_s: 0.9, action: restore_backend, target: b2}
warmup_s: 0.3
duration_s: 60
"""


def _json(pattern):
    (path,) = glob.glob(pattern)
    with open(path, encoding="utf-8") as fp:
        return json.load(fp)


def test_l4_on_the_other_server_then_sigkill_and_clean_servers_leaves_nothing(two_servers):
    """An L4 run (its backends and their switch on server2, in fail-mode secure: a request is
    answered only through flows that switch got from the controller, which listens on
    127.0.0.3 alone, this machine's address as server2 sees it); b2 is SIGKILLed on server2
    and restarted there (the restart is refused unless the kill took). Once the restarted b2
    has served, the runner is SIGKILLed, and ``lblab clean --servers`` must leave nothing on
    either side: records, bridges, interfaces, processes (the controller's too), agents."""
    from topologies import registry
    tmp, here, there = two_servers["tmp"], two_servers["here"], two_servers["there"]
    spec = tmp / "spec.yaml"
    spec.write_text(L4_SPEC)
    runner = subprocess.Popen([LBLAB, "run", str(spec), "--out", str(tmp / "killed"),
                               "--no-calibration", "--quiet",
                               "--servers", "localhost,server2",
                               "--ssh-config", two_servers["ssh_config"]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

    def remote_record():
        for path in glob.glob(str(there / "runs" / "*.json")):
            with open(path, encoding="utf-8") as fp:
                data = json.load(fp)
            if len(data["hosts"]) >= 3:
                return data
        return None

    def restored_served():
        return [p for p in glob.glob(str(there / "work" / "*" / "backend-b2-2.jsonl"))
                if os.path.getsize(p) > 0]

    try:
        remote = wait_for(remote_record, "the other server's record with its hosts", 120)
        wait_for(restored_served, "records of b2 restarted on server2", 120)
        remote = remote_record()
        local = []
        for path in glob.glob(str(here / "runs" / "*.json")):
            with open(path, encoding="utf-8") as fp:
                local.append(json.load(fp))
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    results = str(tmp / "killed" / "*")
    assert _json(os.path.join(results, "raw", "*", "controller.json"))["controller"][
        "ofp_host"] == SEEN_AS
    assert _json(os.path.join(results, "manifest.json"))["cluster"]["clocks"]["server2"][
        "this_machine_as"] == SEEN_AS
    clean = subprocess.run([LBLAB, "clean", "--servers", "localhost,server2", "--ssh-config",
                            two_servers["ssh_config"]], capture_output=True, text=True,
                           timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert glob.glob(str(here / "runs" / "*.json")) == []
    assert glob.glob(str(there / "runs" / "*.json")) == []
    assert not os.listdir(there / "work") if (there / "work").exists() else True
    tagged = registry.tagged_bridges().values()
    assert [r["run_id"] for r in local if r["run_id"] in tagged] == []
    links = registry.existing_links()
    left = [i for r in local + [remote] for i in r["root_intfs"] if i in links]
    assert left == []
    entries = [e for r in local + [remote]
               for e in list(r["hosts"].values()) + r["processes"]]
    assert any(e.get("marker") == "controller" for r in local for e in r["processes"])
    assert [e["pid"] for e in entries if registry.alive(e["pid"], e["start"])] == []
    agents = subprocess.run(["pgrep", "-f", "topologies.cluster.agent"], capture_output=True,
                            text=True).stdout.split()
    assert agents == []


# -- the remote parts not in `make test` (LBLAB_CLUSTER_FULL=1 runs them: ~90 s more) -----------

FULL = {
    "engines": """\
name: engines
seed: 7
topology: {name: lb_lab, params: {clients: 2, backends: 3}}
backends: 3
balancers:
  - {name: hap, layer: l7, engine: haproxy, algorithm: round_robin}
  - {name: ngx, layer: l7, engine: nginx, algorithm: round_robin}
workload: {type: http, mode: closed, users: 4, keepalive: true}
warmup_s: 0.3
duration_s: 2
""",
    "drain": """\
name: drain
seed: 7
topology: {name: lb_lab, params: {clients: 2, backends: 3}}
backends: 3
balancers:
  - {name: l7, layer: l7, engine: builtin, algorithm: round_robin}
workload: {type: http, mode: closed, users: 4, keepalive: true}
faults:
  - {at_s: 1.0, action: drain_backend, target: b3}
warmup_s: 0.3
duration_s: 2.5
""",
    "iperf": """\
name: iperf
seed: 7
topology: {name: lb_lab, params: {clients: 2, backends: 2}}
backends: 2
balancers:
  - {name: l3_rr, layer: l4, mode: l3, algorithm: round_robin}
workload: {type: iperf3, flows: 1}
warmup_s: 0.5
duration_s: 2
""",
}
DRAIN_GRACE_SEC = 0.1     # a request the proxy sent just before its reload may still arrive


# Defined only when asked for, so that `make test` neither runs nor skips them (CI counts a
# skipped emulation test as a failure).
if os.environ.get("LBLAB_CLUSTER_FULL") == "1":
    @pytest.mark.parametrize("name", sorted(FULL))
    def test_the_other_servers_lb_host_runs_engines_reloads_and_iperf3(two_servers, name):
        from lb_apps.records import iter_records
        tmp = two_servers["tmp"]
        _run(tmp, tmp / name, "--servers", "localhost,server2",
             "--ssh-config", two_servers["ssh_config"], text=FULL[name])
        for run in sorted(glob.glob(str(tmp / name / "*" / "raw" / "*"))):
            with open(os.path.join(run, "meta.json"), encoding="utf-8") as fp:
                meta = json.load(fp)
            assert meta["status"] == "ok", meta["failure"]
            assert meta["cluster"]["placement"][meta["lb"]] == "server2"
            failed = [r for path in glob.glob(os.path.join(run, "loadgen-*.jsonl"))
                      for r in iter_records(path) if r["error"] is not None or r["status"] != 200]
            assert failed == []
            if meta["balancer"]["engine"] == "nginx":     # written on server2, brought back
                assert os.path.getsize(os.path.join(run, "nginx", "access.log")) > 0
            if name == "drain":
                (drain,) = meta["faults"]
                assert drain["failed"] is None
                done = drain["applied"] + drain["took_s"] + DRAIN_GRACE_SEC
                late = [r for r in iter_records(os.path.join(run, "backend-b3.jsonl"), "backend")
                        if r["arrival"] > done]
                assert late == []
            if name == "iperf":
                assert meta["cluster"]["controller"]["listen"] == SEEN_AS
                assert sorted(f["backend"] for f in meta["iperf3_flows"]) == ["b1", "b2"]
