"""Lab 7, the notes' claims: each L4/L7 pro and con as an experiment with a measured verdict.

``claims(results)`` turns the lab folder (three specs: ``lab7_cost``, ``lab7_content``,
``lab7_upload``) into one :class:`Verdict` per claim: true, true under conditions (which), false
here (why), or not measurable in a lab (why). ``check`` makes each a check that passes when its
experiment ran and gave a verdict, so ``lblab lab check 7 DIR`` prints the verdicts with their
numbers; ``python -m experiments.labs.lab7 DIR`` prints them as a Markdown table.
"""
import sys
from dataclasses import dataclass

from experiments.labs import measure as M
from experiments.labs.checks import check_true
from experiments.labs.model import Lab

TRUE, CONDITIONAL, FALSE, UNMEASURABLE = ("true", "true under conditions", "false here",
                                          "not measurable in a lab")
# Upload: a streaming balancer hands the backend the whole body about one link-time after the
# client starts (like L4), a buffering one about two (store, then forward). Halfway between.
BUFFERING_RATIO = 1.5
STATIC, SMUGGLE = "/static/logo.png", "/api/upload"


@dataclass(frozen=True)
class Verdict:
    """One claim of the notes, measured."""
    claim: str
    experiment: str
    figures: str          # the measured numbers the verdict rests on
    verdict: str          # TRUE, CONDITIONAL, FALSE or UNMEASURABLE
    why: str
    measured: bool = True  # False: the experiment's runs are missing from the results


def _missing(claim, experiment, spec):
    return Verdict(claim, experiment, "n/a", "n/a", f"no ok runs of {spec} in these results: run "
                   f"'lblab lab run 7' (all three specs)", measured=False)


def _median(part, balancer, **sweep):
    rows = M.ok_runs(part, balancer, **sweep)
    if not rows:
        return None
    return M.median_latency_ms(M.measured(part.requests_by_run().get(rows[0]["run"], [])))


def _value(part, balancer, column, **sweep):
    rows = M.ok_runs(part, balancer, **sweep)
    return rows[0].get(column) if rows else None


def cost_claims(part):
    """Claims on speed, connections, overhead and TLS, from ``lab7_cost``."""
    lat = {(b, ka): _median(part, b, keepalive=ka) for b in
           ("l4_reactive", "l4_group", "l7_plain", "l7_tls") for ka in (True, False)}
    rps = {(b, ka): _value(part, b, "goodput_rps", keepalive=ka) for b in
           ("l4_reactive", "l4_group", "l7_plain", "l7_tls") for ka in (True, False)}
    if None in lat.values() or None in rps.values():
        return [_missing(c, "lab7_cost", "lab7_cost") for c in (
            "L4 is faster (lower latency)", "L4 can handle more connections",
            "L7 has more overhead", "L7 can terminate SSL; L4 does no SSL termination")]
    f = M.fmt
    faster_keep = [b for b in ("l4_reactive", "l4_group")
                   if lat[(b, True)] < lat[("l7_plain", True)]]
    faster_new = [b for b in ("l4_reactive", "l4_group")
                  if lat[(b, False)] < lat[("l7_plain", False)]]
    def row(keepalive):
        return ", ".join(f"{b.replace('_plain', '')} {f(lat[(b, keepalive)], ' ms')}"
                         for b in ("l4_reactive", "l4_group", "l7_plain"))
    figures = (f"median latency, keep-alive: {row(True)}; new connection per request: "
               f"{row(False)}")
    if len(faster_keep) == 2 and len(faster_new) == 2:
        speed = (TRUE, "both L4 paths answered faster than the proxy, with and without "
                       "keep-alive: no second TCP connection, no user-space hop")
    elif not faster_keep and not faster_new:
        speed = (FALSE, "the proxy answered at least as fast as both L4 paths here")
    else:
        slow = [f"{b} {cond}" for b in ("l4_reactive", "l4_group")
                for cond, faster in (("with keep-alive", faster_keep),
                                     ("with a new connection per request", faster_new))
                if b not in faster]
        speed = (CONDITIONAL, f"L4 was faster except {' and '.join(slow)}: the reactive L4 "
                              f"mode sends each new connection's first packet to the "
                              f"controller, a cost the proxy does not pay")
    out = [Verdict("L4 is faster (lower latency)", "lab7_cost: closed loop, 8 users, keep-alive "
                   "on and off; median latency", figures, *speed)]
    conn = {b: rps[(b, False)] for b in ("l4_reactive", "l4_group", "l7_plain")}
    more = [b for b in ("l4_reactive", "l4_group") if conn[b] > conn["l7_plain"]]
    figures = ", ".join(f"{b} {f(v, ' req/s')}" for b, v in conn.items())
    if len(more) == 2:
        verdict = (TRUE, "both L4 paths sustained more new connections per second than the proxy")
    elif more:
        verdict = (CONDITIONAL, f"only {more[0]} beat the proxy: a reactive L4 balancer asks "
                                f"its controller for every new connection, an OVS select group "
                                f"decides in the switch")
    else:
        verdict = (FALSE, "the proxy sustained as many new connections as either L4 path here")
    out.append(Verdict("L4 can handle more connections", "lab7_cost: a new connection per "
                       "request (keep-alive off), closed loop, 8 users; requests (= new "
                       "connections) per second", figures, *verdict))
    extra = lat[("l7_plain", True)] - min(lat[("l4_reactive", True)], lat[("l4_group", True)])
    verdict = (TRUE, f"the proxy added {f(extra, ' ms')} per request on a kept connection: it "
                     f"parses the request and relays it over a second connection") \
        if extra > 0 else (FALSE, "the proxy added no latency over the faster L4 path here")
    out.append(Verdict("L7 has more overhead", "lab7_cost, keep-alive on: median latency of the "
                       "proxy minus the faster L4 path", f"{f(extra, ' ms')} per request",
                       *verdict))
    tls_new = lat[("l7_tls", False)] - lat[("l7_plain", False)]
    tls_keep = lat[("l7_tls", True)] - lat[("l7_plain", True)]
    served = rps[("l7_tls", True)] and rps[("l7_tls", False)]
    figures = (f"TLS adds {f(tls_new, ' ms')} per request with a new connection each, "
               f"{f(tls_keep, ' ms')} on a kept connection; "
               f"{f(rps[('l7_tls', False)], ' req/s')} TLS handshakes per second")
    out.append(Verdict(
        "L7 can terminate SSL; L4 does no SSL termination", "lab7_cost: the builtin proxy with "
        "the lab's certificate, clients on https, backends on plain HTTP", figures,
        TRUE if served else FALSE,
        "the proxy decrypted every request and spoke plain HTTP to the backends; the handshake "
        "is the expensive part. An L4 balancer forwards TCP segments and holds no key: it "
        "cannot terminate TLS (true by construction), so TLS then ends at each backend"))
    return out


