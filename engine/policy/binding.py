"""Model binding, a step of compiling a flow: each model the flow names, resolved and checked against the flow.

``bind_models`` resolves each ``models:`` entry to a loaded model, checks that the flow supplies every
feature the model takes with a compatible type (``_MODEL_FEATURE_TYPES``), that its reason mapping
names the model's features and the flow's reason codes, and that a model mapped to reasons can
explain; it warns where the flow can send a value the model's card says it never saw in training.
Each model's score joins the expression environment. Pure: problems go to the ``CompileContext``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.expr.check import Symbol
from engine.policy.schema import FlowFile
from engine.policy.sources import CompileContext
from engine.runtime.flow import CompiledModel, ScoringModel

__all__ = ["bind_models"]

_MODEL_FEATURE_TYPES = {"numeric": {"number"}, "categorical": {"string"}, "boolean": {"bool"}}


def _check_model_feature(ctx: CompileContext, model: str, card: object, name: str, sym: Symbol, can_be_missing: bool, loc: tuple[str | int, ...]) -> None:
    """Warnings where the flow can send a model a value its card says it never learned to score.

    ``model_never_saw_missing``: the flow can send the feature missing, but the card records no
    missing value in training (LightGBM then scores missing as 0: a missing boolean as false).
    ``model_unknown_category``: a category value the flow accepts is not in the card's categories
    (the model receives it as missing).
    """
    spec = next((f for f in getattr(card, "features", ()) if f.name == name), None)
    if spec is None:
        return
    if can_be_missing and spec.missing_in_training == 0:
        field = f"input.fields.{name}" if sym.kind == "input" else f"derived.{name}"
        where = ("input", "fields", name) if sym.kind == "input" else ("derived", name)  # where a fix goes
        ctx.add(
            f"model {model} never saw {name!r} missing in training, but the flow can send it missing "
            "(the model scores a missing value as 0" + (", i.e. false)" if spec.type == "boolean" else ")"),
            "model_never_saw_missing",
            loc=where,
            field=name,
            severity="warning",
            hint=f"declare a default for {field} (docs/policies.md), make the field required, "
            "or retrain the model on data where it is missing",
        )
    if spec.type == "categorical" and sym.categories:
        unknown = sorted(set(sym.categories) - set(spec.categories or ()))
        if unknown:
            ctx.add(
                f"model {model} does not know {len(unknown)} value(s) of {name!r} the flow accepts: "
                f"{', '.join(unknown)} (scored as missing)",
                "model_unknown_category",
                loc=("input", "fields", name) if sym.kind == "input" else loc,
                field=name,
                severity="warning",
                hint="retrain the model with these values, or map them to known ones in a derived feature",
            )


# Long (69 lines): per model, the checks of its features, reasons, explainer and output name, then the binding.
def bind_models(
    ctx: CompileContext,
    flow: FlowFile,
    models: Mapping[tuple[str, str], ScoringModel],
    env: dict[str, Symbol],
    catalogue: Mapping[str, str],
    never_missing: set[str],
) -> tuple[list[CompiledModel], dict[str, int]]:
    """Models: resolve each, check its features are supplied with compatible types, add its score to `env`.

    Returns the bound models in the flow's order and each score's name -> index in that list.
    """
    bound: list[CompiledModel] = []
    model_index: dict[str, int] = {}
    for i, ref in enumerate(flow.models):
        loc: tuple[str | int, ...] = ("models", i)
        model = models.get((ref.name, ref.version))
        if model is None:
            ctx.add(
                f"model {ref.name} version {ref.version} is not available",
                "unknown_model",
                loc=loc,
                hint=f"expected model_artifacts/{ref.name}/{ref.version}/ with model.onnx and card.json",
            )
            continue
        for feat in getattr(model, "features", ()):
            sym = env.get(feat.name)
            if sym is None:
                ctx.add(
                    f"model {ref.name} needs feature {feat.name!r}, which the flow does not supply",
                    "model_feature_missing",
                    loc=loc,
                    field=feat.name,
                    hint="add it as an input field or a derived feature with the same name",
                )
            elif sym.type not in _MODEL_FEATURE_TYPES.get(feat.type, {sym.type}):
                ctx.add(
                    f"model {ref.name} feature {feat.name!r} is {feat.type} but the flow supplies a {sym.type}",
                    "model_feature_type",
                    loc=loc,
                    field=feat.name,
                )
            else:
                _check_model_feature(ctx, ref.name, getattr(model, "card", None), feat.name, sym,
                                     sym.nullable and feat.name not in never_missing, loc)
        feature_names = {f.name for f in getattr(model, "features", ())}
        reasons: dict[str, tuple[str, str]] = {}
        for feat, code in ref.reasons.items():
            if feature_names and feat not in feature_names:
                ctx.add(f"model {ref.name} has no feature {feat!r}", "unknown_model_feature", loc=(*loc, "reasons", feat))
            if code not in catalogue:
                ctx.add(f"reason code {code} is not in the flow's reasons", "unknown_reason", loc=(*loc, "reasons", feat))
            reasons[feat] = (code, catalogue.get(code, code))
        explains = bool(getattr(model, "has_explainer", True))
        if not explains and ref.reasons:
            ctx.add(
                f"model {ref.name} has no explainer, so it can give none of the reasons mapped under 'reasons'",
                "model_has_no_explainer",
                loc=(*loc, "reasons"),
                hint="remove 'reasons' (a rule reading its score gives the rule's own reason), or use a model "
                "whose card lists an explainer (LightGBM, logistic)",
            )
        if ref.output in env:
            ctx.add(f"model output {ref.output!r} clashes with another name", "duplicate_name", loc=(*loc, "output"))
        # A score the flow may decide without (budgets: rules_only) can be missing: rules are guarded.
        skippable = (flow.budgets.get(f"score.{ref.name}") or flow.budgets.get("score"))
        env[ref.output] = Symbol("number", skippable is not None and skippable.on_miss == "rules_only", "score")
        model_index[ref.output] = len(bound)
        positions = {name: j for j, name in enumerate(getattr(model, "feature_names", ()))}
        bound.append(CompiledModel(model, ref.output, ref.max_reasons, reasons, explains, MappingProxyType(positions)))
    return bound, model_index
