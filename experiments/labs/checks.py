"""Building check verdicts (pure): ranges, conditions, and a verdict for a value not found."""
import math

from experiments.labs.model import Check


def _shown(value, unit=""):
    if value is None:
        return "none"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def range_text(low=None, high=None, unit=""):
    """Return an expected range as text: ``a .. b unit``, ``>= a unit`` or ``<= b unit``."""
    if low is not None and high is not None:
        return f"{_shown(low)} .. {_shown(high, unit)}"
    if low is not None:
        return f">= {_shown(low, unit)}"
    return f"<= {_shown(high, unit)}"


def in_range(name, value, low=None, high=None, unit="", missing=""):
    """Return a Check that ``low <= value <= high`` (either bound may be None).

    Args:
        missing (str): what to tell the student when it fails (the measured value and the range
            are printed anyway).
    """
    expected = range_text(low, high, unit)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Check(name, False, None, expected, missing or "not measured in these results")
    ok = (low is None or value >= low) and (high is None or value <= high)
    return Check(name, ok, value, expected, "" if ok else (
        missing or f"measured {_shown(value, unit)}, outside {expected}"))


def check_true(name, ok, value, expected, missing):
    """Return a Check of a condition; ``missing`` is kept only when it fails."""
    return Check(name, bool(ok), value, expected, "" if ok else missing)


def absent(name, expected, missing):
    """Return a failing Check for something the results do not hold at all."""
    return Check(name, False, None, expected, missing)
