"""The cluster edition's node, link and network classes, fixed for lblab (imports Mininet).

Subclasses of ``mininet.examples.cluster`` (Debian's Mininet 2.3.0) that keep its node and link
model and its placement, and change what does not run here or is unsafe:

* **no sudo**: ``RemoteMixin`` prefixes every remote command with ``sudo -E`` and runs ssh under
  ``sudo -E -u USER``; lblab runs as root and logs in as root, so commands run as they are;
* **ssh -F**: every ssh (node shells, processes, tunnels) takes the cluster's ``ssh -F`` config,
  where a server's port, key and environment live; remote commands are shell-quoted;
* **unique tap names**: ``RemoteLink.makeTunnel`` creates ``tap9`` on both ends and runs
  ``ssh -w 9:9``, so a second link (or two "servers" on one machine) collides; here every tunnel
  end gets its own number from the network's allocator, registered before it is created;
* **lblab's cleanup**: the edition's ``ClusterCleanup`` runs ``ssh … sudo mn -c`` on each server,
  which deletes unrelated files; nothing here registers it, and ``ClusterNetwork`` cleans each
  server from its own registry record (``topologies.cluster.agent``);
* **processes that stop with their session**: a remote host's process runs under
  ``agent exec``, which stops it when the runner closes the session's stdin (or dies).
"""
import shlex

from topologies.cluster import ssh as S


class ControllerAt:
    """A controller as one server's switches reach it: the same port, that server's address."""

    def __init__(self, controller, address):
        self.name = controller.name
        self.protocol = getattr(controller, "protocol", "tcp")
        self.port = controller.port
        self.address = address

    def IP(self):  # noqa: N802 - Mininet's name
        return self.address


