"""Load-balancing algorithms shared by the L4 SDN controller and the L7 proxy (pure: no I/O)."""

from __future__ import annotations

import difflib
import random
from bisect import bisect_right
from itertools import accumulate

from lb_apps.custom_balancer import is_file_algorithm, make_file_balancer
from lb_apps.maglev import (
    MAGLEV_TABLE_SIZE,
    BalancingError,
    check_table_size,
    maglev_table,
    stable_hash,
)

__all__ = [
    "ALGORITHMS",
    "HASHING_ALGORITHMS",
    "MAGLEV_TABLE_SIZE",
    "Balancer",
    "BalancingError",
    "is_file_algorithm",
    "make_balancer",
    "maglev_table",
    "stable_hash",
]

ALGORITHMS = (
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "weighted_least_connections",
    "random",
    "power_of_two",
    "ip_hash",
    "five_tuple_hash",
    "consistent_hash",
)
# Algorithms that map a key to a backend; with key=None they fall back to round robin.
HASHING_ALGORITHMS = ("ip_hash", "five_tuple_hash", "consistent_hash")

# Maglev tables kept per balancer, keyed by the live pool, so a backend whose health flaps
# does not cost a rebuild (~65 ms for 100 backends) on every flip.
MAGLEV_CACHE_ENTRIES = 4
# Backend names listed in an "unknown backend" error before it is cut short.
ERROR_NAMES_SHOWN = 8


def _unknown_backend(name, known) -> BalancingError:
    shown = ", ".join(repr(n) for n in list(known)[:ERROR_NAMES_SHOWN])
    if len(known) > ERROR_NAMES_SHOWN:
        shown += f", ... ({len(known)} in all)"
    expected = f"one of {shown}" if known else "a backend added first (the pool is empty)"
    return BalancingError(
        f"backend: unknown {name!r}; expected {expected}", field="backend", value=name, expected=expected
    )


def _check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise BalancingError(
            f"backend: invalid name {name!r}; expected a non-empty str",
            field="backend",
            value=name,
            expected="a non-empty str",
        )
    return name


def _check_weight(name: str, weight) -> int:
    # bool is an int subclass; True as a weight is almost certainly a mistake.
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise BalancingError(
            f"weight: invalid {weight!r} for backend {name!r}; expected an int >= 0 (0 = drain)",
            field="weight",
            value=weight,
            expected="an int >= 0",
        )
    return weight


def _backend_items(backends) -> list[tuple[str, int]]:
    """Normalise the `backends` argument of make_balancer to (name, weight) pairs."""
    if isinstance(backends, dict):
        return list(backends.items())
    if isinstance(backends, (list, tuple)):
        items = []
        for item in backends:
            if isinstance(item, str):
                items.append((item, 1))
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                items.append((item[0], item[1]))
            else:
                raise BalancingError(
                    f"backends: invalid entry {item!r}; expected a (name, weight) pair or a name",
                    field="backends",
                    value=item,
                    expected="a (name, weight) pair or a name",
                )
        return items
    raise BalancingError(
        f"backends: invalid {type(backends).__name__} {backends!r}; "
        "expected a dict name -> weight or a list of (name, weight)",
        field="backends",
        value=backends,
        expected="a dict name -> weight or a list of (name, weight)",
    )


class _Backend:
    """Mutable per-backend state; `order` is the insertion rank used by round robin."""

    __slots__ = ("name", "weight", "up", "in_flight", "chosen", "order", "current")

    def __init__(self, name: str, weight: int, order: int):
        self.name = name
        self.weight = weight
        self.up = True
        self.in_flight = 0
        self.chosen = 0
        self.order = order
        self.current = 0  # smooth weighted round robin's current_weight


