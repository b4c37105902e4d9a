"""Line figures (matplotlib, Agg): latency over time, latency CCDFs on a log axis, a metric
against swept values (one panel per combination of the other swept parameters), and the
overlays of ``lblab compare --plot``. The shared look, ``_save`` and the range rule are
``experiments.plots``'.
"""
import math

from matplotlib.lines import Line2D

from experiments.plots import (FIGSIZE, RC, _labels_fit, _points, _save, _yerr, fault_markers,
                               plt, set_range)
from experiments.styles import LINESTYLES, MARKERS, style_of_slot

PERCENTILE_COLOURS = ("#0072B2", "#D55E00", "#009E73")


def _nan(value):
    return float("nan") if value is None else value


def _n_text(ns):
    ns = sorted(set(ns)) or [0]
    return f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


def latency_over_time(series, faults, title, stem, keys=("p50", "p99")):
    """Latency percentiles of ok requests per bin of send time, with fault markers.

    Args:
        series (dict): from ``experiments.metrics.latency_over_time`` (bins without requests
            are gaps).
        faults (list[dict]): ``{"at_s", "label"}`` relative to the window start.
        title (str): figure title.
        stem (str): output path without extension.
        keys (tuple[str]): which percentiles of ``series`` to draw.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        xs = list(series["t"]) + [series["t"][-1] + series["bin_s"]]
        values = []
        for i, key in enumerate(keys):
            ys = [_nan(v) for v in series[key]]
            values += [v for v in series[key] if v is not None]
            ax.plot(xs, ys + [ys[-1]], drawstyle="steps-post", label=key,
                    color=PERCENTILE_COLOURS[i % len(PERCENTILE_COLOURS)],
                    linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.4)
        fault_markers(ax, faults)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) >= 20:
            ax.set_yscale("log")     # a fault's spike would flatten the rest on a linear axis
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("send time since measurement start (s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _save(fig, stem)


def latency_ccdf(curves, title, stem):
    """Latency CCDFs on a log y axis (log x when latencies span a decade or more).

    Args:
        curves (list[dict]): ``{"label", "style", "pooled": (xs, fractions), "runs": [(xs,
            fractions), …]}`` from ``experiments.metrics.latency_ccdf``; the pooled curve is
            drawn bold with its label, each run's faintly in the same colour. Optional
            ``linestyle`` and ``marker`` override the style's (``compare`` tells folders
            apart with them).
        title (str): figure title.
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        xs_all, ys_all = [], []
        for c in curves:
            style = c["style"]
            linestyle = c.get("linestyle", style["linestyle"])
            for xs, ys in c.get("runs", ()):
                if xs:
                    ax.step(xs, ys, where="pre", color=style["color"], alpha=0.3,
                            linewidth=0.8, linestyle=linestyle)
            xs, ys = c["pooled"]
            if not xs:
                continue
            xs_all += xs
            ys_all += ys
            ax.step(xs, ys, where="pre", color=style["color"], linewidth=1.7,
                    linestyle=linestyle, label=c["label"], marker=c.get("marker"),
                    markevery=0.1, markersize=4)
        ax.set_yscale("log")
        if xs_all:
            ax.set_ylim(min(ys_all) / 1.5, 1.0)
            low = min(xs_all)
            if low > 0 and max(xs_all) / low >= 10:
                ax.set_xscale("log")
            ax.legend(loc="lower left", fontsize=7)
        else:
            ax.set_ylim(1e-3, 1.0)
        ax.set_xlabel("latency (ms, from scheduled send time)")
        ax.set_ylabel("fraction of requests ≥ latency")
        ax.set_title(title)
        return _save(fig, stem)


def _grid(count):
    ncols = min(count, 3)
    nrows = math.ceil(count / ncols)
    size = FIGSIZE if count == 1 else (3.4 * ncols + 1.6, 2.9 * nrows + 0.6)
    return nrows, ncols, size


