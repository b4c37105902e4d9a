"""Shared pytest configuration: the emulation gate.

Emulation tests (tests/emulation) need root, Open vSwitch and Mininet. Where they are missing the
tests skip with the reason — except when LBLAB_REQUIRE_EMULATION=1 (set by .ci/run), where a
missing prerequisite is a failure: CI is root and `make setup` starts Open vSwitch, so a skip
there would hide a broken set-up. Skips for kernel features the machine lacks (sch_netem) stay
skips: use `require_qdisc`, which tells such a kernel from a set-up problem (no tc, failing
unshare). `wait_for` is how a test waits for what it needs before asserting.
"""
import os
import shutil
import subprocess
import time

import pytest

DEFAULT_WAIT_SEC = 15.0


def wait_for(condition, what, timeout_sec=DEFAULT_WAIT_SEC, poll_sec=0.02):
    """Poll ``condition()`` until it returns something truthy; return that.

    Tests wait for the state they need (a socket listening, a request in service, a flood
    reaching the switch) and then assert; they never sleep a fixed time and hope.

    Args:
        condition (callable): returns a falsy value while the awaited state is not reached.
        what (str): the awaited state, for the failure message.
        timeout_sec (float): give up (AssertionError) after this long.
        poll_sec (float): pause between polls.
    Returns:
        object: the first truthy value of ``condition()``.
    Raises:
        AssertionError: not reached within ``timeout_sec``; names ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout_sec
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_sec:g} s: {what} "
                                 f"(last value {value!r})")
        time.sleep(poll_sec)


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


# What tc prints when the kernel has no such qdisc (with and without netlink extended acks).
UNKNOWN_QDISC_ERRORS = ("Specified qdisc kind is unknown", "No such file or directory")


def qdisc_missing(name):
    """Return ``(kind, reason)`` saying why tc cannot install qdisc ``name`` here, or None.

    ``kind`` is ``"kernel"`` when the kernel lacks the qdisc (tc itself said so), ``"setup"``
    for everything else: not root, no ``tc`` or ``unshare``, ``unshare -n`` failing, or tc
    failing for another reason. Runs the same probe as
    ``topologies.capabilities.qdisc_available`` one step at a time.
    """
    from topologies.capabilities import QDISC_PROBES
    if os.geteuid() != 0:
        return "setup", f"probing for sch_{name} needs root"
    for tool in ("unshare", "tc"):
        if shutil.which(tool) is None:
            return "setup", f"{tool} not found (run make setup)"
    namespace = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if namespace.returncode:
        return "setup", (f"'unshare -n' failed with status {namespace.returncode}: "
                         f"{namespace.stderr.strip()}")
    probe = subprocess.run(["unshare", "-n", "sh", "-c", QDISC_PROBES[name]],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    error = probe.stderr.strip()
    if any(text in error for text in UNKNOWN_QDISC_ERRORS):
        return "kernel", f"this kernel has no sch_{name} ('{QDISC_PROBES[name]}': {error})"
    return "setup", f"'{QDISC_PROBES[name]}' failed with status {probe.returncode}: {error}"


def require_qdisc(name):
    """Skip (also in CI) when this kernel lacks a qdisc: a machine limit, not a set-up error.

    Anything else that stops the probe (no tc, no unshare, unshare failing) is a set-up
    problem, reported as such: a failure under LBLAB_REQUIRE_EMULATION=1, else a skip naming it.
    """
    from topologies.capabilities import qdisc_available
    if qdisc_available(name):
        return
    kind, reason = qdisc_missing(name) or (
        "setup", f"the sch_{name} probe failed earlier in this run but passes now")
    if kind == "kernel":
        pytest.skip(f"{reason}: link {name} features cannot be emulated")
    if os.environ.get("LBLAB_REQUIRE_EMULATION") == "1":
        pytest.fail(f"LBLAB_REQUIRE_EMULATION=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def walk_json(node):
    """Yield every mapping in a decoded JSON document (schemas' tests walk them)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_json(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_json(value)
