"""L7 proxy over loopback: each balancing algorithm, content-based routing, stickiness, auth
and caching, asserting which backend served what."""
import asyncio
import base64
import collections
import socket
import threading
import time

import pytest

from lb_apps.proxy.sticky import sign
from tests.conftest import wait_for
from tests.unit.test_proxy_harness import (Client, backends, config, lt, proxy,  # noqa: F401
                                           served_by)


def spread(port, paths, headers=()):
    c = Client(port)
    try:
        return [served_by(c.get(p, headers)) for p in paths]
    finally:
        c.close()


def test_round_robin(backends, proxy):
    bs = backends("b1", "b2", "b3")
    p = proxy(config(bs, algorithm="round_robin"))
    assert spread(p.port, ["/"] * 6) == ["b1", "b2", "b3"] * 2
    assert [b.paths() for b in bs] == [["/", "/"]] * 3


def test_weighted_round_robin(backends, proxy):
    bs = backends("b1", "b2")
    cfg = config(bs, algorithm="weighted_round_robin")
    cfg["backends"][0]["weight"] = 3
    p = proxy(cfg)
    assert collections.Counter(spread(p.port, ["/"] * 8)) == {"b1": 6, "b2": 2}


def hold_answers(lt, held_backends):
    """Make in-test backends hold their answer to ``/held`` (then answer as for any path)
    until the returned ``release()`` is called, so a request stays in flight for exactly as
    long as a test needs. ``release()`` may be called more than once."""
    released = asyncio.Event()
    for backend in held_backends:
        answer = backend.respond

        async def respond(proto, req, answer=answer):
            if req["url"] == "/held":
                await released.wait()
            await answer(proto, req)
        backend.respond = respond
    return lambda: lt.call(released.set)


def held_at(held_backends):
    """Return the names of the backends that received a ``/held`` request, once each."""
    return [name for b in held_backends for name in [b.name] * b.paths().count("/held")]


@pytest.mark.parametrize("algorithm", ["least_connections", "weighted_least_connections"])
def test_least_connections_avoids_busy_backend(backends, proxy, lt, algorithm):
    bs = backends("b1", "b2")
    release = hold_answers(lt, bs)
    p = proxy(config(bs, algorithm=algorithm))
    slow = Client(p.port)
    try:
        slow.send(b"GET /held HTTP/1.1\r\nHost: lab\r\n\r\n")
        (busy,) = wait_for(lambda: held_at(bs), "the held request at a backend")
        others = spread(p.port, ["/q"] * 4)
        assert busy not in others and len(set(others)) == 1
        release()
        assert served_by(slow.response()) == busy
    finally:
        release()
        slow.close()


@pytest.mark.parametrize("algorithm", ["random", "power_of_two"])
def test_random_algorithms_use_every_backend(backends, proxy, algorithm):
    bs = backends("b1", "b2")
    p = proxy(config(bs, algorithm=algorithm))
    got = collections.Counter(spread(p.port, ["/"] * 40))
    assert set(got) == {"b1", "b2"}
    assert sum(len(b.paths()) for b in bs) == 40


def _from(ip, port, path="/"):
    sock = socket.socket()
    sock.settimeout(2)
    sock.bind((ip, 0))
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"X-Backend: ")[1].split(b"\r\n")[0].decode()
    finally:
        sock.close()


def test_ip_hash_uses_peer_address(backends, proxy):
    bs = backends("b1", "b2", "b3")
    p = proxy(config(bs, algorithm="ip_hash"))
    by_ip = {}
    for i in range(1, 9):
        ip = f"127.0.0.{i}"
        got = {_from(ip, p.port) for _ in range(3)}
        assert len(got) == 1, (ip, got)  # one client address, one backend
        by_ip[ip] = got.pop()
    assert len(set(by_ip.values())) >= 2
    # X-Forwarded-For is not the hash key: the socket peer is
    assert spread(p.port, ["/"] * 3, [("X-Forwarded-For", "10.9.9.9")]) == [by_ip["127.0.0.1"]] * 3


def test_five_tuple_hash_keeps_a_connection_on_one_backend(backends, proxy):
    bs = backends("b1", "b2")
    p = proxy(config(bs, algorithm="five_tuple_hash"))
    for _ in range(3):
        assert len(set(spread(p.port, ["/"] * 4))) == 1


