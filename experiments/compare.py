"""``lblab compare RUN_DIR RUN_DIR…``: put several runs' results side by side.

Reads each run's ``summary.json`` (rebuilding the summary from ``raw/`` in memory when it is
missing) and prints one row per configuration and one column group per run.
"""
import argparse
import csv
import json
import os
import sys

from experiments import report
from lblab_core.errors import UsageError

DEFAULT_METRICS = ("goodput_rps", "latency_p99_ms", "jain_backends")
IPERF_METRICS = ("total_mbps", "jain_flows", "jain_backends")


def load_summary(run_dir):
    """Return the summary of a results folder (its summary.json, else computed from raw/).

    Raises:
        report.ReportError: not a results folder.
    """
    path = os.path.join(run_dir, "summary.json")
    if os.path.exists(path):
        return report.load_json(path)
    summary, _ = report.collect(run_dir)
    return summary


def compare_rows(named_summaries, metrics):
    """Build the comparison table.

    Args:
        named_summaries (list[tuple[str, dict]]): (run label, summary) in column order.
        metrics (list[str]): metric keys of ``experiments.metrics.aggregate``.
    Returns:
        list[list[str]]: header row, then one row per configuration seen in any run (first-seen
        order); a configuration missing from a run shows ``–``.
    """
    configs = []
    for _, summary in named_summaries:
        for c in summary["configs"]:
            if c["config"] not in configs:
                configs.append(c["config"])
    header = ["config"] + [f"{label}: {m}" for label, _ in named_summaries for m in metrics]
    rows = [header]
    for name in configs:
        row = [name]
        for _, summary in named_summaries:
            config = next((c for c in summary["configs"] if c["config"] == name), None)
            for m in metrics:
                agg = (config or {}).get("aggregate", {}).get(m) or {}
                row.append(report.format_mean_ci(agg.get("mean"), agg.get("ci95")))
        rows.append(row)
    return rows


def _label(run_dir):
    return os.path.basename(os.path.normpath(run_dir))


def main(argv=None):
    """Print the runs side by side (a rich table, or CSV/JSON for scripts)."""
    parser = argparse.ArgumentParser(
        prog="lblab compare",
        description="Put the results of several runs side by side (mean ± 95% CI per "
                    "configuration).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="results folders")
    parser.add_argument("--metric", action="append", dest="metrics", metavar="NAME",
                        help=f"metric to show (repeatable; default {', '.join(DEFAULT_METRICS)}"
                             f", or {', '.join(IPERF_METRICS)} for iperf3 runs)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    named = []
    for run_dir in args.run_dirs:
        if not os.path.isdir(run_dir):
            raise UsageError(f"RUN_DIR {run_dir!r} is not a folder")
        try:
            named.append((_label(run_dir), load_summary(run_dir)))
        except report.ReportError as exc:
            raise UsageError(str(exc)) from None
    iperf = any(c.get("workload") == "iperf3" for _, s in named for c in s["configs"])
    metrics = args.metrics or list(IPERF_METRICS if iperf else DEFAULT_METRICS)
    from experiments.metrics import SCALAR_METRICS
    for m in metrics:
        if m not in SCALAR_METRICS:
            raise UsageError(f"--metric {m!r} is not a metric; expected one of "
                             f"{', '.join(SCALAR_METRICS)}")
    rows = compare_rows(named, metrics)
    if args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    elif args.json:
        json.dump([dict(zip(rows[0], r)) for r in rows[1:]], sys.stdout, indent=1,
                  ensure_ascii=False)
        print()
    else:
        from rich.console import Console
        from rich.table import Table
        table = Table(title="lblab compare (mean ± 95% CI)")
        for i, h in enumerate(rows[0]):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows[1:]:
            table.add_row(*r)
        Console().print(table)
    return 0
