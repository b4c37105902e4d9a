"""l4 least connections from switch counters: water-filling bucket weights from in-flight counts
(pure), and the core on a fake switch: counter flows, polls, re-weighted groups with no
packet-in per connection (``in_flight: group``), and packet-in decisions whose ends come from
the counters (``in_flight: counters``)."""
import random

import pytest

from controllers import config, ofmsgs, packets, pipeline, steering
from controllers.steering import BUCKET_SCALE, in_flight, largest_share_error, water_fill
from lb_apps.balancing import make_balancer
from tests.unit.test_controller_decisions import BACKENDS, VIP, Lab, lab, make

FIN_ACK = packets.TCP_ACK | 0x01


# -- the pure part ---------------------------------------------------------------------------

def test_one_arrival_goes_to_the_least_loaded_backend_only():
    weights = water_fill({"a": 3, "b": 1, "c": 2}, {"a": 1, "b": 1, "c": 1}, arrivals=1)
    assert weights == {"a": 0, "b": BUCKET_SCALE, "c": 0}


def test_arrivals_fill_the_deficits_up_to_a_common_level():
    # 6 arrivals over in-flight 0, 2, 4: level 4 -> deficits 4, 2, 0
    weights = water_fill({"a": 0, "b": 2, "c": 4}, {"a": 1, "b": 1, "c": 1}, arrivals=6)
    assert weights == {"a": 667, "b": 333, "c": 0}


def test_weights_scale_the_level_for_weighted_least_connections():
    # level per unit of weight: 4 arrivals over counts 0, 0 with weights 1, 3 -> 1 : 3
    weights = water_fill({"a": 0, "b": 0}, {"a": 1, "b": 3}, arrivals=4)
    assert weights == {"a": 250, "b": 750}


def test_equal_loads_share_equally_and_fewer_than_one_arrival_counts_as_one():
    assert water_fill({"a": 5, "b": 5}, {"a": 1, "b": 1}, arrivals=0) == {"a": 500, "b": 500}


def test_no_live_backend_gives_no_bucket():
    assert water_fill({}, {}, arrivals=3) == {}
    assert water_fill({"a": 1}, {"a": 0}, arrivals=3) == {}


def test_in_flight_never_goes_below_zero():
    assert in_flight({"a": 3, "b": 1}, {"a": 1, "b": 2}) == {"a": 2, "b": 0}


def test_largest_share_error():
    assert largest_share_error({"a": 30, "b": 70}, {"a": 1, "b": 1}) == pytest.approx(0.2)
    assert largest_share_error({}, {"a": 1}) == 0.0


def _simulate(period_arrivals, periods, seed):
    """Connections arriving in batches, each lasting a random number of periods; return the
    largest share error of what the water-filled buckets gave each backend."""
    rng = random.Random(seed)
    names = ["a", "b", "c", "d"]
    open_until = []  # (period it closes, backend)
    got = dict.fromkeys(names, 0)
    arrivals = 1
    for t in range(periods):
        open_until = [(end, b) for end, b in open_until if end > t]
        counts = dict.fromkeys(names, 0)
        for _end, b in open_until:
            counts[b] += 1
        weights = water_fill(counts, dict.fromkeys(names, 1), arrivals)
        arrivals = period_arrivals
        cum = [w for w in weights.values()]
        for _ in range(period_arrivals):
            b = rng.choices(names, weights=cum)[0]
            got[b] += 1
            open_until.append((t + rng.randint(1, 5), b))
    return largest_share_error(got, dict.fromkeys(names, 1))


def test_water_filling_keeps_shares_close_over_1000_connections():
    # 1,000 connections, 10 per re-weighting: the shares stay near 1/4 each
    assert _simulate(10, 100, seed=3) < 0.05