def classes(ssh_config, tap_numbers, register_intfs, bridge_opts, switch_params,
            controller_at=None):
    """Return ``(Host, Switch, Link, Cluster)`` bound to one network's settings.

    Args:
        ssh_config (str|None): the ``ssh -F`` file.
        tap_numbers (callable): ``tap_numbers(server) -> int``, a fresh tap number on a server.
        register_intfs (callable): ``register_intfs(server, [names])`` before they are created.
        bridge_opts (str): extra ``ovs-vsctl add-br`` options (the run's registry tag).
        switch_params (dict): defaults of every switch (failMode, datapath, protocols).
        controller_at (dict|None): ``{server: address}``: where a remote server's switches
            reach the controller (this machine's address as that server sees it); a server
            not named uses the controller's own address.
    """
    from mininet.examples import cluster as edition
    from mininet.link import Link, TCIntf
    from mininet.net import Mininet
    from mininet.node import Node, OVSSwitch
    from mininet.util import decode

    class LabRemoteMixin(edition.RemoteMixin):
        """``RemoteMixin`` without sudo, with ``ssh -F``, quoted commands."""

        def __init__(self, name, server="localhost", user=None, serverIP=None,
                     controlPath=False, splitInit=False, **kwargs):
            # RemoteMixin.__init__ is replaced, not called: it builds `sudo -E -u USER ssh` and
            # registers ClusterCleanup (ssh … sudo mn -c).
            self.server = server or "localhost"
            self.serverIP = serverIP or self.server
            self.user = "root"
            self.controlPath = None
            self.splitInit = splitInit
            self.isRemote = not S.is_local(self.server)
            self.dest = self.server if self.isRemote else None
            self.sshcmd = S.ssh_base(self.server, ssh_config, tty=True) if self.isRemote else []
            self.shell, self.pid = None, None
            super(edition.RemoteMixin, self).__init__(name, **kwargs)

        def _popen(self, cmd, sudo=True, tt=True, **params):
            if isinstance(cmd, str):
                cmd = cmd.split()
            if self.isRemote:
                base = S.ssh_base(self.server, ssh_config, tty=tt)
                cmd = base + [shlex.join(str(c) for c in cmd)]
                # the ssh client in its own process group: Ctrl-C is the runner's to handle
                params.update(preexec_fn=self._ignoreSignal)
            # A local command runs as Mininet's own Node._popen runs it: no setpgrp, which
            # made `mnexec -d` (a process group leader then) fork and exit at once, so the
            # runner waited for a process that had already "finished" while its program ran on.
            return Node._popen(self, cmd, **params)

        def popen(self, *args, **kwargs):
            """A process in the node's namespace; remote ones stop when their stdin closes."""
            if self.isRemote:
                kwargs.setdefault("mncmd", S.python_argv("topologies.cluster.agent", "exec", "--")
                                  + ["mnexec", "-da", str(self.pid)])
                kwargs.setdefault("stdin", -1)   # subprocess.PIPE: closing it stops the process
            return super().popen(*args, **kwargs)

    class ClusterHost(LabRemoteMixin, Node):
        """A host on any server (``server="localhost"``: this machine)."""

    class ClusterSwitch(LabRemoteMixin, edition.RemoteOVSSwitch):
        """An Open vSwitch bridge on any server, tagged with the run id, batched per server."""

        def __init__(self, name, **params):
            for key, value in switch_params.items():
                params.setdefault(key, value)
            params.setdefault("batch", True)
            super().__init__(name, **params)

        def bridgeOpts(self):
            return super().bridgeOpts() + bridge_opts

        def start(self, controllers):
            # The controller listens on this machine; a remote switch reaches it at the
            # address its server sees this machine at, not at the controller's own address.
            address = (controller_at or {}).get(self.server) if self.isRemote else None
            if address:
                controllers = [ControllerAt(c, address) for c in controllers]
            super().start(controllers)

    class ClusterLink(edition.RemoteSSHLink):
        """A link: a veth pair on one server, an SSH Ethernet tunnel between two."""

        def __init__(self, node1, node2, **kwargs):
            if any(k in kwargs for k in ("bw", "delay", "loss", "max_queue_size")):
                kwargs.setdefault("cls1", TCIntf)
                kwargs.setdefault("cls2", TCIntf)
            super().__init__(node1, node2, **kwargs)

        def makeTunnel(self, node1, node2, intfname1, intfname2, addr1=None, addr2=None):
            if S.is_local(node2.server) and not S.is_local(node1.server):
                node1, node2 = node2, node1
                intfname1, intfname2, addr1, addr2 = intfname2, intfname1, addr2, addr1
            tap1, tap2 = tap_numbers(node1.server), tap_numbers(node2.server)
            names = ((node1, f"tap{tap1}"), (node2, f"tap{tap2}"))
            for node, tap in names:
                register_intfs(node.server, [tap])
                out = node.rcmd(f"ip tuntap add dev {tap} mode tap")
                if out.strip():
                    raise RuntimeError(f"cannot create {tap} on {node.server}: {out.strip()}")
            # ssh -w A:B from node1's server to node2's; '@' once the tunnel is up
            cmd = S.ssh_base(node2.server, ssh_config) + ["echo @; exec cat"]
            cmd[1:1] = ["-o", "Tunnel=ethernet", "-w", f"{tap1}:{tap2}"]
            if not S.is_local(node1.server):
                cmd = S.ssh_base(node1.server, ssh_config) + [shlex.join(cmd)]
            self.cmd = cmd
            tunnel = Node._popen(node1, cmd, stdin=-1, stdout=-1, stderr=-2,
                                 preexec_fn=node1._ignoreSignal)
            first = decode(tunnel.stdout.read(1))
            if first != "@":
                tunnel.kill()
                raise RuntimeError(f"SSH tunnel {node1.server}:{names[0][1]} -> "
                                   f"{node2.server}:{names[1][1]} failed: "
                                   f"{first}{decode(tunnel.stdout.read())}".strip())
            for (node, tap), intf, addr in ((names[0], intfname1, addr1),
                                            (names[1], intfname2, addr2)):
                self.moveIntf(tap, node)
                rename = f"ip link set {tap} name {intf}" + (f" address {addr}" if addr else "")
                out = node.cmd(rename)
                if out.strip():
                    raise RuntimeError(f"cannot rename {tap} to {intf} on {node.server}: "
                                       f"{out.strip()}")
            self.tunnel = tunnel
            return tunnel

        def stop(self):
            if self.tunnel:
                self.tunnel.stdin.close()
                self.tunnel.terminate()
                self.tunnel.wait()
                self.tunnel = None
            Link.stop(self)

    class ClusterNet(edition.MininetCluster):
        """``MininetCluster`` with a fixed placement and no sudo precheck or ~/.ssh/mn folder."""

        def __init__(self, *args, servers=("localhost",), placement=None, **params):
            self.servers = list(servers)
            self.serverIP = {s: s for s in self.servers}
            self.user = "root"
            self.connections = {}
            self.placement = placement
            params.setdefault("host", ClusterHost)
            params.setdefault("switch", ClusterSwitch)
            params.setdefault("link", ClusterLink)
            Mininet.__init__(self, *args, **params)

        def addController(self, *args, **kwargs):  # noqa: N802 - Mininet's name
            """Mininet's own: the edition's moves a loopback controller onto an external
            interface found with ``ip route get SERVER`` in the controller's shell (it fails
            on server names and is not needed: ``controller_at`` gives each server's address)."""
            return Mininet.addController(self, *args, **kwargs)

        def precheck(self):
            """Every remote server answers ``ssh -F config server true`` (no sudo)."""
            for server in self.servers:
                if not S.is_local(server):
                    proc = S.run(server, ["true"], ssh_config, timeout=30)
                    if proc.returncode:
                        raise RuntimeError(f"ssh to {server} failed: {proc.stderr.strip()}")

    return ClusterHost, ClusterSwitch, ClusterLink, ClusterNet


def fixed_placer(placed):
    """A cluster-edition ``Placer`` that returns a placement computed beforehand."""
    from mininet.examples.cluster import Placer

    class FixedPlacer(Placer):
        def place(self, node):
            return placed[node]

    return FixedPlacer

