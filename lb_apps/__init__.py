"""Processes that run on the virtual hosts, one subpackage each: ``proxy`` (the L7 reverse
proxy), ``backend`` (the tunable HTTP backend), ``loadgen`` (the load generator) and ``engines``
(HAProxy and nginx from the same L7 config); beside them the pieces they share: the balancing
algorithms (``balancing``, ``maglev``), the L7 config (``l7config``, ``l7models``) and the
request-record format (``records``)."""
