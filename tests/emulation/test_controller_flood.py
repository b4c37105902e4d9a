"""A SYN flood to an l4 VIP (root, real OVS): the switch's per-port packet-in meter drops the
flood in the datapath, the controller sees at most the port's share, and connections from
another host are still set up meanwhile."""
import os
import re
import subprocess
import sys
import time

from controllers import config as ctl_config
from controllers.harness import ControllerProcess, start_http_backend
from tests.conftest import wait_for
from tests.emulation.conftest import ofctl
from topologies import graphs
from topologies.network import LabNetwork

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIP, PORT = "10.0.0.100", 80
RATE, SHARE = 400, 0.5          # per switch; each port's meter passes RATE * SHARE per second
FLOOD_MAX_SEC = 60.0            # the flood runs until the test stops it, at most this long

# Sends SYNs from fresh source ports to the VIP through a raw socket until a line (or EOF)
# arrives on stdin; prints FLOODING when it starts sending, then how many it sent (runs in the
# flooding host's namespace).
FLOOD = """
import select, socket, sys, time
sys.path.insert(0, {repo!r})
from controllers import packets
frames = [packets.tcp({src_mac!r}, {vmac!r}, {src_ip!r}, {vip!r}, port, {port}, port * 7, 0,
                      packets.TCP_SYN) for port in range(20000, 60000)]
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(({intf!r}, 0))
print("FLOODING", flush=True)
sent, end = 0, time.monotonic() + {max_seconds}
while time.monotonic() < end and not select.select([sys.stdin], [], [], 0)[0]:
    start = sent % len(frames)
    for frame in frames[start:start + 500]:
        raw.send(frame)
    sent += 500
print(sent, flush=True)
"""


def meters(switch):
    """Return ``{meter id: (packets that reached it, packets its drop band dropped)}``, read
    from the switch itself."""
    out = ofctl("meter-stats", switch)
    return {int(m): (int(seen), int(dropped)) for m, seen, dropped in re.findall(
        r"meter:(\d+) .*?packet_in_count:(\d+) .*?bands:\s*0: packet_count:(\d+)", out, re.S)}


def snapshot(ctl):
    """Read the controller's switch counters and the switch's meters; return them with the
    monotonic time just before the reads began."""
    t = time.monotonic()
    return t, ctl.api("GET", "/stats")[1]["switches"]["s1"], meters("s1")


def test_syn_flood_is_metered_in_the_switch_and_others_still_connect(tmp_path):
    graph = graphs.lb_lab(clients=4, backends=4)
    cfg = {"controller": {"packet_in_rate": RATE, "packet_in_port_share": SHARE,
                          "stats_interval": 0.5},
           "topology": ctl_config.graph_to_data(graph),
           "services": {"web": {"vip": VIP, "port": PORT, "mode": "l4",
                                "algorithm": "round_robin", "health": {"kind": "none"},
                                "backends": {b: 1 for b in ("h6", "h7", "h8", "h9")}}}}
    flood_meter = graph.edges["h3", "s1"]["ports"]["s1"]  # meter id = the switch port
    with ControllerProcess(cfg, str(tmp_path)) as ctl:
        with LabNetwork(graph, controller=("127.0.0.1", ctl.ofp_port)) as lab:
            assert ctl.wait_switches(["s1"]), ctl.log_tail()
            for host in ("h6", "h7", "h8", "h9"):
                start_http_backend(lab, host, PORT)
            assert "X-Backend" in lab.host("h1").cmd(
                f"curl -s -m 3 -D - -o /dev/null http://{VIP}/"), "VIP not serving"
            h3 = graph.nodes["h3"]
            script = tmp_path / "flood.py"
            script.write_text(FLOOD.format(repo=REPO, src_mac=h3["mac"],
                                           vmac=ctl_config.vmac_for(VIP), src_ip=h3["ip"],
                                           vip=VIP, port=PORT, intf="h3-eth0",
                                           max_seconds=FLOOD_MAX_SEC))
            t_before, ctl_before, meters_before = snapshot(ctl)
            flood = lab.popen("h3", [sys.executable, str(script)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
            try:
                assert flood.stdout.readline().strip() == "FLOODING"

                def flood_dropped():
                    return meters("s1")[flood_meter][1]
                # running: the flood reaches the switch faster than its port's meter passes
                dropped = flood_dropped()
                wait_for(lambda: flood_dropped() > dropped, "the flood's meter dropping SYNs")
                legit = lab.host("h1").cmd(
                    "for i in $(seq 10); do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' "
                    f"-H 'Connection: close' http://{VIP}/; done").split()
                # and still running after them
                dropped = flood_dropped()
                wait_for(lambda: flood_dropped() > dropped,
                         "the flood's meter still dropping after the connections")
                assert flood.poll() is None, "the flood stopped before the test stopped it"
                out, _ = flood.communicate("stop\n", timeout=30)
            finally:
                if flood.poll() is None:
                    flood.kill()
            _, ctl_after, meters_after = snapshot(ctl)
            t_after = time.monotonic()
    sent = int(out.strip().splitlines()[-1])
    assert legit == ["200"] * 10, legit
    share = RATE * SHARE
    # The flooding port's meter is a token bucket of `share` packets/s holding at most `share`
    # (its burst): in any window it passes at most share * window + share.
    allowed = share * (t_after - t_before) + share
    offered = meters_after[flood_meter][0] - meters_before[flood_meter][0]
    dropped = meters_after[flood_meter][1] - meters_before[flood_meter][1]
    assert offered >= 2 * allowed, \
        f"the flood was too slow to test anything: {offered} SYNs reached the meter, which " \
        f"may pass {allowed:.0f} ({sent} sent)"
    # so it dropped all the offered load beyond that
    assert dropped >= offered - allowed, (offered, dropped, allowed)
    # The controller saw at most what the meters passed: the flooding port's share plus what
    # the other ports (h1's connections) sent.
    passed_elsewhere = sum(
        (seen - drop) - (meters_before[m][0] - meters_before[m][1])
        for m, (seen, drop) in meters_after.items() if m != flood_meter)
    packet_ins = ctl_after["packet_ins"] - ctl_before["packet_ins"]
    assert packet_ins <= allowed + passed_elsewhere, (packet_ins, allowed, passed_elsewhere)
    # what passed the meter fits the controller's own per-port token bucket: the flood never
    # reached os-ken's socket, let alone the controller's rate limit
    assert ctl_after["dropped"] - ctl_before["dropped"] <= share, (ctl_after, ctl_before)
    print(f"flood: {sent} SYNs sent, {offered} reached the meter in {t_after - t_before:.1f} s, "
          f"{dropped} dropped; controller packet-ins {packet_ins} (allowed {allowed:.0f} + "
          f"{passed_elsewhere} from other ports)")
