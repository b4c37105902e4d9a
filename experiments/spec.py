"""Experiment specs: one YAML file -> typed, frozen, validated objects (pure; reads only the file).

The spec's shape is the pydantic models of :mod:`experiments.spec_models` (also its JSON
Schema, ``schemas/spec.schema.json``); the rules that relate fields are in
:mod:`experiments.spec_checks`; ``--set`` overrides in :mod:`experiments.overrides`. Every error
names the file, the line, the key path, the value and what was expected, with a "did you mean"
when a close name exists, e.g.::

    quick.yaml:12: balancers[2].algorithm: 'leastconn': expected one of round_robin, ...;
    did you mean least_connections?

All errors of a spec are collected and raised together as one :class:`SpecError` before
anything starts. ``python -m experiments.spec --schema`` (or ``lblab validate --schema``) prints
the JSON Schema.
"""
import copy
import json
import re
import sys

import pydantic
from pydantic import create_model

from experiments import spec_checks
from experiments.overrides import apply_overrides, parse_set_path, set_path  # noqa: F401
from experiments.spec_checks import BAD, Parts, resolve_l7  # noqa: F401
from experiments.spec_errors import Locator, SpecError, shown  # noqa: F401
from experiments.spec_models import (  # noqa: F401
    ARRIVALS, BACKEND_FAULTS, BALANCER_KEYS, FAULT_ACTIONS, HTTP_METHODS, HTTP_MODES,
    IPERF_ALGORITHMS, IPERF_MODES, IPERF_PROTOCOLS, L4_ALGORITHMS, L4_MODES, L7_ENGINES, LAYERS,
    LINK_FAULTS, MAX_BACKENDS, MAX_BALANCERS, MAX_FAULTS, MAX_RESPONSE_BYTES, SERVICE_DISTS,
    TOPOLOGIES, WORKLOAD_TYPES, Backend, Balancer, Fault, HttpWorkload, IperfWorkload, L4Balancer,
    L7Balancer, RequestKind, ServiceTime, Spec, Sweep, Topology, _backends_input)
from lblab_core import config as C
from lblab_core import loader
from lblab_core.errors import InputError

SCHEMA_PATH = "schemas/spec.schema.json"
SCHEMA_ID = "https://lblab.invalid/schemas/spec.schema.json"
SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
UNSWEEPABLE = ("sweep", "name", "balancers")


def _one(name, annotation):
    """A model of one value typed like a spec part, to validate that part on its own."""
    return create_model(f"_One_{name}", __base__=C.Model, value=annotation)


_FIELDS = {name: _one(name, (info.annotation, info)) for name, info in Spec.model_fields.items()}
_MAX_ITEMS = {"backends": MAX_BACKENDS, "balancers": MAX_BALANCERS, "faults": MAX_FAULTS}
_ITEMS = {"backends": _one("backend", (Backend, ...)),
          "balancers": _one("balancer", (Balancer, ...)), "faults": _one("fault", (Fault, ...))}


def parse_spec(data, source="<spec>", lines=None, overridden=()):
    """Validate plain spec data (a dict from YAML) and build a :class:`Spec`.

    Args:
        data (dict): the parsed YAML.
        source (str): file name for messages.
        lines (dict|None): {key path tuple: line} from the YAML loader.
        overridden (iterable[tuple]): key paths set by ``--set`` (named in messages).
    Returns:
        Spec: the validated spec.
    Raises:
        SpecError: every problem found, each naming file, line, key path and what was expected.
    """
    return _parse(data, Locator(source, lines, overridden), sweep=True)


def _parse(data, loc, sweep):
    prepared = _prepare(data)
    spec = None
    try:
        spec = Spec.model_validate(prepared)
    except pydantic.ValidationError as exc:
        loc.add_pydantic(Spec, exc)
    if isinstance(prepared, dict):
        spec_checks.check(_salvage(prepared), loc)
        if sweep and not loc.problems and spec is not None and spec.sweep is not None:
            # Each sweep point is checked once the base spec is valid, so a problem is said once.
            _check_sweep(data, spec.sweep, loc)
    if loc.problems:
        raise SpecError(loc.errors())
    spec._source = loc.source  # private attributes: not part of the schema or of equality
    spec._data = copy.deepcopy(data)
    return spec


def _prepare(data):
    """lb_lab gets as many backend hosts as the spec has backends, unless its params say."""
    if not isinstance(data, dict):
        return data
    topology, backends = data.get("topology"), data.get("backends")
    if not (isinstance(topology, dict) and topology.get("name") == "lb_lab"):
        return data
    params = topology.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict) or "backends" in params:
        return data
    if isinstance(backends, int) and not isinstance(backends, bool) \
            and 1 <= backends <= MAX_BACKENDS:
        count = backends
    elif isinstance(backends, list) and backends:
        count = len(backends)
    else:
        return data
    return {**data, "topology": {**topology, "params": {**params, "backends": count}}}


