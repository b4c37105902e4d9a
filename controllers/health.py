"""Pure health state of one backend: probe results in, up/down out (rise/fall counting).

The state machine is a table (as h11 keeps its states): ``TRANSITIONS[(state, ok)]`` gives the
counter to bump and the state reached when that counter gets to its threshold.

===========  ======  ===================  ==========================
state        probe   counter              at threshold
===========  ======  ===================  ==========================
up           ok      reset failures       stay up
up           failed  failures += 1        down when failures == fall
down         ok      successes += 1       up when successes == rise
down         failed  reset successes      stay down
===========  ======  ===================  ==========================
"""
from dataclasses import dataclass

UP, DOWN = "up", "down"
TRANSITIONS = {
    (UP, True): (None, UP),
    (UP, False): ("failures", DOWN),
    (DOWN, True): ("successes", UP),
    (DOWN, False): (None, DOWN),
}


@dataclass
class HealthState:
    """Health of one backend of one service. Starts up (the pool is assumed healthy)."""
    state: str = UP
    failures: int = 0
    successes: int = 0
    probes_sent: int = 0
    inconclusive: int = 0  # rounds in which every backend still up missed its probe (ignored)
    last_change: float | None = None
    pending: float | None = None  # send time of the probe not answered yet

    def record(self, ok, rise, fall, now):
        """Apply one probe result.

        Args:
            ok (bool): the probe succeeded.
            rise (int): successes needed to come back up.
            fall (int): failures needed to go down.
            now (float): the clock.
        Returns:
            str|None: the new state if it changed, else None.
        """
        self.pending = None
        counter, target = TRANSITIONS[(self.state, ok)]
        if counter is None:
            self.failures = self.successes = 0
            return None
        setattr(self, counter, getattr(self, counter) + 1)
        threshold = fall if counter == "failures" else rise
        if getattr(self, counter) >= threshold:
            self.state, self.failures, self.successes = target, 0, 0
            self.last_change = now
            return target
        return None
