"""``report.html``: one self-contained page (results table, figures embedded as base64 PNG, the
spec, warnings, the manifest and how the numbers are computed)."""
import base64
import json
import os

import jinja2

from experiments import metrics as M


TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def _embed(path):
    with open(path, "rb") as fp:
        return "data:image/png;base64," + base64.b64encode(fp.read()).decode("ascii")


def _table(summary):
    """Rows of the results table: one per configuration, mean ± CI of the key metrics."""
    iperf = any(c["workload"] == "iperf3" for c in summary["configs"])
    keys = (("total_mbps", "Mbit/s"), ("jain_flows", "Jain (flows)"),
            ("jain_backends", "Jain (backends)")) if iperf else (
        ("goodput_rps", "ok req/s"), ("goodput_mbps", "Mbit/s"),
        ("latency_mean_ms", "mean ms"), ("latency_p50_ms", "p50 ms"),
        ("latency_p99_ms", "p99 ms"), ("errors", "errors"), ("error_rate", "error rate"),
        ("jain_backends", "Jain (backends)"), ("jain_clients", "Jain (clients)"))
    if any("fault_errors" in r["metrics"] for r in summary["runs"]):
        keys += (("fault_errors", "failed after kill"), ("error_period_s", "failing for s"),
                 ("recovery_s", "back after s"))
    rows = []
    for c in summary["configs"]:
        n = c.get("n", c["reps"])
        cells = []
        for key, _ in keys:
            agg = c["aggregate"].get(key) or {}
            text = format_interval(agg.get("mean"), agg.get("low"), agg.get("high"))
            if agg and agg.get("mean") is not None and agg.get("n", n) != n:
                text += f" (n={agg.get('n')})"
            cells.append(text)
        note = f"{n}" if n >= M.MIN_RUNS_FOR_INTERVAL else f"n={n}: no interval"
        rows.append({"config": c["config"], "balancer": c["balancer"], "reps": c["reps"],
                     "n": note, "cells": cells})
    return [label for _, label in keys], rows


def format_interval(mean, low, high):
    """``12.3 [11.9, 12.8]`` (3 significant digits), ``12.3`` without an interval."""
    if mean is None:
        return "–"
    text = _num(mean, 3)
    if low is None or high is None:
        return text
    return f"{text} [{_num(low, 3)}, {_num(high, 3)}]"


def format_mean_ci(mean, ci):
    """``12.3 ± 0.4`` (3 significant digits), ``12.3`` without a CI, ``–`` without a mean."""
    if mean is None:
        return "–"
    text = _num(mean, 3)
    return f"{text} ± {_num(ci, 2)}" if ci is not None else text


def _num(value, digits):
    """Significant digits without exponents for numbers a table shows (12345 -> 12345)."""
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return format(value, f".{digits}g")


def render_html(run_dir, summary, figures, warnings, manifest):
    """Render report.html (one self-contained file, images embedded as base64 PNG)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             keep_trailing_newline=True)
    headers, rows = _table(summary)
    spec = manifest.get("spec") or {}
    html = env.get_template("report.html.j2").render(
        name=spec.get("name") or os.path.basename(os.path.abspath(run_dir)),
        question=spec.get("question") or "",
        spec_text=manifest.get("spec_yaml") or json.dumps(spec, indent=2, sort_keys=True),
        topology=next((_embed(p) for t, p in figures if t == "Topology"), None),
        headers=headers, rows=rows,
        figures=[(t, _embed(p)) for t, p in figures if t != "Topology"],
        warnings=warnings,
        manifest=json.dumps({k: v for k, v in manifest.items() if k not in ("spec", "spec_yaml")},
                            indent=2, sort_keys=True),
        how_computed=M.HOW_COMPUTED, summary_note=M.__doc__)
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(html)
    return path
