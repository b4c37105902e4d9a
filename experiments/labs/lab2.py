"""Lab 2, data link layer: direct server return (l2) against NAT (l3).

What the results show (the replies bypassing the balancer are seen at the prompt, with tcpdump
and the switch's rules, not in the results): both balancers serve every backend without an
error; l2 decides per TCP connection (its decisions, the controller's ``flows_total``, match the
requests: one connection each), l3 once per client address.
"""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.common import runs_of
from experiments.labs.lab3 import decisions_of
from experiments.labs.model import Lab

DSR, NAT = "l2_dsr", "l3_nat"
# l2 on the conntrack path commits each new connection: at least this share of the requests
# (each its own connection, keepalive false) must be decisions of the controller
MIN_DECISIONS_PER_REQUEST = 0.9


def _clients(results):
    return (((results.manifest.get("spec") or {}).get("topology") or {}).get("params")
            or {}).get("clients")


def check(results):
    """The lab's checks (pure)."""
    checks = []
    clients = _clients(results)
    for name, mode in ((DSR, "l2"), (NAT, "l3")):
        rows = runs_of(results, name)
        if not rows:
            checks.append(absent(f"{name}: ok runs", ">= 1 ok run",
                                 f"no ok run of balancer {name}: run 'lblab lab run 2' (a "
                                 f"failed run's reason is in runs.csv's failure column)"))
            continue
        kinds = sorted({row["kind"] for row in rows})
        checks.append(check_true(f"{name}: controller mode", kinds == [mode], ", ".join(kinds),
                                 mode, f"{name} ran in mode {', '.join(kinds)}; the lab "
                                       f"compares l2 (DSR) with l3 (NAT)"))
        backends = sum(1 for k in rows[0] if k.startswith("requests_"))
        served = min(sum(1 for k, v in row.items() if k.startswith("requests_") and v)
                     for row in rows)
        # l2 spreads connections over every backend; l3 one backend per client address
        want = backends if mode == "l2" else min(backends, clients or backends)
        checks.append(in_range(f"{name}: backends that served", served, want, want,
                               "backends", missing="not every backend it could use served "
                                                   "in a run"))
        checks.append(in_range(f"{name}: failed requests", sum(r["errors"] or 0 for r in rows),
                               None, 0, "requests",
                               missing="requests failed (errors_by_kind in runs.csv)"))
        decisions = [(decisions_of(results.controller_stats(row["run"])), row) for row in rows]
        if mode == "l2":
            shares = [d / (row["sent"] or 1) for d, row in decisions if d is not None]
            checks.append(in_range(
                f"{name}: controller decisions per request", min(shares, default=None),
                MIN_DECISIONS_PER_REQUEST, None,
                missing="the controller did not decide each new connection: l2 balances per "
                        "TCP connection (the 5-tuple)"))
        else:
            most = max((d for d, _ in decisions if d is not None), default=None)
            checks.append(in_range(f"{name}: controller decisions per run", most, 1,
                                   clients, "decisions",
                                   missing="l3 decides once per client address; more "
                                           "decisions than clients means per connection"))
    return checks


LAB = Lab(
    number=2, title="MAC learning, ARP for the VIP, flooding, direct server return",
    layer="data link", specs=("lab2_datalink.yaml",), handout="docs/labs/lab2.md",
    first_step="h1 arp -n   (then h1 curl -s -o /dev/null http://10.254.0.1/ and h1 arp -n "
               "again: which MAC answers for the virtual IP 10.254.0.1?)",
    check=check, start_balancer=DSR)
