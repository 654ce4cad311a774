"""scripts/static_checks.sh: the duplicate budget is enforced, generated code is not counted, and a
machine without the `duplicates` command skips that check instead of failing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PAIR = "D{n} engine/a.py:1-9 ~ engine/b.py:{n}0-{n}9"
GENERATED = "D{n} engine/grpc/gen/verdict/v1/x_pb2.py:1-9 ~ engine/grpc/gen/verdict/v1/x_pb2.py:{n}0-{n}9"


def _tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _gate(tmp_path: Path, budget: int, rows: list[str] | None) -> subprocess.CompletedProcess[str]:
    """Run a copy of the gate with passing ruff/mypy stand-ins and a `duplicates` printing ``rows``
    (no `duplicates` at all when ``rows`` is None)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(PROJECT / "scripts" / "static_checks.sh", tmp_path / "scripts")
    (tmp_path / "scripts" / "duplicates_budget.txt").write_text(f"# the budget\n{budget}\n")
    venv = tmp_path / "venv"
    venv.mkdir()
    _tool(venv, "ruff", "exit 0")
    _tool(venv, "mypy", "exit 0")
    _tool(venv, "lint-imports", "exit 0")
    _tool(venv, "python", "exit 0")
    path = [str(tmp_path / "tools")] if rows is not None else []
    if rows is not None:
        (tmp_path / "tools").mkdir()
        listing = "\n".join([f"{len(rows)} pairs of places (9 files read)", *rows])
        _tool(tmp_path / "tools", "duplicates", f"cat <<'END'\n{listing}\nEND")
    env = {**os.environ, "VENV_BIN": str(venv), "PATH": os.pathsep.join([*path, "/usr/bin", "/bin"])}
    return subprocess.run(["bash", str(tmp_path / "scripts" / "static_checks.sh")], capture_output=True, text=True, env=env, check=False)


def test_within_budget_passes(tmp_path: Path) -> None:
    """Two pairs against a budget of two: the gate passes and prints the count."""
    done = _gate(tmp_path, 2, [PAIR.format(n=1), PAIR.format(n=2)])
    assert done.returncode == 0, done.stdout
    assert "2 pairs counted" in done.stdout


def test_over_budget_fails_and_says_what_to_do(tmp_path: Path) -> None:
    """One pair over the budget fails the gate, listing the pairs and how to find the new one."""
    done = _gate(tmp_path, 1, [PAIR.format(n=1), PAIR.format(n=2)])
    assert done.returncode == 1
    assert "over the budget of 1" in done.stdout and "duplicates --change" in done.stdout
    assert "static checks FAILED: duplicates" in done.stdout


def test_generated_code_is_not_counted(tmp_path: Path) -> None:
    """Pairs wholly inside engine/grpc/gen do not count against the budget."""
    done = _gate(tmp_path, 1, [PAIR.format(n=1), GENERATED.format(n=2), GENERATED.format(n=3)])
    assert done.returncode == 0, done.stdout
    assert "1 pairs counted" in done.stdout


def test_below_budget_asks_to_lower_it(tmp_path: Path) -> None:
    """Fewer pairs than the budget pass, and the gate says to lower the budget to the new count."""
    done = _gate(tmp_path, 5, [PAIR.format(n=1)])
    assert done.returncode == 0
    assert "lower scripts/duplicates_budget.txt to 1" in done.stdout


def test_missing_duplicates_command_is_skipped_not_failed(tmp_path: Path) -> None:
    """Without the `duplicates` command (a clean CI machine) the check says it was skipped and passes."""
    done = _gate(tmp_path, 0, None)
    assert done.returncode == 0, done.stdout
    assert "skipped: the duplicates command is not installed" in done.stdout


def test_ruff_failure_fails_the_gate(tmp_path: Path) -> None:
    """A failing ruff fails the gate even when the other checks pass."""
    done = _gate(tmp_path, 0, [])
    assert done.returncode == 0
    _tool(tmp_path / "venv", "ruff", "echo 'x.py:1:1: F401 unused'; exit 1")
    env = {**os.environ, "VENV_BIN": str(tmp_path / "venv"), "PATH": "/usr/bin:/bin"}
    again = subprocess.run(["bash", str(tmp_path / "scripts" / "static_checks.sh")], capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 1
    assert "static checks FAILED: ruff" in again.stdout


def test_budget_file_holds_one_count() -> None:
    """The committed budget file holds a whole number (after its comment lines)."""
    lines = [ln.strip() for ln in (PROJECT / "scripts" / "duplicates_budget.txt").read_text().splitlines()]
    numbers = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(numbers) == 1 and numbers[0].isdigit()
