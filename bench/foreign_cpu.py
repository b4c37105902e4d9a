"""Other work's CPU while a bench runs, read from /proc: what makes a bench "loaded".

A sampler reads /proc once a second and adds up the CPU of every process that is not the
bench's own: its process tree, anything in a lab host's network namespace, Open vSwitch's
daemons and kernel threads (the packets' soft-interrupt work) are the bench's. Above
``FOREIGN_LIMIT`` cores on average, the bench's figures are noisy. The load average cannot say
this: a lab bench drives both cores itself, so its own load looks like someone else's.

``make bench`` (bench/all.py) samples around each bench; a bench run alone samples itself
(:func:`watch`), so its warning names other work, not its own.
"""
import os
import threading

FOREIGN_LIMIT = 0.10       # other work's CPU, in cores on average, above which a bench is loaded
OWN_COMMANDS = frozenset({"ovs-vswitchd", "ovsdb-server"})


def own_keys(table, root, my_netns):
    """Return the keys of the processes that belong to the bench (pure).

    Args:
        table (dict): (pid, start) -> {"pid", "ppid", "comm", "netns"} for one /proc sample.
        root (int): the bench's pid.
        my_netns (str): this process's network namespace (readlink of /proc/self/ns/net).
    A process is the bench's when it descends from ``root``, runs in another network namespace
    (a lab host), is an Open vSwitch daemon, or is a kernel thread (kthreadd's children, which do
    the packets' soft-interrupt work).
    """
    by_pid = {p["pid"]: key for key, p in table.items()}
    own = set()
    for key, p in table.items():
        if (p["netns"] not in (None, my_netns) or p["comm"] in OWN_COMMANDS
                or p["pid"] == 2 or p["ppid"] == 2):
            own.add(key)
            continue
        seen, cur = set(), p
        while cur is not None and cur["pid"] not in seen:
            if cur["pid"] == root:
                own.add(key)
                break
            seen.add(cur["pid"])
            parent = by_pid.get(cur["ppid"])
            cur = table.get(parent) if parent else None
    return own


def foreign_cpu(samples, root, my_netns):
    """Return (foreign CPU seconds, {command: seconds}) over a series of /proc samples (pure).

    Args:
        samples (list): tables as for :func:`own_keys` whose entries also have "cpu" (seconds
            of user + system time so far) and "new" (True when the process started after the
            first sample).
    A process once seen as the bench's stays the bench's (an orphan keeps its history).
    Processes that live less than the sampling period are missed.
    """
    own, prev, total, by_comm = set(), {}, 0.0, {}
    for table in samples:
        own |= own_keys(table, root, my_netns)
        for key, p in table.items():
            base = prev.get(key, 0.0 if p.get("new") and prev else None)
            if base is None:
                base = p["cpu"]            # running before the bench: count from here
            delta = max(0.0, p["cpu"] - base)
            prev[key] = p["cpu"]
            if key not in own and delta:
                total += delta
                by_comm[p["comm"]] = by_comm.get(p["comm"], 0.0) + delta
    return total, by_comm


def proc_table(first_boot_s=None):
    """Read one /proc sample (the shell of :func:`foreign_cpu`)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fp:
                raw = fp.read()
            netns = os.readlink(f"/proc/{name}/ns/net")
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        start = int(fields[19]) / tick
        table[(int(name), start)] = {
            "pid": int(name), "ppid": int(fields[1]), "comm": comm, "netns": netns,
            "cpu": (int(fields[11]) + int(fields[12])) / tick,
            "new": first_boot_s is not None and start > first_boot_s}
    return table


class ForeignSampler:
    """Samples /proc once a second in a thread while one bench runs."""

    def __init__(self, interval=1.0):
        self.interval, self.samples, self.root = interval, [], None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        with open("/proc/uptime", encoding="utf-8") as fp:
            self.since = float(fp.read().split()[0])

    def start(self, root):
        self.root = root
        self._thread.start()

    def _loop(self):
        while True:
            self.samples.append(proc_table(self.since))
            if self._stop.wait(self.interval):
                self.samples.append(proc_table(self.since))
                return

    def stop(self, seconds):
        """Return the facts: foreign CPU in cores on average, and its top commands."""
        self._stop.set()
        self._thread.join()
        total, by_comm = foreign_cpu(self.samples, self.root, os.readlink("/proc/self/ns/net"))
        top = sorted(by_comm.items(), key=lambda kv: -kv[1])[:3]
        return {"foreign_cores": total / max(seconds, 1e-9),
                "foreign_top": ", ".join(f"{c} {s:.0f} s" for c, s in top)}


def watch():
    """Start sampling for the calling process as the bench; return the sampler
    (``sampler.stop(seconds)`` gives the facts, :func:`warning` the line to print)."""
    sampler = ForeignSampler()
    sampler.start(os.getpid())
    return sampler


def warning(facts):
    """Return the line a loaded bench prints, or None when other work stayed under the limit."""
    if facts["foreign_cores"] <= FOREIGN_LIMIT:
        return None
    return (f"WARNING: other work took {100 * facts['foreign_cores']:.0f} % of a core while this "
            f"ran ({facts['foreign_top']}): the figures are noisy (ratios within a run are "
            f"steadier).")
