"""The faults of a run (``experiments.run_lab.Run``): each one applied and its effect confirmed,
or the reason it could not be.

``FaultActions`` is a part of ``Run`` (a mixin: it uses the run's lab, balancer, processes and
controller). ``Run._apply`` calls ``_do_fault`` at the fault's time; a returned reason (or an
exception) fails the run, or skips an ``optional`` fault. A fault counts as applied only once
its effect is confirmed: a killed backend reaped, a restored one answering its health URL, a
backend's fault mode acknowledged by it, both ends of a link in the new state, the controller
process gone, the controller API's answer, or every builtin proxy worker's reload logged.
"""
import json
import signal
import time

from experiments import run_plan as plan
from experiments import spec_checks
from experiments.spec_models import NETEM_FAULTS
from topologies import capabilities, graphs

# Past this a fault's effect counts as not confirmed (a kill not reaped, a reload not logged).
FAULT_CONFIRM_SEC = 5.0
# What the builtin proxy logs per worker on SIGHUP (lb_apps.proxy.server.ProxyServer.reload).
RELOADED = "reloaded config"
RELOAD_REJECTED = "reload rejected"


def _count_lines(path, *needles):
    """Return how many lines of ``path`` contain each of ``needles`` (0s when it is missing)."""
    counts = [0] * len(needles)
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            for line in fp:
                for i, needle in enumerate(needles):
                    counts[i] += needle in line
    except OSError:
        pass
    return counts


def _last_line(path, needle):
    """Return the last line of ``path`` that contains ``needle`` ("" when none)."""
    found = ""
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            for line in fp:
                if needle in line:
                    found = line.strip()
    except OSError:
        pass
    return found


def no_netem(action):
    """Why ``action`` (a NETEM_FAULTS action) cannot run here, or None when tc has netem."""
    if capabilities.qdisc_available("netem"):
        return None
    return (f"{action} needs tc's netem qdisc (sch_netem), which this kernel does not have "
            f"(lblab doctor says so); mark it optional: true to run without it")


