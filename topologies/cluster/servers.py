"""Every server of a cluster at once: ``lblab doctor --servers`` and ``lblab clean --servers``.

The checks are facts gathered over SSH (the agent's ``info``), judged here with a fix for each
failure; cleaning runs lblab's registry-based cleanup on each server (this machine first: that
ends the SSH sessions of a killed run, so the remote agents clean up and exit).
"""
import json
import os
import subprocess
import time

from topologies.cluster import agent as A
from topologies.cluster import ssh as S

# a clock offset above this fraction of the shortest measured interval is reported
OFFSET_FRACTION = 0.01


def parse_servers(text):
    """``"a,b"`` -> ``["a", "b"]`` (blank items refused)."""
    servers = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in servers):
        raise ValueError(f"--servers {text!r}: expected server names separated by commas "
                         f"(e.g. localhost,server2)")
    return servers


def address_from_ssh_connection(text, server):
    """This machine's IPv4 address as ``server`` sees it, from the first field of
    ``$SSH_CONNECTION`` on the server (pure); ValueError naming the server when there is none."""
    fields = (text or "").split()
    if len(fields) != 4:
        raise ValueError(f"{server}: $SSH_CONNECTION is {text!r} there: expected 'CLIENT_IP "
                         f"CLIENT_PORT SERVER_IP SERVER_PORT' (is it reached over SSH?)")
    address = fields[0]
    if address.startswith("::ffff:"):
        address = address[len("::ffff:"):]
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"{server} reaches this machine at {address}, not an IPv4 address: the "
                         f"controller listens on IPv4; give the server's IPv4 address as its "
                         f"HostName in the ssh config")
    return address


def seen_address(server, ssh_config=None, timeout=30):
    """This machine's address as ``server`` sees it (its ``$SSH_CONNECTION``); ValueError."""
    proc = S.run(server, ["sh", "-c", 'echo "$SSH_CONNECTION"'], ssh_config, timeout=timeout)
    if proc.returncode:
        raise ValueError(f"{server}: ssh failed: {proc.stderr.strip() or proc.returncode}")
    return address_from_ssh_connection(proc.stdout.strip(), server)


def controller_listen(addresses):
    """Where the controller listens for switches seen at ``{server: address}`` (pure): 127.0.0.1
    with no remote server, their one address when they agree (this machine's switches reach it
    too: it is one of this machine's addresses), else every address (0.0.0.0)."""
    found = set(addresses.values())
    if not found:
        return "127.0.0.1"
    return found.pop() if len(found) == 1 else "0.0.0.0"


def server_info(server, ssh_config=None, timeout=60):
    """Return ``(info, error)``: the agent's facts on ``server`` and the clock offset, or why not."""
    if S.is_local(server):
        return {**A.info(), "tunnels": A.probe_tunnels(), "clock_offset_s": 0.0,
                "rtt_s": 0.0}, None
    t0 = time.time()
    try:
        proc = S.run(server, S.python_argv("topologies.cluster.agent", "info"), ssh_config,
                     timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout} s"
    t1 = time.time()
    if proc.returncode == 255:
        return None, f"ssh failed: {proc.stderr.strip() or 'exit 255'}"
    if proc.returncode:
        return None, (f"lblab's agent failed there ({proc.returncode}): "
                      f"{proc.stderr.strip()[-300:]}")
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"unreadable answer: {proc.stdout.strip()[:200]!r}"
    facts["clock_offset_s"] = round(facts["time"] - (t0 + t1) / 2, 6)
    try:
        facts["this_machine_as"] = address_from_ssh_connection(facts.get("ssh_connection"),
                                                               server)
    except ValueError as exc:
        facts["this_machine_as"] = None
        facts["this_machine_as_error"] = str(exc)
    facts["rtt_s"] = round(t1 - t0, 6)
    return facts, None


