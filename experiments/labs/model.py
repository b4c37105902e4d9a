"""What a lab is and what a check answers (pure: no I/O)."""
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Check:
    """One autograder verdict.

    Attributes:
        name (str): what is checked, in the student's words ("measured rate at 10 Mbit/s").
        passed (bool): the verdict.
        value: the measured value (a number, a string, or None when it could not be measured).
        expected (str): the expected range or condition, as text ("9.0 .. 10.2 Mbit/s").
        missing (str): when it fails, what is missing or wrong and what to do; "" when it passes.
    """
    name: str
    passed: bool
    value: object
    expected: str
    missing: str = ""

    def as_dict(self):
        """Return the check as a JSON-ready dict."""
        value = self.value
        if isinstance(value, float):
            value = round(value, 4)
        return {"name": self.name, "passed": self.passed, "value": value,
                "expected": self.expected, "missing": self.missing}


@dataclass(frozen=True)
class Lab:
    """One course lab (see the package docstring for the interface)."""
    number: int
    title: str
    layer: str
    specs: tuple
    handout: str
    first_step: str
    check: Callable
    start_spec: str | None = None
    start_balancer: str | None = None
    minutes: str = "45-90"
    extra: dict = field(default_factory=dict)

    @property
    def spec_for_start(self):
        """Return the spec file name ``lblab lab start`` brings up."""
        return self.start_spec or self.specs[0]
