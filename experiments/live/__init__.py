"""The live view and the replay (issue 14): telemetry, the frame feed and the read-only server.

Modules: ``parsers`` (pure parsers of ``ovs-ofctl``/``ovs-appctl`` output), ``telemetry`` (the
1 Hz sampler of a run, writing ``raw/<run>/telemetry.jsonl``), ``feed`` (pure: frames from
samples and load generator records; its docstring and docs/live.md are the page's contract),
``replay`` (a results folder read into frames), ``hub`` (the live runs' frames for the server),
``server`` (Starlette + uvicorn in a thread). ``static/`` is the page.
"""
