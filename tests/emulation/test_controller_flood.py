"""A SYN flood to an l4 VIP (root, real OVS): the switch's per-port packet-in meter drops the
flood in the datapath, the controller sees at most the port's share, and connections from
another host are still set up meanwhile."""
import os
import subprocess
import sys
import time

from controllers import config as ctl_config
from controllers.harness import ControllerProcess, start_http_backend
from topologies import graphs
from topologies.network import LabNetwork

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIP, PORT = "10.0.0.100", 80
RATE, SHARE = 400, 0.5          # per switch; each port's meter passes RATE * SHARE per second
FLOOD_SEC = 3.0

# Sends SYNs from fresh source ports to the VIP through a raw socket for FLOOD_SEC seconds and
# prints how many it sent (runs in the flooding host's namespace).
FLOOD = """
import socket, sys, time
sys.path.insert(0, {repo!r})
from controllers import packets
frames = [packets.tcp({src_mac!r}, {vmac!r}, {src_ip!r}, {vip!r}, port, {port}, port * 7, 0,
                      packets.TCP_SYN) for port in range(20000, 60000)]
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind(({intf!r}, 0))
sent, end = 0, time.monotonic() + {seconds}
while time.monotonic() < end:
    for frame in frames[sent % len(frames):][:500]:
        raw.send(frame)
    sent += 500
print(sent)
"""


def test_syn_flood_is_metered_in_the_switch_and_others_still_connect(tmp_path):
    graph = graphs.lb_lab(clients=4, backends=4)
    cfg = {"controller": {"packet_in_rate": RATE, "packet_in_port_share": SHARE,
                          "stats_interval": 0.5},
           "topology": ctl_config.graph_to_data(graph),
           "services": {"web": {"vip": VIP, "port": PORT, "mode": "l4",
                                "algorithm": "round_robin", "health": {"kind": "none"},
                                "backends": {b: 1 for b in ("h6", "h7", "h8", "h9")}}}}
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
                                           seconds=FLOOD_SEC))
            before = ctl.api("GET", "/stats")[1]["switches"]["s1"]
            flood = lab.popen("h3", [sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
            time.sleep(0.5)
            legit = lab.host("h1").cmd(
                "for i in $(seq 10); do curl -s -m 3 -o /dev/null -w '%{http_code}\\n' "
                f"-H 'Connection: close' http://{VIP}/; done").split()
            out, _ = flood.communicate(timeout=FLOOD_SEC + 20)
            sent = int(out.strip().splitlines()[-1])
            time.sleep(1.5)  # one more meter/stats poll
            after = ctl.api("GET", "/stats")[1]["switches"]["s1"]
    assert legit == ["200"] * 10, legit
    packet_ins = after["packet_ins"] - before["packet_ins"]
    share = RATE * SHARE
    # the flooding port's meter passes `share` per second plus a burst of `share`
    allowed = share * (FLOOD_SEC + 1) + share + 10
    assert sent > 5 * allowed, f"the flood was too slow to test anything: {sent} SYNs"
    assert packet_ins <= allowed, (packet_ins, allowed, sent)
    # most frames written never reach the switch (the host's queue drops them), so judge the
    # meter by what reached it: it passed at most `allowed` and dropped the rest
    assert after["meter_packets"] - after["meter_dropped"] <= allowed, (after, allowed)
    assert after["meter_dropped"] >= 20 * allowed, (after, allowed, sent)
    # what passed the meter fits the controller's own per-port token bucket: the flood never
    # reached os-ken's socket, let alone the controller's rate limit
    assert after["dropped"] - before["dropped"] <= share, (after, before)
    print(f"flood: {sent} SYNs in {FLOOD_SEC} s; meter dropped {after['meter_dropped']}; "
          f"controller packet-ins {packet_ins} (allowed {allowed:.0f})")
