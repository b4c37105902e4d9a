"""The emulation runtime on real Open vSwitch and Mininet (root)."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import require_qdisc
from tests.emulation.conftest import ping_until_replied, wait_listening
from topologies import graphs, registry
from topologies.capabilities import qdisc_available
from topologies.network import LabNetwork, NetworkError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IPERF3_PORT = 5201  # iperf3's default


def leftovers(record_data):
    """What of a run still exists: tagged bridges, root interfaces, live host shells."""
    run_id = record_data["run_id"]
    present = set(os.listdir("/sys/class/net"))
    return {
        "bridges": sorted(b for b, r in registry.tagged_bridges().items() if r == run_id),
        "interfaces": sorted(i for i in record_data["root_intfs"] if i in present),
        "processes": sorted(h["pid"] for h in record_data["hosts"].values()
                            if registry.alive(h["pid"], h["start"]))
                     + sorted(p["pid"] for p in record_data["processes"]
                              if registry.alive(p["pid"], p["start"])),
        "record": os.path.exists(os.path.join(registry.state_dir(), "runs", f"{run_id}.json")),
    }


NOTHING = {"bridges": [], "interfaces": [], "processes": [], "record": False}


@pytest.mark.parametrize("name, params", [
    ("single", dict(n=3)),
    ("linear", dict(n=3)),
    ("tree", dict(depth=2, fanout=2)),
    ("fat_tree", dict(k=4)),
    ("leaf_spine", dict(spines=2, leaves=2, hosts_per_leaf=2)),
    ("dumbbell", dict(hosts_per_side=2, bottleneck_bw=50)),
    ("lb_lab", dict(clients=2, backends=2, switches=2)),
])
def test_each_topology_pings_all_without_loss(name, params):
    graph = graphs.build(name, params)
    with LabNetwork(graph) as lab:
        assert lab.static_flows == graphs.has_loops(graph)
        # the first ping between two hosts waits for ARP and MAC learning, which a loaded
        # machine can stretch past any one-shot timeout: once each pair has answered, a
        # forwarding network loses nothing
        ping_until_replied(lab)
        assert lab.net.pingAll(timeout=2) == 0.0


def test_shaped_link_delivers_its_rate():
    graph = graphs.single(n=2, bw=20)
    with LabNetwork(graph) as lab:
        server = lab.popen("h2", ["iperf3", "-s", "-1", "-J"], stdout=subprocess.PIPE, text=True)
        wait_listening(lab, "h2", IPERF3_PORT)
        out = lab.host("h1").cmd("iperf3 -c 10.0.0.2 -t 4 -O 1 -J")
        result = json.loads(out[out.index("{"):])
        mbps = result["end"]["sum_received"]["bits_per_second"] / 1e6
        server.wait(timeout=10)
    assert 18.0 <= mbps <= 22.0, f"20 Mbit/s link measured {mbps:.1f} Mbit/s"


def test_unshaped_tcp_flows_on_this_datapath():
    # With offloads left on, TCP stalls at 0 bit/s on the userspace datapath (DESIGN.md).
    with LabNetwork(graphs.single(n=2)) as lab:
        lab.popen("h2", ["iperf3", "-s", "-1"])
        wait_listening(lab, "h2", IPERF3_PORT)
        out = lab.host("h1").cmd("iperf3 -c 10.0.0.2 -t 2 -J")
        mbps = json.loads(out[out.index("{"):])["end"]["sum_received"]["bits_per_second"] / 1e6
    assert mbps > 50, f"unshaped TCP measured only {mbps:.1f} Mbit/s"


def test_nothing_left_after_exit():
    with LabNetwork(graphs.lb_lab(clients=2, backends=2)) as lab:
        lab.popen("h3", ["sleep", "300"])
        data = json.loads(json.dumps(lab.record.data))
        assert leftovers(data)["bridges"] == ["s1"]
    assert leftovers(data) == NOTHING


def test_nothing_left_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with LabNetwork(graphs.fat_tree(k=2)) as lab:
            lab.popen("h1", ["sleep", "300"])
            data = json.loads(json.dumps(lab.record.data))
            raise RuntimeError("boom")
    assert leftovers(data) == NOTHING


def test_controller_mode_connects_switch_to_given_port():
    # No controller listens on the port: the bridge is in secure mode and points at it.
    with LabNetwork(graphs.single(n=2), controller=("127.0.0.1", 16653)) as lab:
        target = subprocess.run(["ovs-vsctl", "get-controller", "s1"], capture_output=True,
                                text=True).stdout.strip()
        fail_mode = subprocess.run(["ovs-vsctl", "get-fail-mode", "s1"], capture_output=True,
                                   text=True).stdout.strip()
        protocols = subprocess.run(["ovs-vsctl", "get", "bridge", "s1", "protocols"],
                                   capture_output=True, text=True).stdout
        assert target == "tcp:127.0.0.1:16653"
        assert fail_mode == "secure"
        assert "OpenFlow13" in protocols
        assert lab.net.pingAll(timeout=1) == 100.0  # secure mode, no controller: no forwarding


def test_delay_refused_without_netem():
    if qdisc_available("netem"):
        pytest.skip("this kernel has sch_netem: delay is emulated, nothing to refuse")
    before = set(os.listdir("/sys/class/net"))
    with pytest.raises(NetworkError) as info:
        with LabNetwork(graphs.dumbbell(hosts_per_side=1, bottleneck_bw=10,
                                        bottleneck_delay="10ms")):
            pass
    assert "link s1-s2 asks for delay=10ms" in str(info.value)
    assert "sch_netem" in str(info.value)
    assert set(os.listdir("/sys/class/net")) == before


def test_delay_is_emulated_with_netem():
    require_qdisc("netem")
    with LabNetwork(graphs.single(n=2, delay="10ms")) as lab:
        out = lab.host("h1").cmd("ping -c 3 -i 0.2 10.0.0.2")
    rtts = [float(x) for x in re.findall(r"time=([\d.]+)", out)]
    assert rtts and min(rtts) >= 38.0  # 4 traversals of a 10 ms link


KILLED_RUN = """
import sys, time
from topologies import graphs
from topologies.network import LabNetwork
lab = LabNetwork(graphs.lb_lab(clients=2, backends=2, switches=2)).__enter__()
lab.popen("h5", ["sleep", "300"])
print(lab.run_id, flush=True)
time.sleep(300)
"""


def test_lblab_clean_after_sigkill_removes_everything():
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the lab did not come up"
        path = os.path.join(registry.state_dir(), "runs", f"{run_id}.json")
        with open(path) as fp:
            data = json.load(fp)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        left = leftovers(data)
        assert left["bridges"] == ["s1", "s2"] and left["processes"] and left["record"]
        out = subprocess.run([sys.executable, "-m", "experiments.cli", "clean"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"run {run_id}: removed" in out.stdout
        assert leftovers(data) == NOTHING
    finally:
        if proc.poll() is None:
            proc.kill()


def test_foreign_interface_with_our_name_is_refused_and_kept():
    subprocess.run(["ip", "link", "add", "s1-eth2", "type", "veth", "peer", "name", "lbtestpeer0"],
                   check=True)
    try:
        with pytest.raises(NetworkError, match="interfaces s1-eth2 already exist"):
            with LabNetwork(graphs.single(n=2)):
                pass
        assert os.path.exists("/sys/class/net/s1-eth2"), "lblab deleted what it did not create"
    finally:
        subprocess.run(["ip", "link", "del", "s1-eth2"], capture_output=True)


def test_back_to_back_labs_reuse_names():
    # Namespaces die asynchronously; the next lab must not trip over the last one's veths.
    for _ in range(3):
        with LabNetwork(graphs.lb_lab(clients=2, backends=2)) as lab:
            ping_until_replied(lab)  # first ARP and MAC learning, as above
            assert lab.net.pingAll(timeout=1) == 0.0
