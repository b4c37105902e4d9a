"""The pure run plan: a spec mapped onto hosts and turned into each process's config."""
import datetime
import json

import pytest

from controllers.config import parse_config
from experiments import run_plan as P
from experiments import runner
from experiments import spec as S
from lblab_core.errors import UsageError
from lb_apps.l7config import parse_l7_config
from topologies import graphs

SPEC = """\
name: plan
seed: 4
topology: {name: lb_lab, params: {clients: 3}}
backends:
  - {name: b1, capacity: 1}
  - {name: b2, capacity: 3, service: {dist: lognormal, mean_ms: 5, sigma: 0.3}}
balancers:
  - {name: l4, layer: l4, mode: l4, algorithm: weighted_round_robin}
  - name: l7
    layer: l7
    algorithm: least_connections
    l7: {groups: {big: {backends: [b2]}}, routes: [{match: {path_prefix: /big}, group: big}]}
workload:
  type: http
  mode: open
  rate: 100
  users: 7
  mix: [{path: /, weight: 3}, {path: /big, headers: {X-A: "1"}, cookies: {s: x}}]
warmup_s: 1
duration_s: 4
"""


@pytest.fixture()
def spec():
    return S.loads_spec(SPEC, "plan.yaml")


@pytest.fixture()
def graph(spec):
    return graphs.build(spec.topology.name, spec.topology.params)


