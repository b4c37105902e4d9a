"""``ClusterNetwork``: ``LabNetwork`` across several servers, on Mininet's cluster edition.

Same contract as ``topologies.network.LabNetwork`` (a context manager that leaves nothing behind,
``popen``/``stop_process``/``host``), with each node on the server the placement gives it:

* before anything is created, each remote server's agent (``topologies.cluster.agent serve``,
  over SSH) takes that server's lab lock and writes its registry record; this machine's part is in
  the local record as for ``LabNetwork`` (with the SSH clients as processes);
* nodes, links and tunnels come from ``topologies.cluster.nodes`` (the cluster edition's classes,
  fixed); a link between servers is an SSH Ethernet tunnel;
* a process on a remote host runs with its files in that server's own run folder
  (``<state dir>/work/<run id>/``): arguments naming the local run folder are rewritten, input
  files there are copied over (their text rewritten the same way), and at the end the files the
  processes wrote come back into the local run folder;
* a remote process is a ``RemoteProcess``: its signals (a fault's SIGKILL, a reload's SIGHUP)
  travel as lines on its session's stdin to ``agent exec``, which sends them there; a SIGHUP
  first copies its input files over again (a reload reads them again);
* input files are copied with what they name: the files a JSON input names outside the run
  folder (a TLS ``cert`` and ``key``, a balancer's ``file``; relative ones from this machine's
  working folder) are copied
  to ``<run folder>/inputs/`` there and the copy names them there;
* with an OpenFlow controller, a remote server's switches connect to this machine's address as
  that server sees it (``controller_at``), not to 127.0.0.1;
* start-up measures each remote server's clock offset (the midpoint of an SSH round trip) and
  its SSH channel's latency and rate (``cluster_info``), which a cross-server link's tunnel
  cannot beat.
"""
import io
import json
import os
import signal
import subprocess
import tarfile
import time

from topologies import graphs, registry
from topologies.cluster import agent as cluster_agent
from topologies.cluster import nodes as cluster_nodes
from topologies.cluster import ssh as S
from topologies.network import (LabNetwork, NetworkError, link_options, root_interfaces,
                                terminate, wait_for, INTERFACE_GONE_SEC, STOP_GRACE_SEC,
                                _mininet)

TAP_BASE = 4000
PROBE_BYTES = 8 * 1024 * 1024
AGENT_TIMEOUT_SEC = 120.0


class RemoteProcess:
    """A process on a remote host, as a ``subprocess.Popen`` (its ssh client) whose signals go
    to the remote process: ``send_signal``/``kill``/``terminate`` write the signal's name on the
    session's stdin, where ``agent exec`` reads it. Its exit status comes back through ssh."""

    def __init__(self, proc, server, repush):
        self._proc = proc
        self.server = server
        self._repush = repush

    def __getattr__(self, name):
        return getattr(self._proc, name)

    def send_signal(self, sig):
        if self._proc.poll() is not None:
            return
        if sig == signal.SIGHUP:
            self._repush()     # a reload reads its configuration again: ship the new one first
        try:
            self._proc.stdin.write(cluster_agent.signal_line(sig).encode("ascii"))
            self._proc.stdin.flush()
        except (OSError, ValueError):   # the session has ended: so has the process
            pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


FILE_KEYS = ("cert", "key", "file")     # the keys of lblab's JSON inputs that name files


def _named_file(key, value):
    """The file a JSON string may name (a ``cert``/``key``/``file`` path, or the path of a
    ``file:PATH:CLASS`` balancer), or None; a relative one is relative to the runner's folder,
    as for a process started here."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("file:") and value.count(":") >= 2:
        return value[len("file:"):value.rindex(":")] or None
    return value if key in FILE_KEYS else None


def json_paths(data, key=None):
    """Every file path that decoded JSON ``data`` may name (pure; which exist is the caller's
    question)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in json_paths(v, k)]
    if isinstance(data, list):
        return [p for v in data for p in json_paths(v, key)]
    named = _named_file(key, data)
    return [named] if named else []


def replace_paths(data, mapping, key=None):
    """``data`` with every file path of ``json_paths`` found in ``mapping`` replaced (pure)."""
    if isinstance(data, dict):
        return {k: replace_paths(v, mapping, k) for k, v in data.items()}
    if isinstance(data, list):
        return [replace_paths(v, mapping, key) for v in data]
    named = _named_file(key, data)
    if named in mapping:
        return data.replace(named, mapping[named], 1)
    return data


