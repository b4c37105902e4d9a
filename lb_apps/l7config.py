"""Parse and validate the L7 proxy config (plain dict from YAML/JSON) into frozen objects.

Pure: no I/O except :func:`load_l7_config`, which only reads the file. The shape, grammars and
ranges are the models of :mod:`lb_apps.l7models` (their JSON Schema is
``schemas/l7config.schema.json``); this module reports every problem at once and assembles the
validated file into the :class:`L7Config` that the proxy and the HAProxy/nginx templates read.

Errors are :class:`L7ConfigError`, one line per problem, e.g.
``lab.yaml:7: routes[2].match.path_regex: invalid regex '(': missing ), ...``.

``python -m lb_apps.l7config --schema`` prints the JSON Schema.
"""
import json
import re
import sys
from dataclasses import dataclass

import pydantic

from lb_apps import custom_balancer as cb
from lb_apps.algorithm_field import file_form
from lb_apps.l7models import (AUTH_TYPES, DEFAULT_GROUP, HASH_KEY_TYPES, MAX_RETRIES,  # noqa: F401
                              MAX_WEIGHT, MAX_WORKERS, TLS, Auth, Backend, Cache, HashKey, Health,
                              L7Spec, Limits, Listen, Match, NameValue, PassiveHealth, Sticky,
                              Stats, Timeouts)
from lblab_core import config, loader
from lblab_core.errors import InputError

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")

class L7ConfigError(InputError, ValueError):
    """Invalid L7 config.

    ``errors`` holds every problem, one located line each (``str()`` joins them); ``path``
    (``routes[2].match.path_regex``, ``''`` for the whole file) and ``problem`` describe the
    first one, and ``issues`` lists ``(key path tuple, problem)`` for all of them (a tuple, so
    a caller can re-locate a key such as a group named ``a.b`` exactly).

    Args:
        source (str|None): the file; None when ``problem`` is already located.
        path (str): key path of the first problem.
        problem (str): what is wrong with it.
        errors (list[str]|None): every problem's line (default: the one built from the above).
        issues (list[tuple[tuple, str]]|None): (key path, problem) of every problem.
    """

    def __init__(self, source, path, problem, errors=None, issues=None):
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{path}: " if path else ""
        line = f"{where}{problem}" if source is None else f"{source}: {where}{problem}"
        simple = tuple(path.split(".")) if path else ()
        self.issues = list(issues) if issues else [(simple, problem)]
        super().__init__(errors or [line])


@dataclass(frozen=True)
class Group:
    """A backend pool with its own algorithm and health settings.

    ``health`` is None when active checks are off; ``passive_health`` None when passive checks
    are off.
    """
    name: str
    algorithm: str
    hash_key: HashKey
    backends: tuple
    health: Health | None
    passive_health: PassiveHealth | None


@dataclass(frozen=True)
class Route:
    """One routing rule; ``index`` is its position in ``routes`` (for errors and stats)."""
    index: int
    match: Match
    group: str
    auth: Auth | None = None


@dataclass(frozen=True)
class L7Config:
    """The whole validated L7 config.

    ``groups`` maps group name -> :class:`Group` and always holds ``DEFAULT_GROUP`` (the
    top-level ``algorithm``/``hash_key``/``backends``/``health``) first. Treat it as read-only.
    """
    listen: Listen
    tls: TLS | None
    workers: int
    groups: dict
    routes: tuple
    sticky: Sticky | None
    cache: Cache | None
    timeouts: Timeouts
    limits: Limits
    retries: int
    stats: Stats | None

    @property
    def default_group(self):
        """Group: the group used when no route matches."""
        return self.groups[DEFAULT_GROUP]

    @property
    def algorithm(self):
        """str: the default group's algorithm."""
        return self.default_group.algorithm

    @property
    def hash_key(self):
        """HashKey: the default group's hash key."""
        return self.default_group.hash_key

    @property
    def backends(self):
        """tuple[Backend]: the default group's backends."""
        return self.default_group.backends

    def all_backends(self):
        """Return every distinct backend across groups, by name, in first-seen order.

        Returns:
            list[Backend]: one entry per backend name.
        """
        seen = {}
        for group in self.groups.values():
            for backend in group.backends:
                seen.setdefault(backend.name, backend)
        return list(seen.values())


