"""Stable balancer styles (experiments/styles.py) and their styles.json (experiments/figures.py)."""
import json
import os

from experiments import figures
from experiments import styles as S


def _pairs(mapping):
    return [(s["color"], s["hatch"]) for s in mapping.values()]


def test_every_balancer_of_a_figure_differs_in_colour_or_hatch():
    for count in (1, 2, 8, 9, 20, S.SLOTS):
        names = [f"lb{i}" for i in range(count)]
        mapping = S.assign_styles(names)
        assert list(mapping) == names
        assert len(set(_pairs(mapping))) == count, count
    eight = S.assign_styles([f"lb{i}" for i in range(len(S.PALETTE))])
    # up to the palette's size colours alone tell them apart, without hatches
    assert len({s["color"] for s in eight.values()}) == len(S.PALETTE)
    assert {s["hatch"] for s in eight.values()} == {S.HATCHES[0]}


def test_same_names_same_styles_and_existing_slots_are_kept():
    first = S.assign_styles(["rr", "lc", "p2c"])
    assert S.assign_styles(["rr", "lc", "p2c"]) == first
    # a later folder (lblab rerun) lists the balancers in another order and adds one
    later = S.assign_styles(["maglev", "p2c", "rr"], existing=first)
    for name in ("rr", "lc", "p2c"):
        assert later[name] == first[name]
    assert later["maglev"]["slot"] == 3
    assert len(set(_pairs(later))) == 4


def test_a_new_balancer_takes_the_lowest_free_slot():
    existing = {"a": S.style_of_slot(0), "c": S.style_of_slot(2)}
    mapping = S.assign_styles(["a", "b", "c", "d"], existing)
    assert mapping["b"]["slot"] == 1 and mapping["d"]["slot"] == 3


def test_damaged_entries_are_assigned_anew():
    existing = {"a": {"slot": "zero"}, "b": {"slot": 0}, "c": {"slot": 0}, "d": {"slot": True}}
    mapping = S.assign_styles(["a", "b", "c", "d"], existing)
    assert mapping["b"]["slot"] == 0
    assert len({s["slot"] for s in mapping.values()}) == 4
    assert S.mapping_of({"v": 99, "styles": {}}) == {}
    assert S.mapping_of(["not", "a", "mapping"]) == {}
    assert S.mapping_of(S.styles_document(mapping)) == mapping


def test_styles_json_is_written_then_reused_and_extended(tmp_path):
    run_dir = str(tmp_path)
    path = os.path.join(run_dir, figures.STYLES_FILE)
    first = figures.load_styles(run_dir, ["l4_rr", "l7_rr"])
    with open(path, encoding="utf-8") as fp:
        assert S.mapping_of(json.load(fp)) == first
    # a copied styles.json (lblab rerun) is reused: l7_rr keeps its colour in a folder where
    # l4_rr is missing and a new balancer comes first
    again = figures.load_styles(run_dir, ["l7_lc", "l7_rr"])
    assert again["l7_rr"] == first["l7_rr"] and again["l4_rr"] == first["l4_rr"]
    assert again["l7_lc"]["slot"] == 2
    with open(path, encoding="utf-8") as fp:
        assert S.mapping_of(json.load(fp)) == again
    # a damaged file is replaced, not trusted
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("{not json")
    assert figures.load_styles(run_dir, ["x"]) == {"x": S.style_of_slot(0)}
