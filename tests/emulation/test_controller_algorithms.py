"""Every balancing algorithm end to end in the per-client (l3) and direct-server-return (l2)
modes (root): which backend served each connection is exactly the choice of the pure balancer.

One lb_lab (h1-h4 clients, h5 lb, h6-h9 backends) and one controller serve one service per
(mode, algorithm), each on its own VIP and port, so every service's balancer starts fresh from
the controller's seed and no test waits for another's flows to idle out. The expected backends
come from ``lb_apps.balancing.make_balancer(algorithm, weights, seed=SEED)`` fed the keys the
controller uses (``controllers.decisions.Core._balancer_key``) in the order the connections are
made, with ``on_open`` after each choice: the per-client (l3) and per-connection (l2) flows idle
out after ``IDLE_TIMEOUT``, far beyond a test, so no connection closes in the balancer meanwhile.
l2 connections use fixed client ports (``curl --local-port``) so the 5-tuple is known.

round_robin, least_connections, ip_hash and random on l2 are in ``test_controller.py``.
"""
import collections
import subprocess
import time

import pytest

from controllers import config as ctl_config
from controllers.harness import ControllerProcess, dsr_commands
from lb_apps.balancing import ALGORITHMS, make_balancer
from topologies import graphs
from topologies.network import LabNetwork

CLIENTS = ("h1", "h2", "h3", "h4")
BACKENDS = ("h6", "h7", "h8", "h9")
SEED = 7
IDLE_TIMEOUT = 120
WEIGHTED = ("weighted_round_robin", "weighted_least_connections", "random", "power_of_two",
            "consistent_hash")
WEIGHTS = (1, 1, 2, 4)
L2_ELSEWHERE = ("round_robin", "least_connections", "ip_hash", "random")
L3_ALGORITHMS = [a for a in ALGORITHMS if a in ctl_config.MODE_ALGORITHMS["l3"]]
L2_ALGORITHMS = [a for a in ALGORITHMS
                 if a in ctl_config.MODE_ALGORITHMS["l2"] and a not in L2_ELSEWHERE]
L3_PER_CLIENT = 3
L2_PER_CLIENT = 8
# name: (vip, port, mode, algorithm); VIPs and ports apart from test_controller.py's
SERVICES = {}
for _i, (_mode, _alg) in enumerate([("l3", a) for a in L3_ALGORITHMS]
                                   + [("l2", a) for a in L2_ALGORITHMS]):
    SERVICES[f"{_mode}_{_alg}"] = (f"10.0.0.{120 + _i}", 9100 + _i, _mode, _alg)


def weights(algorithm):
    """Return the pool of a service, backend -> weight, in insertion order."""
    if algorithm in WEIGHTED:
        return dict(zip(BACKENDS, WEIGHTS))
    return {b: 1 for b in BACKENDS}


def balancer_key(mode, algorithm, client_ip, client_port, vip, port):
    """The key the controller hands the balancer for a new client (l3) or connection (l2)."""
    if algorithm == "ip_hash" or (algorithm == "consistent_hash" and mode == "l3"):
        return client_ip
    if algorithm in ("five_tuple_hash", "consistent_hash"):
        return (6, client_ip, 0 if mode == "l3" else client_port, vip, port)
    return None


def expected_choices(service, connections):
    """Run the pure balancer over ``connections`` [(client_ip, client_port)] in order."""
    vip, port, mode, algorithm = SERVICES[service]
    balancer = make_balancer(algorithm, weights(algorithm), seed=SEED)
    chosen = []
    for client_ip, client_port in connections:
        name = balancer.choose(balancer_key(mode, algorithm, client_ip, client_port, vip, port))
        balancer.on_open(name)
        chosen.append(name)
    return chosen


def client_ports(service, client_index, count):
    """Distinct client ports per service and client, so no port is ever reused in the module."""
    base = 20000 + 500 * list(SERVICES).index(service) + 100 * client_index
    return list(range(base, base + count))


