"""A fuzzer for the L7 proxy's request path (issue 9 section 2), shared by
``tests/unit/test_proxy_fuzz.py`` (a bounded run in the test suite, proxy in-process) and
``bench/fuzz_proxy.py`` (the long run, proxy as its own process).

- ``cases``: the lab's routes, the seed attacks, seeded mutations (pure);
- ``checks``: a strict reference parse of what a client sent, the proxy's responses, the rules
  for what a backend may receive (pure);
- ``net``: strict recording backends (h11) and the fuzz client (asyncio).

Every request carries an id twice: in its target (``.../fz/<id>``) and in ``X-Fz-Id``. A
backend request whose two ids differ was spliced together from two client requests; one without
the proxy's ``Via`` was framed by nobody but the client (smuggled). Ids are ``<case>r<k>`` for the
k-th request a case sends, ``<case>s<k>`` for requests hidden in a body, ``<case>v`` for the
plain GET a second client sends after the case, ``p<n>`` for liveness probes.
"""
