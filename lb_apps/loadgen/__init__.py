"""The HTTP load generator: its pure workload model (arrivals, users, mixes) and its asyncio client."""
