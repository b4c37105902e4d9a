"""The figures of a report: which plots a results folder gets, in which section, with captions
that say n, what a bar, band or point means and the interval method (drawing itself is
``experiments.plots`` and ``experiments.plots_lines``; each balancer's style is fixed in the
folder's ``styles.json``, see ``experiments.styles``).
"""
import glob
import json
import math
import os
import re

from experiments import metrics as M
from experiments import styles as S

SECTIONS = ("Summary", "Latency", "Over time", "Sweeps")
LOAD_PARAMS = ("workload.rate", "workload.users")
STYLES_FILE = "styles.json"


def load_styles(run_dir, names):
    """Return the folder's balancer styles: its ``styles.json`` reused and extended with
    ``names``, written back when it was absent or gained a balancer."""
    path = os.path.join(run_dir, STYLES_FILE)
    existing = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fp:
                existing = S.mapping_of(json.load(fp))
        except (OSError, ValueError):
            existing = {}
    mapping = S.assign_styles(names, existing)
    if mapping != existing:
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(S.styles_document(mapping), fp, indent=1, sort_keys=True)
            fp.write("\n")
    return mapping


def sweep_of(config):
    """``[(param, value), …]`` of a configuration's sweep point: a list of ``{"param",
    "value"}`` (v2), one such dict (v1) or nothing."""
    sweep = config.get("sweep")
    if isinstance(sweep, dict):
        sweep = [sweep]
    return [(p["param"], p.get("value")) for p in sweep or () if isinstance(p, dict)
            and "param" in p]