def test_consistent_hash_on_uri(backends, proxy):
    bs = backends("b1", "b2", "b3")
    p = proxy(config(bs, algorithm="consistent_hash", hash_key={"type": "uri"}))
    paths = [f"/obj/{i}" for i in range(30)]
    first = spread(p.port, paths)
    assert spread(p.port, paths) == first  # same URI, same backend
    assert len(set(first)) == 3


@pytest.mark.parametrize("kind", ["header", "cookie"])
def test_consistent_hash_on_header_or_cookie(backends, proxy, kind):
    bs = backends("b1", "b2", "b3")
    p = proxy(config(bs, algorithm="consistent_hash", hash_key={"type": kind, "name": "user"}))
    owners = set()
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        h = ("user", user) if kind == "header" else ("Cookie", f"x=1; user={user}")
        got = set(spread(p.port, [f"/{i}" for i in range(4)], [h]))
        assert len(got) == 1, (user, got)
        owners |= got
    assert len(owners) >= 2


def test_routing_rules_first_match_wins(backends, proxy):
    b1, a1, s1, h1, m1 = backends("b1", "a1", "s1", "h1", "m1")

    def grp(b, algorithm="round_robin"):
        return {"algorithm": algorithm, "backends": [{"name": b.name, "address": "127.0.0.1",
                                                      "port": b.port}]}
    cfg = config([b1], groups={"api": grp(a1, "least_connections"), "static": grp(s1),
                               "hosts": grp(h1), "misc": grp(m1)},
                 routes=[
                     {"match": {"path_prefix": "/api", "method": ["GET", "POST"]}, "group": "api"},
                     {"match": {"path_regex": r"\.(png|css)$"}, "group": "static"},
                     {"match": {"host": "*.example.com"}, "group": "hosts"},
                     {"match": {"header": {"name": "X-Canary", "value": "1"}}, "group": "misc"},
                     {"match": {"cookie": {"name": "beta"}}, "group": "misc"},
                     {"match": {"query": {"name": "debug", "value": "on"}}, "group": "misc"},
                 ])
    p = proxy(cfg)
    c = Client(p.port)
    try:
        assert served_by(c.get("/api/users")) == "a1"
        assert served_by(c.get("/api/users", method="DELETE")) == "b1"  # method not listed
        assert served_by(c.get("/img/logo.png")) == "s1"
        assert served_by(c.get("/api/logo.png")) == "a1"  # first match wins
        c.send(b"GET /x HTTP/1.1\r\nHost: www.Example.com:8080\r\n\r\n")
        assert served_by(c.response()) == "h1"
        assert served_by(c.get("/x", [("X-Canary", "1")])) == "m1"
        assert served_by(c.get("/x", [("X-Canary", "0")])) == "b1"
        assert served_by(c.get("/x", [("Cookie", "a=1; beta=yes")])) == "m1"
        assert served_by(c.get("/x?a=1&debug=on")) == "m1"
        assert served_by(c.get("/x?debug=off")) == "b1"
    finally:
        c.close()
    routes = p.stats()["routes"]
    assert [r["hits"] for r in routes] == [2, 1, 1, 1, 1, 1]
    assert p.stats()["default_route_hits"] == 3


def _cookie(resp):
    values = resp[1].get("set-cookie", [])
    return values[0] if values else None


def test_sticky_cookie_insert_and_tampering(backends, proxy):
    b1, b2, b3 = backends("b1", "b2", "b3")
    p = proxy(config([b1, b2, b3], sticky={"cookie": "LBSRV", "secret": "lab-secret"}))
    c = Client(p.port)
    try:
        first = c.get("/")
        cookie = _cookie(first)
        assert cookie.startswith(f"LBSRV={sign(served_by(first), 'lab-secret')};")
        assert "HttpOnly" in cookie
        value = cookie.split(";")[0]
        pinned = [c.get("/", [("Cookie", value)]) for _ in range(5)]
        assert {served_by(r) for r in pinned} == {served_by(first)}
        assert all(_cookie(r) is None for r in pinned)  # valid cookie: not re-set
        # a client editing the backend name without the secret is rebalanced
        forged = "LBSRV=b3." + value.split(".", 1)[1]
        got = [c.get("/", [("Cookie", forged)]) for _ in range(3)]
        assert all(_cookie(r) is not None for r in got)
        assert all(_cookie(r).startswith(f"LBSRV={sign(served_by(r), 'lab-secret')};") for r in got)
        unknown = c.get("/", [("Cookie", "LBSRV=" + sign("b9", "lab-secret"))])
        assert _cookie(unknown) is not None
    finally:
        c.close()


