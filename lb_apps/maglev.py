"""Stable hashing and Maglev lookup tables for lb_apps.balancing (pure; home of BalancingError)."""

from __future__ import annotations

import hashlib
import ipaddress

# Maglev paper (Eisenbud et al., NSDI 2016, section 5.3) uses 65537 for its tables: prime, and
# large enough (M >> 100 N) that each backend's share stays within ~1% of fair for N <= 100.
MAGLEV_TABLE_SIZE = 65537
# Personalisation of the two per-backend hashes, so they are independent of stable_hash(key).
_MAGLEV_PERSON = b"lblab-maglev"


class BalancingError(ValueError):
    """Bad input to a balancer: the message names the field, the value and what was expected.

    Attributes:
        field (str | None): the offending field ("algorithm", "weight", "backend", ...).
        value: the offending value.
        expected (str | None): what would have been accepted.
    """

    def __init__(self, message: str, *, field: str | None = None, value=None, expected: str | None = None):
        super().__init__(message)
        self.field = field
        self.value = value
        self.expected = expected


def _encode(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    if isinstance(data, (tuple, list)):
        # Length-prefixed items behind a 0xff tag (never in UTF-8), so ("ab", "c") != ("a", "bc")
        # and a tuple does not collide with the str of its parts. str/int first: the 5-tuple path.
        parts = [b"\xff%d;" % len(data)]
        for item in data:
            kind = type(item)
            if kind is str:
                encoded = item.encode("utf-8", "surrogatepass")
            elif kind is int:
                encoded = b"%d" % item
            else:
                encoded = _encode(item)
            parts.append(b"%d:" % len(encoded))
            parts.append(encoded)
        return b"".join(parts)
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    # Ports and protocol numbers are ints; IP objects hash like their text so the L4 controller
    # (ipaddress objects or str) and the L7 proxy (str) agree on a key.
    if isinstance(data, (int, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(data).encode("ascii")
    raise BalancingError(
        f"key: unsupported type {type(data).__name__} ({data!r}); "
        "expected str, bytes, int, an IP address or a tuple of those",
        field="key",
        value=data,
        expected="str, bytes, int, an IP address or a tuple of those",
    )


def stable_hash(data) -> int:
    """Hash a key the same way in every process and run (unlike Python's salted hash()).

    Args:
        data (bytes | str | int | tuple): the key; tuples (e.g. a 5-tuple) may mix str, int
            and bytes. An int hashes like its decimal str, so port 80 == "80".
    Returns:
        int: unsigned 64-bit BLAKE2b digest of the encoded key.
    Raises:
        BalancingError: a type that has no stable encoding (float, None inside a tuple, ...).
    """
    return int.from_bytes(hashlib.blake2b(_encode(data), digest_size=8).digest(), "big")


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def check_table_size(size) -> int:
    """Return `size` if it is a usable Maglev table size (a prime >= 2).

    Raises:
        BalancingError: not an int, or not prime.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not _is_prime(size):
        raise BalancingError(
            f"table_size: invalid {size!r}; expected a prime (default {MAGLEV_TABLE_SIZE})",
            field="table_size",
            value=size,
            expected="a prime",
        )
    return size


def _offset_skip(name: str, size: int) -> tuple[int, int]:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16, person=_MAGLEV_PERSON).digest()
    h1 = int.from_bytes(digest[:8], "big")
    h2 = int.from_bytes(digest[8:], "big")
    return h1 % size, h2 % (size - 1) + 1


def maglev_table(names: list[str], weights: dict | None = None, size: int = MAGLEV_TABLE_SIZE) -> list[int]:
    """Build a Maglev lookup table (Eisenbud et al., NSDI 2016, Pseudocode 1).

    Backend i walks its permutation (offset_i + j * skip_i) mod size, with offset and skip from
    two independent hashes of its name, and in turn claims the next free slot. With weights,
    a backend of weight w takes a turn in round r only if r * w >= (turns taken) * max weight,
    as in Envoy's weighted Maglev, so its share is w / sum(weights). Equal weights give the
    paper's table exactly. Only the names and weights matter, not their order in `names`.

    Args:
        names (list[str]): backend names (unique).
        weights (dict | None): name -> int >= 0; missing names weigh 1, weight 0 gets no slots.
        size (int): table size, a prime >= the number of weighted backends (ideally >= 100x).
    Returns:
        list[int]: `size` entries, each an index into `names`.
    Raises:
        BalancingError: bad size, duplicate or non-str names, bad weights, nothing to fill with.
    """
    check_table_size(size)
    names = list(names)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise BalancingError(
            f"names: invalid {names!r}; expected unique non-empty str",
            field="names",
            value=names,
            expected="unique non-empty str",
        )
    weights = dict(weights or {})
    stray = sorted(set(weights) - set(names))
    if stray:
        raise BalancingError(
            f"weights: unknown backend {stray[0]!r}; expected one of names",
            field="weights",
            value=stray[0],
            expected="one of names",
        )
    members, member_weights = [], []
    for index, name in enumerate(names):
        w = weights.get(name, 1)
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise BalancingError(
                f"weights: invalid {w!r} for backend {name!r}; expected an int >= 0",
                field="weights",
                value=w,
                expected="an int >= 0",
            )
        if w > 0:
            members.append(index)
            member_weights.append(w)
    if not members:
        raise BalancingError(
            f"names: no backend with weight > 0 in {names!r}; expected at least one",
            field="names",
            value=names,
            expected="at least one backend with weight > 0",
        )
    if len(members) > size:
        raise BalancingError(
            f"table_size: {size} is smaller than the {len(members)} backends; "
            "expected a prime >= the number of backends (ideally >= 100x)",
            field="table_size",
            value=size,
            expected="a prime >= the number of backends",
        )
    count = len(members)
    # Fill in a canonical order (sorted names) so the table does not depend on list order.
    turn_order = sorted(range(count), key=lambda k: names[members[k]])
    positions, skips = [], []
    for k in range(count):
        offset, skip = _offset_skip(names[members[k]], size)
        positions.append(offset)
        skips.append(skip)
    max_weight = max(member_weights)
    targets = [0] * count
    entry = [-1] * size
    filled = 0
    round_no = 0
    while True:
        for k in turn_order:
            if round_no * member_weights[k] < targets[k]:
                continue
            targets[k] += max_weight
            c = positions[k]
            skip = skips[k]
            # Walk the permutation without `%`: c stays in [0, size) as skip < size.
            while entry[c] >= 0:
                c += skip
                if c >= size:
                    c -= size
            entry[c] = members[k]
            c += skip
            if c >= size:
                c -= size
            positions[k] = c
            filled += 1
            if filled == size:
                return entry
        round_no += 1
