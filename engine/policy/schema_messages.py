"""pydantic's validation errors of a policy file as plain sentences: what is wrong, what is allowed, a hint.

pydantic says ``String should match pattern '^[A-Z][A-Z0-9_]*$'`` or ``Extra inputs are not
permitted``; a policy owner needs "a reason code is upper-case letters, digits and underscores,
starting with a letter, not 'high_debt'" and "did you mean 'HIGH_DEBT'?". ``explain_errors`` turns
the error list of one file into (location, message, hint) triples:

- each error type pydantic raises for our schemas (``missing``, ``extra_forbidden``,
  ``string_pattern_mismatch``, ``literal_error``, ``enum``, the ``*_type`` and ``*_parsing`` type
  errors, length and range bounds, our own ``value_error``\\s) has a sentence naming the key;
- a pattern is said in words (``PATTERN_WORDS``, one entry per pattern in ``engine.policy.schema``), with a
  corrected spelling as the hint when one fits;
- an unknown key gets "did you mean" among the keys allowed at that place (``engine.suggest``);
- pydantic's own cascades are folded: the errors of each member of a union become one, and an
  error on a list is dropped when an error inside it already says what is wrong.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from engine.errors import clip
from engine.policy import schema
from engine.suggest import closest, did_you_mean

__all__ = ["PATTERN_WORDS", "explain_errors"]

Loc = tuple[str | int, ...]


def _fix_reason(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_").upper()


def _fix_ruleset(value: str) -> str:
    parts = [re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in value.split(".")]
    return ".".join(p for p in parts if p)


def _fix_identifier(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", value).strip("_")


def _fix_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")


#: Each pattern of engine.policy.schema in words: (what the value is, what it is made of, a fixer or None).
PATTERN_WORDS: dict[str, tuple[str, str, Callable[[str], str] | None]] = {
    schema.REASON_CODE_PATTERN: (
        "a reason code", "upper-case letters, digits and underscores, starting with a letter (e.g. HIGH_DEBT_BURDEN)", _fix_reason,
    ),
    schema.IDENTIFIER_PATTERN: (
        "a name", "letters, digits and underscores, starting with a letter or underscore (e.g. customer_id)", _fix_identifier,
    ),
    schema.RULE_ID_PATTERN: (
        "a rule id", "letters, digits, '_', '.' and '-', starting with a letter or digit (e.g. AFF-001)", _fix_id,
    ),
    schema.RULESET_PATTERN: (
        "a ruleset name",
        "lower-case words of letters, digits and underscores, joined by dots (e.g. credit.affordability)", _fix_ruleset,
    ),
}

# A version has the same pattern as a rule id; the key tells them apart.
_VERSION_WORDS = ("a version", "letters, digits, '_', '.' and '-', starting with a letter or digit (e.g. 2 or 2024-06)", _fix_id)
_VERSION_KEYS = {"version", "live", "shadow"}

_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a block of 'key: value' lines",
    "model_type": "a block of 'key: value' lines",
    "model_attributes_type": "a block of 'key: value' lines",
    "list_type": "a list ('- item' lines, or [a, b])",
    "tuple_type": "a list ('- item' lines, or [a, b])",
    "set_type": "a list ('- item' lines, or [a, b])",
}
_UNION_MEMBERS = {"str", "bool", "int", "float", "constrained-str", "none", "list", "dict"}


def _shown(value: Any) -> str:
    """A value as the owner wrote it, short."""
    if isinstance(value, (dict, list, tuple)):
        return "a block" if isinstance(value, dict) else "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return clip(repr(value), 48)


def _subject(loc: Loc) -> str:
    """The key an error is about, with the input field, model or challenger it belongs to."""
    keys = [p for p in loc if isinstance(p, str) and p != "[key]"]
    if not keys:
        return "this file"
    key = keys[-1]
    if len(loc) >= 3 and loc[0] == "input" and loc[1] == "fields" and isinstance(loc[2], str):
        return "input field " + repr(loc[2]) if len(loc) == 3 or loc[-1] == "[key]" else f"{key!r} of input field {loc[2]!r}"
    if loc and loc[-1] == "[key]":
        return f"the key {loc[-2]!r}" if len(loc) >= 2 else "a key"
    if isinstance(loc[-1], int):
        return f"item {loc[-1] + 1} of {key!r}"
    return repr(key)


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that holds the keys at ``loc`` (following nested models, lists and maps)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
            continue
        origin, args = typing.get_origin(current), typing.get_args(current)
        if origin in (tuple, list) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _explain(root: type[BaseModel], err: dict[str, Any]) -> tuple[str, str | None]:  # noqa: C901 (one branch per pydantic error kind: a table read top to bottom)
    kind, loc, ctx, value = err["type"], tuple(err["loc"]), err.get("ctx") or {}, err.get("input")
    subject = _subject(loc)
    if kind == "missing":
        return f"{subject} is required here but missing", None
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        known = sorted(model.model_fields) if model is not None else []
        hint = did_you_mean(str(loc[-1]), known) if known else None
        allowed = f"; the keys allowed here are {', '.join(known)}" if known and len(known) <= 12 else ""
        return f"unknown key {loc[-1]!r}{allowed}", hint
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(ctx.get("pattern", ""))
        if ctx.get("pattern") == schema.VERSION_PATTERN and _VERSION_KEYS & {p for p in loc if isinstance(p, str)}:
            words = _VERSION_WORDS
        if words is None:
            return f"{subject} has a form that is not allowed, not {_shown(value)}", None
        noun, rule, fix = words
        fixed = fix(value) if fix is not None and isinstance(value, str) else ""
        hint = f"did you mean {fixed!r}?" if fixed and fixed != value and re.fullmatch(ctx["pattern"], fixed) else None
        return f"{subject} must be {noun}: {rule}; not {_shown(value)}", hint
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = None
        if isinstance(value, str) and choices:
            match = closest(value, choices)
            hint = f"did you mean {match!r}?" if match is not None else None
        listing = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else "".join(choices)
        return f"{subject} must be {listing}, not {_shown(value)}", hint
    if kind in _TYPE_WORDS:
        return f"{subject} must be {_TYPE_WORDS[kind]}, not {_shown(value)}", None
    if kind == "string_too_long":
        return f"{subject} must be at most {ctx.get('max_length')} characters (it has {len(str(value))})", None
    if kind == "string_too_short":
        return f"{subject} must not be empty", None
    if kind == "too_long":
        return f"{subject} may have at most {ctx.get('max_length')} items (it has {ctx.get('actual_length')})", None
    if kind == "too_short":
        return f"{subject} needs at least {ctx.get('min_length')} item{'s' if ctx.get('min_length') != 1 else ''}", None
    for bound, phrase in (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than")):
        if bound in ctx and kind.startswith(("greater", "less")):
            return f"{subject} must be {phrase} {ctx[bound]}, not {_shown(value)}", None
    if kind == "value_error":
        return f"{subject if loc else 'this block'}: {str(err['msg']).removeprefix('Value error, ')}", None
    return f"{subject}: {err['msg']}", None


def _fold(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Union members' errors as one error; an error dropped when one inside it says more."""
    out: list[dict[str, Any]] = []
    unions: dict[Loc, dict[str, Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if loc and isinstance(loc[-1], str) and loc[-1] in _UNION_MEMBERS:
            if loc[:-1] not in unions:
                unions[loc[:-1]] = folded = {**err, "loc": loc[:-1], "type": "union_cell"}
                out.append(folded)
            continue
        out.append(dict(err))
    locs = [tuple(e["loc"]) for e in out]
    return [e for e, loc in zip(out, locs) if not any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)]


def _misspelt(errors: list[dict[str, Any]], root: type[BaseModel]) -> tuple[list[dict[str, Any]], dict[Loc, str]]:
    """A required key reported missing because it was misspelt is one problem, not two: the unknown key.

    Returns the errors without those ``missing`` ones, and for each such unknown key's location the
    required key it stands for.
    """
    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    stands_for: dict[Loc, str] = {}
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] != "extra_forbidden" or not loc:
            continue
        wanted = [m[-1] for m in missing if m[:-1] == loc[:-1] and isinstance(m[-1], str)]
        match = closest(str(loc[-1]), wanted) if wanted else None
        if match is not None:
            stands_for[loc] = match
            missing.discard((*loc[:-1], match))
    kept = [e for e in errors if e["type"] != "missing" or tuple(e["loc"]) in missing]
    return kept, stands_for


def explain_errors(root: type[BaseModel], errors: Sequence[Mapping[str, Any]]) -> list[tuple[Loc, str, str | None]]:
    """(location, sentence, hint or None) for each distinct problem in pydantic's ``errors`` of a ``root`` document."""
    out: list[tuple[Loc, str, str | None]] = []
    folded, stands_for = _misspelt(_fold(errors), root)
    for err in folded:
        loc = tuple(err["loc"])
        if loc in stands_for:
            out.append((loc, f"unknown key {loc[-1]!r}, and the required key {stands_for[loc]!r} is missing",
                        f"did you mean {stands_for[loc]!r}?"))
            continue
        if err["type"] == "union_cell":
            out.append((loc, f"{_subject(loc)} must be text, a number or true/false, not {_shown(err.get('input'))}", None))
            continue
        message, hint = _explain(root, err)
        out.append((tuple(err["loc"]), message, hint))
    return out
