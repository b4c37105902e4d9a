"""The spec's ``in_flight`` of an L4 balancer: its default, its checks (one located line each)
and its way into the controller config the runner writes (docs/experiments.md)."""
import pytest

from controllers import config as ctl_config
from experiments import run_plan as plan
from experiments import spec as S
from topologies import graphs

SPEC = """\
name: lc
topology: {name: lb_lab, params: {clients: 2, backends: 2}}
backends: 2
balancers:
%s
workload: {type: http, mode: closed, users: 2}
duration_s: 2
"""


def spec_of(*balancers):
    return S.loads_spec(SPEC % "\n".join(f"  - {b}" for b in balancers), "lc.yaml")


def errors_of(*balancers):
    with pytest.raises(S.SpecError) as info:
        spec_of(*balancers)
    return info.value.errors


def service_of(spec, index=0):
    graph = graphs.build(spec.topology.name, spec.topology.params)
    roles = plan.assign_roles(graph, spec.backends)
    cfg = plan.controller_config(spec, spec.balancers[index], graph, roles, 6653, 8080)
    return cfg, cfg["services"][plan.SERVICE_NAME]


def test_l4_least_connections_defaults_to_counters_and_other_balancers_have_none():
    spec = spec_of("{name: lc, layer: l4, algorithm: least_connections}",
                   "{name: wlc, layer: l4, algorithm: weighted_least_connections}",
                   "{name: rr, layer: l4, algorithm: round_robin}",
                   "{name: l2lc, layer: l4, mode: l2, algorithm: least_connections}",
                   "{name: px, layer: l7, algorithm: least_connections}")
    assert [b.in_flight for b in spec.balancers] == ["counters", "counters", None, None, None]
    resolved = spec.to_dict()["balancers"]
    assert [b["in_flight"] for b in resolved] == ["counters", "counters", None, None, None]


@pytest.mark.parametrize("value", ["flows", "counters", "group"])
def test_each_source_is_taken_and_reaches_the_controller_config(value):
    spec = spec_of(f"{{name: lc, layer: l4, algorithm: least_connections, in_flight: {value}}}")
    assert spec.balancers[0].in_flight == value
    cfg, service = service_of(spec)
    assert service["in_flight"] == value
    # the controller accepts what the runner writes
    parsed = ctl_config.parse_config(cfg)
    assert parsed.services[0].in_flight == value


def test_a_balancer_without_in_flight_writes_none_into_the_controller_config():
    _cfg, service = service_of(spec_of("{name: rr, layer: l4, algorithm: round_robin}"))
    assert "in_flight" not in service


def test_a_wrong_source_is_one_line_with_the_choices():
    [error] = errors_of("{name: lc, layer: l4, algorithm: least_connections, in_flight: grup}")
    assert error.startswith("lc.yaml:5: balancers[0].in_flight: 'grup': expected one of "
                            "flows, counters, group")
    assert "did you mean group?" in error


@pytest.mark.parametrize("balancer, got", [
    ("{name: rr, layer: l4, algorithm: round_robin, in_flight: group}",
     "got mode l4, algorithm round_robin"),
    ("{name: d, layer: l4, mode: l2, algorithm: least_connections, in_flight: counters}",
     "got mode l2, algorithm least_connections"),
    ("{name: g, layer: l4, mode: group, in_flight: flows}",
     "got mode group, algorithm five_tuple_hash"),
])
def test_in_flight_where_it_does_not_apply_names_the_field_value_and_what_it_needs(balancer, got):
    [error] = errors_of(balancer)
    assert error.startswith("lc.yaml:5: balancers[0].in_flight: ")
    assert "applies to mode l4 with least_connections or weighted_least_connections only" \
        in error
    assert got in error


def test_an_override_can_pick_the_source():
    spec = S.loads_spec(SPEC % "  - {name: lc, layer: l4, algorithm: least_connections}",
                        "lc.yaml", ["balancers[0].in_flight=group"])
    assert spec.balancers[0].in_flight == "group"


def test_the_model_twin_ends_counts_at_the_counter_poll_where_the_switch_counts():
    from controllers.config import ControllerSettings
    from experiments.model import systems
    spec = spec_of("{name: lc, layer: l4, algorithm: least_connections}",
                   "{name: g, layer: l4, algorithm: least_connections, in_flight: group}",
                   "{name: f, layer: l4, algorithm: least_connections, in_flight: flows}",
                   "{name: d, layer: l4, mode: l2, algorithm: least_connections}")
    poll = ControllerSettings().reweight_interval
    idle = ctl_config.ServiceSpec.model_fields["idle_timeout"].default
    assert poll != idle
    assert [systems.close_lag(b) for b in spec.balancers] == [poll, poll, idle, idle]
