"""Small network helpers shared by the runner, the tests and the benches."""
import socket


def free_port(host="127.0.0.1"):
    """Return a TCP port that is free on ``host`` right now (the kernel's choice).

    Args:
        host (str): address to bind to.
    Returns:
        int: the port number. Another process may take it before the caller binds it; callers
        that can pass port 0 to the server itself should do that instead.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