# -- errors -----------------------------------------------------------------------------------

def _line(lines, loc):
    """The line of ``loc`` or of the nearest key above it (None without lines)."""
    while lines and loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc) if lines else None


def _problems(exc, source, lines, prefix):
    """ValidationError -> [(line, path, problem)] in document order.

    The message text is lblab_core.config's (``describe_error``); the key path drops
    pydantic's ``[key]`` marker of a mapping key, so a bad group name is ``groups.<name>``.
    """
    out = []
    for err in exc.errors(include_url=False):
        loc, problem = config.describe_error(L7Spec, err)
        path = tuple(prefix) + tuple(p for p in loc if p != "[key]")
        probe = path
        while lines and probe and probe not in lines:
            probe = probe[:-1]
        out.append(((lines or {}).get(probe) or 0, path, problem))
    return sorted(out, key=lambda item: item[0])


def _path_text(path):
    """The key path as text; a key with a control character is quoted (a group named
    "a\\nb" must not split the message into two lines)."""
    return loader.format_path(tuple(
        repr(p) if isinstance(p, str) and (not p or _UNPRINTABLE.search(p)) else p
        for p in path))


def _error(problems, source):
    errors, issues = [], []
    for line, path, problem in problems:
        where = f"{source}:{line}" if line else source
        errors.append(f"{where}: {_path_text(path)}: {problem}")
        issues.append((tuple(path), problem))
    first_path, first_problem = issues[0]
    return L7ConfigError(source, _path_text(first_path) if first_path else "", first_problem,
                         errors=errors, issues=issues)


# -- assembly ---------------------------------------------------------------------------------

def _group(name, spec, default_health, default_passive, base=None):
    algorithm = cb.resolve(spec.algorithm, base or cb.base_dir(None))
    key = spec.hash_key or HashKey(type="client_ip" if algorithm == "ip_hash" else "uri")
    given = spec.model_fields_set

    def inherit(field, default):
        value = getattr(spec, field)
        if field in given and value is False:
            return None
        return default if value is None else value
    return Group(name=name, algorithm=algorithm, hash_key=key, backends=spec.backends,
                 health=inherit("health", default_health),
                 passive_health=inherit("passive_health", default_passive))


def assemble(spec, base=None):
    """Turn a validated :class:`~lb_apps.l7models.L7Spec` into the :class:`L7Config` served.

    Groups get the top-level health defaults, routes their index, ``false`` sections become
    None, a balancer file's path is made absolute against ``base``. No checks happen here: the
    models made them.

    Args:
        spec (L7Spec): the validated file.
        base (str|None): the folder relative balancer files start from (None: the working
            folder).
    Returns:
        L7Config: the config.
    """
    def on(value):
        return None if value is False else value
    default_health = on(spec.health)
    default_passive = (PassiveHealth() if spec.passive_health is None
                       else on(spec.passive_health))
    groups = {DEFAULT_GROUP: _group(DEFAULT_GROUP, spec, default_health, default_passive, base)}
    for name, group in spec.groups.items():
        groups[name] = _group(name, group, default_health, default_passive, base)
    routes = tuple(Route(index=i, match=r.match, group=r.group, auth=r.auth)
                   for i, r in enumerate(spec.routes))
    return L7Config(listen=spec.listen, tls=on(spec.tls), workers=spec.workers, groups=groups,
                    routes=routes, sticky=on(spec.sticky), cache=on(spec.cache),
                    timeouts=spec.timeouts, limits=spec.limits, retries=spec.retries,
                    stats=on(spec.stats))


