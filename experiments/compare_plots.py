"""``lblab compare A B … --plot DIR``: the folders' results drawn side by side.

Per metric one figure (``compare-<metric>``): each configuration's mean in every folder, side
by side, with its 95% interval [low, high] where n >= 3 and the runs' values as dots below that.
Per configuration of an HTTP workload one latency CCDF overlay (``compare-ccdf-<config>``), one
curve per folder with its runs pooled, read from the folder's ``raw/`` (a folder without raw
data has no curve). A balancer keeps the colour of the first folder's ``styles.json``
(``experiments.styles``; balancers it lacks get free slots); folders differ by marker and line
style. The mapping used is written to ``DIR/styles.json``.
"""
import json
import os
import re

from experiments import metrics as M
from experiments import report
from experiments import styles as S


def configs_of(named_summaries):
    """``[(config, balancer name)]`` of every configuration seen in any summary, first-seen
    order."""
    out = []
    for _, summary in named_summaries:
        for c in summary["configs"]:
            if c["config"] not in [name for name, _ in out]:
                out.append((c["config"], (c.get("balancer") or {}).get("name", c["config"])))
    return out


def aggregate_of(summary, config, metric):
    """The aggregate of one metric of one configuration ({} when missing)."""
    c = next((c for c in summary["configs"] if c["config"] == config), None)
    return ((c or {}).get("aggregate") or {}).get(metric) or {}


def compare_styles(run_dirs, balancers):
    """The first folder's ``styles.json`` mapping, extended with the balancers it lacks."""
    existing = {}
    path = os.path.join(run_dirs[0], "styles.json") if run_dirs else None
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fp:
                existing = S.mapping_of(json.load(fp))
        except (OSError, ValueError):
            existing = {}
    return S.assign_styles(balancers, existing)


def _latencies(run_dir):
    """``{config: [per ok run, (t, latency_ms) points]}`` from a folder's raw/ ({} without)."""
    if not os.path.isdir(os.path.join(run_dir, "raw")):
        return {}
    try:
        summary, extras = report.collect(run_dir)
    except report.ReportError:
        return {}
    status = {r["meta"]["run"]: r["meta"].get("status") for r in summary["runs"]}
    return {c["config"]: [extras.get(run, {}).get("latency_points") or []
                          for run in c["runs"] if status.get(run) == "ok"]
            for c in summary["configs"] if c.get("workload") != "iperf3"}


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", name)


def plot_compare(named_summaries, run_dirs, metrics, out_dir):
    """Draw the comparison figures into ``out_dir``; return every written path (PNG, SVG)."""
    from experiments import plots_lines

    os.makedirs(out_dir, exist_ok=True)
    configs = configs_of(named_summaries)
    mapping = compare_styles(run_dirs, [b for _, b in configs])
    with open(os.path.join(out_dir, "styles.json"), "w", encoding="utf-8") as fp:
        json.dump(S.styles_document(mapping), fp, indent=1, sort_keys=True)
        fp.write("\n")
    folders = [label for label, _ in named_summaries]
    pngs = []
    for m in metrics:
        aggs = [[aggregate_of(summary, config, m) for _, summary in named_summaries]
                for config, _ in configs]
        pngs.append(plots_lines.compare_points(
            configs, folders, aggs, mapping, m,
            f"{m}: mean and 95% interval per folder (n < {M.MIN_RUNS_FOR_INTERVAL}: runs)",
            os.path.join(out_dir, f"compare-{_safe(m)}"), unit=m in M.UNIT_METRICS))
    latencies = [_latencies(d) for d in run_dirs]
    for config, balancer in configs:
        curves = []
        for j, (label, lat) in enumerate(zip(folders, latencies)):
            runs = lat.get(config)
            if not runs:
                continue
            pooled = sorted(v for points in runs for _, v in points)
            curves.append({"label": f"{label} (n={len(runs)})", "style": mapping[balancer],
                           "pooled": M.latency_ccdf(pooled), "runs": [],
                           "linestyle": S.LINESTYLES[j % len(S.LINESTYLES)],
                           "marker": S.MARKERS[j % len(S.MARKERS)]})
        if curves:
            pngs.append(plots_lines.latency_ccdf(
                curves, f"Latency CCDF: {config} (each folder's runs pooled)",
                os.path.join(out_dir, f"compare-ccdf-{_safe(config)}")))
    return [p for png in pngs for p in (png, png[:-4] + ".svg")]
