"""Figures of an experiment (matplotlib, Agg backend): each function takes computed results and
an output path stem and writes ``<stem>.png`` and ``<stem>.svg``. This module holds the shared
look and the per-configuration figures (bars, shares, flows, throughput over time, the
topology); ``experiments.plots_lines`` the line figures (latency over time, CCDFs, sweeps,
``lblab compare --plot``).

Figures are sized for a printed column (6.4 x 3.6 in), with 10-11 pt text. Balancers are drawn
in their stable style (``experiments.styles``: an Okabe-Ito colour, a hatch past 8 balancers, a
marker and a line style) so a balancer looks the same in every figure. An interval is drawn
only from its ``low`` to its ``high`` (``experiments.metrics.interval95``, never outside the
metric's range) and only with n >= 3 runs; below that each run's value is a point. SVGs carry no
creation date, so rebuilding a report from the same raw data gives the same files.
"""
import math
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from experiments.styles import HATCHES, LINESTYLES, PALETTE, style_of_slot  # noqa: E402

FIGSIZE = (6.4, 3.6)
DPI = 150
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
      "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
      "svg.hashsalt": "lblab", "axes.spines.top": False, "axes.spines.right": False}
UNIT_RANGE = (0.0, 1.0)


def _close(fig):
    """Release a saved figure (tests replace this to inspect what was drawn)."""
    plt.close(fig)


def _save(fig, stem):
    """Write ``stem``.png and ``stem``.svg and close the figure; return the PNG path."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=DPI, metadata={"Software": None})
    fig.savefig(stem + ".svg", metadata={"Date": None, "Creator": None})
    _close(fig)
    return stem + ".png"


def _color(i):
    return PALETTE[i % len(PALETTE)]


def _style(styles, i):
    """The i-th style of a list, or the i-th slot's when none is given."""
    return styles[i] if styles and i < len(styles) and styles[i] else style_of_slot(i)


def _labels_fit(ax, labels):
    ax.set_xticks(range(len(labels)))
    rotate = sum(len(s) for s in labels) > 60
    ax.set_xticklabels(labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")


def _yerr(agg):
    """Asymmetric error bar ``[[below], [above]]`` of an interval, or None without one."""
    mean, low, high = agg.get("mean"), agg.get("low"), agg.get("high")
    if mean is None or low is None or high is None:
        return None
    return [[max(0.0, mean - low)], [max(0.0, high - mean)]]


def _points(agg):
    return [v for v in agg.get("values") or () if v is not None]


def set_range(ax, unit, values=()):
    """Keep the y axis inside the metric's range: [0, 1] for a unit metric, from 0 otherwise."""
    if unit:
        ax.set_ylim(*UNIT_RANGE)
    else:
        top = max([v for v in values if v is not None and math.isfinite(v)] or [1.0])
        ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)


def bars_with_ci(labels, aggs, ylabel, title, stem, styles=None, unit=False):
    """Bar chart of one metric per configuration: the mean over runs with its 95% interval.

    A configuration with an interval (n >= 3 runs) gets an asymmetric error bar from its
    ``low`` to its ``high``; one without (n < 3) gets its runs' values as points instead. Each
    tick label says its n.

    Args:
        labels (list[str]): one per bar.
        aggs (list[dict]): per bar, an interval from ``experiments.metrics.interval95`` with
            ``values`` (``mean`` None draws nothing).
        ylabel, title (str): axis label and title.
        stem (str): output path without extension.
        styles (list[dict]|None): per bar, its balancer's style (``experiments.styles``).
        unit (bool): the metric lives in [0, 1] (the y axis is then exactly that).
    Returns:
        str: the PNG path.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        points_drawn = False
        tops = []
        for i, agg in enumerate(aggs):
            mean = agg.get("mean")
            if mean is None:
                continue
            style = _style(styles, i)
            yerr = _yerr(agg)
            ax.bar(i, mean, color=style["color"], hatch=style["hatch"],
                   edgecolor="black", linewidth=0.6, yerr=yerr, capsize=4,
                   error_kw={"elinewidth": 1, "ecolor": "black", "clip_on": False})
            tops += [mean, agg.get("high")]
            if yerr is None and _points(agg):
                pts = _points(agg)
                tops += pts
                ax.plot([i] * len(pts), pts, "o", color="black", markersize=4,
                        markerfacecolor="white", clip_on=False,
                        label=None if points_drawn else "run values (n < 3: no interval)")
                points_drawn = True
        _labels_fit(ax, [f"{label}\nn={agg.get('n', 0)}" for label, agg in zip(labels, aggs)])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        set_range(ax, unit, tops)
        if points_drawn:
            ax.legend(loc="best")
        ax.grid(axis="x", visible=False)
        return _save(fig, stem)


def stacked_shares(labels, backends, shares, stem, expected=None):
    """Per-backend share of requests, stacked to 100% per configuration.

    Args:
        labels (list[str]): configurations.
        backends (list[str]): backend names (stack order).
        shares (list[dict]): per configuration {backend: share 0..1 or None}.
        stem (str): output path without extension.
        expected (dict|None): {backend: weight share} drawn as a reference bar.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        rows = list(labels)
        data = list(shares)
        if expected:
            rows = ["(weights)"] + rows
            data = [expected] + data
        bottoms = [0.0] * len(rows)
        for j, name in enumerate(backends):
            heights = [100.0 * ((d or {}).get(name) or 0.0) for d in data]
            ax.bar(range(len(rows)), heights, bottom=bottoms, label=name, color=_color(j),
                   hatch=HATCHES[j % len(HATCHES)], edgecolor="black", linewidth=0.5)
            bottoms = [b + h for b, h in zip(bottoms, heights)]
        _labels_fit(ax, rows)
        ax.set_ylabel("share of ok requests (%)")
        ax.set_ylim(0, 100)
        ax.set_title("Per-backend share")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="x", visible=False)
        return _save(fig, stem)


