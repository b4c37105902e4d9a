#!/usr/bin/env bash
# make test: the whole suite. pytest's exit 5 ("no tests collected") is reported, not hidden.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "error: pytest collected no tests from: $*" >&2
fi
exit $rc
