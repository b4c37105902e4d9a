"""Which figures a report gets (experiments/figures.py), their captions, the series they draw
(metrics.latency_over_time, latency_ccdf) and the report page's contents, from small synthetic
summaries."""
import os
import re

import pytest

from experiments import figures, html_report
from experiments import metrics as M


def _config(name, balancer, sweep, values, reps=3):
    """A configuration whose runs have the given goodput values (other metrics follow)."""
    runs = [{"goodput_rps": v, "latency_p99_ms": 1000.0 / v, "jain_backends": min(1.0, v / 200),
             "error_rate": 0.0} for v in values]
    return {"config": name, "balancer": {"name": balancer, "layer": "l7", "engine": "builtin",
                                         "algorithm": "round_robin"},
            "sweep": sweep, "workload": "http", "backends": [{"name": "b1", "weight": 1},
                                                             {"name": "b2", "weight": 1}],
            "aggregate": M.aggregate(runs), "n": len(values), "reps": reps,
            "runs": [f"{name}-r{i + 1}" for i in range(len(values))]}


def _sweep(users, size):
    return [{"param": "workload.users", "value": users}, {"param": "backends.size",
                                                          "value": size}]


def test_sweep_plan_takes_the_first_numeric_parameter_and_one_panel_per_other():
    configs = [_config(f"{b}-{u}-{s}", b, _sweep(u, s), [u * 1.0, u * 1.1, u * 0.9])
               for b in ("rr", "lc") for u in (4, 16) for s in ("small", "large")]
    x, panels, ticks = figures.sweep_plan(configs, "goodput_rps")
    assert x == "workload.users" and ticks is None
    assert [title for title, _ in panels] == ["backends.size = small", "backends.size = large"]
    series = dict(panels)["backends.size = large"]
    assert list(series) == ["rr", "lc"]
    assert [(px, agg["n"]) for px, agg in series["lc"]] == [(4, 3), (16, 3)]
    assert series["lc"][1][1]["mean"] == pytest.approx(16.0)
    # the text parameter as x: categories, one panel per users value
    x, panels, ticks = figures.sweep_plan(configs, "goodput_rps", x_param="backends.size")
    assert x == "backends.size" and ticks == ["small", "large"]
    assert [t for t, _ in panels] == ["workload.users = 4", "workload.users = 16"]


def test_sweep_plan_reads_the_v1_dict_and_no_sweep():
    configs = [_config(f"rr-{r}", "rr", {"param": "workload.rate", "value": r}, [r, r])
               for r in (50, 100)]
    x, panels, ticks = figures.sweep_plan(configs, "goodput_rps")
    assert x == "workload.rate" and ticks is None
    assert [(px, a["n"]) for px, a in panels[0][1]["rr"]] == [(50, 2), (100, 2)]
    assert panels[0][0] is None
    assert figures.sweep_plan([_config("rr", "rr", None, [1.0])], "goodput_rps") is None
    assert figures.sweep_of({"sweep": [{"param": "a", "value": True}]}) == [("a", True)]


def test_fault_marks_use_the_applied_time_and_say_skipped():
    meta = {"window": [1000.0, 1030.0], "faults": [
        {"at_s": 8.0, "action": "kill_backend", "target": "b1", "applied": 1008.25},
        {"at_s": 12.0, "action": "drain_backend", "target": "b2", "applied": None,
         "skipped": "not with haproxy"},
        {"at_s": 20.0, "action": "stop_controller"}]}
    assert figures.fault_marks(meta) == [
        {"at_s": 8.25, "label": "kill_backend b1"},
        {"at_s": 12.0, "label": "drain_backend b2 (skipped)"},
        {"at_s": 20.0, "label": "stop_controller"}]


def test_captions_say_n_the_method_and_what_is_drawn():
    aggs = [dict(M.interval95([1.0, 2.0, 3.0]), values=[1.0, 2.0, 3.0]),
            dict(M.interval95([1.0, 2.0]), values=[1.0, 2.0])]
    text = figures._interval_caption(aggs, "band")
    assert text.startswith("n=2-3 runs; mean and 95% CI over runs (log-t): each line is the "
                           "mean, its shaded band the interval [low, high]")
    assert text.endswith("with n < 3 no interval: the mean and each run's value as a point")
    assert figures._interval_caption(aggs[1:]) == (
        "n=2 runs; with n < 3 no interval: the mean and each run's value as a point")


