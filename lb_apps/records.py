"""JSONL request records written by backends and load generators, read back by experiments.metrics.

One JSON object per line, ``sort_keys=True``, every object carrying ``"v": FORMAT_VERSION``.
Times are epoch float seconds; durations (``wait``, ``service_time``, ``pool_wait``,
``connect``) seconds.
Readers accept every version in ``READABLE_VERSIONS``; a field a version lacks is absent.

Format history:
    1: first version. Backend records: ``BACKEND_FIELDS``; load generator records:
       ``LOADGEN_FIELDS`` without ``pool_wait`` (plus ``"warmup": true`` on warm-up records
       when they are kept).
    2: load generator records gain ``pool_wait``: seconds the request waited for a free
       connection of the client's pool (0.0 when one was free or could be opened at once), and
       ``connect``: seconds the request's new connection took to connect (0.0 on a reused
       one), so ``start - scheduled - pool_wait - connect`` is the generator's own lag.
       Backend records are unchanged.
"""
import json
import os

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# Backend record, one per data request (control paths /health, /stats, /admin/* are not recorded).
# status 0 means no complete response was sent (fault modes hang and close).
# wait: seconds queued for a capacity slot; service_time: seconds being served after that.
BACKEND_FIELDS = ("v", "id", "backend", "arrival", "wait", "service_time", "status", "bytes",
                  "method", "path", "client")

# Load generator record, one per request sent. latency = end - scheduled (open loop: the planned
# send time, so a slow server cannot hide its queueing delay; closed loop: when the user sent it).
# pool_wait, connect (version 2): seconds waited for a free connection of the pool, seconds the
# request's new connection took to connect.
LOADGEN_FIELDS = ("v", "id", "client", "scheduled", "start", "end", "status", "bytes", "backend",
                  "error", "method", "path", "conn", "cache", "pool_wait", "connect")

RECORD_FIELDS = {"backend": BACKEND_FIELDS, "loadgen": LOADGEN_FIELDS}
# The fields each older version lacks.
_ADDED_IN = {"pool_wait": 2, "connect": 2}


class RecordFormatError(ValueError):
    """A records file line that is not a record of the expected format version and kind."""


def check_record(record, kind):
    """Check one decoded record against the format.

    Args:
        record (dict): a decoded record.
        kind (str): ``"backend"`` or ``"loadgen"``.
    Returns:
        dict: the same record.
    Raises:
        RecordFormatError: wrong version or missing fields.
    """
    if kind not in RECORD_FIELDS:
        raise ValueError(f"record kind {kind!r} must be one of {sorted(RECORD_FIELDS)}")
    if not isinstance(record, dict):
        raise RecordFormatError(f"record must be a JSON object, not {type(record).__name__}")
    version = record.get("v")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise RecordFormatError(f"record field 'v' is {version!r}, expected one of "
                                f"{', '.join(map(str, READABLE_VERSIONS))}")
    missing = [f for f in RECORD_FIELDS[kind] if f not in record
               and _ADDED_IN.get(f, 1) <= version]
    if missing:
        raise RecordFormatError(f"{kind} record lacks fields {missing}")
    return record


def encode_record(record):
    """Return one record as a JSONL line (with the trailing newline)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"


class RecordWriter:
    """Buffered JSONL writer: ``add`` is cheap, ``flush`` writes, ``close`` flushes and closes.

    The file is created exclusively: a result is never overwritten.

    Args:
        path (str): file to create.
        encode (callable): turns one buffered item into a JSONL line (default: the item is a
            record dict, encoded by ``encode_record``). Callers on a hot path buffer tuples and
            pass a fast ``encode`` so the work is deferred to ``flush``.
    Raises:
        FileExistsError: ``path`` already exists.
    """

    def __init__(self, path, encode=None):
        self.path = path
        self._encode = encode or encode_record
        self._buffer = []
        self.written = 0
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._fp = open(path, "x", encoding="utf-8")

    def add(self, item):
        """Buffer one record (or one item for ``encode``)."""
        self._buffer.append(item)

    def __len__(self):
        return len(self._buffer)

    def flush(self):
        """Write the buffered records to the file."""
        if self._fp is None or not self._buffer:
            return
        items, self._buffer = self._buffer, []
        encode = self._encode
        lines = [encode(i) for i in items]
        self._fp.write("".join(lines))
        self._fp.flush()
        self.written += len(lines)

    def close(self):
        """Flush and close; calling it twice is harmless."""
        if self._fp is None:
            return
        self.flush()
        self._fp.close()
        self._fp = None


def iter_records(path, kind=None):
    """Yield the records of a JSONL file.

    Args:
        path (str): the records file.
        kind (str|None): if given, check each record against that kind's fields.
    Yields:
        dict: one record.
    Raises:
        RecordFormatError: a line that is not valid JSON or not a valid record (names the line).
    """
    with open(path, encoding="utf-8") as fp:
        for lineno, line in enumerate(fp, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise RecordFormatError(f"{path}:{lineno}: not JSON ({exc})") from None
            if kind is not None:
                try:
                    check_record(record, kind)
                except RecordFormatError as exc:
                    raise RecordFormatError(f"{path}:{lineno}: {exc}") from None
            elif not isinstance(record, dict) or record.get("v") not in READABLE_VERSIONS \
                    or isinstance(record.get("v"), bool):
                raise RecordFormatError(
                    f"{path}:{lineno}: record field 'v' must be one of "
                    f"{', '.join(map(str, READABLE_VERSIONS))}")
            yield record


def read_records(path, kind=None):
    """Return all records of a JSONL file as a list (see ``iter_records``)."""
    return list(iter_records(path, kind))
