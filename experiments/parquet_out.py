"""``requests.parquet``: every load generator request record of every run, typed (pyarrow).

One row per record of ``raw/<run>/loadgen-*.jsonl`` (``lb_apps.records``), warm-up records
included (``warmup`` says which), with the run's id columns in front and ``counted`` (the
request is in the run's measurement window, as ``experiments.metrics.in_window`` decides) at
the end. Rows come in run order (as ``runs.csv``), then by loadgen file name, then line: the
same raw data always gives the same bytes (no timestamps; zstd; statistics on; one row group
per run). A results folder with no HTTP run (iperf3 only) gets a file with the same columns and
no rows, so a notebook reads every folder the same way.

A new record field needs one line: its type in ``RECORD_TYPES`` (a unit test fails while a field
of ``lb_apps.records.LOADGEN_FIELDS`` has none, or a column is missing from docs/data.md).
"""
import os

import pyarrow as pa
import pyarrow.parquet as pq

from experiments import metrics as M
from experiments.tables import sweep_params, sweep_value
from lb_apps.records import LOADGEN_FIELDS

FILE = "requests.parquet"

# kind -> (arrow type, the Python types a value may have, what the message says was expected)
# (checked here: pyarrow itself would turn 200.5 into 200 in an integer column)
KINDS = {
    "int": (pa.int64(), {int}, "an integer"),
    "float": (pa.float64(), {int, float}, "a number"),
    "str": (pa.string(), {str}, "a string"),
    "bool": (pa.bool_(), {bool}, "true or false"),
}

# record field -> kind (every field of LOADGEN_FIELDS, plus the optional "warmup")
RECORD_TYPES = {
    "v": "int", "id": "str", "client": "str", "scheduled": "float", "start": "float",
    "end": "float", "status": "int", "bytes": "int", "backend": "str", "error": "str",
    "method": "str", "path": "str", "conn": "str", "cache": "str", "pool_wait": "float",
    "connect": "float",
}
ID_COLUMNS = (("run", "str"), ("config", "str"), ("balancer", "str"), ("rep", "int"),
              ("seed", "int"))
TAIL_COLUMNS = (("warmup", "bool"), ("counted", "bool"))
SWEEP_PREFIX = "sweep."


class RecordTypeError(ValueError):
    """A record value that does not fit its column's type (the message names it)."""


def record_fields():
    """Return the record fields in file order: ``LOADGEN_FIELDS`` (each must have a type)."""
    missing = [f for f in LOADGEN_FIELDS if f not in RECORD_TYPES]
    if missing:
        raise RuntimeError(f"experiments/parquet_out.py: RECORD_TYPES has no type for the "
                           f"load generator record field(s) {missing}: add one line each")
    return tuple(LOADGEN_FIELDS)


def sweep_columns(metas):
    """Return ``[(param, kind)]`` of every swept parameter of the runs, in first-seen order."""
    return sweep_params(meta.get("sweep") for meta in metas)


def schema(sweeps):
    """Return the arrow schema of requests.parquet for the given sweep columns."""
    fields = [(name, kind) for name, kind in ID_COLUMNS]
    fields += [(SWEEP_PREFIX + param, kind) for param, kind in sweeps]
    fields += [(name, RECORD_TYPES[name]) for name in record_fields()]
    fields += list(TAIL_COLUMNS)
    return pa.schema([pa.field(name, KINDS[kind][0]) for name, kind in fields])


def _column(name, kind, values, where, records=None):
    arrow_type, allowed, expected = KINDS[kind]
    allowed = allowed | {type(None)}
    for i, v in enumerate(values if not set(map(type, values)) <= allowed else ()):
        if type(v) not in allowed:
            what = "" if records is None else (
                f": the load generator record of client {records[i].get('client')!r} with id "
                f"{records[i].get('id')!r}")
            raise RecordTypeError(f"{where}{what}: field {name!r}: {v!r}: expected {expected} "
                                  f"or null")
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise RecordTypeError(f"{where}: field {name!r}: {exc}") from None


def run_table(meta, records, window, sweeps):
    """Return one run's rows as an arrow table (pure).

    Args:
        meta (dict): the run's meta (sweep as a list, see ``experiments.formats``).
        records (list[dict]): its load generator records, in file order.
        window (tuple|dict|None): the counted window (as for ``metrics.in_window``).
        sweeps (list[tuple]): the sweep columns of the whole folder (``sweep_columns``).
    Raises:
        RecordTypeError: a value that does not fit its column.
    """
    where = f"raw/{meta['run']}"
    n = len(records)
    point = {p["param"]: p["value"] for p in meta.get("sweep") or ()}
    counted = {id(r) for r in M.in_window(records, window)}
    ident = dict(meta, balancer=(meta.get("balancer") or {}).get("name"))
    columns = [_column(name, kind, [ident.get(name)] * n, f"{where}/meta.json")
               for name, kind in ID_COLUMNS]
    for param, kind in sweeps:
        columns.append(_column(SWEEP_PREFIX + param, kind,
                               [sweep_value(point.get(param), kind)] * n, f"{where}/meta.json"))
    for name in record_fields():
        columns.append(_column(name, RECORD_TYPES[name], [r.get(name) for r in records], where,
                               records))
    columns.append(_column("warmup", "bool", [bool(r.get("warmup")) for r in records], where))
    columns.append(pa.array([id(r) in counted for r in records], type=pa.bool_()))
    return pa.Table.from_arrays(columns, schema=schema(sweeps))


class RequestsWriter:
    """Writes requests.parquet run by run (one row group each), atomically on ``close``.

    Args:
        path (str): the file to write (written as ``path.tmp`` first).
        metas (list[dict]): every run's meta, for the sweep columns.
    """

    OPTIONS = {"compression": "zstd", "write_statistics": True, "use_dictionary": True,
               "version": "2.6", "data_page_version": "1.0"}

    def __init__(self, path, metas):
        self.path = path
        self.sweeps = sweep_columns(metas)
        self.schema = schema(self.sweeps)
        self.rows = 0
        self._tmp = path + ".tmp"
        self._writer = pq.ParquetWriter(self._tmp, self.schema, **self.OPTIONS)

    def add(self, meta, records, window):
        """Append one run's records (the ``records_sink`` of ``report.collect``)."""
        table = run_table(meta, records, window, self.sweeps)
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self):
        """Finish the file and move it into place."""
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self):
        """Drop the unfinished file (after an error)."""
        self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)
