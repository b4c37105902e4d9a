"""Topology graph -> a running Mininet network on Open vSwitch; the only module that imports Mininet.

``LabNetwork`` is a context manager: whatever happens inside (or while building), the network is
stopped and every interface, namespace, bridge and process it created is gone afterwards, checked
against the registry record written *before* anything was created (``topologies.registry``).
"""
import collections
import concurrent.futures
import os
import shutil
import signal
import subprocess
import time

from topologies import forwarding, graphs, registry
from topologies.capabilities import detect_datapath, missing_link_features

OFFLOADS = ("tx", "rx", "tso", "gso", "gro")
STOP_GRACE_SEC = 3.0
INTERFACE_GONE_SEC = 5.0
SHELL_THREADS = 8  # host shells started at once (each thread waits for its bash prompt)


class NetworkError(RuntimeError):
    """The network cannot be built as asked; the message says which part and why."""


def _mininet():
    """Import Mininet lazily: pure callers (graphs, CLI help) never need it."""
    try:
        from mininet import link, log, net, node, topo
    except ImportError as exc:
        raise NetworkError(
            f"Mininet is not importable ({exc}); run 'make setup' (it installs Debian's "
            f"'mininet' package and makes .venv see it)") from None
    return link, log, net, node, topo


def root_interfaces(graph):
    """Return the names of the root-namespace interfaces Mininet will create for ``graph``.

    Switches live in the root namespace, so every switch port is there: ``s1-eth1``… Host ends
    (``h1-eth0``) live in the hosts' namespaces and vanish with them.
    """
    names = []
    for a, b, data in graph.edges(data=True):
        for node in (a, b):
            if graph.nodes[node]["kind"] == "switch":
                names.append(f"{node}-eth{data['ports'][node]}")
    names += graphs.switches(graph)  # userspace bridges' local ports
    return sorted(names)


def link_options(data):
    """Return TCLink keyword arguments for an edge's parameters (empty when unshaped)."""
    opts = {}
    if data.get("bw") is not None:
        opts["bw"] = data["bw"]
    if data.get("delay") is not None:
        opts["delay"] = data["delay"]
    if data.get("loss") is not None:
        opts["loss"] = data["loss"]
    if data.get("max_queue") is not None:
        opts["max_queue_size"] = data["max_queue"]
    return opts


LinkPlan = collections.namedtuple("LinkPlan", "root hosts links")


def link_plan(graph, pids):
    """Plan every veth pair and interface setting of ``graph`` as ``ip -batch`` lines (pure).

    Args:
        graph (networkx.Graph): from ``topologies.graphs``.
        pids (dict): host name -> pid of its shell (whose network namespace the host is).
    Returns:
        LinkPlan: ``root``, the lines for the root namespace (create every pair with the host
        end in its namespace, switch ports up); ``hosts``, host name -> its lines (address on
        its first interface, its interfaces and loopback up); ``links``, one
        ``(a, b, port_a, port_b, mac_a, mac_b)`` per edge with the switch end first (a MAC only
        on a host's first interface, as Mininet's host config sets it; None elsewhere).
    """
    def is_host(name):
        return graph.nodes[name]["kind"] != "switch"

    edges = sorted(graph.edges(data=True),
                   key=lambda e: (graphs._node_key(e[0]), graphs._node_key(e[1])))
    first_port = {}
    for a, b, data in edges:
        for end in (a, b):
            if is_host(end):
                port = data["ports"][end]
                first_port[end] = min(port, first_port.get(end, port))
    hosts = graphs.hosts(graph)
    root, host_lines, links = [], {h: [] for h in hosts}, []

    def mac_of(name, port):
        return graph.nodes[name]["mac"] if is_host(name) and first_port[name] == port else None

    for a, b, data in edges:
        if is_host(a) and not is_host(b):
            a, b = b, a
        port_a, port_b = data["ports"][a], data["ports"][b]
        intf_a, intf_b = f"{a}-eth{port_a}", f"{b}-eth{port_b}"
        mac_a, mac_b = mac_of(a, port_a), mac_of(b, port_b)
        root.append(f"link add name {intf_a}" + (f" address {mac_a}" if mac_a else "")
                    + f" type veth peer name {intf_b}" + (f" address {mac_b}" if mac_b else "")
                    + (f" netns {pids[b]}" if is_host(b) else ""))
        for end, intf in ((a, intf_a), (b, intf_b)):
            if is_host(end):
                host_lines[end].append(f"link set {intf} up")
            else:
                root.append(f"link set {intf} up")
        if is_host(a):  # a link between two hosts: its first end moves too
            root.append(f"link set {intf_a} netns {pids[a]}")
        links.append((a, b, port_a, port_b, mac_a, mac_b))
    for h in hosts:
        data = graph.nodes[h]
        if h in first_port:
            host_lines[h].insert(0, f"addr add {data['ip']}/{data['prefixlen']} brd + dev "
                                    f"{h}-eth{first_port[h]}")
        host_lines[h].append("link set lo up")
    return LinkPlan(root, host_lines, links)


