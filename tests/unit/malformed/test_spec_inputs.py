"""Malformed experiment specs through ``lblab validate``: each case breaks one thing in a valid
spec and must get exactly one located problem line (file, line, key path), exit status 2, no
traceback, no hang. Categories: wrong types, non-finite numbers, consumers' ranges (32-bit
seeds, 16-bit weights), names and header text with CR/LF, topologies larger than one server,
unknown keys with "did you mean", rules between fields, the l7 section, --set overrides."""
import json

import networkx as nx
import pytest

from tests.unit.malformed.table import case, check, run
from topologies import graphs

BASE = """\
name: mal
seed: 1
topology:
  name: lb_lab
  params: {clients: 2}
backends:
  - {name: b1, capacity: 1, service: {dist: exponential, mean_ms: 2}}
  - {name: b2, capacity: 2}
balancers:
  - {name: l4rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: px, layer: l7, engine: builtin, algorithm: least_connections}
workload:
  type: http
  mode: closed
  users: 4
  mix:
    - {path: /, method: GET, weight: 1}
duration_s: 5
warmup_s: 1
"""
# Lines of BASE: 2 seed, 5 topology params, 7 b1, 8 b2, 10 l4rr, 11 px, 14 mode, 15 users,
# 17 mix[0], 18 duration_s, 19 warmup_s.
B1 = "{name: b1, capacity: 1, service: {dist: exponential, mean_ms: 2}}"
B2 = "{name: b2, capacity: 2}"
L4 = "{name: l4rr, layer: l4, mode: l4, algorithm: round_robin}"
PX = "{name: px, layer: l7, engine: builtin, algorithm: least_connections}"
MIX = "{path: /, method: GET, weight: 1}"
PARAMS = "name: lb_lab\n  params: {clients: 2}"


def spec(*edits):
    """BASE with each ``(old, new)`` replaced once (``old`` must be in it)."""
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def sweeps(text):
    """BASE with a ``sweep:`` mapping (line 20) whose lines are ``text`` (line 21 onwards)."""
    return spec(("warmup_s: 1", "warmup_s: 1\nsweep:\n" + text))


def faults_at(*items):
    """The edit that gives BASE a ``faults:`` list with ``items`` (line 21 onwards)."""
    return ("warmup_s: 1", "warmup_s: 1\nfaults:\n" + "".join(f"  - {i}\n" for i in items))


def faults(*items):
    """BASE with a ``faults:`` list of ``items`` (flow mappings), the first on line 21."""
    return spec(faults_at(*items))


def topo(name, params):
    """BASE on another topology (l4 balancers only, so no lb host is needed)."""
    return spec((PARAMS, f"name: {name}\n  params: {params}"), ("  - " + PX + "\n", ""))


