"""Topology generators (pure networkx graphs), the Mininet builder and drawing."""
