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
     "services.web.conntrack", "'yes': expected true or false"),
    (lambda d: d["services"]["web"]["backends"].update(h99=1), "services.web.backends.h99",
     "unknown backend host 'h99'"),
    (lambda d: d["services"]["web"]["backends"].update(h8=-1), "services.web.backends.h8",
     "-1: expected a number >= 0"),
    (lambda d: d["services"]["web"]["backends"].update(h8={"weight": "x"}),
     "services.web.backends.h8.weight", "'x'"),
    (lambda d: d["services"]["web"].update(vip="10.0.0.6"), "services.web.vip", "host h6"),
    (lambda d: d["services"]["web"].update(vip="10.0.0"), "services.web.vip", "IPv4"),
    (lambda d: d["services"]["web"].update(port=0), "services.web.port",
     "0: expected a number >= 1"),
    (lambda d: d["services"]["web"].update(colour="red"), "services.web.colour", "unknown key"),
    (lambda d: d["services"]["web"].pop("port"), "services.web.port", "required"),
    (lambda d: d["services"]["web"].update(health={"fall": 0}), "services.web.health.fall",
     "0: expected a number >= 1"),
    (lambda d: d.update(controller={"ofp_port": 70000}), "controller.ofp_port",
     "70000: expected a number <= 65535"),
    (lambda d: d.update(controller={"probe_mac": "zz"}), "controller.probe_mac", "MAC"),
    (lambda d: d.update(controller={"packet_in_meter": "on"}), "controller.packet_in_meter",
     "'on': expected true or false"),
    (lambda d: d.pop("topology"), "topology", "required"),
    (lambda d: d.update(topology={"name": "ring"}), "topology.name",
     "'ring': expected one of single"),
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


def test_every_problem_at_once_with_file_and_line(tmp_path):
    path = tmp_path / "ctl.yaml"
    path.write_text("controller: {seed: 1099511627776, ofp_port: '6653'}\n"
                    "topology: {name: lb_lab}\nservices:\n"
                    "  web: {vip: 10.0.0.100, port: 80, mode: l44, backends: {h6: 1000000}}\n"
                    "  1: {vip: 10.0.0.101, port: 80, backends: {h7: 1}}\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(str(path))
    p = str(path)
    assert info.value.errors == [
        f"{p}:1: controller.ofp_port: '6653': expected an integer",
        f"{p}:1: controller.seed: 1099511627776: expected a number <= 4294967295",
        f"{p}:4: services.web.mode: 'l44': expected one of l2, l3, l4, group, proactive; "
        "did you mean l4?",
        f"{p}:4: services.web.backends.h6: 1000000: expected a number <= 65535",
        f"{p}:5: services: key 1: expected a string",
    ]
    assert (info.value.path, info.value.problem) == ("controller.ofp_port",
                                                     "'6653': expected an integer")


def test_graph_problems_all_at_once():
    data = base()
    data["services"]["web"]["backends"] = {"h66": 1, "h6": 1}
    data["services"]["api"] = {"vip": "10.0.0.100", "port": 80, "backends": {"h6": 1}}
    data["controller"] = {"probe_ip": "10.0.0.1"}
    with pytest.raises(config.ConfigError) as info:
        config.parse_config(data)
    assert [e.split(":")[0] for e in info.value.errors] == [
        "controller.probe_ip", "services.web.backends.h66", "services.api.vip",
        "services.api.backends.h6"]
    assert "did you mean h6?" in info.value.errors[1]


@pytest.mark.parametrize("name", sorted(graphs.GENERATORS))
def test_every_generator_round_trips_as_node_link_data(name):
    graph = graphs.build(name, {"bw": 10, "delay": "5ms", "loss": 1, "max_queue": 100}
                         if name == "lb_lab" else {})
    data = json.loads(json.dumps(config.graph_to_data(graph)))
    parsed = config.parse_config({"topology": data}).graph
    assert sorted(parsed.nodes(data=True)) == sorted(graph.nodes(data=True))
    assert sorted(map(sorted, parsed.edges)) == sorted(map(sorted, graph.edges))
    assert all(parsed.edges[e] == graph.edges[e] for e in graph.edges)


@pytest.mark.parametrize("change, path, words", [
    (lambda d: d["nodes"][1].pop("ip"), "topology.nodes[1]", "host 'h1': no 'ip'"),
    (lambda d: d["nodes"][0].update(id="core"), "topology.nodes[0]", "a letter and a number"),
    (lambda d: d["edges"].pop(0), "topology.nodes[1]", "host 'h1' has 0 links"),
    (lambda d: d["edges"][1]["ports"].update(s1=1), "topology.edges[1].ports.s1",
     "port 1 of s1 is already used by edges[0]"),
    (lambda d: d["nodes"][2].update(mac="00:00:00:00:00:01"), "topology.nodes[2].mac",
     "already the mac of node 'h1'"),
    (lambda d: d.update(multigraph=True), "topology.multigraph", "expected false"),
    (lambda d: d["nodes"].append({"id": 5, "kind": "host"}), "topology.nodes[10].id",
     "5: expected a string"),
])
def test_node_link_problems(change, path, words):
    data = json.loads(json.dumps(config.graph_to_data(graphs.lb_lab())))
    change(data)
    with pytest.raises(config.ConfigError) as info:
        config.parse_config({"topology": data})
    assert info.value.path == path and words in info.value.problem


def test_overrides_are_checked_like_the_file():
    cfg = config.parse_config(base())
    assert config.with_overrides(cfg, ofp_port=7000).controller.ofp_port == 7000
    with pytest.raises(config.ConfigError, match=r"^--ofp-port: 0: expected a number >= 1$"):
        config.with_overrides(cfg, ofp_port=0)
    with pytest.raises(config.ConfigError, match=r"controller\.api_port: 8080: is also the "
                                                 r"OpenFlow port"):
        config.with_overrides(cfg, ofp_port=8080)


def test_parse_weight_names_the_path():
    assert config.parse_weight("weight", 0) == 0
    with pytest.raises(config.ConfigError) as info:
        config.parse_weight("weight", 65536)
    assert (info.value.path, info.value.problem) == ("weight", "65536: expected a number <= 65535")
