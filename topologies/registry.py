"""What lblab created on this machine, written down before it is created, so `lblab clean` can
remove exactly that after a crash (and nothing else).

State lives in ``/run/lblab`` (``LBLAB_STATE_DIR`` overrides it, e.g. for tests):

* ``lock`` — one lab network at a time per machine (``flock``): Mininet's interface names
  (``s1-eth1``) would collide between two concurrent labs.
* ``runs/<run_id>.json`` — one record per running lab: owner process, switch names, root-namespace
  interface names, host shell pids, and processes started for it (controller, engines), each
  process identified by pid *and* start time so a recycled pid is never killed.

OVS bridges made by lblab also carry ``external_ids:lblab-run=<run_id>``; only tagged bridges are
ever deleted.
"""
import fcntl
import json
import os
import signal
import subprocess
import threading
import time
import uuid

BRIDGE_TAG = "lblab-run"


class RegistryError(RuntimeError):
    """The registry could not be used (another lab holds the lock, state dir not writable…)."""


def state_dir():
    """Return the state directory (``$LBLAB_STATE_DIR`` or ``/run/lblab``), creating it."""
    path = os.environ.get("LBLAB_STATE_DIR", "/run/lblab")
    os.makedirs(os.path.join(path, "runs"), exist_ok=True)
    return path


def proc_start_time(pid):
    """Return a process's start time in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fp:
            data = fp.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19])


def alive(pid, start_time):
    """True when ``pid`` is running and is the same process (same start time)."""
    return start_time is not None and proc_start_time(pid) == start_time


def process_entry(pid, marker):
    """Return the registry entry of a running process."""
    return {"pid": pid, "start": proc_start_time(pid), "marker": marker}


def command_line(pid):
    """Return a process's command line (``/proc/<pid>/cmdline``) as one string, or None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fp:
            raw = fp.read()
    except OSError:
        return None
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return text or None


def lock_owner(path):
    """Return ``"pid N (command line)"`` of the pid written in a lock file, or ``"?"``."""
    try:
        with open(path, encoding="utf-8") as fp:
            text = fp.read().strip()
    except OSError:
        text = ""
    if not text.isdigit():
        return "?"
    cmd = command_line(int(text))
    return f"pid {text} ({cmd})" if cmd else f"pid {text}"


def _say_on_stderr(message):
    import sys
    print(f"lblab: {message}", file=sys.stderr, flush=True)


# The lock this process holds, shared by every NetworkLock of the process: flock belongs to an
# open file description, so a second open() of the lock file in the same process would wait
# for the first. {"pid", "fp", "depth"}; the pid tells a forked child that it holds nothing.
_held = {}
_held_guard = threading.Lock()


