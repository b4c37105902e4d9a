"""The model twin's behaviour: decision granularity, the client pool, overheads, timeouts,
records and metrics shared with the emulation, determinism, and ``lblab model`` (no root)."""
import json
from collections import defaultdict

import pytest

from experiments import cli
from experiments import metrics
from experiments import spec as spec_mod
from experiments.model import predict, systems
from lb_apps.records import check_record


def _spec(balancers, workload, backends=4, clients=4, service="{dist: exponential, mean_ms: 4}",
          duration=3, warmup=0.5, extra=""):
    rows = "\n".join(f"  - {{name: b{i + 1}, service: {service}}}" for i in range(backends))
    return spec_mod.loads_spec(f"""
name: modeltest
seed: 3
topology: {{name: lb_lab, params: {{clients: {clients}}}}}
backends:
{rows}
balancers:
{balancers}
workload: {workload}
warmup_s: {warmup}
duration_s: {duration}
{extra}
""")


def _system(spec, name=None):
    for config, balancer, point, point_spec in spec_mod.configurations(spec):
        if name is None or balancer.name == name:
            return systems.build_system(config, balancer, point, point_spec)
    raise AssertionError(name)


def _backends_by_client(records):
    out = defaultdict(set)
    for r in records:
        if r["backend"] is not None:
            out[r["client"]].add(r["backend"])
    return out


BALANCERS = """\
  - {name: l7_rr, layer: l7, algorithm: round_robin}
  - {name: group, layer: l4, mode: group}
  - {name: l4_rr, layer: l4, mode: l4, algorithm: round_robin}
  - {name: l3_rr, layer: l4, mode: l3, algorithm: round_robin}
  - {name: prefix, layer: l4, mode: proactive}
  - {name: l7_iphash, layer: l7, algorithm: ip_hash}"""


def test_granularity_follows_the_balancer():
    spec = _spec(BALANCERS, "{type: http, mode: closed, users: 4, keepalive: true}")
    kinds = {b.name: _system(spec, b.name).granularity for b in spec.balancers}
    assert kinds == {"l7_rr": "request", "group": "connection", "l4_rr": "connection",
                     "l3_rr": "client", "prefix": "client", "l7_iphash": "client"}


def test_keepalive_connections_carry_all_requests_at_l4_but_not_at_l7():
    # 4 clients x 1 user, keep-alive: one long-lived connection per client
    spec = _spec(BALANCERS, "{type: http, mode: closed, users: 4, keepalive: true}")
    for name in ("group", "l4_rr"):
        per_client = _backends_by_client(predict.simulate_window(_system(spec, name), 1))
        assert len(per_client) == 4 and all(len(b) == 1 for b in per_client.values()), name
    per_client = _backends_by_client(predict.simulate_window(_system(spec, "l7_rr"), 1))
    assert all(len(b) == 4 for b in per_client.values())


def test_connection_per_request_is_balanced_per_connection():
    spec = _spec(BALANCERS, "{type: http, mode: closed, users: 4, keepalive: false}")
    per_client = _backends_by_client(predict.simulate_window(_system(spec, "l4_rr"), 1))
    assert all(len(b) == 4 for b in per_client.values())
    records = predict.simulate_window(_system(spec, "l4_rr"), 1)
    assert {r["conn"] for r in records} == {"new"}


@pytest.mark.parametrize("name", ["l3_rr", "prefix", "l7_iphash"])
def test_per_client_balancers_keep_each_client_on_one_backend(name):
    spec = _spec(BALANCERS, "{type: http, mode: closed, users: 8, keepalive: false}")
    per_client = _backends_by_client(predict.simulate_window(_system(spec, name), 1))
    assert len(per_client) == 4 and all(len(b) == 1 for b in per_client.values())


def test_l3_round_robin_gives_each_client_its_own_backend():
    spec = _spec(BALANCERS, "{type: http, mode: closed, users: 4, keepalive: true}")
    per_client = _backends_by_client(predict.simulate_window(_system(spec, "l3_rr"), 1))
    assert sorted(b for s in per_client.values() for b in s) == ["b1", "b2", "b3", "b4"]


def test_the_client_pool_bounds_concurrent_requests():
    # open loop at 400 req/s into 20 ms fixed service: far more than a pool of 2 carries
    spec = _spec("  - {name: l7_rr, layer: l7, algorithm: round_robin}",
                 "{type: http, mode: open, rate: 400, arrival: poisson, users: 2}",
                 clients=1, service="{dist: fixed, mean_ms: 20}", duration=1, warmup=0)
    records = predict.simulate_window(_system(spec), 1)
    events = sorted([(r["start"], 1) for r in records if r["start"] is not None]
                    + [(r["end"], -1) for r in records if r["start"] is not None])
    busy = peak = 0
    for _, step in events:
        busy += step
        peak = max(peak, busy)
    assert peak == 2
    waited = [r for r in records if r["pool_wait"] > 0]
    assert waited and all(r["end"] - r["scheduled"] >= r["pool_wait"] for r in waited)


