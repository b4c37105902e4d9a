"""pyproject.toml ships every package and every data file the code loads (a non-editable install)."""
import fnmatch
import os
import tomllib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOP = ("lblab_core", "topologies", "controllers", "lb_apps", "experiments")


def config():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fp:
        return tomllib.load(fp)["tool"]["setuptools"]


def test_every_package_is_listed():
    found = set()
    for top in TOP:
        for dirpath, dirnames, files in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if "__init__.py" in files:
                found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    assert found == set(config()["packages"])


def test_every_shipped_spec_and_template_is_package_data():
    data = config()["package-data"]
    missing = []
    for pkg in ("experiments", "lb_apps.engines", "experiments.live"):
        base = os.path.join(ROOT, *pkg.split("."))
        for dirpath, dirnames, files in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"
                           and not os.path.exists(os.path.join(dirpath, d, "__init__.py"))]
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), base)
                if name.endswith((".py", ".pyc")):
                    continue
                if not any(fnmatch.fnmatch(rel, pat) and rel.count(os.sep) == pat.count("/")
                           for pat in data.get(pkg, [])):
                    missing.append(f"{pkg}: {rel}")
    assert missing == []
