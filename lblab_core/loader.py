"""The one YAML/JSON loader of every lblab input (specs, L7 configs, controller configs, backend
and load-generator settings).

Every file is read as UTF-8 and parsed as YAML 1.1 (a JSON document is valid YAML, so ``.json``
files need no second reader). What it adds to ``yaml.safe_load``:

- a map from each key path to its line, so later checks can say ``file:line: key.path: ...``;
- duplicate keys are an error (``safe_load`` keeps the last one silently);
- merge keys (``<<: *base``) are honoured and an explicit key after them overrides the merged
  value, as the YAML merge-key type says;
- bounds, so a careless or hostile file gets one line, not a hang or a traceback: nesting
  depth, the number of values after aliases are expanded (alias bombs), and file size;
- decoding problems (not UTF-8, UTF-16, NUL and other control characters) are one line.

Errors are :class:`lblab_core.errors.InputError` (a ``UsageError``: exit 2), every problem at once.
"""
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from lblab_core.errors import InputError

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # nesting of mappings and sequences
MAX_VALUES = 100_000  # values after alias expansion (a spec has a few hundred)
_MERGE_TAG = "tag:yaml.org,2002:merge"


def format_path(path):
    """Render a key path tuple as ``balancers[2].algorithm`` (``(top level)`` when empty).

    Args:
        path (tuple): keys (str) and sequence indexes (int).
    Returns:
        str: the dotted path.
    """
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            text = str(part)
            if not text.isprintable():  # a key with a newline must not split an error line
                text = repr(text)
            out += ("." if out else "") + text
    return out or "(top level)"


def decode(data, source):
    """Decode file bytes as UTF-8 text (a UTF-8 byte-order mark is allowed).

    Args:
        data (bytes): the file's contents.
        source (str): the file name, for errors.
    Returns:
        str: the text.
    Raises:
        InputError: too large, UTF-16/32, not UTF-8, or a NUL byte.
    """
    if len(data) > MAX_FILE_BYTES:
        raise InputError([f"{source}: {len(data)} bytes; expected at most {MAX_FILE_BYTES} "
                          f"(an input file of lblab is a few kilobytes)"])
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError([f"{source}: the file is UTF-16 (or UTF-32); save it as UTF-8"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError([f"{source}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                          f"offset {exc.start}); save the file as UTF-8"]) from None
    nul = text.find("\0")
    if nul >= 0:
        raise InputError([f"{source}:{text.count(chr(10), 0, nul) + 1}: a NUL byte at offset "
                          f"{nul}; expected a YAML or JSON text file"])
    return text


def read(path):
    """Read an input file's text.

    Args:
        path (str|os.PathLike): the file.
    Returns:
        str: its text.
    Raises:
        InputError: unreadable, or see :func:`decode`.
    """
    try:
        with open(path, "rb") as fp:
            data = fp.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    return decode(data, str(path))


def compose(text, source="<input>"):
    """Parse YAML (or JSON) text into plain values and a map of key paths to lines.

    Args:
        text (str): the document.
        source (str): its name, for errors.
    Returns:
        tuple[object, dict[tuple, int]]: the value (None for an empty document) and
        ``{key path: 1-based line}``.
    Raises:
        InputError: not valid YAML, a duplicate or non-scalar key, a merge of a non-mapping,
            nesting deeper than MAX_DEPTH or more than MAX_VALUES values.
    """
    try:
        loader = yaml.SafeLoader(text)  # checks every character here
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise InputError([f"{source}:{line}: character U+{exc.character:04X} at offset "
                          f"{exc.position} is not allowed in YAML"]) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(exc, "problem", None) or str(exc)
            kind = "JSON" if source.endswith(".json") else "YAML"
            raise InputError([f"{where}: not valid {kind}: {problem}"]) from None
        except RecursionError:
            raise InputError([f"{source}: nested too deeply to parse; expected at most "
                              f"{MAX_DEPTH} levels"]) from None
        if node is None:
            return None, {}
        builder = _Builder(loader, source)
        value = builder.plain(node, (), 0)
    finally:
        loader.dispose()
    if builder.errors:
        raise InputError(builder.errors)
    return value, builder.lines


def load(path):
    """Read and parse an input file (see :func:`compose`).

    Returns:
        tuple[object, dict[tuple, int]]: the value and the key-path line map.
    Raises:
        InputError: the file cannot be read or parsed.
    """
    return compose(read(path), str(path))


class _Fatal(Exception):
    """A bound was hit: stop building (the message is already in ``errors``)."""


class _Builder:
    """Turns a composed node graph into plain values, recording lines and errors."""

    def __init__(self, loader, source):
        self.loader = loader
        self.source = source
        self.lines = {}
        self.errors = []
        self.values = 0

    def _at(self, node):
        return f"{self.source}:{node.start_mark.line + 1}"

    def plain(self, node, path, depth):
        try:
            return self._plain(node, path, depth)
        except _Fatal:
            return None

    def _plain(self, node, path, depth):
        self.values += 1
        if self.values > MAX_VALUES:
            self.errors.append(f"{self._at(node)}: {format_path(path)}: more than {MAX_VALUES} "
                               f"values once aliases are expanded; expected a small file "
                               f"(an alias bomb?)")
            raise _Fatal
        if depth > MAX_DEPTH:
            self.errors.append(f"{self._at(node)}: {format_path(path)}: nested deeper than "
                               f"{MAX_DEPTH} levels (a recursive alias?)")
            raise _Fatal
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self._plain(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.errors.append(f"{self._at(node)}: {format_path(path)}: "
                               f"{getattr(exc, 'problem', None) or exc}")
        except ValueError:  # e.g. an integer past Python's 4300-digit conversion limit
            self.errors.append(f"{self._at(node)}: {format_path(path)}: "
                               f"{node.value[:20]}... ({len(node.value)} characters): not a "
                               f"value lblab can use")
        return None

    def _mapping(self, node, path, depth):
        out = {}
        explicit = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, MappingNode):
                        self.errors.append(f"{self._at(src)}: {format_path(path)}: '<<' merges "
                                           f"a mapping (or a list of them), got {src.tag}")
                        continue
                    merged = self._plain(src, path, depth + 1)
                    for key, value in merged.items():
                        out.setdefault(key, value)  # the first merged mapping wins
                continue
            key = None
            if isinstance(key_node, ScalarNode):
                key = self.loader.construct_object(key_node)
            if not isinstance(key, (str, int, float, bool)):
                shown = key_node.tag if key is None else repr(key)
                self.errors.append(f"{self._at(key_node)}: {format_path(path)}: a key must be "
                                   f"a plain scalar, got {shown}")
                continue
            if key in explicit:
                self.errors.append(f"{self._at(key_node)}: {format_path(path + (key,))}: "
                                   f"duplicate key {key!r} (first at line {explicit[key]})")
                continue
            explicit[key] = key_node.start_mark.line + 1
            self.lines[path + (key,)] = explicit[key]
            out[key] = self._plain(value_node, path + (key,), depth + 1)
            self.lines[path + (key,)] = explicit[key]
        return out