def sweep_panels(panels, xlabel, ylabel, title, stem, styles, unit=False, xticks=None):
    """A metric against a swept value: one line per balancer with its interval band, one panel
    per combination of the other swept parameters.

    Where a point has an interval (n >= 3 runs) the band is filled from ``low`` to ``high``
    (an isolated one gets an error bar); a point without one (n < 3) shows its runs' values as
    small markers. The legend gives each balancer's n.

    Args:
        panels (list[tuple]): ``(panel title or None, {balancer: [(x, interval), …]})``, each
            interval from ``experiments.metrics.interval95`` with ``values``.
        xlabel, ylabel, title (str): labels.
        stem (str): output path without extension.
        styles (dict): balancer -> style (``experiments.styles``).
        unit (bool): the metric lives in [0, 1].
        xticks (list[str]|None): labels of a categorical x (x values are then their indexes).
    """
    with plt.rc_context(RC):
        nrows, ncols, size = _grid(len(panels))
        fig, axes = plt.subplots(nrows, ncols, figsize=size, sharey=True, squeeze=False)
        tops = []
        for ax, (panel_title, series) in zip(axes.flat, panels):
            for k, (name, points) in enumerate(series.items()):
                style = styles.get(name) or style_of_slot(k)
                points = sorted((p for p in points if p[1].get("mean") is not None),
                                key=lambda p: p[0])
                if not points:
                    continue
                xs = [p[0] for p in points]
                means = [p[1]["mean"] for p in points]
                lows = [p[1].get("low") for p in points]
                highs = [p[1].get("high") for p in points]
                has = [lo is not None and hi is not None for lo, hi in zip(lows, highs)]
                n_text = _n_text([p[1].get("n", 0) for p in points])
                ax.plot(xs, means, marker=style["marker"], color=style["color"],
                        linestyle=style["linestyle"], label=f"{name} (n={n_text})",
                        clip_on=False)
                if any(has):
                    ax.fill_between(xs, [_nan(v) for v in lows], [_nan(v) for v in highs],
                                    where=has, color=style["color"], alpha=0.2, linewidth=0)
                tops += means + [h for h in highs if h is not None]
                for i, (x, agg) in enumerate(points):
                    alone = has[i] and not (i > 0 and has[i - 1]) and \
                        not (i + 1 < len(has) and has[i + 1])
                    if alone:
                        ax.errorbar([x], [agg["mean"]], yerr=_yerr(agg), color=style["color"],
                                    capsize=3, linestyle="none")
                    elif not has[i] and _points(agg):
                        pts = _points(agg)
                        tops += pts
                        ax.plot([x] * len(pts), pts, ".", color=style["color"], alpha=0.7,
                                clip_on=False)
            if panel_title:
                ax.set_title(panel_title, fontsize=9)
            if xticks is not None:
                ax.set_xticks(range(len(xticks)))
                ax.set_xticklabels(xticks)
            else:
                _x_scale(ax, [p[0] for s in series.values() for p in s])
            ax.set_xlabel(xlabel)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        for ax in axes.flat:
            set_range(ax, unit, tops)
        for row in axes:
            row[0].set_ylabel(ylabel)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            axes.flat[0].legend(handles, labels, loc="best", fontsize=7)
        fig.suptitle(title, fontsize=11)
        return _save(fig, stem)


def _x_scale(ax, xs):
    """Log x for swept values spanning 16x or more (users 4, 32, 256), ticks at the values."""
    xs = sorted({x for x in xs if x is not None})
    if len(xs) >= 3 and xs[0] > 0 and xs[-1] / xs[0] >= 16:
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        ax.minorticks_off()


def compare_points(configs, folders, aggs, styles, ylabel, title, stem, unit=False):
    """One metric per configuration, each folder side by side: ``lblab compare --plot``.

    Each point is a folder's mean in its balancer's colour and the folder's marker, with an
    error bar from ``low`` to ``high`` where n >= 3, its runs' values as small dots otherwise.

    Args:
        configs (list[tuple[str, str]]): (configuration, balancer) in row order.
        folders (list[str]): folder labels, in column order (the legend).
        aggs (list[list[dict]]): per configuration, per folder, an interval with ``values``.
        styles (dict): balancer -> style.
        ylabel, title (str): labels.
        stem (str): output path without extension.
        unit (bool): the metric lives in [0, 1].
    """
    with plt.rc_context(RC):
        # wide enough for one slot per configuration (long sweep ids), legend outside
        fig, ax = plt.subplots(figsize=(max(FIGSIZE[0], 0.7 * len(configs) + 3), FIGSIZE[1]))
        k = len(folders)
        offsets = [(j - (k - 1) / 2.0) * 0.7 / max(1, k) for j in range(k)]
        tops = []
        for i, (_, balancer) in enumerate(configs):
            style = styles.get(balancer) or style_of_slot(i)
            for j, agg in enumerate(aggs[i]):
                if agg.get("mean") is None:
                    continue
                x = i + offsets[j]
                yerr = _yerr(agg)
                ax.errorbar([x], [agg["mean"]], yerr=yerr, fmt=MARKERS[j % len(MARKERS)],
                            color=style["color"], markeredgecolor="black", capsize=3,
                            markersize=6, clip_on=False)
                tops += [agg["mean"], agg.get("high")]
                if yerr is None and _points(agg):
                    pts = _points(agg)
                    tops += pts
                    ax.plot([x] * len(pts), pts, ".", color=style["color"], alpha=0.6,
                            clip_on=False)
        _labels_fit(ax, [f"{c} (n={'/'.join(str(a.get('n', 0)) for a in row)})"
                         for (c, _), row in zip(configs, aggs)])
        ax.legend(handles=[Line2D([], [], marker=MARKERS[j % len(MARKERS)], color="grey",
                                  markeredgecolor="black", linestyle="none", label=folder)
                           for j, folder in enumerate(folders)],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        set_range(ax, unit, tops)
        ax.grid(axis="x", visible=False)
        return _save(fig, stem)