def ssh_tunnel_works(server, ssh_config=None):
    """Try one SSH Ethernet tunnel from here to ``server``; return None or why it failed."""
    if S.is_local(server):
        return None
    numbers = [3900 + os.getpid() % 50 * 2, 3901 + os.getpid() % 50 * 2]
    taps = [f"tap{n}" for n in numbers]
    try:
        for tap, where in zip(taps, ("localhost", server)):
            proc = S.run(where, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"], ssh_config)
            if proc.returncode:
                return f"ip tuntap add failed on {where}: {proc.stderr.strip()}"
        cmd = S.ssh_base(server, ssh_config) + ["echo @"]
        cmd[1:1] = ["-o", "Tunnel=ethernet", "-w", f"{numbers[0]}:{numbers[1]}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if not proc.stdout.startswith("@"):
            return (proc.stderr.strip() or "no tunnel") + \
                " (the server's sshd needs 'PermitTunnel ethernet' and root login by key)"
        return None
    finally:
        for tap, where in zip(taps, ("localhost", server)):
            S.run(where, ["ip", "link", "del", tap], ssh_config)


def doctor(servers, ssh_config=None, local=None):
    """Return ``[{"server", "checks": [{name, ok, value, fix}]}]`` for every server."""
    local = local or server_info("localhost")[0]
    out = []
    for server in servers:
        checks = []

        def check(name, ok, value, fix=None):
            checks.append({"name": name, "ok": bool(ok), "value": value,
                           "fix": None if ok else fix})

        facts, error = server_info(server, ssh_config)
        check("ssh", facts is not None, "reachable" if facts else error,
              f"ssh {'-F ' + ssh_config + ' ' if ssh_config else ''}{server} true must work as "
              f"root with a key (BatchMode); give the server's Host block (HostName, Port, "
              f"IdentityFile) in the ssh config (--ssh-config or LBLAB_SSH_CONFIG)")
        if facts is None:
            out.append({"server": server, "checks": checks})
            continue
        check("root", facts["euid"] == 0, f"uid {facts['euid']}",
              "log in as root (User root in the ssh config): lblab never uses sudo")
        for name in ("mininet", "openvswitch", "lblab"):
            mine, theirs = local["versions"].get(name), facts["versions"].get(name)
            check(name, theirs and theirs == mine, theirs or "absent",
                  f"install the same {name} as here ({mine}): 'make setup' on {server}")
        check("ovs running", facts["ovs_running"], "yes" if facts["ovs_running"] else "no",
              f"start Open vSwitch on {server} ('make setup' does)")
        offset = facts["clock_offset_s"]
        check("clock offset", abs(offset) < 0.05, f"{offset * 1000:+.1f} ms "
              f"(ssh round trip {facts['rtt_s'] * 1000:.0f} ms)",
              "synchronise the clocks (chrony/systemd-timesyncd): faults and windows are timed "
              "on this machine's clock")
        if not S.is_local(server):
            seen = facts.get("this_machine_as")
            check("controller address", seen is not None,
                  f"this machine is {seen} there (L4 switches connect to it)" if seen
                  else facts.get("this_machine_as_error"),
                  f"reach {server} at an IPv4 address (HostName in the ssh config): its "
                  f"switches connect to the controller at this machine's address as {server} "
                  f"sees it")
        check("tun", facts["tun"], "/dev/net/tun" if facts["tun"] else "absent",
              "load the tun module (modprobe tun): SSH tunnels need tap devices")
        tunnel = ssh_tunnel_works(server, ssh_config)
        check("tunnel ssh", tunnel is None, "works" if tunnel is None else tunnel,
              "set 'PermitTunnel ethernet' in the server's sshd_config (lblab uses SSH tunnels)")
        for kind in ("vxlan", "gretap"):
            ok = facts["tunnels"].get(kind)
            check(f"tunnel {kind}", True, "can be created" if ok else
                  "cannot be created (not used by lblab: SSH tunnels are)")
        out.append({"server": server, "checks": checks})
    return out


def clean(servers, ssh_config=None):
    """Clean every server (this machine first); return ``{server: report or error}``."""
    out = {}
    order = sorted(servers, key=lambda s: not S.is_local(s))
    for server in order:
        if S.is_local(server):
            out[server] = A.clean_report()
            continue
        proc = S.run(server, S.python_argv("topologies.cluster.agent", "clean"), ssh_config,
                     timeout=120)
        if proc.returncode:
            out[server] = {"error": proc.stderr.strip() or f"exit {proc.returncode}"}
            continue
        try:
            out[server] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[server] = {"error": f"unreadable answer: {proc.stdout.strip()[:200]!r}"}
    return out


def clock_warning(offset_s, shortest_s, server):
    """A warning when ``server``'s clock offset matters for intervals of ``shortest_s``."""
    if shortest_s and abs(offset_s) > OFFSET_FRACTION * shortest_s:
        return (f"the clock of {server} is {offset_s * 1000:+.1f} ms off this machine's, more "
                f"than {OFFSET_FRACTION:.0%} of the shortest interval ({shortest_s:g} s): "
                f"events timed across servers are that uncertain; synchronise the clocks")
    return None


def link_warnings(cross_links, servers_info):
    """Warnings for cross-server links configured faster than the SSH channel measured."""
    out = []
    for link in cross_links:
        remote = [s for s in link["servers"] if s in servers_info]
        rates = [servers_info[s].get("ssh_rate_mbit") for s in remote]
        rates = [r for r in rates if r]
        if not rates:
            continue
        rate = min(rates)
        if link.get("bw_mbit") is None or link["bw_mbit"] > rate:
            shown = "unshaped" if link.get("bw_mbit") is None else f"{link['bw_mbit']:g} Mbit/s"
            out.append(f"link {link['link']} crosses servers ({' - '.join(link['servers'])}) "
                       f"and is {shown}, faster than its SSH tunnel (~{rate:g} Mbit/s measured "
                       f"at start-up): the tunnel, not the link, limits it")
    return out
