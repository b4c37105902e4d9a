"""``report.html``: one self-contained page (a table of contents, the results table, warnings,
figures embedded as base64 PNG by section, the spec, how the numbers are computed, the
manifest)."""
import base64
import json
import os

import jinja2

from experiments import metrics as M
from experiments import placement_table


TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def _embed(path):
    with open(path, "rb") as fp:
        return "data:image/png;base64," + base64.b64encode(fp.read()).decode("ascii")


def _table(summary):
    """Rows of the results table: one per configuration, mean [low, high] of the key metrics."""
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


def _num(value, digits):
    """Significant digits without exponents for numbers a table shows (12345 -> 12345)."""
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return format(value, f".{digits}g")


def _toc(figures, warnings):
    """The table of contents: ``[(anchor, text, [(anchor, text)…])]`` of the page's sections,
    the figures under theirs."""
    by_section = {}
    for f in figures:
        if f["section"] != "Setup":
            by_section.setdefault(f["section"], []).append((f["id"], f["title"]))
    figure_toc = [(f"figures-{s.lower().replace(' ', '-')}", s, items)
                  for s, items in by_section.items()]
    return [("question", "The question", []), ("setup", "The setup", []),
            ("results", "Results", []), ("model", "Model twin", []),
            ("warnings", f"Fidelity warnings ({len(warnings)})" if warnings
             else "Fidelity warnings (none)", []),
            ("figures", "Figures", figure_toc), ("spec", "The spec as run", []),
            ("how-computed", "How the numbers are computed", []), ("manifest", "Manifest", [])]


def _figure_sections(figures):
    """``[(anchor, section, [figure…])]`` in report order, each figure numbered."""
    out = []
    number = 0
    for f in figures:
        if f["section"] == "Setup":
            continue
        number += 1
        anchor = f"figures-{f['section'].lower().replace(' ', '-')}"
        if not out or out[-1][1] != f["section"]:
            out.append((anchor, f["section"], []))
        out[-1][2].append(dict(f, number=number, src=_embed(f["path"])))
    return out


def _model_section(model, iperf):
    """The model twin section's data: availability, the comparison table, the false-alarm
    statement, the calibration."""
    if iperf:
        return {"available": False, "reason": "iperf3 workloads are outside the model: it "
                "models HTTP workloads only (iperf3's TCP flows are not simulated)."}
    if not model or not model.get("available"):
        return {"available": False,
                "reason": (model or {}).get("reason") or "no model was built"}
    comp = model["comparison"]
    rows = []
    for r in comp["rows"]:
        m, e = r["model"], r["emulated"]
        bounds = m.get("bounds")
        rows.append({"config": r["config"], "metric": r["label"],
                     "emulated": format_interval(e.get("mean"), e.get("low"), e.get("high")),
                     "runs": ", ".join(_num(v, 3) for v in e.get("values") or []) or "–",
                     "model": format_interval(m.get("mean"), m.get("low"), m.get("high")),
                     "windows": m.get("n") or 0,
                     "bounds": (f"[{_num(bounds[0], 3)}, {_num(bounds[1], 3)}]"
                                if bounds else "–"),
                     "flagged": ", ".join(r["flagged"])})
    cal = model.get("calibration") if isinstance(model.get("calibration"), dict) else {}
    paths = [{"path": k, **{f: v.get(f) for f in ("n", "mean_ms", "sd_ms", "p50_ms", "p99_ms",
                                                  "status")}}
             for k, v in sorted((cal.get("paths") or {}).items())]
    return {"available": True, "rows": rows, "flags": len(comp["flags"]), "m": comp["m"],
            "false_alarm": comp["false_alarm"], "alpha": comp["alpha"],
            "method": comp["method"], "sd_floor": comp["sd_floor"],
            "cal_rel_err": comp["cal_rel_err"],
            "overhead_source": model["overhead_source"], "calibration": paths,
            "notes": sorted({f"{r['balancer']}: {'; '.join(r['notes'])}"
                             for r in model["results"] if r["notes"]}),
            "model_notes": model["results"][0]["model_notes"] if model["results"] else []}


def render_html(run_dir, summary, figures, warnings, manifest, model=None):
    """Render report.html (one self-contained file, images embedded as base64 PNG).

    Args:
        figures (list[dict]): from ``experiments.figures.make_plots`` (and ``model_figures``).
        model (dict|None): ``experiments.model.twin.build_model``'s result.
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             keep_trailing_newline=True)
    headers, rows = _table(summary)
    spec = manifest.get("spec") or {}
    html = env.get_template("report.html.j2").render(
        name=spec.get("name") or os.path.basename(os.path.abspath(run_dir)),
        question=spec.get("question") or "",
        spec_text=manifest.get("spec_yaml") or json.dumps(spec, indent=2, sort_keys=True),
        topology=next((_embed(f["path"]) for f in figures if f["section"] == "Setup"), None),
        headers=headers, rows=rows, toc=_toc(figures, warnings),
        figure_sections=_figure_sections(figures),
        warnings=warnings,
        model=_model_section(model, any(c["workload"] == "iperf3" for c in summary["configs"])),
        manifest=json.dumps({k: v for k, v in manifest.items() if k not in ("spec", "spec_yaml")},
                            indent=2, sort_keys=True),
        how=M.HOW_COMPUTED, pct=", ".join(f"p{p:g}" for p in M.PERCENTILES),
        placement=placement_table.html(run_dir))    # runs across servers: where each node ran
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(html)
    return path
