"""Released flow versions are immutable: a lock file records the content behind each one.

``verdict release FLOW VERSION`` writes ``policies/<flow>/<version>/release.lock`` with the
version's content revision and the sha256 of every file behind it (its flow file, its rule files,
each model's ``card.json``, graph and explainer, and each screening list's ``list.yaml`` and entity
file under ``lists/<list>/<version>/``: everything that can change a decision). From then on the loader compares the content with the lock on every load and
reload; any difference is an error naming the file that changed, so ``verdict lint`` fails and the
server refuses to activate the change and keeps serving what it had. The way to change a released
version is to create a new version.

One exception, for a fix of how a model is *served* that leaves what it computes unchanged (the
float64 thresholds of 2026-11: same trees in ``model.txt``, a corrected ``model.onnx``):
``verdict release FLOW VERSION --reissue --reason TEXT`` rewrites the lock for the current content
when no flow or rule file changed, the version uses the same models, and its tests pass; the lock
keeps a ``reissued`` entry with the date, the reason, the previous revision and the changed files.

Test files (``tests/``) and the routing file are not part of a version's content: tests may be
added to a released version, and routing decides which version serves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationError

from engine.closed import Closed
from engine.errors import Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

if TYPE_CHECKING:
    from engine.policy.sources import FlowSource, RuleSource
    from engine.runtime.flow import ScoringModel
    from engine.screening.lists import ScreeningList
    from engine.state.events import EventType

__all__ = [
    "LOCK_NAME", "Content", "ReleaseLock", "Reissue", "check_release", "content_of", "lock_path", "read_lock",
    "changed_files", "reissue_refusals", "render_lock",
]

LOCK_NAME = "release.lock"
_HEX64 = r"^[0-9a-f]{64}$"


class Reissue(Closed):
    """One re-issue of a lock: when, why, what it replaced and which files differed."""

    at: str
    reason: str = Field(min_length=1)
    previous_revision: str = Field(pattern=_HEX64)
    changed: tuple[str, ...] = ()


class ReleaseLock(Closed):
    """policies/<flow>/<version>/release.lock, written by `verdict release`; never edited by hand."""

    flow: str
    version: str
    revision: str = Field(pattern=_HEX64)
    released_at: str
    files: dict[str, str] = Field(description="path under the root -> sha256 of its bytes")
    models: dict[str, str] = Field(default_factory=dict, description="<model>/<version> -> sha256 of model.onnx")
    reissued: tuple[Reissue, ...] = ()


@dataclass(frozen=True)
class Content:
    """What a flow version's content is made of, file by file."""

    revision: str
    files: dict[str, str]
    models: dict[str, str]


def lock_path(root: Path, flow: str, version: str) -> Path:
    """Where the lock of a flow version lives."""
    return Path(root) / "policies" / flow / version / LOCK_NAME


def content_of(
    src: FlowSource, rulesets: Mapping[str, RuleSource], models: Mapping[tuple[str, str], ScoringModel], revision: str,
    *, lists: Mapping[tuple[str, str], ScreeningList] | None = None, events: Mapping[str, EventType] | None = None,
) -> Content:
    """The files and models behind a flow version, with their digests ('-' when unavailable).

    The schemas of the event types its stateful features read (``events/<type>.yaml``) count too.

    The screening lists it uses count by their files (``lists/<list>/<version>/list.yaml`` and the
    entity file): a list changed under a released version is refused like a changed rule file. A
    list that does not load is left out here (the loader reports it, and its revision differs).
    """
    files = {src.path: src.digest}
    for name in src.file.rulesets:
        rs = rulesets.get(name)
        if rs is not None:
            files[rs.path] = rs.digest
    found = {}
    for ref in src.file.models:
        model = models.get((ref.name, ref.version))
        found[f"{ref.name}/{ref.version}"] = model.sha256 if model is not None else "-"
        for name, digest in (model.files.items() if model is not None else ()):
            files[f"model_artifacts/{ref.name}/{ref.version}/{name}"] = digest
    for spec in src.file.screening:
        lst = (lists or {}).get((spec.list, spec.version))
        for name, digest in (lst.files.items() if lst is not None else ()):
            files[f"lists/{spec.list}/{spec.version}/{name}"] = digest
    behaviour = src.file.behaviour
    for event in sorted({f.event for f in behaviour.features.values() if f.event} if behaviour else ()):
        schema = (events or {}).get(event)
        if schema is not None:
            files[schema.path] = schema.digest
    return Content(revision, files, found)


def read_lock(path: Path, rel: str) -> tuple[ReleaseLock | None, list[Problem]]:
    """The lock at `path` (None if absent), or the problems that make it unreadable."""
    if not path.is_file():
        return None, []
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
        return ReleaseLock.model_validate(doc.data), []
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(rel, f"cannot read the release lock: {exc}", "release_lock_invalid")]
    except YamlSyntaxError as exc:
        return None, [Problem(rel, f"the release lock is not valid YAML: {exc}", "release_lock_invalid", line=exc.line)]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        return None, [
            Problem(
                rel,
                f"the release lock is damaged ({where}: {first['msg']})",
                "release_lock_invalid",
                hint="release.lock is written by `verdict release`; restore it from version control",
            )
        ]


