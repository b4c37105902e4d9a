"""Malformed controller configs (``lblab controller --check --config FILE``): wrong types,
non-finite numbers, out-of-range weights, seeds and ports, unknown and non-string keys, names
with line breaks, missing fields, node-link data that cannot be a network (a host without
``ip``), services that clash, the wrong top-level type. Each must be exit 2 and one located
line."""
import json

import pytest

from controllers.config import graph_to_data
from lblab_core import loader
from tests.unit.malformed.table import case, check, run
from topologies import graphs

SERVICE = ("services:\n  web:\n    vip: 10.0.0.100\n    port: 80\n"
           "    backends: {h6: 1, h7: {weight: 2}}\n")
TOPO = "topology: {name: lb_lab}\n"
GOOD = TOPO + SERVICE


def edit(old, new, text=GOOD):
    assert old in text, old
    return text.replace(old, new, 1)


def node_link(change):
    """A JSON config with lb_lab as node-link data, one line per value, after ``change``."""
    data = json.loads(json.dumps(graph_to_data(graphs.lb_lab())))
    change(data)
    return json.dumps({"topology": data, "services": {}}, indent=1)


def line_of(text, path):
    """The line of ``path`` in ``text``, as the loader maps it."""
    return loader.compose(text)[1][path]


def _del_ip(data):
    del data["nodes"][1]["ip"]


def _set(where, key, value):
    def change(data):
        data[where[0]][where[1]][key] = value
    return change


def _drop_link(data):
    data["edges"].pop(0)


N1, L0 = ("topology", "nodes", 1), ("topology", "edges", 0)  # node h1, its link to s1
NL = {  # change, expected text, key path whose line the error names
    "host_without_ip": (_del_ip, "host 'h1': no 'ip'; expected an IPv4 address", N1),
    "node_kind_router": (_set(("nodes", 1), "kind", "router"),
                         "'router': expected one of host, switch", N1 + ("kind",)),
    "link_to_unknown_node": (_set(("edges", 0), "target", "h99"), "expected the port of each end",
                             L0),
    "switch_port_twice": (lambda d: d["edges"][1]["ports"].update(s1=1),
                          "port 1 of s1 is already used by edges[0]",
                          ("topology", "edges", 1, "ports", "s1")),
    "host_ip_twice": (_set(("nodes", 2), "ip", "10.0.0.1"),
                      "'10.0.0.1' is already the ip of node 'h1'", ("topology", "nodes", 2, "ip")),
    "host_without_link": (_drop_link, "host 'h1' has 0 links; expected one link, to a switch", N1),
    "node_id_newline": (_set(("nodes", 1), "id", "h1\n"), "expected a name", N1 + ("id",)),
    "switch_dpid": (_set(("nodes", 0), "dpid", "xyz"), "expected a datapath id",
                    ("topology", "nodes", 0, "dpid")),
    "directed": (lambda d: d.update(directed=True), "directed: true: expected false",
                 ("topology", "directed")),
    "link_bw_infinity": (_set(("edges", 0), "bw", float("inf")),  # JSON's Infinity: a string
                         "bw: 'Infinity': expected a number", L0 + ("bw",)),
}

