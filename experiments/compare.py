"""``lblab compare RUN_DIR RUN_DIR…``: put several runs' results side by side.

Reads each run's ``summary.json`` (rebuilding the summary from ``raw/`` in memory when it is
missing) and prints one row per configuration and one column group per run, then one sentence
per configuration, metric and later run comparing it with the first run (the baseline A).

Statistics (the run is the unit; see ``HOW_COMPARED``): the ratio B/A of the means with a 95%
Welch t interval on the log ratio, and Welch's t-test on the per-run values.
"""
import argparse
import csv
import json
import math
import os
import statistics
import sys

from scipy import stats

from experiments import html_report, report
from experiments.compare_plots import aggregate_of, configs_of, plot_compare
from lblab_core.errors import UsageError

DEFAULT_METRICS = ("goodput_rps", "latency_p99_ms", "jain_backends")
IPERF_METRICS = ("total_mbps", "jain_flows", "jain_backends")
ALPHA = 0.05
TEST_NAME = "welch-t"
RATIO_METHOD = "welch-log-ratio-t"
HOW_COMPARED = f"""\
Each later run folder B is compared with the first one, A, per configuration and metric, on
the per-run values (the run is the unit of replication). The ratio is mean(B) / mean(A). Its
95% interval is a t interval on ln(mean(B) / mean(A)) with the delta-method standard error
sqrt(s_A^2 / (n_A mean_A^2) + s_B^2 / (n_B mean_B^2)) and Welch-Satterthwaite degrees of
freedom, transformed back ({RATIO_METHOD}); none when a mean is <= 0, or both spreads are 0.
The test is Welch's t-test (scipy.stats.ttest_ind(equal_var=False), two-sided) on the per-run
values; significant when p < {ALPHA}. With n < 2 on either side there is no test and no
interval ("no test: n = 1 vs 3"); when neither side varies there is no test either.
"""


def load_summary(run_dir):
    """Return the summary of a results folder (its summary.json, else computed from raw/).

    Raises:
        report.ReportError: not a results folder, or one made by a newer lblab format.
    """
    return report.load_summary(run_dir)


def compare_rows(named_summaries, metrics):
    """Build the comparison table.

    Args:
        named_summaries (list[tuple[str, dict]]): (run label, summary) in column order.
        metrics (list[str]): metric keys of ``experiments.metrics.aggregate``.
    Returns:
        list[list[str]]: header row, then one row per configuration seen in any run (first-seen
        order); a configuration missing from a run shows ``–``.
    """
    header = ["config"] + [f"{label}: {m}" for label, _ in named_summaries for m in metrics]
    rows = [header]
    for name, _ in configs_of(named_summaries):
        row = [name]
        for _, summary in named_summaries:
            for m in metrics:
                agg = aggregate_of(summary, name, m)
                row.append(html_report.format_interval(agg.get("mean"), agg.get("low"),
                                                          agg.get("high")))
        rows.append(row)
    return rows


def _values(agg):
    return [float(v) for v in agg.get("values") or () if v is not None]


def ratio_interval(a, b):
    """Return (ratio, low, high) of mean(b)/mean(a) with the Welch t interval on the log ratio.

    low/high are None when either side has fewer than 2 values, a mean is <= 0 or neither side
    varies; ratio is None when a mean is missing or mean(a) <= 0.
    """
    if not a or not b:
        return None, None, None
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    if ma <= 0:
        return None, None, None
    ratio = mb / ma
    if len(a) < 2 or len(b) < 2 or mb <= 0:
        return ratio, None, None
    va = statistics.variance(a) / (len(a) * ma * ma)
    vb = statistics.variance(b) / (len(b) * mb * mb)
    if va + vb == 0:
        return ratio, None, None
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
    return ratio, math.exp(math.log(ratio) - half), math.exp(math.log(ratio) + half)


def welch_test(a, b):
    """Return (p, note): Welch's two-sided t-test p-value, or (None, why there is no test)."""
    if len(a) < 2 or len(b) < 2:
        return None, f"no test: n = {len(a)} vs {len(b)}"
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return None, "no test: the values do not vary"
    result = stats.ttest_ind(b, a, equal_var=False)
    p = float(result.pvalue)
    if math.isnan(p):
        return None, "no test: the values do not vary"
    return p, None


def compare_stats(named_summaries, metrics):
    """Return the numeric comparison (what ``--json`` prints).

    Returns:
        dict: ``runs`` (labels), ``baseline``, ``test``, ``ratio_interval``, ``alpha`` and
        ``configs``: a list of ``{"config", "metrics": {metric: {"runs": [{run, mean, low,
        high, n, method}], "comparisons": [{run, baseline, ratio, ratio_low, ratio_high,
        test, p, significant, n_baseline, n, note}]}}}``. Missing numbers are null.
    """
    labels = [label for label, _ in named_summaries]
    out = {"runs": labels, "baseline": labels[0], "test": TEST_NAME,
           "ratio_interval": RATIO_METHOD, "alpha": ALPHA, "configs": []}
    first_summary = named_summaries[0][1]
    for name, _ in configs_of(named_summaries):
        entry = {"config": name, "metrics": {}}
        for m in metrics:
            per_run = []
            for label, summary in named_summaries:
                agg = aggregate_of(summary, name, m)
                per_run.append({"run": label, "mean": agg.get("mean"), "low": agg.get("low"),
                                "high": agg.get("high"), "n": agg.get("n", len(_values(agg))),
                                "method": agg.get("method")})
            a = _values(aggregate_of(first_summary, name, m))
            comparisons = []
            for label, summary in named_summaries[1:]:
                b = _values(aggregate_of(summary, name, m))
                ratio, low, high = ratio_interval(a, b)
                p, note = welch_test(a, b)
                if ratio is None and note is None:
                    note = "no ratio: baseline mean is not > 0"
                comparisons.append({
                    "run": label, "baseline": labels[0], "ratio": ratio, "ratio_low": low,
                    "ratio_high": high, "test": TEST_NAME if p is not None else None, "p": p,
                    "significant": None if p is None else p < ALPHA,
                    "n_baseline": len(a), "n": len(b), "note": note})
            entry["metrics"][m] = {"runs": per_run, "comparisons": comparisons}
        out["configs"].append(entry)
    return out


