"""Proving that a condition can never hold, and that one table cell covers another.

Used by ``verdict lint``. The analysis is sound but incomplete: it only says "never" when it can
prove it, from the input schema (ranges, allowed categories, required fields) and from simple
tests of one name against literals (comparisons, ``in`` lists, ``between``, ``is_null``, boolean
names). Anything it cannot read (arithmetic, functions, two names compared) is assumed satisfiable.

Numbers are reasoned about as the decimals the runtime compares (``engine.expr.numbers``): bounds
and listed values are ``Decimal``, so "never" agrees with what the rules do at run time, including
for literals no double holds (``x > 0.1 and x < 0.1000000000000000000001`` can hold for a derived
decimal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from engine.expr.nodes import IN_LIST, Call, Compare, InList, Literal, Name, Node, Not
from engine.expr.numbers import is_number, to_decimal
from engine.expr.vocabulary import MIRRORED, dnf, nnf, show
from engine.policy.schema import FieldSpec

__all__ = ["Domain", "covers", "domains_of", "never_true"]

MAX_CONJUNCTIONS = 64


@dataclass(frozen=True)
class Domain:
    """The values a name can take: an interval, a finite set or exclusions, and missing or not."""

    lo: float | Decimal = -math.inf  # a Decimal, or an infinity
    lo_in: bool = True
    hi: float | Decimal = math.inf
    hi_in: bool = True
    integer: bool = False
    allowed: frozenset[object] | None = None  # a finite set of values (categories, booleans, in-lists; numbers as Decimal)
    excluded: frozenset[object] = frozenset()
    missing: bool | None = None  # True: must be missing; False: must be present; None: either
    nullable: bool = True
    tests: tuple[str, ...] = ()  # the atoms that narrowed it, for messages

    def _fits(self, v: object) -> bool:
        v = _key(v)
        if v in self.excluded:
            return False
        if isinstance(v, Decimal):
            above = v > self.lo or (self.lo_in and v == self.lo)
            below = v < self.hi or (self.hi_in and v == self.hi)
            return above and below and (not self.integer or _whole(v))
        return True

    def values(self) -> frozenset[object] | None:
        """The finite set of values left, or None when there are infinitely many."""
        if self.allowed is None:
            return None
        return frozenset(v for v in self.allowed if self._fits(v))

    def empty(self) -> bool:
        """True when no value (and not missing either) satisfies every test."""
        if self.missing is True:
            return not self.nullable or bool(self.tests_on_value)
        finite = self.values()
        if finite is not None:
            return not finite
        if self.lo > self.hi or (self.lo == self.hi and not (self.lo_in and self.hi_in)):
            return True
        if self.integer and math.isfinite(self.lo) and math.isfinite(self.hi):
            first = math.ceil(self.lo) + (1 if not self.lo_in and _whole(self.lo) else 0)
            last = math.floor(self.hi) - (1 if not self.hi_in and _whole(self.hi) else 0)
            return first > last
        return False

    @property
    def tests_on_value(self) -> bool:
        return any(not t.startswith("is_null(") for t in self.tests)


def _key(v: object) -> object:
    """A value as the domains hold it: a number as its Decimal (so 0.4 the double and 0.4 the
    decimal are one value), anything else as it is."""
    return to_decimal(v) if is_number(v) else v  # type: ignore[arg-type]


def _whole(v: float | Decimal) -> bool:
    return v == int(v)


def domains_of(fields: Mapping[str, FieldSpec]) -> dict[str, Domain]:
    """The schema's domain of every input field."""
    out: dict[str, Domain] = {}
    for name, spec in fields.items():
        if spec.type in ("integer", "number"):
            out[name] = Domain(
                lo=to_decimal(spec.min) if spec.min is not None else -math.inf,
                hi=to_decimal(spec.max) if spec.max is not None else math.inf,
                integer=spec.type == "integer",
                nullable=not spec.required,
            )
        elif spec.type == "category":
            out[name] = Domain(allowed=frozenset(spec.values or ()), nullable=not spec.required)
        elif spec.type == "boolean":
            out[name] = Domain(allowed=frozenset({True, False}), nullable=not spec.required)
        else:
            out[name] = Domain(nullable=not spec.required)
    return out


