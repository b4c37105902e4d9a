"""l4 least connections from switch counters (pure): ``in_flight: group`` sets the bucket weights
of a conntrack select group from in-flight counts; ``in_flight: counters`` decides per
packet-in as usual and ends connections in the balancer from the counters
(docs/controller.md).

Every ``reweight_interval`` the controller reads, per backend, two switch counters: connections
opened (client SYNs after the NAT) and closed (client FINs or RSTs). In flight = opened -
closed. New connections in the next interval are spread by the group's bucket weights, so the
weights are chosen the way exact least connections would hand out the next ``arrivals``
connections if none ended meanwhile: water-filling. Each backend is raised towards a common
level ``L`` of load per unit of weight (``in_flight / weight``), and its bucket weight is what
it takes to get there; the ``arrivals`` expected in the interval (those of the last interval)
fix ``L``. A backend already above the level gets weight 0 (no new connection) until the others
catch up. With one arrival the least loaded backend gets everything, as in exact least
connections; with many, they share in proportion to their deficits.
"""

from controllers import pipeline

BUCKET_SCALE = 1000  # bucket weights are shares of this (OpenFlow: 16 bits; OVS: 64 hash slots)


def tick_period(tick_sec, reweight_interval):
    """Return how often the controller's tick must run: the counter polls are due every
    ``reweight_interval`` and only a tick sends them, so a tick slower than the interval would
    stretch it (a 0.02 s interval polled every 0.05 s)."""
    return min(tick_sec, reweight_interval)


def in_flight(opened, closed):
    """Return {backend: connections in flight} from the counters (never below 0).

    Args:
        opened (dict): backend -> connections opened (client SYNs counted in the switch).
        closed (dict): backend -> connections closed (client FINs or RSTs).
    """
    return {b: max(0, opened.get(b, 0) - closed.get(b, 0)) for b in opened}


def water_fill(counts, weights, arrivals):
    """Return {backend: bucket weight} that spreads ``arrivals`` new connections like least
    connections would.

    Args:
        counts (dict): backend -> connections in flight (only live backends).
        weights (dict): backend -> configured weight (> 0; 1 each for least_connections).
        arrivals (float): new connections expected before the next reweighting (>= 1 is used).
    Returns:
        dict: backend -> integer bucket weight in 0..BUCKET_SCALE, at least one of them > 0
        (empty when ``counts`` is empty).
    """
    names = [b for b in counts if weights.get(b, 0) > 0]
    if not names:
        return {}
    arrivals = max(1.0, float(arrivals))
    # backends in order of load per unit of weight; raise the level over the first k of them
    order = sorted(names, key=lambda b: (counts[b] / weights[b], b))
    total_w = total_c = 0.0
    level = 0.0
    for k, b in enumerate(order):
        total_w += weights[b]
        total_c += counts[b]
        level = (arrivals + total_c) / total_w
        nxt = order[k + 1] if k + 1 < len(order) else None
        if nxt is None or level <= counts[nxt] / weights[nxt]:
            break
    deficit = {b: max(0.0, level * weights[b] - counts[b]) for b in names}
    total = sum(deficit.values())
    out = {b: int(round(BUCKET_SCALE * d / total)) for b, d in deficit.items()}
    if not any(out.values()):
        out[order[0]] = BUCKET_SCALE
    return out


def largest_share_error(chosen, weights):
    """Return the largest |share - weight share| over backends (a balance figure).

    Args:
        chosen (dict): backend -> connections it received.
        weights (dict): backend -> weight.
    """
    n = sum(chosen.values())
    w = sum(weights.values())
    if not n or not w:
        return 0.0
    return max(abs(chosen.get(b, 0) / n - weights[b] / w) for b in weights)


class SteeringState:
    """Counters (and bucket weights) of one ``in_flight: counters/group`` service."""

    def __init__(self):
        self.counters = {}        # (switch, cookie class, backend id) -> packets
        self.last_opened = None   # total opened at the last reweighting
        self.arrivals = 1.0       # connections opened in the last interval
        self.weights = None       # backend name -> bucket weight (None: configured weights)
        self.reweights = 0        # group changes sent
        self.released = {}        # backend id -> closes already handed to the balancer

    def totals(self, kind):
        """Return {backend id: packets} of one counter class summed over switches."""
        out = {}
        for (_switch, k, bid), packets in self.counters.items():
            if k == kind:
                out[bid] = out.get(bid, 0) + packets
        return out


