"""Scaling a lab out over several servers on Mininet's cluster edition (docs/scale.md).

``placement`` (which server runs each node), ``ssh`` (command lines, ``ssh -F``), ``nodes`` (the
cluster edition's classes, fixed: no sudo, ``ssh -F``, unique tap names, lblab's cleanup),
``network`` (``ClusterNetwork``, a ``LabNetwork`` across servers), ``agent`` (lblab's side on each
server: its registry record, its processes, its cleanup), ``servers`` (doctor and clean of every
server) and ``private_sshd`` (a second "server" on one machine, for tests).
"""
