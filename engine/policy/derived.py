"""Derived features of a flow: parsed, ordered by dependency, type-checked; and what each one reads.

A step of ``engine.policy.compiler.compile_flow``: ``compile_derived`` parses every ``derived:``
expression (through the load's ``ParseTrees``), orders them so each comes after the features it
reads (a cycle is a ``derived_cycle`` problem), and type-checks them in that order, adding each to
the flow's symbol table; ``derived_reads`` says which input names each derived or screening
feature reads, directly or through others (``CompiledFlow.derived_reads``: which features a masked
input field leaves unknown). Problems go to the ``CompileContext`` with file and line.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.expr import ExprSyntaxError, ExprTypeError, names_in
from engine.expr.check import Symbol
from engine.expr.codegen import derived_symbol
from engine.expr.nodes import Node
from engine.policy.schema import FlowFile
from engine.policy.sources import CompileContext, expr_problem
from engine.screening.step import CompiledScreen, feature_names

__all__ = ["compile_derived", "derived_reads", "order_derived"]


def order_derived(ctx: CompileContext, parsed: dict[str, Node]) -> list[str]:
    """Derived names in dependency order; reports cycles."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            ctx.add(f"derived features depend on each other in a cycle: {cycle}", "derived_cycle", loc=("derived", name))
            return
        state[name] = 1
        for dep in sorted(names_in(parsed[name])):
            if dep in parsed:
                visit(dep, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in parsed:
        visit(name, [])
    return order


def compile_derived(ctx: CompileContext, flow: FlowFile, env: dict[str, Symbol]) -> tuple[list[tuple[str, Node]], set[str]]:
    """Derived features: parse all, order by dependency, type-check in order, adding each to `env`.

    Returns the (name, expression) pairs in evaluation order, and the names of those that can
    never be missing; problems go to `ctx`.
    """
    parsed: dict[str, Node] = {}
    for name, text in flow.derived.items():
        if name in env:
            ctx.add(f"derived feature {name!r} has the name of an input field", "duplicate_name", loc=("derived", name))
            continue
        try:
            parsed[name] = ctx.trees.parse(text)
        except ExprSyntaxError as exc:
            expr_problem(ctx, exc, loc=("derived", name), src=None, field=name)
    derived: list[tuple[str, Node]] = []
    for name in order_derived(ctx, parsed):
        try:
            env[name] = derived_symbol(parsed[name], env)  # type, can it be missing, bounds
        except ExprTypeError as exc:
            expr_problem(ctx, exc, loc=("derived", name), src=None, field=name)
            env[name] = Symbol("number", True, "derived")  # keep going; errors already reported
            continue
        derived.append((name, parsed[name]))

    # A derived number with finite bounds computed only from values that cannot be missing is never
    # missing (``amount / price`` with price >= 1), although the checker calls every division nullable.
    never_missing = {
        name for name, node in derived
        if env[name].bounds is not None and all(n in env and not env[n].nullable for n in names_in(node))
    }
    return derived, never_missing


def derived_reads(derived: Sequence[tuple[str, Node]], screens: Sequence[CompiledScreen] = ()) -> dict[str, frozenset[str]]:
    """Derived and screening feature -> the input names it reads, directly or through earlier
    features (``derived`` in evaluation order, as ``compile_derived`` returns it; ``screens`` run
    first, each of its three features reading the step's name, date-of-birth and country fields)."""
    reads: dict[str, frozenset[str]] = {}
    for screen in screens:
        fields = frozenset(f for f in (screen.name_field, screen.dob_field, screen.country_field) if f)
        reads.update(dict.fromkeys(feature_names(screen.output), fields))
    for name, node in derived:
        direct = names_in(node)
        reads[name] = frozenset(direct.union(*(reads[n] for n in direct if n in reads)))
    return reads
