"""Finding the labs: every module ``experiments/labs/lab<N>.py`` with a ``LAB``."""
import importlib
import os
import pkgutil
import re

from experiments.labs.model import Lab
from lblab_core.errors import UsageError

_LAB_MODULE = re.compile(r"lab(\d+)")
SPEC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "specs", "labs")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def labs():
    """Return ``{number: Lab}`` of every lab module, in order of number.

    Raises:
        AssertionError: a lab module without a ``Lab`` named LAB, or whose number is not its
            module's (a programming error, caught by the unit tests).
    """
    found = {}
    package = os.path.dirname(os.path.abspath(__file__))
    for info in pkgutil.iter_modules([package]):
        match = _LAB_MODULE.fullmatch(info.name)
        if not match:
            continue
        lab = importlib.import_module(f"experiments.labs.{info.name}").LAB
        assert isinstance(lab, Lab) and lab.number == int(match.group(1)), info.name
        found[lab.number] = lab
    return dict(sorted(found.items()))


def get(number):
    """Return lab ``number`` or raise UsageError listing the labs there are."""
    all_labs = labs()
    if number not in all_labs:
        raise UsageError(f"lab {number}: no such lab; expected one of "
                         f"{', '.join(str(n) for n in all_labs)} (lblab lab list)")
    return all_labs[number]


def spec_path(name):
    """Return the path of a lab spec file name (in ``experiments/specs/labs/``)."""
    return os.path.join(SPEC_DIR, name)


def handout_path(lab):
    """Return the absolute path of a lab's handout."""
    return os.path.join(REPO, lab.handout)
