"""l4 least connections in the switch (``in_flight: group``) on real Open vSwitch (root): the
counter flows (client SYN, FIN, RST) are accepted and count, in-flight counts follow open and
closed connections, the group's buckets leave the busy backends, and a new connection goes to a
least loaded one, with no packet-in."""
import collections
import re
import subprocess

import pytest

from controllers import config as ctl_config
from controllers.harness import ControllerProcess
from lblab_core.netutil import free_port
from tests.conftest import emulation_missing, wait_for
from tests.emulation.conftest import wait_listening
from topologies import graphs
from topologies.network import LabNetwork

pytestmark = pytest.mark.skipif(emulation_missing() is not None,
                                reason=emulation_missing() or "")

VIP, PORT = "10.0.0.100", 80
BACKENDS = ("h6", "h7", "h8", "h9")
IPS = {"10.0.0.6": "h6", "10.0.0.7": "h7", "10.0.0.8": "h8", "10.0.0.9": "h9"}
HOLD = ("import socket, sys, time\n"
        "s = [socket.create_connection((sys.argv[2], int(sys.argv[3])))\n"
        "     for _ in range(int(sys.argv[1]))]\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n")


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
    graph = graphs.lb_lab(clients=4, backends=4)
    cfg = {"topology": ctl_config.graph_to_data(graph),
           "controller": {"stats_interval": 0, "reweight_interval": 0.1},
           "services": {"web": {"vip": VIP, "port": PORT, "mode": "l4",
                                "algorithm": "least_connections", "in_flight": "group",
                                "backends": {b: 1 for b in BACKENDS},
                                "health": {"kind": "none"}}}}
    with ControllerProcess(cfg, str(tmp_path_factory.mktemp("steer"))) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(graphs.switches(graph)), ctl.log_tail()
            for host in BACKENDS:
                lab.popen(host, [".venv/bin/lblab", "backend", "--name", host, "--port",
                                 str(PORT)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
            for host in BACKENDS:
                wait_listening(lab, host, PORT)
            yield lab, ctl


def in_flight(ctl):
    backends = ctl.api("GET", "/services")[1]["web"]["backends"]
    return {b: v["in_flight"] for b, v in backends.items()}


def buckets(lab):
    """Return the backends of the select group's buckets with their weights."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", "s1"],
                         capture_output=True, text=True, check=True).stdout
    return {IPS[ip]: int(w) for w, ip in re.findall(r"weight:(\d+),.*?nat\(dst=([\d.]+)\)",
                                                    out)}


def curl_backend(lab, client="h2", vip=VIP, port=PORT):
    out = lab.host(client).cmd(f"curl -s -m 3 -D - -o /dev/null http://{vip}:{port}/")
    for line in out.splitlines():
        if line.lower().startswith("x-backend"):
            return line.split(":", 1)[1].strip()
    return None


@pytest.mark.parametrize("build", ["mininet", "batched"])
def test_a_lab_with_a_controller_leaves_no_controller_shell(monkeypatch, build):
    # Mininet's RemoteController has a shell (bash -is mininet:c0) that Mininet's stop never
    # ended: with LBLAB_MININET_BUILD=mininet every lab left one behind. Before the steered
    # tests (their module-wide lab holds the lab lock).
    monkeypatch.setenv("LBLAB_MININET_BUILD", build)
    with LabNetwork(graphs.lb_lab(clients=1, backends=1),
                    controller=("127.0.0.1", free_port())) as lab:
        [c0] = lab.net.controllers
        shell = c0.shell
        assert shell.poll() is None
    wait_for(lambda: shell.poll() is not None, f"c0's shell (pid {shell.pid}) to end", 5)


def test_counter_flows_are_installed_and_nothing_is_refused(steered):
    lab, ctl = steered
    flows = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "s1"],
                           capture_output=True, text=True, check=True).stdout
    assert len(re.findall(r"tcp_flags=", flows)) == 3 * len(BACKENDS), flows
    assert ctl.api("GET", "/stats")[1]["switches"]["s1"]["errors"] == 0
    assert ctl.api("GET", "/services")[1]["web"]["data_path"] == "conntrack+reweighted-group"


def test_in_flight_follows_open_and_closed_connections(steered):
    lab, ctl = steered
    before = ctl.api("GET", "/stats")[1]["services"]["web"]["packet_ins"]
    hold = lab.popen("h1", ["python3", "-c", HOLD, "6", VIP, str(PORT)], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "open"
        counts = wait_for(lambda: (lambda c: c if sum(c.values()) == 6 else None)(
            in_flight(ctl)), "6 connections in flight")
        least = min(counts.values())
        # with one arrival per interval since, only the least loaded backends keep buckets
        wait_for(lambda: set(buckets(lab)) == {b for b, n in counts.items() if n == least},
                 f"buckets only for the least loaded of {counts}")
        served = curl_backend(lab)
        assert served in {b for b, n in counts.items() if n == least}, (served, counts)
    finally:
        hold.stdin.close()      # the client exits: its FINs close the 6 connections
        hold.wait(timeout=10)
    wait_for(lambda: sum(in_flight(ctl).values()) == 0, "no connection in flight")
    # the new connections of this test took the group: no VIP packet came to the controller
    # (the switch's packet-ins also count the clients' ARP for the VIP)
    assert ctl.api("GET", "/stats")[1]["services"]["web"]["packet_ins"] == before == 0


def test_short_connections_spread_over_every_backend(steered):
    lab, ctl = steered
    served = collections.Counter(curl_backend(lab, "h3") for _ in range(40))
    assert set(served) == set(BACKENDS), served
    wait_for(lambda: sum(in_flight(ctl).values()) == 0, "every short connection closed")

