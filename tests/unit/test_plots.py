"""The drawings (experiments/plots.py, plots_lines.py) from small synthetic results: files
written, axes inside each metric's range, log axes where promised, styles as given, and no
interval drawn outside its metric's range."""
import os

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection

from experiments import metrics as M
from experiments import plots, plots_lines
from experiments import styles as S


@pytest.fixture()
def drawn(monkeypatch):
    """The figures the plot functions saved, kept open for inspection."""
    kept = []
    monkeypatch.setattr(plots, "_close", kept.append)
    yield kept
    for fig in kept:
        plots.plt.close(fig)


def _files(png):
    stem = png[:-4]
    return os.path.getsize(stem + ".png") > 0 and os.path.getsize(stem + ".svg") > 0


def _interval_ys(ax):
    """Every y the intervals of an axes reach: error bar segments and filled bands."""
    ys = []
    for c in ax.collections:
        if isinstance(c, LineCollection):
            for seg in c.get_segments():
                ys += list(np.asarray(seg)[:, 1])
        elif isinstance(c, PolyCollection):
            for path in c.get_paths():
                ys += list(path.vertices[:, 1])
    return [y for y in ys if np.isfinite(y)]


def _unit_aggs():
    """Jain-like values in (0, 1], one set near the top bound, one with 2 runs only."""
    return [dict(M.interval95(v, unit=True), values=v) for v in
            ([0.99, 0.999, 0.97], [0.5, 0.9, 0.2, 0.95], [1.0, 1.0, 0.6], [0.8, 0.7])]


def test_bars_stay_inside_the_unit_range_with_styles(tmp_path, drawn):
    aggs = _unit_aggs()
    styles = [S.style_of_slot(k) for k in (0, 1, 0, 9)]
    png = plots.bars_with_ci(["a", "b", "a2", "c"], aggs, "Jain", "Fairness",
                             str(tmp_path / "fairness"), styles=styles, unit=True)
    assert _files(png)
    (fig,) = drawn
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    ys = _interval_ys(ax)
    assert ys and min(ys) >= 0.0 and max(ys) <= 1.0
    bars = ax.patches
    assert [b.get_hatch() or "" for b in bars] == [s["hatch"] for s in styles]
    assert bars[0].get_facecolor() == bars[2].get_facecolor() != bars[1].get_facecolor()
    # n in every tick label; the 2-run bar gets its runs as points
    assert [t.get_text().split("\n")[1] for t in ax.get_xticklabels()] == \
        ["n=3", "n=4", "n=3", "n=2"]
    assert any(line.get_label().startswith("run values") for line in ax.get_lines())


def test_bars_of_a_rate_start_at_zero_and_hold_the_highest_run(tmp_path, drawn):
    aggs = [dict(M.interval95(v), values=v) for v in ([10.0, 200.0, 30.0], [5.0, 500.0])]
    plots.bars_with_ci(["a", "b"], aggs, "req/s", "t", str(tmp_path / "t"))
    bottom, top = drawn[0].axes[0].get_ylim()
    assert bottom == 0.0 and top >= 500.0
    assert aggs[0]["high"] <= top


def test_ccdf_is_on_a_log_axis_inside_its_range(tmp_path, drawn):
    pooled = sorted(float(x) for x in np.random.default_rng(1).lognormal(1.0, 1.2, 2000))
    runs = [sorted(pooled[::2]), sorted(pooled[1::2])]
    style = S.style_of_slot(0)
    png = plots_lines.latency_ccdf(
        [{"label": "rr (n=2)", "style": style, "pooled": M.latency_ccdf(pooled),
          "runs": [M.latency_ccdf(r) for r in runs]}], "CCDF", str(tmp_path / "ccdf"))
    assert _files(png)
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    low, high = ax.get_ylim()
    assert 0 < low <= 1.0 / len(pooled) and high == 1.0
    lines = ax.get_lines()
    assert len(lines) == 3 and lines[-1].get_label() == "rr (n=2)"
    assert [line.get_alpha() for line in lines[:2]] == [0.3, 0.3]
    assert all(line.get_color() == style["color"] for line in lines)


def test_ccdf_keeps_a_linear_latency_axis_for_a_narrow_range(tmp_path, drawn):
    values = [10.0 + i / 100 for i in range(100)]
    plots_lines.latency_ccdf([{"label": "x", "style": S.style_of_slot(1),
                               "pooled": M.latency_ccdf(values)}], "CCDF", str(tmp_path / "c"))
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"


def test_sweep_bands_never_leave_the_unit_range(tmp_path, drawn):
    aggs = _unit_aggs()
    panels = [("size = small", {"rr": [(4, aggs[0]), (16, aggs[1]), (64, aggs[2])],
                                "p2c": [(4, aggs[3]), (16, aggs[3])]}),
              ("size = large", {"rr": [(4, aggs[1]), (16, aggs[0])]})]
    mapping = S.assign_styles(["rr", "p2c"])
    png = plots_lines.sweep_panels(panels, "workload.users", "Jain", "Jain vs users",
                                   str(tmp_path / "sweep"), mapping, unit=True)
    assert _files(png)
    axes = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["size = small",
                                                                   "size = large"]
    for ax in axes:
        assert ax.get_ylim() == (0.0, 1.0)
        ys = _interval_ys(ax)
        assert ys and min(ys) >= 0.0 and max(ys) <= 1.0
    assert axes[0].get_xscale() == "log"          # 4..64 spans 16x
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["rr (n=3-4)", "p2c (n=2)"]
    rr_line = next(line for line in axes[0].get_lines() if line.get_label() == "rr (n=3-4)")
    assert rr_line.get_color() == mapping["rr"]["color"]


def test_latency_over_time_marks_faults_and_goes_log_for_a_spike(tmp_path, drawn):
    series = M.latency_over_time([[(0.1, 5.0), (1.2, 6.0), (2.5, 900.0), (3.9, 5.5)]],
                                 4.0, 1.0)
    png = plots_lines.latency_over_time(series, [{"at_s": 2.0, "label": "kill_backend b1"}],
                                        "t", str(tmp_path / "lt"))
    assert _files(png)
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log"
    assert "kill_backend b1" in [t.get_text() for t in ax.texts]
    assert [line.get_label() for line in ax.get_lines()][:2] == ["p50", "p99"]


def test_throughput_over_time_draws_the_total(tmp_path, drawn):
    ts = {"t": [0.0, 1.0, 2.0], "bin_s": 1.0, "backends": {"b1": [3.0, 4.0, 0.0],
                                                           "b2": [2.0, 0.0, 1.0]},
          "errors": [0.0, 1.0, 0.0]}
    plots.timeseries(ts, [], "t", str(tmp_path / "ts"))
    total = next(line for line in drawn[0].axes[0].get_lines() if line.get_label() == "total")
    assert list(total.get_ydata()) == [5.0, 4.0, 1.0, 1.0]


def test_compare_points_side_by_side_inside_the_range(tmp_path, drawn):
    aggs = _unit_aggs()
    mapping = S.assign_styles(["rr", "lc"])
    png = plots_lines.compare_points([("c1", "rr"), ("c2", "lc")], ["A", "B"],
                                     [[aggs[0], aggs[1]], [aggs[2], aggs[3]]], mapping,
                                     "Jain", "t", str(tmp_path / "cmp"), unit=True)
    assert _files(png)
    ax = drawn[0].axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    ys = _interval_ys(ax)
    assert ys and min(ys) >= 0.0 and max(ys) <= 1.0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c1 (n=3/4)", "c2 (n=3/2)"]
