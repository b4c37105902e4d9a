"""Experiment spec validation: located errors, did-you-mean, overrides, sweeps, shipped specs."""
import glob
import os

import pytest

from experiments import spec as S
from experiments import validate_cmd

GOOD = """\
name: quick
seed: 7
topology:
  name: lb_lab
  params: {clients: 2}
backends:
  - {capacity: 1, service: {dist: exponential, mean_ms: 2}}
  - {capacity: 2, response_size: 2048}
balancers:
  - {name: rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: px, layer: l7, engine: builtin, algorithm: least_connections}
workload: {type: http, mode: closed, users: 4}
duration_s: 5
"""

SPECS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "specs")


def errors_of(text, overrides=()):
    with pytest.raises(S.SpecError) as info:
        S.loads_spec(text, "quick.yaml", overrides)
    return info.value.errors


def test_good_spec_parses_with_defaults():
    spec = S.loads_spec(GOOD, "quick.yaml")
    assert spec.name == "quick" and spec.seed == 7
    assert [b.name for b in spec.backends] == ["b1", "b2"]
    # weight defaults to capacity, so fairness is judged against the capacity ratio
    assert [b.weight for b in spec.backends] == [1, 2]
    assert spec.backends[0].service == S.ServiceTime(dist="exponential", mean_ms=2.0, sigma=0.5)
    # lb_lab gets as many backend hosts as the spec has backends
    assert spec.topology.params == {"clients": 2, "backends": 2}
    assert spec.balancers[1].engine == "builtin" and spec.balancers[1].l7 == {}
    assert spec.workload.mode == "closed" and spec.workload.users == 4
    assert spec.repetitions == 1 and spec.warmup_s == 1.0 and spec.duration_s == 5.0
    assert spec.sweep is None and spec.faults == ()
    assert S.configurations(spec)[0][0] == "rr"


def test_unknown_algorithm_names_file_line_path_choices_and_suggestion():
    text = GOOD.replace("algorithm: least_connections", "algorithm: leastconn")
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:11: balancers[1].algorithm: 'leastconn': "
                          "expected one of round_robin, ")
    assert err.endswith("did you mean least_connections?")


@pytest.mark.parametrize("old,new,expected", [
    ("seed: 7", "seed: 7\nsead: 3", "quick.yaml:3: sead: unknown key 'sead'; expected one of "),
    ("seed: 7", "seed: -1", "quick.yaml:2: seed: -1: expected a number >= 0"),
    ("seed: 7", "seed: seven", "quick.yaml:2: seed: 'seven': expected an integer"),
    ("name: lb_lab", "name: lb_labb", "quick.yaml:4: topology.name: 'lb_labb': "
                                      "expected one of lb_lab, single"),
    ("{clients: 2}", "{clients: 0}", "quick.yaml:5: topology.params.clients: lb_lab: "
                                     "parameter 'clients' must be an integer >= 1, got 0"),
    ("{clients: 2}", "{client: 2}", "quick.yaml:5: topology.params.client: unknown parameter "
                                    "'client' of lb_lab"),
    ("dist: exponential", "dist: gauss", "quick.yaml:7: backends[0].service.dist: "
                                         "'gauss': expected one of fixed, exponential, "
                                         "lognormal"),
    ("capacity: 2,", "capacity: 2.5,", "quick.yaml:8: backends[1].capacity: 2.5: expected an "
                                       "integer"),
    ("mode: l4,", "mode: l5,", "quick.yaml:10: balancers[0].mode: 'l5': "
                                    "expected one of l2, l3, l4, group, proactive"),
    ("layer: l4,", "layer: l3,", "quick.yaml:10: balancers[0].layer: 'l3': "
                                 "expected one of l4, l7"),
    ("engine: builtin", "engine: envoy", "quick.yaml:11: balancers[1].engine: "
                                         "'envoy': expected one of builtin, haproxy, nginx"),
    ("users: 4}", "users: 4, keepalive: yes please}", "quick.yaml:12: workload.keepalive: "
                                                      "'yes please': expected true or false"),
    ("mode: closed", "mode: closd", "quick.yaml:12: workload.mode: 'closd': expected "
                                    "one of open, closed; did you mean closed?"),
    ("users: 4}", "users: 4, rate: 10}", "quick.yaml:12: workload.rate: rate applies to mode: "
                                         "open only"),
    ("mode: closed", "mode: open", "quick.yaml:12: workload.rate: an open-loop workload "
                                   "needs rate"),
    ("duration_s: 5", "duration_s: 0", "quick.yaml:13: duration_s: 0: expected a number "
                                       ">= 0.5"),
    ("duration_s: 5", "duration_s: 5\nduration_s: 6", "quick.yaml:14: duration_s: duplicate "
                                                      "key 'duration_s' (first at line 13)"),
    ("algorithm: round_robin}", "algorithm: round_robin, engine: haproxy}",
     "quick.yaml:10: balancers[0].engine: 'engine' applies to layer: l7 only"),
    ("name: rr,", "name: px,", "quick.yaml:11: balancers[1].name: duplicate balancer name"),
    ("name: rr,", "name: r-r,", "quick.yaml:10: balancers[0].name: 'r-r': expected a name: "
                                "1-48 letters"),
])
def test_each_error_is_located(old, new, expected):
    assert old in GOOD
    errors = errors_of(GOOD.replace(old, new, 1))
    assert any(e.startswith(expected) for e in errors), errors


