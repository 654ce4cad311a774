#!/usr/bin/env bash
# The static gate: ruff, mypy, the import direction, the folder layout, module and function sizes and the duplicate budget. scripts/test.sh runs it before the tests;
# run it alone with `bash scripts/static_checks.sh` (after `pip install -e '.[test]'`).
# Exit 0 when all pass; 1 when any fails (every check runs, so one run shows every finding).
# docs/architecture.md, "Static checks", says what each check does and how to fix or lower it.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV_BIN:-.venv/bin}
failed=()

echo "== ruff (rules: pyproject.toml [tool.ruff])"
"$BIN/ruff" check --no-fix . || failed+=(ruff)

echo "== mypy -p engine (pyproject.toml [tool.mypy])"
"$BIN/mypy" || failed+=(mypy)

echo "== imports point down (lint-imports: pyproject.toml [tool.importlinter]; docs/architecture.md)"
"$BIN/lint-imports" --no-logo --cache-dir .verdict/import_linter_cache || failed+=(imports)

echo "== layout (scripts/restructure.py --check: no module at an old path, no reference to one)"
"$BIN/python" scripts/restructure.py --check || failed+=(layout)

echo "== sizes (scripts/check_sizes.py: modules <= 400 lines, long functions say why)"
"$BIN/python" scripts/check_sizes.py || failed+=(sizes)

echo "== duplicates (budget: scripts/duplicates_budget.txt)"
# `duplicates` is a tool of the developers' workplace, not a package: where it is missing (a clean
# CI machine) this check is skipped, never failed.
budget_file=scripts/duplicates_budget.txt
if ! command -v duplicates >/dev/null 2>&1; then
  echo "skipped: the duplicates command is not installed on this machine"
else
  out=$(duplicates --repo "$PWD" --most 200 --seconds 120)
  # Generated code (engine/grpc/gen, from scripts/gen_proto.py) repeats itself by design: a pair
  # with both sides there does not count.
  rows=$(grep -E '^D[0-9]+ ' <<<"$out" || true)
  # Rows the tool itself marks `boilerplate` (shapes thin or recurring across a folder: the argparse
  # registration of each command in engine/commands) do not count either; they are listed all the same.
  counted=$(grep -vE '^D[0-9]+ engine/grpc/gen/[^ ]* ~ engine/grpc/gen/' <<<"$rows" | grep -v ' boilerplate' | grep -c . || true)
  budget=$(grep -vE '^\s*(#|$)' "$budget_file" | head -n1 | tr -d '[:space:]')
  echo "$counted pairs counted (generated code and boilerplate rows left out); budget $budget"
  if grep -q '^incomplete:' <<<"$out"; then
    grep '^incomplete:' <<<"$out"
    echo "warning: duplicates did not read everything; the count covers only what it read"
  fi
  if (( counted > budget )); then
    echo "$out"
    echo "FAILED: $counted duplicate pairs, over the budget of $budget. Run \`duplicates --change\` to see"
    echo "what your change wrote again, and make one piece of code serve both places."
    failed+=(duplicates)
  elif (( counted < budget )); then
    echo "below budget: lower scripts/duplicates_budget.txt to $counted in this change (the budget only goes down)"
  fi
fi

if (( ${#failed[@]} )); then
  echo "static checks FAILED: ${failed[*]}"
  exit 1
fi
echo "static checks passed"
