"""Lab 1, physical layer: a shaped link's configured rate against the rate one TCP flow gets."""
from experiments.labs.checks import absent, check_true, in_range
from experiments.labs.model import Lab

SWEEP_COLUMN = "sweep.topology.params.bw"
# One TCP flow over an HTB-shaped veth link measures 95-98 % of the configured rate here
# (TCP/IP headers and ACK spacing): accept 85 % .. 103 %.
LOW, HIGH = 0.85, 1.03
MIN_RATES = 3


def configured_rate(row, manifest):
    """Return the configured link rate (Mbit/s) of a run: its sweep value, else the spec's."""
    if row.get(SWEEP_COLUMN) is not None:
        return row[SWEEP_COLUMN]
    return ((manifest.get("spec") or {}).get("topology") or {}).get("params", {}).get("bw")


def check(results):
    """The lab's checks (pure): rates swept, each measured within 85-103 % of its rate."""
    runs = results.ok_runs()
    if not runs or runs[0].get("total_mbps") is None:
        why = next((r.get("failure") for r in results.runs if r.get("failure")), None)
        return [absent("iperf3 runs", "ok runs with an iperf3 rate (total_mbps)",
                       "no ok iperf3 run in runs.csv" + (f" (the first failure: {why})" if why
                                                         else "")
                       + ": run 'lblab lab run 1' again")]
    by_rate = {}
    unshaped = 0
    for row in runs:
        rate = configured_rate(row, results.manifest)
        if rate is None:
            unshaped += 1
        else:
            by_rate.setdefault(float(rate), []).append(row["total_mbps"])
    checks = [check_true(
        "every run had a shaped link", unshaped == 0, f"{unshaped} unshaped run(s)",
        "0 runs without topology.params.bw",
        "some runs had no link rate (topology.params.bw unset): the measurement then shows the "
        "machine's speed, not a link's; run the lab's spec with its rate sweep")]
    checks.append(in_range("configured rates measured", len(by_rate), MIN_RATES, None, "rates",
                           missing=f"only {len(by_rate)} rate(s): keep the lab's sweep of "
                                   f"topology.params.bw (at least {MIN_RATES} rates)"))
    for rate, values in sorted(by_rate.items()):
        mean = sum(values) / len(values)
        checks.append(in_range(
            f"measured rate at {rate:g} Mbit/s", mean, LOW * rate, HIGH * rate, "Mbit/s",
            missing=f"one TCP flow measured {mean:.1f} Mbit/s on a link shaped to {rate:g}: "
                    f"the link is not the bottleneck, or the flow failed; look at "
                    f"raw/*/iperf3-*.json"))
    failed = sum(row.get("failed_flows") or 0 for row in runs)
    checks.append(in_range("failed flows", failed, None, 0, "flows",
                           missing="some iperf3 flows failed (errors_by_kind in runs.csv)"))
    return checks


LAB = Lab(
    number=1, title="Link rate and shaping, the bandwidth-delay product, a queue", layer="physical",
    specs=("lab1_physical.yaml",), handout="docs/labs/lab1.md",
    first_step="h1 ping -c 3 h3   (the client h1 pings the backend h3: the RTT of an idle "
               "link, for the bandwidth-delay product)",
    check=check)
