"""Protected attributes: a flow's model must not use a field the flow marks ``protected: true``.

Under US Regulation B (12 CFR 1002.6(b)) a creditor may not take a prohibited basis into account in
a credit scoring system: marital status, race, colour, religion, national origin, sex, receipt of
public assistance (age only as 12 CFR 1002.6(b)(2) allows; see docs/compliance.md). A flow marks
such input fields ``protected: true``: they may still be collected (e.g. for fair-lending
monitoring) and read by rules the compliance owner has reviewed, but no model of the flow may take
one as a feature, directly or through a derived field computed from it (a proxy built in the flow).

Pure: :func:`protected_uses` gets each model's feature names from the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.errors import Problem
from engine.expr import ExprSyntaxError, names_in
from engine.policy.schema import FlowFile
from engine.policy.sources import ParseTrees

__all__ = ["protected_inputs", "protected_uses"]


def protected_inputs(flow: FlowFile, trees: ParseTrees | None = None) -> dict[str, frozenset[str]]:
    """Each name a model could read (input or derived field) -> the protected input fields behind it.

    An input field marked ``protected: true`` stands for itself; a derived field carries every
    protected field its expression reads, through other derived fields too. Unparsable derived
    expressions are skipped (the loader reports them). ``trees``: the load's parse trees (a fresh
    ``ParseTrees`` when not given).
    """
    parse = (trees if trees is not None else ParseTrees()).parse
    out: dict[str, frozenset[str]] = {
        name: frozenset({name}) for name, spec in flow.input.fields.items() if spec.protected
    }
    for name, text in flow.derived.items():  # derived fields may only read earlier names (loader rule)
        try:
            reads = names_in(parse(text))
        except ExprSyntaxError:
            continue
        behind = frozenset().union(*(out.get(n, frozenset()) for n in reads))
        if behind:
            out[name] = behind
    return out


def protected_uses(
    flow: FlowFile, path: str, line_of: Callable[[tuple[str | int, ...]], int | None],
    features: Callable[[str, str], tuple[str, ...] | None], trees: ParseTrees | None = None,
) -> list[Problem]:
    """One ``protected_feature`` error per model feature that is, or is derived from, a protected field.

    ``features(name, version)`` returns the model's feature names from its card (None when the model
    cannot be read, which the loader reports). ``line_of`` maps a key path of the flow file to its line.
    """
    shielded: Mapping[str, frozenset[str]] = protected_inputs(flow, trees)
    if not shielded:
        return []
    problems = []
    for k, ref in enumerate(flow.models):
        for feature in features(ref.name, ref.version) or ():
            behind = shielded.get(feature)
            if not behind:
                continue
            via = "" if behind == {feature} else f" (derived from {', '.join(sorted(behind))})"
            problems.append(Problem(
                path, f"model {ref.name}/{ref.version} of {flow.flow} {flow.version} uses feature {feature!r}{via}, "
                f"which the flow marks protected: a prohibited basis may not be a model input",
                "protected_feature", line=line_of(("models", k)), field=feature,
                hint="use a model trained without it (verdict train --protected COL; docs/compliance.md), "
                     "or remove 'protected: true' only if the field is not a prohibited basis",
            ))
    return problems
