"""Lab 6, application layer: content routing, a cache, a login, and a smuggling attempt refused."""
from experiments.labs import measure as M
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.model import Lab

API, STATIC, ANON, ADMIN, SMUGGLE = ("/api/items", "/static/logo.png", "/admin/anonymous",
                                     "/admin/alice", "/api/upload")
STATIC_POOL, API_POOL = {"b3"}, {"b1", "b2"}
# One static object with max-age=60: every request after the first fill of the cache is a hit;
# half is far below what a working cache gives and far above a cache that is off (0).
MIN_HIT_RATE = 0.5


def _routed(name, reqs, pool, what):
    ok = [r for r in reqs if M.is_ok(r)]
    share = sum(r.get("backend") in pool for r in ok) / len(ok) if ok else None
    return in_range(f"{name}: {what} requests served by {'/'.join(sorted(pool))}", share, 1.0,
                    1.0, missing=f"some {what} requests went elsewhere: a route is missing or "
                                 f"points at the wrong group")


def check_run(results, row):
    """The checks of one run of the lab's proxy (pure)."""
    name = row["run"]
    reqs = M.measured(results.requests_by_run().get(name, []))
    by_path = {p: [r for r in reqs if r.get("path") == p] for p in (API, STATIC, ANON, ADMIN,
                                                                    SMUGGLE)}
    empty = [p for p, rs in by_path.items() if not rs]
    if empty:
        return [absent(f"{name}: every kind of request sent", "requests of every mix path",
                       f"no measured request of {', '.join(empty)}: keep the lab's mix")]
    checks = [_routed(name, by_path[API], API_POOL, "/api"),
              _routed(name, by_path[STATIC], STATIC_POOL, "/static")]
    checks.append(in_range(
        f"{name}: /static requests answered from the cache", M.cache_hit_rate(by_path[STATIC]),
        MIN_HIT_RATE, None, missing="the proxy's cache answered few or no /static requests: is "
                                    "l7.cache on, and does b3 send Cache-Control max-age?"))
    anon = M.statuses(by_path[ANON])
    checks.append(check_true(
        f"{name}: anonymous /admin refused with 401", set(anon) == {401}, anon, "{401: all}",
        "some anonymous /admin requests were not answered 401: the route's auth is missing"))
    admin = [r for r in by_path[ADMIN] if M.is_ok(r)]
    checks.append(in_range(
        f"{name}: /admin with the password served", len(admin) / len(by_path[ADMIN]), 1.0, 1.0,
        missing="requests with the right Basic credentials were refused: check auth.users"))
    smuggle = M.statuses(by_path[SMUGGLE])
    checks.append(check_true(
        f"{name}: request with Content-Length and Transfer-Encoding refused with 400",
        set(smuggle) == {400}, smuggle, "{400: all}",
        "the proxy did not refuse every request with two framings with 400"))
    forwarded = [rec for rec in results.backend_records(name) if rec.get("path") == SMUGGLE]
    checks.append(in_range(
        f"{name}: such requests in the backends' logs", len(forwarded), None, 0, "requests",
        missing="a backend logged the ambiguous request: the proxy forwarded it (a "
                "smuggling attack's first half reached the backend)"))
    return checks


def check(results):
    """The lab's checks (pure)."""
    rows = M.ok_runs(results)
    if not rows:
        return [absent("an ok run", "one ok run of the lab's proxy",
                       "no ok run in runs.csv: run 'lblab lab run 6' again")]
    checks = []
    for row in rows:
        checks += check_run(results, row)
    return checks


LAB = Lab(
    number=6, title="Content routing, caching, a login, a smuggling attempt", layer="application",
    specs=("lab6_application.yaml",), handout="docs/labs/lab6.md",
    first_step="h1 curl -si http://10.0.0.3/static/logo.png | grep -i 'x-backend\\|x-cache'   "
               "(which backend answered, and did the cache?)",
    check=check)
