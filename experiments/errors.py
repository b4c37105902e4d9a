"""Errors shared by every lblab command."""


class UsageError(Exception):
    """A user error: printed as ``lblab <command>: error: <message>`` with exit status 2."""
