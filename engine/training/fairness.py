"""Fair-lending measures of a credit score: approval rates, adverse impact ratio and AUC per group.

Pure functions over arrays; ``verdict train --protected COL`` calls them on the out-of-fold scores
(every row scored by a model that never saw it) and records the result in the card and report.

Terms, as US fair-lending examiners use them:

- **approval rate** of a group at a cut-off ``c``: the share of its applications the score would
  approve, i.e. whose score (a probability of the bad outcome) is *below* ``c``.
- **adverse impact ratio** (AIR): a group's approval rate divided by the approval rate of the most
  favoured group (the group with the highest rate). Below **0.8** is flagged: the four-fifths rule
  of the Uniform Guidelines on Employee Selection Procedures, 29 CFR 1607.4(D), which US
  fair-lending disparate-impact reviews borrow as their screening threshold.
- **AUC per group**: how well the score ranks good against bad applications inside the group
  (None when the group has only one class); unequal AUCs mean the score is less accurate for a group.

Age (Reg B, 12 CFR 1002.6(b)(2)(ii)): an empirically derived, demonstrably and statistically sound
credit scoring system may use age, provided that an applicant aged 62 or older is not assigned a
negative factor or value because of age. :func:`age_check` tests the trained model for that:
it fails training when any applicant's score is worse at some age of 62 or more than at some
younger age, the other inputs unchanged. ``verdict train --age COL`` also constrains the model to be
monotone (non-increasing risk) in that column, which makes the check hold by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from engine.tabular import MISSING_MARKERS
from engine.training.metrics import auc

__all__ = [
    "AIR_THRESHOLD", "AGE_BANDS", "REG_B_ELDERLY_AGE", "GroupTally", "adverse_impact", "age_band", "group_of", "age_check", "fairness_report",
    "group_table",
]

AIR_THRESHOLD = 0.8  # the four-fifths rule, 29 CFR 1607.4(D)
REG_B_ELDERLY_AGE = 62  # 12 CFR 1002.2(o): "elderly" means age 62 or older
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("under 25", float("-inf"), 25), ("25-39", 25, 40), ("40-61", 40, 62), ("62 and over", 62, float("inf")),
)
MIN_GROUP_ROWS = 30  # smaller groups are reported but not flagged: their rates are too noisy
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def age_band(age: object) -> str | None:
    """The band of ``age`` in years (``AGE_BANDS``; 62 and over is Reg B's elderly band); None if missing."""
    if age is None or isinstance(age, bool) or not isinstance(age, (int, float)) or age != age:
        return None
    for label, lo, hi in AGE_BANDS:
        if lo <= age < hi:
            return label
    return None  # pragma: no cover - the bands cover the real line


def group_of(value: object, is_age: bool = False) -> str:
    """A protected attribute's cell as its group: ``(missing)`` when empty or NA-like, else the trimmed
    text, or for an age column (``is_age``) its band of ``AGE_BANDS`` (``(missing)`` if not a number)."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", *MISSING_MARKERS):
        return "(missing)"
    if not is_age:
        return text
    try:
        years = float(text)
    except ValueError:
        return "(missing)"
    return age_band(years) or "(missing)"


def group_table(
    groups: Sequence[object], y: np.ndarray, scores: np.ndarray, cutoffs: Sequence[float],
    order: Sequence[str] = (),
) -> dict[str, Any]:
    """Per-group approval rates, AIR, score distribution and AUC for one protected attribute.

    ``groups`` (n,) holds each row's group (None = unknown, reported as ``(missing)``), ``y`` (n,)
    is 1 for the bad outcome, ``scores`` (n,) the probability of it; ``cutoffs`` are the score
    cut-offs below which an application is approved. Returns ``{"groups": [...], "cutoffs": [...],
    "flagged": [...]}`` where each flagged entry names a group and cut-off with AIR < 0.8 (groups
    with fewer than 30 rows are never flagged, but their AIR is shown). Raises ValueError when
    the arrays differ in length or a cut-off is outside (0, 1].
    """
    y = np.asarray(y, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not (len(groups) == len(y) == len(scores)):
        raise ValueError(f"groups ({len(groups)}), labels ({len(y)}) and scores ({len(scores)}) differ in length")
    bad = [c for c in cutoffs if not 0 < c <= 1]
    if bad:
        raise ValueError(f"cut-offs must be in (0, 1]: {bad}")
    labels = np.array(["(missing)" if g is None else str(g) for g in groups], dtype=object)
    present = set(labels.tolist())
    names = [g for g in order if g in present] + sorted(present - set(order))
    rows: list[dict[str, Any]] = []
    for name in names:
        sel = labels == name
        s, t = scores[sel], y[sel]
        group_auc = auc(t, s)
        rows.append({
            "group": name,
            "rows": int(sel.sum()),
            "bad_rate": float(t.mean()),
            "auc": None if group_auc != group_auc else group_auc,
            "score_mean": float(s.mean()),
            "score_quantiles": {f"p{int(q * 100)}": float(np.quantile(s, q)) for q in QUANTILES},
            "approval_rate": {_key(c): float((s < c).mean()) for c in cutoffs},
        })
    flagged: list[dict[str, Any]] = []
    for c in cutoffs:
        k = _key(c)
        reference, ratios = _impact(rows, [r["approval_rate"][k] for r in rows])
        for r, air in zip(rows, ratios, strict=True):
            r.setdefault("air", {})[k] = air
            if _flagged(r["rows"], air):
                flagged.append({"group": r["group"], "cutoff": c, "air": air, "reference": reference})
    return {"cutoffs": list(cutoffs), "groups": rows, "flagged": flagged}


def _impact(rows: Sequence[Mapping[str, Any]], rates: Sequence[float]) -> tuple[str, list[float | None]]:
    """The most favoured group (highest rate among groups of MIN_GROUP_ROWS rows, else among all) and each AIR."""
    eligible = [k for k, r in enumerate(rows) if r["rows"] >= MIN_GROUP_ROWS] or list(range(len(rows)))
    best = max(eligible, key=lambda k: rates[k])
    top = rates[best]
    return str(rows[best]["group"]), [rate / top if top > 0 else None for rate in rates]


def _flagged(rows: int, air: float | None) -> bool:
    return air is not None and air < AIR_THRESHOLD and rows >= MIN_GROUP_ROWS


def adverse_impact(approvals: Mapping[str, tuple[int, int]], order: Sequence[str] = ()) -> dict[str, Any]:
    """Approval rate and AIR per group from counts: ``approvals`` maps a group to (rows, approved rows).

    For decisions already made (a backtest or replay: an APPROVE action counts as approved) rather
    than scores against cut-offs (:func:`group_table`). Groups come in ``order`` first, then sorted.
    Returns ``{"reference": the most favoured group, "groups": [{"group", "rows", "approved",
    "approval_rate", "air", "flagged"}], "flagged": [group names]}``: AIR is the group's approval
    rate / the reference's (None when the reference approves nobody), flagged below 0.8 (the
    four-fifths rule, 29 CFR 1607.4(D)) for groups of at least MIN_GROUP_ROWS (30) rows, the same
    rule as :func:`group_table`. Groups with no rows are left out; an empty mapping gives no groups.
    """
    present = [g for g, (n, _) in approvals.items() if n > 0]
    names = [g for g in order if g in present] + sorted(set(present) - set(order))
    rows: list[dict[str, Any]] = [
        {"group": g, "rows": approvals[g][0], "approved": approvals[g][1], "approval_rate": approvals[g][1] / approvals[g][0]}
        for g in names
    ]
    if not rows:
        return {"reference": None, "groups": [], "flagged": []}
    reference, ratios = _impact(rows, [r["approval_rate"] for r in rows])
    for r, air in zip(rows, ratios, strict=True):
        r["air"] = air
        r["flagged"] = _flagged(r["rows"], air)
    return {"reference": reference, "groups": rows, "flagged": [r["group"] for r in rows if r["flagged"]]}


def _key(cutoff: float) -> str:
    return f"{cutoff:g}"


class GroupTally:
    """Decided rows counted per protected attribute and group, for decisions already made (backtest, replay).

    Memory grows with the number of groups, not rows. ``add`` counts one decided row; ``table``
    gives, per attribute, :func:`adverse_impact`'s table with each group's ``bad_rate_of_approved``
    (bad outcomes among approved rows with a known outcome; None when there are none).
    """

    def __init__(self) -> None:
        # attribute -> group -> [decided rows, approved, approved with a known outcome, approved bad]
        self.counts: dict[str, dict[str, list[int]]] = {}

    def add(self, groups: Mapping[str, str], approved: bool, is_bad: bool | None) -> None:
        """Count one decided row in its group of every attribute (``groups``: attribute -> group)."""
        for attribute, group in groups.items():
            c = self.counts.setdefault(attribute, {}).setdefault(group, [0, 0, 0, 0])
            c[0] += 1
            c[1] += approved
            c[2] += approved and is_bad is not None
            c[3] += approved and bool(is_bad)

    def merge(self, other: GroupTally) -> None:
        """Add ``other``'s counts (the same kind of rows counted elsewhere, e.g. a Spark partition)."""
        for attribute, groups in other.counts.items():
            mine = self.counts.setdefault(attribute, {})
            for group, c in groups.items():
                m = mine.setdefault(group, [0, 0, 0, 0])
                for i, v in enumerate(c):
                    m[i] += v

    def table(self, order: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """Attribute -> ``adverse_impact`` table (groups of ``order[attribute]`` first) with bad rates of approved."""
        out: dict[str, Any] = {}
        for attribute, counts in self.counts.items():
            t = adverse_impact({g: (c[0], c[1]) for g, c in counts.items()}, (order or {}).get(attribute, ()))
            for row in t["groups"]:
                c = counts[row["group"]]
                row["bad_rate_of_approved"] = c[3] / c[2] if c[2] else None
            out[attribute] = t
        return out


def fairness_report(
    attributes: Mapping[str, Sequence[object]], y: np.ndarray, scores: np.ndarray, cutoffs: Sequence[float],
    age_column: str | None = None, age_result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's ``fairness`` section: a :func:`group_table` per attribute (ages in ``AGE_BANDS``).

    ``attributes`` maps an attribute name (a protected column, or ``age_column`` whose values are
    grouped into bands) to each row's value. ``age_result`` is :func:`age_check`'s outcome.
    """
    by: dict[str, Any] = {}
    for name, values in attributes.items():
        if name == age_column:
            by[name] = group_table([age_band(v) for v in values], y, scores, cutoffs, [b[0] for b in AGE_BANDS])
        else:
            by[name] = group_table(list(values), y, scores, cutoffs)
    out: dict[str, Any] = {
        "definition": (
            "approval = out-of-fold score below the cut-off; AIR = a group's approval rate / the most favoured "
            f"group's; flagged below {AIR_THRESHOLD} (four-fifths rule, 29 CFR 1607.4(D)) for groups of at least "
            f"{MIN_GROUP_ROWS} rows"
        ),
        "cutoffs": list(cutoffs),
        "attributes": by,
        "flagged": [{"attribute": a, **f} for a, t in by.items() for f in t["flagged"]],
    }
    if age_result is not None:
        out["age"] = dict(age_result)
    return out


def age_check(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, age_index: int, ages: Sequence[float],
    tolerance: float = 1e-9,
) -> dict[str, Any]:
    """Reg B's elderly test: no row scores worse at an age of 62 or more than at any younger age.

    ``predict`` maps a (rows, n) float32 matrix to the probability of the bad outcome; ``x`` is the
    rows to test, ``age_index`` the age column in it and ``ages`` the ages to try (both sides of 62
    must be present). For each row the worst (highest) score over ages >= 62 must not exceed the
    best (lowest) score over younger ages by more than ``tolerance``. Returns ``{"rule", "rows",
    "ages", "passed", "violations", "max_excess"}``; raises ValueError when ``ages`` lacks either side.
    """
    young = sorted({float(a) for a in ages if a < REG_B_ELDERLY_AGE})
    old = sorted({float(a) for a in ages if a >= REG_B_ELDERLY_AGE})
    if not young or not old:
        raise ValueError(f"age_check needs ages on both sides of {REG_B_ELDERLY_AGE}, got {sorted(set(ages))}")
    lowest_young = np.full(len(x), np.inf)
    highest_old = np.full(len(x), -np.inf)
    for a in (*young, *old):
        z = np.array(x, dtype=np.float32, copy=True)
        z[:, age_index] = a
        p = np.asarray(predict(z), dtype=np.float64)
        if a < REG_B_ELDERLY_AGE:
            lowest_young = np.minimum(lowest_young, p)
        else:
            highest_old = np.maximum(highest_old, p)
    excess = highest_old - lowest_young
    violations = int((excess > tolerance).sum())
    return {
        "rule": f"Reg B 12 CFR 1002.6(b)(2)(ii): no applicant aged {REG_B_ELDERLY_AGE}+ scores worse than at a younger age",
        "rows": len(x),
        "ages": [*young, *old],
        "passed": violations == 0,
        "violations": violations,
        "max_excess": float(max(0.0, excess.max())) if len(x) else 0.0,
    }
