"""lblab_core.loader: one YAML/JSON reader for every input, with lines, duplicates, merge keys
and bounds (pure; files only in tmp_path)."""
import pytest

from lblab_core import loader
from lblab_core.errors import InputError, UsageError


def _errors(text, source="in.yaml"):
    with pytest.raises(InputError) as info:
        loader.compose(text, source)
    return info.value.errors


def test_values_and_lines():
    value, lines = loader.compose("a: 1\nb:\n  - x\n  - {c: 2}\n")
    assert value == {"a": 1, "b": ["x", {"c": 2}]}
    assert lines[("a",)] == 1 and lines[("b",)] == 2 and lines[("b", 1, "c")] == 4


def test_empty_document_is_none():
    assert loader.compose("") == (None, {})
    assert loader.compose("# only a comment\n")[0] is None


def test_duplicate_keys_are_errors_with_both_lines():
    assert _errors("a: 1\nb: 2\na: 3\n") == ["in.yaml:3: a: duplicate key 'a' (first at line 1)"]


def test_merge_key_then_override_is_accepted():
    text = ("base: &b {algorithm: round_robin, weight: 1}\n"
            "x:\n  <<: *b\n  weight: 5\n"
            "y:\n  weight: 7\n  <<: *b\n"
            "z:\n  <<: [*b, {extra: 1, weight: 9}]\n")
    value, _ = loader.compose(text)
    assert value["x"] == {"algorithm": "round_robin", "weight": 5}
    assert value["y"] == {"algorithm": "round_robin", "weight": 7}
    assert value["z"] == {"algorithm": "round_robin", "weight": 1, "extra": 1}


def test_merge_of_a_scalar_is_an_error():
    assert "'<<' merges a mapping" in _errors("a: &s 3\nb:\n  <<: *s\n")[0]


def test_alias_bomb_is_bounded():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        text += f"{cur}: &{cur} [{', '.join('*' + prev for _ in range(10))}]\n"
    (err,) = _errors(text)
    assert f"more than {loader.MAX_VALUES} values" in err and err.startswith("in.yaml:")


def test_deep_nesting_and_recursive_aliases_are_one_line():
    assert "nested" in _errors("a: " + "[" * 100 + "]" * 100 + "\n")[0]
    assert "nested" in _errors("a: " + "[" * 5000 + "]" * 5000 + "\n")[0]
    assert "nested deeper" in _errors("a: &r [*r]\n")[0]


def test_non_scalar_keys_are_errors():
    assert "a key must be a plain scalar" in _errors("? [1, 2]\n: x\n")[0]
    assert "a key must be a plain scalar" in _errors("{? {a: 1} : x}\n")[0]


def test_syntax_error_names_line_and_kind():
    assert _errors("a: [1,\n", "c.yaml")[0].startswith("c.yaml:2: not valid YAML")
    assert _errors('{"a": [1,}', "c.json")[0].startswith("c.json:1: not valid JSON")


def test_json_is_read_by_the_same_loader(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"a": 1, "b": [true, null]}')
    assert loader.load(path)[0] == {"a": 1, "b": [True, None]}
    path.write_text('{"a": 1, "a": 2}')
    with pytest.raises(InputError, match="duplicate key 'a'"):
        loader.load(path)


@pytest.mark.parametrize("data, expected", [
    (b"a: 1\n\xff\xfe", "not UTF-8 text (byte 0xff at offset 5)"),
    ("a: 1\n".encode("utf-16"), "UTF-16"),
    (b"a: 1\nb: \x00\n", "in.yaml:2: a NUL byte at offset 8"),
    (b"a: \x07\n", "not allowed in YAML"),
])
def test_decoding_problems_are_one_line(tmp_path, data, expected):
    path = tmp_path / "in.yaml"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        loader.compose(loader.read(path), "in.yaml") if b"\x07" in data else loader.load(path)
    (err,) = info.value.errors
    assert expected in err and "\n" not in err
    assert isinstance(info.value, UsageError)


def test_utf8_bom_is_fine_and_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert loader.load(path)[0] == {"a": 1}
    with pytest.raises(InputError, match="cannot read the file"):
        loader.load(tmp_path / "missing.yaml")


def test_format_path():
    assert loader.format_path(("balancers", 2, "algorithm")) == "balancers[2].algorithm"
    assert loader.format_path(()) == "(top level)"
    assert loader.format_path(("a\nb", 0)) == "'a\\nb'[0]"


def test_an_integer_too_long_to_convert_is_one_line():
    (err,) = _errors("seed: " + "1" * 5000 + "\n")
    assert err.startswith("in.yaml:1: seed: 11111") and "5000 characters" in err
