#!/usr/bin/env bash
# Regenerates the console screenshots of docs/console.md (docs/img/console/*.png): runs the browser
# tests (tests/integration/test_console_browser.py: real `verdict serve` and `verdict console`, headless
# Chromium) with VERDICT_CONSOLE_SCREENSHOTS pointing there. Needs chromium and chromium-driver
# (scripts/test_services.sh installs them) and `pip install -e '.[test]'`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV_BIN:-.venv/bin}
VERDICT_CONSOLE_SCREENSHOTS="$PWD/docs/img/console" "$BIN/pytest" tests/integration/test_console_browser.py -q -p no:cacheprovider
ls -1 docs/img/console/*.png
