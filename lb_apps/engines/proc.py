"""Thin process shell around HAProxy and nginx: write the run directory, check, start, stop.

The configs come from :mod:`lb_apps.engines.render` (pure). ``popen`` is injectable so the experiment
runner can start an engine on a Mininet host (``lab.popen``/``host.popen``); every command is
started through it, so the check runs where the engine will run.

Stopping follows what was seen here: a SIGKILLed nginx master leaves its workers running. So
:func:`stop_engine` asks politely (nginx SIGQUIT = graceful, HAProxy SIGTERM = stop now), waits,
escalates, and then checks that no process of the engine's session is left (each engine is
started in its own session, so its session id is the master's pid).

``main(argv)`` is ``lblab engine render|check`` (the dispatcher calls it directly).
"""
import argparse
import dataclasses
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import psutil

from lb_apps.engines import render as engines
from lb_apps.engines.render import EngineError
from lb_apps.l7config import L7ConfigError, load_l7_config
from lblab_core.errors import UsageError

CHECK_TIMEOUT_SEC = 30.0
READY_TIMEOUT_SEC = 10.0
STOP_GRACE_SEC = 10.0
KILL_WAIT_SEC = 5.0
# An nginx master exits only after its workers, so whatever is left in the session shortly
# after the master is gone is a stray (e.g. workers of a SIGKILLed master).
STRAY_SETTLE_SEC = 0.5
POLL_SEC = 0.05
HAPROXY_BIN = "haproxy"
NGINX_BIN = "nginx"
ENGINE_LOG = "engine.log"
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclasses.dataclass
class EngineProcess:
    """A started engine: its master process and where its files are."""
    engine: str
    process: object
    run_dir: str
    config_path: str
    log_path: str


@dataclasses.dataclass(frozen=True)
class EngineStop:
    """How an engine stopped: exit status, the signals sent, and stray processes killed."""
    returncode: int
    signals: tuple
    leftovers_killed: tuple


