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
    LINK_FAULTS, MAX_BACKENDS, MAX_BALANCERS, MAX_FAULTS, MAX_RESPONSE_BYTES, MAX_RUNS,
    MAX_SWEEP_POINTS, SERVICE_DISTS,
    TOPOLOGIES, WORKLOAD_TYPES, Backend, Balancer, Fault, HttpWorkload, IperfWorkload, L4Balancer,
    L7Balancer, RequestKind, ServiceTime, Spec, Sweep, Topology, _backends_input)
from lb_apps.custom_balancer import base_dir
from lb_apps.custom_balancer import resolve as resolve_balancer_file
from lb_apps.l7config import absolute_balancer_files
from lblab_core import config as C
from lblab_core import loader
from lblab_core.errors import InputError

SCHEMA_PATH = "schemas/spec.schema.json"
SCHEMA_ID = "https://lblab.invalid/schemas/spec.schema.json"
SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
# Top-level keys a sweep cannot set, and why: the batch reads them once for all its points.
UNSWEEPABLE = {
    "sweep": "a sweep cannot sweep itself",
    "name": "the batch has one name and one results folder",
    "balancers": "balancers are already compared",
    "repetitions": "every point runs the batch's repetitions",
    "seed": "each repetition already gets its own seed (seed x 1000 + repetition)",
}


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
        if sweep and not loc.problems and spec is not None:
            # Each sweep point is checked once the base spec is valid, so a problem is said once.
            if spec.sweep is not None:
                _check_sweep(data, spec, loc)
            else:
                _runs_fit(spec, 1, loc)
    if loc.problems:
        raise SpecError(loc.errors())
    spec = _absolute_balancer_files(spec, loc.source)
    spec._source = loc.source  # private attributes: not part of the schema or of equality
    spec._data = copy.deepcopy(data)
    return spec


def _absolute_balancer_files(spec, source):
    """The spec with each balancer from a file named by its absolute path (relative to the
    spec's folder as written), so every reader (run plan, model twin, meta) gets the same file."""
    base = base_dir(source)
    balancers = tuple(b.model_copy(update={"algorithm": resolve_balancer_file(b.algorithm, base),
                                           **({"l7": absolute_balancer_files(b.l7, base)}
                                              if b.layer == "l7" else {})})
                      for b in spec.balancers)
    return spec if balancers == spec.balancers else spec.model_copy(update={"balancers": balancers})


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


def _check_sweep(data, spec, loc):
    """Check the sweep's forms, then each point as its own spec (a bad point names its values).

    Each problem is one line: ``param`` without ``values`` (or beside ``product``/``zip``), an
    unparsable or unsweepable key path, a parameter given twice or inside another, values that
    repeat, zipped lists of unequal length, too many points or runs, points whose run folder
    names would be the same.
    """
    sweep = spec.sweep
    keys = _sweep_keys(sweep, loc)
    if keys is None:
        return
    points = sweep.points()
    if len(points) > MAX_SWEEP_POINTS:
        loc.fail(("sweep",), f"{len(points)} sweep points: expected at most {MAX_SWEEP_POINTS} "
                             f"(each is a fresh lab per balancer and repetition)")
        return
    if not _runs_fit(spec, len(points), loc):
        return
    ids = {}
    for point in points:
        name = point_id(sweep, point)
        if name in ids:
            loc.fail(("sweep",), f"points {_said(ids[name])} and {_said(point)} have the same "
                                 f"run folder name {name!r}; use values that differ in "
                                 f"letters, digits, '_' or '.'")
            return
        ids[name] = point
    said = set()
    for i, point in enumerate(points):
        try:
            sub_data = data
            for param, value in point:
                sub_data = set_path(sub_data, keys[param], value)
        except ValueError as exc:
            loc.fail(_sweep_path(sweep, point[-1][0]), str(exc))
            return
        sub_data.pop("sweep")
        sub = Locator(loc.source)
        try:
            _parse(sub_data, sub, sweep=False)
        except SpecError:
            # a bad value fails every point it is in: each problem is said once, at its first
            for body in sub.bodies():
                if body not in said:
                    said.add(body)
                    loc.fail(("sweep", "values", i) if sweep.param is not None else ("sweep",),
                             f"with {_said(point)}: {body}")


def _said(point):
    """``workload.users = 4, backends.0.capacity = 2`` for messages."""
    return ", ".join(f"{param} = {shown(value)}" for param, value in point)


def _sweep_path(sweep, param):
    """The key path of a swept parameter: ``sweep.param``, ``sweep.product.<param>``, …"""
    if sweep.param is not None and param == sweep.param:
        return ("sweep", "param")
    return ("sweep", "product" if param in (sweep.product or {}) else "zip", param)


