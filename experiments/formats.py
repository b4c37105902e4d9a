"""The format versions of a results folder, in one place, and the checks that read them (pure).

Three numbers describe what a results folder holds:

* ``FORMAT_VERSION``: the results folder as a whole — ``format_version`` in ``manifest.json``
  and ``summary.json``, and the shape of the derived files (``runs.csv``, ``summary.csv``,
  ``summary.json``, ``requests.parquet``). 1: ``summary.csv`` with a row per run and
  ``mean``/``ci95`` rows, no ``runs.csv`` or ``requests.parquet`` (a folder without
  ``format_version`` is format 1). 2: ``runs.csv`` (one row per run), ``summary.csv`` (one row per
  configuration with ``<metric>_mean|low|high|method|n`` columns), ``requests.parquet``,
  ``format_version`` recorded.
* ``META_VERSION``: one run's ``raw/<run>/meta.json`` (its ``"v"``). 1: ``"sweep"`` is
  ``{"param", "value"}`` or null. 2: ``"sweep"`` is a list ``[{"param", "value"}, ...]`` in
  spec order, or null. The report reads ``META_VERSIONS``.
* the request records' own version: ``lb_apps.records.FORMAT_VERSION`` (owned there).

``lblab report`` rebuilds format-2 files from a format-1 folder's ``raw/`` (its metas are v1);
what it cannot read gets one line saying what to do (:class:`FormatError`).
"""

FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)
META_VERSION = 2
META_VERSIONS = (1, 2)


class FormatError(ValueError):
    """A results folder, run or summary this lblab cannot read; the message says what to do."""


def _readable(versions):
    return f"{versions[0]}-{versions[-1]}" if len(versions) > 1 else str(versions[0])


def check_version(version, versions, where, what, redo):
    """Check one recorded format version.

    Args:
        version: the recorded value (``None`` when the file has none).
        versions (tuple[int]): the versions this lblab reads.
        where (str): the file, for the message.
        what (str): what the number versions (``"lblab format"``, ``"run format"``).
        redo (str): what to do with an older, unreadable file (``"re-run the spec: ..."``).
    Returns:
        int: the version.
    Raises:
        FormatError: newer than this lblab (upgrade lblab), older or not a version (``redo``).
    """
    if isinstance(version, bool) or not isinstance(version, int):
        raise FormatError(f"{where}: no {what} version (found {version!r}): made by an lblab "
                          f"older than {what} {versions[0]} or not by lblab; this lblab reads "
                          f"{what} {_readable(versions)}: {redo}")
    if version > versions[-1]:
        raise FormatError(f"{where}: made by {what} {version}; this lblab reads {what} "
                          f"{_readable(versions)}: upgrade lblab (pip install -U lblab, or "
                          f"git pull and make setup) to read it")
    if version not in versions:
        raise FormatError(f"{where}: made by {what} {version}; this lblab reads {what} "
                          f"{_readable(versions)}: {redo}")
    return version


def results_version(doc, where, redo):
    """Return the results format of a ``manifest.json`` or ``summary.json`` (1 when absent).

    Raises:
        FormatError: a newer or unknown format.
    """
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: expected a JSON object, found {type(doc).__name__}: {redo}")
    if "format_version" not in doc:
        return 1   # written before format versions were recorded
    return check_version(doc["format_version"], FORMAT_VERSIONS, where, "lblab format", redo)


def normalise_meta(meta, where, redo):
    """Check a run's ``meta.json`` and return it in the current (v2) shape.

    v1's ``"sweep": {"param", "value"}`` becomes the one-element list ``[{"param",
    "value"}]``; ``"v"`` is kept as recorded.

    Args:
        meta (dict): the decoded ``meta.json``.
        where (str): its path, for messages.
        redo (str): what to do with an unreadable run (``"re-run the spec: ..."``).
    Returns:
        dict: a new dict; ``sweep`` is a list of ``{"param", "value"}`` or None.
    Raises:
        FormatError: not an object, an unknown version, or a sweep of the wrong shape.
    """
    if not isinstance(meta, dict):
        raise FormatError(f"{where}: expected a JSON object, found {type(meta).__name__}: "
                          f"{redo}")
    version = check_version(meta.get("v"), META_VERSIONS, where, "run format", redo)
    out = dict(meta)
    sweep = meta.get("sweep")
    if sweep is None:
        return out
    if version == 1 and isinstance(sweep, dict):
        sweep = [sweep]
    if not isinstance(sweep, list) or not all(
            isinstance(p, dict) and "param" in p and "value" in p for p in sweep):
        shape = "{param, value}" if version == 1 else "[{param, value}, ...]"
        raise FormatError(f"{where}: sweep: {sweep!r}: expected {shape} or null in run format "
                          f"{version}: {redo}")
    out["sweep"] = [{"param": p["param"], "value": p["value"]} for p in sweep]
    return out
