"""Lab 3, network layer: NAT in the l3 mode, one backend per client, ip_hash collisions."""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.common import clients_per_backend, runs_of
from experiments.labs.model import Lab

SPREAD, HASHED = "l3_rr", "l3_iphash"
VIP = "10.254.0.1"
MIN_JAIN_SPREAD = 0.9


def _per_run(results, balancer):
    by_run = results.requests_by_run()
    return {row["run"]: by_run.get(row["run"], []) for row in runs_of(results, balancer)}


def _sticky(name, runs):
    worst, where = 0, ""
    for run, requests in sorted(runs.items()):
        for client, backends in sorted(clients_per_backend(requests).items()):
            if len(backends) > worst:
                worst, where = len(backends), f"{run}: {client} reached {', '.join(sorted(backends))}"
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
    # NAT: the backends see the clients' own addresses, never the virtual IP
    sources, vip_seen = set(), 0
    for run in list(spread) + list(hashed):
        for rec in results.backend_records(run):
            sources.add(rec.get("client"))
            vip_seen += rec.get("client") == VIP
    clients = max((_used(r)[1] for r in (spread, hashed) if r), default=0)
    checks.append(check_true(
        "source addresses the backends saw", sources and vip_seen == 0 and len(sources) >= clients,
        ", ".join(sorted(str(s) for s in sources)) or None,
        f"the {clients} clients' own addresses (destination NAT only)",
        "the backends' records do not show each client's address: look at raw/*/backend-*.jsonl"))
    if spread:
        jain = [row["jain_backends"] for row in runs_of(results, SPREAD)]
        checks.append(in_range(f"{SPREAD}: Jain's index over backends", min(jain),
                               MIN_JAIN_SPREAD, 1.0, missing="round robin per client should "
                               "give each of 4 clients its own backend"))
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
    first_step="h1 curl -s http://10.254.0.1/   (then h2, h3, h4: which backend answers each "
               "client, and does it change when you ask again?)",
    check=check, start_balancer=SPREAD)