def _sweep_keys(sweep, loc):
    """Return ``{param: key path tuple}``, or None after reporting what is wrong."""
    if (sweep.param is None) != (sweep.values is None):
        missing, given = ("values", "param") if sweep.values is None else ("param", "values")
        loc.fail(("sweep", missing), f"is required with {given} (the one-parameter form: "
                                     f"{{param: key.path, values: [...]}})")
        return None
    if sweep.param is not None and (sweep.product or sweep.zip):
        loc.fail(("sweep", "param"), "param/values sweeps one parameter; with product or zip, "
                                     "put it into product")
        return None
    if sweep.param is None and not sweep.product and not sweep.zip:
        loc.fail(("sweep",), "expected param/values, product or zip")
        return None
    both = sorted(set(sweep.product or {}) & set(sweep.zip or {}))
    if both:
        loc.fail(("sweep", "zip", both[0]), f"{both[0]} is in product too; sweep a parameter "
                                            f"once")
        return None
    if sweep.zip:
        lengths = {param: len(values) for param, values in sweep.zip.items()}
        if len(set(lengths.values())) > 1:
            loc.fail(("sweep", "zip"), "zipped parameters move together and need lists of equal "
                                       "length, got " + ", ".join(f"{p}: {n}" for p, n in
                                                                  lengths.items()))
            return None
    keys = {}
    for param in sweep.params():
        path = _sweep_path(sweep, param)
        values = (sweep.values if path[1] == "param" else
                  (sweep.product if path[1] == "product" else sweep.zip)[param])
        try:
            key = parse_set_path(param)
        except ValueError as exc:
            loc.fail(path, str(exc))
            return None
        if key[0] in UNSWEEPABLE:
            loc.fail(path, f"cannot sweep {param!r}; {UNSWEEPABLE[key[0]]}: sweep a "
                           f"workload, backend or topology parameter")
            return None
        for other, other_key in keys.items():
            if key == other_key or key[:len(other_key)] == other_key \
                    or other_key[:len(key)] == key:
                loc.fail(path, f"{param!r} and {other!r} set the same value; sweep it once")
                return None
        if len({_identity(v) for v in values}) != len(values):
            loc.fail(("sweep", "values") if path[1] == "param" else path,
                     "values must be distinct")
            return None
        keys[param] = key
    return keys


def _runs_fit(spec, points, loc):
    """Check balancers x points x repetitions against MAX_RUNS (said at ``repetitions``)."""
    runs = len(spec.balancers) * points * spec.repetitions
    if runs > MAX_RUNS:
        loc.fail(("repetitions",), f"{spec.repetitions}: {len(spec.balancers)} balancers x "
                                   f"{points} sweep point(s) x {spec.repetitions} repetitions "
                                   f"= {runs} runs: expected at most {MAX_RUNS}")
        return False
    return True


def _identity(value):
    """A key that tells sweep values apart (1 and true are different values)."""
    try:
        hash(value)
        return type(value).__name__, value
    except TypeError:
        return "repr", repr(value)


def points(spec):
    """Return the spec's sweep points (``[()]`` without a sweep): see ``Sweep.points``."""
    return [()] if spec.sweep is None else spec.sweep.points()


def variant(spec, point):
    """Return the spec at one sweep point (and no sweep).

    Args:
        spec (Spec): a spec with a sweep.
        point (tuple): ``((key path, value), ...)``, one of :func:`points`.
    Returns:
        Spec: the spec for that sweep point.
    """
    data = spec.data
    for param, value in point:
        data = set_path(data, parse_set_path(param), value)
    data.pop("sweep", None)
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
    """Return the configurations of a spec: ``(config_id, balancer, point, spec_for_point)``.

    ``point`` is ``((key path, value), ...)`` in spec order (``()`` without a sweep);
    ``config_id`` names the raw folder: ``<balancer>`` or ``<balancer>-<label>=<value>-…``
    (see :func:`point_id`). Balancers vary slowest, then the points in :func:`points` order.
    """
    specs = [(point, spec if not point else variant(spec, point)) for point in points(spec)]
    return [(f"{balancer.name}-{point_id(spec.sweep, point)}" if point else balancer.name,
             balancer, point, point_spec)
            for balancer in spec.balancers for point, point_spec in specs]


def point_id(sweep, point):
    """Return a point's part of a config id, e.g. ``rate=100-capacity=2``.

    Each parameter is labelled by the shortest tail of its key path that no other swept
    parameter shares (``capacity``; ``0.capacity`` and ``1.capacity`` when two backends'
    capacities are swept). A scalar value is written out; a list or mapping value by its
    position in its list (``v1``, ``v2``, …). Characters unsafe in file names become ``_``.
    """
    labels = _labels(sweep.params())
    lists = {**({sweep.param: sweep.values} if sweep.param is not None else {}),
             **(sweep.product or {}), **(sweep.zip or {})}
    parts = []
    for param, value in point:
        if isinstance(value, (str, int, float, bool)) or value is None:
            text = str(value)
        else:
            text = f"v{[_identity(v) for v in lists[param]].index(_identity(value)) + 1}"
        parts.append(f"{_safe(labels[param])}={_safe(text)}")
    return "-".join(parts)


def _labels(params):
    keys = {}
    for param in params:
        try:
            keys[param] = [str(k) for k in parse_set_path(param)]
        except ValueError:
            keys[param] = [param]
    labels = {}
    for param, key in keys.items():
        for n in range(1, len(key) + 1):
            tail = key[-n:]
            if all(other[-n:] != tail for p, other in keys.items() if p != param) \
                    or n == len(key):
                labels[param] = ".".join(tail)
                break
    return labels


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
