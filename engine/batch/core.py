"""The batch core: decide a chunk of rows with the compiled flows, scoring each model once per chunk.

Pure: no file I/O, no clock, no decision log. A row is routed exactly as the service routes a
request (``Decider.resolve``: a pinned version, else the challenger's share by its key, else the
live version), validated and derived one by one; then every model scores all the chunk's rows of
a flow version in one ONNX call (``Model.score_batch``), and each row's rules and reasons run
through the generated code (``CompiledFlow.evaluate_scored``). A row that fails is a ``Failed``
with the error's stable code and message; the other rows are decided all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import VerdictError
from engine.runtime.flow import CompiledFlow
from engine.types import Outcome

__all__ = ["Decided", "Failed", "Resolve", "RowResult", "decide_rows"]

#: Routes one raw input to (compiled flow version, route): ``Decider.resolve`` bound to a flow and version.
Resolve = Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]]


@dataclass(frozen=True, slots=True)
class Decided:
    """A decided row: the flow version that decided it, its route and the outcome."""

    flow: CompiledFlow
    route: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Failed:
    """A row that could not be decided: the error's stable code and its message (every bad field)."""

    code: str
    message: str


RowResult = Decided | Failed


def _failed(exc: Exception) -> Failed:
    if isinstance(exc, VerdictError):
        return Failed(exc.code, str(exc))
    return Failed("decision_failed", f"{type(exc).__name__}: {exc}")


def decide_rows(resolve: Resolve, rows: Sequence[Mapping[str, Any]]) -> list[RowResult]:
    """One result per row of ``rows`` (raw inputs as a JSON client would send them), in order.

    Never raises for a row: a routing, validation or evaluation error becomes that row's
    ``Failed``; an error of a model's batch call fails the rows of that flow version only.
    """
    results: list[RowResult | None] = [None] * len(rows)
    groups: dict[int, tuple[CompiledFlow, list[tuple[int, str, dict[str, Any]]]]] = {}
    for i, raw in enumerate(rows):
        try:
            compiled, route = resolve(raw)
            values = compiled.validator(raw)
            compiled.derive(values)
        except Exception as exc:  # noqa: BLE001 - a row's fault (or a bug) fails that row, never the batch
            results[i] = _failed(exc)
            continue
        groups.setdefault(id(compiled), (compiled, []))[1].append((i, route, values))
    for compiled, members in groups.values():
        _decide_group(compiled, members, results)
    return [r if r is not None else Failed("decision_failed", "not decided") for r in results]


def _decide_group(
    compiled: CompiledFlow, members: list[tuple[int, str, dict[str, Any]]], results: list[RowResult | None]
) -> None:
    """Score every model over the group's rows at once, find each row's rules, explain the rows that
    need a model's reasons in one call per model, then resolve each row."""
    encoded: list[np.ndarray] = []
    try:
        for bound in compiled.models:
            x = np.concatenate([bound.model.encode(values) for _, _, values in members])
            scores = bound.model.score_batch(x).tolist()
            for (_, _, values), s in zip(members, scores, strict=True):
                values[bound.output] = s
            encoded.append(x)
        hits = [compiled.hits(values) for _, _, values in members]
        explanations: list[dict[int, tuple[tuple[str, float], ...]]] = [{} for _ in members]
        wanted: dict[int, list[int]] = {}
        for j, h in enumerate(hits):
            for m in compiled.models_to_explain(h):
                wanted.setdefault(m, []).append(j)
        for m, js in wanted.items():
            for j, pairs in zip(js, compiled.models[m].model.explain_batch(encoded[m][js]), strict=True):
                explanations[j][m] = pairs
    except Exception as exc:  # noqa: BLE001 - a broken model or ruleset fails this version's rows, the others go on
        failed = _failed(exc)
        for i, _, _ in members:
            results[i] = failed
        return
    for j, (i, route, values) in enumerate(members):
        try:
            rows = [x[j : j + 1] for x in encoded]
            results[i] = Decided(compiled, route, compiled.evaluate_scored(values, hits[j], rows, explanations[j]))
        except Exception as exc:  # noqa: BLE001 - one row's failure is that row's error column, never the batch's
            results[i] = _failed(exc)