# -- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_flight", ["group", "counters"])
@pytest.mark.parametrize("svc, expected", [
    ({"mode": "l4", "algorithm": "round_robin"}, "algorithm round_robin"),
    ({"mode": "l3", "algorithm": "least_connections"}, "got mode l3"),
    ({"mode": "l4", "algorithm": "least_connections", "protocol": "udp"}, "protocol udp"),
    ({"mode": "l4", "algorithm": "least_connections", "in_flight": "switches"},
     "expected one of flows, counters, group"),
])
def test_in_flight_from_the_switch_needs_l4_tcp_least_connections(svc, expected, in_flight):
    with pytest.raises(config.ConfigError) as err:
        make(**{"in_flight": in_flight, **svc})
    assert "services.web.in_flight" in str(err.value) and expected in str(err.value)


# -- the core on a fake switch -----------------------------------------------------------------

def steered(weights=(1, 1, 1, 1), algorithm="least_connections"):
    return lab("l4", algorithm, weights=weights, in_flight="group")


def poll(lab_, now):
    """Run the core's counter poll against the fake switch; apply what it returns."""
    requests = [m for m in lab_.core.tick(now) if isinstance(m, pipeline.StatsRequest)]
    msgs = []
    for req in requests:
        sw = lab_.net.switches[req.switch]
        msgs += lab_.core.flow_stats(req.switch, sw.flow_stats(req.cookie, req.cookie_mask))
    lab_.net.apply(msgs)
    return requests, msgs


def bucket_weights(lab_):
    (buckets,) = lab_.net.switches["s1"].groups.values()
    by_ip = {lab_.nodes[b]["ip"]: b for b in BACKENDS}
    return {by_ip[actions[0][1]["nat_dst"]]: w for w, actions in buckets}


def test_new_connections_take_the_group_with_no_packet_in():
    lab_ = steered()
    assert lab_.core.services_view()["web"]["data_path"] == "conntrack+reweighted-group"
    served = {lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))[0][0] for i in range(40)}
    assert served <= set(BACKENDS) and len(served) > 1
    assert lab_.packet_outs == [] and lab_.core.services[0].packet_ins == 0


def test_polls_come_every_reweight_interval():
    lab_ = steered()
    first, _ = poll(lab_, 10.0)
    assert {(r.switch, pipeline.cookie_parts(r.cookie)[0]) for r in first} == {
        ("s1", pipeline.COOKIE_OPENED), ("s1", pipeline.COOKIE_CLOSED)}
    assert poll(lab_, 10.05)[0] == []          # default reweight_interval 0.1 s
    assert len(poll(lab_, 10.1)[0]) == 2


def test_busy_backends_get_no_new_connections_after_a_poll():
    lab_ = steered()
    for i in range(7):  # 7 connections opened, none closed: the counts cannot all be equal
        lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))
    in_flight_before = lab_.core.services_view()["web"]["backends"]
    poll(lab_, 1.0)
    counts = {b: v["in_flight"] for b, v in lab_.core.services_view()["web"]["backends"].items()}
    assert sum(counts.values()) == 7 and in_flight_before["h6"]["in_flight"] == 0
    weights = bucket_weights(lab_)
    least = min(counts.values())
    # the first poll knows no interval's arrivals yet (1 is assumed): the least loaded
    # backends share the buckets, the others have none
    assert set(weights) == {b for b in BACKENDS if counts[b] == least} != set(BACKENDS)
    assert len(set(weights.values())) == 1
    # 8 more connections all go to those backends until the next poll
    for i in range(7, 15):
        assert lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))[0][0] in weights
    poll(lab_, 1.2)  # arrivals of the interval: 8, handed out to fill the deficits
    counts = {b: v["in_flight"] for b, v in lab_.core.services_view()["web"]["backends"].items()}
    assert sum(counts.values()) == 15
    assert lab_.core.services[0].steering.arrivals == 8


