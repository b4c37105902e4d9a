"""Malformed files at the loader level, through every command that reads one."""
import pytest

from tests.unit.malformed.table import case, check, run

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join('*' + chr(97 + i) for _ in range(10))}]\n"
    for i in range(8))
COMMANDS = ("validate", "proxy", "controller", "engine-haproxy")
KINDS = [
    ("utf16", "a: 1\n".encode("utf-16"), "UTF-16", None),
    ("latin1", b"name: caf\xe9\n", "not UTF-8", 1),
    ("nul", b"name: a\x00b\n", "NUL byte", 1),
    ("control_char", b"name: a\x07b\n", "not allowed in YAML", 1),
    ("deep_500", "a: " + "[" * 500 + "]" * 500 + "\n", "nested", None),
    ("deep_10000", "a: " + "[" * 10000 + "]" * 10000 + "\n", "nested", None),
    ("recursive_alias", "a: &r [*r]\n", "nested deeper", 1),
    ("alias_bomb", BOMB, "an alias bomb", None),
    ("duplicate_key", "a: 1\nb: 2\na: 3\n", "duplicate key 'a'", 3),
    ("syntax", "a: [1,\n", "not valid YAML", 2),
]
CASES = [case(f"{kind}-{cmd}", content, expected, line, command=cmd)
         for cmd in COMMANDS for kind, content, expected, line in KINDS]


@pytest.fixture(scope="module")
def results():
    return run(CASES, "validate")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case_", CASES, ids=[c["id"] for c in CASES])
def test_malformed_file(results, case_):
    check(case_, results[case_["id"]])