def parse_l7_config(data, source="<config>", lines=None, prefix=()):
    """Validate an L7 config dict and return it assembled, with defaults filled in.

    Args:
        data (dict): the config (from YAML/JSON, or an experiment spec's ``l7`` section).
        source (str): where it came from, prefixed to error messages.
        lines (dict[tuple, int]|None): key path -> line (``lblab_core.loader``), so errors say
            ``file:line:``.
        prefix (tuple): key path of ``data`` inside its file (for ``lines`` and the messages).
    Returns:
        L7Config: the validated config.
    Raises:
        L7ConfigError: every unknown key, wrong type and bad value, one line each, naming the
            key path, the value and what was expected.

    A group whose algorithm is a balancer from a file (path relative to ``source``'s folder)
    has that file loaded and run on a test pool (:func:`lb_apps.custom_balancer.check_file`):
    the one I/O of parsing, so the proxy, a reload and ``lblab validate`` all refuse a broken
    balancer, naming its file and line.
    """
    try:
        spec = L7Spec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _error(_problems(exc, source, lines, prefix), source) from None
    config = assemble(spec, cb.base_dir(source))
    problems = []
    for name, group in config.groups.items():
        if cb.is_file_algorithm(group.algorithm):
            at = ("algorithm",) if name == DEFAULT_GROUP else ("groups", name, "algorithm")
            try:
                cb.check_file(group.algorithm)
            except cb.BalancerFileError as exc:
                loc = tuple(prefix) + at
                problems.append((_line(lines, loc), loc, str(exc)))
    if problems:
        raise _error(problems, source)
    return config


def absolute_balancer_files(data, base):
    """Return L7 config data whose balancers from a file (top level and groups) name their
    file by an absolute path (against ``base``), as ``file:PATH:CLASS``: what a config written
    into another folder (a results folder) needs. Anything the models would refuse is left
    for them.

    Args:
        data (dict): L7 config data (not validated).
        base (str): the folder relative paths start from.
    Returns:
        dict: a copy where it changed, else ``data``.
    """
    def fixed(value):
        try:
            value = file_form(value)
        except ValueError:  # pydantic_core's errors are ValueErrors: the models will say it
            return value
        return cb.resolve(value, base)
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if "algorithm" in out:
        out["algorithm"] = fixed(out["algorithm"])
    groups = out.get("groups")
    if isinstance(groups, dict):
        out["groups"] = {name: ({**g, "algorithm": fixed(g["algorithm"])}
                                if isinstance(g, dict) and "algorithm" in g else g)
                         for name, g in groups.items()}
    return out


def read_l7_data(path):
    """Read an L7 config file without validating it (to apply command-line overrides).

    Args:
        path (str): file path (YAML or JSON, read by ``lblab_core.loader``).
    Returns:
        tuple[object, dict]: the data and its key path -> line map.
    Raises:
        L7ConfigError: unreadable file, bad encoding or syntax, or an empty file.
    """
    try:
        data, lines = loader.load(path)
    except InputError as exc:
        raise L7ConfigError(None, "", exc.errors[0], errors=exc.errors) from None
    if data is None:
        raise L7ConfigError(str(path), "", "the file is empty; expected a mapping with "
                                           "'backends'")
    return data, lines


def load_l7_config(path):
    """Read a YAML or JSON L7 config file and parse it.

    Args:
        path (str): file path (YAML or JSON, read by ``lblab_core.loader``).
    Returns:
        L7Config: the validated config.
    Raises:
        L7ConfigError: unreadable file, syntax error, or invalid config (every problem, with
            its line).
    """
    data, lines = read_l7_data(path)
    return parse_l7_config(data, source=str(path), lines=lines)


def json_schema():
    """Return the L7 config's JSON Schema (what ``schemas/l7config.schema.json`` holds).

    Returns:
        dict: a JSON Schema (draft 2020-12) of the file as written.
    """
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "lblab L7 proxy config"}
    return {**head, **{k: v for k, v in L7Spec.model_json_schema().items() if k != "title"}}


def schema_text():
    """Return :func:`json_schema` as the checked-in file's text (indented, model order)."""
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m lb_apps.l7config --schema > schemas/l7config.schema.json")
    sys.stdout.write(schema_text())
