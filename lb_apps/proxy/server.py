"""lblab's L7 reverse proxy: the asyncio/uvloop shell (listener, sweep, health checks, stats,
signals, SO_REUSEPORT workers). Connection handling lives in ``lb_apps.proxy.conn``; decisions in the
pure modules (``http_rules``, ``routing``, ``cache``, ``sticky``, ``health``).

Run: ``lblab proxy --config lab.yaml [--workers N]``. SIGTERM/SIGINT drain (stop accepting,
finish in-flight requests, exit); SIGHUP reloads the config file (an invalid file is rejected
and the old config keeps serving).
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time

from lb_apps.l7config import L7ConfigError, load_l7_config, parse_l7_config, read_l7_data
from lb_apps.proxy.conn import ClientConnection
from lb_apps.proxy.runtime import Runtime
from lblab_core import entry
from lblab_core.errors import UsageError

SWEEP_PERIOD_SEC = 0.1  # resolution of every timeout (client header, idle, connect, response)
DRAIN_POLL_SEC = 0.05
DRAIN_GRACE_SEC = 1.0  # added to the response timeout when waiting for in-flight requests
LISTEN_BACKLOG = 1024
STATS_FORMAT_VERSION = "1.0"


def _line(stream, text):
    """Write one line in a single write: workers share stdout/stderr, and ``print`` writes the
    text and its newline separately when Python runs unbuffered (PYTHONUNBUFFERED), so two
    workers' lines could interleave."""
    stream.write(text + "\n")
    stream.flush()


def _log(message):
    _line(sys.stderr, f"lblab proxy[{os.getpid()}]: {message}")


def server_ssl_context(tls):
    """Build the listener's TLS context from the config (None when TLS is off).

    Args:
        tls (lb_apps.l7config.TLS|None): cert and key paths.
    Returns:
        ssl.SSLContext|None: the context.
    Raises:
        L7ConfigError: the certificate or key cannot be loaded.
    """
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise L7ConfigError("tls", "tls.cert", f"cannot load certificate {tls.cert!r} / key "
                                               f"{tls.key!r}: {exc}") from None
    return ctx


