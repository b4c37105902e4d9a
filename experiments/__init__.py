"""Experiments: specs, the runner, metrics, plots, reports and the lblab CLI."""

__version__ = "0.1.0"
