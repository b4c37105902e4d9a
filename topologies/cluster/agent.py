"""lblab's side of a cluster on each server: ``python -m topologies.cluster.agent CMD``.

* ``serve``: started over SSH for one lab, for as long as the lab runs. It holds the server's lab
  lock and writes the server's registry record (``topologies.registry``, in the server's own
  ``LBLAB_STATE_DIR``) *before* the runner creates anything there: switches, root-namespace
  interfaces and tap names, host shells. Requests and answers are JSON lines on stdin/stdout.
  When its stdin closes (the runner finished, crashed or was SIGKILLed: the SSH connection
  goes), it removes what its record lists, with lblab's registry-based cleanup — never
  ``mn -c`` — and exits.
* ``exec -- ARGV``: runs ARGV (a host's process, attached to its namespace by ``mnexec``) and
  stops it (SIGTERM, then SIGKILL) when stdin closes: the runner stops a remote process by
  closing the SSH session's stdin and then waits for the exit status as for a local one. A line
  on stdin naming a signal (``KILL``, ``HUP``...) is sent to the process: that is how a fault
  kills a remote backend or reloads a remote proxy (``ClusterNetwork``'s ``RemoteProcess``).
* ``clean``: ``lblab clean`` of this server (waits a little for agents whose session just
  ended), and removes the work folders of the runs it cleaned.
* ``info``: versions and this server's clock, as JSON (``lblab doctor --servers``).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from topologies import registry

STOP_GRACE_SEC = 5.0
AGENT_GONE_SEC = 15.0


def work_root():
    """The folder of the runs' files on this server (``<state dir>/work``)."""
    return os.path.join(registry.state_dir(), "work")


def _versions():
    out = {"python": sys.version.split()[0]}
    try:
        from mininet.net import VERSION
        out["mininet"] = VERSION
    except ImportError:
        out["mininet"] = None
    try:
        proc = subprocess.run(["ovs-vsctl", "--timeout=5", "--version"], capture_output=True,
                              text=True, timeout=10)
        out["openvswitch"] = proc.stdout.split()[3] if proc.returncode == 0 else None
    except (OSError, IndexError, subprocess.TimeoutExpired):
        out["openvswitch"] = None
    try:
        from importlib import metadata
        out["lblab"] = metadata.version("lblab")
    except Exception:  # noqa: BLE001 - not installed
        out["lblab"] = None
    return out


def info():
    """This server's facts: versions, clock, state dir, tun and tunnel support."""
    return {"time": time.time(), "versions": _versions(), "state_dir": registry.state_dir(),
            "euid": os.geteuid(), "tun": os.path.exists("/dev/net/tun"),
            # "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT": this machine as the server sees it
            "ssh_connection": os.environ.get("SSH_CONNECTION"),
            "ovs_running": subprocess.run(["ovs-vsctl", "--timeout=5", "show"],
                                          capture_output=True).returncode == 0
            if shutil.which("ovs-vsctl") else False}


class Agent:
    """The state of ``serve``: the lock, the record, the work folder."""

    def __init__(self):
        self.lock = None
        self.record = None
        self.work = None

    def handle(self, req):
        op = req.get("op")
        if op == "time":
            return {"time": time.time()}
        if op == "info":
            return info()
        if op == "create":
            self.lock = registry.NetworkLock(req.get("wait_sec", 600.0)).acquire()
            self.record = registry.RunRecord.create(
                switches=req.get("switches", []), root_intfs=req.get("root_intfs", []),
                run_id=req["run_id"], kind="cluster")
            self.work = os.path.join(work_root(), req["run_id"])
            os.makedirs(self.work, exist_ok=True)
            return {"work": self.work, "state_dir": registry.state_dir(), "pid": os.getpid()}
        if op == "intfs":
            self.record.data["root_intfs"] += [i for i in req["names"]
                                               if i not in self.record.data["root_intfs"]]
            self.record.save()
            return {}
        if op == "host":
            self.record.add_host(req["name"], req["pid"])
            self.record.save()
            return {}
        if op == "process":
            self.record.add_process(req["pid"], req.get("marker", "process"))
            return {}
        if op == "clean":
            return {"removed": self.clean()}
        raise ValueError(f"unknown op {op!r}")

    def clean(self):
        removed = {}
        if self.record is not None:
            removed = registry.clean_record(self.record)
            self.record.remove()
            self.record = None
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        return removed


