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


def test_lock_is_exclusive():
    first = registry.NetworkLock(wait_sec=0).acquire()
    try:
        # flock is per open file description: a second one in this process conflicts too
        with pytest.raises(registry.RegistryError, match="another lblab network is running"):
            registry.NetworkLock(wait_sec=0.3).acquire()
    finally:
        first.release()
    registry.NetworkLock(wait_sec=0).acquire().release()
