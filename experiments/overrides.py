"""``--set key.path=value``: key paths into a spec and overrides applied before validation."""
import copy
import re

from experiments.spec_errors import SpecError
from lblab_core import loader
from lblab_core.errors import InputError

_SET_PATH_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_fmt = loader.format_path


def parse_set_path(text):
    """Split ``balancers[1].algorithm`` or ``balancers.1.algorithm`` into a key path tuple.

    Args:
        text (str): the key path.
    Returns:
        tuple: keys (str) and list indexes (int).
    Raises:
        ValueError: an empty or malformed path.
    """
    parts = []
    text = text.strip()
    if not text:
        raise ValueError("empty key path")
    for piece in text.split("."):
        if not piece:
            raise ValueError(f"malformed key path {text!r}")
        matches = list(_SET_PATH_RE.finditer(piece))
        if "".join(m.group(0) for m in matches) != piece:
            raise ValueError(f"malformed key path {text!r}")
        for m in matches:
            if m.group(2) is not None:
                parts.append(int(m.group(2)))
            elif m.group(1).isdigit() and parts:
                parts.append(int(m.group(1)))
            else:
                parts.append(m.group(1))
    return tuple(parts)


def set_path(data, path, value):
    """Return a deep copy of ``data`` with ``value`` at key path ``path`` (creating mappings).

    Args:
        data (dict|None): plain spec data.
        path (tuple): from :func:`parse_set_path`.
        value: the new value.
    Returns:
        dict: the changed copy.
    Raises:
        ValueError: the path goes through a value that is not a mapping or list, or an index
            is out of range.
    """
    data = copy.deepcopy(data) if data is not None else {}
    if not path:
        raise ValueError("empty key path")
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = _fmt(path[:i + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{_fmt(path[:i]) or 'the spec'} is not a list, cannot index "
                                 f"[{part}]")
            if not 0 <= part < len(node):
                raise ValueError(f"{where}: index out of range (the list has {len(node)} "
                                 f"items)")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{_fmt(path[:i]) or 'the spec'} is not a mapping, cannot set "
                                 f"{part!r}")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if isinstance(path[i + 1], int) else {}
                node = node[part]
    return data


def apply_overrides(data, overrides):
    """Apply ``["key.path=value", ...]`` to plain spec data; values are parsed as YAML scalars.

    Args:
        data (dict): plain spec data.
        overrides (iterable[str]): ``key.path=value`` items.
    Returns:
        tuple[dict, list[tuple]]: the new data and the overridden key paths.
    Raises:
        SpecError: a malformed override (every one at once).
    """
    touched = []
    errors = []
    for item in overrides or ():
        if "=" not in item:
            errors.append(f"--set {item}: expected key.path=value")
            continue
        key, raw = item.split("=", 1)
        try:
            path = parse_set_path(key)
            value = loader.compose(raw, f"--set {key}")[0] if raw.strip() else ""
            data = set_path(data, path, value)
            touched.append(path)
        except InputError as exc:
            errors.extend(exc.errors)
        except ValueError as exc:
            errors.append(f"--set {item}: {exc}")
    if errors:
        raise SpecError(errors)
    return data, touched
