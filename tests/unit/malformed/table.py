"""The malformed-input table's harness: each test module lists cases for one input; this runs
them all in one child process (``runner.py``) and checks each result the same way.

A case passes when its command exits 2, prints no traceback, and its problem lines (stderr,
without ``lblab validate``'s closing count) are exactly one line that names the file, the line
when the input parsed far enough to have one, and contains the expected text.
"""
import base64
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
RUN_LIMIT_SEC = 240


def case(case_id, content, expected, line=None, command=None, filename=None, extra=()):
    """One malformed input.

    Args:
        case_id (str): a unique name.
        content (str|bytes): the file's contents.
        expected (str): text the one error line must contain (field, value or expectation).
        line (int|None): the line the error must name (None: not checked).
        command (str|None): runner command (default: the table's).
        filename (str|None): file name (default: ``<case_id>.yaml``).
        extra (tuple): more arguments after the file.
    Returns:
        dict: the case.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    return {"id": case_id, "content": base64.b64encode(data).decode(), "expected": expected,
            "line": line, "command": command, "filename": filename or f"{case_id}.yaml",
            "extra": list(extra)}


def run(cases, command):
    """Run the cases (with ``command`` as default) in one child; return results by id."""
    payload = [dict(c, command=c["command"] or command) for c in cases]
    ids = [c["id"] for c in payload]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    proc = subprocess.run([sys.executable, "-m", "tests.unit.malformed.runner"],
                          input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT,
                          timeout=RUN_LIMIT_SEC)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["id"]: r for r in json.loads(proc.stdout)}


def check(case_, result):
    """Assert one case's result (see the module docstring)."""
    status, stderr = result["status"], result["stderr"]
    assert "Traceback" not in stderr, stderr
    assert status == 2, f"exit {status!r}; stderr: {stderr!r}; stdout: {result['stdout'][-300:]!r}"
    problems = [ln for ln in stderr.splitlines()
                if ln.strip() and not (ln.startswith("lblab validate: ") and "problem(s)" in ln)]
    assert len(problems) == 1, f"expected one problem line, got {problems!r}"
    (problem,) = problems
    assert pathlib.Path(result["path"]).name in problem, f"file not named: {problem!r}"
    if case_["line"] is not None:
        assert f"{pathlib.Path(result['path']).name}:{case_['line']}:" in problem, problem
    assert case_["expected"] in problem, f"{case_['expected']!r} not in {problem!r}"
