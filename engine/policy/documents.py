"""Reading one policy file: bytes, YAML with lines, the closed schema; every problem collected.

The first step of loading (``engine.policy.loader``): a file that is unreadable, too large
(``MAX_POLICY_FILE_BYTES``), not UTF-8, not YAML, not a mapping or not valid against its schema
gives problems with file and line, never an exception. Used for flow, rule, routing and test files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.errors import Problem
from engine.policy.schema import RuleFile, RuleSpec, TableSpec
from engine.policy.schema_messages import explain_errors
from engine.policy.yamlio import LoadedYaml, YamlSyntaxError, load_yaml

__all__ = ["MAX_POLICY_FILE_BYTES", "ROOT_DIRS", "read_doc", "read_document", "relative", "sha256_hex", "yaml_files"]

_M = TypeVar("_M", bound=BaseModel)
MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024
#: The directories of a policy root a decision reads (flows, rule files, models, screening lists, event
#: schemas): what a copy of a root, the reload watcher, the Spark executors and the image need.
ROOT_DIRS = ("policies", "rules", "model_artifacts", "lists", "events")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of a file's bytes (the digests behind content revisions)."""
    return hashlib.sha256(data).hexdigest()


def relative(root: Path, path: Path) -> str:
    """``path`` as problems name it: relative to the policy root when under it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_doc(root: Path, path: Path, schema: type[_M], problems: list[Problem]) -> tuple[Any, _M | None, bytes]:
    """One policy file: its YAML (with lines), the validated document, its bytes; problems go to ``problems``.

    The document is None when the file cannot be read, parsed or validated (a rule file with
    invalid rules is salvaged: its valid rules are still checked). Never raises for a bad file.
    """
    rel = relative(root, path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(rel, f"cannot read file: {exc.strerror}", "unreadable"))
        return None, None, b""
    if len(raw) > MAX_POLICY_FILE_BYTES:
        problems.append(Problem(rel, f"file is larger than {MAX_POLICY_FILE_BYTES} bytes", "file_too_large"))
        return None, None, raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(rel, "file is not valid UTF-8 text", "not_utf8", line=line))
        return None, None, raw
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        problems.append(Problem(rel, str(exc), exc.code, line=exc.line, hint=exc.hint))
        return None, None, raw
    if not isinstance(doc.data, dict):
        problems.append(Problem(rel, "expected a mapping of keys at the top of the file", "not_a_mapping", line=1))
        return doc, None, raw
    try:
        return doc, schema.model_validate(doc.data), raw
    except ValidationError as exc:
        for loc, message, hint in explain_errors(schema, exc.errors()):
            rule = _rule_id_at(doc.data, loc)
            keys = [p for p in loc if isinstance(p, str) and p != "[key]"]
            problems.append(
                Problem(rel, message, "schema", line=doc.line_of(loc), rule=rule, field=keys[-1] if keys else None, hint=hint)
            )
        return doc, _salvage(schema, doc.data), raw


def read_document(root: Path, path: Path, schema: type[_M], problems: list[Problem]) -> tuple[LoadedYaml | None, _M | None]:
    """Read and validate one YAML file against `schema`; every problem (with its line) goes to `problems`."""
    doc, parsed, _ = read_doc(root, path, schema, problems)
    return doc, parsed


def _salvage(schema: type[_M], data: dict[str, Any]) -> _M | None:
    """The file with its invalid rules left out, so the rest can still be checked and reported.

    The load fails anyway (the schema errors are already problems); this only lets one run report
    the mistakes in the valid-looking rules too.
    """
    if schema is not RuleFile:
        return None
    fixed = dict(data)
    placeholders: tuple[tuple[str, type[BaseModel], dict[str, Any]], ...] = (
        ("rules", RuleSpec, {"id": "invalid", "when": "false", "action": "APPROVE", "reason": "X", "enabled": False}),
        ("tables", TableSpec, _INVALID_TABLE),
    )
    for key, item_schema, placeholder in placeholders:
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return None
        good = []
        for item in items:
            try:
                item_schema.model_validate(item)
                good.append(item)
            except ValidationError:
                good.append(placeholder)
        fixed[key] = good
    try:  # invalid rules and tables become disabled placeholders, so each keeps its position (and line)
        return schema.model_validate(fixed)
    except ValidationError:
        return None


_INVALID_TABLE = {
    "id": "invalid",
    "hit": "collect",
    "columns": ["false"],
    "rows": [{"when": ["-"], "action": "APPROVE", "reason": "X"}],
    "enabled": False,
}


def _rule_id_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            rid = data["rules"][loc[1]].get("id")
            return str(rid) if rid is not None else None
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    if len(loc) >= 2 and loc[0] == "tables" and isinstance(loc[1], int):
        try:
            table = data["tables"][loc[1]]
            tid = str(table.get("id", f"#{loc[1] + 1}"))
            if len(loc) >= 4 and loc[2] == "rows" and isinstance(loc[3], int):
                return str(table["rows"][loc[3]].get("id") or f"{tid}.{loc[3] + 1}")
            return tid
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    return None


def yaml_files(directory: Path) -> list[Path]:
    """Every .yaml/.yml file under ``directory``, sorted; none when it does not exist."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
