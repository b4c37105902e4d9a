"""Lab 3, network layer: NAT in the l3 mode, one backend per client, ip_hash collisions."""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.common import clients_per_backend, runs_of
from experiments.labs.model import Lab

SPREAD, HASHED = "l3_rr", "l3_iphash"
VIP = "10.254.0.1"


def _per_run(results, balancer):
    by_run = results.requests_by_run()
    return {row["run"]: by_run.get(row["run"], []) for row in runs_of(results, balancer)}


def _sticky(name, runs):
    worst, where = 0, ""
    for run, requests in sorted(runs.items()):
        for client, backends in sorted(clients_per_backend(requests).items()):
            if len(backends) > worst:
                worst = len(backends)
                where = f"{run}: {client} reached {', '.join(sorted(backends))}"
    return in_range(f"{name}: backends per client (stickiness)", worst if runs else None, 1, 1,
                    "backend(s)", missing=f"a client's requests went to several backends "
                                          f"({where}): the balancer decided per connection, "
                                          f"not per client address (mode l3 decides once per "
                                          f"client)")


def _used(runs):
    """Return the fewest backends any run of ``runs`` used, and the clients it had."""
    fewest, clients = None, 0
    for requests in runs.values():
        seen = clients_per_backend(requests)
        used = len(set().union(*seen.values())) if seen else 0
        fewest = used if fewest is None else min(fewest, used)
        clients = max(clients, len(seen))
    return fewest, clients


def decisions_of(stats):
    """Return the flows the controller set up over all backends (its /stats), or None."""
    if not stats:
        return None
    total = 0
    for service in (stats.get("stats") or {}).get("services", {}).values():
        for backend in (service.get("backends") or {}).values():
            total += backend.get("flows_total") or 0
    return total


def check(results):
    """The lab's checks (pure)."""
    checks = []
    spread, hashed = _per_run(results, SPREAD), _per_run(results, HASHED)
    for name, runs in ((SPREAD, spread), (HASHED, hashed)):
        if not runs:
            checks.append(absent(f"{name}: ok runs", ">= 1 ok run",
                                 f"no ok run of balancer {name}: run 'lblab lab run 3'"))
            continue
        kinds = {row["kind"] for row in runs_of(results, name)}
        checks.append(check_true(f"{name}: controller mode", kinds == {"l3"},
                                 ", ".join(sorted(kinds)), "l3",
                                 f"{name} ran in mode {', '.join(sorted(kinds))}; the lab is "
                                 f"about l3 (NAT, one decision per client)"))
        checks.append(_sticky(name, runs))
    # NAT: the backends see the clients' own addresses (ip:port), never the virtual IP
    sources, vip_seen = set(), 0
    for run in list(spread) + list(hashed):
        for rec in results.backend_records(run):
            address = str(rec.get("client") or "").rsplit(":", 1)[0]
            sources.add(address)
            vip_seen += address == VIP
    clients = max((_used(r)[1] for r in (spread, hashed) if r), default=0)
    checks.append(check_true(
        "source addresses the backends saw", sources and vip_seen == 0
        and len(sources) >= clients, ", ".join(sorted(sources)) or None,
        f"the {clients} clients' own addresses (destination NAT only)",
        "the backends' records do not show each client's address: look at "
        "raw/*/backend-*.jsonl"))
    # one decision per client address: the controller's own count of the flows it set up
    for name, runs in ((SPREAD, spread), (HASHED, hashed)):
        decisions = [decisions_of(results.controller_stats(run)) for run in sorted(runs)]
        decisions = [d for d in decisions if d is not None]
        if runs:
            checks.append(in_range(
                f"{name}: decisions the controller made per run", max(decisions, default=None),
                1, clients or None, "decisions",
                missing=f"more decisions than the {clients} clients: the controller decided "
                        f"per connection, not once per client address"))
    if hashed:
        used, clients = _used(hashed)
        checks.append(in_range(
            f"{HASHED}: backends used by {clients} clients", used, 1, max(clients - 1, 1),
            "backends", missing=f"ip_hash used {used} backends for {clients} clients: the "
                                f"lab expects collisions (two clients hashed to one backend); "
                                f"were the balancer and the clients those of the lab's spec?"))
    return checks


LAB = Lab(
    number=3, title="Addresses, NAT in l3, per-client stickiness, ip_hash collisions",
    layer="network", specs=("lab3_network.yaml",), handout="docs/labs/lab3.md",
    first_step="h1 curl -sI http://10.254.0.1/   (the X-Backend header names the backend that "
               "answered; then h2, h3, h4, and each again: does it change?)",
    check=check, start_balancer=SPREAD)