# (id, content, expected text, line)
ROWS = [
    # -- wrong types: 1 is not true, "8" is not 8, true is not 1 ------------------------------
    ("seed_str", spec(("seed: 1", "seed: '8'")), "seed: '8': expected an integer", 2),
    ("seed_true", spec(("seed: 1", "seed: true")), "seed: true: expected an integer", 2),
    ("seed_float", spec(("seed: 1", "seed: 1.5")), "seed: 1.5: expected an integer", 2),
    ("users_str", spec(("users: 4", "users: '8'")), "workload.users: '8': expected an integer",
     15),
    ("users_true", spec(("users: 4", "users: true")), "workload.users: true: expected an "
                                                     "integer", 15),
    ("keepalive_int", spec(("users: 4", "users: 4\n  keepalive: 1")),
     "workload.keepalive: 1: expected true or false", 16),
    ("keepalive_str", spec(("users: 4", "users: 4\n  keepalive: 'true'")),
     "workload.keepalive: 'true': expected true or false", 16),
    ("conntrack_int", spec(("mode: l4, algorithm: round_robin", "mode: group, conntrack: 1")),
     "balancers[0].conntrack: 1: expected true or false", 10),
    ("duration_str", spec(("duration_s: 5", "duration_s: '5'")),
     "duration_s: '5': expected a number", 18),
    ("repetitions_float", spec(("duration_s: 5", "duration_s: 5\nrepetitions: 2.5")),
     "repetitions: 2.5: expected an integer", 19),
    ("capacity_str", spec(("capacity: 2}", "capacity: '2'}")),
     "backends[1].capacity: '2': expected an integer", 8),
    ("name_int", spec(("name: mal", "name: 5")), "name: 5: expected a string", 1),
    ("question_list", spec(("seed: 1", "seed: 1\nquestion: [a, b]")),
     "question: a list: expected a string", 3),
    ("balancers_mapping", spec(("  - " + L4 + "\n  - " + PX, "  name: x")),
     "balancers: a mapping: expected a list", 9),
    ("backends_true", spec(("  - " + B1 + "\n  - " + B2, "  true")),
     "backends: true: expected a count", 6),
    ("topology_str", spec(("topology:\n  " + PARAMS, "topology: lb_lab")),
     "topology: 'lb_lab': expected a mapping", 3),
    ("workload_list", spec(("workload:\n  type: http\n  mode: closed\n  users: 4\n  mix:\n"
                            "    - " + MIX, "workload: [http]")),
     "workload: a list: expected a mapping", 12),
    ("mix_weight_str", spec((MIX, "{path: /, weight: '1'}")),
     "workload.mix[0].weight: '1': expected a number", 17),
    ("header_int", spec((MIX, "{path: /, headers: {X-A: 1}}")),
     "workload.mix[0].headers.X-A: 1: expected a string", 17),
    ("faults_mapping", spec(("warmup_s: 1", "warmup_s: 1\nfaults: {at_s: 1}")),
     "faults: a mapping: expected a list", 20),
    ("error_rate_bool", spec((B2, "{name: b2, error_rate: true}")),
     "backends[1].error_rate: true: expected a number", 8),
    ("params_str", spec(("{clients: 2}", "{clients: '2'}")),
     "topology.params.clients: lb_lab: parameter 'clients' must be an integer >= 1", 5),
    # -- .inf and .nan in every kind of number --------------------------------------------------
    ("duration_inf", spec(("duration_s: 5", "duration_s: .inf")),
     "duration_s: .inf: expected a finite number", 18),
    ("warmup_nan", spec(("warmup_s: 1", "warmup_s: .nan")),
     "warmup_s: .nan: expected a finite number", 19),
    ("rate_inf", spec(("mode: closed", "mode: open\n  rate: .inf")),
     "workload.rate: .inf: expected a finite number", 15),
    ("think_nan", spec(("users: 4", "users: 4\n  think_ms: .nan")),
     "workload.think_ms: .nan: expected a finite number", 16),
    ("timeout_inf", spec(("users: 4", "users: 4\n  timeout_s: .inf")),
     "workload.timeout_s: .inf: expected a finite number", 16),
    ("weight_inf", spec((B2, "{name: b2, weight: .inf}")),
     "backends[1].weight: .inf: expected a finite number", 8),
    ("weight_nan", spec((B2, "{name: b2, weight: .nan}")),
     "backends[1].weight: .nan: expected a finite number", 8),
    ("mean_ms_inf", spec(("mean_ms: 2", "mean_ms: .inf")),
     "backends[0].service.mean_ms: .inf: expected a finite number", 7),
    ("sigma_nan", spec(("dist: exponential, mean_ms: 2", "dist: lognormal, mean_ms: 2, "
                                                         "sigma: .nan")),
     "backends[0].service.sigma: .nan: expected a finite number", 7),
    ("error_rate_nan", spec((B2, "{name: b2, error_rate: .nan}")),
     "backends[1].error_rate: .nan: expected a finite number", 8),
    ("mix_weight_inf", spec((MIX, "{path: /, weight: .inf}")),
     "workload.mix[0].weight: .inf: expected a finite number", 17),
    ("fault_at_inf", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n"
                                          "  - {at_s: .inf, action: kill_backend, target: b1}")),
     "faults[0].at_s: .inf: expected a finite number", 21),
    ("fault_value_nan", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n  - {at_s: 1, action: "
                                             "set_weight, target: b1, value: .nan}")),
     "faults[0].value: .nan: expected a finite number", 21),
    ("bw_inf", spec(("{clients: 2}", "{clients: 2, bw: .inf}")),
     "topology.params.bw: lb_lab: parameter 'bw' must be at most 1000 Mbit/s", 5),
    ("bw_nan", spec(("{clients: 2}", "{clients: 2, bw: .nan}")),
     "topology.params.bw: lb_lab: parameter 'bw' must be a rate in Mbit/s > 0, got nan", 5),
    ("delay_inf", spec(("{clients: 2}", "{clients: 2, delay: .inf}")),
     "topology.params.delay: lb_lab: parameter 'delay': a delay must be 0..60000 ms", 5),
    ("delay_400_digits", spec(("{clients: 2}", "{clients: 2, delay: '" + "9" * 400 + "ms'}")),
     "topology.params.delay: lb_lab: parameter 'delay': a delay must be 0..60000 ms", 5),
    ("loss_nan", spec(("{clients: 2}", "{clients: 2, loss: .nan}")),
     "topology.params.loss: lb_lab: parameter 'loss' must be a percentage in 0..100", 5),
    ("backend_bw_inf", spec(("{clients: 2}", "{clients: 2, backend_bw: .inf}")),
     "topology.params.backend_bw: lb_lab: parameter 'backend_bw' must be at most 1000", 5),
    ("bottleneck_bw_inf", topo("dumbbell", "{hosts_per_side: 3, bottleneck_bw: .inf}"),
     "topology.params.bottleneck_bw: dumbbell: parameter 'bottleneck_bw' must be at most", 5),
    # -- the consumers' ranges: 32-bit seeds, 16-bit weights, netem's 32-bit queue -------------
    ("seed_2_40", spec(("seed: 1", "seed: 1099511627776")),
     "seed: 1099511627776: expected a number <= 4294967295", 2),
    ("seed_negative", spec(("seed: 1", "seed: -1")), "seed: -1: expected a number >= 0", 2),
    ("seed_20000_bits", spec(("seed: 1", "seed: 0x" + "f" * 5000)),
     "seed: a 20000-bit integer: expected a number <= 4294967295", 2),
    ("weight_10_6", spec((B2, "{name: b2, weight: 1000000}")),
     "backends[1].weight: 1000000: expected a number <= 65535", 8),
    ("weight_zero", spec((B2, "{name: b2, weight: 0}")),
     "backends[1].weight: 0: expected a number > 0", 8),
    ("capacity_as_weight", spec((B2, "{name: b2, capacity: 100000}")),
     "backends[1].weight: 100000: expected a number <= 65535", 8),
    ("set_weight_10_6", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n  - {at_s: 1, action: "
                                             "set_weight, target: b1, value: 1000000}")),
     "faults[0].value: 1000000: expected a number <= 65535", 21),
    ("max_queue_2_40", spec(("{clients: 2}", "{clients: 2, max_queue: 1099511627776}")),
     "topology.params.max_queue: lb_lab: parameter 'max_queue' must be at most 4294967295", 5),
    ("backends_count_100", spec(("  - " + B1 + "\n  - " + B2, "  100")),
     "backends: 100: expected a number <= 64", 6),
    ("users_10_6", spec(("users: 4", "users: 1000000")),
     "workload.users: 1000000: expected a number <= 4096", 15),
    # -- names and header text: a final newline or CR/LF is not a name -------------------------
    ("name_newline", spec(("name: mal", 'name: "mal\\n"')), "name: 'mal\\n': expected a name", 1),
    ("name_crlf", spec(("name: mal", 'name: "mal\\r\\nX: 1"')), "name: 'mal\\r\\nX: 1': "
                                                               "expected a name", 1),
    ("backend_name_newline", spec((B2, '{name: "b2\\n"}')),
     "backends[1].name: 'b2\\n': expected a name", 8),
    ("balancer_name_crlf", spec(("name: px,", 'name: "px\\r\\n",')),
     "balancers[1].name: 'px\\r\\n': expected a name", 11),
    ("header_value_crlf", spec((MIX, '{path: /, headers: {X-A: "1\\r\\nSet-Cookie: a=1"}}')),
     "workload.mix[0].headers.X-A: '1\\r\\nSet-Cookie: a=1': expected a header value", 17),
    ("header_name_space", spec((MIX, '{path: /, headers: {"X A": "1"}}')),
     "workload.mix[0].headers.X A: 'X A': expected a token", 17),
    ("cookie_value_semicolon", spec((MIX, '{path: /, cookies: {s: "a;b=c"}}')),
     "workload.mix[0].cookies.s: 'a;b=c': expected a cookie value", 17),
    ("path_crlf", spec((MIX, '{path: "/x\\r\\nHost: evil"}')),
     "workload.mix[0].path: '/x\\r\\nHost: evil': expected a path", 17),
    ("path_newline", spec((MIX, '{path: "/x\\n"}')),
     "workload.mix[0].path: '/x\\n': expected a path", 17),
    ("cache_control_crlf", spec((B2, '{name: b2, cache_control: "max-age=1\\r\\nX: 1"}')),
     "backends[1].cache_control: 'max-age=1\\r\\nX: 1': expected a header value", 8),
    ("body_size_negative", spec((MIX, "{path: /, method: POST, body_size: -1}")),
     "workload.mix[0].body_size: -1: expected a number >= 0", 17),
    ("body_size_too_large", spec((MIX, "{path: /, method: PUT, body_size: 70000000}")),
     "workload.mix[0].body_size: 70000000: expected a number <= 67108864", 17),
    ("fault_target_newline", spec(("warmup_s: 1", 'warmup_s: 1\nfaults:\n  - {at_s: 1, action: '
                                                  'kill_backend, target: "b1\\n"}')),
     "faults[0].target: 'b1\\n': expected one of b1, b2", 21),
    ("l7_realm_crlf", spec(("least_connections}", 'least_connections, l7: {routes: [{match: '
                                                  '{path_prefix: /a}, auth: {type: basic, '
                                                  'users: {u: p}, realm: "x\\r\\nSet-Cookie: '
                                                  'a=1"}}]}}')),
     "balancers[1].l7.routes[0].auth.realm: ", 11),
    # -- topologies larger than one server: refused before any graph is built ------------------
    ("clients_10_9", spec(("{clients: 2}", "{clients: 1000000000}")),
     "topology.params.clients: lb_lab: parameter 'clients' is too large", 5),
    ("lb_lab_switches_1000", spec(("{clients: 2}", "{clients: 2, switches: 1000}")),
     "one server builds at most 256 switches (topologies.graphs.MAX_SWITCHES_PER_SERVER)", 5),
    ("fat_tree_k_1000", topo("fat_tree", "{k: 1000}"),
     "one server builds at most 1024 hosts (topologies.graphs.MAX_HOSTS_PER_SERVER)", 5),
    ("fat_tree_k_2_4000", topo("fat_tree", "{k: " + "0x" + "2" * 1000 + "}"),
     "topology.params.k: fat_tree: parameter 'k' is too large", 5),
    ("tree_depth_10_12", topo("tree", "{depth: 1000000000000}"),
     "topology.params.depth: tree: parameter 'depth' is too large", 5),
    ("tree_depth_fanout_1", topo("tree", "{depth: 1000000000000, fanout: 1}"),
     "at most 256 switches", 5),
    ("tree_fanout_10_6", topo("tree", "{depth: 2, fanout: 1000000}"),
     "topology.params.fanout: tree: parameter 'fanout' is too large", 5),
    ("leaf_spine_links", topo("leaf_spine", "{spines: 100, leaves: 100, hosts_per_leaf: 1}"),
     "at most 4096 links (topologies.graphs.MAX_LINKS_PER_SERVER)", 5),
    ("linear_n_10_5", topo("linear", "{n: 100000}"), "topology.params.n: linear: parameter "
                                                      "'n' is too large", 5),
    ("single_n_10_9", topo("single", "{n: 1000000000}"), "topology.params.n: single: "
                                                         "parameter 'n' is too large", 5),
    ("dumbbell_10_6", topo("dumbbell", "{hosts_per_side: 1000000}"),
     "topology.params.hosts_per_side: dumbbell: parameter 'hosts_per_side' is too large", 5),
    # -- unknown keys and names, with "did you mean" -------------------------------------------
    ("top_key", spec(("seed: 1", "seed: 1\nsead: 3")), "sead: unknown key 'sead'; expected "
                                                       "one of name, seed", 3),
    ("top_key_suggest", spec(("seed: 1", "seed: 1\nrepetition: 3")),
     "did you mean repetitions?", 3),
    ("backend_key", spec((B2, "{name: b2, wieght: 2}")),
     "backends[1].wieght: unknown key 'wieght'; expected one of name, weight", 8),
    ("balancer_key", spec(("algorithm: round_robin}", "algoritm: round_robin}")),
     "balancers[0].algoritm: unknown key 'algoritm'", 10),
    ("workload_key", spec(("users: 4", "usres: 4")), "did you mean users?", 15),
    ("topology_key", spec(("params: {clients: 2}", "parms: {clients: 2}")),
     "topology.parms: unknown key 'parms'; expected one of name, params; did you mean params?",
     5),
    ("params_key", spec(("{clients: 2}", "{client: 2}")),
     "topology.params.client: unknown parameter 'client' of lb_lab", 5),
    ("service_key", spec(("mean_ms: 2", "mean: 2")), "did you mean mean_ms?", 7),
    ("engine_on_l4", spec(("algorithm: round_robin}", "algorithm: round_robin, engine: "
                                                      "haproxy}")),
     "balancers[0].engine: 'engine' applies to layer: l7 only", 10),
    ("mode_on_l7", spec(("engine: builtin,", "engine: builtin, mode: l4,")),
     "balancers[1].mode: 'mode' applies to layer: l4 only", 11),
    ("mix_key", spec((MIX, "{path: /, methd: GET}")), "did you mean method?", 17),
    ("algorithm_name", spec(("least_connections}", "leastconn}")),
     "balancers[1].algorithm: 'leastconn': expected one of round_robin", 11),
    ("mode_name", spec(("mode: closed", "mode: clsoed")), "did you mean closed?", 14),
    ("topology_name", spec(("name: lb_lab", "name: lb_labb")),
     "topology.name: 'lb_labb': expected one of lb_lab, single", 4),
    ("fault_action", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n  - {at_s: 1, action: "
                                          "kil_backend, target: b1}")),
     "did you mean kill_backend?", 21),
    ("method_trace", spec(("method: GET", "method: TRACE")),
     "workload.mix[0].method: 'TRACE': expected one of GET, HEAD, POST", 17),
    ("layer_missing", spec(("layer: l4, ", "")), "balancers[0].layer: is required", 10),
    ("layer_wrong", spec(("layer: l4,", "layer: 4,")),
     "balancers[0].layer: 4: expected one of l4, l7", 10),
    ("workload_type", spec(("type: http", "type: ftp")),
     "workload.type: 'ftp': expected one of http, iperf3", 13),
    # -- rules between fields -------------------------------------------------------------------
    ("workload_missing", spec(("workload:\n  type: http\n  mode: closed\n  users: 4\n  mix:\n"
                               "    - " + MIX + "\n", "")), "workload: is required", 1),
    ("rate_closed", spec(("users: 4", "users: 4\n  rate: 10")),
     "workload.rate: rate applies to mode: open only", 16),
    ("open_no_rate", spec(("mode: closed", "mode: open")),
     "workload.rate: an open-loop workload needs rate", 12),
    ("sigma_fixed", spec(("dist: exponential, mean_ms: 2", "dist: fixed, sigma: 2")),
     "backends[0].service.sigma: sigma only applies to dist: lognormal", 7),
    ("duplicate_backend", spec((B2, "{name: b1}")), "backends[1].name: duplicate backend "
                                                    "name 'b1'", 8),
    ("group_round_robin", spec(("mode: l4, algorithm", "mode: group, algorithm")),
     "balancers[0].algorithm: mode group cannot balance by 'round_robin'", 10),
    ("conntrack_not_group", spec(("mode: l4,", "mode: l4, conntrack: true,")),
     "balancers[0].conntrack: applies to mode: group only", 10),
    ("fault_after_end", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n  - {at_s: 9, action: "
                                             "kill_backend, target: b1}")),
     "faults[0].at_s: 9 is not within the measurement (duration_s: 5)", 21),
    ("fault_no_link", spec(("warmup_s: 1", "warmup_s: 1\nfaults:\n  - {at_s: 1, action: "
                                           "link_down, target: s1-h99}")),
     "faults[0].target: no link 's1-h99' in the topology", 21),
    # faults: each one must be something every balancer can do, in an order that fits
    ("fault_optional_int", faults("{at_s: 1, action: kill_backend, target: b1, optional: 1}"),
     "faults[0].optional: 1: expected true or false", 21),
    ("fault_optional_word", faults("{at_s: 1, action: kill_backend, target: b1, optional: "
                                   "maybe}"),
     "faults[0].optional: 'maybe': expected true or false", 21),
    ("fault_stop_controller_l7", faults("{at_s: 1, action: stop_controller}"),
     "faults[0].action: balancer 'px' (engine builtin) cannot stop_controller: an L7 "
     "balancer has no controller; mark the fault optional: true", 21),
    ("fault_drain_haproxy", spec(("engine: builtin", "engine: haproxy"), faults_at(
        "{at_s: 1, action: drain_backend, target: b1}")),
     "faults[0].action: balancer 'px' (engine haproxy) cannot drain_backend", 21),
    ("fault_set_weight_nginx", spec(("engine: builtin", "engine: nginx"), faults_at(
        "{at_s: 1, action: set_weight, target: b1, value: 3}")),
     "faults[0].action: balancer 'px' (engine nginx) cannot set_weight", 21),
    ("fault_restore_running", faults("{at_s: 1, action: restore_backend, target: b2}"),
     "faults[0].action: b2 is running at 1 s: restore_backend needs a kill_backend of it", 21),
    ("fault_kill_twice", faults("{at_s: 1, action: kill_backend, target: b2}",
                                "{at_s: 2, action: kill_backend, target: b2}"),
     "faults[1].action: b2 was killed at 1 s (faults[0]) and not restored; restore_backend it "
     "before killing it again at 2 s", 22),
    ("fault_restore_before_kill", faults("{at_s: 3, action: restore_backend, target: b2}",
                                         "{at_s: 3.5, action: kill_backend, target: b2}"),
     "faults[0].action: b2 is running at 3 s", 21),
    ("fault_link_up_unpaired", faults("{at_s: 1, action: link_up, target: s1-h1}"),
     "faults[0].action: link s1-h1 is up at 1 s: link_up needs a link_down of it before", 21),
    ("fault_link_down_twice", faults("{at_s: 1, action: link_down, target: s1-h1}",
                                     "{at_s: 2, action: link_down, target: h1-s1}"),
     "faults[1].action: link h1-s1 went down at 1 s (faults[0]) and is still down at 2 s", 22),
    ("backend_fault_no_mode", faults("{at_s: 1, action: backend_fault, target: b1}"),
     "faults[0].mode: is required for backend_fault: one of none, slow, hang, close, refuse",
     21),
    ("backend_fault_mode_typo", faults("{at_s: 1, action: backend_fault, target: b1, mode: "
                                       "slwo}"),
     "faults[0].mode: 'slwo': expected one of none, slow, hang, close, refuse; did you mean "
     "slow?", 21),
    ("backend_fault_value_not_slow", faults("{at_s: 1, action: backend_fault, target: b1, "
                                            "mode: close, value: 3}"),
     "faults[0].value: value applies to backend_fault with mode: slow only", 21),
    ("backend_fault_delay_inf", faults("{at_s: 1, action: backend_fault, target: b1, mode: "
                                       "slow, value: .inf}"),
     "faults[0].value: .inf: expected a finite number", 21),
    ("fault_mode_elsewhere", faults("{at_s: 1, action: kill_backend, target: b1, mode: hang}"),
     "faults[0].mode: mode applies to backend_fault only, not kill_backend", 21),
    ("backend_fault_killed", faults("{at_s: 1, action: kill_backend, target: b1}",
                                    "{at_s: 2, action: backend_fault, target: b1, mode: hang}"),
     "faults[1].action: b1 was killed at 1 s (faults[0]) and not restored: backend_fault at 2 s "
     "needs it running", 22),
    ("backend_fault_after_refuse", faults(
        "{at_s: 1, action: backend_fault, target: b1, mode: refuse}",
        "{at_s: 2, action: backend_fault, target: b1, mode: none}"),
     "faults[1].action: b1 refuses connections since 1 s (faults[0], mode refuse), so "
     "backend_fault at 2 s cannot reach it", 22),
    ("link_delay_no_value", faults("{at_s: 1, action: link_delay, target: s1-h1}"),
     "faults[0].value: is required for link_delay: a number in 0..60000 (ms)", 21),
    ("link_delay_61_s", faults("{at_s: 1, action: link_delay, target: s1-h1, value: 61000}"),
     "faults[0].value: 61000: expected a number <= 60000 (ms) for link_delay", 21),
    ("link_loss_101", faults("{at_s: 1, action: link_loss, target: s1-h1, value: 101}"),
     "faults[0].value: 101: expected a number <= 100 (%) for link_loss", 21),
    ("link_loss_no_link", faults("{at_s: 1, action: link_loss, target: s1-h9, value: 5}"),
     "faults[0].target: no link 's1-h9' in the topology", 21),
    ("value_on_link_down", faults("{at_s: 1, action: link_down, target: s1-h1, value: 5}"),
     "faults[0].value: value applies to set_weight, backend_fault, link_delay and link_loss, "
     "not link_down", 21),
    ("fault_after_stop_controller", faults(
        "{at_s: 1, action: stop_controller, optional: true}",
        "{at_s: 2, action: set_weight, target: b1, value: 2}"),
     "faults[1].action: the controller of 'l4rr' is stopped at 1 s (faults[0]); set_weight at "
     "2 s cannot reach it", 22),
    ("backends_vs_hosts", spec(("{clients: 2}", "{clients: 2, backends: 3}")),
     "backends: 2 backends but the topology has 3 backend hosts", 6),
    ("iperf3_l7", spec(("  - " + L4 + "\n", ""), ("type: http\n  mode: closed\n  users: 4\n"
                                                   "  mix:\n    - " + MIX,
                                                   "type: iperf3\n  flows: 2")),
     "balancers[0].layer: an iperf3 workload needs layer: l4 balancers", 10),
    ("bitrate_text", spec(("  - " + PX + "\n", ""), ("mode: l4,", "mode: l3,"),
                          ("type: http\n  mode: closed\n  users: 4\n  mix:\n    - " + MIX,
                           "type: iperf3\n  bitrate: 10 Mbit")),
     "workload.bitrate: '10 Mbit': expected a rate as iperf3 takes it", 13),
    ("sweep_point", spec(("warmup_s: 1", "warmup_s: 1\nsweep: {param: workload.users, "
                                         "values: [1, 0]}")),
     "sweep.values[1]: with workload.users = 0: workload.users: 0: expected a number >= 1", 20),
    ("sweep_balancers", spec(("warmup_s: 1", "warmup_s: 1\nsweep: {param: balancers.0.name, "
                                             "values: [a, b]}")),
     "sweep.param: cannot sweep 'balancers.0.name'", 20),
    ("balancers_empty", spec(("  - " + L4 + "\n  - " + PX, "  []")),
     "balancers: expected at least 1 item, got 0", 9),
    ("balancers_65", spec(("  - " + L4 + "\n  - " + PX, "\n".join(
        f"  - {{name: p{i}, layer: l7}}" for i in range(65)))),
     "balancers: expected at most 64 items, got 65", 9),
    ("backends_list_65", spec(("  - " + B1 + "\n  - " + B2, "\n".join(
        f"  - {{name: b{i}}}" for i in range(65)))),
     "backends: expected 1 to 64 backends, got 65", 6),
    ("sweep_101", spec(("warmup_s: 1", "warmup_s: 1\nsweep: {param: question, values: ["
                                       + ", ".join(f"q{i}" for i in range(101)) + "]}")),
     "sweep.values: expected at most 100 items, got 101", 20),
    ("sweep_same", spec(("warmup_s: 1", "warmup_s: 1\nsweep: {param: workload.users, "
                                        "values: [2, 2]}")),
     "sweep.values: values must be distinct", 20),
    # sweeps over several parameters: product (every combination) and zip (moved together)
    ("sweep_product_point", sweeps("  product: {workload.users: [2, 4], backends.0.capacity: "
                                   "[1, 0]}"),
     "sweep: with workload.users = 2, backends.0.capacity = 0: backends[0].capacity: 0: "
     "expected a number >= 1", 20),
    ("sweep_zip_lengths", sweeps("  zip: {workload.users: [2, 4], workload.think_ms: [1]}"),
     "sweep.zip: zipped parameters move together and need lists of equal length, got "
     "workload.users: 2, workload.think_ms: 1", 21),
    ("sweep_in_both", sweeps("  product: {workload.users: [2, 4]}\n"
                             "  zip: {workload.users: [2, 4]}"),
     "sweep.zip.workload.users: workload.users is in product too; sweep a parameter once", 22),
    ("sweep_nested", sweeps("  product: {backends.0: [{name: b1}], backends.0.capacity: [1]}"),
     "sweep.product.backends.0.capacity: 'backends.0.capacity' and 'backends.0' set the same "
     "value; sweep it once", 21),
    ("sweep_product_name", sweeps("  product: {name: [a, b]}"),
     "sweep.product.name: cannot sweep 'name'", 21),
    ("sweep_product_same", sweeps("  zip: {workload.users: [3, 3]}"),
     "sweep.zip.workload.users: values must be distinct", 21),
    ("sweep_same_folder", sweeps("  product: {question: ['x y', x_y]}"),
     "sweep: points question = 'x y' and question = 'x_y' have the same run folder name "
     "'question=x_y'", 20),
    ("sweep_param_no_values", sweeps("  param: workload.users"),
     "sweep.values: is required with param", 20),
    ("sweep_param_and_zip", sweeps("  param: workload.users\n  values: [2]\n"
                                   "  zip: {workload.think_ms: [1]}"),
     "sweep.param: param/values sweeps one parameter; with product or zip, put it into "
     "product", 21),
    ("sweep_empty", sweeps("  {}"), "sweep: expected param/values, product or zip", 20),
    ("sweep_zip_int", sweeps("  zip: {workload.users: 4}"),
     "sweep.zip.workload.users: 4: expected a list", 21),
    ("sweep_points_101", sweeps("  product: {workload.users: [%s], question: [%s]}" % (
        ", ".join(str(i) for i in range(1, 12)), ", ".join(f"q{i}" for i in range(10)))),
     "sweep: 110 sweep points: expected at most 100", 20),
    ("sweep_runs", spec(("warmup_s: 1", "warmup_s: 1\nrepetitions: 26\nsweep:\n  product: "
                                        "{workload.users: [%s], question: [%s]}" % (
                                            ", ".join(str(i) for i in range(1, 11)),
                                            ", ".join(f"q{i}" for i in range(10))))),
     "repetitions: 26: 2 balancers x 100 sweep point(s) x 26 repetitions = 5200 runs: "
     "expected at most 5000", 20),
    # -- the l7 section: the proxy config's own rules, under the balancer -----------------------
    ("l7_groups_list", spec(("least_connections}", "least_connections, l7: {groups: "
                                                   "[{backends: [b1]}]}}")),
     "balancers[1].l7.groups: ", 11),
    ("l7_unknown_backend", spec(("least_connections}", "least_connections, l7: {groups: "
                                                       "{api: {backends: [b3]}}}}")),
     "balancers[1].l7.groups.api.backends: unknown backend 'b3'; expected one of b1, b2", 11),
    ("l7_workers_zero", spec(("least_connections}", "least_connections, l7: {workers: 0}}")),
     "balancers[1].l7.workers: ", 11),
    ("l7_not_mapping", spec(("least_connections}", "least_connections, l7: [a]}")),
     "balancers[1].l7: a list: expected a mapping", 11),
]

