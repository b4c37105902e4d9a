#!/usr/bin/env bash
# make test: the whole suite. pytest's exit 5 ("no tests collected") is reported, not hidden,
# and so is every skip (-rfEs: pytest's default failure/error summary plus each skipped test
# with its reason; -r alone would replace the default). --durations=25 prints the slowest tests,
# to keep the suite inside its 15-minute budget on 2 cores.
#
# The whole suite (no arguments, or just `tests`) runs in two parts: the emulation tests one
# after another (one lab at a time on a machine), then the unit tests spread over the CPUs
# (pytest-xdist, -n auto): they are pure or touch only their own temporary state. Any other
# arguments run as given, in one process.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${LBLAB_VENV:-.venv}/bin/python"

run() {
  "$PY" -m pytest -rfEs --durations=25 "$@"
  local rc=$?
  if [ $rc -eq 5 ]; then
    echo "error: pytest collected no tests from: $*" >&2
  fi
  return $rc
}

if [ $# -eq 0 ] || { [ $# -eq 1 ] && [ "$1" = "tests" ]; }; then
  run tests/emulation; rc_emulation=$?
  run -n auto tests/unit; rc_unit=$?
  [ $rc_emulation -eq 0 ] && [ $rc_unit -eq 0 ] && exit 0
  echo "make test: emulation tests exit $rc_emulation, unit tests exit $rc_unit" >&2
  exit 1
fi
run "$@"
