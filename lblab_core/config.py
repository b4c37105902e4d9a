"""The typed-config layer: pydantic v2 models are the single source of truth for each input's
shape, and this module turns their errors into lblab's messages.

Every input (experiment spec, L7 config, controller config, backend and load-generator
settings) is a tree of :class:`Model` subclasses: strict (``1`` is not ``true``, ``"8"`` is not
8), closed (unknown keys are errors), frozen. Strings that reach a header, a command line or a
rendered config use the grammar types below, numbers carry the ranges of the consumer that uses
them, so a value is refused where it is read, not where it breaks.

:func:`validate` runs a model and reports every problem at once, one line each, as::

    spec.yaml:12: balancers[2].algorithm: 'leastconn': expected one of round_robin, ...;
    did you mean least_connections?

with the line taken from :mod:`lblab_core.loader`'s key-path map.
"""
import difflib
import math
import typing
from typing import Annotated, NamedTuple, Optional

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from lblab_core.errors import InputError
from lblab_core.loader import format_path

# -- grammars of strings that reach the wire, a command line or a rendered config -------------
# RFC 9110 5.6.2 token: header names, cookie names, auth schemes, methods.
TOKEN_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
# RFC 9110 5.5 field value without obs-text: visible ASCII, space and tab, no CR/LF/NUL.
HEADER_VALUE_PATTERN = r"^[\x20-\x7e\t]*$"
# An origin-form path (RFC 9112 3.2.1): visible ASCII, no spaces or controls.
URL_PATH_PATTERN = r"^/[\x21-\x7e]*$"
# A name of a lab object (backend, group, balancer, service): also a file and host name part.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,47}$"
# pydantic's patterns run on Rust's regex crate, where `$` matches only at the very end (Python's
# re also matched before a final newline, which let "name\n" through).

Token = Annotated[str, Field(pattern=TOKEN_PATTERN, max_length=256)]
HeaderValue = Annotated[str, Field(pattern=HEADER_VALUE_PATTERN, max_length=4096)]
UrlPath = Annotated[str, Field(pattern=URL_PATH_PATTERN, max_length=2048)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]
PortOrAny = Annotated[int, Field(ge=0, le=65535)]  # 0: the kernel picks one
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # os-ken's and the controller's seeds are 32-bit
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _as_tuple(value):
    return tuple(value) if isinstance(value, list) else value


def TupleOf(item):  # noqa: N802 - reads as a type
    """A sequence field: YAML's list, stored as a tuple (strict mode accepts no list otherwise).

    Args:
        item: the item type.
    Returns:
        An annotated ``tuple[item, ...]`` type.
    """
    return Annotated[tuple[item, ...], BeforeValidator(_as_tuple)]


