"""The ``lb`` commands at the mininet> prompt: parsing, formatting, and the calls against the
controller's real API routing (``controllers.api.handle`` on a real ``Core``) and the builtin
proxy's real stats (``Runtime.describe``); the emulation test drives them in a real lab."""
import io
import json
from types import SimpleNamespace

import pytest

from controllers import api
from experiments import lb_prompt as lp
from lb_apps.l7config import parse_l7_config
from lb_apps.proxy.runtime import Runtime
from tests.unit.test_controller_api import FakeApp
from topologies import graphs

BACKENDS = {"b1": "h6", "b2": "h7"}


@pytest.mark.parametrize("line, parsed", [
    ("", ("help", ())), ("help", ("help", ())), ("stats", ("stats", ())),
    ("drain b2", ("drain", ("b2",))), ("weight b3 4", ("weight", ("b3", 4))),
    ("weight h6 0", ("weight", ("h6", 0))), ("flows", ("flows", ())),
    ("flows s1", ("flows", ("s1",))), ("conns", ("conns", ())),
])
def test_parse_takes_each_command(line, parsed):
    assert lp.parse(line) == parsed


@pytest.mark.parametrize("line, message", [
    ("stat", "lb: unknown command 'stat'; expected one of stats, drain, weight, flows, conns, "
             "help; did you mean stats?"),
    ("drain", "lb drain BACKEND: expected 1 argument"),
    ("drain b1 b2", "lb drain BACKEND: expected 1 argument, got 2 (b1 b2)"),
    ("weight b3", "lb weight BACKEND N: expected 2 arguments, got 1 (b3)"),
    ("weight b3 -1", "lb weight BACKEND N: weight '-1': expected an integer 0..65535"),
    ("weight b3 2.5", "lb weight BACKEND N: weight '2.5': expected an integer 0..65535"),
    ("weight b3 70000", "lb weight BACKEND N: weight '70000': expected an integer 0..65535"),
    ("flows s1 s2", "lb flows [SWITCH]: expected 0 to 1 arguments, got 2 (s1 s2)"),
    ("stats now", "lb stats: expected 0 arguments, got 1 (now)"),
    ("drain 'b2", "lb: No closing quotation"),
])
def test_parse_refuses_with_one_line_naming_what_was_expected(line, message):
    with pytest.raises(lp.LbError) as err:
        lp.parse(line)
    assert str(err.value) == message


def test_help_lists_every_command():
    text = lp.help_text()
    for name in lp.COMMANDS:
        assert f"lb {name}" in text
    assert "lb weight BACKEND N" in text


def test_backend_of_takes_spec_names_and_hosts():
    assert lp.backend_of("b2", BACKENDS) == ("b2", "h7")
    assert lp.backend_of("h6", BACKENDS) == ("b1", "h6")
    with pytest.raises(lp.LbError, match=r"^lb: unknown backend 'b3'; expected one of b1 "
                                         r"\(h6\), b2 \(h7\)$"):
        lp.backend_of("b3", BACKENDS)
    with pytest.raises(lp.LbError, match=r"; did you mean h6\?$"):
        lp.backend_of("h66", BACKENDS)


CONNTRACK = """\
tcp,orig=(src=10.0.0.1,dst=10.254.0.1,sport=40000,dport=80),reply=(src=10.0.0.6,dst=10.0.0.1,sport=80,dport=40000),zone=2,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.0.0.1,dst=10.254.0.1,sport=40001,dport=80),reply=(src=10.0.0.6,dst=10.0.0.1,sport=80,dport=40001),zone=2,protoinfo=(state=TIME_WAIT)
tcp,orig=(src=10.0.0.2,dst=10.254.0.1,sport=40002,dport=80),reply=(src=10.0.0.7,dst=10.0.0.2,sport=80,dport=40002),zone=2,protoinfo=(state=SYN_SENT)
tcp,orig=(src=10.0.0.2,dst=10.0.0.7,sport=40003,dport=80),reply=(src=10.0.0.7,dst=10.0.0.2,sport=80,dport=40003),zone=3,protoinfo=(state=ESTABLISHED)
udp,orig=(src=10.0.0.3,dst=10.0.0.9,sport=5,dport=6),reply=(src=10.0.0.9,dst=10.0.0.3,sport=6,dport=5)
"""


