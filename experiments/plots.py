"""Figures of an experiment (matplotlib, Agg backend): each function takes computed results and
an output path stem and writes ``<stem>.png`` and ``<stem>.svg``.

Figures are sized for a printed column (6.4 x 3.6 in), with 10-11 pt text, a colour-blind safe
palette (Okabe-Ito) and hatching on bars so they stay readable in grey-scale print. SVGs carry no
creation date, so rebuilding a report from the same raw data gives the same files.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# Okabe & Ito (2008), distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
LINESTYLES = ("-", "--", ":", "-.")
FIGSIZE = (6.4, 3.6)
DPI = 150
RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
      "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
      "svg.hashsalt": "lblab", "axes.spines.top": False, "axes.spines.right": False}


def _save(fig, stem):
    """Write ``stem``.png and ``stem``.svg and close the figure; return the PNG path."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=DPI, metadata={"Software": None})
    fig.savefig(stem + ".svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return stem + ".png"


def _color(i):
    return PALETTE[i % len(PALETTE)]


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


def bars_with_ci(labels, aggs, ylabel, title, stem, ylim=None):
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
        ylim (tuple|None): fixed y range, e.g. (0, 1.05) for indices.
    Returns:
        str: the PNG path.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        points_drawn = False
        for i, agg in enumerate(aggs):
            mean = agg.get("mean")
            if mean is None:
                continue
            yerr = _yerr(agg)
            ax.bar(i, mean, color=_color(i), hatch=HATCHES[i % len(HATCHES)],
                   edgecolor="black", linewidth=0.6, yerr=yerr, capsize=4,
                   error_kw={"elinewidth": 1, "ecolor": "black"})
            if yerr is None and _points(agg):
                pts = _points(agg)
                ax.plot([i] * len(pts), pts, "o", color="black", markersize=4,
                        markerfacecolor="white",
                        label=None if points_drawn else "run values (n < 3: no interval)")
                points_drawn = True
        _labels_fit(ax, [f"{label}\nn={agg.get('n', 0)}" for label, agg in zip(labels, aggs)])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if ylim:
            ax.set_ylim(*ylim)
        else:
            ax.set_ylim(bottom=0)
        if points_drawn:
            ax.legend(loc="best")
        ax.grid(axis="x", visible=False)
        return _save(fig, stem)


def latency_cdfs(cdfs, stem):
    """Latency CDFs, one line per configuration, log-scaled latency axis.

    Args:
        cdfs (dict): label -> (latencies_ms, fractions).
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        drawn = False
        for i, (label, (xs, fs)) in enumerate(cdfs.items()):
            if not xs:
                continue
            drawn = True
            ax.step(xs, fs, where="post", label=label, color=_color(i),
                    linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)], linewidth=1.4)
        if drawn and min(x for xs, _ in cdfs.values() if xs for x in xs) > 0:
            ax.set_xscale("log")
        ax.set_xlabel("latency (ms, from scheduled send time)")
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.01)
        ax.set_title("Latency CDF (ok requests, repetition 1)")
        if drawn:
            ax.legend(loc="lower right")
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


def timeseries(ts, faults, title, stem):
    """Throughput over time per backend (ok responses/s), errors/s, and fault markers.

    Args:
        ts (dict): from ``experiments.metrics.timeseries``.
        faults (list[dict]): ``{"at_s", "action", "target"}`` relative to the window start.
        title (str): figure title.
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        # steps-post needs the end of the last bin to draw it
        xs = list(ts["t"]) + [ts["t"][-1] + ts.get("bin_s", 1.0)]
        for i, (name, values) in enumerate(ts["backends"].items()):
            ax.plot(xs, list(values) + [values[-1]], label=name, color=_color(i),
                    linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.3,
                    drawstyle="steps-post")
        if any(ts["errors"]):
            ax.plot(xs, list(ts["errors"]) + [ts["errors"][-1]], label="errors",
                    color="black", linestyle=":",
                    linewidth=1.3, drawstyle="steps-post")
        for f in faults:
            ax.axvline(f["at_s"], color="grey", linestyle="--", linewidth=1)
            ax.annotate(f"{f['action']} {f.get('target') or ''}".strip(), (f["at_s"], 1.0),
                        xycoords=("data", "axes fraction"), rotation=90, va="top",
                        ha="right", fontsize=8)
        ax.set_xlabel("time since measurement start (s)")
        ax.set_ylabel("responses/s")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _save(fig, stem)


def sweep_lines(param, series, ylabel, title, stem):
    """A metric against the swept parameter, one line per balancer, with 95% intervals.

    Points with an interval (n >= 3 runs) get an asymmetric error bar; points without one
    (n < 3) get their runs' values as small markers instead. The legend says each line's n.

    Args:
        param (str): the swept key path (x axis label).
        series (dict): balancer -> list of (x, interval) sorted by x, each interval from
            ``experiments.metrics.interval95`` with ``values``.
        ylabel, title (str): labels.
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for i, (name, points) in enumerate(series.items()):
            points = [p for p in points if p[1].get("mean") is not None]
            if not points:
                continue
            ns = sorted({p[1].get("n", 0) for p in points})
            n_text = f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"
            xs = [p[0] for p in points]
            ys = [p[1]["mean"] for p in points]
            below, above = [], []
            for _, agg in points:
                err = _yerr(agg) or [[0.0], [0.0]]
                below.append(err[0][0])
                above.append(err[1][0])
            ax.errorbar(xs, ys, yerr=[below, above], label=f"{name} (n={n_text})",
                        color=_color(i), capsize=3, marker="os^vD<>p"[i % 8],
                        linestyle=LINESTYLES[i % len(LINESTYLES)])
            for x, agg in points:
                if _yerr(agg) is None and _points(agg):
                    pts = _points(agg)
                    ax.plot([x] * len(pts), pts, ".", color=_color(i), alpha=0.7)
        ax.set_xlabel(param)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(loc="best")
        return _save(fig, stem)


def flow_rates(labels, rates, stem):
    """Per-flow received rates (Mbit/s) per configuration, one dot per flow.

    Args:
        labels (list[str]): configurations.
        rates (list[list[float]]): the flows' rates of each configuration.
        stem (str): output path without extension.
    """
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for i, values in enumerate(rates):
            ax.plot([i] * len(values), values, "o", color=_color(i), alpha=0.8)
        _labels_fit(ax, labels)
        ax.set_ylabel("flow rate (Mbit/s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Per-flow throughput (repetition 1)")
        return _save(fig, stem)


def topology(graph, stem):
    """Draw the topology with ``topologies.draw`` (PNG and SVG)."""
    from topologies.draw import draw  # imports networkx drawing only when a report needs it
    with plt.rc_context({"svg.hashsalt": "lblab"}):
        draw(graph, stem + ".png")
        draw(graph, stem + ".svg")
    return stem + ".png"
