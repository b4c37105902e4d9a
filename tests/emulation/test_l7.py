"""L7 balancing on real Open vSwitch + Mininet (root): the builtin proxy, HAProxy and nginx on the
lb host of ``lb_lab``, clients on the client hosts, ``lblab backend`` processes on the backend
hosts. Asserts on what crossed the emulated network: the ``X-Backend`` header of every response
the clients got, cross-checked with each backend's own request counter (``GET /stats``).

One lab per module (building it and taking the machine's one-lab lock is the slow part); each
test starts its engine on the lb host and stops it in ``finally``.
"""
import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

from experiments.run_lab import http_status
from lb_apps.engines.proc import start_engine, stop_engine
from lb_apps.l7config import parse_l7_config
from lb_apps.records import read_records
from topologies import graphs
from topologies.network import LabNetwork

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TLS_CERT = os.path.join(ROOT, ".lab", "tls", "lab.crt")
TLS_KEY = os.path.join(ROOT, ".lab", "tls", "lab.key")
ENGINES = ("builtin", "haproxy", "nginx")
PORT = 80
TLS_PORT = 443
READY_SEC = 20.0
SLOW_DELAY_SEC = 0.25


class L7Lab:
    """The running lab: host names by role, backends started once, helpers for clients."""

    def __init__(self, lab, workdir):
        self.lab = lab
        self.workdir = workdir
        graph = lab.graph
        self.clients = graphs.hosts(graph, "client")
        self.lb = graphs.hosts(graph, "lb")[0]
        self.lb_ip = graph.nodes[self.lb]["ip"]
        self.backend_hosts = graphs.hosts(graph, "backend")
        # backend name -> (host, ip)
        self.backends = {f"b{i + 1}": (h, graph.nodes[h]["ip"])
                         for i, h in enumerate(self.backend_hosts)}
        self.procs = {}

    # -- backends ------------------------------------------------------------------------------
    def start_backends(self):
        for name, (host, _ip) in self.backends.items():
            log = open(os.path.join(self.workdir, f"backend-{name}.log"), "ab")
            self.procs[name] = self.lab.popen(
                host, [sys.executable, "-m", "lb_apps.backend.server", "--name", name,
                       "--port", str(PORT), "--response-size", "64"],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
        probe = self.lab.host(self.clients[0])
        for name, (_host, ip) in self.backends.items():
            self._wait(lambda: http_status(probe, f"http://{ip}:{PORT}/health") == 200,
                       f"backend {name} on {ip}", self.procs[name])

    def backend_requests(self):
        """Return ``{backend: data requests served so far}`` from each backend's /stats."""
        out = {}
        probe = self.lab.host(self.clients[0])
        for name, (_host, ip) in self.backends.items():
            text = probe.cmd(f"curl -s --max-time 2 http://{ip}:{PORT}/stats")
            out[name] = json.loads(text[text.index("{"):])["requests"]
        return out

    def set_fault(self, name, mode, delay=None):
        ip = self.backends[name][1]
        query = f"mode={mode}" + (f"&delay_ms={delay * 1000:g}" if delay is not None else "")
        out = self.lab.host(self.clients[0]).cmd(
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 -X POST "
            f"'http://{ip}:{PORT}/admin/fault?{query}'")
        assert out.strip().endswith("200"), f"fault {mode} on {name}: {out!r}"

    # -- the balancer on the lb host -------------------------------------------------------------
    def config(self, algorithm, tls=False):
        data = {"listen": {"host": "0.0.0.0", "port": TLS_PORT if tls else PORT},
                "workers": 1, "algorithm": algorithm,
                "backends": [{"name": n, "address": ip, "port": PORT}
                             for n, (_h, ip) in self.backends.items()]}
        if tls:
            data["tls"] = {"cert": TLS_CERT, "key": TLS_KEY}
        return data

    @contextlib.contextmanager
    def serving(self, engine, algorithm, tls=False):
        """Run ``engine`` on the lb host until the block ends; yield the service URL."""
        data = self.config(algorithm, tls)
        tag = f"{engine}-{algorithm}{'-tls' if tls else ''}-{time.monotonic_ns()}"
        url = f"{'https' if tls else 'http'}://{self.lb_ip}:{TLS_PORT if tls else PORT}"
        proc = handle = None
        try:
            if engine == "builtin":
                path = os.path.join(self.workdir, f"{tag}.json")
                with open(path, "w", encoding="utf-8") as fp:
                    json.dump(data, fp)
                log = open(os.path.join(self.workdir, f"{tag}.log"), "ab")
                proc = self.lab.popen(self.lb, [sys.executable, "-m", "lb_apps.proxy.server",
                                                "--config", path],
                                      stdout=log, stderr=subprocess.STDOUT)
                log.close()
            else:
                handle = start_engine(engine, parse_l7_config(data, tag),
                                      os.path.join(self.workdir, tag),
                                      popen=self.lab.host(self.lb).popen)
                self.lab.record.add_process(handle.process.pid, f"{self.lb}:{engine}")
                self.lab.record.save()
            probe = self.lab.host(self.clients[0])
            self._wait(lambda: self.status(probe, url + "/health") == 200,
                       f"{engine} at {url}", proc)
            yield url
        finally:
            if handle is not None:
                stop_engine(handle)
            if proc is not None:
                self.lab.stop_process(proc, grace_sec=5.0)
        if proc is not None:   # SIGTERM drains and exits 0
            assert proc.returncode == 0, f"builtin proxy exited {proc.returncode}"

    # -- clients ---------------------------------------------------------------------------------
    @staticmethod
    def status(host, url):
        out = host.cmd(f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 1 '{url}'")
        try:
            return int(out.strip()[-3:])
        except ValueError:
            return 0

    def sequential(self, client, url, count, close=False):
        """``count`` sequential GETs from ``client`` with one curl (keep-alive unless ``close``);
        return ``[(status, scheme, backend)]`` per request."""
        header = "-H 'Connection: close' " if close else ""
        out = self.lab.host(client).cmd(
            f"curl -sk --max-time 20 {header}-D - -o /dev/null "
            f"-w 'DONE %{{http_code}} %{{scheme}}\\n' '{url}/r[1-{count}]'")
        results, backend = [], None
        for line in out.splitlines():
            if line.lower().startswith("x-backend:"):
                backend = line.split(":", 1)[1].strip()
            m = re.match(r"DONE (\d+) (\S*)", line)
            if m:
                results.append((int(m.group(1)), m.group(2).upper(), backend))
                backend = None
        assert len(results) == count, out
        return results

    def concurrent(self, url, users, per_client):
        """Closed-loop ``lblab loadgen`` on every client at once (``users`` keep-alive users
        each, ``per_client`` requests each); return the records of every request."""
        procs = {}
        tag = time.monotonic_ns()
        for client in self.clients:
            record = os.path.join(self.workdir, f"loadgen-{client}-{tag}.jsonl")
            log = open(os.path.join(self.workdir, f"loadgen-{client}-{tag}.log"), "ab")
            procs[client] = (record, self.lab.popen(
                client, [sys.executable, "-m", "lb_apps.loadgen.client", "--url", url + "/",
                         "--users", str(users), "--max-requests", str(per_client),
                         "--duration-s", "20", "--timeout-s", "5", "--name", client,
                         "--record", record], stdout=log, stderr=subprocess.STDOUT))
            log.close()
        records = []
        for client, (record, proc) in procs.items():
            try:
                proc.wait(40)
            finally:
                self.lab.stop_process(proc)
            assert proc.returncode == 0, f"loadgen on {client} exited {proc.returncode}"
            records += read_records(record, "loadgen")
        return records

    @staticmethod
    def _wait(predicate, what, proc=None):
        deadline = time.monotonic() + READY_SEC
        while not predicate():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{what} exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not ready within {READY_SEC:g} s")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def l7lab(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("l7"))
    with LabNetwork(graphs.lb_lab(clients=2, backends=3)) as lab:
        l7 = L7Lab(lab, workdir)
        l7.start_backends()
        yield l7


@pytest.mark.parametrize("engine", ENGINES)
def test_round_robin_30_sequential_requests_10_per_backend(l7lab, engine):
    before = l7lab.backend_requests()
    with l7lab.serving(engine, "round_robin") as url:
        first, second = l7lab.clients[:2]
        served = (l7lab.sequential(first, url, 15)                 # one keep-alive connection
                  + l7lab.sequential(second, url, 15, close=True))  # a connection per request
    assert all(status == 200 for status, _s, _b in served), served
    counts = collections.Counter(b for _st, _s, b in served)
    assert counts == {name: 10 for name in l7lab.backends}, counts
    after = l7lab.backend_requests()
    # the backends' own counters agree with what the clients were told
    assert {n: after[n] - before[n] for n in after} == counts, (before, after)


@pytest.mark.parametrize("engine", ENGINES)
def test_least_connections_sends_fewer_requests_to_a_slow_backend(l7lab, engine):
    slow = "b1"
    l7lab.set_fault(slow, "slow", SLOW_DELAY_SEC)
    try:
        before = l7lab.backend_requests()
        with l7lab.serving(engine, "least_connections") as url:
            records = l7lab.concurrent(url, users=4, per_client=40)
        after = l7lab.backend_requests()
    finally:
        l7lab.set_fault(slow, "none")
    total = 40 * len(l7lab.clients)
    assert len(records) == total, len(records)
    assert all(r["error"] is None and r["status"] == 200 for r in records), \
        [r for r in records if r["error"] or r["status"] != 200][:5]
    counts = collections.Counter(r["backend"] for r in records)
    assert set(counts) <= set(l7lab.backends), counts
    assert {n: after[n] - before[n] for n in after} == \
        {n: counts.get(n, 0) for n in l7lab.backends}, (before, after, counts)
    fast = [counts.get(n, 0) for n in l7lab.backends if n != slow]
    # round robin would give the slow backend a third; least connections starves it
    assert counts.get(slow, 0) < min(fast), counts
    assert counts.get(slow, 0) <= total // (2 * len(l7lab.backends)), counts


@pytest.mark.parametrize("engine", ENGINES)
def test_tls_termination_on_the_lb_host(l7lab, engine):
    with l7lab.serving(engine, "round_robin", tls=True) as url:
        served = l7lab.sequential(l7lab.clients[-1], url, 9)
        # the listener speaks only TLS: plain HTTP to it gets no backend's answer
        plain = l7lab.status(l7lab.lab.host(l7lab.clients[0]),
                             f"http://{l7lab.lb_ip}:{TLS_PORT}/")
    assert all(status == 200 and scheme == "HTTPS" for status, scheme, _b in served), served
    counts = collections.Counter(b for _st, _s, b in served)
    assert counts == {name: 3 for name in l7lab.backends}, counts
    assert plain != 200, plain
