"""Execute one experiment run (a balancer, a sweep point, a repetition) in a fresh Mininet lab.

Builds the topology, starts the controller (L4) before the switches or the proxy/engine (L7) on
the lb host, the backends on the backend hosts, the load generators on the client hosts, applies
the faults on schedule, samples host CPU, collects records and stats, and tears everything down
in ``finally`` (also on Ctrl-C). Writes ``raw/<config>-r<rep>/`` as ``experiments.report``
reads it. Needs root, Open vSwitch and Mininet.
"""
import json
import os
import subprocess
import sys
import threading
import time

from controllers.harness import ControllerProcess, HarnessError, dsr_commands
from experiments import formats
from experiments import run_plan as plan
from experiments.run_faults import FaultActions
from topologies import graphs
from lblab_core.netutil import free_port

READY_TIMEOUT_SEC = 20.0
# The balancer must report every configured backend in its pool within this long after the
# service first answers (L4: health up after ``rise`` probes; L7: every worker serving each).
POOL_READY_TIMEOUT_SEC = 20.0
POOL_POLL_SEC = 0.1
# CPU above this (percent of all cores, mean over the measurement) marks a run as saturated:
# the emulation then measures the machine, not the balancer (the Mininet-HiFi argument).
SATURATED_CPU_PERCENT = 90.0
CPU_SAMPLE_SEC = 0.5
IPERF_SERVER_START_SEC = 0.5
IPERF_GRACE_SEC = 20.0    # a client still running this long after its test is stopped
# meta.json's "v" (2: "sweep" is a list of {"param", "value"}): experiments.formats owns it
META_VERSION = formats.META_VERSION


class RunFailed(RuntimeError):
    """A run could not be completed; the message says which step and why."""


def _tail_text(text, lines=5):
    return " | ".join(text.strip().splitlines()[-lines:])


