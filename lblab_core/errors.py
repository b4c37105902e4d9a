"""Errors shared by every lblab layer (the bottom of the import graph, like h11's _util)."""


class UsageError(Exception):
    """A user error: printed as ``lblab <command>: error: <message>`` with exit status 2."""


class InputError(UsageError):
    """An input file that cannot be used; ``errors`` holds every problem found, one line each.

    Args:
        errors (list[str]): located problems, e.g. ``spec.yaml:12: balancers[0].name: ...``.
    """

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))