def _numeric(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _shown(value):
    return f"{value:g}" if _numeric(value) else str(value)


def sweep_plan(configs, metric, x_param=None):
    """Group a metric of swept configurations for ``plots_lines.sweep_panels``.

    Args:
        configs (list[dict]): the summary's configurations.
        metric (str): an aggregate key.
        x_param (str|None): the x axis; default the first swept parameter whose values are all
            numbers (else the first, as categories).
    Returns:
        tuple|None: ``(x_param, panels, xticks)``: panels ``[(title, {balancer: [(x,
        interval)]})]``, one per combination of the other swept parameters (title None with
        one); xticks None for a numeric x, else the category labels (x is then their index).
        None when nothing is swept.
    """
    params = []
    for c in configs:
        for p, _ in sweep_of(c):
            if p not in params:
                params.append(p)
    if not params:
        return None
    values = {p: [dict(sweep_of(c)).get(p) for c in configs if p in dict(sweep_of(c))]
              for p in params}
    if x_param is None:
        x_param = next((p for p in params if all(_numeric(v) for v in values[p])), params[0])
    numeric = all(_numeric(v) for v in values[x_param])
    categories = []
    if not numeric:
        for v in values[x_param]:
            if _shown(v) not in categories:
                categories.append(_shown(v))
    others = [p for p in params if p != x_param]
    panels = {}
    for c in configs:
        point = dict(sweep_of(c))
        if x_param not in point:
            continue
        key = tuple((p, _shown(point.get(p))) for p in others)
        x = point[x_param] if numeric else categories.index(_shown(point[x_param]))
        series = panels.setdefault(key, {})
        series.setdefault(c["balancer"]["name"], []).append(
            (x, c["aggregate"].get(metric) or {}))
    out = [(", ".join(f"{p} = {v}" for p, v in key) or None, series)
           for key, series in panels.items()]
    return x_param, out, (None if numeric else categories)


def fault_marks(meta):
    """Fault markers of one run: ``{"at_s", "label"}`` at the applied time (from the window
    start), else the planned ``at_s``; a skipped fault says so."""
    t0 = (meta.get("window") or [None])[0]
    marks = []
    for f in meta.get("faults") or ():
        at = f.get("at_s")
        if f.get("applied") is not None and t0 is not None:
            at = f["applied"] - t0
        if at is None:
            continue
        label = f"{f.get('action', '?')} {f.get('target') or ''}".strip()
        marks.append({"at_s": at, "label": label + (" (skipped)" if f.get("skipped") else "")})
    return marks


def _n_text(ns):
    """``3`` or ``2-3`` for a list of run counts."""
    ns = sorted({n for n in ns if n is not None}) or [0]
    return f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


def _interval_caption(aggs, shape="bar"):
    """What a figure's bars, bands or points show: n, the interval method(s) and their
    meaning."""
    ns = [a.get("n", 0) for a in aggs]
    methods = sorted({a.get("method") for a in aggs if a.get("method") not in (None,
                                                                               M.METHOD_NONE)})
    text = f"n={_n_text(ns)} runs"
    if methods:
        what = {"bar": "each bar is the mean, its error bar the interval [low, high]",
                "band": "each line is the mean, its shaded band the interval [low, high]",
                "point": "each marker is the mean, its error bar the interval [low, high]"}
        text += (f"; mean and {M.CONFIDENCE:.0%} CI over runs ({', '.join(methods)}): "
                 f"{what[shape]}")
    if any(n < M.MIN_RUNS_FOR_INTERVAL for n in ns):
        text += (f"; with n < {M.MIN_RUNS_FOR_INTERVAL} no interval: the mean and each "
                 f"run's value as a point")
    return text


def _first_run(summary, config):
    """The meta of a configuration's first run that completed (else its first run)."""
    metas = {r["meta"]["run"]: r["meta"] for r in summary["runs"]}
    ok = _runs_ok(summary, config)
    return metas[ok[0] if ok else config["runs"][0]]


def _runs_ok(summary, config):
    status = {r["meta"]["run"]: r["meta"].get("status") for r in summary["runs"]}
    return [run for run in config["runs"] if status.get(run) == "ok"]


def make_plots(run_dir, summary, extras, manifest):
    """Draw every figure into ``run_dir/plots``.

    Returns:
        list[dict]: ``{"id", "section", "title", "caption", "path"}`` in report order
        (``section`` is "Setup" for the topology, else one of ``SECTIONS``).
    """
    from experiments import plots, plots_lines

    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    configs = summary["configs"]
    labels = [c["config"] for c in configs]
    balancers = [c["balancer"]["name"] for c in configs]
    mapping = load_styles(run_dir, balancers)
    styles = [mapping[b] for b in balancers]
    figures = []
    iperf = any(c["workload"] == "iperf3" for c in configs)

    def add(section, title, caption, path):
        if path:
            stem = os.path.splitext(os.path.basename(path))[0]
            figures.append({"id": "fig-" + re.sub(r"[^A-Za-z0-9_.-]", "_", stem),
                            "section": section, "title": title, "caption": caption,
                            "path": path})

    graph = _graph(manifest)
    if graph is not None:
        add("Setup", "Topology", "The emulated topology (Mininet on Open vSwitch).",
            plots.topology(graph, os.path.join(out_dir, "topology")))

    def bars(key, ylabel, title, stem, caption):
        aggs = [c["aggregate"].get(key) or {} for c in configs]
        path = plots.bars_with_ci(labels, aggs, ylabel, title, os.path.join(out_dir, stem),
                                  styles=styles, unit=key in M.UNIT_METRICS)
        add("Summary", caption, f"One bar per configuration: {_interval_caption(aggs)}.", path)

    if iperf:
        bars("total_mbps", "total Mbit/s", "Total throughput", "throughput",
             "Total throughput per balancer")
        bars("jain_flows", "Jain's index (flows)", "Flow fairness", "fairness",
             "Jain's index over flows")
        rates = [extras.get(_first_run(summary, c)["run"], {}).get("flow_mbps", [])
                 for c in configs]
        add("Summary", "Per-flow throughput", "Each flow's received rate in the first "
            "repetition of each configuration that completed (n=1 run per configuration).",
            plots.flow_rates(labels, rates, os.path.join(out_dir, "flows"), styles=styles))
    else:
        bars("goodput_rps", "ok requests/s", "Throughput", "throughput",
             "Throughput per balancer (ok requests/s)")
        bars("latency_p99_ms", "p99 latency (ms)", "Tail latency", "latency_p99",
             "p99 latency per balancer")
        bars("jain_backends", "Jain's index (backends)", "Fairness", "fairness",
             "Jain's index over backends (load / weight)")
    backends = [b["name"] for b in configs[0]["backends"]]
    weights = {b["name"]: b.get("weight", 1) for b in configs[0]["backends"]}
    total = sum(weights.values()) or 1
    shares = [{b: (v or {}).get("mean") for b, v in c["aggregate"].get("backend_share",
                                                                       {}).items()}
              for c in configs]
    add("Summary", "Per-backend share of requests",
        f"Per-backend share of ok requests: the mean over n={_n_text(c.get('n') for c in configs)}"
        " runs per configuration (no interval drawn; summary.json has them), beside the share "
        "the weights ask for.",
        plots.stacked_shares(labels, backends, shares, os.path.join(out_dir, "backend_share"),
                             expected={b: w / total for b, w in weights.items()}))
    if not iperf:
        _latency_figures(summary, extras, mapping, out_dir, add, plots_lines)
    for c in configs:
        first = _first_run(summary, c)
        ts = extras.get(first["run"], {}).get("timeseries")
        if not ts:
            continue
        rep = f"repetition {first.get('rep', 1)}"
        add("Over time", f"Throughput over time: {c['config']}",
            f"Ok responses per second in {ts.get('bin_s', 1.0):g} s bins of completion time, "
            f"in total and per backend, with errors per second and the faults (dashed, at "
            f"their applied time): {c['config']}, {rep}, the first that completed (n=1 run).",
            plots.timeseries(ts, fault_marks(first), f"{c['config']} ({rep})",
                             os.path.join(out_dir, f"timeseries-{c['config']}")))
    _sweep_figures(configs, iperf, mapping, out_dir, add, plots_lines)
    return figures


def _latency_figures(summary, extras, mapping, out_dir, add, plots_lines):
    """Latency CCDFs (one per sweep point) and latency over time (one per configuration)."""
    configs = summary["configs"]
    groups = {}
    for c in configs:
        groups.setdefault(tuple(sweep_of(c)), []).append(c)
    for point, members in groups.items():
        curves, ns = [], []
        for c in members:
            runs = [extras.get(run, {}).get("latency_points") or [] for run in _runs_ok(summary,
                                                                                        c)]
            ns.append(len(runs))
            pooled = sorted(lat for points in runs for _, lat in points)
            curves.append({"label": f"{c['config']} (n={len(runs)})",
                           "style": mapping[c["balancer"]["name"]],
                           "pooled": M.latency_ccdf(pooled),
                           "runs": [M.latency_ccdf(sorted(lat for _, lat in points))
                                    for points in runs] if len(runs) > 1 else []})
        where = ", ".join(f"{p} = {_shown(v)}" for p, v in point)
        suffix = "-" + re.sub(r"[^A-Za-z0-9_.=-]", "_", where.replace(", ", "-").replace(
            " = ", "=")) if where else ""
        add("Latency", "Latency CCDF" + (f": {where}" if where else ""),
            "Share of ok requests whose latency (from the scheduled send time) is at least x, "
            f"on a log axis: bold = all runs' requests pooled, faint = each run "
            f"(n={_n_text(ns)} runs per configuration)" + (f"; {where}" if where else "") + ".",
            plots_lines.latency_ccdf(curves, "Latency CCDF (ok requests, runs pooled)"
                                     + (f"\n{where}" if where else ""),
                                     os.path.join(out_dir, "latency_ccdf" + suffix)))
    for c in configs:
        runs = _runs_ok(summary, c)
        length = max((extras.get(r, {}).get("window_s") or 0.0 for r in runs), default=0.0)
        if not runs or length <= 0:
            continue
        series = M.latency_over_time([extras.get(r, {}).get("latency_points") or []
                                      for r in runs], length, M.bin_width(length))
        first = _first_run(summary, c)
        add("Latency", f"Latency over time: {c['config']}",
            f"p50 and p99 (nearest rank) of ok requests in {series['bin_s']:g} s bins of send "
            f"time, all n={len(runs)} runs pooled (each run's bins start at its own window "
            f"start); faults dashed at repetition {first.get('rep', 1)}'s applied time: "
            f"{c['config']}.",
            plots_lines.latency_over_time(series, fault_marks(first),
                                          f"{c['config']} (n={len(runs)} runs pooled)",
                                          os.path.join(out_dir, f"latency_time-{c['config']}")))


def _sweep_figures(configs, iperf, mapping, out_dir, add, plots_lines):
    """The metrics against the first numeric swept parameter, and Jain's index against load."""
    keys = [("total_mbps", "total Mbit/s")] if iperf else [
        ("goodput_rps", "ok requests/s"), ("latency_p99_ms", "p99 latency (ms)")]
    jain = ("jain_flows", "Jain's index (flows)") if iperf else (
        "jain_backends", "Jain's index (backends)")
    plans = [(key, ylabel, sweep_plan(configs, key)) for key, ylabel in keys]
    load = next((p for c in configs for p, _ in sweep_of(c) if p in LOAD_PARAMS), None)
    if load is not None:
        plans.append((jain[0], jain[1], sweep_plan(configs, jain[0], x_param=load)))
    for key, ylabel, plan in plans:
        if plan is None:
            continue
        x_param, panels, xticks = plan
        aggs = [agg for _, series in panels for points in series.values()
                for _, agg in points]
        stem = f"sweep-{key}" + ("" if key != jain[0] else f"-vs-{x_param.split('.')[-1]}")
        add("Sweeps", f"{ylabel} against {x_param}",
            "One line per balancer"
            + (", one panel per value of the other swept parameters" if len(panels) > 1
               else "") + f": {_interval_caption(aggs, 'band')}.",
            plots_lines.sweep_panels(panels, x_param, ylabel, f"{ylabel} vs {x_param}",
                                     os.path.join(out_dir, stem), mapping,
                                     unit=key in M.UNIT_METRICS, xticks=xticks))


def _graph(manifest):
    topo = (manifest.get("spec") or {}).get("topology")
    if not topo:
        return None
    try:
        from topologies import graphs
        return graphs.build(topo["name"], topo.get("params") or {})
    except Exception:  # noqa: BLE001 - a drawing is optional; the report must still render
        return None


# -- the model twin (docs/model.md) -------------------------------------------------------------

def model_figures(run_dir, summary, model):
    """The model twin's figures: one per key metric (emulated against modelled per
    configuration), and the classic's published curve where the spec reproduces one.

    Args:
        model (dict): ``experiments.model.twin.build_model``'s result.
    Returns:
        list[dict]: figures as ``make_plots`` gives them, section "Model twin".
    """
    from experiments import plots_model
    from experiments.model import flags

    if not model.get("available"):
        return []
    out_dir = os.path.join(run_dir, "plots")
    figures = []
    comparison = model["comparison"]
    for key, label in flags.KEY_METRICS:
        rows = [r for r in comparison["rows"] if r["metric"] == key]
        if not rows:
            continue
        path = plots_model.model_vs_emulated(rows, label, f"{label}: emulated and modelled",
                                             os.path.join(out_dir, f"model-{key}"))
        figures.append({
            "id": f"fig-model-{key}", "section": "Model twin",
            "title": f"{label}: emulated against the model",
            "caption": "Per configuration: the model's per-window values (grey box: 2.5-97.5 "
                       "% of its windows, grey tick: their mean, dotted: the fidelity flag's "
                       "bounds), the emulated mean with its interval over runs (black) and "
                       "each run's value (dots; red: flagged).", "path": path})
    figures += _classic_figures(run_dir, summary, model, out_dir)
    return figures


def _classic_figures(run_dir, summary, model, out_dir):
    from experiments import plots_model
    from experiments import spec as spec_mod
    from experiments.model import classics

    spec = model["spec"]
    classic = classics.classic_of(spec.name)
    if classic == "supermarket":
        points = {config: point_spec
                  for config, _, _, point_spec in spec_mod.configurations(spec)}
        curves = classics.supermarket_curves(summary, model["results"], points)
        loads = sorted({p[0] for pts in curves.values() for p in pts})
        if not loads:
            return []
        grid = [loads[0] + (loads[-1] - loads[0]) * i / 40 for i in range(41)]
        mapping = load_styles(run_dir, list(curves))
        path = plots_model.supermarket(
            [{"label": name, "color": mapping[name]["color"], "points": pts}
             for name, pts in curves.items()],
            classics.closed_forms(grid), "The supermarket model: emulated, model, n -> inf",
            os.path.join(out_dir, "classic-supermarket"))
        return [{"id": "fig-classic-supermarket", "section": "Model twin",
                 "title": "The supermarket model",
                 "caption": "Mean response time in mean service times against the load: "
                            "emulated means (markers), the model of the same finite system "
                            "(line and band: mean and 2.5-97.5 % of its windows) and the "
                            "closed forms for n -> infinity (dashed; Vvedenskaya et al. 1996, "
                            "Mitzenmacher 2001).", "path": path}]
    if classic == "hash_failure":
        rows = hash_failure_rows(run_dir, summary, spec)
        if not rows:
            return []
        path = plots_model.keys_moved(rows, "Keys moved when one backend fails",
                                      os.path.join(out_dir, "classic-hash_failure"))
        return [{"id": "fig-classic-hash_failure", "section": "Model twin",
                 "title": "Consistent hashing under failure",
                 "caption": "Fraction of keys (client addresses) whose backend changed when "
                            "one backend failed: the model (lblab's balancer on the run's "
                            f"{rows[0]['keys']} keys, and on {rows[0]['many']:,} keys), the "
                            "emulated runs (mean), and the published value (dashed: 1/N for "
                            "Maglev, (N-1)/N for modulo). Max/mean keys per backend on the "
                            "many keys: " + ", ".join(f"{r['balancer']} {r['imbalance']:.3f}"
                                                      for r in rows) + ".", "path": path}]
    return []


def hash_failure_rows(run_dir, summary, spec):
    """Per balancer of a hash_failure spec: the keys moved in the model (the run's client
    addresses), in many keys, emulated (mean over ok runs), the published value and the
    max/mean imbalance; ``[]`` when the spec has no kill fault."""
    from experiments import run_plan
    from experiments.model import classics
    from lb_apps.records import iter_records
    from topologies import graphs

    kill = next((f for f in spec.faults if f.action == "kill_backend"), None)
    if kill is None:
        return []
    graph = graphs.build(spec.topology.name, spec.topology.params)
    roles = run_plan.assign_roles(graph, spec.backends)
    ips = {c: graph.nodes[c]["ip"] for c in roles.clients}
    names = [b.name for b in spec.backends]
    runs = {r["meta"]["run"]: r["meta"] for r in summary["runs"]}
    rows = []
    for b in spec.balancers:
        if b.algorithm not in classics.PUBLISHED:
            continue
        label, published = classics.PUBLISHED[b.algorithm]
        keys = list(ips.values())
        moved = []
        for c in summary["configs"]:
            if c["balancer"]["name"] != b.name:
                continue
            for run in c["runs"]:
                meta = runs[run]
                if meta.get("status") != "ok" or not meta.get("window"):
                    continue
                records = []
                for file in sorted(glob.glob(os.path.join(run_dir, "raw", run,
                                                          "loadgen-*.jsonl"))):
                    records.extend(iter_records(file, "loadgen"))
                applied = next((f.get("applied") for f in meta.get("faults") or ()
                                if f.get("action") == "kill_backend"), None)
                at = applied if isinstance(applied, (int, float)) else \
                    meta["window"][0] + kill.at_s
                pairs = classics.observed_moves(records, at, HASH_SETTLE_S)
                if pairs:
                    moved.append(sum(1 for a, z in pairs.values() if a != z) / len(pairs))
        rows.append({
            "label": f"{b.name}\n({label})", "balancer": b.name,
            "model": classics.keys_moved(b.algorithm, names, keys, kill.target),
            "model_many": classics.keys_moved(b.algorithm, names,
                                              classics.many_keys(classics.MANY_KEYS),
                                              kill.target),
            "emulated": sum(moved) / len(moved) if moved else None,
            "keys": len(keys), "many": classics.MANY_KEYS,
            "reference": published(len(names)),
            "imbalance": classics.imbalance(classics.assignment(
                b.algorithm, names, classics.many_keys(classics.MANY_KEYS)), names)})
    return rows


# Requests scheduled this long after a kill are left out of "after": the proxy's health checks
# are detecting the failure (fall x interval, docs/l7.md).
HASH_SETTLE_S = 3.0
