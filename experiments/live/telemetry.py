"""The 1 Hz telemetry of a run: Open vSwitch counters, controller and proxy state, into
``raw/<run>/telemetry.jsonl`` (fields: docs/data.md#telemetryjsonl).

A thin shell around :mod:`experiments.live.parsers`. Each second one thread reads, per switch,
``ovs-ofctl -O OpenFlow13 dump-ports`` (port byte counters, live: the OVSDB ``statistics``
column is refreshed only every 5 s) and, for L4, ``dump-aggregate`` (flow-table size), one
``ovs-appctl dpctl/dump-conntrack`` (L4: entries per backend), the controller's ``GET /stats``
(packet-ins; HTTP on 127.0.0.1, no process) and the L7 proxy's own statistics: the builtin
proxy's stats ports and nginx's ``stub_status`` (a socket made inside the lb host's network
namespace with ``setns``, no process: 127.0.0.1 there, which no client reaches), HAProxy's
``show stat`` on its stats socket (a unix socket file in the engine's run directory). It
measures its own cost: the thread's CPU time plus that of every process it started
(``os.wait4``), written in the last line. Needs root and a running lab; nothing here changes
the lab.
"""
import ctypes
import json
import os
import socket
import subprocess
import threading
import time

from experiments.live import parsers

INTERVAL_S = 1.0
TELEMETRY_VERSION = 1
COMMAND_TIMEOUT_S = 2.0
PROXY_TIMEOUT_S = 0.5
CLONE_NEWNET = 0x40000000
_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(pid):
    """Return a TCP socket created in the network namespace of process ``pid``.

    Only the calling thread changes namespace, and only for the ``socket()`` call; it is back
    in its own before this returns (if it cannot get back, the process is in an unknown state:
    the error propagates and the sampler stops).
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def http_get_in_netns(pid, port):
    """Return the body of ``GET /`` on 127.0.0.1:``port`` in the network namespace of ``pid``
    (bytes), or None for an answer other than 200."""
    sock = socket_in_netns(pid)
    try:
        sock.settimeout(PROXY_TIMEOUT_S)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = read_to_end(sock)
    finally:
        sock.close()
    return parsers.http_json_body(answer)


def read_to_end(sock):
    """Read a stream socket until the peer closes it; return the bytes."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def proxy_stats(pid, port):
    """Return the builtin proxy's stats (dict) from inside the lb host's namespace, or None."""
    body = http_get_in_netns(pid, port)
    return None if body is None else json.loads(body)


