"""Would compiling the proxy's Python with Cython make it faster? The proxy's modules as they are
(no annotations, no ``.pxd``), compiled by Cython into a copy of this checkout, against the
interpreted modules, in ``bench/l7_hotloop.py``'s tight loop, alternating.

It copies this checkout's ``lb_apps`` into a temporary folder, compiles ``--modules`` there
(Cython 3, ``language_level=3``; the ``.so`` files shadow the ``.py`` files beside them), checks
that the compiled copy answers one request as the interpreted one does (``l7_hotloop --check``),
then runs ``bench/l7_hotloop.py --tree`` on each tree ``--rounds`` times in turn and prints each
run and the best and median of each. No root, no network; about a minute to compile.

Needs Cython, which lblab itself does not use: ``.venv/bin/pip install cython``. The proxy stays
plain Python (docs/l7.md, "Round 4", has the figures and why).

Usage: .venv/bin/python bench/l7_cython.py [--rounds 4] [--close] [--modules a.py,b.py]
"""
import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOTLOOP = ROOT / "bench" / "l7_hotloop.py"
MODULES = ("lb_apps/proxy/conn.py", "lb_apps/proxy/upstream.py", "lb_apps/proxy/http_rules.py",
           "lb_apps/proxy/runtime.py", "lb_apps/proxy/routing.py", "lb_apps/proxy/sticky.py",
           "lb_apps/balancing.py")
BUILD = """
import sys
from Cython.Build import cythonize
from setuptools import setup
setup(ext_modules=cythonize(sys.argv[1:], language_level=3, quiet=True),
      script_args=["build_ext", "--inplace"])
"""


def compiled_tree(work, modules):
    """Copy this checkout's ``lb_apps`` into ``work`` and compile ``modules`` there."""
    shutil.copytree(ROOT / "lb_apps", work / "lb_apps",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    (work / "build_ext.py").write_text(BUILD, encoding="utf-8")
    # setuptools reads a pyproject.toml in the current folder: build where there is none
    done = subprocess.run([sys.executable, "build_ext.py", *modules], cwd=work,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"Cython build failed:\n{done.stderr[-3000:]}")
    missing = [m for m in modules if not list((work / m).parent.glob(Path(m).stem + ".*.so"))]
    if missing:
        raise SystemExit(f"Cython built no extension for: {', '.join(missing)}")


def hotloop(tree, close, requests, repeat):
    """Run bench/l7_hotloop.py on ``tree``; return its µs per request."""
    cmd = [sys.executable, str(HOTLOOP), "--tree", str(tree), "--requests", str(requests),
           "--repeat", str(repeat)] + (["--close"] if close else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([0-9.]+) us CPU per request", out).group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/l7_cython.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="runs of each tree, alternating")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5, help="l7_hotloop's best-of count")
    parser.add_argument("--close", action="store_true", help="a new client connection per request")
    parser.add_argument("--modules", default=",".join(MODULES),
                        help="modules to compile, relative to the checkout")
    args = parser.parse_args(argv)
    try:
        import Cython  # noqa: F401 - only its presence is checked here
    except ImportError:
        raise SystemExit("bench/l7_cython.py needs Cython: .venv/bin/pip install cython") from None
    modules = [m for m in args.modules.split(",") if m]
    unknown = [m for m in modules if not (ROOT / m).is_file()]
    if unknown:
        raise SystemExit(f"--modules: {', '.join(unknown)}: expected files of this checkout "
                         f"such as {MODULES[0]}")
    with tempfile.TemporaryDirectory(prefix="lblab-cython-") as tmp:
        work = Path(tmp)
        print(f"compiling {len(modules)} modules with Cython {Cython.__version__} ...",
              flush=True)
        compiled_tree(work, modules)
        subprocess.run([sys.executable, str(HOTLOOP), "--tree", str(work), "--requests", "10"],
                       check=True, capture_output=True)  # its check() asserts both directions
        runs = {"interpreted": [], "compiled": []}
        for r in range(args.rounds):
            order = [("interpreted", ROOT), ("compiled", work)]
            for name, tree in (order if r % 2 == 0 else order[::-1]):
                runs[name].append(hotloop(tree, args.close, args.requests, args.repeat))
                print(f"round {r + 1} {name:<12} {runs[name][-1]:6.2f} us per request",
                      flush=True)
    case = "connection per request" if args.close else "keep-alive"
    print(f"\n{case}, bench/l7_hotloop.py (best of {args.repeat} x {args.requests} each run):")
    for name, values in runs.items():
        print(f"  {name:<12} best {min(values):6.2f}  median {statistics.median(values):6.2f} us")
    ratio = statistics.median(runs["compiled"]) / statistics.median(runs["interpreted"])
    print(f"  compiled / interpreted (medians): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
