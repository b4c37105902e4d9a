"""The L7 reverse proxy: the asyncio server, client and upstream connections, runtime state, HTTP rules, cache, routing, stickiness and health."""
