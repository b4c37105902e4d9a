"""A balancer from a file: ``algorithm: {file: my_lb.py, class: MyBalancer}``.

A spec, the controller config and the L7 proxy config name such a balancer as a mapping (or as
the string ``file:my_lb.py:MyBalancer``); their models turn either into that string, with the
path made absolute against the config file's folder (:func:`resolve`). ``make_balancer``
(:mod:`lb_apps.balancing`) builds one from it through :func:`make_file_balancer`, so the L4
controller and the L7 proxy load it alike.

The class (its interface: docs/algorithms.md, "A balancer from a file")::

    class MyBalancer:
        def __init__(self, backends, seed=0): ...   # backends: dict name -> weight, in order
        def choose(self, key=None): ...             # a live backend's name, or None if none is
        def on_open(self, name): ...                # one more connection/request in flight
        def on_close(self, name): ...               # one fewer
        def set_weight(self, name, weight): ...     # 0 drains
        def add_backend(self, name, weight=1): ...
        def remove_backend(self, name): ...
        def set_up(self, name, up): ...             # health: False = down

This module is the shell around that class: it reads and runs the file (the only I/O here),
checks it at load time (:func:`check_file`: the file, its syntax, the class, the methods, and a
run on a test pool, each problem one line naming the file and line), and wraps every instance in
a :class:`FileBalancer` that keeps lblab's own view of the pool, so a wrong answer at run time
(a drained, down or unknown backend) is an error naming the file, never a request sent there.
It also keeps a results folder's copies of the files a batch ran (:func:`copy_inputs`,
``inputs/``) and points ``lblab rerun`` and ``lblab run --resume`` at them
(:func:`copied_overrides`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import keyword
import os
import shutil
import signal
import sys
import threading
import traceback

from lb_apps.maglev import BalancingError
from lblab_core.errors import UsageError
from lblab_core.loader import format_path

PREFIX = "file:"
# The methods a balancer class must have (in_flight() and backends() are lblab's: FileBalancer).
METHODS = ("choose", "on_open", "on_close", "set_weight", "add_backend", "remove_backend",
           "set_up")
# The load-time run on a test pool must end within this (an endless loop is named, with its line).
CHECK_BUDGET_SEC = 5.0
# Picks per step of the test-pool run.
CHECK_PICKS = 24
_TEST_POOL = {"b1": 1, "b2": 2, "b3": 3, "b4": 1}
_TEST_KEYS = (None, "10.0.0.1", "10.0.0.2", ("tcp", "10.0.0.1", 40001, "10.0.0.100", 80),
              ("tcp", "10.0.0.2", 40002, "10.0.0.100", 80), "/index.html")

_cache: dict = {}
_cache_lock = threading.Lock()


class BalancerFileError(BalancingError):
    """A balancer file that cannot be used: one line naming the file (and line) and why."""


# -- the algorithm string (pure) ---------------------------------------------------------------

def is_file_algorithm(algorithm) -> bool:
    """Return True if ``algorithm`` names a balancer from a file (``file:PATH:CLASS``)."""
    return isinstance(algorithm, str) and algorithm.startswith(PREFIX)


def split(algorithm) -> tuple[str, str]:
    """Return (path, class name) of ``file:PATH:CLASS`` (the path may hold ``:``)."""
    path, _, name = algorithm[len(PREFIX):].rpartition(":")
    return path, name


def _abs_split(algorithm):
    path, name = split(algorithm)
    return os.path.abspath(path), name


def join(path: str, class_name: str) -> str:
    """Return the algorithm string ``file:PATH:CLASS``."""
    return f"{PREFIX}{path}:{class_name}"


def problem(path, class_name) -> str | None:
    """Return what is wrong with a file and class as written (None if nothing): pure."""
    if not isinstance(path, str) or not path:
        return f"file: {path!r}: expected a path to a Python file"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return f"file: {path!r}: expected a path without control characters"
    if not isinstance(class_name, str) or not class_name.isidentifier() \
            or keyword.iskeyword(class_name):
        return f"class: {class_name!r}: expected a Python class name"
    return None


def base_dir(source) -> str:
    """Return the folder relative paths in the file ``source`` start from (cwd for ``<...>``)."""
    if not source or str(source).startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(str(source)))


def resolve(algorithm, base):
    """Return ``algorithm`` with a relative file made absolute against ``base``; others as is."""
    if not is_file_algorithm(algorithm):
        return algorithm
    path, name = split(algorithm)
    path = os.path.expanduser(path)
    return join(os.path.normpath(os.path.join(base, path)), name)


def shown_path(path: str) -> str:
    """The path as messages show it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def describe(algorithm) -> str:
    """Return ``my_lb.py:MyBalancer`` for messages."""
    path, name = split(algorithm)
    return f"{shown_path(path)}:{name}"


