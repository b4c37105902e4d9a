"""Loading a lab's results folder for the checker, and stamping it (``lab.json``).

A thin shell: it reads ``manifest.json``, ``runs.csv``, ``raw/<run>/meta.json``,
``requests.parquet`` and ``lab.json`` (docs/data.md) into plain Python values; the checks are
pure functions over :class:`LabResults`.
"""
import csv
import datetime
import json
import os
import uuid

from lblab_core.errors import UsageError

STAMP_FILE = "lab.json"
STAMP_VERSION = 1


def _typed(text):
    """runs.csv cell -> None, bool, int, float or the string."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class LabResults:
    """One results folder as the checks see it.

    Attributes:
        path (str): the folder.
        manifest (dict): ``manifest.json``.
        runs (list[dict]): ``runs.csv`` rows, cells typed (empty -> None).
        metas (dict): run id -> ``raw/<run>/meta.json`` (the runs whose meta is present).
        stamp (dict|None): ``lab.json`` or None when the folder was not made by ``lblab lab run``.
        parts (dict): spec name -> LabResults, for a lab of several specs (else empty).
    """

    def __init__(self, path, manifest=None, runs=None, metas=None, stamp=None, parts=None,
                 requests=None):
        self.path = path
        self.manifest = manifest or {}
        self.runs = runs or []
        self.metas = metas or {}
        self.stamp = stamp
        self.parts = parts or {}
        self._requests = requests

    @property
    def name(self):
        """The spec's name (from the manifest)."""
        return (self.manifest.get("spec") or {}).get("name") or os.path.basename(self.path)

    def ok_runs(self):
        """Return the runs.csv rows of the ok runs."""
        return [r for r in self.runs if r.get("status") == "ok"]

    def part(self, name):
        """Return the results of the lab's spec ``name`` (a lab of several specs), or None."""
        return self.parts.get(name)

    def requests_by_run(self):
        """Return ``{run id: [request, ...]}`` of requests.parquet."""
        out = {}
        for req in self.requests():
            out.setdefault(req["run"], []).append(req)
        return out

    def backend_records(self, run):
        """Return the backend records of ``run`` (``raw/<run>/backend-*.jsonl``), every file."""
        folder = os.path.join(self.path, "raw", run)
        records = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            if name.startswith("backend-") and name.endswith(".jsonl"):
                with open(os.path.join(folder, name), encoding="utf-8") as fp:
                    records += [json.loads(line) for line in fp if line.strip()]
        return records

    def controller_stats(self, run):
        """Return ``raw/<run>/stats-controller.json`` (the controller's /stats), or None."""
        path = os.path.join(self.path, "raw", run, "stats-controller.json")
        return _read_json(path, "controller stats") if os.path.isfile(path) else None

    def requests(self):
        """Return every load generator request (requests.parquet) as a list of dicts."""
        if self._requests is None:
            path = os.path.join(self.path, "requests.parquet")
            if not os.path.isfile(path):
                self._requests = []
            else:
                import pyarrow.parquet as pq
                self._requests = pq.read_table(path).to_pylist()
        return self._requests


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as fp:
            return json.load(fp)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: the {what} is not JSON: {exc}") from None


def load_one(path):
    """Load one results folder (one spec's); raise UsageError naming what is missing."""
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise UsageError(f"{path}: not a results folder (no manifest.json); give the folder "
                         f"'lblab lab run' printed")
    runs_csv = os.path.join(path, "runs.csv")
    if not os.path.isfile(runs_csv):
        raise UsageError(f"{path}: no runs.csv (the report was not built); build it with: "
                         f"lblab report {path}")
    manifest = _read_json(os.path.join(path, "manifest.json"), "manifest")
    with open(runs_csv, encoding="utf-8", newline="") as fp:
        runs = [{k: _typed(v) for k, v in row.items()} for row in csv.DictReader(fp)]
    metas = {}
    raw = os.path.join(path, "raw")
    for run in sorted(os.listdir(raw)) if os.path.isdir(raw) else ():
        meta = os.path.join(raw, run, "meta.json")
        if os.path.isfile(meta):
            metas[run] = _read_json(meta, "run's meta")
    stamp_path = os.path.join(path, STAMP_FILE)
    stamp = _read_json(stamp_path, "lab stamp") if os.path.isfile(stamp_path) else None
    return LabResults(path, manifest, runs, metas, stamp)


def load(path):
    """Load a lab's results: one results folder, or a lab folder of several (one per spec)."""
    if not os.path.isdir(path):
        raise UsageError(f"RESULTS_DIR {path!r}: no such folder")
    if os.path.isfile(os.path.join(path, "manifest.json")):
        return load_one(path)
    subs = sorted(d for d in os.listdir(path)
                  if os.path.isfile(os.path.join(path, d, "manifest.json")))
    if not subs:
        raise UsageError(f"RESULTS_DIR {path!r}: not a results folder (no manifest.json in it "
                         f"or in a folder below it)")
    parts = {}
    for sub in subs:
        one = load_one(os.path.join(path, sub))
        parts[one.name] = one
    stamp_path = os.path.join(path, STAMP_FILE)
    stamp = _read_json(stamp_path, "lab stamp") if os.path.isfile(stamp_path) else None
    return LabResults(path, stamp=stamp, parts=parts)


def new_stamp(lab_number, student, now=None, run_id=None):
    """Return the ``lab.json`` of a new run: lab, student, a random run id, the UTC time."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"v": STAMP_VERSION, "lab": lab_number, "student": student,
            "run_id": run_id or uuid.uuid4().hex,
            "made": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def write_stamp(folder, stamp):
    """Write ``lab.json`` into ``folder``."""
    with open(os.path.join(folder, STAMP_FILE), "w", encoding="utf-8") as fp:
        json.dump(stamp, fp, indent=1, sort_keys=True)
        fp.write("\n")