def test_closing_connections_frees_their_backend():
    lab_ = steered()
    conns = {}
    for i in range(6):
        backend = lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))[0][0]
        conns.setdefault(backend, []).append(40000 + i)
    poll(lab_, 1.0)
    busiest = max(conns, key=lambda b: len(conns[b]))
    for port in conns[busiest]:  # the client closes every connection of the busiest backend
        lab_.send("h1", lab_.tcp("h1", VIP, port, flags=FIN_ACK))
    poll(lab_, 2.0)
    view = lab_.core.services_view()["web"]["backends"]
    assert view[busiest]["in_flight"] == 0
    assert busiest in bucket_weights(lab_)


def test_a_drained_backend_leaves_the_buckets_at_once():
    lab_ = steered()
    lab_.net.apply(lab_.core.set_weight("web", "h7", 0))
    assert "h7" not in bucket_weights(lab_)
    lab_.net.apply(lab_.core.set_algorithm("web", "weighted_least_connections"))
    with pytest.raises(Exception, match="algorithm"):
        lab_.core.set_algorithm("web", "round_robin")


def test_counter_flows_encode_tcp_flags_and_stats_requests_encode():
    core, _net, _cfg = make("l4", "least_connections", in_flight="group")
    flows = [m for m in core.switch_up("s1") if isinstance(m, pipeline.Flow)
             and pipeline.cookie_parts(m.cookie)[0] == pipeline.COOKIE_OPENED]
    assert len(flows) == 4
    msg = ofmsgs.encode(flows[0])
    assert msg.match["tcp_flags"] == (packets.TCP_SYN, packets.TCP_SYN | packets.TCP_ACK)
    req = ofmsgs.encode(pipeline.StatsRequest("s1", pipeline.cookie(pipeline.COOKIE_CLOSED),
                                              pipeline.COOKIE_CLASS_MASK))
    assert req.cookie >> 56 == pipeline.COOKIE_CLOSED


def test_exact_path_stays_the_default():
    lab_ = lab("l4", "least_connections")
    assert lab_.core.services_view()["web"]["data_path"] == "packet-in+conntrack+counting-flow"
    assert isinstance(lab_, Lab) and make_balancer  # same harness as the decisions tests


# -- in_flight: counters ---------------------------------------------------------------------

def test_counters_path_decides_per_packet_in_without_a_flow_and_ends_from_fins():
    lab_ = lab("l4", "least_connections", in_flight="counters")
    assert lab_.core.services_view()["web"]["data_path"] == "packet-in+conntrack+counters"
    flows_before = len(lab_.net.switches["s1"].flows)
    served = [lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))[0][0] for i in range(4)]
    assert sorted(served) == sorted(BACKENDS)      # exact least connections: one each
    assert len(lab_.packet_outs) == 4 and len(lab_.net.switches["s1"].flows) == flows_before
    # the client closes the connection to the first backend (its FIN sent twice: a
    # retransmission); until a poll it still counts
    lab_.send("h1", lab_.tcp("h1", VIP, 40000, flags=FIN_ACK))
    lab_.send("h1", lab_.tcp("h1", VIP, 40000, flags=FIN_ACK))
    assert lab_.core.services_view()["web"]["backends"][served[0]]["in_flight"] == 1
    _requests, msgs = poll(lab_, 1.0)
    assert msgs == []                               # no group to re-weight
    counts = {b: v["in_flight"] for b, v in lab_.core.services_view()["web"]["backends"].items()}
    assert counts == {b: 0 if b == served[0] else 1 for b in BACKENDS}  # never below 0
    assert lab_.send("h1", lab_.tcp("h1", VIP, 40010))[0][0] == served[0]


def test_the_tick_runs_at_least_as_often_as_the_counter_polls_are_due():
    # polls are sent by the tick: a 0.02 s reweight_interval under a 0.05 s tick would poll
    # every 0.05 s at best
    assert steering.tick_period(0.05, 0.02) == 0.02
    assert steering.tick_period(0.05, 0.1) == 0.05
    assert steering.tick_period(0.05, 0.05) == 0.05
