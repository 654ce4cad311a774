"""Fail when a hand-written module or function under engine/ has grown past its size without saying why.

Issue 13 ("code health"): no hand-written module over ~400 lines, and no function over ~60 lines
(or over complexity 12) without a comment saying why. Ruff holds complexity and statement counts
(C901 with max-complexity 12, PLR0915 with max-statements 60: pyproject.toml); this script holds
what ruff does not count:

1. **Modules**: every ``engine/**/*.py`` but the generated code (``engine/grpc/gen``, ``*_pb2*.py``)
   has at most ``MAX_MODULE_LINES`` lines. ``ALLOWED`` lists the exceptions, each with its size as a
   ceiling: it may shrink, never grow. When one shrinks, lower its ceiling (the script says so);
   when it is under the limit, remove its row.
2. **Functions**: a function (or method) longer than ``MAX_FUNCTION_LINES`` lines carries, on the
   lines just above its ``def`` (or its decorators), a comment ``# Long (N lines): why``.
3. **Exceptions to ruff's size rules**: every ``# noqa: C901`` or ``# noqa: PLR0915`` says why in
   words after the codes, e.g. ``# noqa: C901 (one branch per node kind)``: a bare one fails.

Run it from the project root (scripts/static_checks.sh does): ``python scripts/check_sizes.py``.
Exit 0 when all hold, 1 otherwise, with one line per finding (file:line: what).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Modules allowed over the limit, with their size as a ceiling. Only shrink this table.
ALLOWED: dict[str, int] = {
    # Empty: engine/runtime/service.py and flow.py, the last two, were split under 400 (issue 13, item (e)).
}

_GENERATED = re.compile(r"(^engine/grpc/gen/|_pb2(_grpc)?\.pyi?$)")
_LONG = re.compile(r"#\s*Long \(\d+ lines\):\s*\S")
_NOQA = re.compile(r"#\s*noqa:\s*([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(.*)$")
_SIZE_RULES = {"C901", "PLR0915"}


def modules(root: Path) -> list[Path]:
    """The hand-written Python modules under ``root/engine`` (generated code left out), sorted."""
    return sorted(p for p in (root / "engine").rglob("*.py") if not _GENERATED.search(p.relative_to(root).as_posix()))


def module_findings(rel: str, lines: int) -> tuple[list[str], list[str]]:
    """(failures, notices) of one module's size against the limit and its ceiling in ``ALLOWED``."""
    ceiling = ALLOWED.get(rel)
    if ceiling is None:
        if lines > MAX_MODULE_LINES:
            return [f"{rel}: {lines} lines, over {MAX_MODULE_LINES}: split it along its concepts (docs/architecture.md)"], []
        return [], []
    if lines > ceiling:
        return [f"{rel}: {lines} lines, over its ceiling of {ceiling} in scripts/check_sizes.py ALLOWED: it may only shrink"], []
    if lines <= MAX_MODULE_LINES:
        return [], [f"{rel}: {lines} lines, under {MAX_MODULE_LINES}: remove its row from ALLOWED in scripts/check_sizes.py"]
    if lines < ceiling:
        return [], [f"{rel}: {lines} lines: lower its ceiling in scripts/check_sizes.py ALLOWED from {ceiling} to {lines}"]
    return [], []


def function_findings(rel: str, text: str) -> list[str]:
    """Functions over ``MAX_FUNCTION_LINES`` without a ``# Long (N lines): why`` comment above them,
    and ``noqa`` exceptions to C901/PLR0915 without a reason."""
    out: list[str] = []
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text, rel)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
            continue
        length = node.end_lineno - node.lineno + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = lines[max(0, top - 4) : top - 1]
        if not any(_LONG.search(line) for line in above):
            out.append(f"{rel}:{node.lineno}: function {node.name} is {length} lines, over {MAX_FUNCTION_LINES}: split it into its "
                       f"steps, or say why it stays whole on the line above: # Long ({length} lines): why")
    for number, line in enumerate(lines, 1):
        m = _NOQA.search(line)
        if m is None:
            continue
        codes = {c.strip() for c in m.group(1).split(",")}
        if codes & _SIZE_RULES and not re.search(r"[A-Za-z]{3}", m.group(2)):
            out.append(f"{rel}:{number}: `# noqa: {m.group(1)}` without a reason: say why after the codes, e.g. (one branch per node kind)")
    return out


def main(root: Path) -> int:
    failures: list[str] = []
    notices: list[str] = []
    seen = set()
    for path in modules(root):
        rel = path.relative_to(root).as_posix()
        seen.add(rel)
        text = path.read_text(encoding="utf-8")
        failed, noted = module_findings(rel, len(text.splitlines()))
        failures += failed + function_findings(rel, text)
        notices += noted
    notices += [f"{rel}: listed in ALLOWED but not found: remove its row" for rel in ALLOWED if rel not in seen]
    for line in notices:
        print(f"notice: {line}")
    for line in failures:
        print(line)
    print(f"{len(seen)} modules checked: at most {MAX_MODULE_LINES} lines each ({len(ALLOWED)} allowed over, with ceilings), "
          f"functions over {MAX_FUNCTION_LINES} lines say why; {len(failures)} finding{'s' if len(failures) != 1 else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parents[1]))
