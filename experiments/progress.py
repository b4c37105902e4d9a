"""How ``lblab run`` shows progress and results on the terminal: a rich progress bar (or
nothing with --quiet/--json), the summary table, and the JSON summary.
"""
import os
import sys
import time

TERMINAL_DROPS = ("Mbit/s", "p50 ms", "Jain (clients)")     # HTTP runs only


class Quiet:
    """Progress sink that prints nothing."""

    def start(self, total, per_run):
        pass

    def run(self, i, name):
        pass

    def log(self, msg):
        pass

    def wait(self, msg):
        # quiet keeps stdout for the result; a batch waiting for another lab still says so
        print(f"lblab run: {msg}", file=sys.stderr, flush=True)

    def done(self, meta):
        pass

    def stop(self):
        pass


class RichProgress:
    """Terminal progress: current configuration and repetition, runs done, time left."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                                 TimeRemainingColumn(), console=self.console, transient=False)
        self.task = None
        self.t0 = time.monotonic()

    def start(self, total, per_run):
        self.console.print(f"{total} runs, about {total * per_run / 60:.1f} min")
        self.progress.start()
        self.task = self.progress.add_task("starting", total=total)

    def run(self, i, name):
        self.progress.update(self.task, description=name)

    def log(self, msg):
        elapsed = time.monotonic() - self.t0
        self.progress.console.print(f"  [dim]{elapsed:6.1f}s {msg}[/dim]", highlight=False)

    def wait(self, msg):
        """Waiting for the lab lock (before the first run): said in the bar and the log; the
        elapsed time counts the wait, the time left counts the runs still to do."""
        self.progress.update(self.task, description="waiting for the lab lock")
        self.log(msg)

    def done(self, meta):
        if meta["status"] != "ok":
            self.progress.console.print(f"[red]{meta['run']} failed: {meta['failure']}[/red]")
        self.progress.advance(self.task)

    def stop(self):
        self.progress.stop()


def summary_rows(summary):
    """Return ``(headers, rows)`` of the end-of-run table (mean [low, high] per configuration)."""
    from experiments import html_report
    return html_report._table(summary)


def print_summary(result, results_dir):
    """Print the summary table, the warnings and the report path (rich)."""
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if not console.is_terminal:
        # piped or logged: no terminal width to respect, keep the table on one line per row
        console = Console(width=140)
    if result.get("summary"):
        headers, rows = summary_rows(result["summary"])
        # the terminal gets the key columns; report.html and summary.csv have them all
        drops = TERMINAL_DROPS if "ok req/s" in headers else ()
        if "failed after kill" in headers:
            drops += ("errors",)
        keep = [i for i, h in enumerate(headers) if h not in drops]
        table = Table(title=f"{os.path.basename(results_dir)} (mean [95% interval])")
        table.add_column("configuration", no_wrap=True)
        table.add_column("reps", justify="right")
        for i in keep:
            table.add_column(headers[i], justify="right")
        for r in rows:
            table.add_row(r["config"], str(r["reps"]), *[r["cells"][i] for i in keep])
        console.print(table)
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {w}", markup=True, highlight=False)
    # plain print: a path rich wraps at the terminal width cannot be copied
    print(f"report: {result.get('report') or '(not built)'}", flush=True)


def json_summary(result, results_dir):
    """Return the ``--json`` output: folder, report, and per-configuration means and CIs."""
    out = {"results_dir": results_dir, "report": result.get("report"),
           "warnings": result.get("warnings", []), "configs": {}}
    for c in (result.get("summary") or {}).get("configs", []):
        out["configs"][c["config"]] = {k: v for k, v in c["aggregate"].items()
                                       if k != "backend_share"}
    out["failed_runs"] = [m["run"] for m in result.get("metas", []) if m["status"] != "ok"]
    return out
