"""The generated fast path of a flow version's validator: one Python function per input schema.

``compile_fast_path(spec)`` writes, once per flow version, one function that takes a raw input
and returns its clean values when every field is *plainly* valid, else ``None``:

* a number field: a ``float`` within its bounds (and finite);
* an integer field: an ``int``, or a whole ``float``, within its bounds (±(2**53 - 1) at most);
* a boolean field: ``True`` or ``False``;
* a string field: a ``str`` no longer than ``max_length`` once trimmed (then its ``case``);
* a category field: a ``str`` that is exactly one of the allowed values;
* an absent (or null) optional field: its declared default, else None;
* no more than ``MAX_INPUT_FIELDS`` entries, and no unknown name when the flow rejects them.

Anything else (a required field absent, a value out of range, an exact ``Decimal`` read from
text, a category in another case, an unknown name) returns ``None``, and
``engine.runtime.validation.Validator`` runs its full, per-field checks, which clean such values
or name every bad field. The fast path only ever accepts what the full checks accept, and gives
the same clean values in the same key order (``tests/unit/test_validation_fast.py`` compares
them on the bundled inputs and on every kind of bad input). What it saves is the per-field
closure call and exception frame of the full checks: one function, straight-line code.

The source is built from the schema's field *types* only; names, bounds, defaults and allowed
values are constants passed in the function's namespace, never written into the source text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.limits import MAX_INPUT_FIELDS
from engine.policy.schema import FieldSpec, InputSpec

__all__ = ["FastPath", "compile_fast_path"]

#: raw input -> clean values, or None when the full validator must look at it
FastPath = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]


def _bounded(cond: list[str], lo: object, hi: object, i: int, consts: dict[str, Any]) -> None:
    """Append the range test of field ``i`` (a NaN fails it, as it fails the full check)."""
    if lo is not None:
        consts[f"_lo{i}"] = lo
        cond.append(f"_lo{i} <= v")
    if hi is not None:
        consts[f"_hi{i}"] = hi
        cond.append(f"v <= _hi{i}")


def _field_lines(i: int, spec: FieldSpec, bounds: tuple[float | None, float | None], consts: dict[str, Any]) -> list[str]:
    """The lines that set ``c<i>`` from ``v`` for a plainly valid value, else return None."""
    lo, hi = bounds
    if spec.type == "number":
        cond = ["type(v) is float", "v - v == 0.0"]  # finite: inf - inf and NaN - NaN are NaN
        _bounded(cond, lo, hi, i, consts)
        return [f"    elif {' and '.join(cond)}:", f"        c{i} = v"]
    if spec.type == "integer":  # bounds always set: ±(2**53 - 1) at most (field_bounds)
        cond = ["type(v) is float"]
        _bounded(cond, lo, hi, i, consts)
        whole = [*cond, "v.is_integer()"]
        exact = ["type(v) is int", *cond[1:]]
        return [f"    elif {' and '.join(whole)}:", f"        c{i} = int(v)", f"    elif {' and '.join(exact)}:", f"        c{i} = v"]
    if spec.type == "boolean":
        return ["    elif v is True or v is False:", f"        c{i} = v"]
    if spec.type == "string":
        consts[f"_max{i}"] = spec.max_length
        lines = ["    elif type(v) is str:", f"        c{i} = v.strip()", f"        if len(c{i}) > _max{i}:", "            return None"]
        if spec.case is not None:
            lines.append(f"        c{i} = c{i}.{spec.case}()")
        return lines
    consts[f"_allowed{i}"] = frozenset(spec.values or ())
    return [f"    elif type(v) is str and v in _allowed{i}:", f"        c{i} = v"]


def compile_fast_path(
    spec: InputSpec, defaults: Mapping[str, Any], bounds: Callable[[FieldSpec], tuple[float | None, float | None]], label: str = "input",
) -> FastPath:
    """The fast path of ``spec``'s validator (see the module docstring).

    ``defaults``: field -> its clean default value (the full validator's); ``bounds``: the (min,
    max) a number or integer field is held to (``engine.runtime.validation.field_bounds``).
    """
    fields = list(spec.fields.items())
    consts: dict[str, Any] = {
        "_MAX": MAX_INPUT_FIELDS,
        "_known": frozenset(spec.fields),
        "_reject": spec.unknown_fields == "reject",
    }
    lines = [
        "def validate(raw):",
        "    if len(raw) > _MAX or (_reject and not _known.issuperset(raw)):",
        "        return None",
        "    _g = raw.get",
    ]
    for i, (name, field) in enumerate(fields):
        consts[f"_n{i}"] = name
        lines.append(f"    v = _g(_n{i})")
        lines.append("    if v is None:")
        if field.required:
            lines.append("        return None")
        else:
            consts[f"_d{i}"] = defaults.get(name)
            lines.append(f"        c{i} = _d{i}")
        lines += _field_lines(i, field, bounds(field), consts)
        lines += ["    else:", "        return None"]
    lines.append("    return {" + ", ".join(f"_n{i}: c{i}" for i in range(len(fields))) + "}")
    namespace: dict[str, Any] = {"__builtins__": {"type": type, "len": len, "int": int, "float": float, "str": str}, **consts}
    exec(compile("\n".join(lines) + "\n", f"<verdict validate {label}>", "exec"), namespace)  # built from field types only
    fast: FastPath = namespace["validate"]
    return fast
