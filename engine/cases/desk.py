"""The reviewer's actions with their input checks, shared by the CLI, ``CaseService`` and the console.

Each checks every argument first and raises ``InvalidInput`` naming every bad field at once, then
calls the store (which raises ``CaseNotFound`` / ``IllegalTransition``).

Notes (``note_case``, and a disposition's note) are stored with every card number masked to its
first 6 / last 4 digits (``engine.runtime.privacy.scrub_text``), as the decision log keeps them:
the store, the console and ``GetCase`` never show one raw.

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
from engine.runtime.privacy import scrub_text

__all__ = ["MAX_ACTOR_CHARS", "MAX_NOTE_CHARS", "check_decide", "check_note", "decide_case", "note_case"]

MAX_NOTE_CHARS = 4000
MAX_ACTOR_CHARS = 256
MAX_ID_CHARS = 128


def _choice(errors: list[FieldError], name: str, text: str, allowed: type[Disposition] | type[OutcomeKind]) -> str:
    values = [m.value for m in allowed]
    if text not in values:
        errors.append(FieldError(name, f"must be one of {', '.join(values)} (got {text[:40]!r})", "invalid_choice"))
    return text


def _check_common(errors: list[FieldError], case_id: str, actor: str) -> None:
    if not case_id or len(case_id) > MAX_ID_CHARS:
        errors.append(FieldError("case_id", f"required, at most {MAX_ID_CHARS} characters", "required"))
    if not actor.strip() or len(actor) > MAX_ACTOR_CHARS:
        errors.append(FieldError("actor", f"required, at most {MAX_ACTOR_CHARS} characters", "required"))


def check_note(case_id: str, text: str, actor: str) -> None:
    """Raise ``InvalidInput`` naming every bad field: ``case_id`` (1-128 characters), ``text``
    (1-4000 characters, not only spaces), ``actor`` (1-256)."""
    errors: list[FieldError] = []
    _check_common(errors, case_id, actor)
    if not text.strip() or len(text) > MAX_NOTE_CHARS:
        errors.append(FieldError("text", f"required, at most {MAX_NOTE_CHARS} characters (got {len(text)})", "required"))
    if errors:
        raise InvalidInput(sorted(errors, key=lambda e: ("case_id", "text", "actor").index(e.field)))


def note_case(store: CaseStore, case_id: str, text: str, actor: str, *, now: float | None = None) -> Case:
    """Add a note to the case's history (card numbers masked), in any state. Raises ``InvalidInput``,
    ``CaseNotFound`` or ``CaseStoreError``."""
    check_note(case_id, text, actor)
    return store.add_note(case_id, scrub_text(text.strip()), scrub_text(actor.strip()), now=time.time() if now is None else now)


def check_decide(case_id: str, disposition: str, note: str, actor: str, outcome: str = "") -> tuple[Disposition, OutcomeKind | None]:
    """The parsed disposition and outcome; raises ``InvalidInput`` naming every bad field."""
    errors: list[FieldError] = []
    _check_common(errors, case_id, actor)
    _choice(errors, "disposition", disposition, Disposition)
    if len(note) > MAX_NOTE_CHARS:
        errors.append(FieldError("note", f"at most {MAX_NOTE_CHARS} characters (got {len(note)})", "too_long"))
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
    case = store.decide(case_id, parsed, scrub_text(note), actor.strip(), now=at)
    if label is not None:
        day = time.strftime("%Y-%m-%d", time.gmtime(at))
        store.add_outcomes([OutcomeLabel(case.decision_id, label, day, f"case:{case.case_id}", case.request_id)])
    return case
