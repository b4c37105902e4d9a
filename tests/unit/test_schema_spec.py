"""schemas/spec.schema.json is what the spec's models produce now, says what they check (closed
mappings, the owners' choices, the consumers' ranges, anchored grammars), accepts every shipped
spec and refuses what the models refuse; the shipped specs point VS Code at it."""
import io
import json
import math
import pathlib
import re
import subprocess
import sys
from contextlib import redirect_stdout

import pytest

from controllers.config import MAX_WEIGHT, MODES
from experiments import spec as S
from experiments import validate_cmd
from lb_apps.backend import model as backend_model
from lb_apps.loadgen import workload as workload
from lb_apps.balancing import ALGORITHMS
from lblab_core import loader
from topologies import graphs
from tests.conftest import walk_json

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "spec.schema.json"
REGENERATE = "lblab validate --schema > schemas/spec.schema.json"
SHIPPED = sorted((ROOT / "experiments" / "specs").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../../schemas/spec.schema.json"


def _schema():
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# -- a small JSON Schema checker: the keywords the spec's schema uses --------------------------

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _search(pattern, text):
    """ECMA's ``$`` (no multiline) matches only at the very end; Python's before a newline too."""
    return re.search(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern, text)


def _is(value, kind):
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def conforms(value, node, root):
    """True when ``value`` is valid against schema ``node`` (a subset of draft 2020-12)."""
    if "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        if not conforms(value, target, root):
            return False
    kinds = node.get("type")
    if kinds is not None and not any(_is(value, k) for k in
                                     (kinds if isinstance(kinds, list) else [kinds])):
        return False
    if "const" in node and value != node["const"]:
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return False
        if "minimum" in node and value < node["minimum"]:
            return False
        if "maximum" in node and value > node["maximum"]:
            return False
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            return False
    if isinstance(value, str):
        if "pattern" in node and not _search(node["pattern"], value):
            return False
        if len(value) > node.get("maxLength", math.inf) or len(value) < node.get("minLength", 0):
            return False
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            return False
        if "items" in node and not all(conforms(v, node["items"], root) for v in value):
            return False
    if isinstance(value, dict) and not _object(value, node, root):
        return False
    if "anyOf" in node and not any(conforms(value, n, root) for n in node["anyOf"]):
        return False
    if "oneOf" in node and sum(conforms(value, n, root) for n in node["oneOf"]) != 1:
        return False
    for sub in node.get("allOf", ()):
        if "if" in sub:
            if conforms(value, sub["if"], root) and not conforms(value, sub["then"], root):
                return False
        elif not conforms(value, sub, root):
            return False
    return True


def _object(value, node, root):
    props = node.get("properties", {})
    if any(k not in value for k in node.get("required", ())):
        return False
    for key, item in value.items():
        if key in props:
            if not conforms(item, props[key], root):
                return False
            continue
        patterned = [n for p, n in node.get("patternProperties", {}).items()
                     if _search(p, key)]
        if patterned:
            if not all(conforms(item, n, root) for n in patterned):
                return False
        elif node.get("additionalProperties", True) is False:
            return False
    return True


# -- the file is the models' schema ------------------------------------------------------------

def test_checked_in_schema_is_what_the_models_produce():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == S.schema_text(), (
        f"schemas/spec.schema.json is stale; regenerate it with: {REGENERATE}")


def test_regeneration_commands_print_the_file():
    out = io.StringIO()
    with redirect_stdout(out):
        assert validate_cmd.main(["--schema"]) == 0
    assert out.getvalue() == SCHEMA_PATH.read_text(encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "experiments.spec", "--schema"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout == out.getvalue()
    bad = subprocess.run([sys.executable, "-m", "experiments.spec"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "usage:" in bad.stderr
    with pytest.raises(SystemExit) as info:
        validate_cmd.main(["--schema", "x.yaml"])
    assert info.value.code == 2


def test_schema_is_closed_and_names_the_top_level_keys():
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"  # VS Code's YAML
    assert schema["required"] == ["name", "topology", "backends", "balancers", "workload"]
    assert list(schema["properties"]) == list(S.Spec.model_fields)
    models = [n for n in walk_json(schema) if n.get("type") == "object" and "title" in n
              and "properties" in n]
    assert len(models) == len(schema["$defs"]) + 1
    assert all(n["additionalProperties"] is False for n in models)
    balancer = schema["properties"]["balancers"]
    assert balancer["minItems"] == 1 and len(balancer["items"]["oneOf"]) == 2


def test_schema_carries_the_owners_choices_and_the_consumers_ranges():
    schema = _schema()
    defs = schema["$defs"]
    # a builtin name, file:PATH:CLASS or {file, class} (a balancer from a file)
    assert defs["L7Balancer"]["properties"]["algorithm"]["anyOf"][0]["enum"] == list(ALGORITHMS)
    assert defs["L7Balancer"]["properties"]["algorithm"]["anyOf"][2] == {"$ref": "#/$defs/BalancerFile"}
    assert defs["L4Balancer"]["properties"]["mode"]["enum"] == list(MODES)
    assert defs["RequestKind"]["properties"]["method"]["enum"] == list(workload.HTTP_METHODS)
    assert "HEAD" in defs["RequestKind"]["properties"]["method"]["enum"]
    assert defs["ServiceTime"]["properties"]["dist"]["enum"] == list(backend_model.SERVICE_DISTS)
    assert defs["Topology"]["properties"]["name"]["enum"] == list(S.TOPOLOGIES)
    assert set(S.TOPOLOGIES) == set(graphs.GENERATORS)
    assert schema["properties"]["seed"]["maximum"] == 2 ** 32 - 1
    assert defs["Backend"]["properties"]["weight"]["maximum"] == MAX_WEIGHT
    assert defs["Fault"]["properties"]["value"]["anyOf"][0]["maximum"] == MAX_WEIGHT
    rate = defs["HttpWorkload"]["properties"]["rate"]["anyOf"][0]
    assert rate["maximum"] == workload.MAX_RATE_PER_SEC
    hints = {rule["if"]["properties"]["name"]["const"]:
             rule["then"]["properties"]["params"]["properties"]
             for rule in defs["Topology"]["allOf"]}
    assert {name: list(props) for name, props in hints.items()} == {
        name: list(graphs.generator_params(name)) for name in S.TOPOLOGIES}
    patterns = [n["pattern"] for n in walk_json(schema) if isinstance(n.get("pattern"), str)]
    assert len(patterns) >= 5
    for pattern in patterns:  # every pattern is anchored and refuses a CR/LF injection
        assert pattern.startswith("^") and pattern.endswith("$")
        assert re.fullmatch(pattern[1:-1], "x\r\nInjected: 1") is None, pattern


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_spec_conforms_and_points_vs_code_at_the_schema(path):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == MODELINE
    assert (path.parent / MODELINE.split("$schema=")[1]).resolve() == SCHEMA_PATH
    data, _ = loader.compose(text, path.name)
    assert conforms(data, _schema(), _schema())
    S.load_spec(path)


GOOD = {"name": "x", "topology": {"name": "lb_lab", "params": {"clients": 2}}, "backends": 2,
        "balancers": [{"name": "a", "layer": "l4", "mode": "group"},
                      {"name": "b", "layer": "l7", "l7": {"workers": 2}}],
        "workload": {"mix": [{"path": "/", "method": "HEAD"}]}}


@pytest.mark.parametrize("key, value", [
    ("seed", 2 ** 40), ("seed", True), ("seed", "8"), ("name", "x\n"), ("name", "a-b"),
    ("sead", 1), ("backends", 0), ("backends", [{"weight": 10 ** 6}]),
    ("backends", [{"weight": math.inf}]), ("duration_s", math.nan),
    ("balancers", [{"name": "a", "layer": "l4", "engine": "nginx"}]),
    ("balancers", [{"name": "a", "layer": "l3"}]), ("balancers", []),
    ("workload", {"mix": [{"path": "/x\r\nHost: y"}]}), ("workload", {"type": "iperf3",
                                                                      "users": 4}),
    ("workload", {"mix": [{"headers": {"X-A": "1\r\nB: 2"}}]}),
    ("topology", {"name": "tree", "params": {"depht": 3}}),
    ("faults", [{"at_s": 1, "action": "set_weight", "value": 10 ** 6}]),
])
def test_schema_refuses_what_the_models_refuse(key, value):
    schema = _schema()
    assert conforms(GOOD, schema, schema)
    assert S.parse_spec(GOOD)
    bad = dict(GOOD, **{key: value})
    assert not conforms(bad, schema, schema)
    with pytest.raises(S.SpecError):
        S.parse_spec(bad)
