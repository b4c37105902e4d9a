"""The cluster part of a run (``spec.cluster``): the network across servers, CPU on every server,
the clock offsets and the tunnels' warnings (docs/scale.md). ``experiments.run_lab`` calls it at
these points: ``controller_host`` (where an L4 controller listens), ``network`` (instead of
``LabNetwork``), ``start_engine`` (HAProxy/nginx on the lb host, wherever it runs), ``started``
and ``stopped``.
"""
import os
import subprocess
import sys
import threading
import time

from topologies.cluster import placement as P
from topologies.cluster import servers as CS
from topologies.cluster import ssh as S

CPU_SAMPLE_SEC = 0.5
_CPU_LOOP = ("import psutil,sys,time\npsutil.cpu_percent(None)\nwhile True:\n"
             " time.sleep({dt})\n print('%.3f %.1f' % (time.time(), psutil.cpu_percent(None)),"
             " flush=True)\n")


class ClusterError(RuntimeError):
    """A cluster step of a run failed; the message names the server and why."""


def controller_host(run):
    """Where the L4 controller listens: 127.0.0.1 on one server; with remote servers, this
    machine's address as they see it (``$SSH_CONNECTION`` there), which this machine's own
    switches reach as well; 0.0.0.0 when servers see different addresses. Each server's
    address is kept on the run (``run.controller_at``) for its switches and ``meta.json``."""
    run.controller_at = {}
    cluster = run.spec.cluster
    if cluster is None:
        return "127.0.0.1"
    ssh_config = S.config_path(cluster.ssh_config)
    for server in cluster.servers:
        if not S.is_local(server):
            try:
                run.controller_at[server] = CS.seen_address(server, ssh_config)
            except (ValueError, subprocess.TimeoutExpired) as exc:
                raise ClusterError(f"the controller's address for {server}: {exc}") from None
    return CS.controller_listen(run.controller_at)


def network(run, controller):
    """``LabNetwork`` for a spec without ``cluster``, else ``ClusterNetwork`` with its placement."""
    from topologies.network import LabNetwork
    cluster = run.spec.cluster
    if cluster is None:
        return LabNetwork(run.graph, controller=controller)
    from topologies.cluster.network import ClusterNetwork
    roles = {c: "client" for c in run.roles.clients}
    roles.update({h: "backend" for h in run.roles.backends.values()})
    if run.roles.lb:
        roles[run.roles.lb] = "lb"
    wanted = cluster.roles.model_dump(exclude_none=True) if cluster.roles else None
    placed = P.place(run.graph, cluster.servers, cluster.placement, roles, wanted, run.seed)
    return ClusterNetwork(run.graph, cluster.servers, placed, ssh_config=cluster.ssh_config,
                          run_dir=run.dir, controller=controller,
                          controller_at=getattr(run, "controller_at", None))


def start_engine(run, engine, cfg):
    """Start HAProxy or nginx on the run's lb host (``lb_apps.engines.proc.start_engine``). On a
    remote server: the run folder it writes here (configuration, TLS material, temp folders)
    is copied to that server's run folder with its paths rewritten, checked and started there
    in the lb host's namespace, and its readiness (nginx's pid file, HAProxy's answer on its
    stats socket) is asked there; its logs come back at the end like every remote file."""
    from lb_apps.engines import proc as E
    from lb_apps.engines import render
    lab, host, run_dir = run.lab, run.roles.lb, run.path(engine)
    if not getattr(lab, "is_remote", lambda h: False)(host):
        return E.start_engine(engine, cfg, run_dir, popen=lab.host(host).popen)
    server = lab.server_of(host)
    run_dir = os.path.abspath(run_dir)
    config_path = E.prepare_run_dir(engine, cfg, run_dir)
    lab.push_tree(server, run_dir)
    check = lab.run_in_host(host, E._check_command(engine, config_path, run_dir),
                            timeout=E.CHECK_TIMEOUT_SEC)
    if check.returncode:
        raise render.EngineError(f"{engine}: config check failed on {server} (exit "
                                 f"{check.returncode}) for {lab.remote_path(server, config_path)}"
                                 f": {(check.stdout + check.stderr).strip()}")
    ready = lab.remote_path(server, E._ready_path(engine, run_dir))
    log_path = os.path.join(run_dir, E.ENGINE_LOG)
    with open(log_path, "ab") as log:
        process = lab.popen(host, E._run_command(engine, config_path, run_dir),
                            stdout=log, stderr=subprocess.STDOUT)
    handle = E.EngineProcess(engine, process, run_dir, config_path, log_path)
    deadline = time.monotonic() + E.READY_TIMEOUT_SEC
    while not _remote_ready(lab, host, engine, ready):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with status {process.returncode}" if process.poll() is not None
                   else f"was not ready ({server}:{ready} missing) after "
                        f"{E.READY_TIMEOUT_SEC:g} s")
            E.stop_engine(handle)
            raise render.EngineError(f"{engine} on {server}: {why}; log {log_path}: "
                                     f"{E._tail(log_path)}")
        time.sleep(E.POLL_SEC)
    return handle