def test_l7_config_errors_are_located_under_the_balancer():
    text = GOOD.replace("algorithm: least_connections}",
                        "algorithm: least_connections, l7: {workers: 0}}")
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:11: balancers[1].l7.workers: ")


def test_all_errors_are_reported_together():
    text = GOOD.replace("seed: 7", "seed: x").replace("users: 4", "users: 0")
    errors = errors_of(text)
    assert len(errors) == 2
    assert errors[0].startswith("quick.yaml:2: seed:")
    assert errors[1].startswith("quick.yaml:12: workload.users:")


def test_missing_required_keys_and_not_a_mapping():
    assert errors_of("name: x\n") == [
        "quick.yaml:1: topology: is required",
        "quick.yaml:1: backends: is required",
        "quick.yaml:1: balancers: is required",
        "quick.yaml:1: workload: is required"]
    assert errors_of("- 1\n")[0].startswith("quick.yaml:1: (top level): a list: expected a "
                                             "mapping")


def test_invalid_yaml_is_located():
    (err,) = errors_of("name: x\nseed: [1\n")
    assert err.startswith("quick.yaml:3: not valid YAML")


def test_backend_count_must_match_topology_backend_hosts():
    text = GOOD.replace("{clients: 2}", "{clients: 2, backends: 3}")
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:6: backends: 2 backends but the topology has 3 backend "
                          "hosts (h4, h5, h6)")


def test_faults_are_checked_against_backends_links_and_duration():
    text = GOOD + """faults:
  - {at_s: 1, action: kill_backend, target: b3}
  - {at_s: 9, action: restore_backend, target: b1}
  - {at_s: 1, action: link_down, target: s1-h9}
  - {at_s: 1, action: set_weight, target: b1}
  - {at_s: 1, action: kil_backend, target: b1}
"""
    errors = errors_of(text)
    assert errors[0] == "quick.yaml:15: faults[0].target: 'b3': expected one of b1, b2"
    assert errors[1].startswith("quick.yaml:16: faults[1].at_s: 9 is not within the "
                                "measurement (duration_s: 5)")
    assert errors[2].startswith("quick.yaml:17: faults[2].target: no link 's1-h9'")
    assert errors[3].startswith("quick.yaml:18: faults[3].value: is required for set_weight: "
                                "the new weight, a number in 0..65535")
    assert errors[4].endswith("did you mean kill_backend?")


def test_faults_sorted_by_time():
    text = GOOD + """faults:
  - {at_s: 3, action: restore_backend, target: b1}
  - {at_s: 1, action: kill_backend, target: b1}
"""
    spec = S.loads_spec(text, "quick.yaml")
    assert [f.action for f in spec.faults] == ["kill_backend", "restore_backend"]


def test_set_overrides_and_their_errors():
    spec = S.loads_spec(GOOD, "quick.yaml", ["workload.users=8", "balancers[0].algorithm=random"])
    assert spec.workload.users == 8 and spec.balancers[0].algorithm == "random"
    spec = S.loads_spec(GOOD, "quick.yaml", ["balancers.1.engine=haproxy"])
    assert spec.balancers[1].engine == "haproxy"
    (err,) = errors_of(GOOD, ["workload.users=lots"])
    assert err.startswith("quick.yaml (--set workload.users): workload.users: 'lots': "
                          "expected an integer")
    (err,) = errors_of(GOOD, ["workload.users"])
    assert err == "--set workload.users: expected key.path=value"
    (err,) = errors_of(GOOD, ["balancers[5].algorithm=random"])
    assert "index out of range" in err


