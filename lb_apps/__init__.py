"""Processes that run on the virtual hosts (L7 proxy, HTTP backends, load generators) and the shared balancing algorithms."""
