"""The content revision covers every model file that decides: the card, the graph and the explainer.

Case replay-hot-reload-same-revision (issue 11.6): re-sorting the `home` categories of
credit_default's card.json changed decisions but kept the revision, even under a released version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from engine.policy.loader import load, load_policies
from engine.runtime.reload import Reloader
from engine.runtime.service import Decider

from .policy_roots import project_copy

MODEL = Path("model_artifacts/credit_default/1")


def _reseal(root: Path, artifact: str) -> None:
    """Record the new sha256 of ``artifact`` in the card, as a model owner would after editing it."""
    card_path = root / MODEL / "card.json"
    card = json.loads(card_path.read_text())
    for art in card["artifacts"].values():
        if art["file"] == artifact:
            art["sha256"] = hashlib.sha256((root / MODEL / artifact).read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card, indent=2) + "\n")


def _sort_home_categories(root: Path) -> None:
    """The case's edit: `home` categories sorted (changes the encoding, not the graph)."""
    path = root / MODEL / "card.json"
    card = json.loads(path.read_text())
    for f in card["features"]:
        if f["name"] == "home":
            f["categories"] = sorted(f["categories"])
    path.write_text(json.dumps(card, indent=2) + "\n")


def _change_graph(root: Path) -> None:
    """A different, valid model.onnx (its doc string changed), resealed in the card."""
    path = root / MODEL / "model.onnx"
    model = onnx.load_from_string(path.read_bytes())
    model.doc_string = "edited"
    path.write_bytes(model.SerializeToString())
    _reseal(root, "model.onnx")


def _change_explainer(root: Path) -> None:
    """A different, valid model.txt (one more trailing line), resealed in the card."""
    path = root / MODEL / "model.txt"
    path.write_bytes(path.read_bytes() + b"\n")
    _reseal(root, "model.txt")


EDITS: dict[str, Callable[[Path], None]] = {
    "card.json": _sort_home_categories,
    "model.onnx": _change_graph,
    "model.txt": _change_explainer,
}


@pytest.mark.parametrize("changed", list(EDITS))
def test_a_model_file_changed_under_a_released_version_is_refused(tmp_path: Path, changed: str) -> None:
    """Changing card.json, model.onnx or model.txt of a model a released version uses is refused on reload; the old state serves."""
    root = project_copy(tmp_path)
    decider = Decider(load_policies(root))
    good = decider.policies.revision
    EDITS[changed](root)
    status = Reloader(root, decider).reload()
    assert not status.ok and decider.policies.revision == good and status.serving == good
    named = {p.path for p in status.problems if p.code == "released_version_changed"}
    assert str(MODEL / changed) in named


@pytest.mark.parametrize("changed", list(EDITS))
def test_a_model_file_changed_under_an_unreleased_version_is_a_new_revision(tmp_path: Path, changed: str) -> None:
    """Without a release lock the same edit loads, and every version using the model gets a new revision."""
    root = project_copy(tmp_path)
    for lock in root.glob("policies/*/*/release.lock"):
        lock.unlink()
    before = {k: v.revision for k, v in load(root).compiled.items()}
    EDITS[changed](root)
    result = load(root)
    assert result.errors == []
    after = {k: v.revision for k, v in result.compiled.items()}
    assert after[("credit_application", "1")] != before[("credit_application", "1")]
    assert after[("credit_application", "2")] != before[("credit_application", "2")]
    assert after[("card_payment", "1")] == before[("card_payment", "1")]  # does not use credit_default