def test_latency_over_time_pools_runs_on_their_own_window_start():
    run1 = [(0.2, 10.0), (0.7, 30.0), (1.5, 50.0), (2.9, 70.0)]
    run2 = [(0.1, 20.0), (1.1, 40.0), (3.4, 99.0)]        # past the end: last bin
    series = M.latency_over_time([run1, run2], 3.0, 1.0)
    assert series["t"] == [0.0, 1.0, 2.0] and series["n"] == [3, 2, 2]
    assert series["p50"] == [20.0, 40.0, 70.0]
    assert series["p99"] == [30.0, 50.0, 99.0]
    empty = M.latency_over_time([[(0.5, 1.0)]], 2.0, 0.5)
    assert empty["p50"] == [None, 1.0, None, None]
    assert M.bin_width(60) == 1.0 and M.bin_width(5) == 0.2 and M.bin_width(1) == 0.1


def test_ccdf_runs_from_one_down_to_one_over_n_and_falls():
    values = sorted(float(i) for i in range(1, 10001))
    xs, fractions = M.latency_ccdf(values, points=100)
    assert fractions[0] == 1.0 and xs[0] == 1.0
    assert fractions[-1] == pytest.approx(1 / 10000) and xs[-1] == 10000.0
    assert all(a > b for a, b in zip(fractions, fractions[1:]))
    assert all(a < b for a, b in zip(xs, xs[1:]))
    assert len(xs) <= 200
    # the tail is kept: a point in each decade down to 1/n
    for decade in (1e-1, 1e-2, 1e-3):
        assert any(decade / 2 < f <= decade * 2 for f in fractions)
    assert M.latency_ccdf([]) == ([], [])


def _summary_and_extras(reps=3):
    configs, runs, extras = [], [], {}
    for b in ("rr", "lc"):
        for users in (4, 16):
            c = _config(f"{b}-{users}", b, [{"param": "workload.users", "value": users}],
                        [users * 10.0 + k for k in range(reps)], reps)
            configs.append(c)
            for k, run in enumerate(c["runs"]):
                t0 = 1000.0 + 100 * k
                runs.append({"meta": {"run": run, "status": "ok", "window": [t0, t0 + 4.0],
                                      "faults": [{"at_s": 2.0, "action": "kill_backend",
                                                  "target": "b1", "applied": t0 + 2.1}]},
                             "metrics": {}})
                points = [(i / 10, 5.0 + i % 7 + k) for i in range(40)]
                extras[run] = {
                    "window_s": 4.0, "latency_points": points,
                    "timeseries": {"t": [0.0, 1.0, 2.0, 3.0], "bin_s": 1.0,
                                   "backends": {"b1": [5.0, 5.0, 0.0, 5.0],
                                                "b2": [5.0, 5.0, 9.0, 5.0]},
                                   "errors": [0.0, 0.0, 1.0, 0.0]}}
    return {"v": 1, "runs": runs, "configs": configs}, extras


