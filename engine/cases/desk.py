"""The reviewer's actions with their input checks, shared by the CLI, ``CaseService`` and the console.

Each checks every argument first and raises ``InvalidInput`` naming every bad field at once, then
calls the store (which raises ``CaseNotFound`` / ``IllegalTransition``).

Outcomes from dispositions: a disposition alone is not a label (a decline out of caution is not
fraud). The reviewer states the outcome the review established with ``outcome`` (e.g. decline +
``confirmed_fraud``), and it is stored as the decision's label dated the day of the disposition,
with source ``case:<case id>``. docs/review-queue.md has the table.
"""

from __future__ import annotations

import time

from engine.cases.model import Case, Disposition, OutcomeKind, OutcomeLabel
from engine.cases.store import CaseStore
from engine.errors import FieldError, InvalidInput

__all__ = ["MAX_ACTOR_CHARS", "MAX_NOTE_CHARS", "check_decide", "decide_case"]

MAX_NOTE_CHARS = 4000
MAX_ACTOR_CHARS = 256
MAX_ID_CHARS = 128


def _choice(errors: list[FieldError], name: str, text: str, allowed: type[Disposition] | type[OutcomeKind]) -> str:
    values = [m.value for m in allowed]
    if text not in values:
        errors.append(FieldError(name, f"must be one of {', '.join(values)} (got {text[:40]!r})", "invalid_choice"))
    return text


def check_decide(case_id: str, disposition: str, note: str, actor: str, outcome: str = "") -> tuple[Disposition, OutcomeKind | None]:
    """The parsed disposition and outcome; raises ``InvalidInput`` naming every bad field."""
    errors: list[FieldError] = []
    if not case_id or len(case_id) > MAX_ID_CHARS:
        errors.append(FieldError("case_id", f"required, at most {MAX_ID_CHARS} characters", "required"))
    _choice(errors, "disposition", disposition, Disposition)
    if len(note) > MAX_NOTE_CHARS:
        errors.append(FieldError("note", f"at most {MAX_NOTE_CHARS} characters (got {len(note)})", "too_long"))
    if not actor.strip() or len(actor) > MAX_ACTOR_CHARS:
        errors.append(FieldError("actor", f"required, at most {MAX_ACTOR_CHARS} characters", "required"))
    if outcome:
        _choice(errors, "outcome", outcome, OutcomeKind)
    if errors:
        raise InvalidInput(errors)
    return Disposition(disposition), OutcomeKind(outcome) if outcome else None


def decide_case(
    store: CaseStore, case_id: str, disposition: str, note: str, actor: str, *, outcome: str = "", now: float | None = None
) -> Case:
    """Decide the case; with ``outcome``, also label its decision. Raises ``InvalidInput``,
    ``CaseNotFound``, ``IllegalTransition`` or ``CaseStoreError``."""
    parsed, label = check_decide(case_id, disposition, note, actor, outcome)
    at = time.time() if now is None else now
    case = store.decide(case_id, parsed, note, actor.strip(), now=at)
    if label is not None:
        day = time.strftime("%Y-%m-%d", time.gmtime(at))
        store.add_outcomes([OutcomeLabel(case.decision_id, label, day, f"case:{case.case_id}", case.request_id)])
    return case
