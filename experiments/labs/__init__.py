"""Course labs: one lab per OSI layer, started, run and graded with ``lblab lab``.

The interface a lab is written against (labs live in ``experiments/labs/lab<N>.py``, found by
name: adding a lab is adding that module, nothing else to register):

``LAB = Lab(...)`` at module level, a :class:`experiments.labs.model.Lab`:

- ``number`` (int), ``title`` (str), ``layer`` (the OSI layer, e.g. ``"physical"``);
- ``specs``: the lab's measurement spec(s), file names in ``experiments/specs/labs/``;
  ``lblab lab run N`` runs each through the normal runner (``experiments.runner``). One spec:
  the results folder is the runner's own folder. Several specs: a lab folder
  ``<out>/lab<N>-<UTC time>/`` holding one results folder per spec;
- ``start_spec`` / ``start_balancer``: what ``lblab lab start N`` brings up at a ``mininet>``
  prompt (the machinery of ``lblab shell``; default the first spec and its first balancer);
- ``handout``: the handout's path from the repository root (``docs/labs/lab<N>.md``);
- ``first_step``: the text printed when the prompt opens (the handout holds it verbatim: a
  unit test checks that);
- ``check``: a pure function ``check(results) -> list[Check]`` over the loaded results
  (:class:`experiments.labs.results.LabResults`: ``manifest``, ``runs`` (runs.csv rows, typed),
  ``metas`` (``raw/<run>/meta.json``), ``requests()`` (requests.parquet as a list of dicts),
  ``stamp`` (``lab.json``); for several specs ``results.part(spec_name)``). Build each verdict
  with :func:`experiments.labs.checks.in_range` / ``check_true`` (name, measured value,
  expected range, what is missing when it fails); no I/O, so it is unit-tested on fixtures.

``lblab lab run N --student ID`` writes ``lab.json`` beside ``manifest.json`` (lab number,
student id, a random run id, the time): ``lblab lab check`` prints the student and the run id,
so two students handing in the same folder show the same run id. ``lblab lab check`` exits 0
when every check passes, 1 when some fail, 2 on a usage error.

Modules: ``model`` (Lab, Check), ``checks`` (verdict helpers), ``results`` (loading a results
folder, stamping), ``registry`` (finding the labs), ``cmd`` (the ``lblab lab`` command),
``measure`` (measurements labs 5-8 share), and ``lab<N>`` (one lab each).
"""