def _tail(path, lines=5):
    try:
        with open(path, encoding="utf-8", errors="replace") as fp:
            return " | ".join(fp.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def _write_json(path, data):
    with open(path, "x", encoding="utf-8") as fp:
        json.dump(data, fp, sort_keys=True, indent=1)
        fp.write("\n")


def http_status(host, url, timeout=1.0):
    """GET ``url`` from a Mininet host with curl; return the HTTP status (0: no answer)."""
    # -k: an https service is the L7 proxy terminating TLS with the lab's self-signed certificate
    out = host.cmd(f"curl -s -k -o /dev/null -w '%{{http_code}}' --max-time {timeout} '{url}'")
    try:
        return int(out.strip()[-3:])
    except ValueError:
        return 0


class CpuSampler(threading.Thread):
    """Samples whole-machine CPU (psutil) every CPU_SAMPLE_SEC until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        import psutil
        psutil.cpu_percent(interval=None)
        while not self._halt.wait(CPU_SAMPLE_SEC):
            self.samples.append((time.time(), psutil.cpu_percent(interval=None)))

    def stop(self):
        self._halt.set()
        self.join(2.0)


class Run(FaultActions):
    """One run: call :meth:`execute`; it always writes ``meta.json`` and cleans up."""

    def __init__(self, spec, balancer, config, rep, order, sweep, raw_dir, seed, log=None,
                 on_ready=None):
        self.spec = spec
        self.balancer = balancer
        self.config = config
        self.rep = rep
        self.order = order
        self.sweep = sweep
        self.dir = os.path.abspath(raw_dir)
        self.seed = seed
        self.log = log or (lambda msg: None)
        # called with the meta dict instead of the workload (lblab shell opens a prompt)
        self.on_ready = on_ready
        self.graph = graphs.build(spec.topology.name, spec.topology.params)
        self.roles = plan.assign_roles(self.graph, spec.backends)
        self.lab = None
        self.controller = None
        self.controller_pool = None     # ({backend host: weight}, switches) the controller has
        self.engine = None
        self.proxy = None
        self.backends = {}
        self.backend_starts = {}
        self.weights = {b.name: b.weight for b in spec.backends}
        self.faults_done = []
        self.live = None        # the --live view's hub (experiments.live.hub.Hub) or None

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _logfile(self, name):
        os.makedirs(self.path("logs"), exist_ok=True)
        return open(self.path("logs", name), "ab")

    # -- the run -----------------------------------------------------------------------------
    def execute(self):
        """Run it; return the meta dict (``status`` ok or failed). Ctrl-C propagates after
        the teardown and meta.json are done."""
        from experiments import cluster_run

        os.makedirs(self.dir)          # never reuse a run folder
        meta = self._meta()
        sampler = telemetry = None
        servers_cpu = []         # spec.cluster: CPU of the other servers
        try:
            cannot = self._faults_this_machine_cannot_do()
            if cannot:
                raise RunFailed(cannot)
            controller = None
            if self.balancer.layer == "l4":
                ofp_host = cluster_run.controller_host(self)    # 127.0.0.1 on one server
                controller = (ofp_host, self._start_controller(ofp_host))
            self.log("building the network")
            with cluster_run.network(self, controller) as lab:
                self.lab = lab
                # after the machine-wide lab lock: end - network_up is this run's own time
                meta["network_up"] = time.time()
                meta["datapath"] = lab.datapath
                iperf = self.spec.workload.type == "iperf3"
                try:
                    if self.balancer.layer == "l4" and self.balancer.mode == "l2":
                        # direct server return: each backend holds the VIP on loopback and
                        # never answers ARP for it (without this no l2 run was answered)
                        for host in self.roles.backends.values():
                            lab.host(host).cmd("; ".join(dsr_commands(plan.VIP, f"{host}-eth0")))
                    if iperf:
                        self._start_iperf_servers()
                    else:
                        self._start_backends()
                    if self.balancer.layer == "l7":
                        self._start_l7()
                    if not iperf:
                        self._wait_service()
                    self._wait_pool(meta)
                    sampler = CpuSampler()
                    sampler.start()
                    servers_cpu = cluster_run.started(self, lab, meta)
                    telemetry = self._start_telemetry(meta)
                    (self.on_ready or (self._run_iperf if iperf else self._run_load))(meta)
                finally:
                    self._stop_telemetry(telemetry)
                    if sampler is not None:
                        sampler.stop()
                    cluster_run.stopped(self, servers_cpu, meta, SATURATED_CPU_PERCENT)
                    self._collect_stats()
                    self._stop_l7()
                    for proc in list(self.backends.values()):
                        lab.stop_process(proc)
                    self.lab = None
            meta["status"] = "ok"
        except KeyboardInterrupt:
            meta["failure"] = "interrupted (Ctrl-C)"
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in meta.json, the sweep goes on
            meta["failure"] = f"{type(exc).__name__}: {exc}"
        finally:
            self._stop_controller()
            meta["faults"] = self.faults_done
            self._finish_meta(meta, sampler)
            _write_json(self.path("meta.json"), meta)
        return meta

    def _meta(self):
        return {
            "v": META_VERSION, "run": plan.run_name(self.config, self.rep),
            "config": self.config, "order": self.order, "rep": self.rep, "seed": self.seed,
            "balancer": {"name": self.balancer.name, "layer": self.balancer.layer,
                         "mode": self.balancer.mode, "engine": self.balancer.engine,
                         "algorithm": self.balancer.algorithm},
            "sweep": self.sweep, "workload": self.spec.workload.type,
            "backends": [{"name": b.name, "weight": b.weight, "capacity": b.capacity,
                          "host": self.roles.backends[b.name],
                          "ip": self.graph.nodes[self.roles.backends[b.name]]["ip"]}
                         for b in self.spec.backends],
            "clients": [], "lb": self.roles.lb, "faults": [], "iperf3_flows": [],
            "window": None, "windows": {}, "start": time.time(), "end": None,
            "status": "failed", "failure": None, "datapath": None, "network_up": None,
            "pool_ready_s": None,
            "fidelity": {"cpu_max": None, "cpu_mean": None, "saturated": False,
                         "warnings": []},
        }

    # -- telemetry (1 Hz, raw/<run>/telemetry.jsonl) and the live view ---------------------
    def _start_telemetry(self, meta):
        from experiments.live import telemetry
        try:
            on_sample = self.live.run_started(self, meta) if self.live is not None else None
            return telemetry.for_run(self, on_sample)
        except Exception as exc:  # noqa: BLE001 - telemetry is a record, not the experiment
            self.log(f"telemetry unavailable: {type(exc).__name__}: {exc}")
            return None

    def _stop_telemetry(self, sampler):
        if sampler is not None:
            end = sampler.stop()
            if end.get("failure"):
                self.log(f"telemetry stopped early: {end['failure']}")
        if self.live is not None:
            self.live.run_stopped(self)

    # -- controller (L4) -------------------------------------------------------------------
    def _start_controller(self, ofp_host="127.0.0.1"):
        cfg = plan.controller_config(self.spec, self.balancer, self.graph, self.roles,
                                     free_port(), free_port())
        cfg["controller"]["ofp_host"] = ofp_host
        self.controller_pool = plan.controller_pool_expected(cfg)
        self.log(f"starting the controller ({self.balancer.mode}/{self.balancer.algorithm})")
        controller = ControllerProcess(cfg, self.path(), config_path=self.path("controller.json"),
                                       log_path=self.path("logs", "controller.log"),
                                       log_level="WARNING")
        try:
            controller.start()
        except HarnessError as exc:
            raise RunFailed(f"the controller did not start: {_tail_text(str(exc))}") from None
        self.controller = controller
        return controller.ofp_port

    def _controller_api(self, method, path, body=None):
        status, data = self.controller.api(method, path, body, timeout=3)
        if status >= 400:
            raise RunFailed(f"controller API {method} {path} answered {status}: {data}")
        return data

    def _stop_controller(self):
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    # -- backends ------------------------------------------------------------------------------
    def _start_backend(self, backend, index):
        n = self.backend_starts.get(backend.name, 0) + 1
        self.backend_starts[backend.name] = n
        suffix = "" if n == 1 else f"-{n}"
        record = self.path(f"backend-{backend.name}{suffix}.jsonl")
        args = plan.backend_args(backend, record, self.seed * 100 + index)
        log = self._logfile(f"backend-{backend.name}.log")
        proc = self.lab.popen(self.roles.backends[backend.name], [sys.executable] + args,
                              stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.backends[backend.name] = proc
        return proc

    def _start_backends(self):
        self.log(f"starting {len(self.spec.backends)} backends")
        for i, backend in enumerate(self.spec.backends):
            self._start_backend(backend, i)
        for backend in self.spec.backends:
            # asked from the backend's own host: the network path is not the question here,
            # and a stateless select group rewrites every reply from the service port as if
            # it came from the VIP, so a client could not reach a backend directly
            host = self.roles.backends[backend.name]
            ip = self.graph.nodes[host]["ip"]
            self._wait_http(self.lab.host(host), f"http://{ip}:{plan.BACKEND_PORT}/health",
                            f"backend {backend.name}", self.backends[backend.name])

    def _wait_http(self, host, url, what, proc=None):
        deadline = time.monotonic() + READY_TIMEOUT_SEC
        status = 0
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RunFailed(f"{what} exited with status {proc.returncode}")
            status = http_status(host, url)
            if 200 <= status < 400:
                return
            time.sleep(0.2)
        raise RunFailed(f"{what} did not answer {url} within {READY_TIMEOUT_SEC:g} s "
                        f"(last status {status})")

    def _start_iperf_servers(self):
        self.log(f"starting {len(self.spec.backends)} iperf3 servers")
        for backend in self.spec.backends:
            log = self._logfile(f"iperf3-server-{backend.name}.log")
            self.backends[backend.name] = self.lab.popen(
                self.roles.backends[backend.name],
                ["iperf3", "-s", "-p", str(plan.IPERF_PORT), "-J", "--logfile",
                 self.path(f"iperf3-server-{backend.name}.json")],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
        time.sleep(IPERF_SERVER_START_SEC)
        for name, proc in self.backends.items():
            if proc.poll() is not None:
                raise RunFailed(f"the iperf3 server of {name} exited with status "
                                f"{proc.returncode}")

    def _run_iperf(self, meta):
        clients = list(self.roles.clients)
        meta["clients"] = clients
        self.log(f"iperf3: {len(clients)} clients x {self.spec.workload.flows} flows, "
                 f"{self.spec.warmup_s:g} s omitted + {self.spec.duration_s:g} s")
        procs = {}
        for i, client in enumerate(clients):
            out = open(self.path(f"iperf3-{client}.json"), "x", encoding="utf-8")
            err = self._logfile(f"iperf3-{client}.log")
            procs[client] = self.lab.popen(client, plan.iperf3_client_args(self.spec, i),
                                           stdout=out, stderr=err)
            out.close()
            err.close()
        started = time.time()
        test_sec = self.spec.warmup_s + self.spec.duration_s
        # Every client is bounded: one that has not ended IPERF_GRACE_SEC after its test should
        # have is stopped (SIGTERM, then SIGKILL), all of them, and the run fails naming them.
        deadline = started + test_sec + IPERF_GRACE_SEC
        hung = []
        for client, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                hung.append(client)
        for client in hung:
            self.lab.stop_process(procs[client])
        meta["iperf3_killed"] = hung
        meta["window"] = [started + self.spec.warmup_s,
                          started + self.spec.warmup_s + self.spec.duration_s]
        time.sleep(0.3)            # the servers write their JSON as each test ends
        logs = {}
        for backend in self.spec.backends:
            path = self.path(f"iperf3-server-{backend.name}.json")
            if hasattr(self.lab, "fetch"):      # a server on another machine: copy it here now
                self.lab.fetch(self.roles.backends[backend.name], [path])
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as fp:
                    logs[backend.name] = fp.read()
        ips = {self.graph.nodes[c]["ip"]: c for c in clients}
        served = plan.iperf3_servers_by_client(logs, ips)
        meta["iperf3_flows"] = [{"flow": c, "client": c, "backend": served.get(c),
                                 "file": f"iperf3-{c}.json"} for c in clients]
        if hung:
            raise RunFailed(f"iperf3 on {', '.join(hung)} did not finish within "
                            f"{test_sec + IPERF_GRACE_SEC:g} s (a {test_sec:g} s test + "
                            f"{IPERF_GRACE_SEC:g} s); stopped")

    # -- L7 ------------------------------------------------------------------------------------
    def _proxy_config(self):
        weights = {n: w for n, w in self.weights.items()}
        return plan.proxy_config(self.spec, self.balancer, self.graph, self.roles,
                                 backends=weights)

    def _start_l7(self):
        engine = self.balancer.engine
        data = self._proxy_config()
        if engine == "builtin":
            path = self.path("proxy.json")
            with open(path, "w", encoding="utf-8") as fp:
                json.dump(data, fp, sort_keys=True, indent=1)
            self.log("starting the L7 proxy")
            log = self._logfile("proxy.log")
            self.proxy = self.lab.popen(
                self.roles.lb, [sys.executable, "-m", "lb_apps.proxy.server", "--config", path],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
            return
        from experiments import cluster_run
        from lb_apps.l7config import parse_l7_config
        self.log(f"starting {engine}")
        # on the lb host's server, wherever that is (experiments.cluster_run)
        self.engine = cluster_run.start_engine(self, engine, parse_l7_config(data, "experiment"))
        try:
            self.lab.record.add_process(self.engine.process.pid, engine)
            self.lab.record.save()
        except Exception:  # noqa: BLE001 - registration only helps `lblab clean`
            pass

    def _stop_l7(self):
        if self.engine is not None:
            from lb_apps.engines.proc import stop_engine
            engine, self.engine = self.engine, None
            stop_engine(engine)
        if self.proxy is not None:
            proxy, self.proxy = self.proxy, None
            self.lab.stop_process(proxy, grace_sec=5.0)

    def _wait_service(self):
        url = plan.service_url(self.balancer, self.graph, self.roles)
        for client in self.roles.clients:
            self._wait_http(self.lab.host(client), url, f"the service {url} from {client}",
                            self.proxy)

    # -- is the pool complete? ------------------------------------------------------------------
    def _wait_pool(self, meta):
        """Wait until the balancer reports every configured backend ready (the L4 controller:
        every switch connected, each backend up at its weight; the builtin proxy: each worker
        serving each backend), at most POOL_READY_TIMEOUT_SEC; the seconds waited go into
        ``meta["pool_ready_s"]``. The engines (HAProxy, nginx) start after their backends
        listen and are not asked."""
        config = self._proxy_config() if self.proxy is not None else {}
        if self.controller is not None:
            what, waiting = "the controller", self._controller_waiting
        elif plan.proxy_stats_ports(config):
            what, waiting = "the L7 proxy", lambda: self._proxy_waiting(config)
        else:
            return
        start = time.monotonic()
        while True:
            missing = waiting()
            if not missing:
                break
            if time.monotonic() - start >= POOL_READY_TIMEOUT_SEC:
                raise RunFailed(f"{what} did not report every backend ready within "
                                f"{POOL_READY_TIMEOUT_SEC:g} s: {'; '.join(missing)}")
            time.sleep(POOL_POLL_SEC)
        meta["pool_ready_s"] = round(time.monotonic() - start, 3)
        self.log(f"{what} has every backend in its pool (waited {meta['pool_ready_s']:g} s)")

    def _controller_waiting(self):
        try:
            services = self.controller.api("GET", "/services", timeout=2)[1]
            stats = self.controller.api("GET", "/stats", timeout=2)[1]
        except (OSError, ValueError) as exc:
            return [f"its API did not answer ({type(exc).__name__}: {exc})"]
        names = {host: name for name, host in self.roles.backends.items()}
        return plan.controller_pool_waiting(services, stats, *self.controller_pool, names)

    def _proxy_waiting(self, config):
        host = self.lab.host(self.roles.lb)
        docs = []
        for port in plan.proxy_stats_ports(config):
            out = host.cmd(f"curl -s --max-time 1 http://127.0.0.1:{port}/")
            try:
                docs.append(json.loads(out))
            except ValueError:
                docs.append(None)
        return plan.proxy_pool_waiting(docs, config)

    # -- load and faults -----------------------------------------------------------------------
    def _run_load(self, meta):
        url = plan.service_url(self.balancer, self.graph, self.roles)
        configs = plan.loadgen_configs(self.spec, self.roles, url, self.seed * 1000,
                                       lambda c: self.path(f"loadgen-{c}.jsonl"))
        meta["clients"] = list(configs)
        procs = {}
        self.log(f"load: {len(configs)} clients, {self.spec.warmup_s:g} s warm-up + "
                 f"{self.spec.duration_s:g} s")
        for client, cfg in configs.items():
            path = self.path(f"loadgen-{client}.json")
            _write_json(path, cfg)
            out = self._logfile(f"loadgen-{client}.log")
            procs[client] = self.lab.popen(
                client, [sys.executable, "-m", "lb_apps.loadgen.client", "--config", path,
                         "--json"], stdout=out, stderr=subprocess.STDOUT)
            out.close()
        # A load generator creates its records file as it starts its clock (after ~0.3 s of
        # Python start-up): time the faults from then, not from the popen.
        deadline = time.time() + READY_TIMEOUT_SEC
        exists = getattr(self.lab, "exists", lambda host, path: os.path.exists(path))
        while time.time() < deadline and not all(
                exists(c, cfg["record"]) or procs[c].poll() is not None
                for c, cfg in configs.items()):
            time.sleep(0.02)
        started = time.time()
        measure_start = started + self.spec.warmup_s
        for fault in self.spec.faults:
            self._sleep_until(measure_start + fault.at_s, procs)
            self._apply(fault, measure_start)
        limit = started + self.spec.warmup_s + self.spec.duration_s + \
            self.spec.workload.timeout_s + 20.0
        for client, proc in procs.items():
            try:
                proc.wait(max(0.1, limit - time.time()))
            except subprocess.TimeoutExpired:
                self.lab.stop_process(proc)
                raise RunFailed(f"the load generator on {client} did not finish in time")
            if proc.returncode != 0:
                raise RunFailed(f"the load generator on {client} exited with status "
                                f"{proc.returncode}: "
                                f"{_tail(self.path('logs', f'loadgen-{client}.log'))}")

    def _sleep_until(self, when, procs):
        while True:
            left = when - time.time()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def _apply(self, fault, measure_start):
        """Apply one fault now and record it in ``faults_done``.

        A fault that cannot be applied fails the run (``RunFailed`` naming the fault, its time
        and why), unless the spec marks it ``optional``: then it is recorded as skipped with
        the reason (the report warns) and the run goes on.
        """
        applied = time.time()
        problem = None
        try:
            problem = self._do_fault(fault)
        except Exception as exc:  # noqa: BLE001 - every reason is reported, none is swallowed
            problem = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
        what = f"{fault.action}{' ' + fault.target if fault.target else ''} at {fault.at_s:g} s"
        done = {"at_s": fault.at_s, "action": fault.action, "target": fault.target,
                "value": fault.value, "mode": fault.mode, "optional": fault.optional,
                "applied": applied,
                "applied_at_s": round(applied - measure_start, 3),
                "took_s": round(time.time() - applied, 3),
                "skipped": problem if problem and fault.optional else None,
                "failed": problem if problem and not fault.optional else None}
        self.faults_done.append(done)
        if problem and not fault.optional:
            self.log(f"fault {what} failed: {problem}")
            raise RunFailed(f"fault {what} could not be applied: {problem}")
        self.log(f"fault {what}" + (f" (optional, skipped: {problem})" if problem else ""))

    # -- stats and meta --------------------------------------------------------------------------
    def _collect_stats(self):
        if self.controller is not None:
            try:
                _write_json(self.path("stats-controller.json"),
                            {"stats": self._controller_api("GET", "/stats"),
                             "services": self._controller_api("GET", "/services")})
            except Exception as exc:  # noqa: BLE001 - stats are a bonus, not a failure
                self.log(f"controller stats unavailable: {exc}")
        if self.proxy is not None and self.lab is not None:
            out = self.lab.host(self.roles.lb).cmd(
                f"curl -s --max-time 2 http://127.0.0.1:{plan.PROXY_STATS_PORT}/")
            try:
                _write_json(self.path("stats-proxy.json"), json.loads(out))
            except ValueError:
                self.log("proxy stats unavailable")

    def _load_fidelity(self, fid, by_client, window):
        """Judge the load (pool waits, send lag, backend queueing) into meta's ``fidelity``."""
        import glob
        from experiments.fidelity import load_fidelity
        from lb_apps.records import iter_records
        by_backend = {}
        for path in sorted(glob.glob(self.path("backend-*.jsonl"))):
            try:
                for r in iter_records(path, "backend"):
                    by_backend.setdefault(r["backend"], []).append(r)
            except ValueError as exc:
                fid["warnings"].append(f"unreadable backend records {os.path.basename(path)}: "
                                       f"{exc}")
        found = load_fidelity([r for rs in by_client.values() for r in rs], by_backend,
                              self.spec.workload.mode, window)
        fid["warnings"] += found.pop("warnings")
        fid.update(found)

    def _finish_meta(self, meta, sampler):
        from lb_apps.records import iter_records
        meta["end"] = time.time()
        by_client = {}
        for client in meta["clients"]:
            path = self.path(f"loadgen-{client}.jsonl")
            if os.path.exists(path):
                try:
                    by_client[client] = list(iter_records(path))
                except ValueError as exc:
                    meta["fidelity"]["warnings"].append(f"unreadable records of {client}: "
                                                        f"{exc}")
        if by_client:
            windows = plan.client_windows(by_client, self.spec.duration_s)
            meta["windows"] = windows
            meta["window"] = plan.union_window(windows)
        fid = meta["fidelity"]
        if sampler is not None and sampler.samples and meta["window"]:
            t0, t1 = meta["window"]
            inside = [v for t, v in sampler.samples if t0 <= t <= t1] or \
                [v for _, v in sampler.samples]
            fid["cpu_max"] = max(inside)
            fid["cpu_mean"] = round(sum(inside) / len(inside), 1)
            if fid["cpu_mean"] >= SATURATED_CPU_PERCENT:
                fid["saturated"] = True
                fid["warnings"].append(
                    f"host CPU was saturated (mean {fid['cpu_mean']}% of "
                    f"{os.cpu_count()} cores during the measurement): the numbers measure "
                    f"this machine, not the balancer. Lower the load or use fewer hosts.")
        if by_client:
            self._load_fidelity(fid, by_client, meta["window"])
        for f in meta.get("faults", []):
            if f.get("skipped"):
                fid["warnings"].append(f"fault {f['action']} {f.get('target') or ''} at "
                                       f"{f['at_s']:g} s was not applied: {f['skipped']}")
            elif meta["window"]:
                # the fault's time relative to the measured window as the records saw it
                f["at_s"] = round(f["applied"] - meta["window"][0], 3)
