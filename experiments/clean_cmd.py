"""`lblab clean`: remove what lblab left behind — its bridges, interfaces, namespaces' processes,
controller and engine processes — and nothing else. Never calls `mn -c`."""
import argparse
import json
import os

from lblab_core.errors import UsageError
from topologies import registry


def main(argv):
    """Run ``lblab clean``."""
    parser = argparse.ArgumentParser(prog="lblab clean", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print what was removed as JSON")
    parser.add_argument("--servers", metavar="A,B",
                        help="clean every one of these servers (this machine first), each from "
                             "its own registry, over SSH (docs/scale.md)")
    parser.add_argument("--ssh-config", metavar="FILE",
                        help="the ssh -F file for --servers (default: $LBLAB_SSH_CONFIG)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise UsageError("lblab clean needs root (it removes OVS bridges and interfaces)")
    if args.servers:
        return _clean_servers(args)
    report = registry.clean_all()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if not report:
        print("nothing to clean: no lblab run left anything behind")
    for entry in report:
        if entry["state"] == "running":
            print(f"run {entry['run_id']}: still running (pid {entry['owner']}), left alone")
            continue
        what = [f"{len(entry['processes'])} processes", f"{len(entry['bridges'])} bridges",
                f"{len(entry['interfaces'])} interfaces"]
        label = entry["run_id"] or "untracked lblab bridges"
        print(f"run {label}: removed {', '.join(what)}")
        for key in ("bridges", "interfaces"):
            if entry[key]:
                print(f"  {key}: {' '.join(entry[key])}")
    return 0


def _clean_servers(args):
    from topologies.cluster import servers as cluster_servers
    from topologies.cluster.ssh import config_path
    try:
        servers = cluster_servers.parse_servers(args.servers)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    reports = cluster_servers.clean(servers, config_path(args.ssh_config))
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    failed = [s for s, r in reports.items() if isinstance(r, dict)]
    if not args.json:
        for server, report in reports.items():
            if isinstance(report, dict):
                print(f"{server}: not cleaned: {report['error']}")
                continue
            done = [e for e in report if e["state"] == "cleaned"]
            running = [e["run_id"] for e in report if e["state"] == "running"]
            print(f"{server}: {len(done)} run(s) cleaned" +
                  (f", still running (left alone): {', '.join(running)}" if running else ""))
    return 1 if failed else 0