# -- loading (I/O) -----------------------------------------------------------------------------

def _frame_line(tb, path):
    """The last traceback frame in ``path`` (the student's file) as its line number, or None."""
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if os.path.abspath(frame.f_code.co_filename) == path:
            line = lineno
    return line


def _where(path, line):
    return f"{shown_path(path)}:{line}" if line else shown_path(path)


def load_class(algorithm):
    """Read the file of ``algorithm`` and return its class (cached per file version).

    Raises:
        BalancerFileError: no such file, a syntax error, an exception while importing it, no
            such class, or missing methods; the message names the file and line.
    """
    path, name = _abs_split(algorithm)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BalancerFileError(f"{shown_path(path)}: cannot read the balancer file: "
                                f"{exc.strerror or exc}", field="algorithm", value=algorithm,
                                expected="a readable Python file") from None
    key = (path, name, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cls = _cache.get(key)
    if cls is None:
        cls = _load(path, name, algorithm)
        with _cache_lock:
            _cache[key] = cls
    return cls


def _load(path, name, algorithm):
    def fail(line, message, expected):
        return BalancerFileError(f"{_where(path, line)}: {message}", field="algorithm",
                                 value=algorithm, expected=expected)
    try:
        with open(path, "rb") as fp:
            source = fp.read()
        code = compile(source, path, "exec")
    except SyntaxError as exc:
        raise fail(exc.lineno, f"syntax error: {exc.msg}", "valid Python") from None
    except (OSError, ValueError) as exc:
        raise fail(None, f"cannot read the balancer file: {exc}", "a readable Python file") \
            from None
    module_name = f"lblab_balancer_{abs(hash(path)):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up
    try:
        exec(code, module.__dict__)  # noqa: S102 - the user's own balancer, run on purpose
    except Exception as exc:  # noqa: BLE001 - any error of the user's code, reported by line
        raise fail(_frame_line(exc.__traceback__, path),
                   f"importing it raised {type(exc).__name__}: {exc}", "a file that imports") \
            from None
    cls = module.__dict__.get(name)
    if not inspect.isclass(cls):
        found = [n for n, v in module.__dict__.items()
                 if inspect.isclass(v) and getattr(v, "__module__", None) == module_name]
        hint = f"; classes in it: {', '.join(found)}" if found else "; it defines no class"
        what = "no class" if cls is None else f"{name!r} is a {type(cls).__name__}, not a class;"
        raise fail(None, f"{what} {name!r}{hint}" if cls is None else f"{what} expected a class",
                   f"a class {name}")
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise fail(_class_line(cls), f"class {name} lacks the method"
                   f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} (a balancer has "
                   f"{', '.join(METHODS)})", "the balancer methods")
    return cls


def _class_line(cls):
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return None


def _method_line(cls, method, path):
    """The line of ``def method`` when the file at ``path`` defines it, else of the class."""
    code = getattr(getattr(cls, method, None), "__code__", None)
    if code is not None and os.path.abspath(code.co_filename) == path:
        return code.co_firstlineno
    return _class_line(cls)


def _call(balancer, method, *args):
    """Call the user's ``method``; an exception becomes a BalancerFileError naming its line."""
    try:
        return getattr(balancer.impl, method)(*args)
    except BalancerFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the user's code, reported by line
        line = _frame_line(exc.__traceback__, balancer.path) \
            or _method_line(type(balancer.impl), method, balancer.path)
        shown_args = ", ".join(repr(a) for a in args)
        raise BalancerFileError(
            f"{_where(balancer.path, line)}: {balancer.class_name}.{method}({shown_args}) raised "
            f"{type(exc).__name__}: {exc}", field="algorithm", value=balancer.algorithm,
            expected="a balancer that does not raise") from None


class FileBalancer:
    """A balancer from a file behind lblab's referee.

    It has the interface of :class:`lb_apps.balancing.Balancer`. Every call goes to the user's
    object; this wrapper keeps its own copy of the pool (weights, health, in-flight counts,
    picks), checks every argument as the builtin balancers do, and checks every answer of
    ``choose``: a live backend, or None only when none is live. Not thread-safe (like the
    builtins).
    """

    def __init__(self, algorithm, backends, seed=0):
        self.algorithm = algorithm
        self.path, self.class_name = _abs_split(algorithm)
        cls = load_class(algorithm)
        self._pool = {}
        for name, weight in backends:
            self._check_new(name, weight)
            self._pool[name] = {"weight": weight, "up": True, "in_flight": 0, "chosen": 0}
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BalancingError(f"seed: invalid {seed!r}; expected an int", field="seed",
                                 value=seed, expected="an int")
        try:
            self.impl = cls({n: b["weight"] for n, b in self._pool.items()}, seed=seed)
        except Exception as exc:  # noqa: BLE001 - any error of the user's code, reported by line
            line = (_frame_line(exc.__traceback__, self.path)
                    or _method_line(cls, "__init__", self.path))
            raise BalancerFileError(
                f"{_where(self.path, line)}: {self.class_name}(backends, seed={seed}) raised "
                f"{type(exc).__name__}: {exc}", field="algorithm", value=algorithm,
                expected="a balancer that does not raise") from None

    # -- the referee's checks -------------------------------------------------------------
    def _fail(self, message):
        line = _method_line(type(self.impl), "choose", self.path)
        return BalancerFileError(f"{_where(self.path, line)}: {self.class_name}.choose "
                                 f"{message}", field="algorithm", value=self.algorithm,
                                 expected="a live backend or None")

    def live(self):
        """Return the names that may get new flows: up, weight > 0."""
        return [n for n, b in self._pool.items() if b["up"] and b["weight"] > 0]

    def _check_new(self, name, weight):
        if not isinstance(name, str) or not name:
            raise BalancingError(f"backend: invalid name {name!r}; expected a non-empty str",
                                 field="backend", value=name, expected="a non-empty str")
        if name in getattr(self, "_pool", {}):
            raise BalancingError(f"backend: duplicate {name!r}; expected unique names",
                                 field="backend", value=name, expected="unique names")
        self._check_weight(name, weight)

    @staticmethod
    def _check_weight(name, weight):
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise BalancingError(f"weight: invalid {weight!r} for backend {name!r}; expected an "
                                 "int >= 0 (0 = drain)", field="weight", value=weight,
                                 expected="an int >= 0")

    def _get(self, name):
        backend = self._pool.get(name)
        if backend is None:
            known = ", ".join(repr(n) for n in self._pool) or "none (the pool is empty)"
            raise BalancingError(f"backend: unknown {name!r}; expected one of {known}",
                                 field="backend", value=name, expected=known)
        return backend

    # -- the interface --------------------------------------------------------------------
    def choose(self, key=None):
        """Ask the user's balancer; return its answer once checked (see the class)."""
        name = _call(self, "choose", key)
        live = self.live()
        if name is None:
            if live:
                raise self._fail(f"returned None while {', '.join(live)} "
                                 f"{'is' if len(live) == 1 else 'are'} live")
            return None
        backend = self._pool.get(name) if isinstance(name, str) else None
        if backend is None:
            raise self._fail(f"returned {name!r}, not a backend of the pool "
                             f"({', '.join(self._pool) or 'empty'})")
        if not backend["up"]:
            raise self._fail(f"returned {name!r}, which is down")
        if backend["weight"] == 0:
            raise self._fail(f"returned {name!r}, which is drained (weight 0)")
        backend["chosen"] += 1
        return name

    def on_open(self, name):
        """Count one more connection/request to ``name``."""
        backend = self._get(name)
        _call(self, "on_open", name)
        backend["in_flight"] += 1

    def on_close(self, name):
        """Count one connection/request to ``name`` as ended."""
        backend = self._get(name)
        _call(self, "on_close", name)
        if backend["in_flight"] > 0:
            backend["in_flight"] -= 1

    def set_weight(self, name, weight):
        """Change a backend's weight (0 drains it)."""
        backend = self._get(name)
        self._check_weight(name, weight)
        _call(self, "set_weight", name, weight)
        backend["weight"] = weight

    def add_backend(self, name, weight=1):
        """Add a backend."""
        self._check_new(name, weight)
        _call(self, "add_backend", name, weight)
        self._pool[name] = {"weight": weight, "up": True, "in_flight": 0, "chosen": 0}

    def remove_backend(self, name):
        """Remove a backend."""
        self._get(name)
        _call(self, "remove_backend", name)
        del self._pool[name]

    def set_up(self, name, up):
        """Mark a backend up (True) or down (False)."""
        backend = self._get(name)
        if not isinstance(up, bool):
            raise BalancingError(f"up: invalid {up!r} for backend {name!r}; expected True or "
                                 "False", field="up", value=up, expected="True or False")
        if backend["up"] != up:
            _call(self, "set_up", name, up)
            backend["up"] = up

    def in_flight(self):
        """Return name -> in-flight count, as lblab counted the on_open/on_close calls."""
        return {n: b["in_flight"] for n, b in self._pool.items()}

    def backends(self):
        """Return name -> {"weight", "up", "in_flight", "chosen"}, in insertion order."""
        return {n: dict(b) for n, b in self._pool.items()}

    def __repr__(self):
        return f"<FileBalancer {describe(self.algorithm)} live={self.live()}>"


def make_file_balancer(algorithm, backends, seed=0):
    """Return a :class:`FileBalancer` for ``file:PATH:CLASS`` over (name, weight) pairs."""
    return FileBalancer(algorithm, list(backends), seed)


# -- the load-time check (I/O) -----------------------------------------------------------------

class _Timeout(BaseException):
    """The check's time budget ran out (a BaseException: the user's ``except Exception`` and
    the wrappers above let it through)."""


def check_file(algorithm):
    """Load a balancer file and run it on a test pool; raise what is wrong.

    The run: picks with assorted keys (None, client addresses, 5-tuples, a URI) with
    on_open/on_close around them, a backend drained, one down, one added, one removed, every
    backend down (then None is the only right answer). Every answer is checked by
    :class:`FileBalancer`. In the main thread the run has :data:`CHECK_BUDGET_SEC`.

    Args:
        algorithm (str): ``file:PATH:CLASS`` with an absolute path.
    Raises:
        BalancerFileError: one line naming the file and line, and what went wrong.
    """
    cls = load_class(algorithm)
    path, name = _abs_split(algorithm)
    timed = threading.current_thread() is threading.main_thread()
    if timed:
        def on_alarm(signum, frame):
            raise _Timeout()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, CHECK_BUDGET_SEC)
    step = "constructing it"
    try:
        try:
            balancer = FileBalancer(algorithm, list(_TEST_POOL.items()), seed=1)
            step = "picks on the pool b1..b4 (weights 1, 2, 3, 1)"
            _picks(balancer)
            step = "picks with b2 drained and b3 down"
            balancer.set_weight("b2", 0)
            balancer.set_up("b3", False)
            _picks(balancer)
            step = "picks after b5 joined and b1 left"
            balancer.set_weight("b2", 2)
            balancer.set_up("b3", True)
            balancer.add_backend("b5", 2)
            balancer.remove_backend("b1")
            _picks(balancer)
            step = "picks with every backend down or drained"
            for backend in ("b2", "b3", "b4"):
                balancer.set_up(backend, False)
            balancer.set_weight("b5", 0)
            _picks(balancer)
        except _Timeout as exc:
            line = _frame_line(exc.__traceback__, path)
            raise BalancerFileError(f"{_where(path, line)}: {name} did not answer within "
                                    f"{CHECK_BUDGET_SEC:g} s on the test pool ({step}): an "
                                    "endless loop?", field="algorithm", value=algorithm,
                                    expected="a balancer that answers") from None
        except BalancerFileError as exc:
            raise BalancerFileError(f"{exc} (test pool: {step})", field="algorithm",
                                    value=algorithm, expected=exc.expected) from None
        except BalancingError as exc:
            line = _frame_line(exc.__traceback__, path) or _class_line(cls)
            raise BalancerFileError(f"{_where(path, line)}: {name} on the test pool ({step}): "
                                    f"{exc}", field="algorithm", value=algorithm,
                                    expected="a balancer") from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _picks(balancer):
    for i in range(CHECK_PICKS):
        name = balancer.choose(_TEST_KEYS[i % len(_TEST_KEYS)])
        if name is not None:
            balancer.on_open(name)
            if i % 3:
                balancer.on_close(name)


