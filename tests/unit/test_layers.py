"""The layer rule of the house: each package imports only its own layer and the ones below,
and no two lblab modules import each other (directly or round a longer cycle).

    lblab_core  <  topologies  <  lb_apps  <  controllers  <  experiments

Checked two ways: statically, on every ``import`` statement (including those inside functions,
which is where upward imports used to hide), and by importing every lower-layer module in a
fresh interpreter and looking at ``sys.modules``.
"""
import ast
import pathlib
import subprocess
import sys

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAYERS = ("lblab_core", "topologies", "lb_apps", "controllers", "experiments")


def _modules():
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(name, path):
    """Yield the lblab modules that ``name`` imports (resolved, incl. relative and in-function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".")[:len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join(pkg + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in LAYERS:
                yield target


def _graph():
    modules = dict(_modules())
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in _imports(name, path):
            while target and target not in modules:  # `from pkg import name` names a symbol
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.add_edge(name, target)
    return graph


def test_the_module_list_is_what_the_layer_rule_covers():
    names = [n for n, _ in _modules()]
    assert "lblab_core.loader" in names and "experiments.cli" in names and len(names) > 60


def test_no_package_imports_a_higher_layer():
    rank = {p: i for i, p in enumerate(LAYERS)}
    upward = [f"{a} imports {b}" for a, b in _graph().edges
              if rank[b.split(".")[0]] > rank[a.split(".")[0]]]
    assert upward == []


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package's __init__ is imported with each of its modules: not a cycle of code
    graph.remove_nodes_from([n for n in list(graph) if n in LAYERS])
    cycles = sorted(" -> ".join(c + [c[0]]) for c in nx.simple_cycles(graph))
    assert cycles == []


def test_lower_layers_import_without_experiments():
    lower = [n for n, _ in _modules() if n.split(".")[0] != "experiments"]
    code = ("import importlib, sys\n"
            f"for name in {lower!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'experiments')\n"
            "print(len(set(sys.modules) & set(" + repr(lower) + ")), bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"{len(lower)} []"