def check_release(root: Path, content: Content, flow: str, version: str) -> list[Problem]:
    """Problems if `flow` `version` is released and its content differs from its lock."""
    path = lock_path(root, flow, version)
    rel = f"policies/{flow}/{version}/{LOCK_NAME}"
    lock, problems = read_lock(path, rel)
    if lock is None:
        return problems
    if (lock.flow, lock.version) != (flow, version):
        return [
            Problem(
                rel, f"the lock is for {lock.flow} {lock.version}, not {flow} {version}", "release_lock_invalid",
                hint=f"a copied version directory brings the old version's lock along: delete {rel} "
                f"(release {flow} {version} itself with `verdict release {flow} {version}` when it is ready)",
            )
        ]
    if lock.revision == content.revision:
        return []
    advice = (
        f"released versions are immutable: put the change in a new version (e.g. copy policies/{flow}/{version} "
        f"to a new directory and give it new rule files), or restore the released content"
    )
    head = f"{flow} version {version} is released ({rel}) and "
    out = _file_changes(lock, content, head, advice) + _model_changes(lock, content, head, advice)
    if not out and not any(v == "-" for v in content.models.values()):
        out.append(Problem(rel, head + "its content revision differs from the lock", "released_version_changed", hint=advice))
    return out


def _file_changes(lock: ReleaseLock, content: Content, head: str, advice: str) -> list[Problem]:
    """One problem per policy file removed, changed or added since the release."""

    def changed(fpath: str, now: str, was: str) -> tuple[str, str] | None:
        return (fpath, "this file changed since the release") if now != was else None

    return _digest_changes(
        lock.files, content.files, head, advice, changed,
        where=lambda fpath: fpath,
        removed="this file is no longer part of it (missing or renamed)",
        added="this file was added to it since the release",
    )


def _model_changes(lock: ReleaseLock, content: Content, head: str, advice: str) -> list[Problem]:
    """One problem per model dropped, changed (sha256) or added since the release."""

    def changed(key: str, now: str, was: str) -> tuple[str, str] | None:
        graph = f"model_artifacts/{key}/model.onnx"
        if now in (was, "-") or graph in lock.files:  # "-": reported already; a locked graph: as a file
            return None
        return graph, f"its model changed (sha256 {now[:12]}, released {was[:12]})"

    return _digest_changes(
        lock.models, content.models, head, advice, changed,
        where=lambda key: f"model_artifacts/{key}",
        removed="it no longer uses this model",
        added="this model was added to it since the release",
    )


def _digest_changes(
    locked: Mapping[str, str], current: Mapping[str, str], head: str, advice: str,
    changed: Callable[[str, str, str], tuple[str, str] | None], *, where: Callable[[str], str], removed: str, added: str,
) -> list[Problem]:
    """Problems for the keys of ``locked`` (name -> sha256) missing from ``current``, changed in it
    (``changed(key, now, was)`` gives the path and message, or None), and added to it."""
    out: list[Problem] = []
    for key, was in sorted(locked.items()):
        now = current.get(key)
        found = (where(key), removed) if now is None else changed(key, now, was)
        if found is not None:
            out.append(Problem(found[0], head + found[1], "released_version_changed", hint=advice))
    out.extend(Problem(where(key), head + added, "released_version_changed", hint=advice) for key in sorted(set(current) - set(locked)))
    return out


def reissue_refusals(lock: ReleaseLock, content: Content) -> list[str]:
    """Why the lock cannot be re-issued for ``content`` (empty: it can).

    Only model files may differ: a changed, added or removed flow or rule file, or another set of
    models, is a policy change and belongs in a new version.
    """
    policy = {p for p in set(lock.files) | set(content.files) if not p.startswith("model_artifacts/")}
    out = [
        f"{path} changed since the release (a policy change needs a new version)"
        for path in sorted(policy)
        if lock.files.get(path) != content.files.get(path)
    ]
    if set(lock.models) != set(content.models):
        out.append(f"the version's models changed ({', '.join(sorted(lock.models))} -> {', '.join(sorted(content.models))})")
    if any(v == "-" for v in content.models.values()):
        out.append("a model of the version does not load")
    return out


def changed_files(lock: ReleaseLock, content: Content) -> tuple[str, ...]:
    """Files whose digest differs between the lock and ``content``; ``(newly recorded)`` marks a model
    file a lock older than the full-content revision did not record (its change cannot be told)."""
    graphs = {f"model_artifacts/{key}/model.onnx": sha for key, sha in lock.models.items()}
    out = []
    for path in sorted(set(lock.files) | set(content.files)):
        before, now = lock.files.get(path, graphs.get(path)), content.files.get(path)
        if before is None and path.startswith("model_artifacts/"):
            out.append(f"{path} (newly recorded)")
        elif before != now:
            out.append(path)
    return tuple(out)


def render_lock(flow: str, version: str, content: Content, now: dt.datetime | None = None,
                released_at: str | None = None, reissued: tuple[Reissue, ...] = ()) -> str:
    """The text of a lock file for `content` (YAML, stable key order); re-issues keep ``released_at``."""
    when = released_at or (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"# Written by `verdict release {flow} {version}`. Do not edit: {flow} {version} is released and",
        "# immutable. The loader refuses it if any file below changes; put changes in a new version.",
        f"flow: {flow}",
        f'version: "{version}"',
        f'revision: "{content.revision}"',
        f'released_at: "{when}"',
        "files:",
        *(f'  {path}: "{digest}"' for path, digest in sorted(content.files.items())),
    ]
    if content.models:
        lines.append("models:")
        lines += [f'  "{key}": "{sha}"' for key, sha in sorted(content.models.items())]
    if reissued:
        lines.append("reissued:")
        for r in reissued:
            lines += [f'  - at: "{r.at}"', f"    reason: {json.dumps(r.reason)}",
                      f'    previous_revision: "{r.previous_revision}"']
            lines += ["    changed:", *(f'      - "{c}"' for c in r.changed)] if r.changed else ["    changed: []"]
    return "\n".join(lines) + "\n"
