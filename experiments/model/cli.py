"""``lblab model SPEC``: predict an HTTP experiment with the model twin, in seconds, no root.
``lblab model --compare RESULTS_DIR``: a results folder's runs beside its model twin.

Prints, per configuration (balancer x sweep point), the mean and the 2.5-97.5 % range of the
per-window values of the main metrics over ``--windows`` simulated windows of the spec's
duration, how each balancer decides (per request, connection or client) and what the model
approximates for it. ``--json`` prints every metric with its per-window values.
"""
import argparse
import json
import math
import sys
import time

from experiments import spec as spec_mod
from experiments.model import predict as P
from lblab_core.errors import UsageError

MAX_OVERHEAD_MS = 60_000.0
# (metric, column title, digits) of the terminal table.
COLUMNS = (("goodput_rps", "goodput req/s", 1), ("latency_mean_ms", "mean ms", 2),
           ("latency_p99_ms", "p99 ms", 2), ("jain_backends", "Jain backends", 3),
           ("error_rate", "error rate", 4))


def _windows(text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 2 <= value <= P.MAX_WINDOWS:
        raise argparse.ArgumentTypeError(f"invalid {text!r}; expected an integer from 2 to "
                                         f"{P.MAX_WINDOWS} (a spread needs two windows)")
    return value


def _overhead(text):
    name, eq, number = text.rpartition("=")
    try:
        ms = float(number)
    except ValueError:
        ms = math.nan
    if not (math.isfinite(ms) and 0 <= ms <= MAX_OVERHEAD_MS) or (eq and not name):
        raise argparse.ArgumentTypeError(
            f"invalid {text!r}; expected milliseconds from 0 to {MAX_OVERHEAD_MS:g}, for every "
            f"balancer (5) or one (NAME=5)")
    return (name if eq else "*", ms)


def build_parser():
    """Return the argument parser of ``lblab model``."""
    parser = argparse.ArgumentParser(
        prog="lblab model",
        description="Predict an HTTP experiment with the model twin: a discrete-event "
                    "simulation of the spec's clients, balancers (lblab's own algorithms and "
                    "seeds) and backends, run over many windows of the spec's duration. No "
                    "root, no Mininet. Prints the mean and the 2.5-97.5%% range of each "
                    "configuration's per-window metrics (docs/model.md).")
    parser.add_argument("spec", metavar="SPEC", nargs="?",
                        help="an experiment spec with an HTTP workload")
    parser.add_argument("--compare", metavar="RESULTS_DIR",
                        help="instead of a SPEC: a results folder of lblab run; rebuild its "
                             "model twin (model/, as lblab report does) and print, per "
                             "configuration and key metric, the emulated runs beside the "
                             "model's range and the fidelity flags")
    parser.add_argument("--windows", type=_windows, default=None, metavar="N",
                        help=f"windows simulated per configuration, window r with repetition "
                             f"r's seeds (2..{P.MAX_WINDOWS}; default {P.DEFAULT_WINDOWS}, "
                             f"fewer but at least {P.MIN_WINDOWS} for a configuration whose "
                             f"windows would exceed {P.REQUEST_BUDGET:,} simulated requests)")
    parser.add_argument("--overhead-ms", dest="overheads", type=_overhead, action="append",
                        default=[], metavar="[BALANCER=]MS",
                        help="per-request network and balancer delay in ms, for every "
                             "balancer or one (repeatable; default 0: an ideal path, and the "
                             "output says so)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="override a spec value (repeatable), e.g. workload.rate=200")
    parser.add_argument("--json", action="store_true",
                        help="print every metric, its spread and per-window values as JSON")
    return parser


def load(args):
    """Load the spec with overrides; every problem on stderr, the last as the UsageError."""
    try:
        return spec_mod.load_spec(args.spec, args.overrides)
    except spec_mod.SpecError as exc:
        for line in exc.errors[:-1]:
            print(line, file=sys.stderr)
        raise UsageError(exc.errors[-1] + (f" ({len(exc.errors)} problems)"
                                           if len(exc.errors) > 1 else "")) from None


def overheads_of(spec, pairs):
    """Return ``{balancer or "*": ms}`` from ``--overhead-ms`` values, names checked."""
    names = [b.name for b in spec.balancers]
    out = {}
    for name, ms in pairs:
        if name != "*" and name not in names:
            raise UsageError(f"--overhead-ms: unknown balancer {name!r}; expected one of "
                             f"{', '.join(names)}")
        out[name] = ms
    return out


def _cell(spread, digits):
    if spread["mean"] is None:
        return "-"
    return (f"{spread['mean']:.{digits}f} [{spread['low']:.{digits}f}-"
            f"{spread['high']:.{digits}f}]")


def format_table(results):
    """Return the terminal table: one row per configuration, ``mean [2.5%-97.5%]`` cells."""
    head = ["configuration", "decided per", "windows"] + [title for _, title, _ in COLUMNS]
    rows = [head]
    for r in results:
        rows.append([r["config"], r["granularity"], str(r["windows"])]
                    + [_cell(r["metrics"][m], d) for m, _, d in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def format_text(spec, results, seconds, requested=None):
    """Return the whole terminal output: the table, how it was computed, the approximations."""
    lines = [f"{spec.name}: model prediction (windows of {spec.duration_s:g} s after "
             f"{spec.warmup_s:g} s warm-up; {seconds:.1f} s)", "",
             format_table(results), "",
             "Cells: mean [2.5%-97.5% quantiles] of the per-window values, the range an "
             "emulated window should fall in; window r uses repetition r's seeds.",
             *([f"Fewer than {P.DEFAULT_WINDOWS} windows: those configurations' windows hold "
                f"so many requests that {P.DEFAULT_WINDOWS} would exceed "
                f"{P.REQUEST_BUDGET:,} simulated requests (--windows N insists)."]
               if requested is None and any(r["windows"] < P.DEFAULT_WINDOWS
                                            for r in results) else []),
             "Approximations:"]
    seen = {}
    for r in results:
        seen.setdefault(r["balancer"], r["notes"])
    for name, notes in seen.items():
        lines.append(f"  {name}: " + "; ".join(notes))
    lines += [f"  all: {line}" for line in (results[0]["model_notes"] if results else ())]
    return "\n".join(lines)


def to_json(spec, results, windows, overheads):
    """Return the JSON-ready prediction (``windows``: as asked, None for the default)."""
    configs = []
    for r in results:
        item = {k: v for k, v in r.items() if k not in ("point", "point_label")}
        item["point"] = P.point_json(r["point"], spec)
        configs.append(item)
    return {"spec": spec.name, "source": spec.source, "windows_requested": windows,
            "window_s": spec.duration_s, "warmup_s": spec.warmup_s,
            "quantiles": list(P.QUANTILES), "overhead_ms": overheads or {"*": 0.0},
            "overhead_source": "--overhead-ms" if overheads else "none given: zero",
            "configurations": configs}


def main(argv=None):
    """Run ``lblab model``.

    Returns:
        int: 0; a spec outside the model or bad input raises UsageError (exit 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.compare is not None:
        if args.spec is not None or args.overrides or args.overheads or args.windows:
            parser.error("--compare takes the spec, overrides and calibration from the "
                         "results folder; give no SPEC, --set, --overhead-ms or --windows")
        print(compare_text(args.compare))
        return 0
    if args.spec is None:
        parser.error("give a SPEC (or --compare RESULTS_DIR)")
    spec = load(args)
    P.check_modelled(spec)
    overheads = overheads_of(spec, args.overheads)
    started = time.monotonic()
    results = P.predict(spec, args.windows, overheads)
    if args.json:
        print(json.dumps(to_json(spec, results, args.windows, overheads), indent=1))
    else:
        print(format_text(spec, results, time.monotonic() - started, args.windows))
    return 0


def compare_text(run_dir):
    """The emulated runs of a results folder beside its model twin, as a terminal table."""
    import os

    from experiments import report
    from experiments.model import twin

    if not os.path.isdir(run_dir):
        raise UsageError(f"--compare: {run_dir!r} is not a folder")
    try:
        manifest = report.check_manifest(run_dir)
        summary = report.collect(run_dir)[0]
    except report.ReportError as exc:
        raise UsageError(str(exc)) from None
    model = twin.build_model(run_dir, summary, manifest)
    if not model["available"]:
        raise UsageError(f"{run_dir}: no model: {model['reason']}")
    comp = model["comparison"]
    rows = [["configuration", "metric", "emulated runs", "model mean [2.5%-97.5%]",
             "flag bounds", "flagged"]]
    for r in comp["rows"]:
        m = r["model"]
        rows.append([r["config"], r["metric"],
                     ", ".join(f"{v:.4g}" for v in r["emulated"]["values"]) or "-",
                     "-" if m["mean"] is None else
                     f"{m['mean']:.4g} [{m['low']:.4g}-{m['high']:.4g}]",
                     "-" if not m["bounds"] else
                     f"[{m['bounds'][0]:.4g}-{m['bounds'][1]:.4g}]",
                     ", ".join(r["flagged"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines += ["", f"overheads: {model['overhead_source']}",
              f"fidelity flags: {len(comp['flags'])} of {comp['m']} comparisons; false-alarm "
              f"rate at most {comp['false_alarm']:.0%} per report (per comparison "
              f"{comp['alpha']:.2g}; {comp['method']})"]
    lines += flags_lines(comp)
    return "\n".join(lines)


def flags_lines(comparison):
    from experiments.model import flags
    return flags.flag_lines(comparison)
