"""The cluster part of a run (``spec.cluster``): the network across servers, CPU on every server,
the clock offsets and the tunnels' warnings (docs/scale.md). ``experiments.run_lab`` calls it at
three points: ``network`` (instead of ``LabNetwork``), ``started`` and ``stopped``.
"""
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
                          run_dir=run.dir, controller=controller)


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
                            "versions": facts["versions"]} if facts else {"error": error})
    return {"cluster": {"servers": list(spec.cluster.servers),
                        "placement": spec.cluster.placement,
                        "measured": time.time(), "clocks": offsets}}