def serve(stdin=sys.stdin, stdout=sys.stdout):
    agent = Agent()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # the session ending is stdin's EOF
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                answer = {"ok": True, **agent.handle(json.loads(line))}
            except Exception as exc:  # noqa: BLE001 - the runner gets every failure as a line
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            stdout.write(json.dumps(answer) + "\n")
            stdout.flush()
    finally:
        agent.clean()
    return 0


def signal_line(sig):
    """The line that asks ``agent exec`` to send ``sig`` to its process (``"HUP\\n"``)."""
    return signal.Signals(sig).name[3:] + "\n"


def parse_signal_line(line):
    """``"HUP"`` -> ``signal.SIGHUP``; None for a line that names no signal (pure)."""
    name = line.strip().upper()
    if not name:
        return None
    try:
        return signal.Signals["SIG" + name]
    except KeyError:
        return None


def exec_(argv):
    """Run ``argv``; each line on stdin naming a signal (``KILL``, ``HUP``, ``TERM``...) is sent
    to it; SIGTERM (then SIGKILL) it when stdin closes; exit with its status."""
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def watch():
        try:
            with os.fdopen(0, "rb", buffering=0, closefd=False) as stdin:
                for raw in iter(stdin.readline, b""):
                    sig = parse_signal_line(raw.decode("ascii", "replace"))
                    if sig is not None and child.poll() is None:
                        child.send_signal(sig)
        except OSError:
            pass
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE_SEC)
            except subprocess.TimeoutExpired:
                child.kill()

    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    return code if code >= 0 else 128 - code


def clean():
    """``lblab clean`` on this server (see ``clean_report``), printed as JSON."""
    print(json.dumps(clean_report()))
    return 0


def probe_tunnels():
    """Which tunnel interfaces this kernel can create: ``{"gretap": bool, "vxlan": bool}``."""
    out = {}
    for kind, extra in (("gretap", ["local", "127.0.0.1", "remote", "127.0.0.3"]),
                        ("vxlan", ["id", "4242", "dstport", "4789", "local", "127.0.0.1"])):
        name = f"lblabprobe{os.getpid() % 10000}"
        made = subprocess.run(["ip", "link", "add", name, "type", kind] + extra,
                              capture_output=True).returncode == 0
        if made:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        out[kind] = made
    return out


def clean_report():
    """``lblab clean`` on this server, after agents whose session ended have finished."""
    deadline = time.monotonic() + AGENT_GONE_SEC
    while time.monotonic() < deadline and any(
            r.data.get("kind") == "cluster" and r.owner_alive()
            and r.data["owner"]["pid"] != os.getpid() for r in registry.RunRecord.load_all()):
        time.sleep(0.1)
    report = registry.clean_all()
    for entry in report:
        if entry["state"] == "cleaned" and entry["run_id"]:
            shutil.rmtree(os.path.join(work_root(), entry["run_id"]), ignore_errors=True)
    return report


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m topologies.cluster.agent serve|exec -- ARGV|clean|info",
              file=sys.stderr)
        return 2
    if argv[0] == "serve":
        return serve()
    if argv[0] == "exec":
        rest = argv[1:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        return exec_(rest)
    if argv[0] == "clean":
        return clean()
    if argv[0] == "info":
        print(json.dumps({**info(), "tunnels": probe_tunnels()}))
        return 0
    print(f"unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
