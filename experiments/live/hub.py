"""The live source: frames of the runs of a ``lblab run``/``shell``/``lab start`` as they happen.

A :class:`Hub` is handed to each ``experiments.run_lab.Run`` (``run.live``). When the run's
telemetry starts, :meth:`Hub.run_started` returns the sampler's ``on_sample`` callback; each
sample then reads the load generators' records written since the last one (:class:`RecordTail`)
and adds a frame. The server reads frames under the hub's lock; nothing here touches the lab.
The hub's own CPU time (in the sampler's thread) is kept in ``cpu_s``.

A frame waits until its second is complete. A load generator buffers its records and writes
them about once a second (``flush_period_s``), all it holds at once; a frame made as soon as
its sample came would count only the records already written (a third of the rate was seen).
So a sample is kept until every load generator's file has been written at or after the
sample's time (its modification time, read before and after the new lines: every record that
ended before that write is in the file), or until a sample ``LAG_CAP_S`` later came (a load
generator that writes nothing, e.g. with no request ending); the run's end releases the rest.
The page is thereby about one flush behind the lab, and its counts are those of the replay.
"""
import glob
import json
import math
import os
import threading
import time

from experiments.live import feed
from experiments.live.replay import config_mean, window_summary

# The longest a sample waits for the records of its second (seconds of sample time): beyond
# it the frame is made with what was written (a load generator that stopped writing).
LAG_CAP_S = 2.5


