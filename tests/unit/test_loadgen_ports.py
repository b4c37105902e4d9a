"""Seeded source ports: the pure sequence (lb_apps.loadgen.ports) and the load generator binding
it on loopback (lb_apps.loadgen.connect) against lb_apps.backend.server, whose records name each
request's client address."""
import socket

import pytest

from lb_apps.backend import model as backend_model
from lb_apps.backend.server import BackendThread
from lb_apps.loadgen import ports as P
from lb_apps.loadgen import workload as wl
from lb_apps.loadgen.client import run
from lb_apps.loadgen.connect import ephemeral_range
from lb_apps.records import read_records

pytestmark = pytest.mark.timeout(30)


def first(ports, n):
    return [ports.next() for _ in range(n)]


def test_same_seed_same_ports_and_different_seeds_differ():
    assert first(P.SourcePorts("seeded", 7), 50) == first(P.SourcePorts("seeded", 7), 50)
    assert first(P.SourcePorts("seeded", 7), 8) != first(P.SourcePorts("seeded", 8), 8)
    # the runner's seeds: seed * 1000 + rep per run, then + client index per load generator
    seeds = [(1 * 1000 + rep) * 1000 + client for rep in (1, 2) for client in range(4)]
    assert len({tuple(first(P.SourcePorts("seeded", s), 2)) for s in seeds}) == len(seeds)


def test_kernel_mode_binds_port_0():
    assert first(P.SourcePorts("kernel", 7), 5) == [0] * 5


def test_the_sequence_is_a_permutation_of_the_range_outside_the_ephemeral_one():
    ports = P.SourcePorts("seeded", 3, low=100, high=200)
    got = first(ports, 100)
    assert sorted(got) == list(range(100, 200))
    assert first(ports, 100) == got            # then it starts over, in the same order
    assert all(P.SEEDED_PORT_LOW <= p < P.SEEDED_PORT_HIGH
               for p in first(P.SourcePorts("seeded", 3), 1000))
    skipping = first(P.SourcePorts("seeded", 3, low=100, high=200, avoid=(150, 199)), 50)
    assert sorted(skipping) == list(range(100, 150))
    assert skipping == [p for p in got if p < 150]     # the same order, the avoided left out
    with pytest.raises(ValueError, match="covers the seeded source ports"):
        P.SourcePorts("seeded", 3, low=100, high=200, avoid=(50, 250))
    with pytest.raises(ValueError, match="source_ports 'random'"):
        P.SourcePorts("random", 3)


def test_parse_port_range():
    assert P.parse_port_range("32768\t60999\n") == (32768, 60999)
    assert P.parse_port_range("") is None and P.parse_port_range("1 2 3") is None
    assert P.parse_port_range("60999 32768") is None and P.parse_port_range("a b") is None


def test_the_seeded_range_is_outside_this_machines_ephemeral_range():
    low, high = ephemeral_range()
    assert high < P.SEEDED_PORT_LOW or low >= P.SEEDED_PORT_HIGH


def test_workload_source_ports_setting():
    cfg = wl.config_from_dict({"url": "http://10.0.0.5/"})
    assert cfg.source_ports == "seeded"
    with pytest.raises(Exception, match="source_ports: 'random': expected one of seeded, "
                                        "kernel"):
        wl.config_from_dict({"url": "http://10.0.0.5/", "source_ports": "random"})


@pytest.fixture
def backend(tmp_path):
    bt = BackendThread(backend_model.config_from_dict(
        {"name": "b1", "host": "127.0.0.1", "port": 0, "record": str(tmp_path / "b1.jsonl"),
         "flush_period_s": 0.05})).start()
    yield bt
    bt.stop()


def client_ports(backend, tmp_path, name, **settings):
    """Run a load generator; return the source ports the backend saw, in arrival order."""
    summary = run(wl.config_from_dict({
        "url": f"http://127.0.0.1:{backend.port}/", "duration_s": 2.0, "timeout_s": 2.0,
        "record": str(tmp_path / f"{name}.jsonl"), "name": name, **settings}))
    assert summary["errors"] == {}, summary
    backend.call(backend.backend.writer.flush)
    records = [r for r in read_records(str(tmp_path / "b1.jsonl"), "backend")
               if r["id"].startswith(name + "-")]
    assert len(records) == summary["sent"]
    return [int(r["client"].rsplit(":", 1)[1]) for r in sorted(records,
                                                               key=lambda r: r["arrival"])]


def test_connections_bind_the_seeded_ports(backend, tmp_path):
    # a new connection per request: request k goes out on the k-th port of the seed's sequence
    got = client_ports(backend, tmp_path, "a", seed=11, keepalive=False, max_requests=12)
    assert got == first(P.SourcePorts("seeded", 11), 12)
    # keep-alive: 3 users, 3 connections, each from one of the first 3 seeded ports
    got = client_ports(backend, tmp_path, "b", seed=11, users=3, max_requests=30)
    assert set(got) == set(first(P.SourcePorts("seeded", 11), 3))


def test_a_port_in_use_is_skipped_for_the_next_candidate(backend, tmp_path):
    expected = first(P.SourcePorts("seeded", 12), 3)
    with socket.socket() as taken:           # a listener holds the first seeded port
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", expected[0]))
        taken.listen()
        got = client_ports(backend, tmp_path, "c", seed=12, keepalive=False, max_requests=2)
    assert got == expected[1:]


def test_kernel_mode_leaves_the_choice_to_the_kernel(backend, tmp_path):
    low, high = ephemeral_range()
    got = client_ports(backend, tmp_path, "d", seed=11, keepalive=False, max_requests=5,
                       source_ports="kernel")
    assert all(low <= p <= high for p in got), got


def test_the_same_seed_twice_in_a_row_despite_time_wait(backend, tmp_path):
    # The generator closes its keep-alive connections at the end, so their ports are in
    # TIME_WAIT when the same seed runs again to the same target: SO_REUSEADDR binds them, and
    # a 4-tuple the kernel will not reuse yet is skipped for the next candidate, never an error.
    seeded = first(P.SourcePorts("seeded", 13), 3 + P.MAX_PORT_CANDIDATES)
    runs = [client_ports(backend, tmp_path, name, seed=13, users=3, max_requests=30)
            for name in ("e", "f")]
    for got in runs:
        assert set(got) <= set(seeded) and len(set(got)) == 3
    assert set(runs[0]) == set(seeded[:3])
