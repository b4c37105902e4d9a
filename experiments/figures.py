"""The figures of a report: which plots a results folder gets, with captions that say n and the
interval method (drawing itself is ``experiments.plots``)."""
import os

from experiments import metrics as M

def make_plots(run_dir, summary, extras, manifest):
    """Draw every figure into ``run_dir/plots``; return ``[(title, png path)]`` in report order."""
    from experiments import plots

    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    configs = summary["configs"]
    labels = [c["config"] for c in configs]
    figures = []
    iperf = any(c["workload"] == "iperf3" for c in configs)

    def add(title, path):
        if path:
            figures.append((title, path))

    graph = _graph(manifest)
    if graph is not None:
        add("Topology", plots.topology(graph, os.path.join(out_dir, "topology")))

    def bars(key, ylabel, title, stem, caption, ylim=None):
        aggs = [c["aggregate"].get(key) or {} for c in configs]
        path = plots.bars_with_ci(labels, aggs, ylabel, title, os.path.join(out_dir, stem),
                                  ylim=ylim)
        add(f"{caption} ({_interval_caption(aggs)})", path)

    if iperf:
        bars("total_mbps", "total Mbit/s", "Total throughput", "throughput",
             "Total throughput per balancer")
        bars("jain_flows", "Jain's index (flows)", "Flow fairness", "fairness",
             "Jain's index over flows", ylim=(0, 1.05))
        rates = [extras.get(c["runs"][0], {}).get("flow_mbps", []) for c in configs]
        add("Per-flow throughput", plots.flow_rates(labels, rates,
                                                    os.path.join(out_dir, "flows")))
    else:
        bars("goodput_rps", "ok requests/s", "Throughput", "throughput",
             "Throughput per balancer (ok requests/s)")
        bars("latency_p99_ms", "p99 latency (ms)", "Tail latency", "latency_p99",
             "p99 latency per balancer")
        cdfs = {c["config"]: extras.get(c["runs"][0], {}).get("cdf", ([], [])) for c in configs}
        add("Latency CDFs", plots.latency_cdfs(cdfs, os.path.join(out_dir, "latency_cdf")))
        bars("jain_backends", "Jain's index (backends)", "Fairness", "fairness",
             "Jain's index over backends (load / weight)", ylim=(0, 1.05))
    backends = [b["name"] for b in configs[0]["backends"]]
    weights = {b["name"]: b.get("weight", 1) for b in configs[0]["backends"]}
    total = sum(weights.values()) or 1
    shares = [{b: (v or {}).get("mean") for b, v in c["aggregate"].get("backend_share",
                                                                       {}).items()}
              for c in configs]
    ns = sorted({c.get("n", 0) for c in configs})
    add(f"Per-backend share of requests (mean over {_n_text(ns)} runs)", plots.stacked_shares(
        labels, backends, shares, os.path.join(out_dir, "backend_share"),
        expected={b: w / total for b, w in weights.items()}))
    for c in configs:
        ts = extras.get(c["runs"][0], {}).get("timeseries")
        if not ts:
            continue
        first = next(r for r in summary["runs"] if r["meta"]["run"] == c["runs"][0])
        add(f"Throughput over time per backend: {c['config']}", plots.timeseries(
            ts, first["meta"].get("faults", []), f"{c['config']} (repetition 1)",
            os.path.join(out_dir, f"timeseries-{c['config']}")))
    sweep_param = next((c["sweep"]["param"] for c in configs if c.get("sweep")), None)
    if sweep_param:
        key = "total_mbps" if iperf else "goodput_rps"
        keys = [(key, "Mbit/s" if iperf else "ok requests/s")]
        if not iperf:
            keys.append(("latency_p99_ms", "p99 latency (ms)"))
        for key, ylabel in keys:
            series = {}
            aggs = []
            for c in configs:
                agg = c["aggregate"].get(key) or {}
                aggs.append(agg)
                series.setdefault(c["balancer"]["name"], []).append((c["sweep"]["value"], agg))
            add(f"{ylabel} against {sweep_param} ({_interval_caption(aggs)})", plots.sweep_lines(
                sweep_param, series, ylabel, f"{ylabel} vs {sweep_param}",
                os.path.join(out_dir, f"sweep-{key}")))
    return figures


def _n_text(ns):
    """``3`` or ``2-3`` for a sorted list of run counts."""
    ns = [n for n in ns if n is not None] or [0]
    return f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"


def _interval_caption(aggs):
    """What a figure's bars or lines show: n and the interval method(s)."""
    ns = sorted({a.get("n", 0) for a in aggs})
    methods = sorted({a.get("method") for a in aggs if a.get("method") not in (None,
                                                                               M.METHOD_NONE)})
    text = f"n={_n_text(ns)} runs"
    if methods:
        text += f"; mean and 95% CI over runs ({', '.join(methods)})"
    if any(a.get("n", 0) < M.MIN_RUNS_FOR_INTERVAL for a in aggs):
        text += (f"; with n < {M.MIN_RUNS_FOR_INTERVAL} no interval: the mean and each "
                 f"run's value as a point")
    return text


def _graph(manifest):
    topo = (manifest.get("spec") or {}).get("topology")
    if not topo:
        return None
    try:
        from topologies import graphs
        return graphs.build(topo["name"], topo.get("params") or {})
    except Exception:  # noqa: BLE001 - a drawing is optional; the report must still render
        return None
