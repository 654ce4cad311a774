"""'Did you mean ...?': the closest known name to a misspelt one, at a bounded cost.

One helper for every place a name can be misspelt: request fields (``engine.runtime.validation``), keys
of policy files, ruleset names, routing keys, flow and model names (``engine.policy.loader``).

The score is ``difflib.SequenceMatcher.ratio`` (2·M / T, M matching characters, T the total
length of both names; Python's standard library), with the usual pre-filters
(``real_quick_ratio``, ``quick_ratio``) that skip most candidates without the quadratic
comparison. The cost is bounded: only the first ``MAX_COMPARED_CHARS`` characters of a name are
compared, and a name longer than twice that is never "close" to a policy identifier (at most 64
characters), so one suggestion costs at most about ``len(known) x 64 x 64`` character steps.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["CUTOFF", "MAX_COMPARED_CHARS", "closest", "did_you_mean"]

#: Similarity from which a name counts as a likely typo (difflib's ratio, 0..1). 0.75 accepts one
#: wrong, missing or swapped character in a name of five or more ('hme' -> 'home', 'incme' -> 'income').
CUTOFF = 0.75
#: Characters of each name compared (identifiers in policy files are at most 64 characters).
MAX_COMPARED_CHARS = 64


def closest(name: str, known: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """The known name most similar to ``name`` (ratio >= ``cutoff``), or None; never raises."""
    if not name or len(name) > 2 * MAX_COMPARED_CHARS:
        return None
    probe = name[:MAX_COMPARED_CHARS]
    candidates = [k for k in known if k and k != name and len(k) <= 2 * MAX_COMPARED_CHARS]
    folded = probe.casefold()
    for k in candidates:  # a case slip is the likeliest typo of all
        if k.casefold() == folded:
            return k
    best = difflib.get_close_matches(probe, [k[:MAX_COMPARED_CHARS] for k in candidates], n=1, cutoff=cutoff)
    if not best:
        return None
    return next(k for k in candidates if k[:MAX_COMPARED_CHARS] == best[0])


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = CUTOFF) -> str | None:
    """``"did you mean 'x'?"`` for the closest known name, or None when nothing is close."""
    match = closest(name, known, cutoff=cutoff)
    return f"did you mean {match!r}?" if match is not None else None