def fault_markers(ax, faults):
    """Vertical dashed lines labelled with each fault's action (and target).

    Args:
        faults (list[dict]): ``{"at_s", "label"}`` relative to the window start.
    """
    for f in faults:
        ax.axvline(f["at_s"], color="grey", linestyle="--", linewidth=1)
        ax.annotate(f["label"], (f["at_s"], 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=8)


def timeseries(ts, faults, title, stem):
    """Throughput over time: the total and each backend's ok responses/s, errors/s, faults.

    Args:
        ts (dict): from ``experiments.metrics.timeseries``.
        faults (list[dict]): ``{"at_s", "label"}`` relative to the window start.
        title (str): figure title.
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        # steps-post needs the end of the last bin to draw it
        xs = list(ts["t"]) + [ts["t"][-1] + ts.get("bin_s", 1.0)]
        total = [sum(v) for v in zip(*ts["backends"].values())] or [0.0] * len(ts["t"])
        ax.plot(xs, total + [total[-1]], label="total", color="black", linewidth=1.8,
                drawstyle="steps-post")
        for i, (name, values) in enumerate(ts["backends"].items()):
            ax.plot(xs, list(values) + [values[-1]], label=name, color=_color(i),
                    linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.2,
                    drawstyle="steps-post")
        if any(ts["errors"]):
            ax.plot(xs, list(ts["errors"]) + [ts["errors"][-1]], label="errors",
                    color="#D55E00", linestyle=":", linewidth=1.5, drawstyle="steps-post")
        fault_markers(ax, faults)
        ax.set_xlabel("time since measurement start (s)")
        ax.set_ylabel("ok responses/s")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _save(fig, stem)


def flow_rates(labels, rates, stem, styles=None):
    """Per-flow received rates (Mbit/s) per configuration, one dot per flow.

    Args:
        labels (list[str]): configurations.
        rates (list[list[float]]): the flows' rates of each configuration.
        stem (str): output path without extension.
        styles (list[dict]|None): per configuration, its balancer's style.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for i, values in enumerate(rates):
            style = _style(styles, i)
            ax.plot([i] * len(values), values, style["marker"], color=style["color"],
                    alpha=0.8)
        _labels_fit(ax, labels)
        ax.set_ylabel("flow rate (Mbit/s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Per-flow throughput (one repetition)")
        return _save(fig, stem)


def topology(graph, stem):
    """Draw the topology with ``topologies.draw`` (PNG and SVG, the SVG without its date)."""
    from topologies.draw import draw  # imports networkx drawing only when a report needs it
    with plt.rc_context({"svg.hashsalt": "lblab"}):
        draw(graph, stem + ".png")
        draw(graph, stem + ".svg")
    with open(stem + ".svg", encoding="utf-8") as fp:
        text = fp.read()
    with open(stem + ".svg", "w", encoding="utf-8") as fp:
        fp.write(re.sub(r"\s*<dc:date>[^<]*</dc:date>", "", text, count=1))
    return stem + ".png"
