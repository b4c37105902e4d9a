"""The model twin: a pure discrete-event simulation of an HTTP spec (``lblab model SPEC``).

``sim`` is the event core (clients, backends), ``systems`` maps a spec's configuration to a
modelled system with lblab's own balancers, ``predict`` runs windows and their spread,
``theory`` holds the closed forms the tests check the simulation against, ``cli`` the command.
See docs/model.md.
"""
