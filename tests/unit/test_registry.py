"""The registry's process identity and records (no root: a temporary state directory)."""
import os
import subprocess
import sys

import pytest

from topologies import registry


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_STATE_DIR", str(tmp_path))
    registry.set_current(None)
    yield tmp_path
    registry.set_current(None)


def test_start_time_identifies_a_process():
    me = registry.proc_start_time(os.getpid())
    assert registry.alive(os.getpid(), me)
    assert not registry.alive(os.getpid(), me + 1)
    assert registry.proc_start_time(2 ** 22 + 12345) is None


def test_record_round_trip_and_owner():
    rec = registry.RunRecord.create(switches=["s1"], root_intfs=["s1-eth1"], run_id="t1")
    (loaded,) = registry.RunRecord.load_all()
    assert loaded.run_id == "t1" and loaded.data["switches"] == ["s1"]
    assert loaded.owner_alive()
    rec.remove()
    assert registry.RunRecord.load_all() == []


def test_track_process_without_lab_makes_a_process_record_and_untrack_drops_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rec = registry.track_process(proc, "sleeper")
        assert rec.data["kind"] == "process"
        assert rec.data["processes"][0]["marker"] == "sleeper"
        registry.untrack_process(rec, proc.pid)
        assert registry.RunRecord.load_all() == []
    finally:
        proc.kill()
        proc.wait()


def test_clean_record_kills_tracked_process_of_dead_owner(monkeypatch):
    # this test's state directory records no lab: every real lab's bridge would look orphaned
    # and be deleted under a lab another run has up (seen: an emulation run lost its s1)
    monkeypatch.setattr(registry, "tagged_bridges", lambda: {})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rec = registry.track_process(proc, "orphan")
        rec.data["owner"] = {"pid": 1, "start": -1, "marker": "owner"}  # an owner that is gone
        rec.save()
        report = registry.clean_all()
        assert report[0]["state"] == "cleaned" and report[0]["processes"] == [proc.pid]
        assert proc.wait(timeout=5) is not None
    finally:
        if proc.poll() is None:
            proc.kill()


HOLDER = """
import sys, time
from topologies import registry
lock = registry.NetworkLock(wait_sec=0).acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def _holder():
    """Start another process that holds the lab lock until its stdin gets a line."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    assert proc.stdout.readline().strip() == "held"
    return proc


def _let_go(proc):
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0


def test_lock_is_exclusive_between_processes_and_names_the_owner():
    proc = _holder()
    said = []
    try:
        with pytest.raises(registry.RegistryError, match="another lblab network is running") \
                as err:
            registry.NetworkLock(wait_sec=0.5, on_wait=said.append, report_sec=0.1).acquire()
        # the owner is named by pid and command line (from /proc/<pid>/cmdline)
        assert f"pid {proc.pid} (" in str(err.value) and "registry" in str(err.value)
        # while it waited it said whose lock it waits for, more than once
        assert len(said) >= 2 and all(f"held by pid {proc.pid}" in m for m in said)
    finally:
        _let_go(proc)
    registry.NetworkLock(wait_sec=0).acquire().release()


def test_lock_is_reentrant_within_a_process():
    # a batch takes the lock once; each run's LabNetwork takes it again in the same process
    # (a second open() of the file would wait for the first: flock is per open file)
    batch = registry.NetworkLock(wait_sec=0).acquire()
    assert registry.held_here()
    run = registry.NetworkLock(wait_sec=0).acquire()
    run.release()
    run.release()                       # idempotent: counts once
    assert registry.held_here()         # the batch still holds it between runs
    proc = subprocess.run([sys.executable, "-c",
                           "from topologies import registry\n"
                           "registry.NetworkLock(wait_sec=0.3, on_wait=print).acquire()"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "another lblab network is running" in proc.stderr
    batch.release()
    assert not registry.held_here()
    registry.NetworkLock(wait_sec=0).acquire().release()   # free for others again


def test_command_line_of_a_process():
    marker = "lblab-test-marker-argument"
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); "
                              "sys.stdin.read()", marker],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "up\n"      # running its own program (exec done)
        assert marker in registry.command_line(child.pid)
    finally:
        child.communicate()
    assert registry.command_line(2 ** 22 + 12345) is None
