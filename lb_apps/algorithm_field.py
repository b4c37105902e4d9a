"""The ``algorithm`` field of the spec, the controller config and the L7 config (pure).

It takes a builtin algorithm's name, or a balancer from a file written as a mapping
``{file: my_lb.py, class: MyBalancer}`` or as the string ``file:my_lb.py:MyBalancer`` (what
``--set`` can give). Either form of a file becomes the string ``file:PATH:CLASS`` (the path as
written; :func:`lb_apps.custom_balancer.resolve` makes it absolute against the config's folder).
Whether the file loads and behaves is checked by :func:`lb_apps.custom_balancer.check_file`,
called by each input's parser once its shape is right.
"""
from typing import Annotated, Union

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from lb_apps import custom_balancer as cb
from lblab_core.config import Model, did_you_mean

FILE_KEYS = ("file", "class")
FILE_FORM = "{file: PATH, class: NAME}"
CLASS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
FILE_PATTERN = r"^file:[^\x00-\x1f\x7f]+:[A-Za-z_][A-Za-z0-9_]*$"


class BalancerFile(Model):
    """A balancer from a file: a Python file and the balancer class in it."""
    file: Annotated[str, Field(min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$",
                               description="a Python file: relative to the config's (or the "
                                           "spec's) folder, or absolute")]
    class_: Annotated[str, Field(alias="class", pattern=CLASS_PATTERN,
                                 description="the balancer class in it")]


def file_form(value):
    """A mapping or a ``file:`` string -> ``file:PATH:CLASS``; anything else unchanged."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in FILE_KEYS]
        if unknown:
            key = unknown[0]
            _fail(f"unknown key {key!r}; expected file and class (a balancer from a file)"
                  f"{did_you_mean(key, FILE_KEYS)}")
        missing = [k for k in FILE_KEYS if k not in value]
        if missing:
            _fail(f"a balancer from a file needs {' and '.join(missing)}: {FILE_FORM}")
        path, name = value["file"], value["class"]
    elif cb.is_file_algorithm(value):
        path, name = cb.split(value)
    else:
        return value
    wrong = cb.problem(path, name)
    if wrong:
        _fail(wrong)
    return cb.join(path, name)


def _fail(message):
    # "value_error" with the whole text: lblab_core.config.describe_error prints it as it is
    raise PydanticCustomError("value_error", "{error}", {"error": message})


def algorithm_type(choices):
    """A str type: one of ``choices`` (owned by another module) or a balancer from a file."""
    choices = tuple(choices)

    def check(value):
        if cb.is_file_algorithm(value) or value in choices:
            return value
        raise PydanticCustomError(
            "one_of", "unknown {value}; expected one of {expected}",
            {"value": repr(value), "expected": ", ".join(choices) + f", or {FILE_FORM}",
             "choices": choices})
    named = Annotated[str, WithJsonSchema({"type": "string", "enum": list(choices)})]
    shorthand = Annotated[str, WithJsonSchema({
        "type": "string", "pattern": FILE_PATTERN,
        "description": "a balancer from a file: file:PATH:CLASS"})]
    return Annotated[str, BeforeValidator(file_form, json_schema_input_type=Union[
        named, shorthand, BalancerFile]), AfterValidator(check)]
