"""A balancer from a file in a real lab (root, Open vSwitch, Mininet), and the ``lb`` commands.

"Always the last live backend", written in a file beside the spec, runs at L4 (the controller,
mode l4) and at L7 (the builtin proxy), each in a lab built the way ``lblab shell`` builds it:
every request lands on the last backend; after ``lb drain b3`` typed at a Mininet CLI with the
``lb`` commands (``onecmd``, no terminal), every new one lands on b2. ``lb stats``, ``lb conns``
and ``lb flows`` answer from the controller, Open vSwitch and the proxy. Run it under the lab
lock: ``flock /tmp/lblab-emulation.lock .venv/bin/python -m pytest
tests/emulation/test_custom_balancer.py -q``.
"""
import io
import os
import re

import pytest

from experiments import run_plan as plan
from experiments.lb_prompt import with_lb_commands
from experiments.run_lab import Run
from experiments.spec import load_spec

BALANCER = """\
class LastLive:
    \"\"\"Every connection or request to the last live backend of the pool.\"\"\"

    def __init__(self, backends, seed=0):
        self.weights = dict(backends)
        self.up = {name: True for name in backends}

    def choose(self, key=None):
        live = [n for n, w in self.weights.items() if w > 0 and self.up[n]]
        return live[-1] if live else None

    def on_open(self, name):
        pass

    def on_close(self, name):
        pass

    def set_weight(self, name, weight):
        self.weights[name] = weight

    def add_backend(self, name, weight=1):
        self.weights[name] = weight
        self.up[name] = True

    def remove_backend(self, name):
        del self.weights[name], self.up[name]

    def set_up(self, name, up):
        self.up[name] = up
"""

SPEC = """\
name: mine
topology: {name: lb_lab, params: {clients: 1}}
backends:
  - {name: b1, service: {dist: fixed, mean_ms: 1}}
  - {name: b2, service: {dist: fixed, mean_ms: 1}}
  - {name: b3, service: {dist: fixed, mean_ms: 1}}
balancers:
  - {name: mine_l4, layer: l4, mode: l4, algorithm: {file: last_live.py, class: LastLive}}
  - {name: mine_l7, layer: l7, engine: builtin, algorithm: {file: last_live.py, class: LastLive}}
workload: {type: http, mode: closed, users: 1}
warmup_s: 0
duration_s: 1
"""
REQUESTS = 12


def served_by(run, count):
    """Send ``count`` requests (a connection each) from the client; return who answered each."""
    url = plan.service_url(run.balancer, run.graph, run.roles)
    client = run.lab.host(run.roles.clients[0])
    out = client.cmd(f"for i in $(seq {count}); do curl -s -m 5 -D - -o /dev/null {url}; done")
    return re.findall(r"(?im)^x-backend:\s*(\S+)", out)


@pytest.mark.parametrize("name", ["mine_l4", "mine_l7"])
def test_a_file_balancer_decides_at_l4_and_l7_and_lb_drain_moves_it(tmp_path, name):
    (tmp_path / "last_live.py").write_text(BALANCER)
    (tmp_path / "spec.yaml").write_text(SPEC)
    spec = load_spec(str(tmp_path / "spec.yaml"))
    seen = {}

    def in_the_lab(meta):
        seen["before"] = served_by(run, REQUESTS)
        cli = with_lb_commands(__import__("mininet.cli").cli.CLI, run)(
            run.lab.net, stdin=open(os.devnull), stdout=io.StringIO(),
            script=str(tmp_path / "empty.cli"))
        outputs = []
        for command in ("lb stats", "lb drain b3", "lb conns", "lb flows s1", "lb stats",
                        "lb weight b9 1"):
            start = len(cli.stdout.getvalue())
            cli.onecmd(command)
            outputs.append(cli.stdout.getvalue()[start:])
        seen["prompt"] = outputs
        seen["after"] = served_by(run, REQUESTS)

    (tmp_path / "empty.cli").write_text("")
    balancer = spec.balancer(name)
    run = Run(spec, balancer, name, 1, 0, None, str(tmp_path / "raw"), spec.seed,
              on_ready=in_the_lab)
    meta = run.execute()
    assert meta["status"] == "ok", meta["failure"]
    assert seen["before"] == ["b3"] * REQUESTS, seen
    assert seen["after"] == ["b2"] * REQUESTS, seen
    stats, drain, conns, flows, stats_after, unknown = prompt = seen["prompt"]
    host3 = run.roles.backends["b3"]
    assert drain.startswith(f"b3 ({host3}) drained"), prompt
    assert unknown.startswith("lb: unknown backend 'b9'"), prompt
    assert "cookie=" in flows and "actions=" in flows, prompt

    def row(text, backend):
        return next(line.split() for line in text.splitlines()
                    if line.startswith(backend + " "))
    if name == "mine_l4":
        assert "algorithm file:" in stats and "LastLive" in stats, prompt
        assert row(stats, "b3")[3:5] == ["1", "up"], prompt            # weight, state
        assert row(stats_after, "b3")[3:5] == ["0", "draining"], prompt
        # flows_total: every connection so far on b3 (the runner's readiness check's too)
        assert int(row(stats, "b3")[7]) >= REQUESTS, prompt
        assert row(stats, "b1")[7] == row(stats, "b2")[7] == "0", prompt
        assert conns.startswith("open connections to"), prompt
        assert "ct(" in flows, prompt
    else:
        assert stats.startswith("builtin proxy: 1 worker(s), algorithm file:"), prompt
        # requests: every one so far on b3 (the runner's readiness check's too)
        assert int(row(stats, "b3")[3]) >= REQUESTS, prompt
        assert row(stats, "b1")[3] == row(stats, "b2")[3] == "0", prompt
        assert conns.startswith("builtin proxy:"), prompt
