"""A private sshd on a loopback address: a second "server" on one machine, touching nothing in /etc.

Used by the cluster test (``tests/emulation/test_cluster.py``) and for trying ``--servers`` on one
machine: its own host key, an authorised key made for it, its own config (``PermitTunnel
ethernet`` for the SSH tap tunnels, ``AcceptEnv LBLAB_*`` so each "server" gets its own
``LBLAB_STATE_DIR``), run in the foreground (``sshd -D``) as a child process, and an SSH client
config (``Host <name>`` with ``HostName``, ``Port``, ``IdentityFile``, ``UserKnownHostsFile``,
``SetEnv``) for ``ssh -F``. Only ``/run/sshd`` (sshd's privilege separation directory, which its
own package would create) is made outside ``folder``.
"""
import os
import shutil
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"


class SshdError(RuntimeError):
    """The private sshd cannot be started; the message says why and how to fix it."""


def _free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True,
                   capture_output=True)


def sshd_config_text(folder, address, port):
    """Return the private sshd's configuration (pure)."""
    return "\n".join([
        f"ListenAddress {address}", f"Port {port}",
        f"HostKey {folder}/host_key", f"PidFile {folder}/sshd.pid",
        f"AuthorizedKeysFile {folder}/authorized_keys",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "UseDNS no", "PermitTunnel ethernet", "AcceptEnv LBLAB_*",
        "MaxStartups 200", "MaxSessions 200", "LogLevel ERROR", "",
    ])


def client_config_text(name, address, port, identity, known_hosts, env=None, bind_address=None):
    """Return an ``ssh -F`` config block for one server (pure). ``bind_address``: the local
    address the client connects from, so the server sees this machine at it
    (``$SSH_CONNECTION``) — what a real second machine would see instead of 127.0.0.1."""
    lines = [f"Host {name}", f"  HostName {address}", f"  Port {port}", "  User root",
             f"  IdentityFile {identity}", "  IdentitiesOnly yes", "  BatchMode yes",
             "  StrictHostKeyChecking no", f"  UserKnownHostsFile {known_hosts}",
             "  LogLevel ERROR", "  ServerAliveInterval 5", "  ServerAliveCountMax 3"]
    if bind_address:
        lines.append(f"  BindAddress {bind_address}")
    if env:
        lines.append("  SetEnv " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    return "\n".join(lines) + "\n"


class PrivateSshd:
    """``with PrivateSshd(folder, name="server2", address="127.0.0.2", env={...},
    bind_address="127.0.0.3") as sshd:`` ``sshd.ssh_config`` is the client config to pass with
    ``ssh -F``; with ``bind_address`` the clients connect from it, so the "server" sees this
    machine there."""

    def __init__(self, folder, name="server2", address="127.0.0.2", env=None,
                 bind_address=None):
        self.folder = os.path.abspath(folder)
        self.bind_address = bind_address
        self.name = name
        self.address = address
        self.env = dict(env or {})
        self.port = None
        self.proc = None
        self.ssh_config = os.path.join(self.folder, "ssh_config")

    def __enter__(self):
        if not os.path.exists(SSHD):
            raise SshdError(f"{SSHD} not found: install openssh-server ('make setup' does, and "
                            f"leaves the system's sshd disabled)")
        os.makedirs(self.folder, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        f = self.folder
        for key in ("host_key", "client_key"):
            if not os.path.exists(os.path.join(f, key)):
                _keygen(os.path.join(f, key))
        shutil.copyfile(os.path.join(f, "client_key.pub"), os.path.join(f, "authorized_keys"))
        self.port = _free_port(self.address)
        with open(os.path.join(f, "sshd_config"), "w", encoding="utf-8") as fp:
            fp.write(sshd_config_text(f, self.address, self.port))
        with open(self.ssh_config, "w", encoding="utf-8") as fp:
            fp.write(client_config_text(self.name, self.address, self.port,
                                        os.path.join(f, "client_key"),
                                        os.path.join(f, "known_hosts"), self.env,
                                        self.bind_address))
        check = subprocess.run([SSHD, "-t", "-f", os.path.join(f, "sshd_config")],
                               capture_output=True, text=True)
        if check.returncode:
            raise SshdError(f"sshd -t refused the private config: {check.stderr.strip()}")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", os.path.join(f, "sshd_config")],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(f, "sshd.log"), "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SshdError(f"the private sshd exited ({self.proc.returncode}); see "
                                f"{f}/sshd.log")
            ok = subprocess.run(["ssh", "-F", self.ssh_config, self.name, "true"],
                                capture_output=True, timeout=10).returncode == 0
            if ok:
                return self
            time.sleep(0.1)
        self.__exit__()
        raise SshdError(f"the private sshd on {self.address}:{self.port} did not accept a login")

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return False