class ProxyServer:
    """One worker's proxy: listener, connections, runtime state and background tasks.

    Args:
        config (lb_apps.l7config.L7Config): validated config.
        config_path (str|None): file re-read on reload.
        worker (int): worker index (stats port offset).
        reuse_port (bool): bind with SO_REUSEPORT (several workers share the port).
        override (dict|None): top-level keys set from the command line (``--workers``,
            ``--listen``), applied again to the file on every reload.
    """

    def __init__(self, config, config_path=None, worker=0, reuse_port=False, override=None):
        self.config = config
        self.config_path = config_path
        self.override = override
        self.worker = worker
        self.reuse_port = reuse_port
        self.rt = Runtime(config, seed=worker)
        self.conns = set()
        self.draining = False
        self.tls = config.tls is not None
        self.proto = b"https" if self.tls else b"http"
        self.loop = None
        self.now = 0.0
        self.server = None
        self.stats_server = None
        self.port = None
        self.stats_port = None
        self.started = time.time()
        self._tasks = []
        self._health_tasks = []

    async def start(self):
        """Bind the listener (and stats endpoint) and start the sweep and health checks."""
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()
        cfg = self.config
        self.server = await self.loop.create_server(
            lambda: ClientConnection(self), cfg.listen.host, cfg.listen.port,
            ssl=server_ssl_context(cfg.tls), reuse_port=self.reuse_port or None,
            backlog=LISTEN_BACKLOG)
        self.port = self.server.sockets[0].getsockname()[1]
        if cfg.stats is not None:
            port = cfg.stats.port + self.worker if cfg.stats.port else 0
            self.stats_server = await asyncio.start_server(self._stats_client, cfg.stats.host, port)
            self.stats_port = self.stats_server.sockets[0].getsockname()[1]
        self._tasks.append(self.loop.create_task(self._sweep()))
        self._start_health()

    async def _sweep(self):
        while True:
            await asyncio.sleep(SWEEP_PERIOD_SEC)
            now = self.now = self.loop.time()
            for conn in list(self.conns):
                conn.tick(now)
            for backend in self.rt.backends.values():
                if backend.health.on_timer(now):
                    backend.set_serving_in_balancers()

    def _start_health(self):
        for task in self._health_tasks:
            task.cancel()
        self._health_tasks = [self.loop.create_task(self._check_loop(b))
                              for b in self.rt.health_targets()]

    async def _check_loop(self, backend):
        settings = backend.health.active
        while not backend.retired:
            passed = await probe(backend.address, backend.port, settings.path, settings.timeout,
                                 backend.ssl)
            if backend.health.on_check(passed, self.loop.time()):
                backend.set_serving_in_balancers()
                _log(f"backend {backend.name} is {'up' if backend.health.serving() else 'down'}"
                     f" (active check {settings.path})")
            await asyncio.sleep(settings.interval)

    async def _stats_client(self, reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            body = json.dumps(self.stats(), sort_keys=True).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def stats(self):
        """Return this worker's statistics (JSON-ready)."""
        data = self.rt.describe()
        data.update({"format_version": STATS_FORMAT_VERSION, "pid": os.getpid(),
                     "worker": self.worker, "connections": len(self.conns),
                     "draining": self.draining, "uptime_s": round(time.time() - self.started, 3)})
        return data

    def reload(self):
        """Re-read the config file; keep the old config if the new one is invalid.

        Returns:
            bool: whether the new config is now serving.
        """
        if self.config_path is None:
            _log("reload: no config file to re-read")
            return False
        try:
            config = load_config(self.config_path, self.override)
        except L7ConfigError as exc:
            _log(f"reload rejected, old config keeps serving: {exc}")
            return False
        return self.apply(config)

    def apply(self, config):
        """Swap in a new validated config (listener settings need a restart).

        Args:
            config (lb_apps.l7config.L7Config): the new config.
        Returns:
            bool: True.
        """
        old = self.config
        for key in ("listen", "tls", "workers", "stats"):
            if getattr(old, key) != getattr(config, key):
                _log(f"reload: '{key}' changed; it takes effect only after a restart")
        self.rt = Runtime(config, previous=self.rt, seed=self.worker)
        self.config = config
        self._start_health()
        _log("reloaded config")
        return True

    async def drain(self, timeout=None):
        """Stop accepting, let in-flight requests finish, close idle connections.

        Args:
            timeout (float|None): seconds to wait (default: response timeout + grace).
        Returns:
            int: connections cut because they did not finish in time.
        """
        self.draining = True
        if self.server is not None:
            self.server.close()
        if timeout is None:
            timeout = self.rt.timeouts.response + DRAIN_GRACE_SEC
        deadline = self.loop.time() + timeout
        for conn in list(self.conns):
            conn.close_if_idle()
        while self.conns and self.loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_SEC)
            for conn in list(self.conns):
                conn.close_if_idle()
        cut = len(self.conns)
        for conn in list(self.conns):
            conn.abort()
        return cut

    async def stop(self):
        """Cancel background tasks and close every socket."""
        if self.server is not None:
            self.server.close()
        if self.stats_server is not None:
            self.stats_server.close()
        for task in self._tasks + self._health_tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._health_tasks, return_exceptions=True)
        for conn in list(self.conns):
            conn.abort()
        for backend in self.rt.backends.values():
            for up in backend.idle:
                up.close()
            backend.idle.clear()
        await asyncio.sleep(0)


async def probe(address, port, path, timeout, ssl_ctx=None):
    """Run one active health check: ``GET path``; 2xx/3xx within ``timeout`` passes.

    Returns:
        bool: whether the check passed.
    """
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=ssl_ctx,
                                    server_hostname=address if ssl_ctx else None), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\n"
                     f"User-Agent: lblab-health\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and \
            parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, asyncio.TimeoutError, ssl.SSLError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()


async def serve(config, config_path=None, worker=0, reuse_port=False, ready=None, override=None):
    """Run one worker until SIGTERM/SIGINT, then drain and exit.

    Args:
        config (lb_apps.l7config.L7Config): validated config.
        config_path (str|None): file re-read on SIGHUP.
        worker (int): worker index.
        reuse_port (bool): bind with SO_REUSEPORT.
        ready (callable|None): called with the started ProxyServer.
        override (dict|None): command-line settings re-applied on reload (see ProxyServer).
    Returns:
        int: exit status (0 after a clean drain).
    """
    server = ProxyServer(config, config_path, worker, reuse_port, override)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    scheme = "https" if server.tls else "http"
    stats = f", stats on http://{config.stats.host}:{server.stats_port}/" if server.stats_port else ""
    _line(sys.stdout, f"lblab proxy: worker {worker} listening on {scheme}://"
                      f"{config.listen.host}:{server.port}{stats}")
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
        _log("draining")
        cut = await server.drain()
        if cut:
            _log(f"drain timed out: {cut} connection(s) cut")
    finally:
        await server.stop()
    return 0