class SwitchSteering:
    """The ``in_flight: counters/group`` entry points of the core (a mixin of ``Core``): poll
    the counters every ``reweight_interval``; turn them into select-group bucket weights
    (group) or into the balancer's ``on_close`` reports (counters)."""

    def steering_requests(self, now):
        """Return the counter polls due at ``now`` (one per counter class and switch)."""
        if not any(ss.steering is not None for ss in self.services):
            return []
        due = getattr(self, "next_reweight", None)
        if due is not None and now < due:
            return []
        self.next_reweight = now + self.settings.reweight_interval
        return [pipeline.StatsRequest(switch, pipeline.cookie(kind),
                                      pipeline.COOKIE_CLASS_MASK)
                for switch in sorted(self.connected)
                for kind in (pipeline.COOKIE_OPENED, pipeline.COOKIE_CLOSED)]

    def steering_counts(self, switch, flows):
        """Take one counter poll of ``switch``; return the group changes it calls for.

        The closed counters are polled after the opened ones, so a reply with closed counters
        completes a poll: then each service is re-weighted.
        """
        complete = False
        fresh = {}  # one backend has two closed counters (FIN, RST): sum them per reply
        for cookie_value, _match, packets_, _bytes in flows:
            kind, sid, bid = pipeline.cookie_parts(cookie_value)
            if kind not in (pipeline.COOKIE_OPENED, pipeline.COOKIE_CLOSED):
                continue
            if not 1 <= sid <= len(self.services):
                continue
            ss = self.services[sid - 1]
            if ss.steering is None:
                continue
            key = (ss, (switch, kind, bid))
            fresh[key] = fresh.get(key, 0) + packets_
            complete = complete or kind == pipeline.COOKIE_CLOSED
        for (ss, key), packets_ in fresh.items():
            ss.steering.counters[key] = packets_
        if not complete:
            return []
        msgs = []
        for ss in self.services:
            if pipeline.group_in_flight(ss.svc):
                msgs += self.reweight(ss)
            elif ss.steering is not None:
                self.release_closed(ss)
        return msgs

    def release_closed(self, ss):
        """Report the connections the counters saw close since the last poll to the balancer
        (``in_flight: counters``): one ``on_close`` per client FIN/RST, never below 0."""
        st = ss.steering
        for bid, closed in st.totals(pipeline.COOKIE_CLOSED).items():
            new = closed - st.released.get(bid, 0)
            st.released[bid] = closed
            b = ss.by_bid(bid)
            if b is None or b.removed or ss.balancer is None or new <= 0:
                continue
            for _ in range(min(new, ss.balancer.in_flight().get(b.name, 0))):
                ss.balancer.on_close(b.name)

    def steering_in_flight(self, ss):
        """Return {backend name: in flight} of a service from its counters."""
        st = ss.steering
        opened, closed = st.totals(pipeline.COOKIE_OPENED), st.totals(pipeline.COOKIE_CLOSED)
        counts = in_flight(opened, closed)
        return {b.name: counts.get(b.bid, 0) for b in ss.backends.values() if not b.removed}

    def reweight(self, ss, poll=True):
        """Return the group changes that re-weight a service from its counters (if any).

        Args:
            poll (bool): called after a counter poll (then the arrivals of the interval are
                updated); False after a pool change (a backend down, drained, added).
        """
        st = ss.steering
        if poll:
            total = sum(st.totals(pipeline.COOKIE_OPENED).values())
            if st.last_opened is not None:
                st.arrivals = max(1, total - st.last_opened)
            st.last_opened = total
        counts = self.steering_in_flight(ss)
        live = {b.name: b.weight for b in ss.backends.values() if b.live}
        if ss.algorithm == "least_connections":
            live = {name: 1 for name in live}
        weights = water_fill({n: counts.get(n, 0) for n in live}, live, st.arrivals)
        if weights == st.weights:
            return []
        st.weights = weights
        st.reweights += 1
        buckets = self._buckets(ss)
        return [pipeline.GroupMod(switch, pipeline.group_id(ss.sid), "modify", buckets)
                for switch in sorted(self.connected)]