def test_sticky_to_dead_backend_rebalances(backends, proxy):
    b1, b2 = backends("b1", "b2")
    p = proxy(config([b1, b2], sticky={"secret": "s"}, retries=0))
    b1.stop()  # refuses connections now
    resp = spread(p.port, ["/"], [("Cookie", "LBSRV=" + sign("b1", "s"))])
    assert resp == ["b2"]
    c = Client(p.port)
    try:
        r = c.get("/", [("Cookie", "LBSRV=" + sign("b1", "s"))])
        assert served_by(r) == "b2" and _cookie(r).startswith("LBSRV=" + sign("b2", "s"))
    finally:
        c.close()


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_auth_basic_and_bearer(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], routes=[
        {"match": {"path_prefix": "/admin"}, "auth": {"type": "basic", "users": {"alice": "pw"},
                                                       "realm": "lab admin"}},
        {"match": {"path_prefix": "/api"}, "auth": {"type": "bearer", "tokens": ["t0k"]}},
    ]))
    c = Client(p.port)
    try:
        r = c.get("/admin")
        assert r[0] == 401 and r[1]["www-authenticate"] == ['Basic realm="lab admin"']
        assert c.get("/admin", [("Authorization", _basic("alice", "bad"))])[0] == 401
        assert c.get("/admin", [("Authorization", _basic("bob", "pw"))])[0] == 401
        assert c.get("/admin", [("Authorization", "Basic !!!")])[0] == 401
        assert c.get("/admin", [("Authorization", _basic("alice", "pw"))])[0] == 200
        r = c.get("/api")
        assert r[0] == 401 and r[1]["www-authenticate"] == ['Bearer realm="lblab"']
        assert c.get("/api", [("Authorization", "Bearer nope")])[0] == 401
        assert c.get("/api", [("Authorization", "Bearer t0k")])[0] == 200
        assert c.get("/open")[0] == 200
    finally:
        c.close()
    assert b1.paths() == ["/admin", "/api", "/open"]


def test_cache_semantics(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], cache={"max_entries": 3, "max_bytes": 100000}))
    c = Client(p.port)
    try:
        def xc(path, headers=(), method="GET"):
            r = c.get(path, headers, method)
            return r[1].get("x-cache", [None])[0]
        assert [xc("/cc/max-age=60"), xc("/cc/max-age=60")] == ["MISS", "HIT"]
        assert xc("/cc/max-age=60", method="HEAD") == "HIT"
        assert [xc("/cc/no-store"), xc("/cc/no-store")] == ["MISS", "MISS"]
        assert [xc("/cc/private,max-age=60"), xc("/cc/private,max-age=60")] == ["MISS", "MISS"]
        assert [xc("/cc/max-age=0,s-maxage=60"), xc("/cc/max-age=0,s-maxage=60")] == \
            ["MISS", "HIT"]
        assert xc("/cc/max-age=60", [("Cache-Control", "no-cache")]) == "MISS"
        assert xc("/cc/max-age=60", [("Authorization", "Bearer x")]) == "MISS"
        # Vary: a different X-Lang is a different entry
        v = "/cc/max-age=60/vary/X-Lang"
        assert [xc(v, [("X-Lang", "en")]), xc(v, [("X-Lang", "fr")]),
                xc(v, [("X-Lang", "en")])] == ["MISS", "MISS", "HIT"]
        assert xc("/plain") == "MISS" and xc("/plain") == "MISS"  # no Cache-Control: not stored
    finally:
        c.close()
    hits = [r["url"] for r in b1.requests].count("/cc/max-age=60")
    assert hits == 3  # first MISS, no-cache refresh, Authorization bypass
    cache = p.stats()["cache"]
    assert cache["hits"] == 4 and cache["entries"] <= 3 and cache["evictions"] >= 1


def test_cache_entry_expires(backends, proxy):
    (b1,) = backends("b1")
    p = proxy(config([b1], cache={}))
    c = Client(p.port)
    try:
        first = c.get("/cc/max-age=1")
        assert c.get("/cc/max-age=1")[1]["x-cache"] == ["HIT"]
        time.sleep(1.15)
        again = c.get("/cc/max-age=1")
        assert again[1]["x-cache"] == ["MISS"] and again[2] != first[2]
    finally:
        c.close()


def test_concurrent_clients_all_answered(backends, proxy):
    bs = backends("b1", "b2")
    p = proxy(config(bs))
    results = []

    def worker():
        results.extend(spread(p.port, ["/c"] * 20))
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 160 and collections.Counter(results) == {"b1": 80, "b2": 80}
