#!/usr/bin/env python3
"""Precision and recall of name screening on a labelled synthetic set (docs/compliance.md).

``python scripts/screening_eval.py [--root .] [--queries 2000] [--seed 7]`` loads
``lists/sanctions_synthetic/1``, builds labelled queries with engine.screening.synthetic
(half variants of listed names: misspelled, reordered, original script, romanisation variants,
initials, case and punctuation; half clean names, a third of them sharing a listed surname) and
prints recall per variant kind, false-positive rate per clean kind, and overall precision and
recall at the list's threshold as JSON. A query counts as found only when the matched entity is
the expected one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.screening.lists import load_list
from engine.screening.match import screen
from engine.screening.synthetic import labelled_queries


def evaluate(root: Path, queries: int, seed: int) -> dict[str, object]:
    """The evaluation as a dict (see the module docstring)."""
    lst = load_list(root / "lists" / "sanctions_synthetic" / "1", "lists/sanctions_synthetic/1")
    tp = fp = fn = tn = 0
    by_kind: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for query, dob, expected, kind in labelled_queries(list(lst.entities), queries, seed):
        r = screen(lst, query, dob)
        by_kind[kind] += 1
        if expected:
            if r.entity_id == expected:
                tp += 1
                hits[kind] += 1
            else:
                fn += 1
                if r.hit:
                    fp += 1  # a wrong entity is also a false alarm
        elif r.hit:
            fp += 1
            hits[kind] += 1
        else:
            tn += 1
    return {
        "list": f"{lst.name}/{lst.version}", "threshold": lst.spec.threshold, "queries": queries, "seed": seed,
        "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
        "true_positives": tp, "false_positives": fp, "false_negatives": fn, "true_negatives": tn,
        "recall_by_variant": {k: round(hits[k] / n, 4) for k, n in sorted(by_kind.items()) if not k.startswith("clean")},
        "false_positive_rate_by_clean_kind": {k: round(hits[k] / n, 4) for k, n in sorted(by_kind.items()) if k.startswith("clean")},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    print(json.dumps(evaluate(args.root, args.queries, args.seed), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