def test_conntrack_counts_per_backend_by_reply_source_and_zone():
    ips = {"10.0.0.6": "h6", "10.0.0.7": "h7"}
    assert lp.conntrack_counts(CONNTRACK, ips, zone=2) == {
        "h6": {"open": 1, "closing": 1}, "h7": {"open": 1, "closing": 0}}
    assert lp.conntrack_counts(CONNTRACK, ips)["h7"] == {"open": 2, "closing": 0}
    assert lp.conntrack_counts("", ips) == {"h6": {"open": 0, "closing": 0},
                                            "h7": {"open": 0, "closing": 0}}


# -- against the controller's real API routing -----------------------------------------------------

class FakeController:
    def __init__(self, app):
        self.app = app
        self.calls = []

    def api(self, method, path, body=None, timeout=5.0):
        self.calls.append((method, path, body))
        raw = json.dumps(body).encode() if body is not None else b""
        return api.handle(self.app, method, path, raw)


def l4_run():
    app = FakeApp()
    return SimpleNamespace(balancer=SimpleNamespace(layer="l4", engine=None, name="rr"),
                           roles=SimpleNamespace(backends=BACKENDS, lb=None),
                           controller=FakeController(app), graph=graphs.lb_lab(),
                           proxy=None), app


def test_l4_stats_drain_weight_and_conns_go_through_the_controller_api():
    run, app = l4_run()
    seen = []
    lb = lp.LbCommands(run, ovs=lambda args: seen.append(args) or CONNTRACK)
    stats = lb.execute("stats")
    assert stats.splitlines()[0] == ("service web: 10.0.0.100:80 mode l4, algorithm "
                                     "round_robin, data path packet-in+conntrack; packet-ins 0")
    assert stats.splitlines()[1].split() == ["backend", "host", "ip", "weight", "state",
                                             "in_flight", "active_flows", "flows_total",
                                             "packets", "bytes"]
    assert lb.execute("drain b2") == "b2 (h7) drained (controller API)"
    assert lb.execute("weight h6 4") == "b1 (h6) weight 4 (controller API)"
    assert run.controller.calls[-2:] == [("PUT", "/services/web/backends/h7", {"drain": True}),
                                         ("PUT", "/services/web/backends/h6", {"weight": 4})]
    rows = {line.split()[0]: line.split() for line in lb.execute("stats").splitlines()[2:]}
    assert rows["b1"][3:5] == ["4", "up"] and rows["b2"][3:5] == ["0", "draining"]
    conns = lb.execute("conns").splitlines()
    assert seen == [["dpctl/dump-conntrack"]]
    # the service's zone (2, from GET /services) only; backends named by the reply source
    assert [line.split()[:4] for line in conns[2:]] == [["b1", "h6", "1", "1"],
                                                        ["b2", "h7", "1", "0"]]


def test_l4_errors_are_one_line():
    run, _ = l4_run()
    lb = lp.LbCommands(run, ovs=lambda args: "")
    with pytest.raises(lp.LbError, match="^lb: unknown backend 'b9'"):
        lb.execute("drain b9")
    with pytest.raises(lp.LbError, match=r"^lb flows: unknown switch 's9'; expected one of s1"):
        lb.execute("flows s9")
    run.controller = None
    with pytest.raises(lp.LbError, match="^lb: the controller is not running$"):
        lb.execute("stats")


def test_a_refusal_of_the_controller_is_shown():
    run, _ = l4_run()
    run.roles = SimpleNamespace(backends={"b1": "h6", "b2": "h7", "b3": "h8"}, lb=None)
    with pytest.raises(lp.LbError, match=r"^lb: the controller refused PUT "
                                         r"/services/web/backends/h8: "):
        lp.LbCommands(run).execute("weight b3 2")


