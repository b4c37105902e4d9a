"""The builtin proxy's malformed-request and smuggling cases against HAProxy and nginx.

One run of bench/malformed_engines.py's comparison: every case of BAD_REQUESTS and SMUGGLING on
each engine (one start each), in front of one recording backend on 127.0.0.1, with a marker
round trip after each case. Asserts what the builtin does and that every case where it answers
differently from both engines is documented; what HAProxy and nginx let through is recorded
(warned about when it changes), never a failure of ours.
"""
import pathlib
import re
import shutil
import time
import warnings

import pytest

from bench.malformed_engines import (CASES, DIFFERS_FROM_BOTH, ENGINE_FORWARDS, SMUGGLING_NAMES,
                                     compare, differs_from_both, forwarded)

pytestmark = [pytest.mark.skipif(not (shutil.which("haproxy") and shutil.which("nginx")),
                                 reason="haproxy and nginx are not installed (make setup)"),
              pytest.mark.timeout(60)]

RUN_BUDGET_SEC = 25.0  # 39 cases x 3 engines took about 4 s here
DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "l7.md"
DOC_SECTION = "## Malformed requests: builtin vs HAProxy vs nginx"


@pytest.fixture(scope="module")
def results():
    t0 = time.monotonic()
    out = compare()
    elapsed = time.monotonic() - t0
    assert elapsed < RUN_BUDGET_SEC, f"comparison took {elapsed:.1f} s"
    return out


def test_every_case_ran_on_every_engine(results):
    names = [name for name, _, _ in CASES]
    assert len(set(names)) == len(names)
    for engine in ("builtin", "haproxy", "nginx"):
        assert list(results[engine]) == names, engine


def test_builtin_answers_every_case_as_expected_and_forwards_nothing(results):
    wrong = {name: (r.statuses, expected) for (name, _, expected), r in
             ((c, results["builtin"][c[0]]) for c in CASES) if r.statuses != (expected,)}
    assert wrong == {}, "case: (answered, expected)"
    reached = forwarded(results, "builtin")
    assert reached == {}, {n: r.text() for n, r in reached.items()}


def test_cases_where_builtin_differs_from_both_engines_are_documented(results):
    measured = differs_from_both(results)
    table = {n: tuple(results[e][n].statuses for e in ("builtin", "haproxy", "nginx"))
             for n in measured ^ set(DIFFERS_FROM_BOTH)}
    assert measured == set(DIFFERS_FROM_BOTH), f"(builtin, haproxy, nginx): {table}"


def _doc_section():
    text = DOC.read_text(encoding="utf-8")
    assert DOC_SECTION in text, f"{DOC}: section {DOC_SECTION!r} is missing"
    section = text.split(DOC_SECTION, 1)[1]
    return re.split(r"\n## ", section, maxsplit=1)[0]


def test_each_difference_is_in_the_docs_with_its_reason():
    lines = _doc_section().splitlines()
    missing = [name for name, reason in DIFFERS_FROM_BOTH.items()
               if not any(f"`{name}`" in line and reason in line for line in lines)]
    assert missing == [], "docs/l7.md gives no line with these cases and their reasons"


def test_every_case_is_in_the_docs_table():
    section = _doc_section()
    assert [name for name, _, _ in CASES if f"| `{name}`" not in section] == []


def test_what_the_engines_forward_is_recorded(results, record_property):
    """Not a check of our code: HAProxy and nginx are whatever Debian ships. A change from the
    record in ENGINE_FORWARDS (and docs/l7.md) is a warning to re-run the bench and the docs."""
    for engine in ("haproxy", "nginx"):
        found = forwarded(results, engine)
        record_property(f"{engine}_forwards", sorted(found))
        record_property(f"{engine}_forwards_smuggling", sorted(set(found) & SMUGGLING_NAMES))
        if set(found) != ENGINE_FORWARDS[engine]:
            warnings.warn(f"{engine} now forwards {sorted(set(found) - ENGINE_FORWARDS[engine])} "
                          f"and no longer {sorted(ENGINE_FORWARDS[engine] - set(found))}; re-run "
                          f"bench/malformed_engines.py and update docs/l7.md", stacklevel=1)
