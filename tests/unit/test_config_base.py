"""lblab_core.config: strict models and lblab's one-line messages (pure)."""
from typing import Annotated, Literal

import pytest

from lblab_core import config as C
from lblab_core import loader
from lblab_core.errors import InputError


class Backend(C.Model):
    name: C.Name
    weight: Annotated[int, C.Field(ge=0, le=65535)] = 1


class Lab(C.Model):
    algorithm: Annotated[str, C.one_of(("round_robin", "least_connections"))] = "round_robin"
    backends: C.TupleOf(Backend) = ()
    groups: dict[str, Backend] = {}
    realm: C.HeaderValue = "lab"
    cookie: C.Token = "s"
    health_path: C.UrlPath = "/health"
    rate: C.PosFloat = 1.0
    seed: C.Seed = 1
    enabled: bool = False
    mode: Literal["open", "closed"] = "open"


def _errors(text):
    data, lines = loader.compose(text, "t.yaml")
    with pytest.raises(InputError) as info:
        C.validate(Lab, data, "t.yaml", lines)
    return info.value.errors


def test_valid_input_becomes_a_frozen_model_with_tuples():
    lab = C.validate(Lab, loader.compose("backends: [{name: a}, {name: b, weight: 3}]\n")[0], "x")
    assert lab.backends == (Backend(name="a"), Backend(name="b", weight=3))
    with pytest.raises(Exception):
        lab.rate = 2.0


def test_every_error_at_once_in_document_order_with_lines():
    errs = _errors("algorithm: leastconn\nbackends:\n  - {name: b, wieght: 2}\n"
                   "groups:\n  x: {name: c, weigth: 3}\nmode: clsoed\nextra: 1\n")
    assert errs == [
        "t.yaml:1: algorithm: 'leastconn': expected one of round_robin, least_connections; "
        "did you mean least_connections?",
        "t.yaml:3: backends[0].wieght: unknown key 'wieght'; expected one of name, weight; "
        "did you mean weight?",
        "t.yaml:5: groups.x.weigth: unknown key 'weigth'; expected one of name, weight; "
        "did you mean weight?",
        "t.yaml:6: mode: 'clsoed': expected one of open, closed; did you mean closed?",
        "t.yaml:7: extra: unknown key 'extra'; expected one of algorithm, backends, groups, "
        "realm, cookie, health_path, rate, seed, enabled, mode",
    ]


@pytest.mark.parametrize("text, expected", [
    ("enabled: 1\n", "enabled: 1: expected true or false"),
    ("seed: '8'\n", "seed: '8': expected an integer"),
    ("seed: true\n", "seed: true: expected an integer"),
    ("seed: 1099511627776\n", "seed: 1099511627776: expected a number <= 4294967295"),
    ("rate: .inf\n", "rate: .inf: expected a finite number"),
    ("rate: .nan\n", "rate: .nan: expected a finite number"),
    ("rate: 0\n", "rate: 0: expected a number > 0"),
    ("backends: [{name: a, weight: 1000000}]\n", "expected a number <= 65535"),
    ('backends: [{name: "a\\n"}]\n', "expected a name"),
    ('realm: "x\\r\\nSet-Cookie: a=1"\n', "expected a header value"),
    ('cookie: "a b"\n', "expected a token"),
    ('health_path: "/h\\r\\nGET /x HTTP/1.1"\n', "expected a path"),
    ('health_path: "/h\\n"\n', "expected a path"),
    ("backends: {name: a}\n", "backends: a mapping: expected a list"),
])
def test_types_ranges_and_grammars(text, expected):
    (err,) = _errors(text)
    assert err.startswith("t.yaml:1: ") and expected in err and "\n" not in err