@pytest.fixture(scope="module")
def alab(tmp_path_factory):
    graph = graphs.lb_lab(clients=4, backends=4)
    assert graphs.hosts(graph, "backend") == list(BACKENDS)
    services = {name: {"vip": vip, "port": port, "mode": mode, "algorithm": alg,
                       "backends": weights(alg), "idle_timeout": IDLE_TIMEOUT,
                       "health": {"kind": "none"}}
                for name, (vip, port, mode, alg) in SERVICES.items()}
    cfg = {"controller": {"seed": SEED, "stats_interval": 0},
           "topology": ctl_config.graph_to_data(graph), "services": services}
    with ControllerProcess(cfg, str(tmp_path_factory.mktemp("algorithms"))) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(["s1"]), ctl.log_tail()
            ports = {str(port) for _vip, port, _m, _a in SERVICES.values()}
            for host in BACKENDS:
                cmds = []
                for vip, _port, mode, _alg in SERVICES.values():
                    if mode == "l2":
                        cmds += dsr_commands(vip, f"{host}-eth0")
                lab.host(host).cmd("; ".join(cmds))
                for _vip, port, _m, _a in SERVICES.values():
                    lab.popen(host, [".venv/bin/lblab", "backend", "--name", host,
                                     "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 40
            for host in BACKENDS:
                while True:
                    out = lab.host(host).cmd("ss -ltnH | awk '{print $4}'")
                    listening = {line.rsplit(":", 1)[-1] for line in out.split()}
                    if ports <= listening:
                        break
                    assert time.monotonic() < deadline, (host, sorted(ports - listening))
                    time.sleep(0.2)
            yield lab, ctl
            stats = ctl.api("GET", "/stats")[1]
            assert stats["controller"]["handler_errors"] == 0, ctl.log_tail()


def served_by(lab, client, service, count, local_ports=None):
    """Open ``count`` sequential HTTP connections from ``client``; return who served each."""
    vip, port = SERVICES[service][:2]
    fixed = "--local-port $p " if local_ports else ""
    loop = " ".join(str(p) for p in local_ports) if local_ports else f"$(seq {count})"
    out = lab.host(client).cmd(
        f"for p in {loop}; do curl -s -m 3 {fixed}-D - -o /dev/null "
        f"-H 'Connection: close' http://{vip}:{port}/ | grep -i '^x-backend' "
        f"|| echo 'X-Backend: FAILED'; done")
    return [line.split(":", 1)[1].strip() for line in out.splitlines()
            if line.lower().startswith("x-backend")]


@pytest.mark.parametrize("algorithm", L3_ALGORITHMS)
def test_l3_each_client_sticks_to_the_balancers_choice(alab, algorithm):
    lab, ctl = alab
    service = f"l3_{algorithm}"
    served = {c: served_by(lab, c, service, L3_PER_CLIENT) for c in CLIENTS}
    assert all(len(s) == L3_PER_CLIENT and "FAILED" not in s for s in served.values()), \
        (served, ctl.log_tail())
    # one decision per client IP: every connection of a client goes to one backend
    assert all(len(set(s)) == 1 for s in served.values()), served
    got = [served[c][0] for c in CLIENTS]
    expected = expected_choices(service, [(lab.host(c).IP(), None) for c in CLIENTS])
    assert got == expected, (algorithm, got, expected)
    if algorithm in ("round_robin", "least_connections"):
        assert sorted(got) == sorted(BACKENDS), got
    view = ctl.api("GET", "/services")[1][service]["backends"]
    assert {b: v["in_flight"] for b, v in view.items()} == \
        {b: got.count(b) for b in BACKENDS}, view


@pytest.mark.parametrize("algorithm", L2_ALGORITHMS)
def test_l2_every_connection_goes_where_the_balancer_chooses(alab, algorithm):
    lab, ctl = alab
    service = f"l2_{algorithm}"
    connections, got = [], []
    for index, client in enumerate(CLIENTS):
        ports = client_ports(service, index, L2_PER_CLIENT)
        got += served_by(lab, client, service, L2_PER_CLIENT, ports)
        connections += [(lab.host(client).IP(), p) for p in ports]
    assert len(got) == len(CLIENTS) * L2_PER_CLIENT and "FAILED" not in got, \
        (got, ctl.log_tail())
    expected = expected_choices(service, connections)
    assert got == expected, (algorithm, got, expected)
    counts = collections.Counter(got)
    if algorithm == "weighted_round_robin":
        # smooth WRR over a multiple of the weight total hits the weights exactly
        assert counts == {b: 32 * w // 8 for b, w in zip(BACKENDS, WEIGHTS)}, counts
    elif algorithm == "weighted_least_connections":
        # no connection closes (flows idle out after IDLE_TIMEOUT): in flight tracks weights
        assert counts == {b: 32 * w // 8 for b, w in zip(BACKENDS, WEIGHTS)}, counts
    else:
        assert len(counts) >= 2, counts  # a per-connection algorithm spreads connections
