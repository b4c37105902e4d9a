"""Backend health for the L7 proxy as explicit state tables (pure; the clock is passed in).

Active checks (``GET /health`` every interval) move a backend through ``ACTIVE_TRANSITIONS``;
``rise`` consecutive passes bring a DOWN backend UP, ``fall`` consecutive failures take an UP one
DOWN. Passive checks count consecutive request errors; ``max_fails`` of them eject the backend
for ``fail_timeout`` seconds (``PASSIVE_TRANSITIONS``). A backend receives traffic when it is
active-UP (or has no active check) and not ejected. Like h11's ``_state.py``, every transition
lives in the tables below.
"""
# Active states. FAILING = up but with failed checks; RISING = down but with passed checks.
UP, FAILING, DOWN, RISING = "up", "failing", "down", "rising"
# Passive states.
OK, EJECTED = "ok", "ejected"
# Events.
CHECK_PASS, CHECK_FAIL = "check_pass", "check_fail"
REQUEST_OK, REQUEST_ERROR, TIMER = "request_ok", "request_error", "timer"
# Counter actions.
COUNT, RESET = "count", "reset"

# (state, event) -> (next state, counter action)
ACTIVE_TRANSITIONS = {
    UP: {CHECK_PASS: (UP, RESET), CHECK_FAIL: (FAILING, COUNT)},
    FAILING: {CHECK_PASS: (UP, RESET), CHECK_FAIL: (FAILING, COUNT)},
    DOWN: {CHECK_PASS: (RISING, COUNT), CHECK_FAIL: (DOWN, RESET)},
    RISING: {CHECK_PASS: (RISING, COUNT), CHECK_FAIL: (DOWN, RESET)},
}
# state -> (threshold attribute of the config, state entered when the counter reaches it)
ACTIVE_THRESHOLDS = {FAILING: ("fall", DOWN), RISING: ("rise", UP)}
ACTIVE_SERVING = frozenset((UP, FAILING))

PASSIVE_TRANSITIONS = {
    OK: {REQUEST_OK: (OK, RESET), REQUEST_ERROR: (OK, COUNT), TIMER: (OK, None)},
    EJECTED: {REQUEST_OK: (EJECTED, None), REQUEST_ERROR: (EJECTED, None), TIMER: (EJECTED, None)},
}
PASSIVE_THRESHOLDS = {OK: ("max_fails", EJECTED)}


class BackendHealth:
    """Health of one backend.

    Args:
        active (lb_apps.l7config.Health|None): active check settings (None = no checks).
        passive (lb_apps.l7config.PassiveHealth|None): passive settings (None = off).
    """

    __slots__ = ("active", "passive", "active_state", "active_count", "passive_state",
                 "passive_count", "ejected_until", "last_change")

    def __init__(self, active, passive):
        self.active = active
        self.passive = passive
        self.active_state = UP
        self.active_count = 0
        self.passive_state = OK
        self.passive_count = 0
        self.ejected_until = 0.0
        self.last_change = 0.0

    def serving(self):
        """Return True if the backend should receive new requests."""
        return self.active_state in ACTIVE_SERVING and self.passive_state == OK

    def on_check(self, passed, now):
        """Apply one active check result.

        Args:
            passed (bool): the check got a 2xx/3xx in time.
            now (float): the clock.
        Returns:
            bool: whether ``serving()`` changed.
        """
        before = self.serving()
        state, action = ACTIVE_TRANSITIONS[self.active_state][CHECK_PASS if passed else CHECK_FAIL]
        self.active_count = self.active_count + 1 if action == COUNT else 0
        threshold = ACTIVE_THRESHOLDS.get(state)
        if threshold is not None and self.active_count >= getattr(self.active, threshold[0]):
            state, self.active_count = threshold[1], 0
        self.active_state = state
        return self._changed(before, now)

    def on_request(self, ok, now):
        """Apply a passive observation (a request that succeeded or failed on this backend).

        Args:
            ok (bool): False for connect errors, resets, timeouts, malformed responses.
            now (float): the clock.
        Returns:
            bool: whether ``serving()`` changed.
        """
        if self.passive is None:
            return False
        before = self.serving()
        state, action = PASSIVE_TRANSITIONS[self.passive_state][REQUEST_OK if ok else REQUEST_ERROR]
        self._passive_step(state, action, now)
        return self._changed(before, now)

    def on_timer(self, now):
        """Let time pass: an ejection ends after ``fail_timeout``.

        Args:
            now (float): the clock.
        Returns:
            bool: whether ``serving()`` changed.
        """
        if self.passive_state == EJECTED and now >= self.ejected_until:
            before = self.serving()
            self.passive_state, self.passive_count = OK, 0
            return self._changed(before, now)
        return False

    def _passive_step(self, state, action, now):
        if action == COUNT:
            self.passive_count += 1
        elif action == RESET:
            self.passive_count = 0
        threshold = PASSIVE_THRESHOLDS.get(state)
        if threshold is not None and self.passive_count >= getattr(self.passive, threshold[0]):
            state, self.passive_count = threshold[1], 0
            self.ejected_until = now + self.passive.fail_timeout
        self.passive_state = state

    def _changed(self, before, now):
        if before != self.serving():
            self.last_change = now
            return True
        return False

    def describe(self):
        """Return a JSON-ready summary for the stats endpoint."""
        return {"serving": self.serving(), "active": self.active_state,
                "passive": self.passive_state, "consecutive": self.active_count,
                "consecutive_errors": self.passive_count}