def test_overhead_adds_to_every_latency():
    # constant arrivals far apart into a fixed service: no queueing, latency = service + overhead
    spec = _spec("  - {name: l7_rr, layer: l7, algorithm: round_robin}",
                 "{type: http, mode: open, rate: 10, arrival: constant, users: 4}",
                 clients=1, service="{dist: fixed, mean_ms: 5}", duration=2, warmup=0)
    (result,) = predict.predict(spec, windows=2, overheads={"l7_rr": 3.0})
    assert result["metrics"]["latency_mean_ms"]["mean"] == pytest.approx(8.0)
    (zero,) = predict.predict(spec, windows=2)
    assert zero["metrics"]["latency_mean_ms"]["mean"] == pytest.approx(5.0)
    assert "none given, so zero" in zero["model_notes"][0]


def test_slow_backends_time_requests_out():
    spec = _spec("  - {name: l7_rr, layer: l7, algorithm: round_robin}",
                 "{type: http, mode: closed, users: 2, timeout_s: 0.5}",
                 backends=1, clients=1, service="{dist: fixed, mean_ms: 2000}", duration=3,
                 warmup=0)
    m = predict.window_metrics(_system(spec), 1)
    assert m["error_rate"] == 1.0 and set(m["errors_by_kind"]) == {"timeout"}


def test_error_rate_of_backends_is_modelled():
    spec = _spec("  - {name: l7_rr, layer: l7, algorithm: round_robin}",
                 "{type: http, mode: closed, users: 4}", backends=1, clients=1,
                 service="{dist: fixed, mean_ms: 1}", duration=2, warmup=0)
    data = dict(spec.data)
    data["backends"] = [{"name": "b1", "error_rate": 0.25,
                         "service": {"dist": "fixed", "mean_ms": 1}}]
    spec = spec_mod.parse_spec(data)
    m = predict.window_metrics(_system(spec), 1)
    assert set(m["errors_by_kind"]) == {"http_500"}
    assert 0.2 < m["error_rate"] < 0.3            # ~4,000 requests at 25 %


def test_records_are_loadgen_records_and_metrics_are_the_emulations():
    spec = _spec(BALANCERS, "{type: http, mode: open, rate: 200, users: 16}")
    system = _system(spec, "group")
    records = predict.simulate_window(system, 1)
    for r in records:
        check_record(r, "loadgen")
    (result,) = [r for r in predict.predict(spec, windows=3) if r["balancer"] == "group"]
    assert set(result["metrics"]) <= set(metrics.SCALAR_METRICS)
    assert result["metrics"]["goodput_rps"]["values"][0] == \
        metrics.http_run_metrics(records, system.window, system.backend_list,
                                 system.client_names)["goodput_rps"]
    spread = result["metrics"]["latency_mean_ms"]
    assert spread["low"] <= spread["mean"] <= spread["high"] and spread["n"] == 3


def test_same_seed_same_prediction_and_windows_differ():
    spec = _spec("  - {name: l7_p2c, layer: l7, algorithm: power_of_two}",
                 "{type: http, mode: open, rate: 300, users: 16}")
    a = predict.predict(spec, windows=3)
    b = predict.predict(spec, windows=3)
    assert a == b
    values = a[0]["metrics"]["latency_mean_ms"]["values"]
    assert len(set(values)) == 3


def test_faults_are_said_not_modelled():
    spec = _spec("  - {name: l7_rr, layer: l7, algorithm: round_robin}",
                 "{type: http, mode: closed, users: 2}", duration=2,
                 extra="faults:\n  - {at_s: 1, action: kill_backend, target: b2}")
    (result,) = predict.predict(spec, windows=2)
    assert any("faults: not modelled" in line for line in result["model_notes"])


