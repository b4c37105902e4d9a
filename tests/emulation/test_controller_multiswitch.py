"""VIPs across a chain of three switches (root): clients on s1, backends on s3, so the rewrite
happens on the client's edge switch and the reply is un-NATed on the backend's edge switch
(conntrack shared by the bridges of one datapath, reverse flows on the backend's edge)."""
import collections
import subprocess
import sys
import time

import pytest

from controllers import config as ctl_config
from controllers.harness import ControllerProcess, dsr_commands
from topologies import graphs
from topologies.network import LabNetwork

CLIENTS = ("h1", "h2")
BACKENDS = ("h4", "h5", "h6")  # lb_lab(clients=2, backends=3): h3 is the lb host
SERVICES = {
    "l4": ("10.0.0.100", 80, "l4", "round_robin"),
    "l4lc": ("10.0.0.101", 81, "l4", "least_connections"),
    "l3": ("10.0.0.102", 82, "l3", "round_robin"),
    "l2": ("10.0.0.103", 83, "l2", "round_robin"),
    "group": ("10.0.0.104", 84, "group", "five_tuple_hash"),
    "proactive": ("10.0.0.105", 85, "proactive", "ip_prefix"),
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    graph = graphs.lb_lab(clients=2, backends=3, switches=3)
    assert graphs.hosts(graph, "backend") == list(BACKENDS)
    services = {name: {"vip": vip, "port": port, "mode": mode, "algorithm": alg,
                       "backends": {b: 1 for b in BACKENDS}, "idle_timeout": 10,
                       "health": {"kind": "none"}}
                for name, (vip, port, mode, alg) in SERVICES.items()}
    cfg = {"topology": ctl_config.graph_to_data(graph), "services": services}
    with ControllerProcess(cfg, str(tmp_path_factory.mktemp("chain"))) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(graphs.switches(graph)), ctl.log_tail()
            for host in BACKENDS:
                lab.host(host).cmd("; ".join(dsr_commands(SERVICES["l2"][0], f"{host}-eth0")))
                for _vip, port, _mode, _alg in SERVICES.values():
                    lab.popen(host, [sys.executable, "-m", "lb_apps.backend.server", "--name", host,
                                     "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 15
            for host in BACKENDS:
                for _vip, port, _mode, _alg in SERVICES.values():
                    while "LISTEN" not in lab.host(host).cmd(
                            f"ss -ltnH 'sport = :{port}' | cut -c1-6"):
                        assert time.monotonic() < deadline, f"{host}:{port} never listened"
                        time.sleep(0.1)
            yield lab, ctl


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_mode_works_across_switches(chain, service):
    lab, ctl = chain
    vip, port = SERVICES[service][:2]
    served = []
    for client in CLIENTS:
        out = lab.host(client).cmd(
            f"for i in $(seq 6); do curl -s -m 3 -D - -o /dev/null http://{vip}:{port}/ "
            f"| grep -i '^x-backend' || echo 'X-Backend: FAILED'; done")
        served += [line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.lower().startswith("x-backend")]
    counts = collections.Counter(served)
    assert sum(counts.values()) == 12 and "FAILED" not in counts, (counts, ctl.log_tail())
    if SERVICES[service][3] in ("round_robin", "least_connections") and service != "l3":
        assert counts == {b: 4 for b in BACKENDS}, counts
