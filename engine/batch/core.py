"""The batch core: decide a chunk of rows with the compiled flows, a model's work once per chunk.

Pure: no file I/O, no clock, no decision log. A row is routed exactly as the service routes a
request (``Decider.resolve``: a pinned version, else the challenger's share by its key, else the
live version), validated column by column (``engine.batch.validate``: a row that is not good is
validated by the flow's validator itself, for the online error) and derived one by one; then, per
flow version, each model's rows are
encoded column by column (``engine.batch.encode``) and scored in one ONNX call
(``Model.score_batch``), each row's rules run through the generated code (``CompiledFlow.hits``),
the rows whose outcome gives a model's reasons are explained in one batched TreeSHAP call per
model, and each row's action and reasons are resolved (``CompiledFlow.evaluate_scored``). The
resolution of a row that gives no model reasons depends on its fired rules alone, so it is
resolved once per distinct set of fired rules in the chunk and shared (``_Resolutions``). A row
that fails is a ``Failed`` with the error's stable code and message; the other rows are decided
all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.batch.encode import ChunkEncoder
from engine.batch.validate import validate_columns
from engine.errors import VerdictError
from engine.runtime.flow import CompiledFlow
from engine.types import Outcome

__all__ = ["Decided", "Failed", "Resolve", "RowResult", "decide_columns", "decide_rows", "failed_result"]

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
_Member = tuple[int, str, dict[str, Any]]  # (row index in the chunk, route, validated and derived values)


def failed_result(exc: Exception) -> Failed:
    """The ``Failed`` of an exception: a VerdictError's stable code and message, else ``decision_failed``."""
    if isinstance(exc, VerdictError):
        return Failed(exc.code, str(exc))
    return Failed("decision_failed", f"{type(exc).__name__}: {exc}")


def decide_rows(resolve: Resolve, rows: Sequence[Mapping[str, Any]]) -> list[RowResult]:
    """One result per row of ``rows`` (raw inputs as a JSON client would send them), in order.

    Never raises for a row: a routing, validation or evaluation error becomes that row's
    ``Failed``; an error of a model's batch call fails the rows of that flow version only.
    """
    names = dict.fromkeys(k for raw in rows for k in raw)
    return decide_columns(resolve, {k: [raw.get(k) for raw in rows] for k in names}, len(rows), rows)


def decide_columns(
    resolve: Resolve, columns: Mapping[str, Sequence[Any]], n: int, rows: Sequence[Mapping[str, Any]] | None = None,
) -> list[RowResult]:
    """``decide_rows`` of ``n`` rows given as columns (input field -> one value per row, None:
    missing), validated column by column (``engine.batch.validate``). ``rows``: the same rows as
    dicts when the caller has them (else each is built from the columns when needed: routing by a
    challenger's key, the error of a bad row)."""
    def raw(i: int) -> Mapping[str, Any]:
        if rows is not None:
            return rows[i]
        return {k: column[i] for k, column in columns.items() if column[i] is not None}

    results: list[RowResult | None] = [None] * n
    fixed = getattr(resolve, "fixed", None)  # (compiled, route) when every row goes to one version
    groups: dict[int, tuple[CompiledFlow, list[int], list[str]]] = {}
    for i in range(n):
        try:
            compiled, route = fixed if fixed is not None else resolve(raw(i))
        except Exception as exc:  # noqa: BLE001 - a row's fault (or a bug) fails that row, never the batch
            results[i] = failed_result(exc)
            continue
        group = groups.setdefault(id(compiled), (compiled, [], []))
        group[1].append(i)
        group[2].append(route)
    for compiled, indexes, routes in groups.values():
        whole = len(indexes) == n
        part = columns if whole else {k: [column[i] for i in indexes] for k, column in columns.items()}
        members = _validated(compiled, part, indexes, routes, raw, results)
        _decide_group(compiled, members, results)
    return [r if r is not None else Failed("decision_failed", "not decided") for r in results]


def _validated(
    compiled: CompiledFlow, columns: Mapping[str, Sequence[Any]], indexes: list[int], routes: list[str],
    raw: Callable[[int], Mapping[str, Any]], results: list[RowResult | None],
) -> list[_Member]:
    """The group's rows validated (column by column; a row that is not good by the validator itself,
    for its error) and derived; a row that fails is put in ``results``."""
    validator = compiled.validator
    values, bad = validate_columns(validator, columns, len(indexes))
    for j in bad:
        try:
            values[j] = validator(raw(indexes[j]))
        except Exception as exc:  # noqa: BLE001 - a row's fault fails that row, never the batch
            results[indexes[j]] = failed_result(exc)
    members: list[_Member] = []
    for i, route, clean in zip(indexes, routes, values, strict=True):
        if clean is None:
            continue
        try:
            compiled.derive(clean)
        except Exception as exc:  # noqa: BLE001 - a row's fault (or a bug) fails that row, never the batch
            results[i] = failed_result(exc)
            continue
        members.append((i, route, clean))
    return members