def test_sweep_points_are_each_validated():
    text = GOOD + "sweep: {param: workload.users, values: [1, 0, 8]}\n"
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:14: sweep.values[1]: with workload.users = 0: "
                          "workload.users: 0: expected a number >= 1")
    spec = S.loads_spec(text.replace("[1, 0, 8]", "[1, 8]"), "quick.yaml")
    configs = S.configurations(spec)
    assert [c[0] for c in configs] == ["rr-users=1", "rr-users=8", "px-users=1", "px-users=8"]
    assert configs[1][3].workload.users == 8 and configs[1][3].sweep is None


def test_iperf3_workload_needs_l4_balancers():
    text = GOOD.replace("{type: http, mode: closed, users: 4}",
                        "{type: iperf3, protocol: tcp, flows: 2, bitrate: 10M}")
    errors = errors_of(text)
    assert errors[1].startswith("quick.yaml:11: balancers[1].layer: an iperf3 workload needs")


def test_parse_set_path():
    assert S.parse_set_path("a.b[2].c") == ("a", "b", 2, "c")
    assert S.parse_set_path("balancers.1.engine") == ("balancers", 1, "engine")
    with pytest.raises(ValueError):
        S.parse_set_path("a..b")


def test_validate_command(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("round_robin", "round_robbin"))
    assert validate_cmd.main([str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert validate_cmd.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:10: balancers[0].algorithm: 'round_robbin': expected one of" in err
    assert "did you mean round_robin?" in err


SHIPPED = sorted(glob.glob(os.path.join(SPECS_DIR, "*.yaml")))


def test_the_shipped_specs_exist():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"quickstart.yaml", "algorithms.yaml", "l4_vs_l7.yaml", "content_routing.yaml",
            "failover.yaml", "fairness.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_every_shipped_spec_validates(path):
    spec = S.load_spec(path)
    assert spec.name == os.path.splitext(os.path.basename(path))[0]
    assert S.configurations(spec)


def test_l7_groups_name_spec_backends():
    text = GOOD.replace("algorithm: least_connections}",
                        "algorithm: least_connections,\n     l7: {groups: {api: {backends: [b3]}}}}")
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:12: balancers[1].l7.groups.api.backends: unknown backend "
                          "'b3'; expected one of b1, b2")
    resolved = S.resolve_l7({"groups": {"api": {"backends": ["b2"]}}},
                            {"b1": ("10.0.0.4", 1), "b2": ("10.0.0.5", 2)}, "random")
    assert resolved["algorithm"] == "random"
    assert resolved["backends"] == [{"name": "b1", "address": "10.0.0.4", "port": 80, "weight": 1},
                                    {"name": "b2", "address": "10.0.0.5", "port": 80, "weight": 2}]
    assert resolved["groups"]["api"]["backends"][0]["address"] == "10.0.0.5"


def test_conntrack_is_a_group_option():
    spec = S.loads_spec(GOOD.replace("mode: l4, algorithm: round_robin",
                                     "mode: group, conntrack: true"), "quick.yaml")
    assert spec.balancers[0].conntrack is True and spec.balancers[1].conntrack is False
    (err,) = errors_of(GOOD.replace("mode: l4,", "mode: l4, conntrack: true,"))
    assert err.startswith("quick.yaml:10: balancers[0].conntrack: applies to mode: group only")
    (err,) = errors_of(GOOD.replace("mode: l4, algorithm: round_robin",
                                    "mode: group, conntrack: 1"))
    assert err.startswith("quick.yaml:10: balancers[0].conntrack: 1: expected true or false")


def test_l4_algorithm_must_suit_the_mode():
    (err,) = errors_of(GOOD.replace("mode: l4,", "mode: group,"))
    assert err == ("quick.yaml:10: balancers[0].algorithm: mode group cannot balance by "
                   "'round_robin'; expected one of five_tuple_hash")
    spec = S.loads_spec(GOOD.replace("mode: l4, algorithm: round_robin", "mode: proactive"),
                        "quick.yaml")
    assert spec.balancers[0].algorithm == "ip_prefix"


IPERF = GOOD.replace("{type: http, mode: closed, users: 4}", "{type: iperf3, flows: 2}").replace(
    "  - {name: px, layer: l7, engine: builtin, algorithm: least_connections}\n", "")


def test_iperf3_needs_per_client_balancing_and_tcp():
    (err,) = errors_of(IPERF)
    assert err.startswith("quick.yaml:10: balancers[0]: l4/round_robin balances each "
                          "connection on its own")
    assert S.loads_spec(IPERF.replace("mode: l4,", "mode: l3,"), "quick.yaml")
    errors = errors_of(IPERF.replace("mode: l4,", "mode: l3,").replace(
        "flows: 2", "flows: 2, protocol: udp"))
    assert errors[0].startswith("quick.yaml:11: workload.protocol: udp is not supported yet")


def test_l7_needs_an_lb_host():
    text = GOOD.replace("name: lb_lab\n  params: {clients: 2}",
                        "name: dumbbell\n  params: {hosts_per_side: 2}")
    (err,) = errors_of(text)
    assert err.startswith("quick.yaml:4: topology.name: dumbbell has no lb host")


def test_head_is_a_method_because_the_load_generator_sends_it():
    from lb_apps.loadgen import workload as workload
    spec = S.loads_spec(GOOD.replace("users: 4}", "users: 4, mix: [{path: /, method: HEAD}]}"),
                        "quick.yaml")
    assert spec.workload.mix[0].method == "HEAD"
    assert S.HTTP_METHODS is workload.HTTP_METHODS


def test_each_choice_comes_from_its_owner():
    from controllers import config as controller
    from lb_apps.backend import model as backend_model
    from lb_apps import balancing
    from lb_apps.engines import render as engines
    from topologies import graphs
    assert S.L4_MODES is controller.MODES
    assert S.SERVICE_DISTS is backend_model.SERVICE_DISTS
    assert S.MAX_RESPONSE_BYTES == backend_model.MAX_RESPONSE_BYTES
    assert S.L7_ENGINES == ("builtin",) + tuple(engines.ENGINES)
    assert set(S.L4_ALGORITHMS) == set(balancing.ALGORITHMS) | {
        a for algos in controller.MODE_ALGORITHMS.values() for a in algos}
    assert S.TOPOLOGIES[0] == "lb_lab" and set(S.TOPOLOGIES) == set(graphs.GENERATORS)


def test_spec_as_run_and_its_dict():
    import json
    spec = S.loads_spec(GOOD, "quick.yaml")
    assert "backends" not in spec.data["topology"]["params"]  # lb_lab's default is not written
    assert spec.source == "quick.yaml" and spec.balancer("px").layer == "l7"
    out = json.loads(json.dumps(spec.to_dict()))
    assert out["source"] == "quick.yaml" and out["topology"]["params"]["backends"] == 2
    assert [sorted(b) for b in out["balancers"]] == [sorted(S.BALANCER_KEYS)] * 2
    assert out["balancers"][0]["engine"] is None and out["balancers"][1]["mode"] is None


def test_an_unknown_key_of_the_other_layer_says_which_layer_takes_it():
    (err,) = errors_of(GOOD.replace("engine: builtin,", "engine: builtin, conntrack: true,"))
    assert err.startswith("quick.yaml:11: balancers[1].conntrack: 'conntrack' applies to "
                          "layer: l4 only; expected one of name, layer, engine, algorithm, l7")
    (err,) = errors_of(GOOD.replace("layer: l4, ", ""))
    assert err == "quick.yaml:10: balancers[0].layer: is required: one of l4, l7"


def test_a_problem_is_said_once_even_when_its_part_is_used_by_other_rules():
    # the bad backend list is reported; the rules that need it (lb_lab hosts, faults) keep quiet
    text = GOOD.replace("capacity: 2,", "capacity: 0,") + (
        "faults:\n  - {at_s: 1, action: kill_backend, target: b9}\n")
    assert errors_of(text) == ["quick.yaml:8: backends[1].capacity: 0: expected a number >= 1"]


def test_the_spec_modules_stay_small():
    import pathlib
    root = pathlib.Path(S.__file__).parent
    for name in ("spec", "spec_models", "spec_checks", "spec_errors", "overrides"):
        assert len((root / f"{name}.py").read_text().splitlines()) <= 600, name