class Balancer:
    """A pool of named backends and one algorithm that picks among them.

    Create one with `make_balancer`. Only "live" backends (up and weight > 0) receive new flows;
    in-flight counts are kept for every backend, live or not. Not thread-safe: callers that
    share one balancer between threads serialise the calls.

    Attributes:
        algorithm (str): one of ALGORITHMS.
    """

    algorithm = ""
    options: frozenset = frozenset()  # names of the **options this algorithm accepts

    def __init__(self, backends=(), seed: int = 0, **options):
        unknown = sorted(set(options) - self.options)
        if unknown:
            expected = ", ".join(sorted(self.options)) or "none"
            raise BalancingError(
                f"options: unknown {unknown[0]!r} for algorithm {self.algorithm!r}; expected {expected}",
                field="options",
                value=unknown[0],
                expected=expected,
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BalancingError(
                f"seed: invalid {seed!r}; expected an int", field="seed", value=seed, expected="an int"
            )
        self._rng = random.Random(seed)
        self._pool: dict[str, _Backend] = {}
        self._live: list[_Backend] = []
        self._next = 0  # round-robin cursor: index in _live of the next backend to try
        self._last_order = -1  # insertion rank of the backend round robin chose last
        self._order = 0
        self._configure(**options)
        for name, weight in _backend_items(backends):
            self._insert(name, weight)
        self._pool_changed()

    # -- hot path -------------------------------------------------------------------------

    def choose(self, key=None) -> str | None:
        """Pick the backend for a new connection or request.

        Args:
            key: what hashing algorithms hash (client IP, 5-tuple, URI, ...); others ignore it.
        Returns:
            str | None: the chosen backend's name, or None if no backend is up with weight > 0.
        Raises:
            BalancingError: the key has a type the algorithm cannot hash.
        """
        raise NotImplementedError

    def on_open(self, name: str) -> None:
        """Count one more connection/request in flight to `name`.

        Raises:
            BalancingError: `name` is not in the pool.
        """
        backend = self._pool.get(name)
        if backend is None:
            raise _unknown_backend(name, self._pool)
        backend.in_flight += 1

    def on_close(self, name: str) -> None:
        """Count one connection/request to `name` as ended (never below 0).

        Raises:
            BalancingError: `name` is not in the pool (drain it, then remove it when idle).
        """
        backend = self._pool.get(name)
        if backend is None:
            raise _unknown_backend(name, self._pool)
        if backend.in_flight > 0:
            backend.in_flight -= 1

    # -- pool changes ---------------------------------------------------------------------

    def set_weight(self, name: str, weight: int) -> None:
        """Change a backend's weight; 0 drains it (no new flows, in-flight still counted).

        Raises:
            BalancingError: unknown `name`, or `weight` not an int >= 0.
        """
        backend = self._get(name)
        backend.weight = _check_weight(name, weight)
        self._pool_changed()

    def add_backend(self, name: str, weight: int = 1) -> None:
        """Add a backend at the end of the insertion order.

        Raises:
            BalancingError: bad or duplicate `name`, or `weight` not an int >= 0.
        """
        self._insert(name, weight)
        self._pool_changed()

    def remove_backend(self, name: str) -> None:
        """Remove a backend and forget its counters.

        Raises:
            BalancingError: `name` is not in the pool.
        """
        self._get(name)
        del self._pool[name]
        self._pool_changed()

    def set_up(self, name: str, up: bool) -> None:
        """Mark a backend healthy (True) or down (False); down backends get no new flows.

        Raises:
            BalancingError: unknown `name`, or `up` not a bool.
        """
        backend = self._get(name)
        if not isinstance(up, bool):
            raise BalancingError(
                f"up: invalid {up!r} for backend {name!r}; expected True or False",
                field="up",
                value=up,
                expected="True or False",
            )
        if backend.up != up:
            backend.up = up
            self._pool_changed()

    # -- inspection -----------------------------------------------------------------------

    def in_flight(self) -> dict[str, int]:
        """Return name -> connections/requests in flight, for every backend in the pool."""
        return {name: b.in_flight for name, b in self._pool.items()}

    def backends(self) -> dict[str, dict]:
        """Return name -> {"weight", "up", "in_flight", "chosen"}, in insertion order."""
        return {
            name: {"weight": b.weight, "up": b.up, "in_flight": b.in_flight, "chosen": b.chosen}
            for name, b in self._pool.items()
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.algorithm} live={[b.name for b in self._live]}>"

    # -- internals ------------------------------------------------------------------------

    def _configure(self) -> None:
        """Take the algorithm's **options (validated names only); subclasses override."""

    def _rebuild(self) -> None:
        """Recompute algorithm state after `_live` changed; subclasses override."""

    def _get(self, name: str) -> _Backend:
        backend = self._pool.get(name)
        if backend is None:
            raise _unknown_backend(name, self._pool)
        return backend

    def _insert(self, name, weight) -> None:
        _check_name(name)
        if name in self._pool:
            raise BalancingError(
                f"backend: duplicate {name!r}; expected unique names",
                field="backend",
                value=name,
                expected="unique names",
            )
        self._pool[name] = _Backend(name, _check_weight(name, weight), self._order)
        self._order += 1

    def _pool_changed(self) -> None:
        live = [b for b in self._pool.values() if b.up and b.weight > 0]
        # Resume round robin just after the backend chosen last, in insertion order, so a
        # pool change neither repeats nor skips a backend.
        last = self._last_order
        self._next = next((i for i, b in enumerate(live) if b.order > last), 0)
        self._live = live
        self._rebuild()

    def _round_robin(self) -> str | None:
        live = self._live
        if not live:
            return None
        i = self._next
        if i >= len(live):
            i = 0
        self._next = i + 1
        backend = live[i]
        self._last_order = backend.order
        backend.chosen += 1
        return backend.name


class RoundRobin(Balancer):
    """Live backends in insertion order, one after the other; weights other than 0 ignored."""

    algorithm = "round_robin"

    def choose(self, key=None) -> str | None:  # noqa: D102 (see Balancer.choose)
        return self._round_robin()


class WeightedRoundRobin(Balancer):
    """nginx's smooth weighted round robin (ngx_http_upstream_get_peer): 5,1,1 -> a a b a c a a."""

    algorithm = "weighted_round_robin"

    def _rebuild(self) -> None:
        # The smooth sequence restarts from zero after every pool change.
        for backend in self._pool.values():
            backend.current = 0
        self._total = sum(b.weight for b in self._live)

    def choose(self, key=None) -> str | None:  # noqa: D102
        best = None
        best_current = 0
        for backend in self._live:
            current = backend.current + backend.weight
            backend.current = current
            # Strictly greater: the first in insertion order wins a tie, as in nginx.
            if best is None or current > best_current:
                best, best_current = backend, current
        if best is None:
            return None
        best.current = best_current - self._total
        best.chosen += 1
        return best.name


class LeastConnections(Balancer):
    """Fewest in-flight wins; ties go round robin (the scan starts after the last chosen)."""

    algorithm = "least_connections"
    weighted = False

    def choose(self, key=None) -> str | None:  # noqa: D102
        live = self._live
        n = len(live)
        if not n:
            return None
        i = self._next if self._next < n else 0
        best_i = i
        best = live[i]
        weighted = self.weighted
        for _ in range(n - 1):
            i += 1
            if i == n:
                i = 0
            backend = live[i]
            if weighted:
                # in_flight / weight, compared by cross-multiplication as nginx's least_conn does.
                better = backend.in_flight * best.weight < best.in_flight * backend.weight
            else:
                better = backend.in_flight < best.in_flight
            if better:
                best_i, best = i, backend
        self._next = best_i + 1
        self._last_order = best.order
        best.chosen += 1
        return best.name


class WeightedLeastConnections(LeastConnections):
    """Lowest in_flight / weight wins; ties go round robin among the tied."""

    algorithm = "weighted_least_connections"
    weighted = True


class WeightedRandom(Balancer):
    """Random pick with probability weight / total weight of the live backends."""

    algorithm = "random"

    def _rebuild(self) -> None:
        self._cumulative = list(accumulate(b.weight for b in self._live))
        self._total = self._cumulative[-1] if self._cumulative else 0

    def choose(self, key=None) -> str | None:  # noqa: D102
        if not self._total:
            return None
        backend = self._live[bisect_right(self._cumulative, self._rng.randrange(self._total))]
        backend.chosen += 1
        return backend.name


class PowerOfTwo(Balancer):
    """Two distinct uniform random picks; lower in_flight / weight wins, then higher weight."""

    algorithm = "power_of_two"

    def choose(self, key=None) -> str | None:  # noqa: D102
        live = self._live
        n = len(live)
        if not n:
            return None
        if n == 1:
            best = live[0]
        else:
            randrange = self._rng.randrange
            i = randrange(n)
            j = randrange(n - 1)
            if j >= i:
                j += 1
            best, other = live[i], live[j]
            mine = best.in_flight * other.weight
            theirs = other.in_flight * best.weight
            if theirs < mine or (theirs == mine and other.weight > best.weight):
                best = other
        best.chosen += 1
        return best.name


class IpHash(Balancer):
    """stable_hash(client IP) modulo the number of live backends; key=None -> round robin."""

    algorithm = "ip_hash"

    def _check_key(self, key) -> None:
        """Reject keys this algorithm must not hash; stable_hash rejects unhashable types."""

    def choose(self, key=None) -> str | None:  # noqa: D102
        live = self._live
        if not live:
            return None
        if key is None:
            return self._round_robin()
        self._check_key(key)
        backend = live[stable_hash(key) % len(live)]
        backend.chosen += 1
        return backend.name


class FiveTupleHash(IpHash):
    """stable_hash((proto, src_ip, src_port, dst_ip, dst_port)) modulo the live backends."""

    algorithm = "five_tuple_hash"

    def _check_key(self, key) -> None:
        if not isinstance(key, (tuple, list)) or len(key) != 5:
            raise BalancingError(
                f"key: invalid {key!r} for five_tuple_hash; "
                "expected a 5-tuple (proto, src_ip, src_port, dst_ip, dst_port)",
                field="key",
                value=key,
                expected="a 5-tuple (proto, src_ip, src_port, dst_ip, dst_port)",
            )


class ConsistentHash(Balancer):
    """Maglev: stable_hash(key) indexes a prime-sized lookup table of the live backends."""

    algorithm = "consistent_hash"
    options = frozenset({"table_size"})

    def _configure(self, table_size: int = MAGLEV_TABLE_SIZE) -> None:
        self._size = check_table_size(table_size)
        self._tables: dict[tuple, list[int]] = {}
        self._table: list[int] = []

    def _rebuild(self) -> None:
        live = self._live
        if not live:
            self._table = []
            return
        signature = tuple((b.name, b.weight) for b in live)
        table = self._tables.pop(signature, None)
        if table is None:
            table = maglev_table([b.name for b in live], {b.name: b.weight for b in live}, self._size)
            while len(self._tables) >= MAGLEV_CACHE_ENTRIES:
                del self._tables[next(iter(self._tables))]  # oldest first
        self._tables[signature] = table  # re-inserted: most recently used last
        self._table = table

    def choose(self, key=None) -> str | None:  # noqa: D102
        live = self._live
        if not live:
            return None
        if key is None:
            return self._round_robin()
        backend = live[self._table[stable_hash(key) % self._size]]
        backend.chosen += 1
        return backend.name


_CLASSES = {
    cls.algorithm: cls
    for cls in (
        RoundRobin,
        WeightedRoundRobin,
        LeastConnections,
        WeightedLeastConnections,
        WeightedRandom,
        PowerOfTwo,
        IpHash,
        FiveTupleHash,
        ConsistentHash,
    )
}
assert tuple(_CLASSES) == ALGORITHMS


def make_balancer(algorithm: str, backends, seed: int = 0, **options) -> Balancer:
    """Build a balancer for one algorithm over an initial pool.

    Args:
        algorithm (str): one of ALGORITHMS, or ``file:PATH:CLASS``: a balancer class from a
            file (:mod:`lb_apps.custom_balancer`; it takes no options).
        backends (dict[str, int] | list[tuple[str, int]]): name -> weight, in insertion order
            (a bare name in the list means weight 1); may be empty.
        seed (int): seed of the balancer's own random.Random (random, power_of_two).
        **options: per-algorithm options; consistent_hash takes table_size (a prime,
            default 65537).
    Returns:
        Balancer: the balancer.
    Raises:
        BalancingError: unknown algorithm or option, bad backend name or weight, duplicate name;
            for a file, a BalancerFileError naming the file and line.
    """
    if is_file_algorithm(algorithm):
        if options:
            raise BalancingError(f"options: unknown {sorted(options)[0]!r} for a balancer from "
                                 "a file; expected none", field="options",
                                 value=sorted(options)[0], expected="none")
        return make_file_balancer(algorithm, _backend_items(backends), seed)
    cls = _CLASSES.get(algorithm) if isinstance(algorithm, str) else None
    if cls is None:
        expected = "one of " + ", ".join(ALGORITHMS)
        message = f"algorithm: unknown {algorithm!r}; expected {expected}"
        if isinstance(algorithm, str):
            guess = difflib.get_close_matches(algorithm.lower().replace("-", "_"), ALGORITHMS, n=1)
            if guess:
                message += f"; did you mean {guess[0]}?"
        raise BalancingError(message, field="algorithm", value=algorithm, expected=expected)
    return cls(backends, seed, **options)
