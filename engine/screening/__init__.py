"""Sanctions and PEP name screening: normalisation, lists and fuzzy matching (docs/compliance.md)."""

from engine.screening.lists import Entity, ListFile, ListLoadError, ScreeningList, build_list, load_list
from engine.screening.match import NO_MATCH, ScreeningResult, name_similarity, screen
from engine.screening.normalise import normalise_name

__all__ = [
    "NO_MATCH", "Entity", "ListFile", "ListLoadError", "ScreeningList", "ScreeningResult", "build_list", "load_list",
    "name_similarity", "normalise_name", "screen",
]
