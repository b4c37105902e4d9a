"""Response cache for the L7 proxy: bounded LRU with Cache-Control and Vary (pure; clock passed in).

What is stored (a shared cache, RFC 9111, simplified): responses to GET with status 200, 203,
204, 300, 301, 404 or 410 whose Cache-Control gives an explicit ``s-maxage`` or ``max-age`` > 0,
and no ``no-store``, ``private``, ``no-cache``, ``Set-Cookie`` or ``Vary: *``. ``Expires`` and
heuristic freshness are not used. Requests with ``Cache-Control: no-store`` or an
``Authorization`` header bypass the cache; ``no-cache`` / ``max-age=0`` / ``Pragma: no-cache``
skip the lookup but may refresh the entry. HEAD is served from a stored GET.
"""
from collections import OrderedDict

CACHEABLE_STATUS = frozenset((200, 203, 204, 300, 301, 404, 410))


def parse_cache_control(value):
    """Parse a Cache-Control value into directive -> argument (None for bare directives).

    Args:
        value (bytes|None): the header value (several headers joined with ", ").
    Returns:
        dict[str, str|None]: lower-case directives.
    """
    out = {}
    if not value:
        return out
    for part in value.decode("latin-1").split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"') if sep else None
    return out


def _seconds(arg):
    try:
        return max(0, int(arg))
    except (TypeError, ValueError):
        return None


def request_lookup_policy(method, cache_control, pragma, authorization):
    """Decide what the cache may do for a request.

    Args:
        method (str): request method.
        cache_control (bytes|None), pragma (bytes|None), authorization (bytes|None): headers.
    Returns:
        tuple[bool, bool]: (may be served from cache, may store the response).
    """
    if method not in ("GET", "HEAD") or authorization is not None:
        return False, False
    cc = parse_cache_control(cache_control)
    if "no-store" in cc:
        return False, False
    no_cache = "no-cache" in cc or _seconds(cc.get("max-age", "1")) == 0 or (
        cache_control is None and pragma is not None and b"no-cache" in pragma.lower())
    return not no_cache, method == "GET"


def response_ttl(status, cache_control, vary, has_set_cookie, age=None):
    """Return how long a response may be served from the cache, or None if not storable.

    Args:
        status (int): response status.
        cache_control (bytes|None): response Cache-Control.
        vary (bytes|None): response Vary.
        has_set_cookie (bool): the response sets a cookie.
        age (bytes|None): response Age (time already spent in upstream caches).
    Returns:
        float|None: freshness lifetime left in seconds, or None.
    """
    if status not in CACHEABLE_STATUS or has_set_cookie:
        return None
    cc = parse_cache_control(cache_control)
    if "no-store" in cc or "private" in cc or "no-cache" in cc:
        return None
    if vary is not None and "*" in vary_names(vary):
        return None
    ttl = _seconds(cc.get("s-maxage")) if "s-maxage" in cc else _seconds(cc.get("max-age"))
    if not ttl:
        return None
    if age is not None:
        ttl -= _seconds(age.decode("latin-1")) or 0
    return float(ttl) if ttl > 0 else None


def vary_names(vary):
    """Return the lower-case header names listed in a Vary value.

    Args:
        vary (bytes|None): the Vary value.
    Returns:
        tuple[str]: names, sorted.
    """
    if not vary:
        return ()
    return tuple(sorted({v.strip().lower() for v in vary.decode("latin-1").split(",") if v.strip()}))


def header_values(headers, names):
    """Return the request's values for the named headers (a Vary secondary key).

    Args:
        headers (list[tuple[bytes, bytes]]): request headers.
        names (tuple[str]): lower-case header names.
    Returns:
        tuple[str|None]: one value per name (joined with ", " if repeated).
    """
    if not names:
        return ()
    found = {}
    wanted = set(names)
    for name, value in headers:
        lname = name.decode("latin-1").lower()
        if lname in wanted:
            text = value.decode("latin-1").strip()
            found[lname] = text if lname not in found else found[lname] + ", " + text
    return tuple(found.get(n) for n in names)


class CacheEntry:
    """One stored response: ``head`` is the status line and end-to-end header lines (no framing,
    no Connection), ``body`` the whole body."""

    __slots__ = ("status", "head", "body", "stored_at", "ttl", "size")

    def __init__(self, status, head, body, stored_at, ttl):
        self.status = status
        self.head = head
        self.body = body
        self.stored_at = stored_at
        self.ttl = ttl
        self.size = len(head) + len(body)

    def age(self, now):
        """Return the entry's age in whole seconds."""
        return int(now - self.stored_at)

    def fresh(self, now):
        """Return True while the entry is within its freshness lifetime."""
        return now - self.stored_at < self.ttl


class ResponseCache:
    """Bounded LRU of responses keyed by (host, target) and the Vary'd request headers.

    Args:
        max_entries (int): entry limit.
        max_bytes (int): total head+body bytes limit.
        max_object_bytes (int): larger responses are not stored.
    """

    def __init__(self, max_entries, max_bytes, max_object_bytes):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_object_bytes = max_object_bytes
        self._entries = OrderedDict()  # (primary, vary values) -> CacheEntry
        self._vary = {}  # primary -> vary names of the last stored response
        self._variants = {}  # primary -> number of stored variants
        self.bytes = 0
        self.hits = self.misses = self.stores = self.evictions = 0

    def __len__(self):
        return len(self._entries)

    def get(self, primary, headers, now):
        """Return a fresh entry for a request, or None (counts a hit or a miss).

        Args:
            primary (tuple): (host, target) of the request.
            headers (list[tuple[bytes, bytes]]): request headers, for Vary.
            now (float): the clock.
        Returns:
            CacheEntry|None: the entry.
        """
        names = self._vary.get(primary)
        if names is None:
            self.misses += 1
            return None
        key = (primary, header_values(headers, names))
        entry = self._entries.get(key)
        if entry is None or not entry.fresh(now):
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, primary, headers, vary, entry):
        """Store an entry, evicting least recently used ones to stay within the bounds.

        Args:
            primary (tuple): (host, target).
            headers (list[tuple[bytes, bytes]]): request headers, for Vary.
            vary (bytes|None): response Vary.
            entry (CacheEntry): the response.
        Returns:
            bool: whether it was stored (False if larger than ``max_object_bytes``).
        """
        if entry.size > self.max_object_bytes or entry.size > self.max_bytes:
            return False
        names = vary_names(vary)
        if self._vary.get(primary, names) != names:
            # the variant dimension changed: forget the old variants
            for key in [k for k in self._entries if k[0] == primary]:
                self._drop(key)
        key = (primary, header_values(headers, names))
        if key in self._entries:
            self._drop(key)
        self._vary[primary] = names
        self._variants[primary] = self._variants.get(primary, 0) + 1
        self._entries[key] = entry
        self.bytes += entry.size
        self.stores += 1
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            old_key = next(iter(self._entries))
            self._drop(old_key)
            self.evictions += 1
        return True

    def _drop(self, key):
        entry = self._entries.pop(key)
        self.bytes -= entry.size
        primary = key[0]
        left = self._variants[primary] - 1
        if left:
            self._variants[primary] = left
        else:
            del self._variants[primary]
            self._vary.pop(primary, None)

    def describe(self):
        """Return a JSON-ready summary for the stats endpoint."""
        return {"entries": len(self._entries), "bytes": self.bytes, "hits": self.hits,
                "misses": self.misses, "stores": self.stores, "evictions": self.evictions}