def sentences(result):
    """Return one line per comparison, e.g. ``l7_lc: latency_p99_ms 1.31× lower than in A
    (significant, p = 0.004, n = 5 vs 5)``; prefixed with ``B vs A:`` with several B."""
    lines = []
    several = len(result["runs"]) > 2
    for entry in result["configs"]:
        for m, data in entry["metrics"].items():
            for c in data["comparisons"]:
                prefix = f"{c['run']} vs {c['baseline']}: " if several else ""
                ratio = c["ratio"]
                if ratio is None:
                    what = "no ratio"
                elif ratio == 1:
                    what = f"same as in {c['baseline']}"
                elif ratio > 1:
                    what = f"{ratio:.3g}× higher than in {c['baseline']}"
                elif ratio > 0:
                    what = f"{1 / ratio:.3g}× lower than in {c['baseline']}"
                else:
                    what = f"0 (vs {c['baseline']})"
                if c["p"] is None:
                    verdict = c["note"] or "no test"
                    if c["note"] and c["note"].startswith("no test: the values"):
                        verdict += f", n = {c['n_baseline']} vs {c['n']}"
                else:
                    word = "significant" if c["significant"] else "not significant"
                    verdict = f"{word}, p = {c['p']:.2g}, n = {c['n_baseline']} vs {c['n']}"
                lines.append(f"{prefix}{entry['config']}: {m} {what} ({verdict})")
    return lines


def _label(run_dir):
    return os.path.basename(os.path.normpath(run_dir))


def _natural_width(rows):
    widths = [max(len(line) for r in rows for line in r[i].split("\n"))
              for i in range(len(rows[0]))]
    return sum(widths) + 3 * len(widths) + 1


def _keyed(rows, labels):
    """The table with each folder's label in its headers replaced by a letter, and the key."""
    letters = [chr(ord("A") + i) if i < 26 else f"F{i + 1}" for i in range(len(labels))]
    header = [rows[0][0]]
    for h in rows[0][1:]:
        for label, letter in zip(labels, letters):
            if h.startswith(label + ": "):
                h = letter + "\n" + h[len(label) + 2:]
                break
        header.append(h)
    key = [f"{letter} = {label}" for letter, label in zip(letters, labels)]
    return [header] + rows[1:], key


def _print_table(rows, stream, labels=()):
    """A rich table whose cells are never cut: piped, as wide as it needs; on a terminal too
    narrow for it, the folders' labels in the headers become letters (a key above the table)
    and a cell that still does not fit folds onto more lines."""
    from rich.console import Console
    from rich.table import Table
    title = "lblab compare (mean [95% CI low, high])"
    width = None
    key = []
    if not stream.isatty():
        # piped: as wide as the table needs (cells never cut), not the 80 columns rich assumes
        width = max(80, _natural_width(rows), len(title))
    elif labels and _natural_width(rows) > Console(file=stream).width:
        rows, key = _keyed(rows, labels)
    table = Table(title=title)
    for i, h in enumerate(rows[0]):
        table.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows[1:]:
        table.add_row(*r)
    console = Console(file=stream, width=width)
    for line in key:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(table)


def main(argv=None):
    """Print the runs side by side (a rich table and sentences, or CSV/JSON for scripts)."""
    parser = argparse.ArgumentParser(
        prog="lblab compare",
        description="Put the results of several runs side by side (the mean and its 95% "
                    "interval [low, high] per configuration) and compare each with the first: "
                    "ratio B/A with a 95% interval and Welch's t-test on the per-run values. "
                    "--plot DIR also draws them side by side (PNG and SVG).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="results folders")
    parser.add_argument("--metric", action="append", dest="metrics", metavar="NAME",
                        help=f"metric to show (repeatable; default {', '.join(DEFAULT_METRICS)}"
                             f", or {', '.join(IPERF_METRICS)} for iperf3 runs)")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    parser.add_argument("--json", action="store_true",
                        help="print numeric JSON (means, intervals, ratios, p-values)")
    parser.add_argument("--plot", metavar="DIR",
                        help="also draw the folders side by side into DIR: per metric the "
                             "configurations' means and intervals, and per configuration a "
                             "latency CCDF overlay (from raw/); prints each file's path")
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
    if args.plot is not None:
        _check_plot_dir(args.plot)
    if args.json:
        json.dump(compare_stats(named, metrics), sys.stdout, indent=1, ensure_ascii=False)
        print()
    elif args.csv:
        csv.writer(sys.stdout, lineterminator="\n").writerows(compare_rows(named, metrics))
    else:
        _print_table(compare_rows(named, metrics), sys.stdout, [label for label, _ in named])
        if len(named) > 1:
            print()
            for line in sentences(compare_stats(named, metrics)):
                print(line)
    if args.plot is not None:
        # with --json/--csv stdout is data: the paths go to stderr
        out = sys.stderr if (args.json or args.csv) else sys.stdout
        if not (args.json or args.csv):
            print()
        for path in plot_compare(named, args.run_dirs, metrics, args.plot):
            print(path, file=out)
    return 0


def _check_plot_dir(path):
    """--plot DIR is a folder or can be made one (its parent exists)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--plot {path!r} is not a folder")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--plot {path!r}: its parent folder {parent!r} does not exist")
