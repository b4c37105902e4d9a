"""Text that goes into HAProxy and nginx configs: quoting, and the templates' wall (pure).

The L7 config's models refuse values that could break an engine config; this is the second
wall, for values that got past them (objects built without validation, a future field). The
jinja2 environment's ``finalize`` refuses every interpolated string holding a control
character (CR, LF, NUL, ...), which would end its line and start a directive of its own; the
``word`` filter refuses a bare (unquoted) value holding a space, a quote or a character either
engine reads specially (``#`` comment, ``;`` end of directive, ``{}`` blocks, ``$`` variables,
``\\`` escapes); the quoting functions refuse control characters and escape the rest.
"""
import functools
import os
import re

import jinja2

# Characters a bare word in haproxy.cfg or nginx.conf cannot hold without changing meaning.
WORD_SPECIAL = frozenset(" \t'\"#\\$;{}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class EngineError(Exception):
    """A config the engine cannot express, or an engine that failed to check, start or stop."""


def control_chars(text):
    """Return True if ``text`` holds a control character other than tab.

    Args:
        text (str): a value bound for a config file.
    Returns:
        bool: whether it would break its line.
    """
    return _CONTROL_RE.search(text) is not None


def line_safe(value):
    """The templates' ``finalize``: refuse an interpolated string that would break its line.

    Args:
        value: what a ``{{ ... }}`` expression produced.
    Returns:
        The value, unchanged.
    Raises:
        EngineError: a string with CR, LF, NUL or another control character.
    """
    if isinstance(value, str) and control_chars(value):
        raise EngineError(f"refusing to write {value!r} into an engine config: a control "
                          f"character (CR, LF, NUL) would end the line and start another "
                          f"directive")
    return value


def word(value):
    """The templates' ``word`` filter: a value written bare, as one word of a directive.

    Args:
        value (str|int): an address, a name, a path.
    Returns:
        str: the value as text.
    Raises:
        EngineError: empty, or holds a space, a quote, a control character or one of
            ``# ; { } $ \\``.
    """
    text = str(value)
    bad = sorted({c for c in text if c in WORD_SPECIAL})
    if not text or bad or control_chars(text):
        raise EngineError(f"refusing to write {text!r} unquoted into an engine config: it "
                          f"would not stay one word (holds {bad or 'a control character'})")
    return text


def _no_control(text):
    if control_chars(text):
        raise EngineError(f"refusing to quote {text!r} for an engine config: it holds a "
                          f"control character (CR, LF, NUL)")
    return text


def hq(text):
    """Quote a string for haproxy.cfg: single quotes keep it literal; else escaped double quotes.

    Raises:
        EngineError: ``text`` holds a control character.
    """
    _no_control(text)
    if "'" not in text:
        return f"'{text}'"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def nq(text):
    """Quote a string for nginx.conf: double quotes, backslash and quote escaped.

    Raises:
        EngineError: ``text`` holds a control character.
    """
    return '"' + _no_control(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def nkey(text):
    """A literal nginx map key: escape a leading '~' or a special word with a backslash."""
    if text.startswith("~") or text in ("default", "hostnames", "include", "volatile"):
        text = "\\" + text
    return nq(text)


def nexact(text):
    """A case-sensitive exact-match nginx map key (plain map keys ignore case)."""
    return nq("~^" + re.escape(text) + "$")


@functools.lru_cache(maxsize=1)
def environment():
    """Return the jinja2 environment of ``lb_apps/engines/templates/`` with the wall in place.

    Returns:
        jinja2.Environment: strict undefined, ``finalize`` = :func:`line_safe`, filter ``word``.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False, finalize=line_safe)
    env.filters["word"] = word
    return env
