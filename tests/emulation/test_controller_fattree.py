"""Forwarding under the controller on a topology with loops: a k=4 fat-tree pings all (root).

Its own module: the balancer tests hold one lab for their whole module, and only one lab runs
on a machine at a time.
"""
from controllers import config as ctl_config
from controllers.harness import ControllerProcess
from topologies import graphs
from topologies.network import LabNetwork


def test_fat_tree_ping_all_without_loss_under_the_controller(tmp_path):
    graph = graphs.fat_tree(4)
    cfg = {"topology": ctl_config.graph_to_data(graph), "services": {}}
    with ControllerProcess(cfg, str(tmp_path)) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(graphs.switches(graph)), ctl.log_tail()
            loss = lab.net.pingAll(timeout=2)
            assert loss == 0.0
            stats = ctl.api("GET", "/stats")[1]
            # forwarding is proactive: no packet reaches the controller for ordinary traffic
            assert sum(s["packet_ins"] for s in stats["switches"].values()) == 0
