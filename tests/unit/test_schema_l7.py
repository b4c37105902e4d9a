"""schemas/l7config.schema.json is what the L7 config's models produce now, and says what they
check: closed mappings, the required key, the grammars' patterns and the consumers' ranges."""
import json
import pathlib
import re
import subprocess
import sys

from lb_apps import l7config
from lb_apps import l7models
from tests.conftest import walk_json

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "l7config.schema.json"
REGENERATE = "python -m lb_apps.l7config --schema > schemas/l7config.schema.json"


def test_checked_in_schema_is_what_the_models_produce():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == l7config.schema_text(), (
        f"schemas/l7config.schema.json is stale; regenerate it with: {REGENERATE}")


def test_regeneration_command_prints_the_file():
    out = subprocess.run([sys.executable, "-m", "lb_apps.l7config", "--schema"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == SCHEMA_PATH.read_text(encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "lb_apps.l7config"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "usage:" in bad.stderr


def test_schema_is_closed_and_names_the_top_level_keys():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    assert schema["required"] == ["backends"]
    assert list(schema["properties"]) == list(l7models.L7Spec.model_fields)
    objects = [n for n in walk_json(schema) if n.get("type") == "object" and "properties" in n]
    assert len(objects) == len(schema["$defs"]) + 1
    assert all(n["additionalProperties"] is False for n in objects)
    assert schema["properties"]["groups"]["propertyNames"]["not"] == {"const": "default"}
    assert {"const": False} in schema["properties"]["health"]["anyOf"]


def test_schema_carries_the_consumers_ranges_and_grammars():
    defs = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["$defs"]
    weight = defs["Backend"]["properties"]["weight"]
    assert (weight["type"], weight["minimum"], weight["maximum"]) == ("integer", 0, 1000)
    connect = defs["Timeouts"]["properties"]["connect"]
    assert connect["exclusiveMinimum"] == 0 and connect["maximum"] == 86400
    assert defs["PassiveHealth"]["properties"]["max_fails"]["minimum"] == 1
    patterns = [n["pattern"] for n in walk_json(defs) if isinstance(n.get("pattern"), str)]
    assert len(patterns) >= 10
    for pattern in patterns:  # every pattern is anchored and refuses a CR/LF injection
        assert pattern.startswith("^") and pattern.endswith("$")
        assert re.fullmatch(pattern[1:-1], "x\r\nInjected: 1") is None, pattern
    realm = defs["Auth"]["properties"]["realm"]["pattern"]
    assert re.fullmatch(realm[1:-1], "lblab lab") and not re.fullmatch(realm[1:-1], 'a"b')
    assert defs["Match"]["properties"]["method"]["anyOf"][1]["minItems"] == 1