def _encode(compiled: CompiledFlow, m: int, encoder: ChunkEncoder, members: list[_Member]) -> np.ndarray:
    """Model ``m``'s rows of the group, column by column; row by row when a cell is refused (its error names the row)."""
    values = [v for _, _, v in members]
    try:
        return encoder(values)
    except VerdictError:
        model = compiled.models[m].model
        return np.concatenate([model.encode(v) for v in values])


def _decide_group(compiled: CompiledFlow, members: list[_Member], results: list[RowResult | None]) -> None:
    """Score every model over the group's rows at once, find each row's rules, explain the rows that
    need a model's reasons in one call per model, then resolve each row."""
    try:
        encoded, hits, needs, explanations = _score_and_explain(compiled, members)
    except VerdictError as exc:  # a value a model refuses: find the row by deciding the group's rows one by one
        if len(members) == 1:
            results[members[0][0]] = failed_result(exc)
            return
        for member in members:
            _decide_group(compiled, [member], results)
        return
    except Exception as exc:  # noqa: BLE001 - a broken model or ruleset fails this version's rows, the others go on
        failed = failed_result(exc)
        for i, _, _ in members:
            results[i] = failed
        return
    resolutions = _Resolutions(compiled)
    for j, (i, route, values) in enumerate(members):
        try:
            if needs[j]:
                rows = [x[j : j + 1] for x in encoded]
                outcome = compiled.evaluate_scored(values, hits[j], rows, explanations[j])
            else:
                outcome = resolutions.outcome(values, hits[j])
            results[i] = Decided(compiled, route, outcome)
        except Exception as exc:  # noqa: BLE001 - one row's failure is that row's error column, never the batch's
            results[i] = failed_result(exc)


_Explained = dict[int, tuple[tuple[str, float], ...]]  # model index -> Model.explain of one row


def _score_and_explain(
    compiled: CompiledFlow, members: list[_Member],
) -> tuple[list[np.ndarray], list[list[int]], list[list[int]], list[_Explained]]:
    """(each model's encoded rows, each row's fired rules, the models each row's reasons need, each
    row's explanations): every model scored over all rows at once, the scores put in the values."""
    encoded: list[np.ndarray] = []
    for m, bound in enumerate(compiled.models):
        x = _encode(compiled, m, ChunkEncoder.of(bound.model), members)  # ~20 µs of set-up a chunk
        for (_, _, values), s in zip(members, bound.model.score_batch(x).tolist(), strict=True):
            values[bound.output] = s
        encoded.append(x)
    hits = [compiled.hits(values) for _, _, values in members]
    needs = [compiled.models_to_explain(h) for h in hits]
    wanted: dict[int, list[int]] = {}
    for j, ms in enumerate(needs):
        for m in ms:
            wanted.setdefault(m, []).append(j)
    explanations: list[_Explained] = [{} for _ in members]
    for m, js in wanted.items():
        for j, pairs in zip(js, compiled.models[m].model.explain_batch(encoded[m][js]), strict=True):
            explanations[j][m] = pairs
    return encoded, hits, needs, explanations


class _Resolutions:
    """The outcomes of rows that give no model reasons, resolved once per set of fired rules.

    Without model reasons ``CompiledFlow.evaluate_scored`` is a function of the fired rules (action,
    reasons, fired rules and notice) plus the row's own scores and values, which are put back.
    """

    __slots__ = ("_compiled", "_done", "_outputs")

    def __init__(self, compiled: CompiledFlow) -> None:
        self._compiled = compiled
        self._done: dict[tuple[int, ...], Outcome] = {}
        self._outputs = [step.score_name for step in compiled.screens] + [bound.output for bound in compiled.models]

    def outcome(self, values: dict[str, Any], hits: list[int]) -> Outcome:
        key = tuple(hits)
        first = self._done.get(key)
        if first is None:
            first = self._done[key] = self._compiled.evaluate_scored(values, hits)
            return first
        scores = {name: values[name] for name in self._outputs}
        return Outcome(first.action, first.reasons, first.fired, scores, values, first.notice)
