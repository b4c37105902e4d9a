"""The foundation of lblab: the user-error type, the one-line-error entry point, the one
YAML/JSON loader and small shared helpers.

Every other package (topologies, controllers, lb_apps, experiments) may import this one; it
imports none of them, so errors and inputs are handled the same way at every layer without an
upward import.
"""