def test_report_figures_files_captions_and_contents(tmp_path):
    run_dir = str(tmp_path)
    summary, extras = _summary_and_extras()
    figs = figures.make_plots(run_dir, summary, extras, {})
    for f in figs:
        assert os.path.exists(f["path"]) and os.path.exists(f["path"][:-4] + ".svg")
        assert re.search(r"n=\d", f["caption"]), f["caption"]
    stems = {os.path.basename(f["path"])[:-4] for f in figs}
    assert {"throughput", "latency_p99", "fairness", "backend_share",
            "latency_ccdf-workload.users=4", "latency_ccdf-workload.users=16", "latency_time-rr-4", "timeseries-lc-16",
            "sweep-goodput_rps", "sweep-latency_p99_ms", "sweep-jain_backends-vs-users"} <= stems
    assert len({f["id"] for f in figs}) == len(figs)
    assert [f["section"] for f in figs] == sorted(
        (f["section"] for f in figs), key=figures.SECTIONS.index)
    pooled = next(f for f in figs if f["id"] == "fig-latency_time-rr-4")
    assert "all n=3 runs pooled" in pooled["caption"]
    assert os.path.exists(os.path.join(run_dir, "styles.json"))

    manifest = {"spec": {"name": "synthetic", "question": "Which is fairer?"}}
    path = html_report.render_html(run_dir, summary, figs, ["r1: a warning"], manifest)
    html = open(path, encoding="utf-8").read()
    anchors = re.findall(r'href="#([^"]+)"', html)
    ids = set(re.findall(r'id="([^"]+)"', html))
    for anchor in ("results", "warnings", "figures", "spec", "how-computed", "manifest"):
        assert anchor in anchors
    assert set(anchors) <= ids                       # every contents link lands
    for f in figs:
        assert f"#{f['id']}" in html
    assert html.count("<figcaption>") == len(figs)
    assert "Figure 1." in html and f"Figure {len(figs)}." in html
    for method, *_ in M.INTERVAL_METHODS:            # the method table
        assert f"<code>{method}</code>" in html


def test_over_time_figures_skip_a_failed_first_repetition(tmp_path):
    summary, extras = _summary_and_extras()
    failed = summary["runs"][0]["meta"]
    failed["status"] = "failed"
    failed["rep"] = 1
    del extras[failed["run"]]
    for k, run in enumerate(summary["runs"][1:3]):
        run["meta"]["rep"] = k + 2
    figs = {f["id"]: f for f in figures.make_plots(str(tmp_path), summary, extras, {})}
    assert "rr-4, repetition 2, the first that completed (n=1 run)" in \
        figs["fig-timeseries-rr-4"]["caption"]
    assert "all n=2 runs pooled" in figs["fig-latency_time-rr-4"]["caption"]


def test_iperf_reports_get_flow_figures_and_no_latency(tmp_path):
    configs, runs, extras = [], [], {}
    for b in ("l3", "proactive"):
        values = [{"total_mbps": 19.0 + k, "jain_flows": 0.9 - k / 10, "flows": 4}
                  for k in range(3)]
        c = {"config": b, "balancer": {"name": b, "layer": "l4", "mode": b},
             "sweep": None, "workload": "iperf3", "backends": [{"name": "b1", "weight": 1}],
             "aggregate": M.aggregate(values), "n": 3, "reps": 3,
             "runs": [f"{b}-r{k + 1}" for k in range(3)]}
        configs.append(c)
        for k, run in enumerate(c["runs"]):
            runs.append({"meta": {"run": run, "rep": k + 1, "status": "ok"}, "metrics": {}})
            extras[run] = {"flow_mbps": [5.0 + k, 4.0, 6.0, 4.5]}
    figs = figures.make_plots(str(tmp_path), {"runs": runs, "configs": configs}, extras, {})
    stems = [os.path.basename(f["path"])[:-4] for f in figs]
    assert stems == ["throughput", "fairness", "flows", "backend_share"]
    assert "n=3 runs; mean and 95% CI over runs (logit-t)" in figs[1]["caption"]


def test_figures_are_the_same_bytes_when_drawn_again(tmp_path):
    summary, extras = _summary_and_extras()
    manifest = {"spec": {"topology": {"name": "lb_lab", "params": {"clients": 2,
                                                                   "backends": 2}}}}
    files = []
    for name in ("a", "b"):
        run_dir = str(tmp_path / name)
        figs = figures.make_plots(run_dir, summary, extras, manifest)
        assert figs[0]["id"] == "fig-topology"
        plots_dir = os.path.join(run_dir, "plots")
        files.append({f: open(os.path.join(plots_dir, f), "rb").read()
                      for f in sorted(os.listdir(plots_dir))})
    assert files[0].keys() == files[1].keys() and "topology.svg" in files[0]
    for f in files[0]:
        assert files[0][f] == files[1][f], f
