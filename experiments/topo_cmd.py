"""`lblab topo`: list, describe and draw the topology generators."""
import argparse
import json

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


def _parser():
    parser = argparse.ArgumentParser(prog="lblab topo", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the topology generators and their parameters")
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
    if args.action == "list":
        for name, func in graphs.GENERATORS.items():
            params = ", ".join(f"{k}={v!r}" for k, v in graphs.generator_params(name).items())
            print(f"{name:11s} {func.__doc__.strip().splitlines()[0]}")
            print(f"{'':11s} params: {params}")
        print(f"one server builds at most {graphs.MAX_HOSTS_PER_SERVER} hosts, "
              f"{graphs.MAX_SWITCHES_PER_SERVER} switches and {graphs.MAX_LINKS_PER_SERVER} "
              f"links (topologies.graphs.MAX_*_PER_SERVER)")
        return 0
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
    if not args.output.lower().endswith((".png", ".svg", ".pdf")):
        raise UsageError(f"-o/--output must end in .png, .svg or .pdf, got {args.output!r}")
    draw(graph, args.output)
    print(f"wrote {args.output}")
    return 0
