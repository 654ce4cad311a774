"""Screening lists: sanctions and PEP entities loaded from files, indexed for candidate blocking.

A list lives in ``lists/<name>/<version>/``: ``list.yaml`` (its closed schema is :class:`ListFile`)
and the entity file it names, in one of two formats published by OpenSanctions:

- ``ftm_jsonl``: FollowTheMoney entities, one JSON object a line, ``{"id", "schema",
  "properties": {"name": [...], "alias": [...], "birthDate": [...], "nationality": [...],
  "country": [...]}}`` (https://followthemoney.tech/explorer/schemata/Person/);
- ``csv``: the "simple" targets CSV (``id,schema,name,aliases,birth_date,countries``; several
  values in a cell separated by ``;``).

Only ``Person``, ``Company``, ``Organization`` and ``LegalEntity`` entities are screened (others,
such as vessels or addresses, are counted and skipped). Loading builds, once, the normalised names
and an inverted index from blocking keys (engine.screening.normalise.blocking_keys) to the names
that have them, as sorted numpy arrays, so a 1,000,000-name list is a few hundred MB at most and a
look-up touches only the names that share a token or its phonetic key with the query.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, ValidationError

from engine.closed import ClosedText
from engine.errors import Problem
from engine.screening.normalise import blocking_keys, normalise_name

__all__ = ["Entity", "ListFile", "ListLoadError", "ScreeningList", "build_list", "load_list", "read_entities"]

SCREENED_SCHEMATA = frozenset({"Person", "Company", "Organization", "LegalEntity"})
MAX_ENTITY_BYTES = 1 << 20  # one JSON line or CSV row longer than this is refused (bounded cost)


class ListFile(ClosedText):
    """``lists/<name>/<version>/list.yaml``."""

    list: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=32)]
    kind: Literal["sanctions", "pep"]
    description: str = ""
    format: Literal["ftm_jsonl", "csv"]
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    threshold: float = Field(ge=0.5, le=1.0, description="a name scoring at least this is a match (0-1)")
    source: str = Field(default="", description="where the list comes from and as of when")


@dataclass(frozen=True, slots=True)
class Entity:
    """One listed person or organisation."""

    id: str
    schema: str
    names: tuple[str, ...]  # as listed (name first, then aliases)
    birth_dates: tuple[str, ...] = ()  # ISO 8601 dates or years, as listed
    countries: tuple[str, ...] = ()  # ISO 3166-1 alpha-2, lower case


class ListLoadError(Exception):
    """A list that cannot be loaded; ``problems`` says why, with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class ScreeningList:
    """A loaded, indexed list. ``content_sha256`` covers list.yaml and the entity file; ``files`` maps
    each of the two file names to the sha256 of its bytes (what a release lock records)."""

    spec: ListFile
    entities: tuple[Entity, ...]
    name_text: tuple[str, ...]  # normalised name per indexed name
    name_entity: np.ndarray  # (names,) int32: entity index of each name
    keys: dict[str, int]  # blocking key -> row in offsets
    offsets: np.ndarray  # (keys + 1,) int64: postings of key k are postings[offsets[k]:offsets[k+1]]
    postings: np.ndarray  # (pairs,) int32 name indexes, grouped by key
    content_sha256: str
    skipped: int = 0  # entities of other schemata
    files: Mapping[str, str] = field(default_factory=dict)  # file name in the list directory -> sha256

    @property
    def name(self) -> str:
        return self.spec.list

    @property
    def version(self) -> str:
        return self.spec.version

    def postings_of(self, key: str) -> np.ndarray:
        """The name indexes indexed under ``key`` (empty when none)."""
        k = self.keys.get(key)
        if k is None:
            return self.postings[:0]
        return self.postings[self.offsets[k]:self.offsets[k + 1]]


def _split(cell: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (cell or "").split(";") if v.strip())


