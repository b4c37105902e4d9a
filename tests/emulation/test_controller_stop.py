"""Stopping the controller (root, real OVS): SIGTERM ends it with exit status 0, and the
switch keeps every flow, group and meter it installed (the bridges' fail mode is ``secure``).

Traffic that needs no controller goes on: host to host, and a stateless select group balancing
new connections for clients that still know the VIP's MAC. What needs the controller stops until
one is back: a new l4 connection (its first packet is a packet-in) and ARP for a VIP (answered
by the controller). This is what docs/controller.md ("Stopping the controller") says.
"""
import subprocess

from controllers import config as ctl_config
from controllers.harness import ControllerProcess, start_http_backend
from topologies import graphs
from topologies.network import LabNetwork, wait_for

L4_VIP, GROUP_VIP, PORT = "10.0.0.100", "10.0.0.101", 80
L4_BACKENDS, GROUP_BACKENDS = ("h6", "h7"), ("h8", "h9")   # a backend port serves one service
KNOWS_VIPS = ("h1", "h2", "h3")   # clients given the VIPs' MACs; h4 has to ask (ARP)
GROUP_CONNECTIONS = 20            # per check: all on one of 2 backends has p = 2 * 2**-20
OVS_STATUS_SEC = 30.0   # ovs-vswitchd writes a controller's is_connected every ~5 s


def ovs(*args):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


def switch_state(switch):
    """Return the flows (without counters), groups and meters of a switch as sorted lines."""
    state = {}
    for what in ("dump-flows", "dump-groups", "dump-meters"):
        extra = ("--no-stats",) if what == "dump-flows" else ()
        lines = ovs("ovs-ofctl", "-O", "OpenFlow13", *extra, what, switch).splitlines()
        state[what] = sorted(line.strip() for line in lines
                             if line.strip() and not line.startswith("OFPST_"))
    return state


def ovs_sees_controller(ofp_port):
    """Return ovs-vswitchd's is_connected of the controller on ``ofp_port`` ("true"/"false")."""
    return ovs("ovs-vsctl", "--bare", "--columns=is_connected", "find", "controller",
               f'target="tcp:127.0.0.1:{ofp_port}"').strip()


def http_code(lab, host, ip, max_sec=3):
    return lab.host(host).cmd(f"curl -s -m {max_sec} -o /dev/null -w '%{{http_code}}' "
                              f"http://{ip}:{PORT}/").strip()


def group_backends(lab):
    """Open GROUP_CONNECTIONS connections to the group VIP from the clients that know its MAC;
    return the X-Backend of each answer (or "none")."""
    served = []
    for i in range(GROUP_CONNECTIONS):
        head = lab.host(KNOWS_VIPS[i % len(KNOWS_VIPS)]).cmd(
            f"curl -s -m 3 -D - -o /dev/null http://{GROUP_VIP}:{PORT}/")
        names = [line.split(":", 1)[1].strip() for line in head.splitlines()
                 if line.lower().startswith("x-backend:")]
        served.append(names[0] if names else "none")
    return served


def test_sigterm_exits_0_and_the_switch_keeps_its_flows(tmp_path):
    graph = graphs.lb_lab()
    cfg = {"topology": ctl_config.graph_to_data(graph),
           "services": {
               "l4": {"vip": L4_VIP, "port": PORT, "mode": "l4", "health": {"kind": "none"},
                      "backends": {b: 1 for b in L4_BACKENDS}},
               "group": {"vip": GROUP_VIP, "port": PORT, "mode": "group",
                         "health": {"kind": "none"},
                         "backends": {b: 1 for b in GROUP_BACKENDS}}}}
    ctl = ControllerProcess(cfg, str(tmp_path))
    with ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(["s1"]), ctl.log_tail()
            for host in L4_BACKENDS + GROUP_BACKENDS:
                start_http_backend(lab, host, PORT)
            # The MACs the controller answers ARP with, fixed on these clients so the checks
            # below do not depend on how long the kernel keeps a learnt entry.
            for host in KNOWS_VIPS:
                for vip in (L4_VIP, GROUP_VIP):
                    lab.host(host).cmd(f"ip neigh replace {vip} lladdr "
                                       f"{ctl_config.vmac_for(vip)} dev {host}-eth0 "
                                       "nud permanent")
            assert wait_for(lambda: ovs_sees_controller(ctl.ofp_port) == "true",
                            OVS_STATUS_SEC), ovs_sees_controller(ctl.ofp_port)
            assert ovs("ovs-vsctl", "get-fail-mode", "s1").strip() == "secure"
            assert http_code(lab, "h1", L4_VIP) == "200"
            assert sorted(set(group_backends(lab))) == list(GROUP_BACKENDS)
            before = switch_state("s1")
            assert len(before["dump-flows"]) > 10 and before["dump-groups"], before

            ctl.stop()   # SIGTERM to its process group, as the runner and the harness do
            assert ctl.proc.returncode == 0, ctl.log_tail()
            assert wait_for(lambda: ovs_sees_controller(ctl.ofp_port) == "false",
                            OVS_STATUS_SEC), ovs("ovs-vsctl", "list", "controller")

            assert switch_state("s1") == before
            h6_ip = graph.nodes["h6"]["ip"]
            lab.host("h1").cmd(f"ip neigh flush to {h6_ip}")   # ARP between hosts: flooded
            assert http_code(lab, "h1", h6_ip) == "200"           # by the switch's own flows
            assert sorted(set(group_backends(lab))) == list(GROUP_BACKENDS)
            assert http_code(lab, "h1", L4_VIP, max_sec=2) == "000"   # needs a packet-in
            lab.host("h4").cmd(f"ip neigh flush to {GROUP_VIP}")
            assert http_code(lab, "h4", GROUP_VIP, max_sec=2) == "000"   # ARP for the VIP
            assert switch_state("s1") == before
    log = ctl.log_tail(200)
    assert "stopping on SIGTERM" in log and "Traceback" not in log, log
