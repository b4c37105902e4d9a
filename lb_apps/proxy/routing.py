"""Content-based routing rules and per-route authentication for the L7 proxy (pure).

Routes are tried in order and the first whose conditions all hold wins; no match means the
default group. Conditions: path prefix, path regex (searched), Host (exact or ``*.domain``),
method, header, cookie and query parameter (``value`` None = present).
"""
import base64
import hmac
import re
from urllib.parse import parse_qsl

from lb_apps.proxy.http_rules import parse_cookies


class _Compiled:
    __slots__ = ("route", "prefix", "regex", "host", "host_suffix", "methods", "header",
                 "cookie", "query")

    def __init__(self, route):
        m = route.match
        self.route = route
        self.prefix = m.path_prefix
        self.regex = re.compile(m.path_regex) if m.path_regex is not None else None
        self.host = self.host_suffix = None
        if m.host is not None:
            if m.host.startswith("*."):
                self.host_suffix = m.host[1:]
            else:
                self.host = m.host
        self.methods = frozenset(m.methods) if m.methods else None
        self.header = None
        if m.header is not None:
            self.header = (m.header.name.lower().encode(),
                           None if m.header.value is None else m.header.value.encode("latin-1"))
        self.cookie = m.cookie
        self.query = m.query


def normalize_host(host):
    """Return a Host header value lower-cased, without port and trailing dot.

    Args:
        host (bytes|None): the Host header.
    Returns:
        str|None: the host name, or None.
    """
    if host is None:
        return None
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        end = text.find("]")
        return text[:end + 1] if end > 0 else text
    return text.rsplit(":", 1)[0].rstrip(".") if ":" in text else text.rstrip(".")


class Router:
    """Ordered routing rules compiled once per config.

    Args:
        routes (tuple[lb_apps.l7config.Route]): the config's routes.
    """

    def __init__(self, routes):
        self.rules = [_Compiled(r) for r in routes]
        self.uses_cookies = any(r.cookie is not None for r in self.rules)
        self.uses_query = any(r.query is not None for r in self.rules)

    def match(self, method, path, query, host, headers, cookie):
        """Return the first route whose conditions all hold, or None (default group).

        Args:
            method (str): request method.
            path (str): request path without the query.
            query (str): query string without ``?``.
            host (bytes|None): the Host header.
            headers (list[tuple[bytes, bytes]]): all request headers.
            cookie (bytes|None): the Cookie header.
        Returns:
            lb_apps.l7config.Route|None: the matching route.
        """
        if not self.rules:
            return None
        hostname = cookies = params = None
        for rule in self.rules:
            if rule.prefix is not None and not path.startswith(rule.prefix):
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            if rule.regex is not None and rule.regex.search(path) is None:
                continue
            if rule.host is not None or rule.host_suffix is not None:
                if hostname is None:
                    hostname = normalize_host(host) or ""
                if rule.host is not None and hostname != rule.host:
                    continue
                if rule.host_suffix is not None and not hostname.endswith(rule.host_suffix):
                    continue
            if rule.header is not None and not _header_matches(headers, *rule.header):
                continue
            if rule.cookie is not None:
                if cookies is None:
                    cookies = parse_cookies(cookie)
                if not _nv_matches(cookies, rule.cookie):
                    continue
            if rule.query is not None:
                if params is None:
                    params = {}
                    for k, v in parse_qsl(query, keep_blank_values=True):
                        params.setdefault(k, v)
                if not _nv_matches(params, rule.query):
                    continue
            return rule.route
        return None


def _header_matches(headers, lname, value):
    for name, got in headers:
        if name.lower() == lname and (value is None or got.strip() == value):
            return True
    return False


def _nv_matches(values, cond):
    got = values.get(cond.name)
    return got is not None and (cond.value is None or got == cond.value)


def check_auth(auth, authorization):
    """Return True if the Authorization header satisfies the route's auth.

    Args:
        auth (lb_apps.l7config.Auth): the route's auth settings.
        authorization (bytes|None): the Authorization header.
    Returns:
        bool: whether the request is authenticated.
    """
    if authorization is None:
        return False
    scheme, _, cred = authorization.strip().partition(b" ")
    scheme = scheme.lower()
    cred = cred.strip()
    if auth.type == "basic":
        if scheme != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = auth.users.get(user)
        return bool(sep) and expected is not None and hmac.compare_digest(
            password.encode(), expected.encode())
    if scheme != b"bearer":
        return False
    # compare against every token so timing does not reveal which prefix matched
    ok = False
    for token in auth.tokens:
        ok |= hmac.compare_digest(cred, token.encode())
    return ok


def challenge(auth):
    """Return the WWW-Authenticate header line for a 401 from this route.

    Args:
        auth (lb_apps.l7config.Auth): the route's auth settings.
    Returns:
        bytes: the header line, CRLF-terminated.
    """
    scheme = b"Basic" if auth.type == "basic" else b"Bearer"
    return b"WWW-Authenticate: " + scheme + b' realm="' + auth.realm.encode() + b'"\r\n'
