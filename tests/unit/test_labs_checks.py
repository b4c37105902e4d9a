"""The labs' checks on results recorded from real runs (tests/unit/fixtures/labs/, made with
trim.py there): each passes on a run of the lab's configuration, fails on a real run of a
wrong one (`lblab lab run N --set ...`, recorded in the fixture's manifest), and fails on a
doctored copy of the right one."""
import csv
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.labs import cmd, registry
from experiments.labs import results as results_mod

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "labs")
LABS = registry.labs()


def verdict(number, name):
    return cmd.grade(LABS[number], results_mod.load(os.path.join(FIXTURES, name)))


def failed(v):
    return {c["name"] for c in v["checks"] if not c["passed"]}


def doctored(tmp_path, name):
    dest = tmp_path / name
    shutil.copytree(os.path.join(FIXTURES, name), dest)
    return dest


def edit_runs_csv(folder, edit):
    path = folder / "runs.csv"
    with open(path, newline="", encoding="utf-8") as fp:
        rows = list(csv.DictReader(fp))
    fields = list(rows[0])
    for row in rows:
        edit(row)
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.DictWriter(fp, fields)
        writer.writeheader()
        writer.writerows(rows)


def edit_requests(folder, edit):
    path = folder / "requests.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        edit(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_the_right_run_passes_every_check(number):
    v = verdict(number, f"lab{number}_right")
    assert v["passed"], failed(v)
    assert v["stamped"] and v["student"] and v["run_id"]


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_the_wrong_run_fails(number):
    name = f"lab{number}_wrong"
    with open(os.path.join(FIXTURES, name, "manifest.json"), encoding="utf-8") as fp:
        overrides = json.load(fp)["overrides"]
    assert overrides, "a wrong run is a real run with an override"
    v = verdict(number, name)
    assert not v["passed"]
    for check in v["checks"]:
        if not check["passed"]:
            assert check["missing"] and check["expected"]


def test_lab1_wrong_run_fails_at_every_rate():
    # a slower backend link (--set topology.params.backend_bw=2): the configured rate is not
    # what the flow got, at any rate
    assert failed(verdict(1, "lab1_wrong")) == {
        "measured rate at 5 Mbit/s", "measured rate at 20 Mbit/s", "measured rate at 80 Mbit/s"}


def test_lab1_doctored_rate_and_unshaped(tmp_path):
    folder = doctored(tmp_path, "lab1_right")

    def halve(row):
        if row["sweep.topology.params.bw"] == "20":
            row["total_mbps"] = str(float(row["total_mbps"]) / 2)
    edit_runs_csv(folder, halve)
    assert failed(cmd.grade(LABS[1], results_mod.load(str(folder)))) == {
        "measured rate at 20 Mbit/s"}

    def unshape(row):
        row["sweep.topology.params.bw"] = ""
    edit_runs_csv(folder, unshape)
    bad = failed(cmd.grade(LABS[1], results_mod.load(str(folder))))
    assert {"every run had a shaped link", "configured rates measured"} <= bad


def test_lab3_doctored_client_on_two_backends(tmp_path):
    folder = doctored(tmp_path, "lab3_right")
    moved = []

    def move_one(row):
        if not moved and row["run"] == "l3_rr-r1" and row["client"] == "h1" and row["counted"]:
            row["backend"] = "b4" if row["backend"] != "b4" else "b1"
            moved.append(row["id"])
    edit_requests(folder, move_one)
    assert failed(cmd.grade(LABS[3], results_mod.load(str(folder)))) == {
        "l3_rr: backends per client (stickiness)"}


def test_lab3_wrong_run_decided_per_connection():
    # --set balancers.0.mode=l4: l3_rr decided per connection, so clients moved between
    # backends and the controller made far more decisions than there are clients
    bad = failed(verdict(3, "lab3_wrong"))
    assert {"l3_rr: controller mode", "l3_rr: backends per client (stickiness)",
            "l3_rr: decisions the controller made per run"} <= bad
    assert not any(name.startswith("l3_iphash") for name in bad)


def test_lab4_wrong_run_was_a_crash():
    v = verdict(4, "lab4_wrong")
    bad = failed(v)
    assert "a backend was drained in every run" in bad
    assert "failed requests over all runs" in bad
    drained = next(c for c in v["checks"] if c["name"] == "a backend was drained in every run")
    assert "kill_backend b2" in drained["missing"]


def test_lab4_doctored_new_connection_after_the_drain(tmp_path):
    folder = doctored(tmp_path, "lab4_right")
    with open(folder / "raw" / "l4_rr-r1" / "meta.json", encoding="utf-8") as fp:
        drain = json.load(fp)["faults"][0]
    done = drain["applied"] + drain["took_s"]
    moved = []

    def to_b2(row):
        if not moved and row["run"] == "l4_rr-r1" and row["backend"] == "b1" \
                and row["conn"] == "new" and row["start"] - row["connect"] > done:
            row["backend"] = "b2"
            moved.append(row["id"])
    edit_requests(folder, to_b2)
    assert moved
    assert failed(cmd.grade(LABS[4], results_mod.load(str(folder)))) == {
        "l4_rr-r1: new connections to b2 after the drain"}


def test_lab4_doctored_broken_request_in_flight(tmp_path):
    folder = doctored(tmp_path, "lab4_right")
    with open(folder / "raw" / "l4_rr-r2" / "meta.json", encoding="utf-8") as fp:
        applied = json.load(fp)["faults"][0]["applied"]
    broke = []

    def reset(row):
        if not broke and row["run"] == "l4_rr-r2" and row["backend"] == "b2" \
                and row["counted"] and row["start"] < applied < row["end"]:
            row["status"], row["error"] = None, "reset"
            broke.append(row["id"])
    edit_requests(folder, reset)
    assert broke
    assert failed(cmd.grade(LABS[4], results_mod.load(str(folder)))) == {
        "l4_rr-r2: of those, broken"}


def test_lab2_wrong_run_is_l3_twice():
    # --set balancers.0.mode=l3: the DSR balancer ran as NAT, one decision per client
    bad = failed(verdict(2, "lab2_wrong"))
    assert bad == {"l2_dsr: controller mode", "l2_dsr: backends that served",
                   "l2_dsr: controller decisions per request"}