# -- against the builtin proxy's real stats -------------------------------------------------------

class FakeHost:
    def __init__(self, docs):
        self.docs = docs
        self.commands = []

    def cmd(self, command):
        self.commands.append(command)
        port = int(command.rsplit(":", 1)[1].strip("/"))
        return json.dumps(self.docs[port - lp.plan.PROXY_STATS_PORT])


def l7_run(engine="builtin", workers=1):
    cfg = parse_l7_config({"algorithm": "least_connections", "backends": [
        {"name": "b1", "address": "10.0.0.6", "port": 80, "weight": 2},
        {"name": "b2", "address": "10.0.0.7", "port": 80}]})
    docs = []
    for i in range(workers):
        rt = Runtime(cfg)
        rt.backends["b1"].in_flight = 2 + i
        rt.backends["b1"].requests = 10
        docs.append({**rt.describe(), "connections": 3, "worker": i})
    host = FakeHost(docs)
    reloads = []
    run = SimpleNamespace(
        balancer=SimpleNamespace(layer="l7", engine=engine, name="px"),
        roles=SimpleNamespace(backends=BACKENDS, lb="h5"), controller=None,
        proxy=SimpleNamespace(poll=lambda: None), lab=SimpleNamespace(host=lambda name: host),
        _proxy_config=lambda: {"workers": workers},
        _reload_weight=lambda name, weight: reloads.append((name, weight)))
    return run, host, reloads


def test_l7_stats_and_conns_sum_the_workers_and_weights_reload_the_proxy():
    run, host, reloads = l7_run(workers=2)
    lb = lp.LbCommands(run)
    stats = lb.execute("stats").splitlines()
    assert stats[0] == ("builtin proxy: 2 worker(s), algorithm least_connections; client "
                        "connections 6; local answers 0")
    rows = {line.split()[0]: line.split() for line in stats[2:]}
    assert rows["b1"][:6] == ["b1", "h6", "2", "20", "0", "5"]
    assert [c.rsplit(":", 1)[1] for c in host.commands] == ["9901/", "9902/"]
    conns = lb.execute("conns").splitlines()
    assert conns[0] == "builtin proxy: 6 client connection(s); requests in flight per backend"
    assert [line.split() for line in conns[2:]] == [["b1", "h6", "5"], ["b2", "h7", "0"]]
    assert lb.execute("drain h7") == "b2 (h7) drained (proxy config rewritten and reloaded)"
    assert lb.execute("weight b1 3") == "b1 (h6) weight 3 (proxy config rewritten and reloaded)"
    assert reloads == [("b2", 0), ("b1", 3)]


def test_l7_engines_and_a_failed_reload_are_refused_by_name():
    run, _, _ = l7_run(engine="haproxy")
    with pytest.raises(lp.LbError, match="^lb: lb stats/conns needs the controller or the "
                                         "builtin proxy; balancer 'px' runs haproxy"):
        lp.LbCommands(run).execute("stats")
    run, _, _ = l7_run()
    run._reload_weight = lambda name, weight: "the proxy rejected its new config: x"
    with pytest.raises(lp.LbError, match="^lb: b1: the proxy rejected its new config: x$"):
        lp.LbCommands(run).execute("drain b1")


# -- on a Mininet CLI class -----------------------------------------------------------------------

def test_with_lb_commands_adds_do_lb_that_prints_output_and_errors():
    class Base:  # what with_lb_commands needs of mininet.cli.CLI: a stdout
        def __init__(self):
            self.stdout = io.StringIO()
    run, _, _ = l7_run()
    cli = lp.with_lb_commands(Base, run)()
    cli.do_lb("conns")
    cli.do_lb("weight b1 x")
    cli.help_lb()
    out = cli.stdout.getvalue().splitlines()
    assert out[0].startswith("builtin proxy: 3 client connection(s)")
    assert "lb weight BACKEND N: weight 'x': expected an integer 0..65535" in out
    assert out[-1].lstrip().startswith("lb help")