class Model(pydantic.BaseModel):
    """Base of every input model: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True,
                              validate_default=False, hide_input_in_errors=True)


def one_of(choices):
    """Return an AfterValidator that accepts only ``choices`` (a str field with "did you mean").

    A ``Literal`` does the same for fixed sets; this is for sets owned by another module
    (algorithms, modes), so that module stays the one owner of the constant.
    """
    choices = tuple(choices)

    def check(value):
        if value not in choices:
            raise PydanticCustomError(
                "one_of", "unknown {value}; expected one of {expected}",
                {"value": repr(value), "expected": ", ".join(choices), "choices": choices})
        return value
    return AfterValidator(check)


# -- errors -----------------------------------------------------------------------------------

_TYPE_NAMES = {"int_type": "an integer", "int_parsing": "an integer", "bool_type": "true or false",
               "string_type": "a string", "float_type": "a number", "dict_type": "a mapping",
               "tuple_type": "a list", "list_type": "a list", "model_type": "a mapping",
               "model_attributes_type": "a mapping", "none_required": "null",
               "int_from_float": "an integer", "finite_number": "a finite number"}


def _show(value):
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, (int, float)):
        return repr(value)
    return type(value).__name__.replace("dict", "a mapping").replace("list", "a list") \
        .replace("tuple", "a list")


def did_you_mean(value, choices):
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _model_at(model, loc):
    """Return the model class that owns the key at ``loc`` (for unknown-key suggestions)."""
    current, container = model, None
    for part in loc[:-1]:
        if current is not None and isinstance(part, str) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
            if _is_container(annotation):
                current, container = None, annotation
            else:
                current, container = _inner_model(annotation), None
        elif container is not None:  # a sequence index or a mapping key
            current, container = _inner_model(container), None
        else:
            return None
    return current


def _is_container(annotation):
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) in (tuple, list, dict):
            return True
        if typing.get_origin(arg) is Annotated and _is_container(typing.get_args(arg)[0]):
            return True
    return False


def _inner_model(annotation):
    """The BaseModel inside ``X``, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]`` (or None)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def describe_error(model, err):
    """One pydantic error (an item of ``exc.errors()``) -> (key path, message).

    The message is lblab's (``'x': expected ...; did you mean ...``); the key path is
    pydantic's location without its function markers (a mapping key's own error keeps
    pydantic's ``[key]`` marker).
    """
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        owner = _model_at(model, loc)
        known = list(owner.model_fields) if owner is not None else []
        key = loc[-1] if loc else "?"
        expected = f"; expected one of {', '.join(known)}" if known else ""
        return loc, f"unknown key {key!r}{expected}{did_you_mean(key, known)}"
    if kind == "missing":
        return loc, "is required"
    if kind == "one_of":
        return loc, (f"{_show(value)}: expected one of {ctx['expected']}"
                     f"{did_you_mean(value, ctx['choices'])}")
    if kind == "literal_error":
        choices = [c.strip().strip("'") for c in ctx.get("expected", "").replace(" or ", ", ")
                   .split(",")]
        return loc, (f"{_show(value)}: expected one of {', '.join(choices)}"
                     f"{did_you_mean(value, choices)}")
    if kind in _TYPE_NAMES:
        return loc, f"{_show(value)}: expected {_TYPE_NAMES[kind]}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
                "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return loc, f"{_show(value)}: expected a number {sign} {bound}"
    if kind == "string_pattern_mismatch":
        return loc, f"{_show(value)}: {_PATTERN_NAMES.get(ctx.get('pattern'), 'invalid text')}"
    if kind in ("string_too_long", "too_long"):
        return loc, f"{_show(value)}: too long (at most {ctx.get('max_length')})"
    if kind in ("string_too_short", "too_short"):
        return loc, f"{_show(value)}: too short (at least {ctx.get('min_length')})"
    if kind == "value_error":
        return loc, str(ctx.get("error", err["msg"]))
    if kind == "union_tag_invalid":
        return loc, f"{_show(ctx.get('tag'))}: expected one of {ctx.get('expected_tags')}"
    return loc, f"{_show(value)}: {err['msg']}" if value is not None else err["msg"]


_PATTERN_NAMES = {
    TOKEN_PATTERN: "expected a token (letters, digits and !#$%&'*+-.^_`|~; no spaces, no CR/LF)",
    HEADER_VALUE_PATTERN: "expected a header value (printable ASCII; no CR, LF or NUL)",
    URL_PATH_PATTERN: "expected a path starting with '/' (printable ASCII, no spaces or CR/LF)",
    NAME_PATTERN: "expected a name: 1-48 letters, digits, '_', '.', '-', starting with a "
                  "letter or digit",
}


# -- located problems: what every input's checker reports ---------------------------------------

class Problem(NamedTuple):
    """One located problem of an input: its line (or None), pydantic's location, the printed
    key path and the message (``'x': expected ...``)."""
    line: Optional[int]
    loc: tuple
    path: str
    message: str


def _printable(part):
    return repr(part) if isinstance(part, str) and not part.isprintable() else part


def _line_of(lines, loc):
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc)


