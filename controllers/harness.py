"""Run the controller as its own process and configure backend hosts for direct server return.

:class:`ControllerProcess` is the one way the controller is started as a process: by the
runner (``experiments.run_lab``), the emulation tests and the benchmarks. It runs
``python -m controllers.launcher``, registered with ``topologies.registry`` so ``lblab clean``
can kill it after a crash, and is stopped in ``finally``.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from lblab_core.netutil import free_port
from topologies import registry

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT_SEC = 20.0
STOP_GRACE_SEC = 5.0


class HarnessError(RuntimeError):
    """A harnessed process (the controller, a backend) did not start or answer; the message
    says which and why (for the controller: its log tail)."""


def dsr_commands(vip, intf="eth0"):
    """Return the shell commands that let a backend host answer a VIP directly (l2 mode, DSR).

    The backend holds the VIP on loopback so it accepts packets addressed to it, but must never
    answer ARP for it (``arp_ignore=1``: only for addresses on the receiving interface) nor use it
    as the source of its own ARP requests (``arp_announce=2``), or clients would bypass the
    balancer. Sysctls are per network namespace, so this touches only that host.

    Args:
        vip (str): the service's virtual IP.
        intf (str): the backend's interface facing the network (Mininet: ``<host>-eth0``).
    Returns:
        list[str]: commands to run in the backend's namespace, in order.
    """
    cmds = []
    for scope in ("all", intf):
        cmds.append(f"sysctl -q -w net.ipv4.conf.{scope}.arp_ignore=1")
        cmds.append(f"sysctl -q -w net.ipv4.conf.{scope}.arp_announce=2")
    cmds.append(f"ip addr replace {vip}/32 dev lo")
    return cmds


def start_http_backend(lab, host, port, timeout=10.0):
    """Start ``lblab backend`` on a lab host's port and wait until it listens.

    Args:
        lab (topologies.network.LabNetwork): the running lab.
        host (str): the host to run it on (it names itself after the host in ``X-Backend``).
        port (int): TCP port.
        timeout (float): seconds to wait for the listening socket.
    Returns:
        subprocess.Popen: the backend process (the lab stops it on teardown).
    Raises:
        HarnessError: it did not listen within ``timeout`` (or exited).
    """
    proc = lab.popen(host, [sys.executable, "-m", "lb_apps.backend.server", "--name",
                            host, "--port", str(port)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while "LISTEN" not in lab.host(host).cmd(f"ss -ltnH 'sport = :{port}' | cut -c1-6"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise HarnessError(f"backend {host}:{port} did not start listening within "
                               f"{timeout:g} s (exit status {proc.poll()})")
        time.sleep(0.1)
    return proc


def api_call(port, method, path, body=None, timeout=5.0):
    """Call the controller's JSON API on 127.0.0.1; return (status, decoded JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


class ControllerProcess:
    """The controller running in its own process for the duration of a ``with`` block.

    Args:
        config (dict): a controller config (``controller``/``topology``/``services``); the
            OpenFlow and API ports are picked free unless given.
        workdir (str): where the config and the log are written (unless given below).
        config_path (str|None): the config file to write (default ``workdir/controller.json``).
        log_path (str|None): the log to append to (default ``workdir/controller.log``).
        log_level (str|None): ``--log-level`` of the launcher (default: the launcher's).
    """

    def __init__(self, config, workdir, config_path=None, log_path=None, log_level=None):
        self.config = json.loads(json.dumps(config))
        settings = self.config.setdefault("controller", {})
        settings.setdefault("ofp_port", free_port())
        settings.setdefault("api_port", free_port())
        self.ofp_port = settings["ofp_port"]
        self.api_port = settings["api_port"]
        self.workdir = workdir
        self.config_path = config_path or os.path.join(workdir, "controller.json")
        self.log_path = log_path or os.path.join(workdir, "controller.log")
        self.log_level = log_level
        self.proc = None
        self.record = None

    def __enter__(self):
        return self.start()

    def start(self):
        """Start the process and wait until its API answers and its OpenFlow port listens.

        Returns:
            ControllerProcess: self.
        Raises:
            HarnessError: it exited or did not come up (the message has its log tail); the
                process is stopped before this is raised.
        """
        for path in (self.config_path, self.log_path):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(self.config_path, "w", encoding="utf-8") as fp:
            json.dump(self.config, fp, sort_keys=True)
        argv = [sys.executable, "-m", "controllers.launcher", "--config", self.config_path]
        if self.log_level is not None:
            argv += ["--log-level", self.log_level]
        log = open(self.log_path, "a", encoding="utf-8")
        try:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.record = registry.track_process(self.proc, "controller")
        try:
            self.wait_api()
            self.wait_openflow()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, lines=30):
        """Return the last lines of the controller log."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fp:
                return "".join(fp.readlines()[-lines:])
        except OSError:
            return ""

    def wait_api(self, timeout=START_TIMEOUT_SEC):
        """Wait until the API answers (raises HarnessError with the log if it never does)."""
        self._wait_until(lambda: self.api("GET", "/services", timeout=1.0), "API not up",
                         timeout)

    def wait_openflow(self, timeout=START_TIMEOUT_SEC):
        """Wait until the OpenFlow port accepts connections (switches can connect)."""
        host = self.config["controller"].get("ofp_host", "127.0.0.1")   # where switches reach it
        host = "127.0.0.1" if host == "0.0.0.0" else host
        self._wait_until(
            lambda: socket.create_connection((host, self.ofp_port), timeout=0.5).close(),
            f"not listening on OpenFlow port {self.ofp_port}", timeout)

    def _wait_until(self, ready, what, timeout):
        """Call ``ready()`` until it raises no OSError; HarnessError if the process exits or
        ``timeout`` passes (with the log's tail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"controller exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                ready()
                return
            except OSError:
                time.sleep(0.1)
        raise HarnessError(f"controller {what} after {timeout}s:\n{self.log_tail()}")

    def api(self, method, path, body=None, timeout=5.0):
        """Call the API; return (status, JSON)."""
        return api_call(self.api_port, method, path, body, timeout)

    def wait_switches(self, names, timeout=30.0):
        """Wait until every switch in ``names`` is connected; return True if they all are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                switches = self.api("GET", "/stats", timeout=2.0)[1]["switches"]
                if all(switches.get(n, {}).get("connected") for n in names):
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        """Stop the controller (SIGTERM, then SIGKILL) and forget it in the registry."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=STOP_GRACE_SEC)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_GRACE_SEC)
            except ProcessLookupError:
                pass
        if self.record is not None:
            registry.untrack_process(self.record, self.proc.pid)
            self.record = None
