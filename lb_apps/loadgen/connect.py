"""Open one load-generator connection from its source port (the socket shell of ``ports``).

``lb_apps.loadgen.ports.SourcePorts`` says which source port the next connection takes; this
binds it (``SO_REUSEADDR``, so a port whose earlier connection is in TIME_WAIT can be bound
again), connects, and hands the connected socket to the event loop. A candidate that cannot be
used — bound by another socket (``EADDRINUSE``), or the same 4-tuple still in TIME_WAIT
(``EADDRNOTAVAIL`` at connect) — is skipped for the next one of the same seeded sequence, so
the choice stays deterministic. In kernel mode the socket is not bound: the kernel picks an
ephemeral port at connect, as ``loop.create_connection(host, port)`` does.
"""
import errno
import socket

from lb_apps.loadgen.ports import MAX_PORT_CANDIDATES, parse_port_range

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_RETRY_ERRNOS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


def ephemeral_range():
    """Return this network namespace's ephemeral port range ``(low, high)``, or None."""
    try:
        with open(EPHEMERAL_RANGE_FILE, encoding="ascii") as fp:
            return parse_port_range(fp.read())
    except OSError:
        return None


async def resolve(loop, host, port):
    """Return ``(family, proto, sockaddr)`` of the target's first TCP address."""
    family, _, proto, _, address = (await loop.getaddrinfo(host, port,
                                                           type=socket.SOCK_STREAM))[0]
    return family, proto, address


async def open_connection(loop, factory, address, ports, ssl_context=None,
                          server_hostname=None):
    """Connect to ``address`` from the next usable source port of ``ports``.

    Args:
        loop (asyncio.AbstractEventLoop): the running loop.
        factory (callable): the protocol factory.
        address (tuple): ``resolve``'s ``(family, proto, sockaddr)``.
        ports (lb_apps.loadgen.ports.SourcePorts): the source-port sequence.
        ssl_context (ssl.SSLContext|None): TLS, or None.
        server_hostname (str|None): TLS server name.
    Returns:
        tuple: ``(transport, protocol)``, as ``loop.create_connection``.
    Raises:
        OSError: the connect failed (``ConnectionRefusedError``...), or no candidate of
            ``MAX_PORT_CANDIDATES`` could be used.
    """
    family, proto, sockaddr = address
    for _ in range(MAX_PORT_CANDIDATES):
        port = ports.next()
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            sock.setblocking(False)
            if port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            if port and exc.errno in _RETRY_ERRNOS:
                continue
            raise
        except BaseException:      # cancelled (connect timeout)
            sock.close()
            raise
        try:
            return await loop.create_connection(factory, sock=sock, ssl=ssl_context,
                                                server_hostname=server_hostname)
        except BaseException:
            sock.close()
            raise
    raise OSError(errno.EADDRINUSE, f"no usable source port in {MAX_PORT_CANDIDATES} seeded "
                                    f"candidates")
