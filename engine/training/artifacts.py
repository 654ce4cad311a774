"""Writing a model directory: artifact files, their sha256s filled into the card, then a verified load."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.models.card import CARD_FILE, ModelCard
from engine.models.runtime import load_model, sha256_bytes
from engine.training.errors import TrainingError

__all__ = ["file_sha256", "library_versions", "now_iso", "staged_dir", "write_model_dir", "write_training_baseline"]

_LIBRARIES = ("lightgbm", "onnxruntime", "onnxmltools", "onnx", "skl2onnx", "scikit-learn", "numpy")


def library_versions(names: tuple[str, ...] = _LIBRARIES) -> dict[str, str]:
    """Installed versions of the libraries that shaped the artifacts, plus Python's."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return sha256_bytes(Path(path).read_bytes())


def now_iso() -> str:
    """The current UTC time, ISO-8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _previous_created_at(out: Path, card: Mapping[str, Any]) -> str | None:
    """The old card's timestamp when the rebuild produced the same artifacts from the same data."""
    try:
        old = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = old.get("artifacts") == card["artifacts"] and old.get("data", {}).get("sha256") == card["data"]["sha256"]
    return old.get("created_at") if same else None


def write_model_dir(out: Path, card: dict[str, Any], files: Mapping[str, bytes], previous: Path | None = None) -> ModelCard:
    """Write ``files`` and ``card.json`` into ``out``; fills artifact sha256s; verifies by loading.

    ``card["artifacts"]`` names the files; their sha256 are computed here. When ``previous`` (default
    ``out``) already holds a card for identical artifacts and data, its ``created_at`` is kept so a
    rebuild is a no-op.
    """
    card = json.loads(json.dumps(card))  # a private deep copy
    for role, art in card["artifacts"].items():
        if art["file"] not in files:
            raise TrainingError(f"card artifact {role!r} names {art['file']!r}, which was not produced")
        art["sha256"] = sha256_bytes(files[art["file"]])
    out.mkdir(parents=True, exist_ok=True)
    card["created_at"] = _previous_created_at(previous or out, card) or card.get("created_at") or now_iso()
    try:
        validated = ModelCard.model_validate(card)
    except ValueError as exc:
        raise TrainingError(f"the card built for {out} is invalid: {exc}", "card_invalid") from exc
    for name, data in files.items():
        _write_atomic(out / name, data)
    _write_atomic(out / CARD_FILE, validated.to_json().encode("utf-8"))
    try:
        load_model(out)
    except ModelLoadError as exc:  # pragma: no cover - would be a bug in the writer
        raise TrainingError(f"the written model does not load: {exc}", "written_model_invalid") from exc
    return validated


def write_training_baseline(directory: Path, x: Any) -> Path:
    """Write ``baseline.json`` (engine.monitor.baseline) beside the card in ``directory``: the
    training deciles and shares of each input of the encoded training rows ``x`` (rows, n) and of
    the written model's scores on them. Not part of the card, so the revision does not change."""
    from engine.monitor.baseline import build_baseline, write_baseline

    model = load_model(directory)
    baseline = build_baseline(model.name, model.version, model.features, x, model.score_batch(x))
    return write_baseline(directory, baseline)


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out`` to write a model into, put in place only when the block succeeds.

    On success the directory is renamed to ``out`` (or, when ``out`` exists, each file is moved into it
    with an atomic ``os.replace``); on any error it is removed with any parent directory it created, so
    a failed run leaves no model behind.
    """
    out = Path(out)
    created = [d for d in (out.parent, *out.parent.parents) if not d.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        if out.exists() and not out.is_dir():
            raise TrainingError(f"{out} exists and is not a directory", "out_not_a_directory")
        if out.exists():
            for item in sorted(tmp.iterdir()):
                os.replace(item, out / item.name)
            tmp.rmdir()
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # innermost first
            try:
                d.rmdir()
            except OSError:
                break
        raise
