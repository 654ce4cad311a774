"""The review queue: a case for each REVIEW decision, analysts' dispositions, outcome labels.

Modules: ``model`` (Case, states, dispositions, outcome kinds), ``config`` (each flow's
``review.yaml``: queue, priority, SLA, link fields), ``store`` (the ``CaseStore`` API and its
SQLite / PostgreSQL implementation), ``opener`` (cases opened from the durable decision log, with
catch-up after a crash), ``errors``. docs/review-queue.md is the guide.
"""

from engine.cases.config import QueueConfig, ReviewConfig, load_review_config
from engine.cases.errors import CaseNotFound, CaseStoreError, IllegalTransition
from engine.cases.model import BAD_OUTCOMES, Case, CaseEvent, CaseQuery, CaseState, Disposition, OutcomeKind, OutcomeLabel, Priority
from engine.cases.opener import CaseOpener, case_from_record, catch_up, chain_lines
from engine.cases.store import MAX_PAGE, CaseStore, SqlCaseStore, as_mapping, open_store

__all__ = [
    "BAD_OUTCOMES",
    "MAX_PAGE",
    "Case",
    "CaseEvent",
    "CaseNotFound",
    "CaseOpener",
    "CaseQuery",
    "CaseState",
    "CaseStore",
    "CaseStoreError",
    "Disposition",
    "IllegalTransition",
    "OutcomeKind",
    "OutcomeLabel",
    "Priority",
    "QueueConfig",
    "ReviewConfig",
    "SqlCaseStore",
    "as_mapping",
    "case_from_record",
    "catch_up",
    "chain_lines",
    "load_review_config",
    "open_store",
]
