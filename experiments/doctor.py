"""`lblab doctor`: what this machine can emulate, and how to get what is missing."""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys

from topologies import capabilities

TOOLS = {
    "haproxy": ("haproxy -v", "apt-get install haproxy (make setup does it)"),
    "nginx": ("nginx -v", "apt-get install nginx-light (make setup does it)"),
    "wrk": ("wrk --version", "apt-get install wrk (make setup does it)"),
    "iperf3": ("iperf3 --version", "apt-get install iperf3 (make setup does it)"),
    "ethtool": ("ethtool --version", "apt-get install ethtool (make setup does it)"),
    "mnexec": ("mnexec -v", "apt-get install mininet (make setup does it)"),
}
VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


def _version(command):
    try:
        proc = subprocess.run(command.split(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = VERSION_RE.search(proc.stdout + proc.stderr)
    return match.group(1) if match else "present"


def _module_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:  # noqa: BLE001 - any failure means "not installed"
        return None


def collect():
    """Return the machine's facts as a JSON-ready dict; each check has ``ok`` and ``fix``."""
    checks = []

    def check(name, ok, value, fix=None):
        checks.append({"name": name, "ok": bool(ok), "value": value, "fix": None if ok else fix})

    is_root = os.geteuid() == 0
    check("root", is_root, "yes" if is_root else "no",
          "run as root (sudo lblab …); emulation needs it")
    ovs = subprocess.run(["ovs-vsctl", "--timeout=5", "--version"], capture_output=True,
                         text=True) if shutil.which("ovs-vsctl") else None
    ovs_version = VERSION_RE.search(ovs.stdout).group(1) if ovs and ovs.returncode == 0 else None
    running = (shutil.which("ovs-vsctl") is not None and subprocess.run(
        ["ovs-vsctl", "--timeout=5", "show"], capture_output=True).returncode == 0)
    check("openvswitch", running, f"{ovs_version} running" if running else (ovs_version or "absent"),
          "make setup (installs openvswitch-switch and starts it)")
    datapath = capabilities.detect_datapath()
    check("datapath", True, datapath + (" (openvswitch kernel module loaded)" if datapath == "kernel"
                                        else " (userspace; no openvswitch kernel module)"))
    for qdisc in ("htb", "tbf", "netem"):
        ok = capabilities.qdisc_available(qdisc)
        fix = ("links with delay/loss/max_queue cannot be emulated here: use a kernel with "
               "sch_netem (e.g. the Vagrant VM)" if qdisc == "netem" else
               f"a kernel with sch_{qdisc}")
        if not is_root:
            fix = "run as root to probe tc qdiscs"
        check(f"tc {qdisc}", ok, "available" if ok else "missing", fix)
    mininet = _module_version("mininet")
    if mininet is None:
        try:
            import mininet.net  # noqa: F401
            from mininet.net import VERSION
            mininet = VERSION
        except ImportError:
            mininet = None
    check("mininet", mininet, mininet or "absent", "make setup (Debian package mininet)")
    osken = _module_version("os-ken")
    check("os-ken", osken, osken or "absent", "make setup (pip install os-ken into .venv)")
    check("python", True, platform.python_version())
    for tool, (command, fix) in TOOLS.items():
        version = _version(command) if shutil.which(command.split()[0]) else None
        check(tool, version, version or "absent", fix)
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": sys.executable,
        "checks": checks,
        "ok": all(c["ok"] for c in checks if c["name"] != "tc netem"),
    }


def main(argv):
    """Run ``lblab doctor``."""
    parser = argparse.ArgumentParser(prog="lblab doctor", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--servers", metavar="A,B",
                        help="also check these servers over SSH: reachability, Mininet/Open "
                             "vSwitch/lblab versions, clock offset, this machine's address "
                             "as each server sees it (where its switches reach an L4 "
                             "controller), which tunnel works (docs/scale.md)")
    parser.add_argument("--ssh-config", metavar="FILE",
                        help="the ssh -F file for --servers (default: $LBLAB_SSH_CONFIG)")
    args = parser.parse_args(argv)
    facts = collect()
    if args.servers:
        _servers(facts, args)
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
        return 0 if facts["ok"] else 1
    print(f"kernel {facts['kernel']}, {facts['cpus']} CPUs, {facts['python']}")
    for c in facts["checks"]:
        mark = "ok " if c["ok"] else "-- "
        line = f"  {mark} {c['name']:12s} {c['value']}"
        if c["fix"]:
            line += f"   -> {c['fix']}"
        print(line)
    for entry in facts.get("servers", []):
        print(f"server {entry['server']}:")
        for c in entry["checks"]:
            line = f"  {'ok ' if c['ok'] else '-- '} {c['name']:12s} {c['value']}"
            print(line + (f"   -> {c['fix']}" if c["fix"] else ""))
    print("ready to emulate" if facts["ok"] else "some parts are missing (see -> above)")
    return 0 if facts["ok"] else 1


def _servers(facts, args):
    from lblab_core.errors import UsageError
    from topologies.cluster import servers as cluster_servers
    from topologies.cluster.ssh import config_path
    try:
        servers = cluster_servers.parse_servers(args.servers)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    facts["servers"] = cluster_servers.doctor(servers, config_path(args.ssh_config))
    facts["ok"] = facts["ok"] and all(c["ok"] for e in facts["servers"] for c in e["checks"])