class RecordTail:
    """Reads the complete lines appended to a run's ``loadgen-*.jsonl`` since the last call."""

    def __init__(self, run_dir):
        self.dir = run_dir
        self.offsets = {}
        self.partial = {}
        self.complete = {}    # path -> epoch s up to which every ended record is in the file

    @property
    def horizon(self):
        """Epoch s up to which every load generator's ended records have been read: the
        oldest of the files' last writes (a file not there yet holds no record that ended
        before it was looked for: no file, no bound)."""
        return min(self.complete.values()) if self.complete else math.inf

    def read(self):
        """Return the new records (dicts); a line not yet ended waits for the next call.

        Also moves each file's ``complete`` time to its last write, when no write came in
        while it was read (the file's size and modification time the same before and after).
        """
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "loadgen-*.jsonl"))):
            try:
                with open(path, "rb") as fp:
                    before = os.fstat(fp.fileno())
                    fp.seek(self.offsets.get(path, 0))
                    data = fp.read()
                    after = os.fstat(fp.fileno())
            except OSError:
                continue
            end = self.offsets.get(path, 0) + len(data)
            if (after.st_size == before.st_size == end
                    and after.st_mtime_ns == before.st_mtime_ns):
                self.complete[path] = before.st_mtime_ns / 1e9
            if not data:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(data)
            data = self.partial.pop(path, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self.partial[path] = lines[-1]
            for line in lines[:-1]:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "scheduled" in rec:
                    out.append(rec)
        return out


class _LiveRun:
    def __init__(self, info, topo, run_dir, backends, warmup_s, faults):
        self.info = info
        self.topo = topo
        self.dir = run_dir
        self.builder = feed.FrameBuilder(info, topo, None, backends)
        self.tail = RecordTail(run_dir)
        self.frames = []
        self.warmup_s = warmup_s
        self.faults = faults          # the Run's faults_done list (appended as faults apply)
        self.first_t = None
        self.waiting = []             # samples whose records may not all be written yet
        self.building = threading.Lock()


class Hub:
    """The live view's source of frames (see docs/live.md); thread-safe."""

    mode = "live"

    def __init__(self, planned=None):
        """
        Args:
            planned (list[str]|None): the batch's run names in order (for ``index``/``runs``).
        """
        self.planned = list(planned or [])
        self._runs = {}            # name -> _LiveRun, in start order
        self._by_dir = {}          # the run's folder -> its name
        self._current = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.seq = 0               # grows with every frame and every run start
        self.cpu_s = 0.0

    # -- the run's side ----------------------------------------------------------------------
    def run_started(self, run, meta):
        """Register a run whose lab is up; return the telemetry's ``on_sample`` callback."""
        name = meta["run"]
        index = self.planned.index(name) if name in self.planned else len(self._runs)
        total = max(len(self.planned), index + 1)
        info = feed.run_info(meta, index, total, run.spec.warmup_s, run.spec.duration_s)
        topo = feed.topology(run.graph, dict(run.roles.backends))
        live = _LiveRun(info, topo, run.dir, [b.name for b in run.spec.backends],
                        run.spec.warmup_s, run.faults_done)
        with self._changed:
            self._runs[name] = live
            self._by_dir[run.dir] = name
            self._current = name
            self.seq += 1
            self._changed.notify_all()
        return lambda sample: self.add_sample(name, sample)

    def add_sample(self, name, sample):
        """Take one telemetry sample of run ``name``; make the frames whose records are in."""
        cpu0 = time.thread_time()
        live = self._runs[name]
        with live.building:
            live.waiting.append(sample)
            self._build(live, final=False)
        self.cpu_s += time.thread_time() - cpu0

    def _build(self, live, final):
        """Read the new records; make the frames of the waiting samples whose second is
        complete (all of them when ``final``: the load generators have ended)."""
        records = live.tail.read()
        b = live.builder
        if live.first_t is None and live.waiting:
            live.first_t = live.waiting[0]["t"]
        starts = [r["scheduled"] for r in records if not r.get("warmup")]
        if starts and (b.measure_start is None or min(starts) < b.measure_start):
            b.measure_start = min(starts)      # the union window's start, as meta.json's
        if live.first_t is not None:
            b.start_estimate = live.first_t + live.warmup_s   # until the records say
        b.add_records(records)
        horizon = live.tail.horizon
        newest = live.waiting[-1]["t"] if live.waiting else None
        made = []
        while live.waiting:
            t = live.waiting[0]["t"]
            if not (final or t <= horizon or t <= newest - LAG_CAP_S):
                break
            made.append(b.frame(live.waiting.pop(0), list(live.faults)))
        if made:
            with self._changed:
                live.frames.extend(made)
                self.seq += 1
                self._changed.notify_all()

    def run_stopped(self, run):
        """Make the run's last frames (its load generators have ended) and mark it done."""
        with self._lock:
            name = self._by_dir.get(run.dir)
            live = self._runs.get(name)
        if live is not None:
            cpu0 = time.thread_time()
            with live.building:
                self._build(live, final=True)
            self.cpu_s += time.thread_time() - cpu0
        with self._changed:
            if live is not None:
                live.info["status"] = "done"
                if live.frames:
                    live.frames[-1]["run"]["phase"] = "done"
            self.seq += 1
            self._changed.notify_all()

    # -- the server's side -------------------------------------------------------------------
    def wait(self, seq, timeout):
        """Block until ``self.seq`` passes ``seq`` or ``timeout`` s pass; return ``self.seq``."""
        with self._changed:
            self._changed.wait_for(lambda: self.seq != seq, timeout)
            return self.seq

    def _find(self, name):
        with self._lock:
            name = name or self._current
            if name is None:
                return None
            live = self._runs.get(name)
        if live is None:
            raise LookupError(f"run={name}: no such run yet; expected one of "
                              f"{', '.join(self._runs) or '(none started)'}")
        return live

    def runs(self):
        """Return the RUN of every run started so far, and the planned ones not yet started."""
        with self._lock:
            out = [dict(r.info) for r in self._runs.values()]
        started = {r["run"] for r in out}
        out += [{"run": n, "index": i, "runs": len(self.planned), "status": "planned"}
                for i, n in enumerate(self.planned) if n not in started]
        return out

    def run(self, name=None):
        """Return the RUN of ``name`` (default: the current run), or None before the first."""
        live = self._find(name)
        return None if live is None else dict(live.info)

    def topology(self, name=None):
        """Return the TOPOLOGY of a run (``{}`` before the first)."""
        live = self._find(name)
        return {} if live is None else live.topo

    def frames(self, name=None):
        """Return the frames of a run so far."""
        live = self._find(name)
        if live is None:
            return []
        with self._lock:
            return list(live.frames)

    def summary(self, name=None):
        """Return the SUMMARY of a finished run (its ``meta.json`` written), else LookupError."""
        from experiments import report
        live = self._find(name)
        if live is None or not os.path.exists(os.path.join(live.dir, "meta.json")):
            raise LookupError(f"run={name or self._current}: not finished; the window's "
                              f"numbers are computed when the run ends")
        meta, metrics, _ = report.read_run(live.dir)
        out = window_summary(meta, metrics)
        out["config_mean"] = config_mean([metrics] if meta.get("status") == "ok" else [],
                                         [b["name"] for b in meta["backends"]])
        return out


class serving:
    """``with serving(address, say) as hub:`` a Hub served at ``address`` (or None: no view).

    Args:
        address (tuple|None): ``(host, port)`` from ``--live``, or None (yields None).
        say (callable): prints one line (where the page is).
    Stops the server on leaving, also on Ctrl-C and errors.
    """

    def __init__(self, address, say=print):
        self.address = address
        self.say = say
        self.server = None

    def __enter__(self):
        if self.address is None:
            return None
        from experiments.live.server import LiveServer
        hub = Hub()
        self.server = LiveServer(hub, *self.address).start()
        self.say(f"live view: {self.server.url} (read-only; stops with the run)")
        return hub

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.stop()
        return False
