"""``lblab view RESULTS_DIR``: replay a finished results folder in the live view's page.

Serves the same page as ``lblab run --live`` from the folder's raw data
(``experiments.live.replay``): frames by time for the page's slider, and the measurement
window's numbers as ``runs.csv``/``summary.csv`` give them. Needs no root and no lab; runs until
Ctrl-C.
"""
import argparse
import sys
import threading

from experiments.live import server as live_server
from experiments.live.replay import Replay


def build_parser():
    """Return the argparse parser of ``lblab view``."""
    parser = argparse.ArgumentParser(
        prog="lblab view",
        description="Replay a finished results folder in the live view's page, with a time "
                    "slider: serves it at http://127.0.0.1:8050/ (--live HOST:PORT to change) "
                    "until Ctrl-C. Read-only, no root. See docs/live.md.")
    parser.add_argument("results_dir", metavar="RESULTS_DIR",
                        help="a folder written by lblab run (results/<name>-<time>/)")
    parser.add_argument("--live", type=live_server.parse_address, metavar="HOST:PORT",
                        default=(live_server.DEFAULT_HOST, live_server.DEFAULT_PORT),
                        help=f"where to serve the page (default {live_server.DEFAULT})")
    return parser


def main(argv=None, stop=None):
    """Run ``lblab view``; returns 0 after Ctrl-C (or when ``stop``, an Event, is set)."""
    args = build_parser().parse_args(argv)
    source = Replay(args.results_dir)
    server = live_server.LiveServer(source, *args.live).start()
    print(f"lblab view: replaying {source.dir} ({len(source.metas)} runs) at {server.url}; "
          f"Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
