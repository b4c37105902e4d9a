"""``lblab controller --config FILE``: run the os-ken balancer app (OpenFlow 1.3).

os-ken 4.x ships no ``osken-manager``: this module parses our config, sets os-ken's OpenFlow
listen address/port (``CONF.ofp_listen_host``/``CONF.ofp_tcp_listen_port``) and starts the app
the way ``AppManager.run_apps`` does. os-ken runs on native threads (``OSKEN_HUB_TYPE=native``,
its default); that variable must be set before os-ken is imported, so it is set here first.

SIGTERM ends the process with status 0 and SIGINT with 130, after closing the JSON API (see
:func:`run` for why the process ends with ``os._exit``). The switches keep their flows
(docs/controller.md, "Stopping the controller").
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading

os.environ.setdefault("OSKEN_HUB_TYPE", "native")

from controllers.config import load_config, with_overrides  # noqa: E402
from lblab_core import entry  # noqa: E402

APP_MODULE = "controllers.app"
STOP_STATUS = {signal.SIGTERM: 0, signal.SIGINT: 130}   # exit status per stop signal
SIGNAL_POLL_SEC = 0.2   # the main thread looks for a received stop signal this often
LOG = logging.getLogger("lblab.controller")


def build_parser():
    """Return the argparse parser of ``lblab controller``."""
    parser = argparse.ArgumentParser(
        prog="lblab controller",
        description="Run the os-ken L2/L3/L4 load balancer (OpenFlow 1.3) for the services "
                    "and topology in a config file. See docs/controller.md.")
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="controller config (YAML or JSON): controller, topology, services")
    parser.add_argument("--ofp-port", type=int, default=None, metavar="PORT",
                        help="OpenFlow listen port (overrides controller.ofp_port)")
    parser.add_argument("--api-port", type=int, default=None, metavar="PORT",
                        help="JSON API port on controller.api_host (0 = no API)")
    parser.add_argument("--check", action="store_true",
                        help="run every check a start runs (config, port flags, the balancer "
                             "core), print a summary and exit")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def prepare(args):
    """Everything a start does before os-ken runs: read and check the config, apply the port
    flags (checked like the file's settings), and build the app's balancer core once (what
    ``controllers.app`` does when os-ken instantiates it).

    Args:
        args (argparse.Namespace): the parsed arguments.
    Returns:
        controllers.config.Config: the config to run.
    Raises:
        controllers.config.ConfigError: every problem (a ``UsageError``: one line each, exit 2).
    """
    from controllers.decisions import Core
    from lb_apps.balancing import make_balancer
    overrides = {name: value for name, value in (("ofp_port", args.ofp_port),
                                                 ("api_port", args.api_port))
                 if value is not None}
    config = with_overrides(load_config(args.config), **overrides)
    Core(config, make_balancer)
    return config


def main(argv):
    """Run the controller until interrupted (``--check``: run every check, print a summary).

    Args:
        argv (list[str]): arguments after ``lblab controller``.
    Returns:
        int: exit status.
    Raises:
        lblab_core.errors.UsageError: bad arguments or config (one line per problem, exit 2).
    """
    args = build_parser().parse_args(argv)
    config = prepare(args)
    settings = config.controller
    if args.check:
        print(json.dumps({
            "ofp": f"{settings.ofp_host}:{settings.ofp_port}",
            "api": f"{settings.api_host}:{settings.api_port}" if settings.api_port else None,
            "switches": sum(1 for _, d in config.graph.nodes(data=True)
                            if d["kind"] == "switch"),
            "services": {s.name: f"{s.vip} {s.protocol}/{s.port} {s.mode} {s.algorithm} "
                                 f"{'conntrack ' if s.conntrack else ''}"
                                 f"{len(s.backends)} backends" for s in config.services},
        }, indent=2, sort_keys=True))
        return 0
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(config)  # ends the process on SIGTERM/SIGINT
    return 0


def run(config):
    """Start os-ken with the balancer app and serve until SIGTERM or SIGINT, then end the process.

    os-ken's native hub cannot stop a thread (``hub.kill`` is a no-op) and the app's tick, stats
    and switch threads never end, so after ``AppManager.run_apps`` returned the interpreter would
    wait for them forever (and without a handler SIGTERM kills the process, status -15). So the
    apps are started here as ``run_apps`` starts them, the main thread waits for a stop signal,
    closes the JSON API, flushes the log and leaves with ``os._exit``: 0 for SIGTERM, 130 for
    SIGINT. The kernel closes the OpenFlow connections; what the switches keep is in
    docs/controller.md.

    Args:
        config (controllers.config.Config): the parsed config.
    Returns:
        Never: the process ends here.
    """
    stop = threading.Event()
    received = []

    def on_signal(signum, _frame):
        received.append(signum)
        stop.set()

    for signum in STOP_STATUS:
        signal.signal(signum, on_signal)

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    import os_ken.controller.controller  # noqa: F401 -- registers the ofp_* options

    from controllers import app, datapath

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", config.controller.ofp_host)
    cfg.CONF.set_override("ofp_tcp_listen_port", config.controller.ofp_port)
    app.configure(config)
    datapath.install()
    manager = AppManager.get_instance()
    manager.load_apps([APP_MODULE])
    manager.instantiate_apps(**manager.create_contexts())
    # Wait in short slices: the kernel may deliver the signal to any of the app's threads, and
    # then only the C-level flag is set; the Python handler runs once the main thread executes
    # bytecode again, which a main thread blocked in one long lock wait never does (a SIGTERM
    # in CI went unanswered for 30 s, until a second signal happened to reach this thread).
    while not stop.wait(SIGNAL_POLL_SEC):
        pass
    signum = received[0]
    LOG.info("lblab controller: stopping on %s", signal.Signals(signum).name)
    for instance in list(manager.applications.values()):
        server = getattr(instance, "api_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STOP_STATUS[signum])


if __name__ == "__main__":
    # `python -m controllers.launcher ...` (how the runner starts it) is `lblab controller ...`
    sys.exit(entry.run("controller", main))
