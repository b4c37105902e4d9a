"""What a results folder records about the machine and the code: versions, git state, CPU,
and the manifest of a run (as pyperf keeps ``_collect_metadata`` apart from its runner).
"""
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import yaml

from experiments import formats
from lb_apps.custom_balancer import copy_inputs

# 2: spec.yaml (verbatim) and spec.resolved.yaml beside it, "args" (the options to run the
# batch again), "resumes"; meta.json format 2 (a sweep is a list of {"param", "value"})
MANIFEST_VERSION = 2
SPEC_FILE = "spec.yaml"                  # the spec file byte for byte, comments included
RESOLVED_FILE = "spec.resolved.yaml"     # the spec as run: overrides applied, defaults filled
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _first_line(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else None


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mininet_version():
    try:
        from mininet.net import VERSION
        return VERSION
    except ImportError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_state(repo=REPO):
    """Return ``{"commit", "dirty"}`` of the lblab checkout (None values outside git)."""
    commit = _first_line(["git", "-C", repo, "rev-parse", "HEAD"])
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True,
                            text=True) if commit else None
    return {"commit": commit, "dirty": bool(status and status.stdout.strip())}


def versions():
    """Return the versions of what the lab runs on (None where a tool is missing)."""
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "lblab": _package_version("lblab"),
        "mininet": _mininet_version(),
        "openvswitch": _first_line(["ovs-vsctl", "--version"]),
        "os-ken": _package_version("os-ken"),
        "haproxy": _first_line(["haproxy", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "iperf3": _first_line(["iperf3", "--version"]),
    }


def manifest(spec, args, started):
    """Return the manifest dict of a run (everything needed to reproduce and judge it)."""
    from topologies import graphs
    graph = graphs.build(spec.topology.name, spec.topology.params)
    return {
        "v": MANIFEST_VERSION,
        "format_version": formats.FORMAT_VERSION,   # the results folder's (experiments.formats)
        "spec": spec.to_dict(),
        "spec_yaml": yaml.safe_dump(spec.data, sort_keys=False, allow_unicode=True),
        "spec_file": os.path.abspath(spec.source),
        "spec_verbatim": SPEC_FILE,
        "spec_resolved": RESOLVED_FILE,
        "overrides": list(args.overrides) + ([f"repetitions={args.repetitions}"]
                                             if args.repetitions is not None else []),
        # the options as given, for `lblab rerun` (order and seed also under "order")
        "args": {"overrides": list(args.overrides),
                 "repetitions": getattr(args, "repetitions", None),
                 "order": getattr(args, "order", None),
                 "order_seed": getattr(args, "order_seed", None)},
        "seed": spec.seed,
        "git": git_state(),
        "versions": versions(),
        "datapath": None,
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "hostname": platform.node(),
        "python_hash_seed": os.environ.get("PYTHONHASHSEED"),
        "link_features": graphs.link_features(graph),
        "topology": graphs.summary(graph),
        "command": ["lblab", "run"] + list(sys.argv[2:] if sys.argv[1:2] == ["run"] else []),
        "start": started,
        "end": None,
        "runs": [],
        "interrupted": False,
        "resumes": [],
    }


def write_spec_files(results_dir, spec, spec_bytes=None):
    """Write ``spec.yaml`` (the file as read, byte for byte) and ``spec.resolved.yaml``, and
    copy each balancer file the spec names into ``inputs/`` (``custom_balancer.copy_inputs``).

    Args:
        results_dir (str): the results folder.
        spec (experiments.spec.Spec): the validated spec (overrides applied).
        spec_bytes (bytes|None): the spec file's bytes; None reads ``spec.source`` again (or,
            for a spec that came from no file, writes its parsed data).
    """
    if spec_bytes is None:
        try:
            with open(spec.source, "rb") as fp:
                spec_bytes = fp.read()
        except OSError:
            spec_bytes = yaml.safe_dump(spec.data, sort_keys=False,
                                        allow_unicode=True).encode("utf-8")
    with open(os.path.join(results_dir, SPEC_FILE), "xb") as fp:
        fp.write(spec_bytes)
    resolved = {k: v for k, v in spec.to_dict().items() if k != "source"}
    with open(os.path.join(results_dir, RESOLVED_FILE), "x", encoding="utf-8") as fp:
        fp.write(f"# {spec.name}: the spec as run ({os.path.abspath(spec.source)} with the "
                 f"overrides in manifest.json),\n# every default filled in; for reading: "
                 f"lblab rerun runs {SPEC_FILE}\n")
        yaml.safe_dump(resolved, fp, sort_keys=False, allow_unicode=True)
    # balancer files ({file, class}) into inputs/: what rerun and --resume run (custom_balancer)
    copy_inputs(results_dir, resolved)


def utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def write_manifest(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fp:
        json.dump(data, fp, sort_keys=True, indent=1)
        fp.write("\n")
    os.replace(tmp, path)