def hard_nofile_limit():
    """Return the hard RLIMIT_NOFILE (HAProxy/nginx raise their soft limit up to it).

    Returns:
        int: the hard limit, capped at 2**20 when unlimited.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)


def render_kwargs(engine):
    """Return extra render arguments for this machine (nginx ``user`` when running as root).

    Args:
        engine (str): ``haproxy`` or ``nginx``.
    Returns:
        dict: keyword arguments for :func:`lb_apps.engines.render.render`.
    """
    if engine == "nginx" and os.geteuid() == 0:
        # Root nginx would switch its workers to 'nobody', which cannot read htpasswd files or
        # write temp files in a 0700 run directory (pytest's tmp_path is 0700).
        return {"user": pwd.getpwuid(0).pw_name}
    return {}


def _write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fp:
        fp.write(text)


def _read_tls(cfg):
    texts = []
    for label, path in (("tls.cert", cfg.tls.cert), ("tls.key", cfg.tls.key)):
        try:
            with open(path, encoding="utf-8") as fp:
                texts.append(fp.read())
        except OSError as exc:
            raise EngineError(f"{label}: cannot read {path!r}: {exc.strerror} "
                              f"(run 'make setup' to create the lab certificate)") from None
    return texts


def prepare_run_dir(engine, cfg, run_dir, ulimit_n=None, access_log=True):
    """Create ``run_dir`` with the engine config and every file it refers to.

    Args:
        engine (str): ``haproxy`` or ``nginx``.
        cfg (L7Config): the parsed L7 config.
        run_dir (str): directory (created if missing; made absolute).
        ulimit_n (int|None): hard open-files limit (default: this process's).
        access_log (bool): per-request access log.
    Returns:
        str: the config file path.
    Raises:
        EngineError: unsupported feature, unreadable TLS files.
    """
    run_dir = os.path.abspath(str(run_dir))
    ulimit_n = hard_nofile_limit() if ulimit_n is None else ulimit_n
    text = engines.render(engine, cfg, run_dir, ulimit_n, access_log=access_log,
                          **render_kwargs(engine))
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    if cfg.tls is not None:
        cert, key = _read_tls(cfg)
        if engine == "haproxy":
            _write(os.path.join(run_dir, engines.TLS_PEM), cert.rstrip("\n") + "\n" + key)
        else:
            _write(os.path.join(run_dir, engines.TLS_CERT), cert)
            _write(os.path.join(run_dir, engines.TLS_KEY), key)
    if engine == "nginx":
        for name in NGINX_TEMP_DIRS:
            os.makedirs(os.path.join(run_dir, "tmp", name), mode=0o700, exist_ok=True)
        for path, content in engines.htpasswd_files(cfg, run_dir).items():
            _write(path, content)
    config_name = engines.HAPROXY_CONFIG if engine == "haproxy" else engines.NGINX_CONFIG
    config_path = os.path.join(run_dir, config_name)
    _write(config_path, text)
    return config_path


def _check_command(engine, config_path, run_dir):
    if engine == "haproxy":
        return [HAPROXY_BIN, "-c", "-f", config_path]
    return [NGINX_BIN, "-t", "-q", "-e", "stderr", "-c", config_path, "-p", run_dir + "/"]


def _run_command(engine, config_path, run_dir):
    if engine == "haproxy":
        return [HAPROXY_BIN, "-db", "-f", config_path]
    return [NGINX_BIN, "-e", os.path.join(run_dir, "error.log"), "-c", config_path,
            "-p", run_dir + "/"]


def check_config(engine, config_path, run_dir, popen=subprocess.Popen):
    """Run the engine's own config check (``haproxy -c`` / ``nginx -t``).

    Args:
        engine (str): ``haproxy`` or ``nginx``.
        config_path (str): the rendered config.
        run_dir (str): the run directory (nginx prefix).
        popen (callable): ``subprocess.Popen`` or a Mininet host's ``popen``.
    Returns:
        str: the check's output.
    Raises:
        EngineError: the check failed or timed out (the message holds its output).
    """
    cmd = _check_command(engine, config_path, os.path.abspath(str(run_dir)))
    try:
        proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise EngineError(f"{engine}: '{cmd[0]}' not found; install it ('make setup')") from None
    try:
        out, _ = proc.communicate(timeout=CHECK_TIMEOUT_SEC)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise EngineError(f"{engine}: config check '{' '.join(cmd)}' did not finish in "
                          f"{CHECK_TIMEOUT_SEC:g} s") from None
    text = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
    if proc.returncode != 0:
        raise EngineError(f"{engine}: config check failed (exit {proc.returncode}) for "
                          f"{config_path}: {text.strip()}")
    return text


def _ready_path(engine, run_dir):
    if engine == "haproxy":
        return engines.haproxy_socket_path(run_dir)
    return os.path.join(run_dir, "nginx.pid")


def _is_ready(engine, path):
    """nginx writes its pid file only after binding every listener. HAProxy creates its stats
    socket while binding, before a later listener may fail; it answers ``show info`` only once
    its event loop runs, that is, after every listener is bound."""
    if not os.path.exists(path):
        return False
    if engine == "nginx":
        return True
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
            sock.sendall(b"show info\n")
            return b"Name: HAProxy" in sock.recv(4096)
    except OSError:
        return False


def start_engine(engine, cfg, run_dir, popen=subprocess.Popen, ulimit_n=None, access_log=True,
                 ready_timeout=READY_TIMEOUT_SEC):
    """Write the run directory, check the config, start the engine in the foreground.

    Args:
        engine (str): ``haproxy`` or ``nginx``.
        cfg (L7Config): the parsed L7 config.
        run_dir (str): directory for config, logs and runtime files.
        popen (callable): ``subprocess.Popen`` or a Mininet host's ``popen`` (which must start
            the command as a session leader, as ``mnexec -d`` does).
        ulimit_n (int|None): hard open-files limit (default: this process's).
        access_log (bool): per-request access log.
        ready_timeout (float): seconds to wait for the engine to bind its listeners.
    Returns:
        EngineProcess: the handle for :func:`stop_engine`.
    Raises:
        EngineError: unsupported feature, failed check, or the engine exited or did not get
            ready (it is stopped first; the message holds the end of its log).
    """
    run_dir = os.path.abspath(str(run_dir))
    config_path = prepare_run_dir(engine, cfg, run_dir, ulimit_n, access_log)
    check_config(engine, config_path, run_dir, popen)
    ready = _ready_path(engine, run_dir)
    if os.path.lexists(ready):
        os.unlink(ready)
    log_path = os.path.join(run_dir, ENGINE_LOG)
    # The engine must lead its own session so stop_engine can find its workers. Mininet's popen
    # runs 'mnexec -d', which calls setsid itself (and forks first if already a group leader,
    # which would lose the pid), so only plain subprocess.Popen is asked for a new session.
    extra = {"start_new_session": True} if popen is subprocess.Popen else {}
    with open(log_path, "ab") as log:
        process = popen(_run_command(engine, config_path, run_dir), stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, **extra)
    handle = EngineProcess(engine, process, run_dir, config_path, log_path)
    deadline = time.monotonic() + ready_timeout
    while not _is_ready(engine, ready):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with status {process.returncode}" if process.poll() is not None
                   else f"was not ready ({ready} missing) after {ready_timeout:g} s")
            stop_engine(handle)
            raise EngineError(f"{engine}: {why}; log {log_path}: {_tail(log_path)}")
        time.sleep(POLL_SEC)
    return handle


def _tail(path, lines=5):
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return " | ".join(line.strip() for line in fp.readlines()[-lines:])
    except OSError:
        return "(no log)"


def session_processes(pid):
    """Return the live processes in the session started by ``pid`` (the engine master).

    Args:
        pid (int): the master's pid (session and process group leader).
    Returns:
        list[psutil.Process]: processes whose session id is ``pid``.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == pid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _wait(process, timeout):
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _status(proc):
    try:
        return proc.status()
    except psutil.NoSuchProcess:
        return None


def stop_engine(handle, grace=STOP_GRACE_SEC):
    """Stop an engine and make sure none of its processes is left.

    nginx gets SIGQUIT (graceful: finish in-flight requests), HAProxy SIGTERM (immediate);
    after ``grace`` seconds SIGTERM/SIGKILL follow. Then any process still in the engine's
    session (an orphaned nginx worker) is killed by pid.

    Args:
        handle (EngineProcess): from :func:`start_engine`.
        grace (float): seconds to wait after the first signal.
    Returns:
        EngineStop: exit status, signals sent, stray pids killed.
    Raises:
        EngineError: a process of the engine survived SIGKILL.
    """
    process, sent = handle.process, []
    pid = process.pid
    first = signal.SIGQUIT if handle.engine == "nginx" else signal.SIGTERM
    for sig, wait in ((first, grace), (signal.SIGTERM, KILL_WAIT_SEC),
                      (signal.SIGKILL, KILL_WAIT_SEC)):
        if process.poll() is not None:
            break
        if sig in sent:
            continue
        process.send_signal(sig)
        sent.append(sig)
        if _wait(process, wait):
            break
    deadline = time.monotonic() + STRAY_SETTLE_SEC
    left = session_processes(pid)
    while left and time.monotonic() < deadline:
        time.sleep(POLL_SEC)
        left = session_processes(pid)
    killed = []
    for proc in left:
        try:
            proc.kill()
            killed.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(left, timeout=KILL_WAIT_SEC)
    # A killed orphan stays a zombie until its new parent reaps it; it runs nothing.
    alive = [p for p in alive if _status(p) not in (None, psutil.STATUS_ZOMBIE)]
    if handle.engine == "haproxy":
        sock = engines.haproxy_socket_path(handle.run_dir)
        if os.path.dirname(sock) != handle.run_dir and os.path.lexists(sock):
            os.unlink(sock)  # the short /tmp fallback would otherwise pile up
    if alive:
        raise EngineError(f"{handle.engine}: processes {[p.pid for p in alive]} of the engine "
                          f"started as pid {pid} survived SIGKILL")
    return EngineStop(returncode=process.returncode if process.returncode is not None else -9,
                      signals=tuple(s.name for s in sent), leftovers_killed=tuple(killed))


def cleanup_run_dir(run_dir):
    """Remove a run directory written by :func:`prepare_run_dir` (logs included).

    Args:
        run_dir (str): the directory.
    """
    shutil.rmtree(run_dir, ignore_errors=True)



def _parser():
    parser = argparse.ArgumentParser(
        prog="lblab engine",
        description="Render HAProxy/nginx configs from an L7 config, and check them with the "
                    "engine itself. See docs/engines.md for what each engine can express.")
    sub = parser.add_subparsers(dest="action", required=True)
    for name, text in (("render", "print (or write) the engine config"),
                       ("check", "write the run directory and run the engine's config check")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--engine", required=True, choices=engines.ENGINES)
        p.add_argument("--config", required=True, help="L7 config file (YAML or JSON)")
        p.add_argument("--run-dir", default=None,
                       help="directory for the engine's files (default .lab/engines/<engine>)")
        if name == "render":
            p.add_argument("-o", "--output", default=None, help="write here instead of stdout")
    return parser


def main(argv):
    """Run ``lblab engine render|check``.

    Args:
        argv (list[str]): arguments after ``engine``.
    Returns:
        int: exit status.
    Raises:
        lblab_core.errors.UsageError: bad config, unsupported feature, or a failed engine check.
    """
    args = _parser().parse_args(argv)
    run_dir = os.path.abspath(args.run_dir or os.path.join(".lab", "engines", args.engine))
    try:
        cfg = load_l7_config(args.config)
        if args.action == "render":
            text = engines.render(args.engine, cfg, run_dir, hard_nofile_limit(),
                                  **render_kwargs(args.engine))
            if args.output:
                with open(args.output, "w", encoding="utf-8") as fp:
                    fp.write(text)
            else:
                sys.stdout.write(text)
            return 0
        config_path = prepare_run_dir(args.engine, cfg, run_dir)
        output = check_config(args.engine, config_path, run_dir)
    except (L7ConfigError, EngineError) as exc:
        raise UsageError(str(exc)) from None
    if output.strip():
        print(output.strip())
    print(f"{args.engine}: {config_path} is valid")
    return 0
