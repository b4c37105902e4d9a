"""My balancer: a template for lab 8 ("your own balancer").

lblab loads this class into the L4 controller (one call of choose() per new connection) and
into the builtin L7 proxy (one call per request), from a spec like:

    balancers:
      - {name: mine_l4, layer: l4, mode: l4, algorithm: {file: my_balancer.py, class: MyBalancer}}
      - {name: mine_l7, layer: l7, algorithm: {file: my_balancer.py, class: MyBalancer}}

Check it first:  python -m pytest test_my_balancer.py   (in this folder)
and then:        lblab validate my_spec.yaml            (lblab runs it on a test pool too)

The rules (docs/algorithms.md, "A balancer from a file"):
- choose() returns the name of a *live* backend (up, weight > 0), or None only when there is
  none. lblab checks every answer: a drained, down or unknown backend is an error.
- Keep whatever state you like on self, but only from the calls you get: no files, no network,
  no clock, no global random (use random.Random(seed), as below, so a run can be repeated).
- Calls come one at a time (the controller and each proxy worker have their own instance and
  never call it from two threads at once); do not start threads, do not block, do not sleep:
  choose() runs once per connection or request.
"""
import random


class MyBalancer:
    """A naive weighted round robin: each backend gets `weight` turns in a row, in order.

    With weights b1=1, b2=2, b3=3 it answers b1 b2 b2 b3 b3 b3 b1 b2 b2 ... The shares are
    right (1/6, 2/6, 3/6) but the turns come in bursts, so a slow backend gets a run of
    requests at once.
    """

    # Set this to True once choose() hashes its key (a client address, a 5-tuple or a URI):
    # the harness then also checks that keys stay on their backend when another one leaves.
    keyed = False

    def __init__(self, backends, seed=0):
        """backends: dict name -> weight (int >= 0; 0 = drained), in the pool's order."""
        self.weights = dict(backends)           # name -> weight
        self.up = {name: True for name in backends}   # name -> healthy?
        self.in_flight = {name: 0 for name in backends}  # open connections/requests
        self.rng = random.Random(seed)          # for a randomised balancer (unused here)
        self.turn = 0                           # position in the schedule below
        self.schedule = self._schedule()

    def _schedule(self):
        """Every live backend repeated `weight` times, in pool order (rebuilt on any change)."""
        return [name for name, weight in self.weights.items()
                if self.up[name] for _ in range(weight)]
        # TODO: a smooth schedule (nginx's smooth weighted round robin) spreads the turns:
        # b3 b2 b3 b1 b3 b2 instead of b1 b2 b2 b3 b3 b3.

    def choose(self, key=None):
        """Return the backend for a new connection (L4) or request (L7), or None if none is live.

        key: at L4 the connection's 5-tuple (6, client_ip, client_port, vip, port) (mode l3:
        the client's IP); at L7 what the group's hash_key says (default: the request
        target, as bytes: b"/index.html").
        """
        if not self.schedule:
            return None
        name = self.schedule[self.turn % len(self.schedule)]
        self.turn += 1
        return name
        # TODO: hash the key (lb_apps.balancing.stable_hash, or hashlib) for a keyed balancer,
        # and keep keys on their backend when another backend leaves (set keyed = True).
        # TODO: or use self.in_flight for a least-connections balancer.

    def on_open(self, name):
        """A connection/request to `name` started."""
        self.in_flight[name] += 1

    def on_close(self, name):
        """A connection/request to `name` ended (L4: after its flow idled out)."""
        self.in_flight[name] = max(0, self.in_flight[name] - 1)

    def set_weight(self, name, weight):
        """A new weight for `name`; 0 drains it (no new connections, open ones go on)."""
        self.weights[name] = weight
        self.schedule = self._schedule()

    def add_backend(self, name, weight=1):
        """A backend joins the pool."""
        self.weights[name] = weight
        self.up[name] = True
        self.in_flight[name] = 0
        self.schedule = self._schedule()

    def remove_backend(self, name):
        """A backend leaves the pool."""
        del self.weights[name], self.up[name], self.in_flight[name]
        self.schedule = self._schedule()

    def set_up(self, name, up):
        """Health checks say `name` is up (True) or down (False)."""
        self.up[name] = up
        self.schedule = self._schedule()
