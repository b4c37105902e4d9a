#!/usr/bin/env bash
# make test: the whole suite. pytest's exit 5 ("no tests collected") is reported, not hidden,
# and so is every skip (-rs: each skipped test with its reason).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -rs "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "error: pytest collected no tests from: $*" >&2
fi
exit $rc
