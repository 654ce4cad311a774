#!/usr/bin/env bash
# Install everything the test suite needs into .venv and run the whole suite: the static checks
# (ruff, mypy, duplicates: scripts/static_checks.sh), verdict lint and verdict test on the bundled
# policies, then pytest (unit + integration).
# Used as-is by CI (.ci/run) and by developers on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,spark]'  # spark: the batch tests on a local Spark session

# Services the integration tests talk to (installed from Debian's packages when missing).
source scripts/test_services.sh

export PATH="$PWD/.venv/bin:$PATH"
bash scripts/static_checks.sh
echo "== verdict lint"
verdict lint
echo "== verdict test"
verdict test --fail-uncovered
echo "== pytest"
pytest "$@"  # not exec: the EXIT trap of test_services.sh stops the services afterwards
