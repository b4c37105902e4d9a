"""`lblab topo`: list, describe and draw the topology generators."""
import argparse
import json
import os
import re
import textwrap

import yaml

from lblab_core.errors import UsageError
from topologies import graphs


def parse_params(pairs):
    """Turn ``["k=4", "bw=10", "delay=5ms"]`` into ``{"k": 4, "bw": 10, "delay": "5ms"}``.

    Values are read as YAML scalars (ints, floats, booleans, strings).

    Raises:
        UsageError: an item is not ``key=value``.
    """
    params = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects key=value, got {pair!r}")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def build_graph(name, pairs):
    """Build a topology from CLI arguments, turning parameter errors into usage errors."""
    try:
        return graphs.build(name, parse_params(pairs))
    except graphs.TopologyError as exc:
        raise UsageError(str(exc)) from None


DRAW_FORMATS = (".png", ".svg", ".pdf")
LIST_WIDTH = 100
# RST inline markup in the generators' docstrings: :role:`text`, ``literal``, `text`.
_RST_ROLE = re.compile(r":[\w.+-]+:`([^`]*)`")
_RST_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")
# A sentence ends at a full stop followed by a capital letter (so "et al. 2008" does not end one).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def first_sentence(doc):
    """Return the first sentence of a docstring as plain text: whole, on one line, no RST markup.

    Args:
        doc (str|None): a docstring.
    Returns:
        str: the first sentence of its first paragraph ("" for no docstring).
    """
    paragraph = (doc or "").strip().split("\n\n", 1)[0]
    text = " ".join(paragraph.split())
    text = _RST_ROLE.sub(r"\1", text)
    text = _RST_LITERAL.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    return _SENTENCE_END.split(text, 1)[0]


def check_output(path):
    """Check that ``lblab topo draw`` can write a figure to ``path`` before drawing it.

    Args:
        path (str): the ``-o/--output`` value.
    Raises:
        UsageError: the extension is not one of ``DRAW_FORMATS``, the path is a folder, or its
            folder does not exist or is not writable.
    """
    ext = os.path.splitext(path)[1]
    if ext.lower() not in DRAW_FORMATS:
        raise UsageError(f"-o/--output: {path!r}: expected a file ending in "
                         f"{', '.join(DRAW_FORMATS[:-1])} or {DRAW_FORMATS[-1]}, "
                         f"{'not ' + repr(ext) if ext else 'but it has no extension'}")
    if os.path.isdir(path):
        raise UsageError(f"-o/--output: {path!r}: is a folder; expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        reason = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise UsageError(f"-o/--output: {path!r}: cannot write it: {folder!r} {reason}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"-o/--output: {path!r}: cannot write it: folder {folder!r} "
                         "is not writable")


LIST_JSON_HELP = ('print one JSON object: {"topologies": [{"name", "description" (its first '
                  'sentence), "params" ({parameter: default})}], "limits": {"hosts", '
                  '"switches", "links"} (the most one server builds)}')


def list_json():
    """Return ``lblab topo list --json``'s object (keys in ``LIST_JSON_HELP``)."""
    return {"topologies": [{"name": name, "description": first_sentence(func.__doc__),
                            "params": graphs.generator_params(name)}
                           for name, func in graphs.GENERATORS.items()],
            "limits": {"hosts": graphs.MAX_HOSTS_PER_SERVER,
                       "switches": graphs.MAX_SWITCHES_PER_SERVER,
                       "links": graphs.MAX_LINKS_PER_SERVER}}


def _parser():
    parser = argparse.ArgumentParser(prog="lblab topo", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list", help="the topology generators and their parameters")
    p.add_argument("--json", action="store_true", help=LIST_JSON_HELP)
    for action, text in (("info", "counts of switches, hosts and links; roles"),
                         ("draw", "draw a topology to an image file")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name", help=f"one of: {', '.join(graphs.GENERATORS)}")
        p.add_argument("--param", "-p", action="append", metavar="KEY=VALUE",
                       help="a generator parameter (repeatable), e.g. --param k=4")
        if action == "info":
            p.add_argument("--json", action="store_true", help="print JSON")
        else:
            p.add_argument("-o", "--output", required=True,
                           help="output file (.png, .svg or .pdf)")
    return parser


def main(argv):
    """Run ``lblab topo``."""
    args = _parser().parse_args(argv)
    if args.action == "list" and args.json:
        print(json.dumps(list_json(), indent=2))   # topologies and parameters in their order
        return 0
    if args.action == "list":
        for name, func in graphs.GENERATORS.items():
            params = ", ".join(f"{k}={v!r}" for k, v in graphs.generator_params(name).items())
            indent = " " * 12
            print(textwrap.fill(first_sentence(func.__doc__), LIST_WIDTH,
                                initial_indent=f"{name:11s} ", subsequent_indent=indent,
                                break_on_hyphens=False))
            print(textwrap.fill(f"params: {params}", LIST_WIDTH, initial_indent=indent,
                                subsequent_indent=indent + "  ", break_on_hyphens=False))
        print(f"one server builds at most {graphs.MAX_HOSTS_PER_SERVER} hosts, "
              f"{graphs.MAX_SWITCHES_PER_SERVER} switches and {graphs.MAX_LINKS_PER_SERVER} "
              f"links (topologies.graphs.MAX_*_PER_SERVER)")
        return 0
    if args.action == "draw":
        check_output(args.output)
    graph = build_graph(args.name, args.param)
    if args.action == "info":
        info = graphs.summary(graph)
        if args.json:
            print(json.dumps(info, indent=2, sort_keys=True))
        else:
            print(f"topology   {info['topology']} {info['params']}")
            print(f"switches   {info['switches']}")
            print(f"hosts      {info['hosts']}")
            print(f"links      {info['links']} ({info['switch_links']} between switches)")
            print(f"loops      {'yes (loop-free forwarding is installed)' if info['loops'] else 'no'}")
            for role, names in info["roles"].items():
                shown = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
                print(f"{role:10s} {len(names)}: {shown}")
            if info["link_features"]:
                print(f"shaping    {', '.join(info['link_features'])}")
        return 0
    from topologies.draw import draw
    try:
        draw(graph, args.output)
    except OSError as exc:  # what check_output cannot see: a full disk, a read-only mount
        raise UsageError(f"-o/--output: {args.output!r}: cannot write it: "
                         f"{exc.strerror or exc}") from None
    print(f"wrote {args.output}")
    return 0