def host_batch_command(lines):
    """Return the one shell command that runs ``lines`` in ``ip -batch`` (a here-string)."""
    return "ip -batch - <<< $'" + "\\n".join(lines) + "'"


def _ip_batch(lines, where):
    proc = subprocess.run(["ip", "-batch", "-"], input="".join(f"{x}\n" for x in lines),
                          text=True, capture_output=True)
    if proc.returncode:
        raise NetworkError(f"ip -batch in {where} failed: {proc.stderr.strip()[:500]}")


def _made_classes(link):
    """Mininet Link/Intf classes for veth pairs that exist already (made by ``ip -batch``):
    no command at creation; later calls (``ifconfig``, ``isUp``: link faults) work as usual."""

    class MadeLink(link.Link):
        @classmethod
        def makeIntfPair(cls, *args, **kwargs):
            return None

    class MadeIntf(link.Intf):
        def config(self, **_params):
            return {}

    return MadeLink, MadeIntf


class LabNetwork:
    """A topology graph running in Mininet on Open vSwitch.

    Args:
        graph (networkx.Graph): from ``topologies.graphs``.
        controller (tuple|None): ``(ip, port)`` of a remote OpenFlow 1.3 controller, or None for
            no controller: loop-free graphs then use standalone (learning) switches, graphs with
            loops get static shortest-path flows from ``topologies.forwarding``.
        datapath (str): ``auto`` (kernel if the openvswitch module is loaded, else userspace),
            ``kernel`` or ``netdev``.
        wait_sec (float): how long to wait for another lab on this machine to finish (the
            machine-wide ``registry.NetworkLock``; when this process holds it already, as
            ``lblab run`` does for a whole batch, it is reused at once).
        run_id (str|None): registry id (default: timestamp + random suffix).
    """

    def __init__(self, graph, controller=None, datapath="auto", wait_sec=600.0, run_id=None):
        if datapath not in ("auto", "kernel", "netdev"):
            raise NetworkError(f"datapath must be auto, kernel or netdev, got {datapath!r}")
        self.graph = graph
        self.controller = controller
        self.requested_datapath = datapath
        self.wait_sec = wait_sec
        self.run_id = run_id
        self.datapath = None
        self.net = None
        self.record = None
        self._lock = None
        self._procs = []
        self.static_flows = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        self._lock = registry.NetworkLock(self.wait_sec).acquire()
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        self._stop()
        return False

    def _check(self):
        if os.geteuid() != 0:
            raise NetworkError("building a network needs root: run as root or with sudo")
        for tool in ("ovs-vsctl", "ovs-ofctl", "mnexec", "tc", "ip"):
            if shutil.which(tool) is None:
                raise NetworkError(f"{tool} not found: run 'make setup'")
        if subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True).returncode:
            raise NetworkError("Open vSwitch is not running: run 'make setup' (it starts it)")
        problems = missing_link_features(self.graph)
        if problems:
            raise NetworkError("; ".join(problems))

    def _start(self):
        self._check()
        # A lab that just stopped may still be losing its interfaces (see _stop_mininet).
        if not wait_for(lambda: not self._root_interfaces_present(), INTERFACE_GONE_SEC):
            busy = self._root_interfaces_present()
            raise NetworkError(
                f"interfaces {', '.join(busy[:5])} already exist (left by a crashed run or "
                f"another Mininet?): run 'lblab clean', or remove them if they are not lblab's")
        self.datapath = (detect_datapath() if self.requested_datapath == "auto"
                         else self.requested_datapath)
        link, log, net, node, topo = _mininet()
        log.setLogLevel(os.environ.get("LBLAB_MININET_LOG", "warning"))
        self.record = registry.RunRecord.create(
            switches=graphs.switches(self.graph), root_intfs=root_interfaces(self.graph),
            run_id=self.run_id)
        self.run_id = self.record.run_id
        registry.set_current(self.record)

        loops = graphs.has_loops(self.graph)
        self.static_flows = self.controller is None and loops
        fail_mode = "standalone" if self.controller is None and not loops else "secure"
        run_id = self.run_id
        datapath = "user" if self.datapath == "netdev" else "kernel"

        class LabSwitch(node.OVSSwitch):
            """OVS bridge tagged with the run id, so `lblab clean` knows it is lblab's."""

            def __init__(self, name, **params):
                params.setdefault("failMode", fail_mode)
                params.setdefault("datapath", datapath)
                params.setdefault("protocols", "OpenFlow13")
                super().__init__(name, **params)

            def bridgeOpts(self):
                return super().bridgeOpts() + f" external_ids:{registry.BRIDGE_TAG}={run_id}"

        shaped = any(link_options(d) for _, _, d in self.graph.edges(data=True))
        # unshaped graphs take the batched build (LBLAB_MININET_BUILD=mininet: Mininet's own, to
        # compare); shaped links keep Mininet's own (TCLink's tc commands are per interface)
        fast = not shaped and os.environ.get("LBLAB_MININET_BUILD", "batched") != "mininet"
        mn_topo = topo.Topo()
        for name in graphs.switches(self.graph):
            mn_topo.addSwitch(name, dpid=self.graph.nodes[name]["dpid"])
        for name in graphs.hosts(self.graph):
            data = self.graph.nodes[name]
            mn_topo.addHost(name, ip=f"{data['ip']}/{data['prefixlen']}", mac=data["mac"])
        for a, b, data in sorted(self.graph.edges(data=True),
                                 key=lambda e: (graphs._node_key(e[0]), graphs._node_key(e[1]))):
            mn_topo.addLink(a, b, port1=data["ports"][a], port2=data["ports"][b],
                            **link_options(data))
        self.net = net.Mininet(topo=None if fast else mn_topo, switch=LabSwitch, controller=None,
                               link=link.TCLink if shaped else link.Link, build=False,
                               autoSetMacs=False, waitConnected=False)
        if self.controller is not None:
            ip, port = self.controller
            c0 = self.net.addController("c0", controller=node.RemoteController, ip=ip, port=port)
            # c0 has a shell of its own (bash -is mininet:c0) that no stop of Mininet's ends
            # (RemoteController.stop does nothing): recorded, so a crashed run's clean ends it
            self.record.add_host(c0.name, c0.pid)
            self.record.save()
        if fast:
            self._build_batched(link, node)
        else:
            self.net.build()
            for mn_node in self.net.hosts + self.net.switches:
                self.record.add_host(mn_node.name, mn_node.pid)
            self.record.save()
        self.net.start()
        if self.datapath == "netdev":
            self._disable_offloads()
        if self.static_flows:
            self._install_static_flows()

    def _build_batched(self, link, node):
        """Build ``self.net`` from the graph as ``Mininet.build`` does, with the per-node and
        per-link work batched: the host shells start in parallel, every veth pair (host MACs
        included) and every switch port's ``up`` go in one ``ip -batch`` in the root namespace,
        and each host's address, link and loopback settings in one ``ip -batch`` in its shell,
        sent to all the shells before any answer is read. ``Mininet.build`` runs a shell command
        per link, about five per interface (``ifconfig`` down/hw ether/up/address) and two per
        host. The switches' ports still go in Mininet's one ``ovs-vsctl`` transaction at start.
        The host shells' pids are in the registry record before any link exists.
        """
        net, graph = self.net, self.graph
        hosts = graphs.hosts(graph)
        made, failure = {}, None
        with concurrent.futures.ThreadPoolExecutor(SHELL_THREADS) as pool:
            futures = {name: pool.submit(
                node.Host, name, ip=f"{graph.nodes[name]['ip']}/{graph.nodes[name]['prefixlen']}",
                mac=graph.nodes[name]["mac"]) for name in hosts}
            for name, future in futures.items():
                try:
                    made[name] = future.result()
                except Exception as exc:  # noqa: BLE001 - keep the others for the teardown
                    failure = failure or exc
        for name in hosts:  # in the graph's order, as Mininet adds them
            if name in made:
                net.hosts.append(made[name])
                net.nameToNode[name] = made[name]
                self.record.add_host(name, made[name].pid)
        self.record.save()
        if failure is not None:
            raise NetworkError(f"starting the host shells failed: {failure}")
        for name in graphs.switches(graph):
            sw = net.addSwitch(name, dpid=graph.nodes[name]["dpid"], batch=True)
            self.record.add_host(name, sw.pid)
        self.record.save()
        plan = link_plan(graph, {name: net[name].pid for name in hosts})
        _ip_batch(plan.root, "the root namespace")
        for name in hosts:
            net[name].sendCmd(host_batch_command(plan.hosts[name]))
        errors = [f"{name}: {out.strip()}" for name in hosts
                  for out in [net[name].waitOutput()] if out.strip()]
        if errors:
            raise NetworkError(f"configuring host interfaces failed: {'; '.join(errors[:3])}")
        made_link, made_intf = _made_classes(link)
        for a, b, port_a, port_b, mac_a, mac_b in plan.links:
            net.links.append(made_link(net[a], net[b], port1=port_a, port2=port_b,
                                       addr1=mac_a, addr2=mac_b, intf=made_intf))
        for name in hosts:
            data = graph.nodes[name]
            intf = net[name].defaultIntf()
            if intf is not None:
                intf.ip, intf.prefixLen = data["ip"], str(data["prefixlen"])
        net.built = True

    def _disable_offloads(self):
        # On the userspace datapath, veth checksum/segmentation offloads leave packets with
        # partial checksums that nobody completes: TCP stalls at 0 bit/s (docs/architecture.md, "This machine").
        flags = " ".join(f"{o} off" for o in OFFLOADS)
        for host in self.net.hosts:
            cmds = "; ".join(f"ethtool -K {intf} {flags} >/dev/null 2>&1"
                             for intf in host.intfNames() if intf != "lo")
            host.cmd(cmds)

    def _install_static_flows(self):
        for switch, lines in forwarding.ovs_flows(self.graph).items():
            proc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", switch, "-"],
                                  input="\n".join(lines) + "\n", text=True,
                                  capture_output=True)
            if proc.returncode:
                raise NetworkError(f"ovs-ofctl add-flows {switch} failed: {proc.stderr.strip()}")

    def _stop(self):
        try:
            self._stop_processes()
            if self.net is not None:
                try:
                    self._stop_mininet()
                except Exception:  # noqa: BLE001 - the registry sweeps below finish the job
                    pass
            self._stop_elsewhere()
            if self.record is not None:
                registry.clean_record(self.record)
                self.record.remove()
        finally:
            registry.set_current(None)
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _stop_processes(self):
        """Stop the processes started in the lab, newest first (before the network goes)."""
        for proc in reversed(self._procs):
            terminate(proc)

    def _stop_elsewhere(self):
        """Clean what the lab holds outside this machine (nothing here; see ClusterNetwork)."""

    def _stop_mininet(self):
        """Stop the network faster than ``Mininet.stop`` and just as completely.

        ``Mininet.stop`` deletes every link with its own ``ip link del`` through a node's shell
        and waits for each host in turn: ~13 s for a 256-host tree here. Killing every host shell
        first makes the kernel delete their namespaces and the veth pairs in them at once; the
        bridges go in one ``ovs-vsctl`` call and the interfaces left in the root namespace
        (switch-to-switch links, userspace bridge ports) in one ``ip -batch``.
        """
        net = self.net
        for controller in net.controllers:
            controller.stop()
            controller.terminate()  # its shell: RemoteController.stop leaves it running
        for host in net.hosts:
            if host.shell is not None and host.shell.poll() is None:
                try:
                    os.killpg(host.shell.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass
        if net.switches:
            type(net.switches[0]).batchShutdown(net.switches)
        for host in net.hosts:
            host.terminate()
        present = registry.existing_links()
        leftover = [i for i in root_interfaces(self.graph) if i in present]
        if leftover:
            subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                           input="".join(f"link del {i}\n" for i in leftover))
        # The kernel dismantles a dead namespace (and the veth pairs in it) asynchronously:
        # return only when the interfaces are gone, so the next lab can create the same names.
        wait_for(lambda: not self._root_interfaces_present(), INTERFACE_GONE_SEC)

    def _root_interfaces_present(self):
        present = registry.existing_links()
        return [i for i in root_interfaces(self.graph) if i in present]

    # -- use -----------------------------------------------------------------------------------
    def host(self, name):
        """Return the Mininet host (or switch) called ``name``."""
        try:
            return self.net[name]
        except KeyError:
            raise NetworkError(f"no node {name!r} in this network") from None

    def popen(self, host_name, args, **kwargs):
        """Start a process on a host; it is stopped (SIGTERM, then SIGKILL) when the lab stops.

        Args:
            host_name (str): e.g. ``"h6"``.
            args (list[str]): the command.
            **kwargs: passed to ``Host.popen`` (``stdout``, ``stderr``, ``cwd``, ``env``…).
        Returns:
            subprocess.Popen: the process.
        """
        proc = self.host(host_name).popen(args, **kwargs)
        self._procs.append(proc)
        self.record.add_process(proc.pid, f"{host_name}:{os.path.basename(args[0])}")
        return proc

    def stop_process(self, proc, grace_sec=STOP_GRACE_SEC):
        """Stop one process started with ``popen`` now (SIGTERM, wait, SIGKILL)."""
        terminate(proc, grace_sec)
        if proc in self._procs:
            self._procs.remove(proc)

    def ips(self, role=None):
        """Return ``{host: ip}`` for hosts (optionally only those with ``role``)."""
        return {h: self.graph.nodes[h]["ip"] for h in graphs.hosts(self.graph, role)}


def terminate(proc, grace_sec=STOP_GRACE_SEC):
    """Stop a process: SIGTERM, wait ``grace_sec``, then SIGKILL (no-op if it has exited)."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace_sec)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_sec)
    except ProcessLookupError:
        pass


def wait_for(predicate, timeout_sec, interval_sec=0.1):
    """Poll ``predicate`` until it is true or ``timeout_sec`` passes; return its last value."""
    deadline = time.monotonic() + timeout_sec
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_sec)
