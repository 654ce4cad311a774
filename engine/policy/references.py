"""What the flow files name, loaded once per load: models, screening lists, event types.

A step of ``engine.policy.loader.load``, after the flow files are read: every model version a
flow names (``load_models``: verified against its card's sha256, opened once,
``engine.models.runtime``), every screening list (``load_lists``, ``engine.screening.lists``) and the
event types of ``events/`` (``load_events``, ``engine.state.events``). A file that fails is reported
once, at the first flow file naming it, and left out: the compiler then reports each flow that
needs it (``model_hints`` adds the names and versions there are to its ``unknown_model`` problems).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from engine.errors import ModelLoadError, Problem
from engine.policy.documents import read_doc, relative, sha256_hex, yaml_files
from engine.policy.sources import FlowSource
from engine.runtime.flow import ScoringModel
from engine.runtime.routing import version_key
from engine.screening.lists import ScreeningList
from engine.state.events import EventFile, EventType, compile_event
from engine.suggest import did_you_mean

__all__ = ["load_events", "load_lists", "load_models", "model_hints"]


def load_models(
    root: Path, flow_sources: Mapping[str, Mapping[str, FlowSource]], problems: list[Problem],
) -> dict[tuple[str, str], ScoringModel]:
    """Every model a flow version names that exists under model_artifacts/, loaded and verified once.

    A model that fails to load is reported once, at the first flow file naming it, and left out
    (the compiler then reports the flows that need it).
    """
    from engine.models.runtime import load_model

    models: dict[tuple[str, str], ScoringModel | None] = {}
    for versions in flow_sources.values():
        for src in versions.values():
            for i, ref in enumerate(src.file.models):
                key = (ref.name, ref.version)
                if key in models or not (root / "model_artifacts" / ref.name / ref.version).is_dir():
                    continue
                try:
                    models[key] = load_model(root / "model_artifacts" / ref.name / ref.version)
                except ModelLoadError as exc:
                    hint = f"referenced by {src.path}:{src.doc.line_of(('models', i))}"
                    problems.extend(Problem(relative(root, Path(p.path)), p.message, p.code, hint=hint) for p in exc.problems)
                    models[key] = None  # reported; do not retry
    return {k: v for k, v in models.items() if v is not None}


def model_hints(root: Path, src: FlowSource, found: list[Problem]) -> list[Problem]:
    """``found`` with a "did you mean" (or the versions there are) on each unknown_model problem."""
    out = []
    artifacts = root / "model_artifacts"
    names = sorted(p.name for p in artifacts.iterdir() if p.is_dir()) if artifacts.is_dir() else []
    for p in found:
        ref = next((r for i, r in enumerate(src.file.models) if src.doc.line_of(("models", i)) == p.line), None)
        if p.code == "unknown_model" and ref is not None:
            if ref.name in names:
                versions = sorted((q.name for q in (artifacts / ref.name).iterdir() if q.is_dir()), key=version_key)
                hint = did_you_mean(ref.version, versions) or f"versions of {ref.name}: {', '.join(versions) or 'none'}"
            else:
                hint = did_you_mean(ref.name, names) or f"models under model_artifacts/: {', '.join(names) or 'none'}"
            p = dataclasses.replace(p, hint=hint)
        out.append(p)
    return out


def load_events(root: Path, problems: list[Problem]) -> dict[str, EventType]:
    """The event types under events/ (engine.state.events); each file is named after its type."""
    out: dict[str, EventType] = {}
    for path in yaml_files(root / "events"):
        doc, parsed, raw = read_doc(root, path, EventFile, problems)
        if parsed is None or doc is None:
            continue
        rel = relative(root, path)
        if parsed.event != path.stem:
            problems.append(Problem(rel, f"event {parsed.event!r} does not match its file name {path.stem!r}", "event_name_mismatch",
                                    line=doc.line_of(("event",))))
            continue
        out[parsed.event] = compile_event(parsed, rel, sha256_hex(raw))
    return out


def load_lists(
    root: Path, flow_sources: Mapping[str, Mapping[str, FlowSource]], problems: list[Problem],
) -> dict[tuple[str, str], ScreeningList]:
    """Every screening list a flow version names, from lists/<list>/<version>/ (problems reported once)."""
    from engine.screening.lists import ListLoadError, load_list

    lists: dict[tuple[str, str], ScreeningList | None] = {}
    for versions in flow_sources.values():
        for src in versions.values():
            for i, spec in enumerate(src.file.screening):
                key = (spec.list, spec.version)
                directory = root / "lists" / spec.list / spec.version
                if key in lists or not directory.is_dir():
                    continue  # an absent list is the compiler's unknown_list
                try:
                    lists[key] = load_list(directory, f"lists/{spec.list}/{spec.version}")
                except ListLoadError as exc:
                    where = f"referenced by {src.path}:{src.doc.line_of(('screening', i))}"
                    problems.extend(dataclasses.replace(p, hint=where) for p in exc.problems)
                    lists[key] = None
    return {k: v for k, v in lists.items() if v is not None}
