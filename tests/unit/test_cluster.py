"""The cluster's pure parts and its agent (no root, no SSH): placement, ssh command lines, the
private sshd's configs, the warnings, the spec's cluster section and --servers, the agent's
registry record and its exec wrapper."""
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from experiments import runner
from experiments import spec as S
from lb_apps.balancing import make_balancer
from topologies import graphs, registry
from topologies.cluster import agent as A
from topologies.cluster import placement as P
from topologies.cluster import private_sshd, servers, ssh

SPEC = """\
name: c
topology: {name: lb_lab, params: {clients: 2, backends: 3}}
backends: 3
balancers: [{name: w, layer: l7, algorithm: weighted_round_robin}]
workload: {type: http}
"""


def _lb_lab_roles(graph):
    return {h: graph.nodes[h]["role"] for h in graphs.hosts(graph)}


# -- placement ---------------------------------------------------------------------------------

def test_role_placement_puts_clients_first_and_the_service_last_with_switches_beside_hosts():
    g = graphs.build("lb_lab", {"clients": 2, "backends": 3})
    placed = P.place(g, ["a", "b"], "role", _lb_lab_roles(g))
    roles = _lb_lab_roles(g)
    assert {placed[h] for h, r in roles.items() if r == "client"} == {"a"}
    assert {placed[h] for h, r in roles.items() if r in ("lb", "backend")} == {"b"}
    for switch in graphs.switches(g):
        hosts = [p for p in g.neighbors(switch) if g.nodes[p]["kind"] == "host"]
        most = max(("a", "b"), key=lambda s: sum(placed[h] == s for h in hosts))
        assert placed[switch] == most
    crossing = P.cross_links(g, placed)
    assert crossing and all(placed[a] != placed[b] for a, b, _ in crossing)


def test_roles_can_name_the_servers_and_unknown_ones_are_refused():
    g = graphs.build("lb_lab", {"clients": 2, "backends": 2})
    placed = P.place(g, ["a", "b", "c"], "role", _lb_lab_roles(g), {"backend": "c", "lb": "a"})
    assert {placed[h] for h in graphs.hosts(g, "backend")} == {"c"}
    assert {placed[h] for h in graphs.hosts(g, "lb")} == {"a"}
    with pytest.raises(P.PlacementError, match="cluster.roles.lb: 'z' is not one of"):
        P.place(g, ["a", "b"], "role", _lb_lab_roles(g), {"lb": "z"})
    with pytest.raises(P.PlacementError, match="named twice"):
        P.place(g, ["a", "a"])
    with pytest.raises(P.PlacementError, match="expected one of role"):
        P.place(g, ["a"], "nearest")


def test_one_server_places_everything_there():
    g = graphs.build("fat_tree", {"k": 4})
    assert set(P.place(g, ["only"], "role", {}).values()) == {"only"}


@pytest.mark.parametrize("policy", ["switchbin", "roundrobin", "random"])
def test_the_cluster_editions_placers_place_every_node_on_a_given_server(policy):
    pytest.importorskip("mininet.examples.cluster")
    g = graphs.build("fat_tree", {"k": 4})
    placed = P.place(g, ["a", "b"], policy, seed=3)
    assert set(placed) == set(g.nodes) and set(placed.values()) <= {"a", "b"}
    assert P.place(g, ["a", "b"], policy, seed=3) == placed      # seeded: the same again
    if policy == "switchbin":      # hosts beside their switch: only switch links cross
        assert all(g.nodes[a]["kind"] == g.nodes[b]["kind"] == "switch"
                   for a, b, _ in P.cross_links(g, placed))


# -- ssh command lines and the private sshd ----------------------------------------------------

def test_ssh_commands_take_the_config_quote_the_command_and_never_sudo():
    argv = ssh.remote("server2", ["echo", "a b", "$HOME"], "/x/cfg")
    assert argv[:3] == ["ssh", "-F", "/x/cfg"] and argv[-2] == "server2"
    assert shlex.split(argv[-1]) == ["echo", "a b", "$HOME"]
    assert "sudo" not in " ".join(argv) and "-T" in argv
    assert "-tt" in ssh.ssh_base("server2", None, tty=True)
    assert ssh.remote("localhost", ["true"]) == ["true"]