def run_loop(coro):
    """Run a coroutine on a uvloop event loop (uvloop is a dependency: no silent fallback)."""
    import uvloop
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    uvloop.install()
    return asyncio.run(coro)


def run_workers(config, config_path, workers, override=None):
    """Fork ``workers`` processes sharing the port with SO_REUSEPORT; forward signals to them.

    Returns:
        int: 0 if every worker exited cleanly, else 1.
    """
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_loop(serve(config, config_path, index, reuse_port=True,
                                      override=override))
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum, _frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        if os.waitstatus_to_exitcode(code) != 0:
            status = 1
    return status


def build_parser():
    """Return the ``lblab proxy`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="lblab proxy",
        description="Run lblab's L7 reverse proxy (HTTP/1.1, uvloop + httptools). SIGTERM "
                    "drains, SIGHUP reloads the config file. See docs/l7.md.")
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="L7 config (YAML or JSON): listen, backends, groups, routes, ...")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes sharing the port with SO_REUSEPORT "
                             "(overrides 'workers' in the config)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="override the config's listen address")
    parser.add_argument("--check", action="store_true",
                        help="validate the config (and TLS files) and exit")
    return parser


def load_config(config_path, override=None):
    """Load the config file with command-line settings applied to its data before validation,
    so ``--check``, a real start and a reload run exactly the same checks (the models').

    Args:
        config_path (str): the file.
        override (dict|None): top-level keys to set (``workers``, ``listen``).
    Returns:
        lb_apps.l7config.L7Config: the validated config.
    Raises:
        L7ConfigError: every problem (an overridden value's errors name the flags).
    """
    if not override:
        return load_l7_config(config_path)
    data, lines = read_l7_data(config_path)
    if isinstance(data, dict):
        data = {**data, **override}
    # An overridden value has no line in the file: its errors name the flag instead.
    lines = {k: v for k, v in lines.items() if k and k[0] not in override}
    flags = " ".join(f"--listen {v['host']}:{v['port']}" if key == "listen" else f"--{key} {v}"
                     for key, v in override.items())
    return parse_l7_config(data, source=f"{config_path} ({flags})", lines=lines)


def _override(args):
    """Return the top-level settings that ``--workers``/``--listen`` set (None if neither)."""
    override = {}
    if args.workers is not None:
        override["workers"] = args.workers
    if args.listen is not None:
        host, sep, port = args.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError(f"--listen: expected HOST:PORT, got {args.listen!r}")
        override["listen"] = {"host": host.strip("[]") or "0.0.0.0", "port": int(port)}
    return override or None


def main(argv=None):
    """Run ``lblab proxy``.

    Args:
        argv (list[str]|None): arguments without the program name.
    Returns:
        int: exit status.
    Raises:
        lblab_core.errors.UsageError: invalid config or options.
    """
    args = build_parser().parse_args(argv)
    override = _override(args)
    try:
        config = load_config(args.config, override)
        server_ssl_context(config.tls)
    except L7ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.check:
        groups = ", ".join(f"{g.name}({len(g.backends)} {g.algorithm})"
                           for g in config.groups.values())
        print(f"{args.config}: ok; groups {groups}; {len(config.routes)} route(s)")
        return 0
    if config.workers > 1:  # a fixed listen.port: the config's model checked it
        return run_workers(config, args.config, config.workers, override)
    try:
        return run_loop(serve(config, args.config, override=override))
    except OSError as exc:
        raise UsageError(f"listen: cannot serve on {config.listen.host}:{config.listen.port}: "
                         f"{exc.strerror or exc}") from None


if __name__ == "__main__":
    # `python -m lb_apps.proxy.server ...` (how the proxy starts on a Mininet host) is `lblab proxy`
    sys.exit(entry.run("proxy", main))