# -- the copies in a results folder (I/O) --------------------------------------------------------

# A results folder keeps a copy of every balancer file its batch ran, so that `lblab rerun`
# and `lblab run --resume` run the file as it was, wherever the folder has moved since.
INPUTS_DIR = "inputs"
INPUTS_INDEX = "balancers.json"
INPUTS_VERSION = 1


def file_algorithms(data, path=()):
    """Return ``[(key path, algorithm)]`` of every balancer-from-a-file string in ``data`` (pure).

    Args:
        data: nested dicts and lists, e.g. a spec's ``to_dict()`` whose files are absolute.
        path (tuple): the key path of ``data`` itself.
    Returns:
        list[tuple[tuple, str]]: in document order; a key path is keys (str) and indexes (int).
    """
    if isinstance(data, dict):
        return [found for key, value in data.items()
                for found in file_algorithms(value, path + (key,))]
    if isinstance(data, (list, tuple)):
        return [found for i, value in enumerate(data)
                for found in file_algorithms(value, path + (i,))]
    return [(path, data)] if is_file_algorithm(data) else []


def copy_name(path, taken):
    """Return the name of ``path``'s copy in ``inputs/``: its own, or ``stem-N.ext`` (pure)."""
    base = os.path.basename(path) or "balancer.py"
    stem, ext = os.path.splitext(base)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}{ext}"
    return name