def unix_command(path, command):
    """Send one command to a unix stream socket (HAProxy's stats socket); return the whole
    answer (str). The socket is a file: reached from here, whatever the namespace."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PROXY_TIMEOUT_S)
        sock.connect(path)
        sock.sendall(command)
        return read_to_end(sock).decode("utf-8", "replace")


def builtin_source(pid, ports):
    """The builtin proxy's ``proxy`` source: every worker's stats port, in the lb host."""
    def read():
        return parsers.proxy_state([proxy_stats(pid, port) for port in ports])
    return read


def haproxy_source(socket_path, cache):
    """HAProxy's ``proxy`` source: ``show stat`` on its stats socket (``cache``: whether the
    config has a cache; without one the cache counters are left out)."""
    def read():
        state = parsers.haproxy_stat(unix_command(socket_path, b"show stat\n"))
        if not cache:
            state["cache"] = None
        return state
    return read


def nginx_source(pid, port):
    """nginx's ``proxy`` source: its ``stub_status`` page on 127.0.0.1:``port`` in the lb
    host (the config's ``stats`` address)."""
    def read():
        body = http_get_in_netns(pid, port)
        if body is None:
            raise ValueError(f"stub_status on 127.0.0.1:{port} did not answer 200")
        return parsers.nginx_stub_status(body.decode("utf-8", "replace"))
    return read


class Sampler(threading.Thread):
    """Samples a running lab every INTERVAL_S into a JSONL file until :meth:`stop`.

    Args:
        path (str): the ``telemetry.jsonl`` to create (must not exist).
        switches (list[str]): the bridges.
        layer (str): the balancer's layer (``l4`` reads flow tables and conntrack).
        backend_ips (dict): ``{ip: backend name}``.
        controller_stats (callable|None): returns the controller's ``GET /stats`` JSON.
        proxy (callable|None): returns the L7 proxy's state (the sample's ``proxy``):
            :func:`builtin_source`, :func:`haproxy_source` or :func:`nginx_source`.
        on_sample (callable|None): called with each sample dict (the live view), in this
            thread; it must be quick.
        conntrack (bool): the balancer uses the switch's connection tracking (L4): read it;
            else ``conntrack`` is ``{}``.
    """

    def __init__(self, path, switches, layer, backend_ips, controller_stats=None, proxy=None,
                 on_sample=None, conntrack=True):
        super().__init__(daemon=True, name="lblab-telemetry")
        self.path = path
        self.switches = list(switches)
        self.layer = layer
        self.backend_ips = dict(backend_ips)
        self.controller_stats = controller_stats
        self.proxy = proxy
        self.on_sample = on_sample
        self.conntrack = conntrack
        self.samples = 0
        self.child_cpu_s = 0.0
        self.thread_cpu_s = 0.0
        self.started = None
        self.failure = None
        self._halt = threading.Event()
        self._fp = open(path, "x", encoding="utf-8")

    # -- sources ---------------------------------------------------------------------------
    def _command(self, args):
        """Run ``args``; return its stdout (str), adding its CPU time to ``child_cpu_s``."""
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        timer = threading.Timer(COMMAND_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            out = proc.stdout.read()
        finally:
            timer.cancel()
            proc.stdout.close()
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.child_cpu_s += usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            raise OSError(f"{' '.join(args[:3])} exited with status {proc.returncode}")
        return out.decode("utf-8", "replace")

    def sample(self):
        """Read every source once; return the sample dict (a failed source is None and named
        in ``problems``)."""
        problems = []
        rec = {"v": TELEMETRY_VERSION, "kind": "sample", "t": time.time(), "ports": {},
               "flows": None, "packet_ins": None, "conntrack": None, "proxy": None}
        for sw in self.switches:
            try:
                rec["ports"][sw] = parsers.dump_ports(
                    self._command(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", sw]))
            except OSError as exc:
                problems.append(f"ports {sw}: {exc}")
        if self.layer == "l4":
            rec["flows"] = {}
            for sw in self.switches:
                try:
                    rec["flows"][sw] = parsers.flow_count(
                        self._command(["ovs-ofctl", "-O", "OpenFlow13", "dump-aggregate", sw]))
                except OSError as exc:
                    problems.append(f"flows {sw}: {exc}")
            if not self.conntrack:
                rec["conntrack"] = {}
            else:
                try:
                    rec["conntrack"] = parsers.conntrack_by_backend(
                        self._command(["ovs-appctl", "dpctl/dump-conntrack"]),
                        self.backend_ips)
                except OSError as exc:
                    problems.append(f"conntrack: {exc}")
        if self.controller_stats is not None:
            try:
                rec["packet_ins"] = parsers.controller_packet_ins(self.controller_stats())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"controller: {exc}")
        if self.proxy is not None:
            try:
                rec["proxy"] = self.proxy()
            except (OSError, ValueError) as exc:
                problems.append(f"proxy: {exc}")
        rec["problems"] = problems
        return rec

    # -- the thread ------------------------------------------------------------------------
    def run(self):
        self.started = time.time()
        cpu0 = time.thread_time()
        next_t = time.monotonic()
        try:
            while not self._halt.is_set():
                rec = self.sample()
                self.thread_cpu_s = time.thread_time() - cpu0
                rec["cpu_s"] = round(self.thread_cpu_s + self.child_cpu_s, 4)
                self._fp.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
                self._fp.flush()
                self.samples += 1
                if self.on_sample is not None:
                    try:
                        self.on_sample(rec)
                    except Exception as exc:  # noqa: BLE001 - the live view never stops the run
                        self.failure = f"live view: {type(exc).__name__}: {exc}"
                        self.on_sample = None
                next_t += INTERVAL_S
                self._halt.wait(max(0.0, next_t - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - telemetry is a record, not the experiment
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.thread_cpu_s = time.thread_time() - cpu0

    def stop(self):
        """Stop sampling, write the closing ``end`` line and close the file; return it."""
        self._halt.set()
        if self.is_alive():
            self.join(COMMAND_TIMEOUT_S * 4)
        wall = time.time() - (self.started or time.time())
        cpu = self.thread_cpu_s + self.child_cpu_s
        end = {"v": TELEMETRY_VERSION, "kind": "end", "t": time.time(), "samples": self.samples,
               "wall_s": round(wall, 3), "cpu_s": round(cpu, 4),
               "cpu_percent": round(100.0 * cpu / wall, 3) if wall > 0 else None,
               "failure": self.failure}
        if not self._fp.closed:
            self._fp.write(json.dumps(end, sort_keys=True, separators=(",", ":")) + "\n")
            self._fp.close()
        return end


def uses_conntrack(controller_config):
    """Return whether any service of a controller config (dict) goes through the switch's
    connection tracking (``controllers.pipeline.tracks_connections``: l2, l4, proactive, a
    group with ``conntrack``)."""
    from controllers.config import ServiceSpec
    from controllers.pipeline import tracks_connections
    services = (controller_config or {}).get("services") or {}
    return any(tracks_connections(ServiceSpec.model_validate(svc))
               for svc in services.values())


def for_run(run, on_sample=None):
    """Return a started :class:`Sampler` for an ``experiments.run_lab.Run`` whose lab is up."""
    from experiments import run_plan as plan
    from topologies import graphs
    graph = run.graph
    switches = graphs.switches(graph)
    backend_ips = {graph.nodes[h]["ip"]: name for name, h in run.roles.backends.items()}
    controller = run.controller
    stats = None
    tracked = False
    if controller is not None:
        def stats():
            return controller.api("GET", "/stats", timeout=1.0)[1]
        try:
            tracked = uses_conntrack(controller.config)
        except ValueError:              # a config the controller took: read conntrack anyway
            tracked = True
    proxy = None
    if run.balancer.layer == "l7":
        config = plan.proxy_config(run.spec, run.balancer, graph, run.roles)
        l7stats = config.get("stats") or {}
        lb_pid = run.lab.host(run.roles.lb).pid
        engine = getattr(run, "engine", None)
        if run.proxy is not None and plan.proxy_stats_ports(config):
            proxy = builtin_source(lb_pid, plan.proxy_stats_ports(config))
        elif engine is not None and engine.engine == "haproxy":
            from lb_apps.engines.render import haproxy_socket_path
            proxy = haproxy_source(haproxy_socket_path(engine.run_dir),
                                   bool(config.get("cache")))
        elif engine is not None and engine.engine == "nginx" and l7stats.get("port"):
            proxy = nginx_source(lb_pid, l7stats["port"])
    sampler = Sampler(run.path("telemetry.jsonl"), switches, run.balancer.layer, backend_ips,
                      stats, proxy, on_sample, conntrack=tracked)
    sampler.start()
    return sampler
