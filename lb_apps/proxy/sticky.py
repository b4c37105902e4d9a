"""Cookie-insert stickiness for the L7 proxy: HMAC-signed backend ids (pure).

The cookie value is ``<backend name>.<signature>`` where the signature is the first 16 bytes of
HMAC-SHA256(secret, name), URL-safe base64 without padding. A client cannot forge or alter it
without the secret; an unknown, tampered or dead backend makes the proxy rebalance and set a
new cookie.
"""
import base64
import hashlib
import hmac

SIGNATURE_BYTES = 16


def sign(name, secret):
    """Return the cookie value naming backend ``name``.

    Args:
        name (str): backend name (an HTTP token, so a valid cookie octet string).
        secret (str): the config's ``sticky.secret``.
    Returns:
        str: ``name.signature``.
    """
    mac = hmac.new(secret.encode(), name.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return name + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify(value, secret):
    """Return the backend name in a cookie value if its signature is valid, else None.

    Args:
        value (str|None): the cookie value from the request.
        secret (str): the config's ``sticky.secret``.
    Returns:
        str|None: the backend name, or None for a missing, malformed or tampered value.
    """
    if not value:
        return None
    name, sep, _ = value.rpartition(".")
    if not sep or not name:
        return None
    return name if hmac.compare_digest(sign(name, secret), value) else None


def set_cookie_line(cookie, name, secret, secure=False):
    """Return the Set-Cookie header line pinning the client to backend ``name``.

    Args:
        cookie (str): cookie name (``sticky.cookie``).
        name (str): backend name.
        secret (str): signing secret.
        secure (bool): add ``Secure`` (the listener terminates TLS).
    Returns:
        bytes: the header line, CRLF-terminated.
    """
    attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    return f"Set-Cookie: {cookie}={sign(name, secret)}{attrs}\r\n".encode()