class NetworkLock:
    """The machine-wide lab lock (``flock`` on ``<state>/lock``), re-entrant within a process.

    A batch (``lblab run``) takes it once for all its runs; each run's ``LabNetwork`` takes it
    again and, since this process holds it already, only counts one more holder: another
    user's lab cannot slip in between two runs. The file is unlocked when the last holder of
    the process releases it.

    Args:
        wait_sec (float): how long to wait for another process's lab (None: no limit).
        on_wait (callable|None): called with a message naming the owner (pid and command
            line) and the seconds waited, every ``report_sec`` while waiting (default: a line
            on stderr).
        report_sec (float): how often ``on_wait`` is called.
    """

    def __init__(self, wait_sec=600.0, on_wait=None, report_sec=5.0):
        self.wait_sec = wait_sec
        self.on_wait = on_wait or _say_on_stderr
        self.report_sec = report_sec
        self.fp = None
        self.held = False

    def acquire(self):
        """Take the lock, waiting up to ``wait_sec``.

        Raises:
            RegistryError: another lab kept it for longer; the message names its owner.
        """
        with _held_guard:
            if _held.get("pid") == os.getpid():
                _held["depth"] += 1
                self.held = True
                return self
        path = os.path.join(state_dir(), "lock")
        fp = open(path, "a+")
        started = time.monotonic()
        next_report = started + self.report_sec
        while True:
            try:
                fcntl.flock(fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if self.wait_sec is not None and now - started >= self.wait_sec:
                    owner = lock_owner(path)
                    fp.close()
                    raise RegistryError(
                        f"another lblab network is running ({owner}); wait for it to "
                        f"finish, or stop it and run 'lblab clean'") from None
                if now >= next_report:
                    self.on_wait(f"waiting for the lab lock held by {lock_owner(path)} "
                                 f"({now - started:.0f} s so far)")
                    next_report = now + self.report_sec
                time.sleep(0.2)
        fp.seek(0)
        fp.truncate()
        fp.write(str(os.getpid()))
        fp.flush()
        with _held_guard:
            _held.update(pid=os.getpid(), fp=fp, depth=1)
        self.fp = fp
        self.held = True
        return self

    def release(self):
        """Release this holder's share of the lock (idempotent)."""
        if not self.held:
            return
        self.held = False
        self.fp = None
        with _held_guard:
            if _held.get("pid") != os.getpid():
                return
            _held["depth"] -= 1
            if _held["depth"] > 0:
                return
            fp = _held.pop("fp")
            _held.clear()
        fcntl.flock(fp, fcntl.LOCK_UN)
        fp.close()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def held_here():
    """True when this process holds the lab lock."""
    with _held_guard:
        return _held.get("pid") == os.getpid()


class RunRecord:
    """The record of one lab's resources, saved to disk on every change."""

    def __init__(self, data, path):
        self.data = data
        self.path = path

    @classmethod
    def create(cls, switches=(), root_intfs=(), run_id=None, kind="network"):
        """Write a new record owned by this process and return it."""
        run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        data = {
            "run_id": run_id,
            "kind": kind,
            "owner": process_entry(os.getpid(), "owner"),
            "created": time.time(),
            "switches": list(switches),
            "root_intfs": list(root_intfs),
            "hosts": {},
            "processes": [],
        }
        record = cls(data, os.path.join(state_dir(), "runs", f"{run_id}.json"))
        record.save()
        return record

    @classmethod
    def load_all(cls):
        """Return every record on disk (unreadable files are skipped and reported by clean)."""
        records = []
        folder = os.path.join(state_dir(), "runs")
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                path = os.path.join(folder, name)
                try:
                    with open(path) as fp:
                        records.append(cls(json.load(fp), path))
                except (OSError, ValueError):
                    continue
        return records

    @property
    def run_id(self):
        return self.data["run_id"]

    def owner_alive(self):
        owner = self.data["owner"]
        return alive(owner["pid"], owner["start"])

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fp:
            json.dump(self.data, fp, sort_keys=True, indent=1)
        os.replace(tmp, self.path)

    def add_host(self, name, pid):
        self.data["hosts"][name] = process_entry(pid, f"mininet:{name}")

    def add_process(self, pid, marker):
        self.data["processes"].append(process_entry(pid, marker))
        self.save()

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


_current = []


def set_current(record):
    """Make ``record`` the one ``track_process`` adds to (the running LabNetwork's)."""
    _current[:] = [record] if record is not None else []


def track_process(popen_or_pid, marker):
    """Register a root-namespace process (a controller, an engine) with the running lab.

    Args:
        popen_or_pid (subprocess.Popen|int): the process.
        marker (str): a word for reports (``controller``, ``haproxy``…).
    Returns:
        RunRecord: the record it was added to (a new one of kind ``process`` if no lab runs).
    """
    pid = getattr(popen_or_pid, "pid", popen_or_pid)
    record = _current[0] if _current else RunRecord.create(kind="process")
    record.add_process(pid, marker)
    return record


def untrack_process(record, pid):
    """Forget a process that was stopped cleanly; drop a process-only record when empty."""
    record.data["processes"] = [p for p in record.data["processes"] if p["pid"] != pid]
    if record.data["kind"] == "process" and not record.data["processes"]:
        record.remove()
    else:
        record.save()


# --- cleaning ---------------------------------------------------------------------------------

def _netns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _pids_in_netns(netns):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _netns(int(entry)) == netns:
            pids.append(int(entry))
    return pids


def _kill(entries, grace_sec=2.0):
    """SIGTERM each (pid, start) still alive, then SIGKILL what is left; return pids signalled."""
    targets = [(pid, start) for pid, start in entries if alive(pid, start)]
    for pid, _ in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_sec
    while time.monotonic() < deadline and any(alive(p, s) for p, s in targets):
        time.sleep(0.05)
    for pid, start in targets:
        if alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return [pid for pid, _ in targets]


def tagged_bridges():
    """Return ``{bridge: run_id}`` for every OVS bridge lblab tagged (empty if OVS is down)."""
    try:
        out = subprocess.run(
            ["ovs-vsctl", "--timeout=5", "--format=json", "--columns=name,external_ids",
             "find", "bridge", f"external_ids:{BRIDGE_TAG}!=\"\""],
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    bridges = {}
    for name, (_, pairs) in json.loads(out)["data"]:
        tags = dict(pairs)
        if BRIDGE_TAG in tags:
            bridges[name] = tags[BRIDGE_TAG]
    return bridges


def existing_links():
    """Return the names of the network interfaces of the root namespace."""
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return set()


def clean_record(record, live_runs=()):
    """Remove everything ``record`` lists that still exists; return what was removed.

    Processes inside the record's host namespaces are killed (their namespaces, and the veth
    ends in them, vanish with them), then recorded processes, then tagged bridges, then recorded
    root-namespace interfaces.

    Args:
        record (RunRecord): the run to clean.
        live_runs (iterable[str]): run ids whose bridges must be kept.
    Returns:
        dict: ``{"processes": [...], "bridges": [...], "interfaces": [...]}``.
    """
    removed = {"processes": [], "bridges": [], "interfaces": []}
    # Our own namespace as well as pid 1's: where /proc/1/ns/net cannot be read (containers),
    # a switch's shell (root namespace) would otherwise look like a host's namespace, and every
    # process of the root namespace would be killed.
    root_ns = {ns for ns in (_netns(1), _netns(os.getpid())) if ns}
    entries = []
    for name, host in sorted(record.data["hosts"].items()):
        if alive(host["pid"], host["start"]):
            netns = _netns(host["pid"])
            if netns and root_ns and netns not in root_ns:
                entries += [(pid, proc_start_time(pid)) for pid in _pids_in_netns(netns)]
            else:
                entries.append((host["pid"], host["start"]))
    entries += [(p["pid"], p["start"]) for p in record.data["processes"]]
    removed["processes"] = _kill(entries)
    bridges = [b for b, run in tagged_bridges().items()
               if run == record.run_id and run not in live_runs]
    if bridges:
        cmd = ["ovs-vsctl", "--timeout=10"]
        for bridge in sorted(bridges):
            cmd += ["--", "--if-exists", "del-br", bridge]
        subprocess.run(cmd, capture_output=True, check=False)
        removed["bridges"] = sorted(bridges)
    present = existing_links()
    for intf in record.data["root_intfs"]:
        if intf in present:
            subprocess.run(["ip", "link", "del", intf], capture_output=True, check=False)
            removed["interfaces"].append(intf)
    return removed


def clean_all():
    """Clean every run whose owner is gone, and tagged bridges of runs nobody records.

    Returns:
        list[dict]: one entry per run: ``run_id``, ``state`` (``cleaned`` | ``running``), removed.
    """
    report = []
    records = RunRecord.load_all()
    live = {r.run_id for r in records if r.owner_alive()}
    for record in records:
        if record.run_id in live:
            report.append({"run_id": record.run_id, "state": "running",
                           "owner": record.data["owner"]["pid"]})
            continue
        removed = clean_record(record, live)
        record.remove()
        report.append({"run_id": record.run_id, "state": "cleaned", **removed})
    known = {r.run_id for r in records}
    orphans = sorted(b for b, run in tagged_bridges().items() if run not in known)
    if orphans:
        cmd = ["ovs-vsctl", "--timeout=10"]
        for bridge in orphans:
            cmd += ["--", "--if-exists", "del-br", bridge]
        subprocess.run(cmd, capture_output=True, check=False)
        report.append({"run_id": None, "state": "cleaned", "processes": [],
                       "bridges": orphans, "interfaces": []})
    return report
