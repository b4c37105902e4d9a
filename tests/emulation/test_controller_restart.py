"""A controller restart loses nothing (root): the switch keeps its flows (fail_mode secure), an
open connection goes on, and the new controller re-learns in-flight connections from the
switch's flow table."""
import subprocess
import time

from controllers import config as ctl_config
from controllers.harness import ControllerProcess
from topologies import graphs
from topologies.network import LabNetwork

BACKENDS = ("h6", "h7", "h8", "h9")
VIP = "10.0.0.100"


def in_flight(ctl):
    backends = ctl.api("GET", "/services")[1]["web"]["backends"]
    return sum(b["in_flight"] or 0 for b in backends.values())


def test_restart_relearns_connections_and_keeps_traffic_flowing(tmp_path):
    graph = graphs.lb_lab()
    cfg = {"topology": ctl_config.graph_to_data(graph),
           "services": {"web": {"vip": VIP, "port": 80, "mode": "l4",
                                "algorithm": "least_connections", "idle_timeout": 60,
                                "backends": {b: 1 for b in BACKENDS},
                                "health": {"kind": "none"}}}}
    first = ControllerProcess(cfg, str(tmp_path / "first"))
    with first:
        cfg["controller"] = {"ofp_port": first.ofp_port, "api_port": first.api_port}
        with LabNetwork(graph, controller=("127.0.0.1", first.ofp_port)) as lab:
            assert first.wait_switches(["s1"]), first.log_tail()
            for host in BACKENDS:
                lab.popen(host, [".venv/bin/lblab", "backend", "--name", host, "--port", "80"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            slow = lab.host("h1").popen(
                ["curl", "-s", "-m", "40", "--limit-rate", "100k", "-o", "/dev/null",
                 "-w", "SIZE %{size_download}\n", f"http://{VIP}/size/800000"],
                stdout=subprocess.PIPE, text=True)
            try:
                out = lab.host("h2").cmd(
                    f"for i in 1 2 3 4; do curl -s -m 3 -o /dev/null -w '%{{http_code}} ' "
                    f"http://{VIP}/; done")
                assert out.split() == ["200"] * 4, out
                time.sleep(0.5)
                assert in_flight(first) == 5
                first.stop()
                with ControllerProcess(cfg, str(tmp_path / "second")) as second:
                    assert second.wait_switches(["s1"], timeout=30), second.log_tail()
                    deadline = time.monotonic() + 5
                    while in_flight(second) != 5 and time.monotonic() < deadline:
                        time.sleep(0.1)
                    assert in_flight(second) == 5, second.api("GET", "/services")
                    result, _ = slow.communicate(timeout=40)
                    assert "SIZE 800000" in result, result
                    again = lab.host("h3").cmd(f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' "
                                               f"http://{VIP}/")
                    assert again == "200", again
            finally:
                if slow.poll() is None:
                    slow.kill()
