"""A balancer from a file: the algorithm field of the three inputs, the load-time check (each
problem one line naming the file and line), the referee around every instance, the controller's
and the proxy's use of it, and lab 8's template harness run against the template and against
wrong balancers (so that it can fail)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from controllers import config as ctl_config
from experiments.spec import loads_spec
from experiments.spec_errors import SpecError
from lb_apps import custom_balancer as cb
from lb_apps.balancing import BalancingError, make_balancer
from lb_apps.engines.support import check_support
from lb_apps.l7config import L7ConfigError, absolute_balancer_files, parse_l7_config
from lb_apps.proxy.runtime import Runtime
from tests.unit.test_controller_decisions import BACKENDS, VIP, lab
from tests.unit.test_controller_decisions import served_by as served_by_host
from tests.unit.test_proxy_harness import (Client, backends, config, lt, proxy,  # noqa: F401
                                           served_by)
from topologies import graphs

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "labs" / "lab8" / "template"
WRONG = Path(__file__).resolve().parent / "fixtures" / "balancers" / "wrong.py"

GOOD = """\
class LastLive:
    def __init__(self, backends, seed=0):
        self.weights = dict(backends)
        self.up = {n: True for n in backends}
        self.keys = []

    def choose(self, key=None):
        self.keys.append(key)
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


