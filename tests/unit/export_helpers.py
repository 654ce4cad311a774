"""A decision log made by several flow versions with a hot reload in the middle, for the export and replay tests.

Case replay-hot-reload-same-revision (/work/shared/cases, issue 11.6): a hot reload that re-sorts
the ``home`` categories of credit_default/1's card.json changes decisions of versions 1 and 2;
with the revision covering the card, the log then holds two revisions of each, and a replay
through version 1 must reproduce exactly the records of the current revision only.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from engine.audit.segments import FileStore
from engine.audit.sink import AuditSink
from engine.audit.writer import GroupCommitWriter
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import HashKey
from engine.runtime.reload import Reloader
from engine.runtime.service import Decider

from .audit_helpers import PAN, credit_applications, credit_statuses, live_card_payments
from .test_revision import _sort_home_categories as sort_home_categories

PROJECT = Path(__file__).resolve().parents[2]
N_PER_PHASE = 120  # credit applications per version and per side of the reload


def unlocked_root(directory: Path) -> Path:
    """A copy of the bundled policy root without release locks (so the card edit loads as a new revision)."""
    for part in ROOT_DIRS:
        shutil.copytree(PROJECT / part, directory / part)
    for lock in directory.glob("policies/*/*/release.lock"):
        lock.unlink()
    return directory


def _decide(decider: Decider, rows: list[dict[str, Any]], start: int, version: str) -> None:
    for i, row in enumerate(rows):
        decider.decide("credit_application", row, version=version, request_id=f"row-{start + i}")


def reload_log(root: Path, directory: Path) -> Path:
    """Credit applications pinned to versions 1 and 2 and routed live, a hot reload, the same again,
    plus card payments with a planted PAN; small segments so the log spans many files."""
    key = HashKey(b"test-key")
    writer = GroupCommitWriter(FileStore(directory, fsync=False, max_segment_bytes=96 * 1024))
    decider = Decider(load_policies(root), sink=AuditSink(writer, key, Fingerprinter(key)))
    rows = credit_applications(N_PER_PHASE * 2)
    first, second = rows[:N_PER_PHASE], rows[N_PER_PHASE:]
    for version in ("1", "2", ""):
        _decide(decider, first, 0, version)
    for i, row in enumerate(live_card_payments(40)):
        decider.decide("card_payment", {**row, "card_number": PAN}, request_id=f"card-{i}")
    sort_home_categories(root)
    status = Reloader(root, decider).reload()
    assert status.ok, status
    for version in ("1", "2", ""):
        _decide(decider, second, N_PER_PHASE, version)
    decider.close()
    writer.close()
    return directory


def outcomes_file(path: Path) -> Path:
    """Known outcomes (the data's good/bad status) of the logged credit applications, by request id."""
    with path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["request_id", "outcome"])
        for i, status in enumerate(credit_statuses(N_PER_PHASE * 2)):
            w.writerow([f"row-{i}", status])
    return path


def protected_file(path: Path) -> Path:
    """Protected attributes by request id: the data's marital status and age (never sent to a flow here)."""
    rows = credit_applications(N_PER_PHASE * 2)
    with path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["request_id", "marital", "age"])
        for i, row in enumerate(rows):
            w.writerow([f"row-{i}", row.get("marital", ""), row.get("age", "")])
    return path
