"""Fuzzy matching of one name against a screening list, with candidate blocking.

:func:`screen` normalises the query (engine.screening.normalise), gathers the candidate names that
share a blocking key with it (a token, or a token's phonetic key), keeps the ``MAX_CANDIDATES``
sharing the most keys (rare keys first: a key held by more than ``COMMON_KEY_SHARE`` of the names,
such as ``muhammad`` on some lists, only counts when nothing rarer is shared), ranks them with
rapidfuzz's ``process.extract`` (``token_sort_ratio``, in C) and gives the best ``REFINE`` the full
:func:`name_similarity`, then adjusts by date of birth and country:

- name similarity, 0-1: the best of rapidfuzz's ``token_sort_ratio`` (word order),
  ``token_set_ratio`` when both names have two or more words in common (a middle name more or
  less), and a token alignment in which a one-letter token matches a word with that initial at
  0.9 (``J Smith`` / ``John Smith``) and other tokens score by ``fuzz.ratio`` (misspellings);
- date of birth: when both are known and no listed year is within one year of the query's, the
  score is multiplied by ``DOB_MISMATCH`` (0.85); an exact date match adds ``DOB_MATCH_BONUS``;
- country: when both are known and differ, the score is multiplied by ``COUNTRY_MISMATCH`` (0.95).

The result is a match when the score reaches the list's ``threshold`` (list.yaml). The weights are
this project's choices, tuned on the labelled synthetic set of scripts/screening_eval.py (its
precision and recall are in docs/compliance.md); they are not a regulatory standard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from engine.screening.lists import ScreeningList
from engine.screening.normalise import blocking_keys, normalise_name, tokens

__all__ = ["NO_MATCH", "ScreeningResult", "name_similarity", "screen"]

MAX_CANDIDATES = 300
REFINE = 25  # candidates given the full score after the token_sort_ratio pass
COMMON_KEY_SHARE = 0.02
DOB_MISMATCH = 0.85
DOB_MATCH_BONUS = 0.03
COUNTRY_MISMATCH = 0.95
INITIAL_SCORE = 0.9
MAX_QUERY_CHARS = 200  # a longer name is cut: bounds the cost of one screening whatever a field allows


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    """The best match of a name on a list: score 0-1, and the entity when it reaches the threshold."""

    score: float
    list: str = ""
    entity_id: str = ""
    matched_name: str = ""

    @property
    def hit(self) -> bool:
        return bool(self.entity_id)


NO_MATCH = ScreeningResult(0.0)


def _aligned(q: tuple[str, ...], c: tuple[str, ...]) -> float:
    """Mean over ``q``'s tokens of the best token score in ``c`` (initials count), weighted by length."""
    total = weight = 0.0
    for t in q:
        best = 0.0
        for u in c:
            if t == u:
                best = 1.0
                break
            if (len(t) == 1 and u.startswith(t)) or (len(u) == 1 and t.startswith(u)):
                best = max(best, INITIAL_SCORE)
            else:
                best = max(best, fuzz.ratio(t, u) / 100.0)
        w = max(len(t), 2)
        total += best * w
        weight += w
    return total / weight if weight else 0.0


def name_similarity(query: str, candidate: str) -> float:
    """Similarity 0-1 of two **normalised** names (module docstring)."""
    if not query or not candidate:
        return 0.0
    if query == candidate:
        return 1.0
    q, c = tokens(query), tokens(candidate)
    best = fuzz.token_sort_ratio(query, candidate) / 100.0
    if len(set(q) & set(c)) >= 2:
        best = max(best, fuzz.token_set_ratio(query, candidate) / 100.0)
    if len(q) == len(c) or min(len(q), len(c)) >= 2:
        best = max(best, min(_aligned(q, c), _aligned(c, q)))
    return best


def _candidates(lst: ScreeningList, keys: set[str]) -> np.ndarray:
    """Name indexes sharing the most blocking keys with the query, rare keys before common ones."""
    if not keys:
        return lst.postings[:0]
    common = max(1000, int(COMMON_KEY_SHARE * len(lst.name_text)))
    lists = [lst.postings_of(k) for k in keys]
    rare = [p for p in lists if 0 < len(p) <= common]
    chosen = rare or [p for p in lists if len(p)]
    if not chosen:
        return lst.postings[:0]
    if not rare:  # only common keys: the smallest one bounds the work
        chosen = [min(chosen, key=len)[: MAX_CANDIDATES * 20]]
    ids, counts = np.unique(np.concatenate(chosen), return_counts=True)
    if len(ids) > MAX_CANDIDATES:
        ids = ids[np.argsort(-counts, kind="stable")[:MAX_CANDIDATES]]
    return ids


def _dob_factor(dob: str, listed: tuple[str, ...]) -> float:
    if not dob or not listed or not dob[:4].isdigit():
        return 1.0
    if dob in listed:
        return 1.0 + DOB_MATCH_BONUS
    year = int(dob[:4])
    years = [int(d[:4]) for d in listed if d[:4].isdigit()]
    if not years or any(abs(year - y) <= 1 for y in years):
        return 1.0
    return DOB_MISMATCH


def screen(lst: ScreeningList, name: str, dob: str = "", country: str = "") -> ScreeningResult:
    """The best-scoring listed entity for ``name`` (with ``dob`` ISO 8601 and ``country`` ISO alpha-2 if known).

    Returns ``NO_MATCH`` for an empty name or when nothing shares a blocking key; otherwise the best
    score (0-1, capped at 1) and, when it reaches ``lst.spec.threshold``, the list, entity id and
    the listed name it matched. Cost: bounded by ``MAX_CANDIDATES`` cheap and ``REFINE`` full
    similarity computations on at most ``MAX_QUERY_CHARS`` characters of the name.
    """
    query = normalise_name(name[:MAX_QUERY_CHARS])
    if not query:
        return NO_MATCH
    best_score, best_idx = 0.0, -1
    country = country.strip().lower()
    candidates = _candidates(lst, blocking_keys(query)).tolist()
    if len(candidates) > REFINE:  # a cheap first pass in C (word-order-free ratio), then the full score
        texts = [lst.name_text[i] for i in candidates]
        firsts = process.extract(query, texts, scorer=fuzz.token_sort_ratio, limit=REFINE)
        candidates = [candidates[j] for _, _, j in firsts]
    for idx in candidates:
        s = name_similarity(query, lst.name_text[idx])
        if s < 0.5:
            continue
        entity = lst.entities[int(lst.name_entity[idx])]
        s *= _dob_factor(dob.strip(), entity.birth_dates)
        if country and entity.countries and country not in entity.countries:
            s *= COUNTRY_MISMATCH
        if s > best_score:
            best_score, best_idx = s, idx
    best_score = min(1.0, best_score)
    if best_idx < 0 or best_score < lst.spec.threshold:
        return ScreeningResult(best_score)
    entity = lst.entities[int(lst.name_entity[best_idx])]
    return ScreeningResult(best_score, lst.name, entity.id, entity.names[0])
