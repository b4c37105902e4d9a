"""Helpers shared by the emulation tests: wait for the condition a test needs, never a fixed sleep.

CI shares two cores with everything else, so anything a test expects to have happened by now
(a socket listening, a connection on a backend, a flood reaching the switch, a group change
in the datapath) is waited for, with a deadline (``tests.conftest.wait_for``), and then
asserted.
"""
import re
import subprocess
import sys
import time

from tests.conftest import DEFAULT_WAIT_SEC, wait_for


def listening(lab, host, port):
    """True when a TCP socket listens on ``port`` in ``host``'s namespace."""
    return "LISTEN" in lab.host(host).cmd(f"ss -ltnH 'sport = :{port}' | head -1 | cut -c1-6")


def wait_listening(lab, host, port, timeout_sec=DEFAULT_WAIT_SEC):
    """Wait until ``host`` listens on TCP ``port`` (a server started with ``popen``)."""
    wait_for(lambda: listening(lab, host, port), f"{host} listening on TCP port {port}",
             timeout_sec)


def established(lab, host, port, peer_port):
    """Return ``(recv_q, send_q)`` of ``host``'s established TCP connection from local
    ``port`` to a peer's ``peer_port``, or None when there is none."""
    out = lab.host(host).cmd(
        f"ss -tnH state established '( sport = :{port} and dport = :{peer_port} )'")
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]), int(fields[1])
    return None


def ping_until_replied(lab, timeout_sec=30.0):
    """Ping every host from every other until each pair has had one reply.

    The first packets between two hosts wait for ARP (and, on learning switches, MAC
    learning); on a loaded machine that can outlast a one-shot ping. After this, a lab that
    forwards correctly loses no ping.
    """
    hosts = lab.net.hosts
    deadline = time.monotonic() + timeout_sec
    for src in hosts:
        for dst in hosts:
            if src is dst:
                continue
            while " 0% packet loss" not in src.cmd(f"ping -c1 -W1 {dst.IP()}"):
                assert time.monotonic() < deadline, \
                    f"{src.name} never got a ping reply from {dst.name} ({dst.IP()})"


# A download held mid-flight. Its receive buffer (set before connect, so the TCP window is
# clamped to it) lets the server get only a few kB ahead; after the response head the client
# reads nothing until the test writes a line to its stdin, so the connection is provably open
# with most of the body still on the server for as long as the test needs. Every socket
# operation is bounded by TIMEOUT_SEC, and a closed stdin also resumes it.
HELD_CLIENT = r"""
import socket, sys
vip, port, size, timeout_sec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sock.settimeout(timeout_sec)
sock.connect((vip, port))
print("PORT", sock.getsockname()[1], flush=True)
sock.sendall(b"GET /size/%d HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n" % size)
data = b""
while b"\r\n\r\n" not in data:
    chunk = sock.recv(4096)
    if not chunk:
        print("END", 0, "closed-before-head", flush=True)
        sys.exit(1)
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
backend = [line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
           if line.lower().startswith(b"x-backend:")]
print("HEAD", backend[0] if backend else "-", len(body), flush=True)
sys.stdin.readline()
got = len(body)
try:
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    print("END", got, "eof", flush=True)
except OSError as exc:
    print("END", got, type(exc).__name__, flush=True)
"""
HELD_TIMEOUT_SEC = 20.0


class HeldDownload:
    """An HTTP download of ``/size/<size>`` from ``client`` to ``vip:port``, held mid-flight.

    Attributes:
        client_port (int): the client's TCP source port (to find the connection on a backend).
        backend (str): who answered (its ``X-Backend``).
        received (int): body bytes the client had when it stopped reading.
    """

    def __init__(self, lab, client, vip, port, size):
        self.size = size
        self.proc = lab.popen(client, [sys.executable, "-c", HELD_CLIENT, vip, str(port),
                                       str(size), str(HELD_TIMEOUT_SEC)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.client_port = int(self._expect("PORT")[0])
        backend, received = self._expect("HEAD")
        self.backend, self.received = backend, int(received)
        assert self.received < size, f"the whole body arrived at once ({self.received} bytes)"

    def _expect(self, word):
        # Each line comes within HELD_TIMEOUT_SEC: the client's socket operations are bounded.
        line = self.proc.stdout.readline().split()
        assert line and line[0] == word, f"held download: expected {word}, got {line!r}"
        return line[1:]

    def resume(self):
        """Let the client read to the end; return ``(body bytes received, how it ended)``:
        ``eof`` (the server closed after the body) or the socket error's class name."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        got, how = self._expect("END")
        self.proc.wait(timeout=HELD_TIMEOUT_SEC)
        return int(got), how

    def stop(self):
        """Kill the client if it still runs (for ``finally``)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ofctl(*args):
    """Run ``ovs-ofctl -O OpenFlow13 <args>`` (the lab's bridges speak OpenFlow 1.3 only)."""
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True,
                          text=True, check=True).stdout


def vip_group_buckets(switch, vip, port):
    """Return the bucket texts of the select group a switch sends new ``vip:port`` TCP
    connections to (read from the switch itself: its flow table, then its group table)."""
    flows = ofctl("dump-flows", switch, f"tcp,nw_dst={vip},tp_dst={port}")
    groups = set(re.findall(r"group:(\d+)", flows))
    assert len(groups) == 1, f"expected one group for {vip}:{port} on {switch}:\n{flows}"
    group = groups.pop()
    (line,) = [line for line in ofctl("dump-groups", switch).splitlines()
               if line.strip().startswith(f"group_id={group},")]
    return line.split(",bucket=")[1:]


def wait_datapath_revalidated():
    """Return once Open vSwitch's revalidators finished a round begun after this call.

    A group or flow change reaches the OpenFlow tables at once, but the datapath's cached flows
    are brought up to date by the revalidator threads; until then a packet may still take the
    old path. ``ovs-appctl revalidator/wait`` blocks until a full round has run.
    """
    subprocess.run(["ovs-appctl", "revalidator/wait"], capture_output=True, check=True,
                   timeout=30)
