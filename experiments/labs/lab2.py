"""Lab 2, data link layer: direct server return (l2) against NAT (l3), from the balancer's own
counters: in l2 the replies bypass the balancer's rules, in l3 they pass them."""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.common import runs_of
from experiments.labs.model import Lab

DSR, NAT = "l2_dsr", "l3_nat"
# bytes the balancer's rules counted per answered request, as a share of the response size:
# l2 sees only the client's packets (well under the response), l3 sees both directions.
MAX_DSR_SHARE = 0.5
MIN_NAT_SHARE = 0.9


def counted_bytes(stats):
    """Return the bytes the controller's rules counted over every backend of every service."""
    total = 0
    for service in ((stats or {}).get("stats") or {}).get("services", {}).values():
        for backend in (service.get("backends") or {}).values():
            total += backend.get("bytes") or 0
    return total


def share_of_responses(results, row):
    """Return the balancer's counted bytes over the response bytes of a run (or None)."""
    stats = results.controller_stats(row["run"])
    answered = (row.get("throughput_mbps") or 0) * 1e6 / 8 * (row.get("duration_s") or 0)
    if stats is None or not answered:
        return None
    return counted_bytes(stats) / answered


def check(results):
    """The lab's checks (pure)."""
    checks = []
    for name, mode, low, high, why in (
            (DSR, "l2", None, MAX_DSR_SHARE, "the balancer's rules counted the responses too: "
                                             "the replies did not bypass it (was the mode l2?)"),
            (NAT, "l3", MIN_NAT_SHARE, None, "the balancer's rules did not count the "
                                             "responses: with NAT the replies must pass them")):
        rows = runs_of(results, name)
        if not rows:
            checks.append(absent(f"{name}: ok runs", ">= 1 ok run",
                                 f"no ok run of balancer {name}: run 'lblab lab run 2'"))
            continue
        kinds = sorted({row["kind"] for row in rows})
        checks.append(check_true(f"{name}: controller mode", kinds == [mode], ", ".join(kinds),
                                 mode, f"{name} ran in mode {', '.join(kinds)}, the lab "
                                       f"compares {mode} with the other mode"))
        shares = [share_of_responses(results, row) for row in rows]
        shares = [s for s in shares if s is not None]
        value = max(shares) if high is not None and shares else (min(shares) if shares else None)
        checks.append(in_range(f"{name}: bytes the balancer counted / response bytes", value,
                               low, high, missing=why))
        served = min(sum(1 for k, v in row.items() if k.startswith("requests_") and v)
                     for row in rows)
        backends = sum(1 for k in rows[0] if k.startswith("requests_"))
        checks.append(in_range(f"{name}: backends that served", served, backends, backends,
                               missing="some backends served nothing"))
    return checks


LAB = Lab(
    number=2, title="MAC learning, ARP for the VIP, flooding, direct server return",
    layer="data link", specs=("lab2_datalink.yaml",), handout="docs/labs/lab2.md",
    first_step="h1 arp -n   (then h1 curl -s -o /dev/null http://10.254.0.1/ and h1 arp -n "
               "again: which MAC answers for the virtual IP 10.254.0.1?)",
    check=check, start_balancer=DSR)