def test_cli_prints_a_table_and_json(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("""name: small
topology: {name: lb_lab, params: {clients: 2}}
backends: [{service: {mean_ms: 2}}, {service: {mean_ms: 2}}]
balancers:
  - {name: l7_lc, layer: l7, algorithm: least_connections}
  - {name: l4_group, layer: l4, mode: group}
workload: {type: http, mode: closed, users: 4}
warmup_s: 0.5
duration_s: 2
""")
    assert cli.main(["model", str(path), "--windows", "3"]) == 0
    out = capsys.readouterr().out
    assert "l7_lc" in out and "l4_group" in out and "per connection" in out
    assert cli.main(["model", str(path), "--windows", "3", "--json",
                     "--set", "workload.users=2", "--overhead-ms", "l4_group=1.5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["config"] for c in data["configurations"]] == ["l7_lc", "l4_group"]
    assert data["overhead_ms"] == {"l4_group": 1.5}
    assert data["configurations"][1]["overhead_ms"] == 1.5
    assert len(data["configurations"][0]["metrics"]["goodput_rps"]["values"]) == 3


def test_a_closed_loop_with_no_time_anywhere_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("""name: zero
topology: {name: lb_lab, params: {clients: 1}}
backends: 2
balancers: [{name: l7, layer: l7}]
workload: {type: http, mode: closed, users: 2}
""")
    assert cli.main(["model", str(path)]) == 2
    assert "backends[0].service.mean_ms: 0 with a closed loop" in capsys.readouterr().err
    assert cli.main(["model", str(path), "--windows", "2", "--overhead-ms", "0.5"]) == 0


def test_cli_refuses_iperf3_and_bad_flags(capsys):
    assert cli.main(["model", "experiments/specs/fairness.yaml"]) == 2
    err = capsys.readouterr().err
    assert "workload.type: 'iperf3' is outside the model" in err and "Traceback" not in err
    assert cli.main(["model", "experiments/specs/quickstart.yaml", "--overhead-ms",
                     "nosuch=2"]) == 2
    assert "--overhead-ms: unknown balancer 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["model", "experiments/specs/quickstart.yaml", "--windows", "1"])
    assert exc.value.code == 2
    assert "expected an integer from 2 to" in capsys.readouterr().err


def test_windows_default_within_the_request_budget():
    assert predict.windows_for(7, 10 ** 9) == 7                       # asked: exactly that
    assert predict.windows_for(None, 1000) == predict.DEFAULT_WINDOWS
    per_window = predict.REQUEST_BUDGET // 5
    assert predict.windows_for(None, per_window) == 5
    assert predict.windows_for(None, predict.REQUEST_BUDGET * 10) == predict.MIN_WINDOWS


def test_engines_balance_with_the_weights_they_get():
    # capacities 1:1:2:4 are the weights; HAProxy/nginx round robin gets weight 1 each (the
    # engines' WEIGHTED_ALGORITHMS), their random gets the weights, as the builtin's does
    balancers = """\
  - {name: hap_rr, layer: l7, engine: haproxy, algorithm: round_robin}
  - {name: hap_random, layer: l7, engine: haproxy, algorithm: random}
  - {name: ngx_wrr, layer: l7, engine: nginx, algorithm: weighted_round_robin}"""
    spec = _spec(balancers, "{type: http, mode: open, rate: 400, users: 64}", backends=4,
                 service="{dist: exponential, mean_ms: 1}")
    data = dict(spec.data)
    data["backends"] = [{"name": f"b{i + 1}", "capacity": c,
                         "service": {"dist": "exponential", "mean_ms": 1}}
                        for i, c in enumerate((1, 1, 2, 4))]
    spec = spec_mod.parse_spec(data)
    shares = {r["balancer"]: {b: s["mean"] for b, s in r["backend_share"].items()}
              for r in predict.predict(spec, windows=2)}
    assert shares["hap_rr"] == pytest.approx({"b1": .25, "b2": .25, "b3": .25, "b4": .25},
                                             abs=0.01)
    assert shares["ngx_wrr"] == pytest.approx({"b1": .125, "b2": .125, "b3": .25, "b4": .5},
                                              abs=0.01)
    assert shares["hap_random"]["b4"] > 2.5 * shares["hap_random"]["b1"]


def test_l4_counting_algorithms_release_a_connection_when_its_flow_idles_out():
    # l4 least_connections: the controller counts a connection from its first packet until
    # its counting flow is removed, idle_timeout after the connection's last packet
    from experiments.model import sim
    from lb_apps.balancing import make_balancer

    ev = sim.Events()
    balancer = make_balancer("least_connections", {"b1": 1, "b2": 1})
    route = systems.ConnRoute(ev, {}, balancer, lambda conn: None, True,
                              systems.IDLE_TIMEOUT_SEC)
    conn = sim.Conn(None, 0)
    route.connect(conn)
    assert balancer.in_flight() == {conn.backend: 1, ({"b1", "b2"} - {conn.backend}).pop(): 0}
    ev.at(1.0, route.closed, conn)
    seen = []
    ev.at(1.0 + systems.IDLE_TIMEOUT_SEC - 0.1, lambda _: seen.append(sum(
        balancer.in_flight().values())))
    ev.run()
    assert seen == [1]                # closed, but still counted until the flow idles out
    assert ev.now == 1.0 + systems.IDLE_TIMEOUT_SEC
    assert balancer.in_flight() == {"b1": 0, "b2": 0}