class RemoteAgent:
    """One server's agent: JSON lines over an SSH session."""

    def __init__(self, server, ssh_config):
        self.server = server
        argv = S.ssh_base(server, ssh_config) + [
            " ".join(S.python_argv("topologies.cluster.agent", "serve"))]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     start_new_session=True)

    def call(self, op, **args):
        if self.proc.poll() is not None:
            raise NetworkError(f"the lblab agent on {self.server} exited "
                               f"({self.proc.returncode}): {self.proc.stderr.read().strip()}")
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise NetworkError(f"the lblab agent on {self.server} did not answer {op} "
                               f"(exit {self.proc.returncode}): "
                               f"{self.proc.stderr.read().strip()[-500:]}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise NetworkError(f"{self.server}: {op}: {answer['error']}")
        return answer

    def close(self):
        """End the session: the agent cleans what its record still lists, then exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def clock_offset(agent):
    """Return ``(offset_s, rtt_s)``: the server's clock minus ours, at the round trip's middle."""
    best = None
    for _ in range(5):
        t0 = time.time()
        remote = agent.call("time")["time"]
        t1 = time.time()
        if best is None or t1 - t0 < best[1]:
            best = (remote - (t0 + t1) / 2, t1 - t0)
    return round(best[0], 6), round(best[1], 6)


def channel_rate(server, ssh_config, nbytes=PROBE_BYTES):
    """Bytes per second through an SSH session to ``server`` (what a tunnel's traffic rides)."""
    started = time.monotonic()
    proc = subprocess.run(S.ssh_base(server, ssh_config) + ["cat > /dev/null"],
                          input=b"\0" * nbytes, capture_output=True, timeout=120)
    took = time.monotonic() - started
    if proc.returncode:
        return None
    return nbytes / took


class ClusterNetwork(LabNetwork):
    """A topology graph across servers.

    Args:
        graph, controller, datapath, wait_sec, run_id: as ``LabNetwork``.
        servers (list[str]): server names (``localhost`` is this machine).
        placed (dict): ``{node: server}`` (``topologies.cluster.placement.place``).
        ssh_config (str|None): the ``ssh -F`` file.
        run_dir (str|None): the local run folder whose paths remote processes get rewritten.
        controller_at (dict|None): ``{server: address}`` where each remote server's switches
            reach the controller (``experiments.cluster_run.controller_addresses``).
    """

    def __init__(self, graph, servers, placed, ssh_config=None, run_dir=None,
                 controller_at=None, **kwargs):
        super().__init__(graph, **kwargs)
        self.controller_at = dict(controller_at or {})
        self.servers = list(servers)
        self.placed = dict(placed)
        self.ssh_config = S.config_path(ssh_config)
        self.run_dir = os.path.abspath(run_dir) if run_dir else None
        self.agents = {}
        self.works = {}
        self.pushed = {}
        self.fetched = {}
        self._remote_procs = {}
        self._next_tap = TAP_BASE
        self.cluster_info = {"servers": {}, "placement": dict(placed), "setup_s": None,
                             "cross_links": []}

    # -- helpers -----------------------------------------------------------------------------
    def remote_servers(self):
        return [s for s in self.servers if not S.is_local(s)]

    def _server_intfs(self, server):
        mine = [n for n in graphs.switches(self.graph) if self.placed[n] == server]
        return [i for i in root_interfaces(self.graph) if i.split("-")[0] in mine]

    def _tap_number(self, server):
        # one counter for every server: on one machine the "servers" share one kernel
        while True:
            n = self._next_tap
            self._next_tap += 1
            if f"tap{n}" not in registry.existing_links():
                return n

    def _register_intfs(self, server, names):
        if S.is_local(server):
            self.record.data["root_intfs"] += list(names)
            self.record.save()
        else:
            self.agents[server].call("intfs", names=list(names))

    # -- lifecycle ---------------------------------------------------------------------------
    def _start(self):
        started = time.monotonic()
        self._check()
        self.datapath = (P_detect() if self.requested_datapath == "auto"
                         else self.requested_datapath)
        link, log, net, node, topo = _mininet()
        log.setLogLevel(os.environ.get("LBLAB_MININET_LOG", "warning"))
        local_switches = [n for n in graphs.switches(self.graph)
                          if S.is_local(self.placed[n])]
        self.record = registry.RunRecord.create(
            switches=local_switches, root_intfs=self._server_intfs("localhost"),
            run_id=self.run_id)
        self.run_id = self.record.run_id
        registry.set_current(self.record)
        for server in self.remote_servers():
            agent = RemoteAgent(server, self.ssh_config)
            self.agents[server] = agent
            self.record.add_process(agent.proc.pid, f"ssh-agent:{server}")
            ans = agent.call("create", run_id=self.run_id,
                             switches=[n for n, s in self.placed.items()
                                       if s == server and self.graph.nodes[n]["kind"] == "switch"],
                             root_intfs=self._server_intfs(server), wait_sec=self.wait_sec)
            self.works[server] = ans["work"]
            offset, rtt = clock_offset(agent)
            self.cluster_info["servers"][server] = {
                "clock_offset_s": offset, "ssh_rtt_s": rtt, "state_dir": ans["state_dir"],
                "work": ans["work"]}

        loops = graphs.has_loops(self.graph)
        self.static_flows = self.controller is None and loops
        fail_mode = "standalone" if self.controller is None and not loops else "secure"
        Host, Switch, Link, Net = cluster_nodes.classes(
            self.ssh_config, self._tap_number, self._register_intfs,
            f" external_ids:{registry.BRIDGE_TAG}={self.run_id}",
            {"failMode": fail_mode, "protocols": "OpenFlow13",
             "datapath": "user" if self.datapath == "netdev" else "kernel"},
            controller_at=self.controller_at)
        mn_topo = topo.Topo()
        for name in graphs.switches(self.graph):
            mn_topo.addSwitch(name, dpid=self.graph.nodes[name]["dpid"],
                              server=self.placed[name])
        for name in graphs.hosts(self.graph):
            data = self.graph.nodes[name]
            mn_topo.addHost(name, ip=f"{data['ip']}/{data['prefixlen']}", mac=data["mac"],
                            server=self.placed[name])
        for a, b, data in sorted(self.graph.edges(data=True),
                                 key=lambda e: (graphs._node_key(e[0]), graphs._node_key(e[1]))):
            mn_topo.addLink(a, b, port1=data["ports"][a], port2=data["ports"][b],
                            **link_options(data))
            if self.placed[a] != self.placed[b]:
                self.cluster_info["cross_links"].append(
                    {"link": f"{a}-{b}", "servers": [self.placed[a], self.placed[b]],
                     "bw_mbit": data.get("bw")})
        self.net = Net(topo=mn_topo, servers=self.servers,
                       placement=cluster_nodes.fixed_placer(self.placed), controller=None,
                       build=False, autoSetMacs=False, waitConnected=False)
        self.net.precheck()
        if self.controller is not None:
            ip, port = self.controller
            self.net.addController("c0", controller=node.RemoteController, ip=ip, port=port)
        self.net.build()
        for mn_node in self.net.hosts + self.net.switches:
            if S.is_local(mn_node.server):
                self.record.add_host(mn_node.name, mn_node.pid)
            else:
                self.agents[mn_node.server].call("host", name=mn_node.name, pid=mn_node.pid)
                self.record.add_process(mn_node.shell.pid, f"ssh-shell:{mn_node.name}")
        for lk in self.net.links:
            if getattr(lk, "tunnel", None) is not None:
                self.record.add_process(lk.tunnel.pid, f"ssh-tunnel:{lk.intf1}")
        self.record.save()
        self.net.start()
        if self.datapath == "netdev":
            self._disable_offloads()
        if self.static_flows:
            self._install_static_flows()
        for server in self.remote_servers():
            rate = channel_rate(server, self.ssh_config)
            self.cluster_info["servers"][server]["ssh_rate_mbit"] = (
                round(rate * 8 / 1e6, 1) if rate else None)
        self.cluster_info["setup_s"] = round(time.monotonic() - started, 2)

    def _install_static_flows(self):
        from topologies import forwarding
        for switch, lines in forwarding.ovs_flows(self.graph).items():
            proc = subprocess.run(
                S.remote(self.placed[switch], ["ovs-ofctl", "-O", "OpenFlow13", "add-flows",
                                               switch, "-"], self.ssh_config),
                input="\n".join(lines) + "\n", text=True, capture_output=True)
            if proc.returncode:
                raise NetworkError(f"ovs-ofctl add-flows {switch} on {self.placed[switch]} "
                                   f"failed: {proc.stderr.strip()}")

    def _stop_processes(self):
        """Stop every process, local or remote (newest first), then fetch the remote outputs."""
        for proc in reversed(self._procs):
            self._terminate(proc)
        self.collect()

    def _stop_elsewhere(self):
        """Each server's agent cleans that server's record, then its session ends."""
        for agent in self.agents.values():
            try:
                agent.call("clean")
            except Exception:  # noqa: BLE001 - closing the session cleans as well
                pass
            agent.close()

    def _stop_mininet(self):
        for lk in self.net.links:
            if getattr(lk, "tunnel", None) is not None:
                try:
                    lk.tunnel.stdin.close()
                except OSError:
                    pass
                terminate(lk.tunnel, 2.0)
        # A remote host's shell here is its ssh -tt session: end it, so the remote side's sshd
        # hangs up the host's shell there (the agent's record cleans what is left), and
        # Mininet's Node.cleanup, which waits for the shell, does not wait for a session that
        # a SIGHUP to its process group did not end.
        for host in self.net.hosts:
            shell = getattr(host, "shell", None)
            if getattr(host, "isRemote", False) and shell is not None and shell.poll() is None:
                shell.kill()
                try:
                    shell.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        super()._stop_mininet()

    def _root_interfaces_present(self):
        present = registry.existing_links()
        return [i for i in self._server_intfs("localhost") if i in present]

    # -- processes ---------------------------------------------------------------------------
    def _remote_path(self, server, text):
        if self.run_dir and isinstance(text, str) and self.run_dir in text:
            return text.replace(self.run_dir, self.works[server])
        return text

    def server_of(self, host_name):
        """The server a node runs on (``localhost``: this machine)."""
        return self.placed.get(host_name, "localhost")

    def is_remote(self, host_name):
        return not S.is_local(self.server_of(host_name))

    def remote_path(self, server, path):
        """Where a path of the local run folder is on ``server`` (itself when local)."""
        return path if S.is_local(server) else self._remote_path(server, path)

    def _send(self, server, target, data, mode=None):
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1"' + (
            f' && chmod {mode:o} "$1"' if mode is not None else "")
        proc = subprocess.run(S.remote(server, ["sh", "-c", script, "sh", target],
                                       self.ssh_config),
                              input=data, capture_output=True, timeout=60)
        if proc.returncode:
            raise NetworkError(f"cannot copy to {server}:{target}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")

    def _push(self, server, path):
        """Copy a local input file to the server's run folder, its paths rewritten; a JSON
        input's files outside the run folder (``json_paths``) are copied along."""
        with open(path, encoding="utf-8", errors="surrogateescape") as fp:
            text = fp.read()
        if path.endswith(".json"):
            text = self._ship_named_files(server, text)
        text = self._remote_path(server, text)
        self._send(server, self._remote_path(server, path),
                   text.encode("utf-8", "surrogateescape"), os.stat(path).st_mode & 0o777)
        self.pushed.setdefault(server, set()).add(os.path.relpath(path, self.run_dir))

    def _ship_named_files(self, server, text):
        try:
            data = json.loads(text)
        except ValueError:
            return text
        mapping = {}
        for named in sorted(set(json_paths(data))):
            local = os.path.abspath(named)
            if (self.run_dir and local.startswith(self.run_dir + os.sep)) or \
                    not os.path.isfile(local):
                continue
            shipped = os.path.join(self.run_dir, "inputs",
                                   f"{len(self.pushed.get(server, ()))}-{len(mapping)}-"
                                   f"{os.path.basename(named)}")
            with open(local, "rb") as fp:
                self._send(server, self._remote_path(server, shipped), fp.read(),
                           os.stat(local).st_mode & 0o777)
            self.pushed.setdefault(server, set()).add(os.path.relpath(shipped, self.run_dir))
            mapping[named] = shipped
        return json.dumps(replace_paths(data, mapping), indent=1) if mapping else text

    def push_tree(self, server, folder):
        """Copy a local folder of the run folder (an engine's configuration, certificates and
        temp folders) to ``server``'s run folder, the text of its files rewritten."""
        for dirpath, _, files in os.walk(folder):
            S.run(server, ["mkdir", "-p", self._remote_path(server, dirpath)], self.ssh_config)
            for name in files:
                self._push(server, os.path.join(dirpath, name))

    def run_in_host(self, host_name, argv, timeout=60):
        """Run ``argv`` to its end in a host's namespace on its server; CompletedProcess."""
        server = self.server_of(host_name)
        if S.is_local(server):
            return subprocess.run(["mnexec", "-a", str(self.host(host_name).pid)] + list(argv),
                                  capture_output=True, text=True, timeout=timeout)
        argv = [self._remote_path(server, str(a)) for a in argv]
        return S.run(server, ["mnexec", "-a", str(self.host(host_name).pid)] + argv,
                     self.ssh_config, timeout=timeout)

    def exists(self, host_name, path):
        """Does a file of the run folder that ``host_name``'s processes write exist yet?"""
        server = self.server_of(host_name)
        if S.is_local(server):
            return os.path.exists(path)
        return S.run(server, ["test", "-e", self._remote_path(server, path)],
                     self.ssh_config).returncode == 0

    def fetch(self, host_name, paths):
        """Copy files that ``host_name``'s processes wrote into the local run folder now (the
        end of the lab copies them again, as they are then)."""
        server = self.server_of(host_name)
        if S.is_local(server) or not self.run_dir:
            return
        for path in paths:
            proc = subprocess.run(S.remote(server, ["cat", self._remote_path(server, path)],
                                           self.ssh_config), capture_output=True, timeout=60)
            if proc.returncode == 0:
                with open(path, "wb") as fp:
                    fp.write(proc.stdout)
                self.fetched.setdefault(server, set()).add(os.path.relpath(path, self.run_dir))

    def popen(self, host_name, args, **kwargs):
        server = self.server_of(host_name)
        if S.is_local(server):
            return super().popen(host_name, args, **kwargs)
        remote_args, inputs = [], []
        for arg in args:
            arg = str(arg)
            if self.run_dir and arg.startswith(self.run_dir) and os.path.isfile(arg):
                self._push(server, arg)
                inputs.append(arg)
            remote_args.append(self._remote_path(server, arg))
        if self.run_dir:
            dirs = {os.path.dirname(a) for a in remote_args
                    if a.startswith(self.works[server])} | {self.works[server]}
            S.run(server, ["mkdir", "-p"] + sorted(dirs), self.ssh_config)
        for key in ("cwd", "env", "start_new_session"):
            kwargs.pop(key, None)
        # stdin is the session's control line (signals; its end stops the process): the
        # remote process itself gets /dev/null from `agent exec`
        kwargs["stdin"] = subprocess.PIPE
        proc = RemoteProcess(self.host(host_name).popen(remote_args, **kwargs), server,
                             lambda: [self._push(server, p) for p in inputs])
        self._procs.append(proc)
        self._remote_procs[proc.pid] = server
        self.record.add_process(proc.pid, f"{host_name}@{server}:{os.path.basename(args[0])}")
        return proc

    def _terminate(self, proc, grace_sec=STOP_GRACE_SEC):
        if proc.pid in self._remote_procs and proc.poll() is None:
            # closing the session's stdin makes `agent exec` SIGTERM the process; its exit
            # status then comes back through ssh as a local one would
            try:
                proc.stdin.close()
                proc.wait(timeout=grace_sec + 2.0)
                return
            except (OSError, subprocess.TimeoutExpired):
                pass
        terminate(proc, grace_sec)

    def stop_process(self, proc, grace_sec=STOP_GRACE_SEC):
        self._terminate(proc, grace_sec)
        if proc in self._procs:
            self._procs.remove(proc)

    def collect(self):
        """Bring every file the remote processes wrote into the local run folder."""
        if not self.run_dir:
            return
        for server, work in self.works.items():
            proc = subprocess.run(S.remote(server, ["tar", "-C", work, "-cf", "-", "."],
                                           self.ssh_config), capture_output=True, timeout=300)
            if proc.returncode:
                continue
            skip = self.pushed.get(server, set())
            fetched = self.fetched.get(server, set())
            with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
                for member in tar.getmembers():
                    rel = os.path.normpath(member.name)
                    if not member.isfile() or rel in skip or rel.startswith(".."):
                        continue
                    dest = os.path.join(self.run_dir, rel)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    # never overwrite what this machine wrote (but a copy fetched earlier)
                    if os.path.exists(dest) and rel not in fetched:
                        continue
                    with open(dest, "wb") as fp:
                        fp.write(tar.extractfile(member).read())


def P_detect():
    from topologies.capabilities import detect_datapath
    return detect_datapath()


def wait_gone(names, timeout=INTERFACE_GONE_SEC):
    """Wait until none of ``names`` is an interface here."""
    return wait_for(lambda: not (set(names) & registry.existing_links()), timeout)