ROWS = [
    # wrong types
    ("meter_1", "controller: {packet_in_meter: 1}\n" + GOOD,
     "controller.packet_in_meter: 1: expected true or false", 1),
    ("weight_string", edit("h6: 1", "h6: '8'"),
     "services.web.backends.h6: '8': expected an integer",
     6),
    ("weight_true", edit("h6: 1", "h6: true"),
     "services.web.backends.h6: true: expected an integer",
     6),
    ("port_string", edit("port: 80", "port: '80'"), "services.web.port: '80': expected an integer",
     5),
    ("conntrack_yes_string", edit("port: 80", "port: 80\n    mode: group\n    conntrack: 'yes'"),
     "'yes': expected true or false", 7),
    ("services_list", TOPO + "services: [web]\n", "services: a list: expected a mapping", 2),
    ("vip_int", edit("vip: 10.0.0.100", "vip: 167772260"), "vip: 167772260: expected a string", 4),
    # out of range
    ("seed_2_40", "controller: {seed: 1099511627776}\n" + GOOD,
     "controller.seed: 1099511627776: expected a number <= 4294967295", 1),
    ("weight_million", edit("h6: 1", "h6: 1000000"),
     "services.web.backends.h6: 1000000: expected a number <= 65535", 6),
    ("weight_negative_long_form", edit("{weight: 2}", "{weight: -2}"),
     "services.web.backends.h7.weight: -2: expected a number >= 0", 6),
    ("port_70000", edit("port: 80", "port: 70000"), "services.web.port: 70000: expected a number",
     5),
    ("ofp_port_0", "controller: {ofp_port: 0}\n" + GOOD, "controller.ofp_port: 0", 1),
    ("api_port_negative", "controller: {api_port: -1}\n" + GOOD, "api_port: -1", 1),
    ("health_fall_0", edit("port: 80", "port: 80\n    health: {fall: 0}"),
     "services.web.health.fall: 0: expected a number >= 1", 6),
    ("idle_timeout_0", edit("port: 80", "port: 80\n    idle_timeout: 0"), "idle_timeout: 0", 6),
    ("ports_clash", "controller: {ofp_port: 8080}\n" + GOOD,
     "controller.api_port: 8080: is also the OpenFlow port", 1),
    # non-finite floats (every float of the file; link bw below)
    ("share_inf", "controller: {packet_in_port_share: .inf}\n" + GOOD,
     "controller.packet_in_port_share: .inf: expected a finite number", 1),
    ("share_nan", "controller: {packet_in_port_share: .nan}\n" + GOOD,
     "controller.packet_in_port_share: .nan: expected a finite number", 1),
    ("stats_inf", "controller: {stats_interval: .inf}\n" + GOOD,
     "controller.stats_interval: .inf: expected a finite number", 1),
    ("stats_nan", "controller: {stats_interval: .nan}\n" + GOOD,
     "controller.stats_interval: .nan: expected a finite number", 1),
    ("health_interval_inf", edit("port: 80", "port: 80\n    health: {interval: .inf}"),
     "services.web.health.interval: .inf: expected a finite number", 6),
    ("health_interval_nan", edit("port: 80", "port: 80\n    health: {interval: .nan}"),
     "services.web.health.interval: .nan: expected a finite number", 6),
    # choices and keys, with "did you mean"
    ("mode_typo", edit("port: 80", "port: 80\n    mode: l44"),
     "'l44': expected one of l2, l3, l4, group, proactive; did you mean l4?", 6),
    ("algorithm_typo", edit("port: 80", "port: 80\n    algorithm: round_robbin"),
     "did you mean round_robin?", 6),
    ("algorithm_of_other_mode", edit("port: 80", "port: 80\n    mode: group\n"
                                                 "    algorithm: round_robin"),
     "'round_robin': expected one of five_tuple_hash (mode group)", 7),
    ("health_kind_typo", edit("port: 80", "port: 80\n    health: {kind: tpc}"),
     "did you mean tcp?", 6),
    ("unknown_service_key", edit("port: 80", "port: 80\n    algoritm: random"),
     "unknown key 'algoritm'", 6),
    ("unknown_key_suggests", "controler: {seed: 1}\n" + GOOD, "did you mean controller?", 1),
    ("service_int_key", TOPO + "services:\n  1: {vip: 10.0.0.100, port: 80, backends: {h6: 1}}\n",
     "services: key 1: expected a string", 3),
    ("backend_int_key", edit("h6: 1", "6: 1"), "services.web.backends: key 6: expected a string",
     6),
    ("top_int_key", GOOD + "1: 2\n", "(top level): key 1: expected a string", 7),
    ("service_name_newline", TOPO + 'services:\n  "web\\n": {vip: 10.0.0.100, port: 80, '
                                    "backends: {h6: 1}}\n", "key 'web\\n': expected a name", 3),
    ("service_name_crlf", TOPO + 'services:\n  "web\\r\\nx": {vip: 10.0.0.100, port: 80, '
                                 "backends: {h6: 1}}\n", "expected a name", 3),
    # addresses and hosts
    ("vip_not_ipv4", edit("vip: 10.0.0.100", "vip: 10.0.0"), "'10.0.0': expected an IPv4", 4),
    ("vip_is_a_host", edit("vip: 10.0.0.100", "vip: 10.0.0.6"),
     "10.0.0.6 is the address of host h6", 4),
    ("probe_mac", "controller: {probe_mac: zz}\n" + GOOD, "'zz': expected a MAC address", 1),
    ("probe_mac_final_newline", 'controller: {probe_mac: "02:00:00:00:fe:fe\\n"}\n' + GOOD,
     "expected a MAC address", 1),
    ("backend_unknown_host", edit("h6: 1", "h66: 1"),
     "unknown backend host 'h66'; expected a host of the topology", 6),
    ("empty_pool", edit("backends: {h6: 1, h7: {weight: 2}}", "backends: {}"),
     "services.web.backends: expected at least one backend host", 6),
    ("same_vip_twice", GOOD + "  api: {vip: 10.0.0.100, port: 81, backends: {h8: 1}}\n",
     "services.api.vip: 10.0.0.100 is already used by services.web.vip", 7),
    ("backend_port_twice", GOOD + "  api: {vip: 10.0.0.101, port: 80, backends: {h6: 1}}\n",
     "h6 tcp/80 already serves service web", 7),
    ("conntrack_l4", edit("port: 80", "port: 80\n    conntrack: true"),
     "conntrack: true: applies to mode group only, not l4", 6),
    # missing fields, topology, the whole file
    ("port_missing", edit("    port: 80\n", ""), "services.web.port: is required", 3),
    ("topology_missing", SERVICE, "topology: is required", 1),
    ("topology_unknown", "topology: {name: ring}\n" + SERVICE,
     "topology.name: 'ring': expected one of single", 1),
    ("topology_param", "topology: {name: lb_lab, params: {hosts: 3}}\n" + SERVICE,
     "topology.params: lb_lab: unknown parameter 'hosts'", 1),
    ("topology_both_forms", "topology: {name: lb_lab, nodes: []}\n" + SERVICE,
     "expected either 'name'", 1),
    ("top_level_list", "- topology\n- services\n", "(top level): a list: expected a mapping", 1),
    ("top_level_scalar", "lb_lab\n", "(top level): 'lb_lab': expected a mapping", 1),
    ("empty_file", "# nothing\n", "(top level): null: expected a mapping", None),
]
CASES = [case(f"controller-{case_id}", content, expected, line)
         for case_id, content, expected, line in ROWS]
for name, value in (("inf", ".inf"), ("nan", ".nan")):  # YAML's, in node-link data
    text = node_link(_set(("edges", 0), "bw", 1.5)).replace('"bw": 1.5', f'"bw": {value}')
    CASES.append(case(f"controller-nodelink-link_bw_{name}", text,
                      f"topology.edges[0].bw: {value}: expected a finite number",
                      line_of(text, L0 + ("bw",))))
for case_id, (change, expected, path) in NL.items():
    text = node_link(change)
    CASES.append(case(f"controller-nodelink-{case_id}", text, expected, line_of(text, path),
                      filename=f"controller-nodelink-{case_id}.json"))


@pytest.fixture(scope="module")
def results():
    return run(CASES, "controller")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_controller_config(results, case_):
    check(case_, results[case_["id"]])