class FaultActions:
    """How ``Run`` applies each fault action (see the module docstring)."""

    def _faults_this_machine_cannot_do(self):
        """Return why a (not optional) fault of the spec cannot run on this machine, or None:
        checked before the lab is built, as a topology's link parameters are."""
        for fault in self.spec.faults:
            why = no_netem(fault.action) if fault.action in NETEM_FAULTS else None
            if why and not fault.optional:
                return (f"fault {fault.action} {fault.target} at {fault.at_s:g} s cannot be "
                        f"applied on this machine: {why}")
        return None

    def _do_fault(self, fault):
        """Apply a fault; return None once it took effect, or why it cannot (or raise)."""
        action, target = fault.action, fault.target
        why = spec_checks.balancer_cannot(self.balancer, action)
        if why:
            return f"balancer {self.balancer.name!r} cannot {action}: {why}"
        if action == "kill_backend":
            return self._kill_backend(target)
        if action == "restore_backend":
            return self._restore_backend(target)
        if action == "backend_fault":
            return self._backend_fault(target, fault.mode, fault.value)
        if action in NETEM_FAULTS:
            return self._link_netem(fault)
        if action in ("link_down", "link_up"):
            return self._set_link(target, "down" if action == "link_down" else "up")
        if action == "stop_controller":
            if self.controller is None:
                return "the controller is not running"
            proc = self.controller.proc
            self._stop_controller()
            if proc is not None and proc.poll() is None:
                return f"the controller (pid {proc.pid}) is still running after SIGTERM/SIGKILL"
            return None
        weight = 0 if action == "drain_backend" else fault.value
        if self.balancer.layer == "l4":
            if self.controller is None:
                return "the controller is not running (stopped by an earlier fault?)"
            host = self.roles.backends[target]
            self._controller_api("PUT", f"/services/{plan.SERVICE_NAME}/backends/{host}",
                                 {"weight": int(round(weight))} if weight else {"drain": True})
            return None
        return self._reload_weight(target, weight)

    def _kill_backend(self, target):
        """SIGKILL the backend (a crash: no draining, open connections reset) and reap it."""
        proc = self.backends[target]
        if proc.poll() is not None:
            return f"{target} was not running (it had exited with status {proc.returncode})"
        proc.kill()
        proc.wait(FAULT_CONFIRM_SEC)
        return None

    def _restore_backend(self, target):
        """Start the backend again (records in ``backend-<name>-<n>.jsonl``) and wait until it
        answers its health URL: a restore is applied once the backend serves."""
        if self.backends[target].poll() is None:
            return f"{target} is running"
        index = [b.name for b in self.spec.backends].index(target)
        proc = self._start_backend(self.spec.backends[index], index)
        host = self.roles.backends[target]
        ip = self.graph.nodes[host]["ip"]
        self._wait_http(self.lab.host(host), f"http://{ip}:{plan.BACKEND_PORT}/health",
                        f"the restored backend {target}", proc)
        return None

    def _set_link(self, target, status):
        """Set both ends of every link between the two nodes of ``target`` ('a-b') to
        ``status`` and check that they are (Mininet's configLinkStatus only logs failures)."""
        pairs = self._link_pairs(*target.split("-"))
        if isinstance(pairs, str):
            return pairs
        for pair in pairs:
            for intf in pair:
                out = intf.ifconfig(status).strip()
                if out:
                    return f"ip link set {intf.name} {status}: {out}"
                if intf.isUp() != (status == "up"):
                    return f"{intf.name} is still {'down' if status == 'up' else 'up'}"
        return None

    def _link_pairs(self, a, b):
        """Return the (interface, interface) pairs of the links between nodes ``a`` and
        ``b``, or why there are none."""
        net = self.lab.net
        if a not in net.nameToNode or b not in net.nameToNode:
            return f"no node {a if a not in net.nameToNode else b!r} in this lab"
        pairs = net.nameToNode[a].connectionsTo(net.nameToNode[b])
        return pairs or f"{a} and {b} are not connected in this lab"

    def _reload_weight(self, target, weight):
        """Builtin proxy: rewrite its config with the new weight (0 removes the backend: a
        drain) and reload it (SIGHUP); applied once every worker logged the reload. The new
        config is checked first, so one the proxy would reject fails here, naming why."""
        from lb_apps.l7config import L7ConfigError, parse_l7_config
        if self.proxy is None or self.proxy.poll() is not None:
            return "the builtin proxy is not running"
        weights = dict(self.weights, **{target: weight})
        data = plan.proxy_config(self.spec, self.balancer, self.graph, self.roles,
                                 backends=weights)
        try:
            workers = parse_l7_config(data, "the proxy config with the new weights").workers
        except L7ConfigError as exc:
            return f"the proxy would reject its new config: {exc}"
        log = self.path("logs", "proxy.log")
        before = _count_lines(log, RELOADED, RELOAD_REJECTED)
        path = self.path("proxy.json")
        with open(path, "w", encoding="utf-8") as fp:
            json.dump(data, fp, sort_keys=True, indent=1)
        self.weights = weights
        self.proxy.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + FAULT_CONFIRM_SEC
        while True:
            reloaded, rejected = _count_lines(log, RELOADED, RELOAD_REJECTED)
            if rejected > before[1]:
                return f"the proxy rejected its new config: {_last_line(log, RELOAD_REJECTED)}"
            if reloaded - before[0] >= workers:
                return None
            if self.proxy.poll() is not None:
                return f"the proxy exited with status {self.proxy.returncode} on reload"
            if time.monotonic() > deadline:
                return (f"the proxy did not log its reload within {FAULT_CONFIRM_SEC:g} s "
                        f"({reloaded - before[0]} of {workers} workers)")
            time.sleep(0.02)

    def _backend_fault(self, target, mode, delay_ms):
        """Switch a running backend's fault mode (its ``POST /admin/fault``), asked from its
        own host; applied once the backend answers with the new mode."""
        if self.backends[target].poll() is not None:
            return f"{target} is not running"
        host = self.roles.backends[target]
        ip = self.graph.nodes[host]["ip"]
        query = f"mode={mode}" + ("" if delay_ms is None else f"&delay_ms={delay_ms:g}")
        out = self.lab.host(host).cmd(
            f"curl -s -X POST --max-time {FAULT_CONFIRM_SEC:g} -w '\\n%{{http_code}}' "
            f"'http://{ip}:{plan.BACKEND_PORT}/admin/fault?{query}'")
        body, _, status = out.strip().rpartition("\n")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status.strip() != "200" or not isinstance(answer, dict) or answer.get("fault") != mode:
            return f"{target}'s /admin/fault answered {status.strip() or 'nothing'}: " \
                   f"{body.strip()[:200]}"
        return None

    def _link_netem(self, fault):
        """Set a link's netem delay (ms) or loss (%) on both of its ends; the other parameter
        keeps its value (the topology's at first, and so does its queue limit). Under an HTB rate limit (Mininet's TCLink
        puts one at ``5:``) netem goes below it, else at the root. Applied once ``tc`` shows
        netem on every end."""
        why = no_netem(fault.action)
        if why:
            return why
        a, b = fault.target.split("-")
        pairs = self._link_pairs(a, b)
        if isinstance(pairs, str):
            return pairs
        links = vars(self).setdefault("_netem_links", {})
        edge = self.graph.edges[a, b]
        state = links.setdefault(frozenset((a, b)), {
            "delay": graphs.parse_delay_ms(edge.get("delay")) or 0.0,
            "loss": edge.get("loss") or 0.0})
        state["delay" if fault.action == "link_delay" else "loss"] = fault.value
        for pair in pairs:
            for intf in pair:
                shown = intf.node.cmd(f"tc qdisc show dev {intf.name}")
                parent = "parent 5:1" if " htb 5:" in shown else "root"
                limit = f" limit {edge['max_queue']}" if edge.get("max_queue") else ""
                out = intf.node.cmd(
                    f"tc qdisc replace dev {intf.name} {parent} handle 10: netem "
                    f"delay {state['delay']:g}ms loss {state['loss']:g}%{limit}").strip()
                if out:
                    return f"tc on {intf.name}: {out}"
                if "netem" not in intf.node.cmd(f"tc qdisc show dev {intf.name}"):
                    return f"tc shows no netem on {intf.name}"
        return None