def _number(node: Node) -> Decimal | None:
    if isinstance(node, Literal) and is_number(node.value):
        return to_decimal(node.value)  # type: ignore[arg-type]
    return None


def _narrow(dom: Domain, atom: Node) -> Domain | None:  # noqa: C901 (one case per simple test shape on one name)
    """`dom` narrowed by `atom`, or None when the atom is not a simple test on one name."""
    text = show(atom)
    tests = (*dom.tests, text)
    if isinstance(atom, Call) and atom.func in ("is_null", "is_not_null"):
        want_missing = atom.func == "is_null"
        if dom.missing is not None and dom.missing != want_missing:
            return replace(dom, allowed=frozenset(), tests=tests)
        return replace(dom, missing=want_missing, tests=tests)
    present = replace(dom, tests=tests) if dom.missing is True else replace(dom, missing=False, tests=tests)
    if _list_operand(atom) is not None:  # x [not] in list(...) holds only for a present x; the members are data
        return present
    if isinstance(atom, Name):
        return replace(present, allowed=frozenset(v for v in (dom.allowed or {True, False}) if v is True))
    if isinstance(atom, Not) and isinstance(atom.operand, Name):
        return replace(present, allowed=frozenset(v for v in (dom.allowed or {True, False}) if v is False))
    if isinstance(atom, Call) and atom.func == "between" and len(atom.args) == 3:
        lo, hi = _number(atom.args[1]), _number(atom.args[2])
        if lo is None or hi is None:
            return None
        return _bound(_bound(present, ">=", lo), "<=", hi)
    if isinstance(atom, InList):
        values = frozenset(_key(i.value) for i in atom.items)
        if atom.negated:
            return replace(present, excluded=present.excluded | values)
        allowed = values if present.allowed is None else present.allowed & values
        return replace(present, allowed=allowed)
    if isinstance(atom, Compare):
        value = atom.right.value if isinstance(atom.right, Literal) else None
        op = atom.op
        if isinstance(atom.left, Literal):
            value, op = atom.left.value, MIRRORED[op]
        if value is None:
            return None
        key = _key(value)
        if op == "==":
            allowed = frozenset({key}) if present.allowed is None else present.allowed & {key}
            return replace(present, allowed=allowed)
        if op == "!=":
            return replace(present, excluded=present.excluded | {key})
        if isinstance(key, Decimal):
            return _bound(present, op, key)
    return None


def _bound(dom: Domain, op: str, v: Decimal) -> Domain:
    if op in (">", ">="):
        incl = op == ">="
        if v > dom.lo or (v == dom.lo and not incl):
            return replace(dom, lo=v, lo_in=incl)
        return dom
    incl = op == "<="
    if v < dom.hi or (v == dom.hi and not incl):
        return replace(dom, hi=v, hi_in=incl)
    return dom


def _list_operand(atom: Node) -> Name | None:
    """The field a custom-list test (``x in list(...)``, ``x not in list(...)``) reads, if the atom is one."""
    call = atom.operand if isinstance(atom, Not) else atom
    if isinstance(call, Call) and call.func == IN_LIST and isinstance(call.args[0], Name):
        return call.args[0]
    return None


def _subject(atom: Node) -> str | None:
    """The one name a simple atom tests, if it is one."""
    member = _list_operand(atom)
    if member is not None:
        return member.name
    if isinstance(atom, Name):
        return atom.name
    if isinstance(atom, Not) and isinstance(atom.operand, Name):
        return atom.operand.name
    if isinstance(atom, InList) and isinstance(atom.operand, Name):
        return atom.operand.name
    if isinstance(atom, Call) and atom.args and isinstance(atom.args[0], Name) and atom.func in ("is_null", "is_not_null", "between"):
        return atom.args[0].name
    if isinstance(atom, Compare):
        if isinstance(atom.left, Name) and isinstance(atom.right, Literal):
            return atom.left.name
        if isinstance(atom.right, Name) and isinstance(atom.left, Literal):
            return atom.right.name
    return None


