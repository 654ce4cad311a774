"""The ``cleaning_mismatch`` lint: text literals a string field can never equal once its input is cleaned.

A string field declared ``case: upper`` (or ``lower``) is cleaned to that case, and every string
field is trimmed (engine/runtime/validation.py), so a comparison (``==``, ``!=``, ``in``, ``not in``)
with a literal in the other case, or with leading or trailing spaces, never matches: ``country not
in ['de']`` on a ``case: upper`` field is true for every request. ``engine.policy.lint`` reports each.
"""

from __future__ import annotations

from engine.expr.nodes import Compare, InList, Literal, Name, Node
from engine.expr.vocabulary import children, show
from engine.policy.schema import FieldSpec

__all__ = ["cleaning_mismatches"]


def _cleaned(spec: FieldSpec, text: str) -> str | None:
    """Why `text` can never equal a value of a string field after cleaning; None if it can."""
    if text != text.strip():
        return "cleaning trims spaces"
    if spec.case == "upper" and text != text.upper():
        return f"the field is cleaned to upper case (case: upper), so it can only equal {text.upper()!r}"
    if spec.case == "lower" and text != text.lower():
        return f"the field is cleaned to lower case (case: lower), so it can only equal {text.lower()!r}"
    return None


def cleaning_mismatches(node: Node, fields: dict[str, FieldSpec]) -> list[str]:  # noqa: C901 (one case per comparison shape: ==/!= either side, in/not in)
    """Every comparison in `node` of a string field with a text literal it can never equal.

    `fields` are the flow's input fields (name -> spec). Covers ``==``/``!=`` (either side) and
    ``in``/``not in`` lists; what a mismatch makes of the comparison is in the message (``!=`` and
    ``not in`` are then true for every request that has the field, ``==`` and ``in`` never).
    """
    out: list[str] = []

    def string_field(side: Node) -> FieldSpec | None:
        if isinstance(side, Name):
            spec = fields.get(side.name)
            if spec is not None and spec.type == "string":
                return spec
        return None

    def visit(n: Node) -> None:
        if isinstance(n, Compare) and n.op in ("==", "!="):
            for side, other in ((n.left, n.right), (n.right, n.left)):
                spec = string_field(side)
                if spec is not None and isinstance(other, Literal) and isinstance(other.value, str):
                    why = _cleaned(spec, other.value)
                    if why is not None:
                        effect = "is true for every request that has it" if n.op == "!=" else "can never be true"
                        out.append(f"{show(n)} {effect}: {side.name} can never be {other.value!r}; {why}")  # type: ignore[union-attr]
        elif isinstance(n, InList):
            spec = string_field(n.operand)
            if spec is not None:
                bad = [(i.value, _cleaned(spec, i.value)) for i in n.items if isinstance(i.value, str)]
                bad = [(v, why) for v, why in bad if why is not None]
                if bad:
                    name = n.operand.name  # type: ignore[union-attr]
                    every = len(bad) == len(n.items)
                    effect = (
                        ("is true for every request that has it" if n.negated else "can never be true")
                        if every else "has values that can never match"
                    )
                    values = ", ".join(repr(v) for v, _ in bad)
                    out.append(f"{show(n)} {effect}: {name} can never be {values}; {bad[0][1]}")
        for child in children(n):
            visit(child)

    visit(node)
    return out
