#!/usr/bin/env bash
# make test: the whole suite. pytest's exit 5 ("no tests collected") is reported, not hidden,
# and so is every skip (-rfEs: pytest's default failure/error summary plus each skipped test
# with its reason; -r alone would replace the default).
set -uo pipefail
cd "$(dirname "$0")/.."
"${LBLAB_VENV:-.venv}/bin/python" -m pytest -rfEs "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "error: pytest collected no tests from: $*" >&2
fi
exit $rc
