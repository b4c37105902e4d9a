"""What a remote host needs from this machine (no root, no SSH): signals over the session
(``agent exec``'s lines, ``RemoteProcess``), the files a JSON input names, the controller's
address as a server sees this machine, the private sshd's BindAddress, each switch's
controller entry."""
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import runner
from topologies.cluster import agent as A
from topologies.cluster import network as N
from topologies.cluster import nodes, private_sshd, servers


# -- signals over the session --------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_line_names_the_signal_and_reads_back(sig):
    line = A.signal_line(sig)
    assert line.endswith("\n") and not line.startswith("SIG")
    assert A.parse_signal_line(line) == sig


@pytest.mark.parametrize("line", ["", "\n", "NOPE\n", "9\n"])
def test_a_line_naming_no_signal_is_ignored(line):
    assert A.parse_signal_line(line) is None


def _exec(tmp_path):
    """agent exec of a child that writes 'hup' to a file on SIGHUP and otherwise sleeps."""
    mark = tmp_path / "hups"
    child = ("import signal,sys,time\n"
             f"signal.signal(signal.SIGHUP, lambda *a: open({str(mark)!r}, 'a').write('hup\\n'))\n"
             "print('ready', flush=True)\n"
             "while True: time.sleep(0.05)\n")
    proc = subprocess.Popen([sys.executable, "-m", "topologies.cluster.agent", "exec", "--",
                             sys.executable, "-c", child], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    return proc, mark


def _end(proc):
    """End an agent exec as the runner does: its stdin closes and it stops its child, then exits
    (killing the agent itself would leave the child running: it ignores nothing but lives on)."""
    try:
        proc.stdin.close()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def test_agent_exec_sends_each_signal_line_to_its_process_and_exits_with_its_status(tmp_path):
    proc, mark = _exec(tmp_path)
    try:
        remote = N.RemoteProcess(proc, "server2", repush=lambda: None)
        for n in (1, 2):       # one at a time: two pending SIGHUPs are one
            remote.send_signal(signal.SIGHUP)
            _wait(lambda: mark.exists() and mark.read_text().count("hup") == n)
        assert proc.poll() is None                   # a HUP does not stop it
        remote.kill()
        assert proc.wait(10) == 128 + signal.SIGKILL
    finally:
        _end(proc)


def test_a_hup_ships_the_inputs_again_before_it_is_sent(tmp_path):
    proc, mark = _exec(tmp_path)
    order = []
    try:
        remote = N.RemoteProcess(proc, "server2", repush=lambda: order.append(
            "pushed" if not mark.exists() else "late"))
        remote.send_signal(signal.SIGHUP)
        _wait(mark.exists)
        assert order == ["pushed"]
        remote.send_signal(signal.SIGUSR2)           # other signals ship nothing
        assert order == ["pushed"]
    finally:
        _end(proc)


def test_a_signal_to_an_ended_session_is_a_no_op():
    proc = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    proc.wait()
    called = []
    N.RemoteProcess(proc, "s", repush=lambda: called.append(1)).send_signal(signal.SIGHUP)
    assert called == []


# -- the files a JSON input names ---------------------------------------------------------

def test_json_inputs_name_their_tls_and_balancer_files_but_not_url_paths():
    data = {"listen": {"tls": {"cert": "/etc/lab/c.pem", "key": "/etc/lab/k.pem"}},
            "groups": [{"algorithm": "file:/home/me/lb.py:Mine", "health": "/health"},
                       {"algorithm": {"file": "/home/me/other.py", "class": "O"}}],
            "routes": [{"path": "/etc/passwd"}], "note": "file:relative.py:X",
            "hash_key": "src_ip"}
    assert sorted(N.json_paths(data)) == ["/etc/lab/c.pem", "/etc/lab/k.pem",
                                          "/home/me/lb.py", "/home/me/other.py",
                                          "relative.py"]
    moved = N.replace_paths(data, {"/etc/lab/c.pem": "/w/inputs/c.pem",
                                   "/home/me/lb.py": "/w/inputs/lb.py"})
    assert moved["listen"]["tls"] == {"cert": "/w/inputs/c.pem", "key": "/etc/lab/k.pem"}
    assert moved["groups"][0] == {"algorithm": "file:/w/inputs/lb.py:Mine", "health": "/health"}
    assert moved["routes"] == [{"path": "/etc/passwd"}]


# -- the controller's address as a server sees this machine --------------------------------

def test_the_address_a_server_sees_is_ssh_connections_first_field():
    assert servers.address_from_ssh_connection("127.0.0.3 40022 127.0.0.2 2222", "s") == \
        "127.0.0.3"
    assert servers.address_from_ssh_connection("::ffff:10.0.0.7 1 ::ffff:10.0.0.9 22", "s") == \
        "10.0.0.7"


@pytest.mark.parametrize("text, expected", [
    (None, "s2: \\$SSH_CONNECTION is None there"),
    ("", "s2: \\$SSH_CONNECTION is '' there"),
    ("fe80::1 5 fe80::2 22", "s2 reaches this machine at fe80::1, not an IPv4 address"),
])
def test_no_usable_address_is_one_line_naming_the_server(text, expected):
    with pytest.raises(ValueError, match=expected):
        servers.address_from_ssh_connection(text, "s2")


def test_the_controller_listens_where_every_server_sees_this_machine():
    assert servers.controller_listen({}) == "127.0.0.1"
    assert servers.controller_listen({"a": "10.0.0.5", "b": "10.0.0.5"}) == "10.0.0.5"
    assert servers.controller_listen({"a": "10.0.0.5", "b": "192.168.7.1"}) == "0.0.0.0"


def test_a_remote_switch_gets_the_controller_at_its_servers_address():
    class C:
        name, protocol, port = "c0", "tcp", 6653

        def IP(self):  # noqa: N802
            return "127.0.0.3"

    at = nodes.ControllerAt(C(), "10.0.0.5")
    assert (at.name, at.protocol, at.port, at.IP()) == ("c0", "tcp", 6653, "10.0.0.5")


def test_the_private_sshd_client_can_connect_from_another_loopback_address():
    text = private_sshd.client_config_text("server2", "127.0.0.2", 2222, "/k", "/kh",
                                           bind_address="127.0.0.3")
    assert "  BindAddress 127.0.0.3\n" in text
    assert "BindAddress" not in private_sshd.client_config_text("s", "a", 1, "/k", "/kh")


def test_the_controller_harness_waits_where_the_switches_connect(tmp_path):
    """Listening on 127.0.0.3 alone (as for a server that sees this machine there), the
    controller counts as up: the harness asks ofp_host, not 127.0.0.1."""
    import socket
    from controllers.harness import ControllerProcess
    with socket.socket() as listener:
        listener.bind(("127.0.0.3", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ctl = ControllerProcess({"controller": {"ofp_host": "127.0.0.3", "ofp_port": port}},
                                str(tmp_path))
        ctl.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            ctl.wait_openflow(timeout=5)
        finally:
            ctl.proc.kill()
            ctl.proc.wait()


# -- resume --------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", [["--servers", "localhost,b"], ["--ssh-config", "/x"]])
def test_resume_refuses_servers_given_again(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        runner.main(["--resume", "/nonexistent-results", *flag])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--resume takes the spec and its options from the results folder" in err
    assert flag[0] in err


# -- a remote server's run folder (ssh replaced by running the command here) --------------

@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A ClusterNetwork's file side: host h9 on "server2", whose run folder is another folder
    here; every command for server2 runs here as it would run there."""
    from topologies.cluster import ssh
    monkeypatch.setattr(ssh, "remote", lambda server, argv, config=None, tty=False: list(argv))
    net = N.ClusterNetwork.__new__(N.ClusterNetwork)
    net.run_dir = str(tmp_path / "results" / "raw" / "c-r1")
    os.makedirs(net.run_dir)
    net.works = {"server2": str(tmp_path / "state2" / "work" / "RUNID")}
    os.makedirs(net.works["server2"])
    net.placed = {"h9": "server2", "h1": "localhost"}
    net.ssh_config, net.pushed, net.fetched = None, {}, {}
    return net


def test_an_input_is_copied_with_its_paths_and_the_files_it_names(lab, tmp_path):
    cert = tmp_path / "elsewhere" / "lab.pem"
    cert.parent.mkdir()
    cert.write_text("CERT")
    cert.chmod(0o600)
    config = os.path.join(lab.run_dir, "proxy.json")
    with open(config, "w", encoding="utf-8") as fp:
        fp.write('{"tls": {"cert": "%s"}, "log": "%s/proxy-access.log"}' % (cert, lab.run_dir))
    lab._push("server2", config)
    there = lab.remote_path("server2", config)
    assert there == os.path.join(lab.works["server2"], "proxy.json")
    import json
    with open(there, encoding="utf-8") as fp:
        copied = json.load(fp)
    assert copied["log"] == lab.works["server2"] + "/proxy-access.log"
    shipped = copied["tls"]["cert"]
    assert shipped.startswith(lab.works["server2"] + "/inputs/") and shipped.endswith("lab.pem")
    with open(shipped, encoding="utf-8") as fp:
        assert fp.read() == "CERT"
    assert os.stat(shipped).st_mode & 0o777 == 0o600


def test_a_relative_tls_path_is_shipped_from_the_runners_folder(lab, tmp_path, monkeypatch):
    (tmp_path / "cwd" / ".lab").mkdir(parents=True)
    (tmp_path / "cwd" / ".lab" / "lab.crt").write_text("CRT")
    monkeypatch.chdir(tmp_path / "cwd")
    config = os.path.join(lab.run_dir, "proxy.json")
    with open(config, "w", encoding="utf-8") as fp:
        fp.write('{"tls": {"cert": ".lab/lab.crt", "key": ".lab/missing.key"}}')
    lab._push("server2", config)
    import json
    with open(lab.remote_path("server2", config), encoding="utf-8") as fp:
        tls = json.load(fp)["tls"]
    assert tls["key"] == ".lab/missing.key"          # no such file here: left as it is
    with open(tls["cert"], encoding="utf-8") as fp:
        assert fp.read() == "CRT"
    assert tls["cert"].startswith(lab.works["server2"] + "/inputs/")


def test_a_folder_is_copied_whole_and_files_written_there_come_back(lab):
    engine = os.path.join(lab.run_dir, "nginx")
    os.makedirs(os.path.join(engine, "tmp", "proxy"))
    with open(os.path.join(engine, "nginx.conf"), "w", encoding="utf-8") as fp:
        fp.write(f"pid {engine}/nginx.pid;\n")
    lab.push_tree("server2", engine)
    there = lab.remote_path("server2", engine)
    assert os.path.isdir(os.path.join(there, "tmp", "proxy"))
    with open(os.path.join(there, "nginx.conf"), encoding="utf-8") as fp:
        assert fp.read() == f"pid {there}/nginx.pid;\n"
    # the engine writes its logs there; an iperf3 log is fetched early and then grows
    log = os.path.join(engine, "access.log")
    assert not lab.exists("h9", log)
    with open(lab.remote_path("server2", log), "w", encoding="utf-8") as fp:
        fp.write("early\n")
    assert lab.exists("h9", log)
    lab.fetch("h9", [log])
    with open(log, encoding="utf-8") as fp:
        assert fp.read() == "early\n"
    with open(lab.remote_path("server2", log), "a", encoding="utf-8") as fp:
        fp.write("late\n")
    lab.collect()
    with open(log, encoding="utf-8") as fp:
        assert fp.read() == "early\nlate\n"      # a fetched copy is replaced at the end
    with open(os.path.join(engine, "nginx.conf"), encoding="utf-8") as fp:
        assert fp.read() == f"pid {engine}/nginx.pid;\n"   # an input is never copied back
