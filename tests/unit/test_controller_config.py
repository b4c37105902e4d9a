"""Controller config parsing: valid configs load, every bad field is named in the error."""
import json

import pytest

from controllers import config
from topologies import graphs


def base(**service):
    svc = {"vip": "10.0.0.100", "port": 80, "backends": {"h6": 1, "h7": {"weight": 2}}}
    svc.update(service)
    return {"topology": {"name": "lb_lab", "params": {}}, "services": {"web": svc}}


def test_defaults_and_backends_resolved_from_graph():
    cfg = config.parse_config(base())
    svc = cfg.services[0]
    assert (svc.mode, svc.algorithm, svc.protocol, svc.ip_proto) == ("l4", "round_robin", "tcp", 6)
    assert svc.vmac == "02:00:0a:00:00:64"
    assert [(b.name, b.ip, b.mac, b.weight) for b in svc.backends] == [
        ("h6", "10.0.0.6", "00:00:00:00:00:06", 1), ("h7", "10.0.0.7", "00:00:00:00:00:07", 2)]
    assert cfg.controller.ofp_port == 6653 and cfg.controller.api_host == "127.0.0.1"


def test_node_link_topology_round_trips():
    graph = graphs.fat_tree(4)
    data = json.loads(json.dumps(config.graph_to_data(graph)))
    cfg = config.parse_config({"topology": data, "services": {}})
    assert sorted(cfg.graph.nodes) == sorted(graph.nodes)
    (edge_switch,) = graph.neighbors("h1")
    assert cfg.graph.edges["h1", edge_switch]["ports"] == graph.edges["h1", edge_switch]["ports"]
    assert cfg.graph.nodes[edge_switch]["dpid"] == graph.nodes[edge_switch]["dpid"]


def test_udp_service_probes_with_arp():
    cfg = config.parse_config(base(protocol="udp", port=5001))
    assert cfg.services[0].health.kind == "arp"


@pytest.mark.parametrize("mutate, path, words", [
    (lambda d: d["services"]["web"].update(mode="l5"), "services.web.mode", "l2, l3, l4"),
    (lambda d: d["services"]["web"].update(algorithm="fastest"), "services.web.algorithm",
     "round_robin"),
    (lambda d: d["services"]["web"].update(mode="group", algorithm="round_robin"),
     "services.web.algorithm", "five_tuple_hash"),
    (lambda d: d["services"]["web"].update(conntrack=True), "services.web.conntrack",
     "mode group only, not l4"),
    (lambda d: d["services"]["web"].update(mode="group", conntrack="yes"),
     "services.web.conntrack", "true or false, got 'yes'"),
    (lambda d: d["services"]["web"]["backends"].update(h99=1), "services.web.backends.h99",
     "unknown backend host 'h99'"),
    (lambda d: d["services"]["web"]["backends"].update(h8=-1), "services.web.backends.h8",
     "0..65535"),
    (lambda d: d["services"]["web"]["backends"].update(h8={"weight": "x"}),
     "services.web.backends.h8.weight", "'x'"),
    (lambda d: d["services"]["web"].update(vip="10.0.0.6"), "services.web.vip", "host h6"),
    (lambda d: d["services"]["web"].update(vip="10.0.0"), "services.web.vip", "IPv4"),
    (lambda d: d["services"]["web"].update(port=0), "services.web.port", "1..65535"),
    (lambda d: d["services"]["web"].update(colour="red"), "services.web.colour", "unknown key"),
    (lambda d: d["services"]["web"].pop("port"), "services.web.port", "required"),
    (lambda d: d["services"]["web"].update(health={"fall": 0}), "services.web.health.fall",
     "1..100"),
    (lambda d: d.update(controller={"ofp_port": 70000}), "controller.ofp_port", "1..65535"),
    (lambda d: d.update(controller={"probe_mac": "zz"}), "controller.probe_mac", "MAC"),
    (lambda d: d.update(controller={"packet_in_meter": "on"}), "controller.packet_in_meter",
     "true or false, got 'on'"),
    (lambda d: d.pop("topology"), "topology", "required"),
    (lambda d: d.update(topology={"name": "ring"}), "topology", "unknown topology"),
])
def test_errors_name_field_value_and_expectation(mutate, path, words):
    data = base()
    mutate(data)
    with pytest.raises(config.ConfigError) as info:
        config.parse_config(data)
    assert info.value.path == path
    assert words in str(info.value)


def test_two_services_cannot_share_a_vip():
    data = base()
    data["services"]["other"] = {"vip": "10.0.0.100", "port": 81, "backends": {"h8": 1}}
    with pytest.raises(config.ConfigError, match="already used"):
        config.parse_config(data)


def test_load_config_reports_unreadable_and_bad_files(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load_config(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text("topology: {name: lb_lab}\nservices:\n  web: {vip: 10.0.0.100, port: 80, "
                    "backends: {h6: 1}}\n")
    assert config.load_config(str(good)).services[0].name == "web"