_HAPROXY_READY = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(1)\n"
                  "s.connect(sys.argv[1])\ns.sendall(b'show info\\n')\n"
                  "sys.exit(0 if b'Name: HAProxy' in s.recv(4096) else 1)\n")


def _remote_ready(lab, host, engine, path):
    """Is the engine on a remote lb host ready (``lb_apps.engines.proc._is_ready``, there)?"""
    server = lab.server_of(host)
    argv = (["test", "-e", path] if engine == "nginx"
            else [sys.executable, "-c", _HAPROXY_READY, path])
    try:
        return S.run(server, argv, lab.ssh_config, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class RemoteCpu(threading.Thread):
    """Whole-machine CPU of one remote server (psutil there), streamed over SSH."""

    def __init__(self, server, ssh_config):
        super().__init__(daemon=True)
        self.server = server
        self.samples = []
        self.proc = subprocess.Popen(
            S.remote(server, [sys.executable, "-c", _CPU_LOOP.format(dt=CPU_SAMPLE_SEC)],
                     ssh_config),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run(self):
        for line in self.proc.stdout:
            try:
                t, v = line.split()
                self.samples.append((float(t), float(v)))
            except ValueError:
                continue

    def stop(self):
        self.proc.kill()     # the remote loop ends when its output pipe closes
        self.proc.wait()
        self.join(2.0)


def started(run, lab, meta):
    """After the lab is up: the cluster's facts in meta, CPU samplers on the remote servers."""
    info = getattr(lab, "cluster_info", None)
    if info is None:
        return []
    meta["cluster"] = {"servers": list(lab.servers), "placement": info["placement"],
                       "setup_s": info["setup_s"], "server_info": info["servers"],
                       "cross_links": info["cross_links"], "cpu": {}}
    if lab.controller is not None:
        meta["cluster"]["controller"] = {"listen": lab.controller[0], "port": lab.controller[1],
                                         "by_server": dict(lab.controller_at)}
    samplers = []
    for server in lab.remote_servers():
        sampler = RemoteCpu(server, lab.ssh_config)
        lab.record.add_process(sampler.proc.pid, f"ssh-cpu:{server}")   # for `lblab clean`
        sampler.start()
        samplers.append(sampler)
    return samplers


def stopped(run, samplers, meta, saturated_percent):
    """Stop the samplers; per-server CPU, saturation on any server, clock and link warnings."""
    cluster = meta.get("cluster")
    if cluster is None:
        return
    fid = meta["fidelity"]
    for sampler in samplers:
        sampler.stop()
        values = [v for _, v in sampler.samples]
        if not values:
            continue
        mean = round(sum(values) / len(values), 1)
        cluster["cpu"][sampler.server] = {"mean": mean, "max": max(values), "n": len(values)}
        if mean >= saturated_percent:
            fid["saturated"] = True
            fid["warnings"].append(
                f"server {sampler.server}'s CPU was saturated (mean {mean}% during the run): "
                f"the numbers measure that machine, not the balancer; place fewer nodes there")
    shortest = min([run.spec.duration_s] + [f.at_s for f in run.spec.faults if f.at_s > 0])
    for server, facts in cluster["server_info"].items():
        warning = CS.clock_warning(facts["clock_offset_s"], shortest, server)
        if warning:
            fid["warnings"].append(warning)
    fid["warnings"] += CS.link_warnings(cluster["cross_links"], cluster["server_info"])


def manifest(spec):
    """The manifest's ``cluster`` entry: servers, placement and each server's clock offset."""
    if spec.cluster is None:
        return {}
    offsets = {}
    for server in spec.cluster.servers:
        facts, error = CS.server_info(server, S.config_path(spec.cluster.ssh_config))
        offsets[server] = ({"clock_offset_s": facts["clock_offset_s"], "rtt_s": facts["rtt_s"],
                            "versions": facts["versions"],
                            # where its switches reach an L4 controller on this machine
                            "this_machine_as": facts.get("this_machine_as")}
                           if facts else {"error": error})
    return {"cluster": {"servers": list(spec.cluster.servers),
                        "placement": spec.cluster.placement,
                        "measured": time.time(), "clocks": offsets}}
