"""``lblab validate SPEC…``: check experiment specs without running them; ``--schema``
prints their JSON Schema; ``--json`` prints the result for programs."""
import argparse
import json
import math
import re
import sys

from experiments import spec as spec_mod
from experiments.overrides import apply_overrides
from lblab_core import loader
from lblab_core.errors import InputError

JSON_HELP = (
    "print one JSON object instead of lines: {\"ok\": bool, \"specs\": [{\"spec\": path, "
    "\"ok\": bool, \"problems\": [{\"file\", \"line\" (int or null), \"field\" (the key "
    "path, or null for a problem of the whole file), \"value\" (the value found there, null "
    "when absent), \"message\"}], \"summary\": null, or for a valid spec {\"name\", "
    "\"balancers\", \"sweep\" (swept key paths), \"points\", \"repetitions\", "
    "\"configurations\" (config ids), \"runs\", \"estimated_s\", \"resolved\" (the spec "
    "with defaults)}}]}; the exit status is as without --json")


def build_parser():
    """Return the argparse parser of ``lblab validate``."""
    parser = argparse.ArgumentParser(
        prog="lblab validate",
        description="Check experiment specs (YAML) without running them: every problem is "
                    "reported with file, line, key path and the allowed values.")
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="spec file(s)")
    parser.add_argument("--schema", action="store_true",
                        help=f"print the spec's JSON Schema (regenerate "
                             f"{spec_mod.SCHEMA_PATH} with: lblab validate --schema > "
                             f"{spec_mod.SCHEMA_PATH})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="override a spec value (repeatable), e.g. workload.users=8")
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    return parser


def describe(spec):
    """Return a one-line summary of a valid spec (what would run and for how long).

    Args:
        spec (experiments.spec.Spec): a validated spec.
    Returns:
        str: e.g. ``quickstart: 4 balancers x 1 point x 2 reps = 8 runs, ~3.2 min``.
    """
    points = len(spec_mod.points(spec))
    runs = len(spec.balancers) * points * spec.repetitions
    seconds = estimated_s(spec, runs)
    return (f"{spec.name}: {len(spec.balancers)} balancers x {points} point(s) x "
            f"{spec.repetitions} rep(s) = {runs} runs, about {seconds / 60:.1f} min")


def estimated_s(spec, runs):
    """Seconds a spec's runs take: warm-up and duration plus ~6 s per run for building the lab
    and starting processes (measured on a 2-core VM)."""
    return runs * (spec.warmup_s + spec.duration_s + 6.0)


def summary(spec):
    """Return the ``--json`` summary of a valid spec (keys in ``JSON_HELP``)."""
    configs = spec_mod.configurations(spec)
    points = len(spec_mod.points(spec))
    runs = len(configs) * spec.repetitions
    swept = []
    for point in spec_mod.points(spec):
        for param, _ in point:
            if param not in swept:
                swept.append(param)
    return {"name": spec.name, "balancers": [b.name for b in spec.balancers], "sweep": swept,
            "points": points, "repetitions": spec.repetitions,
            "configurations": [c[0] for c in configs], "runs": runs,
            "estimated_s": estimated_s(spec, runs), "resolved": spec.to_dict()}


def _plain(value):
    """A value as JSON can hold it: huge integers and non-finite floats as text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else f"a {value.bit_length()}-bit integer"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _paths(data, prefix=()):
    """``{formatted key path: value}`` of every node of plain data."""
    out = {loader.format_path(prefix): data} if prefix else {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_paths(value, prefix + (key,)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.update(_paths(value, prefix + (i,)))
    return out


_FIELD = re.compile(r"[A-Za-z_][\w-]*(?:\[\d+\]|\.[\w-]+)*")


def problems(errors, source, data=None):
    """Turn a spec's problem lines into ``{"file", "line", "field", "value", "message"}``.

    Args:
        errors (list[str]): ``SpecError.errors``: ``file[:line| (--set path)]: [key.path: ]msg``.
        source (str): the spec's file name as the lines give it.
        data: the spec's plain data (overrides applied), to find each field's value; None when
            the file could not be read.
    Returns:
        list[dict]: one per line, in the same order.
    """
    values = _paths(data) if data is not None else {}
    out = []
    for text in errors:
        line, rest = None, text
        if text.startswith(source):
            after = text[len(source):]
            m = re.match(r":(\d+): |(?: \(--set [^)]*\))?: ", after)
            if m:
                line = int(m.group(1)) if m.group(1) else None
                rest = after[m.end():]
        field, sep, message = rest.partition(": ")
        if not sep or not (field in values or _FIELD.fullmatch(field)):
            field, message = None, rest
        out.append({"file": source, "line": line, "field": field,
                    "value": _plain(values.get(field)) if field else None,
                    "message": message})
    return out


def _data(path, overrides):
    """The spec's plain data with ``--set`` applied, or None when it cannot be read."""
    try:
        data, _ = loader.compose(loader.read(path), str(path))
        data, _ = apply_overrides(data if data is not None else {}, overrides)
    except (InputError, ValueError):
        return None
    return data


def _json_main(args):
    out = {"ok": True, "specs": []}
    for path in args.specs:
        try:
            spec = spec_mod.load_spec(path, args.overrides)
        except spec_mod.SpecError as exc:
            out["ok"] = False
            out["specs"].append({"spec": path, "ok": False, "summary": None,
                                 "problems": problems(exc.errors, str(path),
                                                      _data(path, args.overrides))})
            continue
        out["specs"].append({"spec": path, "ok": True, "problems": [],
                             "summary": summary(spec)})
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0 if out["ok"] else 2


def main(argv=None):
    """Validate each spec; print ``OK`` lines or every problem (or, with ``--schema``, the
    spec's JSON Schema).

    Returns:
        int: 0 when all specs are valid, 2 otherwise.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.schema:
        if args.specs or args.overrides:
            parser.error("--schema takes no spec and no --set")
        sys.stdout.write(spec_mod.schema_text())
        return 0
    if not args.specs:
        parser.error("give at least one SPEC (or --schema)")
    if args.json:
        return _json_main(args)
    status = 0
    for path in args.specs:
        try:
            spec = spec_mod.load_spec(path, args.overrides)
        except spec_mod.SpecError as exc:
            for line in exc.errors:
                print(line, file=sys.stderr)
            print(f"lblab validate: {path}: {len(exc.errors)} problem(s)", file=sys.stderr)
            status = 2
            continue
        if not args.quiet:
            print(f"OK {path}: {describe(spec)}")
    return status
