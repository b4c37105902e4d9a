"""bench/live_cost.py's pure part: the rounds' order and the paired medians (fake batches)."""
import importlib.util
import math
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location(
    "bench_live_cost", os.path.join(HERE, "..", "..", "bench", "live_cost.py"))
live_cost = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(live_cost)


def test_each_round_has_one_off_and_one_live_and_the_first_alternates():
    order = live_cost.round_order(4)
    assert order == [(0, "off"), (0, "live"), (1, "live"), (1, "off"),
                     (2, "off"), (2, "live"), (3, "live"), (3, "off")]
    firsts = [order[2 * i][1] for i in range(4)]
    assert firsts.count("off") == firsts.count("live")


def batch(rnd, mode, **throughput):
    return {"round": rnd, "mode": mode, "throughput": throughput}


def test_ratios_are_paired_within_a_round_and_the_median_resists_one_bad_batch():
    # the machine drifts from round to round (1000, 800, 1200 off); live is 0.98 of its own
    # round's off except in round 1, where other work halved one live batch
    batches = [batch(0, "off", a=1000.0), batch(0, "live", a=980.0),
               batch(1, "live", a=400.0), batch(1, "off", a=800.0),
               batch(2, "off", a=1200.0), batch(2, "live", a=1176.0)]
    per, overall = live_cost.summarize(batches)
    assert per["a"]["ratios"] == pytest.approx([0.98, 0.5, 0.98])
    assert per["a"]["ratio"] == pytest.approx(0.98) and overall == pytest.approx(0.98)
    assert per["a"]["off"] == 1000.0 and per["a"]["live"] == 980.0
    # the old design (means over all batches, unpaired) reads a cost that is not there
    assert (400 + 980 + 1176) / 3 / ((1000 + 800 + 1200) / 3) < 0.86


def test_overall_is_the_geometric_mean_of_the_configurations_and_gaps_are_left_out():
    batches = [batch(0, "off", a=100.0, b=100.0, c=50.0), batch(0, "live", a=100.0, b=81.0),
               batch(1, "live", a=100.0, b=81.0), batch(1, "off", a=100.0, b=100.0)]
    per, overall = live_cost.summarize(batches)
    assert per["c"]["ratio"] is None and per["c"]["live"] is None
    assert overall == pytest.approx(math.sqrt(1.0 * 0.81))
    assert live_cost.summarize([]) == ({}, None)


def test_busy_cores_from_proc_stat_lines():
    # user nice system idle iowait irq softirq steal guest guest_nice
    before = live_cost.busy_total("cpu  100 0 50 1000 10 0 0 0 7 0")
    after = live_cost.busy_total("cpu  150 0 75 1140 20 5 0 0 9 0")
    assert before == (150, 1160) and after == (230, 1390)
    assert live_cost.busy_cores(before, after, 2) == pytest.approx(2 * 80 / 230)
    assert live_cost.busy_cores(before, before, 2) == 0.0
    busy, total = live_cost.cpu_times()                 # this machine's line parses
    assert 0 <= busy <= total
