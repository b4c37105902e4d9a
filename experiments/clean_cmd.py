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
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise UsageError("lblab clean needs root (it removes OVS bridges and interfaces)")
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
