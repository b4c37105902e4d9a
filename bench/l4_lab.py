"""Shared set-up of the L4 controller benchmarks: one lb_lab, one controller, one service per mode.

Not a benchmark itself; ``bench/l4_connrate.py`` and ``bench/l4_throughput.py`` import it.
Every mode gets its own VIP and port, so one network and one controller serve all of them and
every figure of a run is measured side by side, against direct traffic to one backend.
"""
import contextlib
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from controllers import config as ctl_config  # noqa: E402
from controllers.harness import (ControllerProcess, HarnessError, dsr_commands,  # noqa: E402
                                 start_http_backend)
from topologies import graphs  # noqa: E402
from topologies.network import LabNetwork  # noqa: E402

# one service per name: (mode, algorithm, extra service keys)
SERVICES = {"l4": ("l4", "round_robin", {}), "l3": ("l3", "round_robin", {}),
            "l2": ("l2", "round_robin", {}), "group": ("group", "five_tuple_hash", {}),
            "group_ct": ("group", "five_tuple_hash", {"conntrack": True}),
            "proactive": ("proactive", "ip_prefix", {})}
MODES = tuple(SERVICES)
BASE_PORT = 80               # the services listen on BASE_PORT, BASE_PORT + 1, ...
DIRECT_PORT = 8000           # backends also listen here: a port no service matches
BACKENDS = ("h6", "h7", "h8", "h9")
BACKEND_IPS = ("10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9")


def vip_of(index):
    """Return the VIP of the index-th mode (10.0.0.100, .101, …)."""
    return f"10.0.0.{100 + index}"


def services(base_port, backends, algorithm=None, idle_timeout=5):
    """Return the services dict: one per name of SERVICES on ports base_port, base_port+1, …"""
    out = {}
    for i, (name, (mode, default_algorithm, extra)) in enumerate(SERVICES.items()):
        out[name] = {"vip": vip_of(i), "port": base_port + i, "mode": mode,
                     "algorithm": (algorithm or {}).get(name, default_algorithm),
                     "backends": {b: 1 for b in backends}, "idle_timeout": idle_timeout,
                     "health": {"kind": "none"}, **extra}
    return out


@contextlib.contextmanager
def balancer_lab(service_map, clients=4, backends=4, controller=None):
    """Yield (lab, controller) with every service up and backends configured for DSR
    (``controller``: more controller settings)."""
    graph = graphs.lb_lab(clients=clients, backends=backends)
    cfg = {"controller": {"packet_in_rate": 100000, "stats_interval": 0, **(controller or {})},
           "topology": ctl_config.graph_to_data(graph), "services": service_map}
    workdir = tempfile.mkdtemp(prefix="lblab-bench-")
    with ControllerProcess(cfg, workdir) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            if not ctl.wait_switches(graphs.switches(graph)):
                raise SystemExit(f"switches did not connect:\n{ctl.log_tail()}")
            for host in graphs.hosts(graph, "client"):
                # wrk closes each connection itself, so its side keeps TIME_WAIT: without reuse
                # a client runs out of source ports after ~28,000 connections to one address
                # (about 5 s at full rate here) and the run measures SYN retries instead
                lab.host(host).cmd("sysctl -qw net.ipv4.tcp_tw_reuse=1 "
                                   "net.ipv4.ip_local_port_range='1024 65535'")
            l2 = [s for s in service_map.values() if s["mode"] == "l2"]
            for host in graphs.hosts(graph, "backend"):
                for svc in l2:
                    lab.host(host).cmd("; ".join(dsr_commands(svc["vip"], f"{host}-eth0")))
            yield lab, ctl


def start_backends(lab, ports):
    """Start ``lblab backend`` on every port of every backend host; wait until all listen."""
    try:
        for host in BACKENDS:
            for port in ports:
                start_http_backend(lab, host, port)
    except HarnessError as exc:
        raise SystemExit(str(exc)) from None


def service_ports(base_port=BASE_PORT):
    """Return the ports of the services of :func:`services` plus the direct port."""
    return [base_port + i for i in range(len(MODES))] + [DIRECT_PORT]


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


_SPREAD_LUA = """-- thread i connects to the i-th address given in LBLAB_SPREAD (host:port,host:port,...)
local targets, next_target = {}, 1
for item in string.gmatch(os.getenv("LBLAB_SPREAD"), "[^,]+") do
   local host, port = string.match(item, "([^:]+):(%d+)")
   table.insert(targets, wrk.lookup(host, port)[1])
end
function setup(thread)
   thread.addr = targets[next_target]
   next_target = next_target % #targets + 1
end
"""


def wrk(lab, client, url, seconds, connections, close=True, threads=1, spread=None):
    """Run wrk from ``client``; return (requests/s, errors).

    Args:
        spread (list[str]|None): ``host:port`` targets; wrk's threads connect to them in turn
            (threads should be a multiple of their number). The URL then only names the path.
    """
    header = "-H 'Connection: close' " if close else ""
    script = env = ""
    if spread:
        path = os.path.join(tempfile.gettempdir(), "lblab-bench-spread.lua")
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(_SPREAD_LUA)
        script, env = f"-s {path} ", f"LBLAB_SPREAD={','.join(spread)} "
    out = lab.host(client).cmd(f"{env}wrk -t{threads} -c{connections} -d{seconds}s "
                               f"{script}{header}{url}")
    rps = _RPS.search(out)
    errors = sum(int(x) for x in (_ERRORS.search(out) or [0, 0, 0, 0, 0]).groups()) \
        if _ERRORS.search(out) else 0
    non2xx = int(_NON2XX.search(out).group(1)) if _NON2XX.search(out) else 0
    if rps is None:
        raise SystemExit(f"wrk gave no result:\n{out}")
    return float(rps.group(1)), errors + non2xx