NODE_LINK = nx.node_link_data(graphs.single(n=2), edges="edges")
for _node in NODE_LINK["nodes"]:
    if _node["id"] == "h1":
        del _node["ip"]
CONTROLLER = json.dumps({"topology": NODE_LINK, "services": {"web": {
    "vip": "10.0.0.100", "port": 80, "mode": "l4", "backends": {"h1": 1, "h2": 1}}}}, indent=1)

CASES = [case(f"spec-{case_id}", content, expected, line)
         for case_id, content, expected, line in ROWS] + [
    case("spec-set-seed", BASE, "mal.yaml (--set seed): seed: 1099511627776: expected a number "
                                "<= 4294967295", filename="mal.yaml",
         extra=("--set", "seed=1099511627776")),
    case("spec-set-users", BASE, "(--set workload.users): workload.users: 'lots': expected an "
                                 "integer", filename="mal2.yaml",
         extra=("--set", "workload.users=lots")),
    # The controller takes the topology as node-link data: a host without an address.
    case("controller-host-without-ip", CONTROLLER, "'h1'", command="controller",
         filename="ctl.json"),
]


@pytest.fixture(scope="module")
def results():
    return run(CASES, "validate")


def test_the_table_is_large_enough():
    assert len(CASES) >= 70


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_spec(results, case_):
    check(case_, results[case_["id"]])