def write(tmp_path, text, name="my_lb.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def good_with(tmp_path, replace=None, append=""):
    text = GOOD if replace is None else GOOD.replace(*replace)
    return write(tmp_path, text + append)


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def l7(algorithm, **extra):
    return {"algorithm": algorithm, "backends": [
        {"name": "a", "address": "10.0.0.1", "port": 80},
        {"name": "b", "address": "10.0.0.2", "port": 80}], **extra}


# -- the field ---------------------------------------------------------------------------------

def test_the_three_forms_become_one_absolute_string_against_the_config_folder(tmp_path):
    path = good_with(tmp_path)
    source = str(tmp_path / "proxy.yaml")
    for form in ({"file": "my_lb.py", "class": "LastLive"}, "file:my_lb.py:LastLive",
                 {"file": str(path), "class": "LastLive"}):
        cfg = parse_l7_config(l7(form), source)
        assert cfg.groups["default"].algorithm == f"file:{path}:LastLive"


@pytest.mark.parametrize("form, message", [
    ({"file": "x.py", "clas": "A"}, "unknown key 'clas'; expected file and class (a balancer "
                                    "from a file); did you mean class?"),
    ({"file": "x.py"}, "a balancer from a file needs class: {file: PATH, class: NAME}"),
    ({"file": "", "class": "A"}, "file: '': expected a path to a Python file"),
    ({"file": "x.py", "class": "1A"}, "class: '1A': expected a Python class name"),
    ({"file": "x.py", "class": "class"}, "class: 'class': expected a Python class name"),
    ("leastconn", "'leastconn': expected one of round_robin"),
])
def test_a_malformed_algorithm_is_one_line_naming_the_key(form, message):
    with pytest.raises(L7ConfigError) as err:
        parse_l7_config(l7(form), "p.yaml")
    assert len(err.value.errors) == 1
    assert err.value.errors[0].startswith("p.yaml: algorithm: ")
    assert message in err.value.errors[0]


def test_absolute_balancer_files_fixes_top_level_and_groups_only(tmp_path):
    data = {"algorithm": {"file": "a.py", "class": "A"}, "backends": [],
            "groups": {"g": {"algorithm": "file:sub/b.py:B"}, "h": {"algorithm": "ip_hash"}}}
    out = absolute_balancer_files(data, str(tmp_path))
    assert out["algorithm"] == f"file:{tmp_path}/a.py:A"
    assert out["groups"]["g"]["algorithm"] == f"file:{tmp_path}/sub/b.py:B"
    assert out["groups"]["h"]["algorithm"] == "ip_hash"
    assert data["algorithm"] == {"file": "a.py", "class": "A"}  # not changed in place


# -- the load-time check -------------------------------------------------------------------------

def check(path, cls="LastLive"):
    with pytest.raises(cb.BalancerFileError) as err:
        cb.check_file(cb.join(str(path), cls))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_good_file_passes_the_check(tmp_path):
    cb.check_file(cb.join(str(good_with(tmp_path)), "LastLive"))


def test_a_missing_file_is_named(tmp_path):
    assert check(tmp_path / "nope.py").endswith(
        "nope.py: cannot read the balancer file: No such file or directory")


def test_a_syntax_error_names_its_line(tmp_path):
    path = good_with(tmp_path, append="def broken(:\n")
    assert check(path).startswith(f"{path}:{line_of(path, 'def broken')}: syntax error: ")


def test_an_error_while_importing_names_its_line(tmp_path):
    path = good_with(tmp_path, append="x = undefined_name\n")
    message = check(path)
    assert message.startswith(f"{path}:{line_of(path, 'undefined_name')}: importing it raised "
                              "NameError: ")


def test_a_missing_class_lists_the_classes_there(tmp_path):
    message = check(good_with(tmp_path), "LastLife")
    assert message.endswith("no class 'LastLife'; classes in it: LastLive")


def test_missing_methods_are_listed_at_the_class_line(tmp_path):
    path = good_with(tmp_path, replace=("    def set_up(self, name, up):\n        self.up[name] = up\n", ""))
    path.write_text(path.read_text().replace("    def on_close(self, name):\n        pass\n", ""))
    assert check(path).startswith(f"{path}:{line_of(path, 'class LastLive')}: class LastLive "
                                  "lacks the methods on_close, set_up")


def test_an_exception_on_the_test_pool_names_the_line_and_the_step(tmp_path):
    path = good_with(tmp_path, replace=("        self.weights[name] = weight\n",
                                        "        self.weights[name] = weight / 0\n"))
    message = check(path)
    assert message.startswith(f"{path}:{line_of(path, 'weight / 0')}: LastLive.set_weight('b2', "
                              "0) raised ZeroDivisionError: division by zero")
    assert message.endswith("(test pool: picks with b2 drained and b3 down)")


def test_a_wrong_signature_names_the_def_line(tmp_path):
    path = good_with(tmp_path, replace=("def choose(self, key=None):", "def choose(self):"))
    message = check(path)
    assert message.startswith(f"{path}:{line_of(path, 'def choose')}: LastLive.choose(None) "
                              "raised TypeError")


@pytest.mark.parametrize("cls, needle, what", [
    ("IgnoresDrain", "return names[", "returned 'b2', which is drained (weight 0)"),
    ("Raises", 'return {}["missing"]', "Raises.choose(None) raised KeyError: 'missing'"),
])
def test_wrong_answers_on_the_test_pool_are_named(cls, needle, what):
    message = check(WRONG, cls)
    shown = cb.shown_path(str(WRONG))
    if cls == "IgnoresDrain":
        assert message.startswith(f"{shown}:{line_of(WRONG, 'def choose(self, key=None):')}")
    else:
        assert message.startswith(f"{shown}:{line_of(WRONG, needle)}: ")
    assert what in message


def test_an_endless_loop_is_stopped_and_its_line_named(monkeypatch):
    monkeypatch.setattr(cb, "CHECK_BUDGET_SEC", 0.2)
    message = check(WRONG, "Endless")
    assert message.startswith(f"{cb.shown_path(str(WRONG))}:{line_of(WRONG, 'while True')}: "
                              "Endless did not answer within 0.2 s on the test pool")


# -- the referee ---------------------------------------------------------------------------------

def test_make_balancer_builds_it_with_every_call_and_lblab_counts(tmp_path):
    path = good_with(tmp_path)
    balancer = make_balancer(f"file:{path}:LastLive", {"a": 1, "b": 2, "c": 1})
    assert balancer.choose("k") == "c"
    balancer.on_open("c")
    balancer.set_up("c", False)
    assert balancer.choose() == "b"
    balancer.remove_backend("b")
    balancer.add_backend("d", 3)
    assert balancer.choose() == "d"
    assert balancer.in_flight() == {"a": 0, "c": 1, "d": 0}
    assert balancer.backends()["c"] == {"weight": 1, "up": False, "in_flight": 1, "chosen": 1}
    assert balancer.impl.keys == ["k", None, None]
    with pytest.raises(BalancingError, match="options: unknown 'table_size'"):
        make_balancer(f"file:{path}:LastLive", {"a": 1}, table_size=7)
    with pytest.raises(BalancingError, match=r"weight: invalid -1 for backend 'a'"):
        balancer.set_weight("a", -1)
    with pytest.raises(BalancingError, match=r"backend: unknown 'zz'"):
        balancer.on_open("zz")


@pytest.mark.parametrize("answer, message", [
    ("'zz'", "returned 'zz', not a backend of the pool (a, b)"),
    ("None", "returned None while a, b are live"),
    ("'b' if self.up['b'] is False else 'b'", "returned 'b', which is down"),
])
def test_the_referee_refuses_a_wrong_answer_at_run_time(tmp_path, answer, message):
    path = good_with(tmp_path, replace=("return live[-1] if live else None", f"return {answer}"))
    balancer = make_balancer(f"file:{path}:LastLive", {"a": 1, "b": 1})
    if "down" in message:
        balancer.set_up("b", False)
    with pytest.raises(cb.BalancerFileError) as err:
        balancer.choose()
    assert str(err.value) == f"{path}:{line_of(path, 'def choose')}: LastLive.choose {message}"


# -- where it may run ------------------------------------------------------------------------------

SPEC = """\
name: mine
topology: {name: lb_lab}
backends: 3
workload: {type: http}
balancers:
"""


def spec_errors(tmp_path, balancers):
    text = SPEC + "".join(f"  - {b}\n" for b in balancers)
    try:
        loads_spec(text, str(tmp_path / "spec.yaml"))
    except SpecError as exc:
        return exc.errors
    return []


def test_a_spec_takes_it_at_l4_and_l7_relative_to_the_spec(tmp_path):
    good_with(tmp_path)
    mine = "{file: my_lb.py, class: LastLive}"
    assert spec_errors(tmp_path, [f"{{name: a, layer: l4, mode: l4, algorithm: {mine}}}",
                                  f"{{name: b, layer: l4, mode: l3, algorithm: {mine}}}",
                                  f"{{name: c, layer: l7, algorithm: {mine}}}",
                                  f"{{name: d, layer: l7, l7: {{groups: {{}}, algorithm: "
                                  f"{mine}}}}}"]) == []


def test_a_parsed_spec_and_its_run_plan_name_the_file_by_its_absolute_path(tmp_path):
    from experiments import run_plan as plan
    path = good_with(tmp_path)
    text = SPEC + ("  - {name: a, layer: l4, algorithm: {file: my_lb.py, class: LastLive}}\n"
                   "  - {name: c, layer: l7, l7: {groups: {g: {backends: [b1], algorithm: "
                   "'file:my_lb.py:LastLive'}}}}\n")
    spec = loads_spec(text, str(tmp_path / "spec.yaml"))
    assert spec.balancers[0].algorithm == f"file:{path}:LastLive"
    assert spec.balancers[1].l7["groups"]["g"]["algorithm"] == f"file:{path}:LastLive"
    graph = graphs.build(spec.topology.name, spec.topology.params)
    roles = plan.assign_roles(graph, spec.backends)
    ctl = plan.controller_config(spec, spec.balancers[0], graph, roles, 6653, 8080)
    assert ctl["services"]["web"]["algorithm"] == f"file:{path}:LastLive"
    proxy = plan.proxy_config(spec, spec.balancers[1], graph, roles)
    assert proxy["groups"]["g"]["algorithm"] == f"file:{path}:LastLive"


def test_a_spec_refuses_it_where_nothing_asks_it_and_names_the_problem(tmp_path):
    good_with(tmp_path)
    mine = "{file: my_lb.py, class: LastLive}"
    errors = spec_errors(tmp_path, [
        f"{{name: a, layer: l4, mode: group, algorithm: {mine}}}",
        f"{{name: b, layer: l4, mode: proactive, algorithm: {mine}}}",
        f"{{name: c, layer: l7, engine: haproxy, algorithm: {mine}}}",
        f"{{name: d, layer: l7, engine: nginx, algorithm: {mine}}}",
        "{name: e, layer: l4, algorithm: {file: my_lb.py, class: Nope}}",
        "{name: f, layer: l7, l7: {algorithm: {file: gone.py, class: X}}}"])
    source = tmp_path / "spec.yaml"
    assert errors == [
        f"{source}:6: balancers[0].algorithm: a balancer from a file (my_lb.py:LastLive) needs "
        "mode l2, l3 or l4 (asked per connection or client); mode group balances in the switch "
        "without asking it",
        f"{source}:7: balancers[1].algorithm: a balancer from a file (my_lb.py:LastLive) needs "
        "mode l2, l3 or l4 (asked per connection or client); mode proactive balances in the "
        "switch without asking it",
        f"{source}:8: balancers[2].engine: haproxy cannot express the balancer from a file "
        f"{tmp_path}/my_lb.py:LastLive in group 'default' (Python balancers run in the builtin "
        "proxy only); use engine builtin",
        f"{source}:9: balancers[3].engine: nginx cannot express the balancer from a file "
        f"{tmp_path}/my_lb.py:LastLive in group 'default' (Python balancers run in the builtin "
        "proxy only); use engine builtin",
        f"{source}:10: balancers[4].algorithm: {tmp_path}/my_lb.py: no class 'Nope'; classes "
        "in it: LastLive",
        f"{source}:11: balancers[5].l7.algorithm: {tmp_path}/gone.py: cannot read the balancer "
        "file: No such file or directory",
    ]


def test_the_controller_config_refuses_it_for_group_and_checks_it_for_l4(tmp_path):
    path = good_with(tmp_path, replace=("return live[-1] if live else None", "return 1 / 0"))
    (tmp_path / "ctl.yaml").write_text(
        "topology: {name: lb_lab}\nservices:\n"
        "  web: {vip: 10.0.0.100, port: 80, mode: l4, backends: {h6: 1, h7: 1},\n"
        "        algorithm: {file: my_lb.py, class: LastLive}}\n"
        "  other: {vip: 10.0.0.101, port: 81, mode: group, backends: {h6: 1},\n"
        "          algorithm: {file: my_lb.py, class: LastLive}}\n")
    with pytest.raises(ctl_config.ConfigError) as err:
        ctl_config.load_config(tmp_path / "ctl.yaml")
    assert err.value.errors == [
        f"{tmp_path}/ctl.yaml:6: services.other.algorithm: a balancer from a file "
        "(my_lb.py:LastLive) needs a mode that asks the balancer per connection or client (l2, "
        "l3, l4); mode group balances in the switch without asking it"]
    (tmp_path / "ctl.yaml").write_text(
        (tmp_path / "ctl.yaml").read_text().split("  other:")[0])
    with pytest.raises(ctl_config.ConfigError) as err:
        ctl_config.load_config(tmp_path / "ctl.yaml")
    assert err.value.errors == [
        f"{tmp_path}/ctl.yaml:4: services.web.algorithm: {path}:{line_of(path, '1 / 0')}: "
        "LastLive.choose(None) raised ZeroDivisionError: division by zero (test pool: picks on "
        "the pool b1..b4 (weights 1, 2, 3, 1))"]


def test_the_controller_sends_every_connection_where_the_file_says_with_the_5_tuple(tmp_path):
    path = good_with(tmp_path)
    lab_ = lab("l4", algorithm={"file": str(path), "class": "LastLive"})
    seen = {served_by_host(lab_.send("h1", lab_.tcp("h1", VIP, 40000 + i))) for i in range(6)}
    assert seen == {BACKENDS[-1]}
    ss = lab_.core.services[0]
    assert ss.balancer.impl.keys[0] == (6, lab_.nodes["h1"]["ip"], 40000, VIP, 80)
    # l4 counts the connection in flight until its flow is removed (on_open at the pick)
    assert ss.balancer.in_flight()[BACKENDS[-1]] == 6
    lab_.core.set_weight("web", BACKENDS[-1], 0)
    assert served_by_host(lab_.send("h1", lab_.tcp("h1", VIP, 41000))) == BACKENDS[-2]


def test_the_proxy_gives_it_in_flight_counts_and_the_group_hash_key(tmp_path):
    good_with(tmp_path)
    cfg = parse_l7_config(l7({"file": "my_lb.py", "class": "LastLive"},
                             hash_key={"type": "client_ip"}), str(tmp_path / "p.yaml"))
    group = Runtime(cfg).groups["default"]
    assert (group.tracks_in_flight, group.hash_type) == (True, "client_ip")
    assert group.choose("10.0.0.9").name == "b"
    assert check_support("haproxy", cfg) == [
        f"the balancer from a file {tmp_path}/my_lb.py:LastLive in group 'default' (Python "
        "balancers run in the builtin proxy only)"]


# -- lab 8's harness ----------------------------------------------------------------------------

def harness(file, cls):
    env = dict(os.environ, LB_FILE=str(file), LB_CLASS=cls)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(TEMPLATE / "test_my_balancer.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    failed = sorted({line.split("::")[1].split(" ")[0].split("[")[0]
                     for line in out.stdout.splitlines() if line.startswith("FAILED ")})
    return out.returncode, failed, out.stdout


def test_the_template_passes_its_harness():
    code, failed, out = harness(TEMPLATE / "my_balancer.py", "MyBalancer")
    assert (code, failed) == (0, []), out
    assert "5 passed, 1 skipped" in out  # the keys property is for keyed balancers


@pytest.mark.parametrize("cls, fails", [
    ("IgnoresDrain", ["test_lblab_accepts_it", "test_never_a_drained_or_down_backend",
                      "test_weighted_shares"]),
    ("Unweighted", ["test_weighted_shares"]),
    ("ModuloHash", ["test_keys_stay_on_their_backend_when_another_leaves"]),
    ("Maglev", []),
])
def test_the_harness_fails_a_wrong_balancer_on_its_property(cls, fails):
    code, failed, out = harness(WRONG, cls)
    assert failed == fails, out
    assert code == (1 if fails else 0), out


# -- the proxy, over loopback -------------------------------------------------------------------

def test_the_proxy_follows_it_and_answers_500_naming_the_line_when_it_fails(
        tmp_path, capfd, backends, proxy):
    path = good_with(tmp_path, replace=(
        "        self.keys.append(key)\n",
        "        self.keys.append(key)\n        if key == b'/boom':\n"
        "            raise RuntimeError('boom')\n"))
    bs = backends("b1", "b2")
    p = proxy(config(bs, algorithm={"file": str(path), "class": "LastLive"}))
    client = Client(p.port)
    try:
        assert [served_by(client.get("/")) for _ in range(3)] == ["b2"] * 3
        status, _, body = client.get("/boom")
        line = f"{path}:{line_of(path, 'RuntimeError')}: LastLive.choose(b'/boom') raised " \
               "RuntimeError: boom"
        assert status == 500 and line.encode() in body
        assert served_by(client.get("/")) == "b2"  # the next request is served as before
    finally:
        client.close()
    assert f"lblab proxy: {line}" in capfd.readouterr().err
    assert p.stats()["groups"]["default"]["balancer"]["b2"]["chosen"] == 4
