"""Figures of the model twin: emulated against modelled values per configuration, and the
classics' published curves beside both (headless matplotlib, PNG + SVG like ``plots``)."""
from matplotlib.ticker import ScalarFormatter

from experiments.plots import _save, plt
from experiments.styles import PALETTE

MODEL_COLOR = "#999999"


def model_vs_emulated(rows, ylabel, title, stem):
    """One column per configuration: the model's 2.5-97.5 % band of window values (grey box)
    with its mean (grey tick) and the flag bounds (grey whiskers); the emulated mean with its
    interval (black) and each run's value (dots, red when flagged).

    Args:
        rows (list[dict]): ``experiments.model.flags.compare`` rows of one metric.
    Returns:
        str: the PNG path.
    """
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(rows) + 2.0), 3.6))
    for i, r in enumerate(rows):
        m = r["model"]
        if m.get("low") is not None:
            ax.add_patch(plt.Rectangle((i - 0.3, m["low"]), 0.6, m["high"] - m["low"],
                                       color=MODEL_COLOR, alpha=0.35, lw=0,
                                       label="model: 2.5-97.5 % of windows" if i == 0 else None))
            ax.plot([i - 0.3, i + 0.3], [m["mean"]] * 2, color=MODEL_COLOR, lw=2,
                    label="model: mean" if i == 0 else None)
        if m.get("bounds"):
            ax.vlines(i, *m["bounds"], color=MODEL_COLOR, lw=1, linestyles=":",
                      label="flag bounds" if i == 0 else None)
        e = r["emulated"]
        if e.get("mean") is not None:
            err = None
            if e.get("low") is not None:
                err = [[e["mean"] - e["low"]], [e["high"] - e["mean"]]]
            ax.errorbar([i + 0.12], [e["mean"]], yerr=err, fmt="D", color="black", ms=5,
                        capsize=3, label="emulated: mean [interval]" if i == 0 else None)
        for name, v in zip(e.get("runs") or [], e.get("values") or []):
            flagged = name in r["flagged"]
            ax.plot([i + 0.22], [v], "o", ms=4, mfc="white" if not flagged else PALETTE[5],
                    mec="black" if not flagged else PALETTE[5])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["config"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, stem)


def supermarket(curves, closed_forms, title, stem):
    """Mean response time in mean service times against the load, per balancer: the emulated
    means (markers) and the model's band; the n -> infinity closed forms as dashed lines.

    Args:
        curves (list[dict]): ``label``, ``color``, ``points`` [(load, emulated mean or None,
            model mean, model low, model high)].
        closed_forms (list[tuple]): ``(label, [(load, value)])``.
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for c in curves:
        pts = sorted(c["points"])
        xs = [p[0] for p in pts]
        ax.fill_between(xs, [p[3] for p in pts], [p[4] for p in pts], color=c["color"],
                        alpha=0.18, lw=0)
        ax.plot(xs, [p[2] for p in pts], color=c["color"], lw=1, alpha=0.8)
        em = [(p[0], p[1]) for p in pts if p[1] is not None]
        if em:
            ax.plot([x for x, _ in em], [y for _, y in em], "o", color=c["color"],
                    label=f"{c['label']}: emulated (model band)")
    for i, (label, pts) in enumerate(closed_forms):
        ax.plot([x for x, _ in pts], [y for _, y in pts], ls="--", color="black",
                lw=1.2 if i == 0 else 0.8, alpha=0.9 if i == 0 else 0.6,
                label=f"{label} (n -> inf)")
    ax.set_xlabel("load lambda (arrival rate / total service rate)")
    ax.set_ylabel("mean response time / mean service time")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, stem)


def keys_moved(rows, title, stem):
    """Fraction of keys moved when one of N backends fails, per balancer: the model on the
    run's keys and on many keys, the emulated value, beside the published 1/N (Maglev) and
    (N-1)/N (modulo).

    Args:
        rows (list[dict]): ``label``, ``model``, ``model_many``, ``emulated`` (or None),
            ``reference``, ``keys`` (the run's), ``many`` (how many keys ``model_many`` is).
    """
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    bars = (("model", "model: the run's keys", MODEL_COLOR, ""),
            ("model_many", "model: many keys", "white", "///"),
            ("emulated", "emulated (mean of runs)", None, ""))
    for i, r in enumerate(rows):
        for j, (key, label, color, hatch) in enumerate(bars):
            value = r.get(key)
            if value is None:
                continue
            x = i + (j - 1) * 0.27
            ax.bar(x, value, 0.25, color=color or PALETTE[i % len(PALETTE)], hatch=hatch,
                   edgecolor="black", lw=0.6, label=label if i == 0 else None)
            ax.text(x, value + 0.02, f"{value:.2f}", ha="center", fontsize=7)
        ax.hlines(r["reference"], i - 0.45, i + 0.45, colors="black", linestyles="--",
                  label="published" if i == 0 else None)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["label"] for r in rows], fontsize=8)
    ax.set_ylabel("fraction of keys moved")
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, stem)
