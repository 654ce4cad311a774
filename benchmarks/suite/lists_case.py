"""The ``list_lookup`` case: what custom-list rules cost inside a decision (docs/lists.md).

card_payment decides real inputs (data/card_payments.csv), on the version they are inputs of
(version 1, benchmarks/suite/inputs.py), each carrying a card
number, twice in the same run: with its ``fraud.lists`` rules (a blocked card, a blocked device)
against lists of 100,000 cards and 100,000 devices (``kind: with_lists``; about 1 input in 50 is
on a list), and with that ruleset removed from a copy of the root (``kind: without_list_rules``,
the baseline). The ratio of their p50 is the target. The card look-up includes its keyed
fingerprint (HMAC-SHA256 of the digits), computed per decision.
"""

from __future__ import annotations

import gc
import random
import shutil
from pathlib import Path
from typing import Any

from benchmarks.suite.inputs import FlowInputs
from benchmarks.suite.timing import median_of_rounds, summarize, time_call
from engine.custom_lists.kinds import ListKind, entry_key
from engine.custom_lists.snapshot import Entry, ListSnapshot
from engine.policy.loader import load
from engine.runtime.flow import CompiledFlow

__all__ = ["LIST_ENTRIES", "run_list_lookup"]

LIST_ENTRIES = 100_000  # per list
FLOW = "card_payment"


def _luhn_card(rng: random.Random) -> str:
    """A random 16-digit number passing the Luhn check (never a real card: prefix 400000)."""
    body = "400000" + "".join(str(rng.randrange(10)) for _ in range(9))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _compiled(root: Path, version: str) -> CompiledFlow:
    """``FLOW``'s ``version`` ("": the live one) as loaded from ``root``."""
    result = load(root)
    if result.policies is None:
        raise RuntimeError(f"the benchmark root does not load: {[str(p) for p in result.errors][:3]}")
    versions = result.policies.flows[FLOW]
    return versions.versions[version or versions.live]


def _without_list_rules(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    for flow_file in (dest / "policies" / FLOW).glob("*/flow.yaml"):
        flow_file.write_text(flow_file.read_text().replace("  - fraud.lists\n", ""))
    return dest


def run_list_lookup(root: Path, work: Path, inputs: FlowInputs, *, warmup: int, iterations: int, rounds: int) -> list[dict[str, Any]]:
    """The two rows of the case (with the list rules and populated lists, and without the rules)."""
    rng = random.Random(14)
    with_lists = _compiled(root, inputs.version)
    view = with_lists.custom_lists
    if view is None or "fraud.lists" not in {r.ruleset for r in with_lists.rules}:
        raise RuntimeError(f"{FLOW} {with_lists.version} has no custom-list rules to measure")
    cards = [_luhn_card(rng) for _ in range(LIST_ENTRIES)]
    devices = [f"DB{i:07d}" for i in range(LIST_ENTRIES)]
    entries = [Entry("blocked_cards", entry_key(ListKind.CARD, c, view.key)) for c in cards]
    entries += [Entry("blocked_devices", d) for d in devices]
    view.swap(ListSnapshot(entries, view.kinds))
    del entries  # what a server keeps is the snapshot only (its dicts of text and floats are not tracked by the GC)
    requests = []
    for i, raw in enumerate(inputs.decoded):
        listed = i % 100 == 0
        requests.append({**raw, "card_number": cards[i] if listed else _luhn_card(rng),
                         **({"device_id": devices[i]} if i % 100 == 50 else {})})
    baseline = _compiled(_without_list_rules(root, work / "root-without-list-rules"), inputs.version)
    kinds = (("with_lists", with_lists), ("without_list_rules", baseline))
    for _, flow in kinds:
        time_call(flow.evaluate, requests, warmup)
    per_round: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in kinds}
    for r in range(rounds):  # the two alternate round by round: a load change on the machine hits both alike
        for kind, flow in kinds:
            gc.collect()
            per_round[kind].append(summarize(time_call(flow.evaluate, requests, iterations, start=r * iterations)))
    rows = [{"name": "list_lookup", "flow": FLOW, "kind": kind, **median_of_rounds(per_round[kind]), "entries_per_list": LIST_ENTRIES}
            for kind, _ in kinds]
    declined = sum(1 for r in requests if any(f.ruleset == "fraud.lists" for f in with_lists.evaluate(r).fired))
    rows[0]["listed_share"] = round(declined / len(requests), 4)
    return rows