def test_roles_from_a_graph_with_roles(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    assert roles.clients == ("h1", "h2", "h3") and roles.lb == "h4"
    assert roles.backends == {"b1": "h5", "b2": "h6"}


def test_roles_from_a_role_less_graph(spec):
    roles = P.assign_roles(graphs.build("single", {"n": 5}), spec.backends)
    assert roles == P.Roles(clients=("h1", "h2"), lb="h3", backends={"b1": "h4", "b2": "h5"})
    with pytest.raises(P.PlanError, match="3 hosts cannot hold 2 backends"):
        P.assign_roles(graphs.build("single", {"n": 3}), spec.backends)


def test_split_load():
    assert P.split_load(7, ["a", "b", "c"]) == [("a", 3), ("b", 2), ("c", 2)]
    assert P.split_load(2, ["a", "b", "c"]) == [("a", 1), ("b", 1)]
    assert P.split_load(90.0, ["a", "b", "c"]) == [("a", 30.0), ("b", 30.0), ("c", 30.0)]


def test_loadgen_configs_split_the_total_rate(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    cfgs = P.loadgen_configs(spec, roles, "http://10.0.0.4:80/", 4000, lambda c: f"/r/{c}")
    assert list(cfgs) == ["h1", "h2", "h3"]
    h1 = cfgs["h1"]
    assert h1["rate"] == pytest.approx(100 / 3) and h1["pool_size"] == 3
    assert cfgs["h3"]["pool_size"] == 2
    assert h1["mode"] == "open" and h1["arrival"] == "poisson" and h1["warmup_s"] == 1.0
    assert h1["duration_s"] == 4.0 and h1["record"] == "/r/h1" and h1["name"] == "h1"
    assert h1["source_ports"] == "seeded"
    assert [c["seed"] for c in cfgs.values()] == [4000, 4001, 4002]
    assert h1["mix"][1] == {"path": "/big", "method": "GET", "weight": 1.0,
                            "headers": {"X-A": "1"}, "cookies": {"s": "x"}, "body_size": 0}
    from lb_apps.loadgen.workload import config_from_dict
    config_from_dict(h1)          # the load generator accepts it


def test_controller_config_is_valid_for_the_controller(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    cfg = P.controller_config(spec, spec.balancers[0], graph, roles, 6653, 8080)
    parsed = parse_config(json.loads(json.dumps(cfg)))
    (svc,) = parsed.services
    assert svc.vip == P.VIP and svc.port == 80 and svc.mode == "l4"
    assert svc.algorithm == "weighted_round_robin"
    assert {b.name: b.weight for b in svc.backends} == {"h5": 1, "h6": 3}
    assert P.vip_is_free(graph)
    assert svc.conntrack is False


def test_controller_config_passes_conntrack_for_a_group(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    group = spec.balancers[0].model_copy(update=dict(mode="group", algorithm="five_tuple_hash",
                                                     conntrack=True))
    (svc,) = parse_config(P.controller_config(spec, group, graph, roles, 6653, 8080)).services
    assert svc.mode == "group" and svc.conntrack is True


def test_proxy_config_resolves_backend_names(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    cfg = parse_l7_config(P.proxy_config(spec, spec.balancers[1], graph, roles))
    assert cfg.algorithm == "least_connections" and cfg.listen.port == 80
    assert [(b.name, b.address, b.weight) for b in cfg.backends] == [
        ("b1", "10.0.0.5", 1), ("b2", "10.0.0.6", 3)]
    assert [b.address for b in cfg.groups["big"].backends] == ["10.0.0.6"]
    assert cfg.stats.port == P.PROXY_STATS_PORT
    drained = parse_l7_config(P.proxy_config(spec, spec.balancers[1], graph, roles,
                                             backends={"b1": 0}))
    assert [b.name for b in drained.backends] == ["b2"]


def test_backend_args(spec):
    args = P.backend_args(spec.backends[1], "/r/b2.jsonl", 7)
    assert args[:3] == ["-m", "lb_apps.backend.server", "--name"]
    assert args[args.index("--service-mean-ms") + 1] == "5.0"
    assert args[args.index("--service-sigma") + 1] == "0.3"
    assert args[args.index("--capacity") + 1] == "3"


def test_service_url(spec, graph):
    roles = P.assign_roles(graph, spec.backends)
    assert P.service_url(spec.balancers[0], graph, roles) == "http://10.254.0.1:80/"
    assert P.service_url(spec.balancers[1], graph, roles) == "http://10.0.0.4:80/"


def test_client_windows():
    records = {"h1": [{"scheduled": 9.5, "warmup": True}, {"scheduled": 10.2},
                      {"scheduled": 10.0}],
               "h2": [{"scheduled": 9.0, "warmup": True}]}
    windows = P.client_windows(records, 5.0)
    assert windows == {"h1": [10.0, 15.0]}
    assert P.union_window(windows) == [10.0, 15.0]
    assert P.union_window({}) is None


def test_iperf3_attribution_from_server_logs():
    one = json.dumps({"start": {"connected": [{"remote_host": "10.0.0.1"}]}}, indent=1)
    two = json.dumps({"start": {"connected": [{"remote_host": "10.0.0.2"}]}})
    logs = {"b1": one + "\n" + two, "b2": "", "b3": "{broken"}
    assert P.iperf3_servers_by_client(logs, {"10.0.0.1": "h1", "10.0.0.2": "h2"}) == {
        "h1": "b1", "h2": "b1"}


def test_results_dir_is_never_reused(tmp_path):
    now = datetime.datetime(2026, 11, 28, 9, 0, 0, tzinfo=datetime.timezone.utc)
    assert P.results_dir_name("quick", now) == "quick-20261128T090000"
    path = runner.make_results_dir(str(tmp_path), "quick", now)
    assert path.endswith("quick-20261128T090000")
    with pytest.raises(UsageError, match="already exists; results are never overwritten"):
        runner.make_results_dir(str(tmp_path), "quick", now)


def test_plan_runs_orders_configs_and_repetitions(spec):
    spec = S.loads_spec(SPEC, "plan.yaml", ["repetitions=2"])
    runs = runner.plan_runs(spec, order="sequential")
    assert [(r[1], r[5]) for r in runs] == [("l4", 1), ("l4", 2), ("l7", 1), ("l7", 2)]
    assert [r[0] for r in runs] == [0, 0, 1, 1]      # the configuration's index, as before


def test_run_needs_root_and_a_valid_spec(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("rate: 100", "rate: -1").replace("users: 7", "users: 0"))
    with pytest.raises(UsageError, match=r"workload.users: 0: expected a number >= 1.*"
                                         r"\(2 problems\)"):
        runner.main([str(bad)])
    assert "workload.rate: -1: expected a number > 0" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(SPEC)
    monkeypatch.setattr(runner.os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="needs root"):
        runner.main([str(good), "--out", str(tmp_path)])