def content_claims(part):
    """Claims on content routing, stickiness, caching and inspection, from ``lab7_content``."""
    names = ("L7 can route on content", "L7 supports sticky sessions and caching",
             "L7 is more secure (can inspect requests)")
    runs = {b: M.ok_runs(part, b) for b in ("l4_hash", "l7_app")}
    if not all(runs.values()):
        return [_missing(c, "lab7_content", "lab7_content") for c in names]
    reqs = {b: M.measured(part.requests_by_run().get(r[0]["run"], [])) for b, r in runs.items()}
    static = {b: [r for r in rs if r.get("path") == STATIC and M.is_ok(r)]
              for b, rs in reqs.items()}
    on_b3 = {b: (sum(r.get("backend") == "b3" for r in rs) / len(rs) if rs else None)
             for b, rs in static.items()}
    f = M.fmt
    out = [Verdict(
        names[0], "lab7_content: /static routed to b3 at L7; the same requests at L4 (ip_hash)",
        f"share of /static served by b3: l7 {f(on_b3['l7_app'])}, l4 {f(on_b3['l4_hash'])}",
        TRUE if on_b3["l7_app"] == 1.0 and (on_b3["l4_hash"] or 0) < 1.0 else FALSE,
        "the proxy reads the path; an L4 balancer sees addresses and ports only, so /static "
        "lands wherever the client's connection does")]
    sticky = {b: min(M.top_backend_share([r for r in rs if r.get("path") != STATIC]).values(),
                     default=None) for b, rs in reqs.items()}
    hits = M.cache_hit_rate(static["l7_app"])
    ok = (sticky["l7_app"] or 0) >= 0.99 and (hits or 0) > 0
    out.append(Verdict(
        names[1], "lab7_content: one user per client; a sticky cookie and a cache at L7",
        f"a user's requests on one backend: l7 {f(sticky['l7_app'])} (cookie), l4 "
        f"{f(sticky['l4_hash'])} (client address); /static cache hits at l7 {f(hits)}, l4 none",
        TRUE if ok else FALSE,
        "a cookie pins a user, a cache answers repeats: both need HTTP. L4 is sticky too, "
        "but per client address (ip_hash): every user behind one address (a NAT) lands on one "
        "backend, and a user whose address changes moves"))
    smuggle = {b: [r for r in rs if r.get("path") == SMUGGLE] for b, rs in reqs.items()}
    forwarded = {b: sum(1 for rec in part.backend_records(r[0]["run"])
                        if rec.get("path") == SMUGGLE) for b, r in runs.items()}
    answered_by = {b: sorted({r.get("backend") or "the balancer" for r in rs if r.get("status")})
                   for b, rs in smuggle.items()}
    refused = {b: M.statuses(rs) for b, rs in smuggle.items()}
    out.append(Verdict(
        names[2], "lab7_content: a POST with Content-Length and Transfer-Encoding (the start of "
        "a smuggling attack) through each balancer",
        f"statuses l7 {refused['l7_app']} answered by {', '.join(answered_by['l7_app'])}, "
        f"{forwarded['l7_app']} in the backends' logs; l4 {refused['l4_hash']} answered by "
        f"{', '.join(answered_by['l4_hash']) or 'none'}",
        CONDITIONAL if set(refused["l7_app"]) == {400} and forwarded["l7_app"] == 0 else FALSE,
        "the proxy inspected and refused the request before any backend saw it; at L4 it "
        "reached a backend, whose own parser had to refuse it. 'More secure' as a whole is "
        "not measurable in a lab: a proxy is also more code parsing hostile input (docs/l7.md "
        "lists a case HAProxy 2.6 forwards), and TLS ending at the proxy leaves the last hop "
        "in plain text"))
    return out