def test_config_path_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv(ssh.ENV_CONFIG, "rel/cfg")
    assert ssh.config_path() == os.path.abspath("rel/cfg")
    assert ssh.config_path("/a") == "/a"
    monkeypatch.delenv(ssh.ENV_CONFIG)
    assert ssh.config_path() is None


def test_private_sshd_configs_allow_tunnels_and_carry_each_servers_state_dir():
    text = private_sshd.sshd_config_text("/f", "127.0.0.2", 2222)
    for line in ("ListenAddress 127.0.0.2", "Port 2222", "PermitTunnel ethernet",
                 "AcceptEnv LBLAB_*", "PasswordAuthentication no", "HostKey /f/host_key"):
        assert line in text.splitlines()
    client = private_sshd.client_config_text("server2", "127.0.0.2", 2222, "/f/k", "/f/kh",
                                             {"LBLAB_STATE_DIR": "/s2"})
    assert "Host server2" in client and "  SetEnv LBLAB_STATE_DIR=/s2" in client.splitlines()


# -- warnings ----------------------------------------------------------------------------------

def test_clock_offset_warns_only_above_its_share_of_the_shortest_interval():
    limit = servers.OFFSET_FRACTION * 10.0
    assert servers.clock_warning(limit * 0.9, 10.0, "s2") is None
    assert "s2" in servers.clock_warning(-limit * 1.1, 10.0, "s2")


def test_a_cross_link_faster_than_its_tunnel_is_warned_about():
    info = {"s2": {"ssh_rate_mbit": 100.0}}
    slow = {"link": "s1-h3", "servers": ["localhost", "s2"], "bw_mbit": 50}
    fast = dict(slow, bw_mbit=500)
    unshaped = dict(slow, bw_mbit=None)
    assert servers.link_warnings([slow], info) == []
    assert "500 Mbit/s" in servers.link_warnings([fast], info)[0]
    assert "unshaped" in servers.link_warnings([unshaped], info)[0]


def test_parse_servers():
    assert servers.parse_servers("localhost, s2") == ["localhost", "s2"]
    for bad in ("", "a,,b", " , "):
        with pytest.raises(ValueError, match="--servers"):
            servers.parse_servers(bad)


# -- the spec's cluster section and --servers --------------------------------------------------

def _load(text, overrides=()):
    return S.loads_spec(text, "c.yaml", list(overrides))


def test_servers_flag_overrides_the_spec_cluster():
    args = runner.build_parser().parse_args(["x.yaml", "--servers", "localhost,s2",
                                             "--ssh-config", "/cfg"])
    spec = _load(SPEC + "cluster: {servers: [a, b], placement: switchbin}\n",
                 runner.overrides_of(args))
    assert spec.cluster.servers == ("localhost", "s2")
    assert spec.cluster.placement == "switchbin" and spec.cluster.ssh_config == "/cfg"
    assert _load(SPEC).cluster is None


@pytest.mark.parametrize("section, expected", [
    ("{servers: []}", "cluster.servers"),
    ("{servers: [a, a]}", "a server is named twice"),
    ("{servers: [a], roles: {lb: b}}", "roles.lb: b is not one of the servers"),
    ("{servers: [a], placement: nearest}", "cluster.placement"),
    ("{servers: ['a b']}", "cluster.servers[0]: 'a b': expected a name"),
    ("{servers: [a], where: b}", "cluster.where"),
])
def test_a_bad_cluster_section_is_one_located_line(section, expected):
    with pytest.raises(S.SpecError) as err:
        _load(SPEC + f"cluster: {section}\n")
    lines = str(err.value).splitlines()
    assert len(err.value.errors) == 1 and expected in err.value.errors[0]
    assert "c.yaml:6:" in lines[0] or "c.yaml:6:" in err.value.errors[0]


# -- the agent -----------------------------------------------------------------------------------