def copy_inputs(folder, data):
    """Copy each balancer file named in ``data`` into ``folder/inputs/`` with an index.

    The files are those of ``data["balancers"]`` (a sweep's values are not copied). A file
    named twice (the same class at L4 and at L7) is copied once. The index
    (``inputs/balancers.json``) lists each use: where in the spec (``at``, a ``--set`` key
    path), the file as given, the class, the copy's name and its SHA-256. Nothing is written
    when ``data`` names no file.

    Args:
        folder (str): the results folder.
        data (dict): the spec as run, balancer files absolute (``Spec.to_dict()``).
    Returns:
        list[dict]: the index's entries.
    Raises:
        lblab_core.errors.UsageError: a file that cannot be read or copied.
    """
    uses = file_algorithms((data or {}).get("balancers") or [], ("balancers",))
    if not uses:
        return []
    inputs = os.path.join(folder, INPUTS_DIR)
    os.makedirs(inputs, exist_ok=True)
    copies, entries = {}, []
    for at, algorithm in uses:
        path, name = _abs_split(algorithm)
        if path not in copies:
            copies[path] = copy_name(path, set(copies.values()))
            try:
                shutil.copyfile(path, os.path.join(inputs, copies[path]))
            except OSError as exc:
                raise UsageError(f"{format_path(at)}: {shown_path(path)}: cannot copy the "
                                 f"balancer file into {inputs}: {exc.strerror or exc}") from None
        with open(os.path.join(inputs, copies[path]), "rb") as fp:
            digest = hashlib.sha256(fp.read()).hexdigest()
        entries.append({"at": format_path(at), "file": path, "class": name,
                        "copy": copies[path], "sha256": digest})
    with open(os.path.join(inputs, INPUTS_INDEX), "w", encoding="utf-8") as fp:
        json.dump({"v": INPUTS_VERSION, "files": entries}, fp, indent=1)
        fp.write("\n")
    return entries


