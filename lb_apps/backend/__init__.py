"""The tunable HTTP backend: its pure model (config, service times, faults) and its asyncio server."""
