"""Where a spec problem is and how it reads: one located line per problem, in document order.

Every line is ``file:line: key.path: message`` (``file (--set key.path): ...`` for a value set
on the command line). pydantic's errors are worded by ``lblab_core.config.describe_error``;
this module adds what a spec needs on top: tagged unions (a balancer's ``layer``, a workload's
``type``) named as their key, the owner model of an unknown key inside a union (for "did you
mean" and "applies to layer: l7 only"), list lengths said as counts, and values too large to
print.
"""
import types
import typing
from typing import Annotated

import pydantic
from pydantic import Discriminator, Tag

from lblab_core import config as C
from lblab_core.errors import InputError
from lblab_core.loader import format_path

MAX_SHOWN_BITS = 64


class SpecError(InputError, ValueError):
    """An invalid spec; ``errors`` holds every problem found, one line each."""


def shown(value):
    """repr() of a value for a message: short, and safe for integers of thousands of digits."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > MAX_SHOWN_BITS:
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _BigInt(int):
    """An integer too large to print (Python refuses str() past 4300 digits): named by size."""

    def __repr__(self):
        return f"a {self.bit_length()}-bit integer"


def _printable(value):
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > MAX_SHOWN_BITS:
        return _BigInt(value)
    return value


class Locator:
    """Turns key paths into ``file:line`` (or ``file (--set path)``) and problems into lines.

    Args:
        source (str): the file name.
        lines (dict|None): key path -> line, from ``lblab_core.loader.compose``.
        overridden (iterable[tuple]): key paths set by ``--set``.
    """

    def __init__(self, source, lines=None, overridden=()):
        self.source = source
        self.lines = lines or {}
        self.overridden = set(overridden)
        self.problems = []

    def where(self, path):
        """Return ``(line or 0, "file:line")`` of the deepest located prefix of ``path``."""
        for i in range(len(path), -1, -1):
            if path[:i] in self.overridden:
                return 0, f"{self.source} (--set {format_path(path[:i])})"
            if path[:i] in self.lines:
                return self.lines[path[:i]], f"{self.source}:{self.lines[path[:i]]}"
        return 0, self.source

    def fail(self, path, message):
        """Record a problem at key path ``path``."""
        line, where = self.where(tuple(path))
        self.problems.append((line, where, f"{format_path(tuple(path))}: {message}"))

    def add_pydantic(self, model, exc):
        """Record every error of a pydantic ValidationError raised by ``model``."""
        for err in exc.errors(include_url=False):
            self._add_one(model, err)

    def errors(self):
        """Return the problems in document order (a stable sort by line)."""
        return [f"{where}: {body}" if where else body
                for _, where, body in sorted(self.problems, key=lambda p: p[0])]

    def bodies(self):
        """Return the problems as ``key.path: message``, without where they are."""
        return [body for _, _, body in sorted(self.problems, key=lambda p: p[0])]

    def _add_one(self, model, err):
        err = dict(err)
        if err["type"] == "too_short" and isinstance(err.get("input"), (list, tuple)) \
                and len(err["input"]) >= (err.get("ctx") or {}).get("min_length", 0):
            return  # pydantic counts only the items that validated: the items' errors say it
        if err["type"] in ("too_short", "too_long"):
            bound = err["ctx"]["min_length" if err["type"] == "too_short" else "max_length"]
            err = {"type": "value_error", "loc": err["loc"], "msg": "", "ctx": {"error": (
                f"expected at {'least' if err['type'] == 'too_short' else 'most'} {bound} "
                f"item{'s' if bound != 1 else ''}, got {len(err['input'])}")}}
        if "input" in err:
            err["input"] = _printable(err["input"])
        if err.get("ctx"):  # a float field's bounds: 65535, not 65535.0
            err["ctx"] = {k: int(v) if isinstance(v, float) and v.is_integer() else v
                          for k, v in err["ctx"].items()}
        if err["type"] == "invalid_key":  # a model's key that is not a string (`1: x`)
            err["type"] = "extra_forbidden"
        path, owner, annotation, union = _walk(model, err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            err, path = _tag_error(err, path, annotation)
        elif err["type"] == "extra_forbidden" and union is not None and path:
            err = _sibling_key(err, path[-1], owner, union)
        err["loc"] = path[-1:]
        _, message = C.describe_error(owner if err["type"] == "extra_forbidden" else model, err)
        line, where = self.where(path)
        self.problems.append((line, where, f"{format_path(path)}: {message}"))


def _tag_error(err, path, annotation):
    """A tagged union's error becomes one about its key (``layer``, ``type``)."""
    field, tags = _discriminator(annotation)
    value = err.get("input")
    if not isinstance(value, dict) or field is None:
        return {"type": "model_type", "loc": (), "msg": "", "input": value}, path
    if field not in value:
        return {"type": "value_error", "loc": (), "msg": "",
                "ctx": {"error": f"is required: one of {', '.join(tags)}"}}, path + (field,)
    return {"type": "one_of", "loc": (), "msg": "", "input": _printable(value[field]),
            "ctx": {"expected": ", ".join(tags), "choices": tuple(tags)}}, path + (field,)


def _sibling_key(err, key, owner, union):
    """An unknown key that another member of the union takes: say which (``layer: l7 only``)."""
    field, tag, tags = union
    others = [t for t, m in tags.items() if t != tag and key in m.model_fields]
    if tags.get(tag) is not owner or not others:
        return err
    return {"type": "value_error", "loc": err["loc"], "msg": "",
            "ctx": {"error": f"{key!r} applies to {field}: {' or '.join(others)} only; "
                             f"expected one of {', '.join(owner.model_fields)}"}}


def _walk(model, loc):
    """Return ``(key path, model owning its last key, annotation at it, union)`` for an error
    location; ``union`` is ``(key, tag, {tag: model})`` of the last tagged union passed.

    A tagged union puts its tag into the location (``balancers.0.l4.engine``): the tag picks
    the model and is left out of the key path.
    """
    path, owner, annotation, union = [], model, model, None
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue  # a validator's name; a mapping key's own error (the key is in the path)
        outer = annotation
        annotation, tags = _unwrap(annotation)
        if tags and part in tags:
            union = (_discriminator(outer)[0], part, tags)
            annotation = tags[part]
            continue
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            owner = annotation
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = field.rebuild_annotation() if field is not None else None
        elif typing.get_origin(annotation) in (tuple, list):
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            annotation = None
        path.append(part)
    return tuple(path), owner, annotation, union


def _unwrap(annotation):
    """Strip ``Annotated`` and ``| None``; return ``(annotation, {tag: model} or None)``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            tags = {}
            for member in members:
                for meta in getattr(member, "__metadata__", ()):
                    if isinstance(meta, Tag):
                        tags[meta.tag] = typing.get_args(member)[0]
            if tags:
                return annotation, tags
            if len(members) != 1:
                return annotation, None
            annotation = members[0]
        else:
            return annotation, None


def _discriminator(annotation):
    """Return ``(key, tags)`` of the tagged union ``annotation`` (or ``(None, ())``)."""
    current = annotation
    while current is not None:
        for meta in getattr(current, "__metadata__", ()):
            if isinstance(meta, Discriminator) and hasattr(meta.discriminator, "field"):
                _, tags = _unwrap(current)
                return meta.discriminator.field, tuple(tags or ())
        args = typing.get_args(current)
        current = args[0] if typing.get_origin(current) is Annotated and args else None
    return None, ()
