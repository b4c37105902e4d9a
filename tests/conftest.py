"""Shared pytest configuration: the emulation gate.

Emulation tests (tests/emulation) need root, Open vSwitch and Mininet. Where they are missing the
tests skip with the reason — except when LBLAB_REQUIRE_EMULATION=1 (set by .ci/run), where a
missing prerequisite is a failure: CI is root and `make setup` starts Open vSwitch, so a skip
there would hide a broken set-up. Skips for kernel features the machine lacks (sch_netem) stay
skips: use `require_qdisc`.
"""
import os
import shutil
import subprocess

import pytest


def emulation_missing():
    """Return why emulation cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "emulation tests need root"
    for tool in ("ovs-vsctl", "mnexec"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run make setup)"
    if subprocess.run(["ovs-vsctl", "--timeout=5", "show"], capture_output=True).returncode:
        return "Open vSwitch is not running (run make setup)"
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        return "Mininet is not importable (run make setup)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/emulation/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.emulation)


def pytest_runtest_setup(item):
    if item.get_closest_marker("emulation") is None:
        return
    reason = emulation_missing()
    if reason is None:
        return
    if os.environ.get("LBLAB_REQUIRE_EMULATION") == "1":
        pytest.fail(f"LBLAB_REQUIRE_EMULATION=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_qdisc(name):
    """Skip (also in CI) when this kernel lacks a qdisc: a machine limit, not a set-up error."""
    from topologies.capabilities import qdisc_available
    if not qdisc_available(name):
        pytest.skip(f"this kernel has no sch_{name}: link {name} features cannot be emulated")
