"""A controller restart loses nothing (root): the switch keeps its flows (fail_mode secure), an
open connection goes on, and the new controller re-learns in-flight connections from the
switch's flow table."""
from controllers import config as ctl_config
from controllers.harness import ControllerProcess, start_http_backend
from tests.conftest import wait_for
from tests.emulation.conftest import HeldDownload, established
from topologies import graphs
from topologies.network import LabNetwork

BACKENDS = ("h6", "h7", "h8", "h9")
VIP = "10.0.0.100"
SIZE = 800_000  # bytes: far more than the held client's window, so most stay on the server


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
                start_http_backend(lab, host, 80)
            # an open connection, held mid-flight across the restart
            held = HeldDownload(lab, "h1", VIP, 80, SIZE)
            try:
                out = lab.host("h2").cmd(
                    f"for i in 1 2 3 4; do curl -s -m 3 -o /dev/null -w '%{{http_code}} ' "
                    f"http://{VIP}/; done")
                assert out.split() == ["200"] * 4, out
                # each connection was counted when the controller chose its backend (its
                # packet-in came before its first reply); closed ones stay counted until their
                # flows idle out (60 s)
                assert in_flight(first) == 5, first.api("GET", "/services")
                first.stop()
                with ControllerProcess(cfg, str(tmp_path / "second")) as second:
                    assert second.wait_switches(["s1"], timeout=30), second.log_tail()
                    wait_for(lambda: in_flight(second) == 5,
                             "the new controller re-learning 5 connections from the flows",
                             timeout_sec=5)
                    # the held connection lived through it, still in flight on its backend
                    queues = established(lab, held.backend, 80, held.client_port)
                    assert queues is not None and queues[1] > 0, (held.backend, queues)
                    assert held.resume() == (SIZE, "eof")
                    again = lab.host("h3").cmd(f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' "
                                               f"http://{VIP}/")
                    assert again == "200", again
            finally:
                held.stop()