def copied_overrides(folder):
    """Return the ``--set`` items that point each balancer from a file at its copy.

    Args:
        folder (str): a results folder (one without ``inputs/balancers.json`` gives ``[]``).
    Returns:
        list[str]: ``key.path="file:FOLDER/inputs/COPY:CLASS"`` items (absolute, JSON-quoted).
    Raises:
        lblab_core.errors.UsageError: an unreadable index or a copy that is gone.
    """
    index = os.path.join(folder, INPUTS_DIR, INPUTS_INDEX)
    if not os.path.isfile(index):
        return []
    try:
        with open(index, encoding="utf-8") as fp:
            entries = json.load(fp)["files"]
        items = []
        for entry in entries:
            copy = os.path.join(os.path.abspath(folder), INPUTS_DIR, entry["copy"])
            if os.path.basename(entry["copy"]) != entry["copy"] or not os.path.isfile(copy):
                raise UsageError(f"{index}: {entry['at']}: the copy {entry['copy']!r} of "
                                 f"{entry['file']} is not in {INPUTS_DIR}/; expected the "
                                 f"file the batch ran")
            items.append(f"{entry['at']}={json.dumps(join(copy, entry['class']))}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{index}: cannot read it: {exc}; expected the index lblab run "
                         f"wrote") from None
    return items