def test_agent_records_before_creation_and_cleans_its_record(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path))
    agent = A.Agent()
    work = agent.handle({"op": "create", "run_id": "r1", "switches": ["s9"],
                         "root_intfs": ["s9-eth1"], "wait_sec": 1})["work"]
    assert os.path.isdir(work) and work.startswith(str(tmp_path))
    agent.handle({"op": "intfs", "names": ["tap4000"]})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    agent.handle({"op": "process", "pid": sleeper.pid, "marker": "test"})
    (record,) = registry.RunRecord.load_all()
    assert record.run_id == "r1" and record.data["kind"] == "cluster"
    assert record.data["root_intfs"] == ["s9-eth1", "tap4000"]
    assert record.owner_alive()
    removed = agent.handle({"op": "clean"})["removed"]
    assert sleeper.wait(5) is not None and sleeper.pid in removed["processes"]
    assert registry.RunRecord.load_all() == [] and not os.path.exists(work)
    assert "error" in json.dumps(_answers(["{\"op\": \"nope\"}"]))


def _answers(lines):
    import io
    out = io.StringIO()
    A.serve(io.StringIO("\n".join(lines) + "\n"), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_agent_exec_stops_its_process_when_stdin_closes():
    proc = subprocess.Popen([sys.executable, "-m", "topologies.cluster.agent", "exec", "--",
                             sys.executable, "-c",
                             "import signal,sys,time\n"
                             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
                             "print('up', flush=True)\ntime.sleep(60)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    proc.stdin.close()
    assert proc.wait(10) == 7            # the child's own exit status comes back


def test_weighted_round_robin_deviation_bound_used_by_the_emulation_test():
    """The emulation test's tolerance: WRR keeps every prefix within its bound of the exact share."""
    from tests.emulation.test_cluster import wrr_deviation_bound
    weights = {"b1": 1, "b2": 2, "b3": 3}
    bound = wrr_deviation_bound(weights)
    assert 0 < bound < sum(weights.values())
    balancer = make_balancer("weighted_round_robin", {k: int(v) for k, v in weights.items()})
    counts = dict.fromkeys(weights, 0)
    for n in range(1, 601):
        counts[balancer.choose()] += 1
        for name, w in weights.items():
            assert abs(counts[name] - n * w / 6.0) <= bound


def test_time_is_monotonic_enough_for_offsets():
    t0 = time.time()
    assert A.Agent().handle({"op": "time"})["time"] >= t0


def test_setup_installs_openssh_server_but_never_starts_or_configures_the_systems_sshd():
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "setup.sh"),
                encoding="utf-8").read()
    block = text[text.index("openssh-server"):text.index("# --- 2. virtualenv")]
    assert "policy-rc.d" in block and "exit 101" in block           # the postinst cannot start it
    assert "disable" in block and "systemctl start" not in block
    assert "/etc/ssh" not in block and "sshd_config" not in block.replace(
        "sshd_config untouched", "")
    assert subprocess.run(["bash", "-n", "-c", text]).returncode == 0


def test_doctor_and_clean_refuse_a_bad_servers_list_in_one_line():
    for command in ("doctor", "clean"):
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "lblab"), command,
                               "--servers", "a,,b"], capture_output=True, text=True)
        if command == "clean" and os.geteuid() != 0:
            continue      # clean refuses non-root first
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"lblab {command}: error: --servers 'a,,b': expected server names separated by "
            f"commas (e.g. localhost,server2)"]


def test_clean_record_never_sweeps_our_own_namespace_when_pid_1s_is_unreadable(tmp_path,
                                                                              monkeypatch):
    """A switch's shell lives in the root namespace; where /proc/1/ns/net cannot be read, its
    namespace must not be taken for a host's (that killed every process of the machine)."""
    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path))
    real = registry._netns
    monkeypatch.setattr(registry, "_netns", lambda pid: None if pid == 1 else real(pid))
    swept = []
    monkeypatch.setattr(registry, "_pids_in_netns", lambda ns: swept.append(ns) or [])
    shell = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    record = registry.RunRecord.create(run_id="r2")
    record.add_host("s1", shell.pid)
    removed = registry.clean_record(record)
    assert swept == [] and removed["processes"] == [shell.pid]
    assert shell.wait(5) is not None