def input_problems(model, exc, lines=None, prefix=()):
    """Turn a pydantic ValidationError into :class:`Problem` s, in document order.

    Messages come from ``lblab_core.config``; a key that is not a string or breaks its
    grammar is reported at its mapping as ``key 1: expected a string``, and every key in a
    path is printable (``services.'web\\n'``), so each problem stays one line.

    Args:
        model (type[lblab_core.config.Model]): the validated model (for "did you mean").
        exc (pydantic.ValidationError): the error.
        lines (dict[tuple, int]|None): key path -> line, from ``lblab_core.loader``.
        prefix (tuple): the key path of the validated value in its file.
    Returns:
        list[Problem]: one per pydantic error, sorted by line.
    """
    found, bad_keys = [], set()
    for err in exc.errors(include_url=False):
        loc, message = describe_error(model, err)
        loc = tuple(prefix) + tuple(loc)
        at, shown, key = loc, loc, True
        if err["type"] == "invalid_key":
            message = f"key {_show(err['input'])}: expected a string"
            shown = loc[:-1]
        elif "[key]" in loc:
            i = loc.index("[key]")
            at, shown, message = loc[:i], loc[:i - 1], "key " + message
        else:
            key = False
            value = err.get("input")
            shown_value = _show(value) + ": "
            if isinstance(value, (dict, list, tuple)) and err["type"] not in _TYPE_NAMES \
                    and message.startswith(shown_value):
                message = message[len(shown_value):]  # "a mapping" says nothing but its type
        if key:
            bad_keys.add(at)
        path = format_path(tuple(_printable(part) for part in shown))
        found.append((key, Problem(_line_of(lines or {}, at), loc, path, message)))
    # a bad key is one problem: what pydantic says about its value would repeat it
    out = [p for key, p in found
           if key or not any(p.loc[:len(k)] == k for k in bad_keys)]
    return sorted(out, key=lambda p: p.line or 0)


def format_problem(source, problem):
    """Return ``source[:line]: key.path: message`` (``key.path: message`` without a source; the
    message alone when the problem has no path: a line the loader already located)."""
    text = f"{problem.path}: {problem.message}" if problem.path else problem.message
    if not source:
        return text
    where = f"{source}:{problem.line}" if problem.line else source
    return f"{where}: {text}"


def validate_input(model, data, source, lines=None, flags=None):
    """Validate settings from a file (``data``) and command-line flags against ``model``.

    Flags override the file's keys; a problem with a flag's value is reported as
    ``--flag-name: message``, one in the file as ``source:line: key: message``.

    Args:
        model (type[lblab_core.config.Model]): the settings' model.
        data: the parsed file (None: empty), or a plain dict.
        source (str): the file's name (or what the dict came from).
        lines (dict[tuple, int]|None): key path -> line.
        flags (dict|None): setting name -> value given on the command line.
    Returns:
        the validated model.
    Raises:
        InputError: every problem, one line each.
    """
    data = {} if data is None else data
    flags = flags or {}
    if flags and isinstance(data, dict):
        data = {**data, **flags}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = input_problems(model, exc, lines)
    raise InputError([f"--{p.loc[0].replace('_', '-')}: {p.message}"
                      if p.loc and p.loc[0] in flags else format_problem(source, p)
                      for p in problems])


def errors_of(model, exc, source, lines=None, prefix=()):
    """Format a ValidationError as lblab's one-line messages.

    Args:
        model (type[Model]): the model that was validated (for unknown-key suggestions).
        exc (pydantic.ValidationError): the error.
        source (str): the file name (or ``--set``, ``command line``).
        lines (dict[tuple, int]|None): key path -> line, from :func:`lblab_core.loader.compose`.
        prefix (tuple): the key path of the validated mapping inside its file.
    Returns:
        list[str]: ``source[:line]: key.path: message`` per problem, in document order.
    """
    return [format_problem(source, p) for p in input_problems(model, exc, lines, prefix)]


def validate(model, data, source, lines=None, prefix=()):
    """Validate ``data`` against ``model``; raise every problem at once.

    Args:
        model (type[Model]): the input's model.
        data: the parsed file (plain dicts, lists and scalars).
        source (str): where the data came from, for errors.
        lines (dict[tuple, int]|None): key path -> line (see :func:`errors_of`).
        prefix (tuple): key path of ``data`` within its file.
    Returns:
        Model: the validated, frozen object.
    Raises:
        InputError: one line per problem.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise InputError(errors_of(model, exc, source, lines, prefix)) from None