def upload_claim(part):
    """'L7 needs to buffer the entire request', from ``lab7_upload``."""
    claim = "L7 needs to buffer the entire request"
    names = ("l4_reactive", "l7_builtin", "l7_haproxy", "l7_nginx")
    times = {}
    for name in names:
        rows = M.ok_runs(part, name)
        if rows:
            run = rows[0]["run"]
            times[name] = M.upload_ms(M.measured(part.requests_by_run().get(run, [])),
                                      part.backend_records(run))
    if times.get("l4_reactive") is None or len(times) < len(names) or None in times.values():
        return [_missing(claim, "lab7_upload", "lab7_upload")]
    base = times["l4_reactive"]
    ratio = {n: times[n] / base for n in names[1:]}
    buffers = sorted(n for n, r in ratio.items() if r >= BUFFERING_RATIO)
    figures = (f"client's first byte to the whole body at the backend (median): l4 "
               f"{M.fmt(base, ' ms')}; " + ", ".join(
                   f"{n} {M.fmt(times[n], ' ms')} ({ratio[n]:.2f}x)" for n in names[1:]))
    if not buffers:
        verdict = (FALSE, "every proxy streamed the body on as it arrived (about one link-time, "
                          "like L4)")
    elif len(buffers) == len(ratio):
        verdict = (TRUE, "every proxy stored the whole body before forwarding it")
    else:
        streams = sorted(set(ratio) - set(buffers))
        verdict = (CONDITIONAL, f"{', '.join(buffers)} stored the whole body first (about two "
                                f"link-times: nginx buffers request bodies by default, "
                                f"proxy_request_buffering); {', '.join(streams)} streamed it. A "
                                f"proxy must read the request head to route, not the body")
    return [Verdict(claim, "lab7_upload: 512 KiB POSTs over 20 Mbit/s links, one at a time",
                    figures, *verdict)]


def simpler_claim():
    """'L4 is simpler' has no experiment: say why."""
    return Verdict("L4 is simpler", "none", "n/a", UNMEASURABLE,
                   "simplicity is a property of a design, not a number a run gives; lines of "
                   "configuration or code are stand-ins that measure something else (this "
                   "L4 balancer needs a controller and OpenFlow rules, the proxy a config file)",
                   measured=True)


def claims(results):
    """Return one :class:`Verdict` per claim of the notes, in the handout's order (pure)."""
    def part(name):
        return results.part(name) if results.parts else (
            results if results.name == name else None)
    out = []
    for name, func in (("lab7_cost", cost_claims), ("lab7_content", content_claims),
                       ("lab7_upload", upload_claim)):
        found = part(name)
        if found is None:
            found = _Empty()
        out += func(found)
    out.append(simpler_claim())
    return out


class _Empty:
    """A spec's results that are missing: no runs."""
    parts = {}

    def ok_runs(self):
        return []


def check(results):
    """The lab's checks (pure): each claim measured and given a verdict."""
    return [check_true(f"claim: {v.claim}", v.measured, f"{v.verdict}: {v.figures}",
                       "a measured verdict", v.why) for v in claims(results)]


def markdown(verdicts):
    """Return the verdict table as Markdown."""
    lines = ["| claim | experiment | measured | verdict | why |", "|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.claim} | {v.experiment} | {v.figures} | **{v.verdict}** | {v.why} |")
    return "\n".join(lines)


def main(argv=None):
    """``python -m experiments.labs.lab7 DIR``: print the verdict table of a lab 7 folder."""
    from experiments.labs import results as results_mod
    from lblab_core.errors import UsageError
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m experiments.labs.lab7 RESULTS_DIR   (the folder 'lblab lab run "
              "7' printed): the claims' verdict table as Markdown", file=sys.stderr)
        return 2
    try:
        print(markdown(claims(results_mod.load(argv[0]))))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


LAB = Lab(
    number=7, title="The notes' claims about L4 and L7, measured", layer="L4 against L7",
    specs=("lab7_cost.yaml", "lab7_content.yaml", "lab7_upload.yaml"),
    handout="docs/labs/lab7.md",
    first_step="h1 curl -s -o /dev/null -w '%{time_connect} %{time_total}\\n' "
               "http://10.254.0.1/   (connect and total time through the L4 balancer)",
    start_balancer="l4_reactive", check=check, minutes="60-90")


if __name__ == "__main__":
    sys.exit(main())