def _salvage(data):
    """Validate each top-level part (and each backend, balancer, fault) on its own."""
    fields = {}
    for name, info in Spec.model_fields.items():
        if name in data:
            fields[name] = _value(_FIELDS[name], data[name])
        else:
            fields[name] = BAD if info.is_required() else info.default
    items = {}
    for name, one in _ITEMS.items():
        raw = data.get(name)
        if name == "backends":
            try:
                raw = list(_backends_input(raw))
            except ValueError:  # pydantic_core's errors are ValueErrors: reported already
                raw = None
        # a list over its bound is reported as such; its items are not checked one by one
        fits = isinstance(raw, list) and len(raw) <= _MAX_ITEMS[name]
        items[name] = tuple(_value(one, item) for item in raw) if fits else ()
    return Parts(fields, **items)


def _value(one, value):
    try:
        return one.model_validate({"value": value}).value
    except pydantic.ValidationError:
        return BAD


def _check_sweep(data, sweep, loc):
    path = ("sweep",)
    try:
        key = parse_set_path(sweep.param)
    except ValueError as exc:
        loc.fail(path + ("param",), str(exc))
        return
    if key[0] in UNSWEEPABLE:
        loc.fail(path + ("param",), f"cannot sweep {sweep.param!r}; balancers are already "
                                    f"compared, sweep a workload, backend or topology parameter")
        return
    if len({_identity(v) for v in sweep.values}) != len(sweep.values):
        loc.fail(path + ("values",), "values must be distinct")
        return
    for i, value in enumerate(sweep.values):
        try:
            point = set_path(data, key, value)
        except ValueError as exc:
            loc.fail(path + ("param",), str(exc))
            return
        point.pop("sweep")
        sub = Locator(loc.source)
        try:
            _parse(point, sub, sweep=False)
        except SpecError:
            for body in sub.bodies():
                loc.fail(path + ("values", i), f"with {sweep.param} = {shown(value)}: {body}")


def _identity(value):
    """A key that tells sweep values apart (1 and true are different values)."""
    try:
        hash(value)
        return type(value).__name__, value
    except TypeError:
        return "repr", repr(value)


def variant(spec, value):
    """Return the spec with its swept parameter set to ``value`` (and no sweep).

    Args:
        spec (Spec): a spec with a sweep.
        value: one of ``spec.sweep.values``.
    Returns:
        Spec: the spec for that sweep point.
    """
    data = set_path(spec.data, parse_set_path(spec.sweep.param), value)
    data.pop("sweep")
    return _parse(data, Locator(spec.source), sweep=False)


def loads_spec(text, source="<spec>", overrides=()):
    """Parse and validate spec text (YAML), applying ``--set`` overrides first.

    Raises:
        SpecError: invalid YAML, duplicate keys or an invalid spec (every problem, located).
    """
    try:
        data, lines = loader.compose(text, source)
    except InputError as exc:
        raise SpecError(exc.errors) from None
    data, touched = apply_overrides(data if data is not None else {}, overrides)
    return parse_spec(data, source, lines, touched)


def load_spec(path, overrides=()):
    """Read, parse and validate the spec file at ``path`` (see :func:`loads_spec`).

    Raises:
        SpecError: the file is unreadable or the spec invalid.
    """
    try:
        text = loader.read(path)
    except InputError as exc:
        raise SpecError(exc.errors) from None
    return loads_spec(text, str(path), overrides)


def configurations(spec):
    """Return the runs of a spec: ``(config_id, balancer, sweep_value, spec_for_point)``.

    ``config_id`` names the raw folder (``<balancer>`` or ``<balancer>-<param>=<value>``
    without characters that are unsafe in file names).
    """
    points = [(None, spec)] if spec.sweep is None else [(v, variant(spec, v))
                                                         for v in spec.sweep.values]
    out = []
    for balancer in spec.balancers:
        for value, point in points:
            if value is None:
                config = balancer.name
            else:
                short = spec.sweep.param.split(".")[-1]
                config = f"{balancer.name}-{short}{_safe(value)}"
            out.append((config, balancer, value, point))
    return out


def _safe(value):
    return re.sub(r"[^A-Za-z0-9_.]", "_", str(value))


def json_schema():
    """Return the JSON Schema of a spec (what ``schemas/spec.schema.json`` holds).

    It declares draft-07: VS Code's YAML extension validates draft-07 and warns that 2020-12
    "is not yet fully supported". Nothing in it needs more (``$defs`` is reached by JSON
    pointer).
    """
    return {"$schema": SCHEMA_DRAFT, "$id": SCHEMA_ID, **Spec.model_json_schema()}


def schema_text():
    """Return the JSON Schema as the checked-in file's text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m experiments.spec --schema > " + SCHEMA_PATH)
    sys.stdout.write(schema_text())
