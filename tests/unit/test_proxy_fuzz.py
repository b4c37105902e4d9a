"""Fuzz test of the L7 proxy's request path (issue 9 section 2): the seed attacks one by one,
then seeded mutations from 24 clients at once, against a real proxy (the harness's, in-process)
and strict h11 backends on 127.0.0.1. The long run is ``bench/fuzz_proxy.py``.

Fails on: a backend request without the proxy's ``Via`` (bytes the proxy did not frame) or
carrying two requests' ids, a backend parse error, a response that answers another request, a
second client's plain GET answered wrongly or not at all, a proxy that stops answering or raises
in a callback, and the proxy's own rules (auth/routing bypass, routing headers lost, target not
origin-form, Host not the absolute-form authority, body changed, no response after a
half-close). Mutation case N is ``cases.mutated_case(SEED, N)``: the same bytes on every run.
"""
import asyncio

import pytest

from tests.fuzzkit import cases, checks
from tests.fuzzkit.net import Fuzzer, Recorder, start_backends
from tests.unit.test_proxy_harness import Proxy, config, lt  # noqa: F401

SEED = 92
FIRST_MUTATION_CASE = 1000
MUTATION_CASES = 4000
CONCURRENCY = 24
RUN_LIMIT_SEC = 80
ISSUE_ATTACKS = ("connection_content_length", "connection_content_length_admin",
                 "connection_content_length_truncated", "connection_close_content_length",
                 "second_connection_header", "connection_transfer_encoding", "connection_host",
                 "connection_cookie", "connection_authorization", "connection_routing_header",
                 "connection_hash_header", "asterisk_get", "absolute_form", "half_close_get")


@pytest.mark.timeout(100)
def test_proxy_request_path_fuzz(lt):
    rec = Recorder()
    lt.call(lt.loop.set_exception_handler, rec.loop_exception_handler)
    backends = lt.run(start_backends(rec))
    ports = {name: b.port for name, b in backends.items()}
    proxy = Proxy(lt, config([backends["b1"]], **cases.lab_groups_and_routes(ports)))
    seeds = cases.seed_cases()
    mutations = (cases.mutated_case(SEED, no)
                 for no in range(FIRST_MUTATION_CASE, FIRST_MUTATION_CASE + MUTATION_CASES))

    async def run():
        fuzzer = Fuzzer(proxy.port, rec)
        await fuzzer.run_sequential(seeds)
        await fuzzer.run_concurrent(mutations, CONCURRENCY)
        await fuzzer.probe()
        await asyncio.sleep(0.2)  # let the backends see anything still in flight
    try:
        lt.run(run(), timeout=RUN_LIMIT_SEC)
    finally:
        proxy.stop()
        for b in backends.values():
            lt.call(b.close)
        lt.call(lt.loop.set_exception_handler, None)
    assert rec.cases == len(seeds) + MUTATION_CASES
    summary = (f"{rec.cases} cases, {rec.requests_sent} requests sent, {rec.backend_requests} "
               f"reached the backends, {rec.patient_timeouts} owed answers never came")
    assert not rec.counts, "\n".join([summary + "; findings:"] + rec.report())


def test_seed_corpus_and_mutations_are_fixed():
    names = [c.name for c in cases.seed_cases()]
    assert {"seed:" + a for a in ISSUE_ATTACKS} <= set(names)
    assert names.index("seed:plain_get") == 0  # the sanity case runs first
    a, b = cases.mutated_case(SEED, 1234), cases.mutated_case(SEED, 1234)
    assert (a.chunks, a.half_close) == (b.chunks, b.half_close)
    assert cases.mutated_case(SEED + 1, 1234).data != a.data


@pytest.mark.parametrize("headers, kinds", [
    ([(b"host", b"lab"), (b"x-fz-id", b"7r0"), (b"via", b"1.1 lblab")], []),
    ([(b"host", b"lab"), (b"x-fz-id", b"7r0")], ["no_via"]),
    ([(b"host", b"lab"), (b"x-fz-id", b"7r0"), (b"via", b"1.1 lblab, 1.1 edge")], ["no_via"]),
    ([(b"host", b"lab"), (b"x-fz-id", b"8v"), (b"via", b"1.1 lblab")], ["spliced"]),
])
def test_backend_checks_flag_unframed_and_spliced_requests(headers, kinds):
    got = checks.check_backend_request("b1", b"GET", b"/a/fz/7r0", headers, b"", {})
    assert [k for k, _ in got] == kinds


def test_backend_checks_flag_auth_and_routing_bypass():
    via = [(b"host", b"lab"), (b"via", b"1.1 lblab")]
    got = checks.check_backend_request("b1", b"GET", b"/admin/x/fz/1s0", via, b"", {})
    assert [k for k, _ in got] == ["auth_bypass"]
    ok = via + [(b"authorization", cases.AUTH_OK)]
    assert checks.check_backend_request("a1", b"GET", b"/admin/x", ok, b"", {}) == []
    got = checks.check_backend_request("c1", b"GET", b"/a", via, b"", {})
    assert [k for k, _ in got] == ["route_bypass"]
