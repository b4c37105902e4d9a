"""The runner's readiness condition (pure): load starts only once the balancer has every
configured backend in its pool.

The documents are the real ones: the L4 controller's ``GET /services`` and ``GET /stats`` views of
a ``controllers.decisions.Core`` built from the runner's own controller config, and the builtin
proxy's stats of a ``lb_apps.proxy.runtime.Runtime`` built from the runner's proxy config.
"""
import json

import pytest

from controllers import config as controller_config
from controllers.decisions import Core
from experiments import run_plan as P
from experiments import spec as S
from lb_apps.balancing import make_balancer
from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.runtime import Runtime
from topologies import graphs

SPEC = """\
name: pool
topology: {name: leaf_spine, params: {leaves: 2, spines: 1, hosts_per_leaf: 3}}
backends:
  - {name: b1, weight: 1}
  - {name: b2, weight: 3}
balancers:
  - {name: grp, layer: l4, mode: group, algorithm: five_tuple_hash}
  - name: px
    layer: l7
    algorithm: round_robin
    l7: {workers: 2, health: {interval: 0.5, rise: 2, fall: 2}}
workload: {type: http, mode: closed, users: 2}
duration_s: 1
"""


@pytest.fixture(scope="module")
def lab():
    spec = S.loads_spec(SPEC, "pool.yaml")
    graph = graphs.build(spec.topology.name, spec.topology.params)
    return spec, graph, P.assign_roles(graph, spec.backends)


def controller(lab):
    """A controller core as the runner configures it, and what the runner expects of it."""
    spec, graph, roles = lab
    cfg = P.controller_config(spec, spec.balancers[0], graph, roles, 6653, 8080)
    core = Core(controller_config.parse_config(json.loads(json.dumps(cfg))), make_balancer)
    names = {host: name for name, host in roles.backends.items()}
    return core, P.controller_pool_expected(cfg), names


def waiting(core, expected, names):
    # through JSON, as the runner reads them from the API
    services = json.loads(json.dumps(core.services_view()))
    stats = json.loads(json.dumps(core.stats_view()))
    return P.controller_pool_waiting(services, stats, *expected, names)


def test_the_controller_pool_expected_is_the_configured_one(lab):
    spec, graph, roles = lab
    _, (pool, switches), _ = controller(lab)
    assert pool == {roles.backends["b1"]: 1, roles.backends["b2"]: 3}
    assert switches == sorted(graphs.switches(graph)) and len(switches) == 3


def test_the_controller_is_ready_only_with_every_switch_connected(lab):
    core, expected, names = controller(lab)
    switches = expected[1]
    assert waiting(core, expected, names) == [f"switches not connected: {', '.join(switches)}"]
    for switch in switches[:-1]:
        core.switch_up(switch)
    assert waiting(core, expected, names) == [f"switch not connected: {switches[-1]}"]
    core.switch_up(switches[-1])
    assert waiting(core, expected, names) == []


def test_a_backend_down_drained_or_missing_keeps_the_controller_waiting(lab):
    spec, _, roles = lab
    core, expected, names = controller(lab)
    for switch in expected[1]:
        core.switch_up(switch)
    h1, h2 = roles.backends["b1"], roles.backends["b2"]
    (ss,) = core.services
    health = ss.svc.health
    # probes that found the port closed while the backend started: down after `fall` of them
    for now in range(health.fall):
        ss.backends[h2].health.record(False, health.rise, health.fall, float(now))
    assert waiting(core, expected, names) == [f"b2 ({h2}) health down"]
    for now in range(health.rise):
        ss.backends[h2].health.record(True, health.rise, health.fall, 10.0 + now)
    assert waiting(core, expected, names) == []
    core.set_weight(P.SERVICE_NAME, h2, 0)
    assert waiting(core, expected, names) == [f"b2 ({h2}) weight 0, configured 3"]
    core.set_weight(P.SERVICE_NAME, h2, 3)
    core.remove_backend(P.SERVICE_NAME, h1)
    assert waiting(core, expected, names) == [f"b1 ({h1}) not in the pool"]


def test_no_service_or_no_answer_is_not_ready(lab):
    core, expected, names = controller(lab)
    assert P.controller_pool_waiting({}, {}, *expected, names)[-1] == \
        f"no service {P.SERVICE_NAME!r} in the controller's pools"
    assert P.controller_pool_waiting(None, None, *expected)[0].startswith("switches not")


def proxy(lab):
    spec, graph, roles = lab
    data = P.proxy_config(spec, spec.balancers[1], graph, roles)
    return data, [Runtime(parse_l7_config(data), seed=w) for w in range(data["workers"])]


def stats(runtimes):
    return [json.loads(json.dumps(rt.describe())) for rt in runtimes]


def test_each_proxy_worker_has_its_stats_port(lab):
    data, _ = proxy(lab)
    assert P.proxy_stats_ports(data) == [P.PROXY_STATS_PORT, P.PROXY_STATS_PORT + 1]
    assert P.proxy_stats_ports(dict(data, workers=1)) == [P.PROXY_STATS_PORT]
    # nothing the runner could read: no endpoint, or one on a port picked at start
    assert P.proxy_stats_ports(dict(data, stats=None)) == []
    assert P.proxy_stats_ports(dict(data, stats={"host": "127.0.0.1", "port": 0})) == []


def test_the_proxy_is_ready_when_every_worker_serves_every_backend(lab):
    data, runtimes = proxy(lab)
    assert P.proxy_pool_waiting(stats(runtimes), data) == []
    assert P.proxy_pool_waiting([None, stats(runtimes)[1]], data) == ["worker 0: no stats yet"]
    # worker 1's checks took b2 down; worker 0 still serves it
    b2 = runtimes[1].backends["b2"].health
    for now in range(2):
        b2.on_check(False, float(now))
    assert P.proxy_pool_waiting(stats(runtimes), data) == [
        "worker 1: b2 not serving (active down, passive ok)"]
    docs = stats(runtimes)
    del docs[0]["backends"]["b1"]
    assert P.proxy_pool_waiting(docs, data) == [
        "worker 0: b1 not in the pool", "worker 1: b2 not serving (active down, passive ok)"]