def _why_empty(name: str, dom: Domain, schema: Domain | None) -> str:
    tests = " and ".join(dom.tests)
    why = f"no value of {name!r} passes {tests}"
    if dom.missing is True and not dom.nullable:
        return f"{name!r} is required, so {tests} is never true"
    if schema is not None and (math.isfinite(schema.lo) or math.isfinite(schema.hi)) and schema.allowed is None:
        lo = "" if not math.isfinite(schema.lo) else f"{float(schema.lo):g}"
        hi = "" if not math.isfinite(schema.hi) else f"{float(schema.hi):g}"
        why += f" (the input schema allows {name} from {lo or '-inf'} to {hi or 'inf'})"
    elif schema is not None and schema.allowed is not None and schema.allowed != {True, False}:
        why += f" (allowed values: {', '.join(sorted(str(v) for v in schema.allowed))})"
    return why


def never_true(node: Node, domains: Mapping[str, Domain]) -> str | None:
    """Why `node` can never be true under `domains`, or None if that cannot be proved."""
    conjunctions = dnf(nnf(node), MAX_CONJUNCTIONS)
    if conjunctions is None:
        return None
    reasons: list[str] = []
    for atoms in conjunctions:
        reason = None
        doms: dict[str, Domain] = {}
        for atom in atoms:
            if isinstance(atom, Literal) and atom.value is False:
                reason = "the condition is 'false'"
                break
            name = _subject(atom)
            if name is None:
                continue
            start = doms.get(name) or domains.get(name) or Domain()
            narrowed = _narrow(start, atom)
            if narrowed is None:
                continue
            doms[name] = narrowed
            if narrowed.empty():
                reason = _why_empty(name, narrowed, domains.get(name))
                break
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(dict.fromkeys(reasons))


def _cell_domain(cell: Node, column: str, domain: Domain) -> Domain | None:
    """The domain a cell allows on its column, or None when it is not a simple test."""
    conjunctions = dnf(nnf(cell), MAX_CONJUNCTIONS)
    if conjunctions is None or len(conjunctions) != 1:
        return None
    dom: Domain | None = domain
    for atom in conjunctions[0]:
        if dom is None or _subject(atom) != column or _list_operand(atom) is not None:  # a list's members are not known here
            return None
        dom = _narrow(dom, atom)
    return dom


def covers(outer: Node | None, inner: Node | None, column: str, domain: Domain | None) -> bool:
    """True when every value that passes the cell `inner` passes the cell `outer` too.

    None is the '-' cell (any value, missing included). Cells on columns that are expressions
    rather than names cover each other only when they are the same test.
    """
    if outer is None:
        return True
    if inner is None:
        return False
    if show(outer) == show(inner):
        return True
    base = domain or Domain()
    a, b = _cell_domain(outer, column, base), _cell_domain(inner, column, base)
    if a is None or b is None:
        return False
    if b.empty():
        return True
    if a.missing is True or b.missing is True:
        return a.missing is True and b.missing is True
    b_values = b.values()
    if b_values is not None:
        return all(a._fits(v) and (a.allowed is None or v in a.allowed) for v in b_values)
    if a.allowed is not None:
        return False
    lo_ok = a.lo < b.lo or (a.lo == b.lo and (a.lo_in or not b.lo_in))
    hi_ok = a.hi > b.hi or (a.hi == b.hi and (a.hi_in or not b.hi_in))
    inside = [v for v in a.excluded - b.excluded if b._fits(v)]
    return lo_ok and hi_ok and not inside