def read_entities(fmt: str, data: bytes, path: str) -> tuple[list[Entity], int, list[Problem]]:
    """Parse an entity file; returns (entities, skipped of other schemata, problems with line numbers)."""
    entities: list[Entity] = []
    problems: list[Problem] = []
    skipped = 0
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "ftm_jsonl":
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if len(line) > MAX_ENTITY_BYTES:
                problems.append(Problem(path, f"entity line is over {MAX_ENTITY_BYTES} bytes", "list_entity_too_long", line=line_no))
                continue
            try:
                doc = json.loads(line)
                props = doc.get("properties", {})
                eid, schema = str(doc["id"]), str(doc["schema"])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                problems.append(Problem(path, f"not a FollowTheMoney entity: {type(exc).__name__}: {exc}", "list_entity_invalid", line=line_no))
                continue
            if schema not in SCREENED_SCHEMATA:
                skipped += 1
                continue
            names = tuple(str(n) for key in ("name", "alias") for n in props.get(key, []) if str(n).strip())
            if not names:
                problems.append(Problem(path, f"entity {eid} has no name", "list_entity_invalid", line=line_no))
                continue
            countries = tuple(str(c).lower() for key in ("nationality", "country", "citizenship", "jurisdiction")
                              for c in props.get(key, []))
            entities.append(Entity(eid, schema, names, tuple(str(d) for d in props.get("birthDate", [])), countries))
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"id", "schema", "name"} - set(reader.fieldnames or ())
        if missing:
            return [], 0, [Problem(path, f"CSV lacks columns: {', '.join(sorted(missing))}", "list_entity_invalid", line=1)]
        for row_no, row in enumerate(reader, start=2):
            schema = (row.get("schema") or "").strip()
            if schema not in SCREENED_SCHEMATA:
                skipped += 1
                continue
            names = tuple(n for n in ((row.get("name") or "").strip(), *_split(row.get("aliases"))) if n)
            if not names or not (row.get("id") or "").strip():
                problems.append(Problem(path, "row without an id or a name", "list_entity_invalid", line=row_no))
                continue
            entities.append(Entity(row["id"].strip(), schema, names, _split(row.get("birth_date")),
                                   tuple(c.lower() for c in _split(row.get("countries")))))
    return entities, skipped, problems


def build_list(spec: ListFile, entities: list[Entity], content_sha256: str = "", skipped: int = 0) -> ScreeningList:
    """Normalise every name and build the blocking index (the one-off cost of a load)."""
    name_text: list[str] = []
    name_entity: list[int] = []
    key_ids: dict[str, int] = {}
    pair_key: list[int] = []
    pair_name: list[int] = []
    for e_idx, e in enumerate(entities):
        for raw in dict.fromkeys(normalise_name(n) for n in e.names):
            if not raw:
                continue
            n_idx = len(name_text)
            name_text.append(raw)
            name_entity.append(e_idx)
            for key in blocking_keys(raw):
                pair_key.append(key_ids.setdefault(key, len(key_ids)))
                pair_name.append(n_idx)
    keys_arr = np.asarray(pair_key, dtype=np.int32)
    order = np.argsort(keys_arr, kind="stable")
    postings = np.asarray(pair_name, dtype=np.int32)[order]
    offsets = np.zeros(len(key_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys_arr, minlength=len(key_ids)), out=offsets[1:])
    return ScreeningList(spec, tuple(entities), tuple(name_text), np.asarray(name_entity, dtype=np.int32),
                         key_ids, offsets, postings, content_sha256, skipped)


def load_list(directory: Path, rel: str) -> ScreeningList:
    """Read ``list.yaml`` and its entity file under ``directory``; raises ListLoadError with every problem."""
    import yaml

    meta_path = directory / "list.yaml"
    try:
        meta_raw = meta_path.read_bytes()
        spec = ListFile.model_validate(yaml.safe_load(meta_raw))
    except FileNotFoundError:
        raise ListLoadError([Problem(f"{rel}/list.yaml", "the list has no list.yaml", "list_missing")]) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ListLoadError([Problem(f"{rel}/list.yaml", f"cannot read: {exc}", "list_invalid")]) from exc
    except ValidationError as exc:
        raise ListLoadError([Problem(f"{rel}/list.yaml", f"{'.'.join(map(str, e['loc'])) or '<file>'}: {e['msg']}", "list_invalid")
                             for e in exc.errors()]) from exc
    try:
        data = (directory / spec.file).read_bytes()
    except OSError as exc:
        raise ListLoadError([Problem(f"{rel}/{spec.file}", f"cannot read the entity file: {exc}", "list_missing")]) from exc
    entities, skipped, problems = read_entities(spec.format, data, f"{rel}/{spec.file}")
    if problems:
        raise ListLoadError(problems[:50])
    if not entities:
        raise ListLoadError([Problem(f"{rel}/{spec.file}", "the list has no person or organisation to screen", "list_empty")])
    meta_sha, data_sha = hashlib.sha256(meta_raw), hashlib.sha256(data)
    digest = hashlib.sha256(meta_sha.digest() + data_sha.digest()).hexdigest()
    built = build_list(spec, entities, digest, skipped)
    return replace(built, files={"list.yaml": meta_sha.hexdigest(), spec.file: data_sha.hexdigest()})
