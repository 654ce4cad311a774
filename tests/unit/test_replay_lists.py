"""Custom lists in replays: a decision logs the list answers it read and replays with them after the lists changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.audit.replay import replay
from engine.audit.source import open_source
from engine.cli import main
from engine.custom_lists.kinds import entry_key
from engine.custom_lists.snapshot import Entry, ListSnapshot, ListTape
from engine.policy.loader import load_policies
from engine.state.store import MemoryStore
from engine.types import Action

from .audit_helpers import logging_decider

ROOT = Path(__file__).resolve().parents[2]
# data/card_payments.csv line 2 (an everyday chip payment at home) as a card_payment 3 input
PAYMENT = {
    "amount": 7.94, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 16, "customer_id": "C000747", "card_number": "5555555555554444",
    "account_age_days": 2058, "distance_from_home_km": 7.1,
}
STOLEN = "D-stolen-7"


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    """A decision log of two live card_payment decisions made while STOLEN was on blocked_devices (one
    from it, one not); then the entry is removed."""
    directory = tmp_path_factory.mktemp("audit")
    policies = load_policies(ROOT)
    view = policies.custom_lists
    assert view is not None
    view.swap(ListSnapshot([Entry("blocked_devices", entry_key(view.kinds["blocked_devices"], STOLEN, view.key))], view.kinds))
    decider, writer = logging_decider(directory, policies, state=MemoryStore(b"s" * 32))
    blocked = decider.decide("card_payment", {**PAYMENT, "device_id": STOLEN}, request_id="blocked")
    other = decider.decide("card_payment", {**PAYMENT, "device_id": "D-mine", "customer_id": "C2"}, request_id="other")
    view.swap(ListSnapshot((), view.kinds))  # the fraud team removes the entry
    decider.close()
    writer.close()
    assert (blocked.version, blocked.outcome.action, [r.code for r in blocked.outcome.reasons]) == ("3", Action.DECLINE, ["BLOCKED_DEVICE"])
    assert other.outcome.action is Action.APPROVE
    # version 3 has a state budget: its rules run on a step worker, and the answers still reach the decision
    assert blocked.lists == {"blocked_cards": (False,), "blocked_devices": (True,)}
    return directory


@pytest.fixture(scope="module")
def logged(log_dir: Path) -> list[dict]:
    """The records of ``log_dir``."""
    return list(open_source(log_dir).decisions(flow="card_payment"))


def test_the_log_holds_list_names_and_answers_never_the_value(logged: list[dict]) -> None:
    """The record's ``lists`` is name -> answers in the order asked; the device id looked up is not in it."""
    assert logged[0]["lists"] == {"blocked_cards": [False], "blocked_devices": [True]}
    assert logged[1]["lists"] == {"blocked_cards": [False], "blocked_devices": [False]}
    assert STOLEN not in json.dumps(logged[0]["lists"]) and "5555" not in json.dumps(logged[0]["lists"])


def test_a_block_list_decline_replays_identically_after_the_entry_is_removed(logged: list[dict]) -> None:
    """The same version, loaded afresh with empty lists, reproduces both decisions (the DECLINE included)."""
    report = replay(logged, load_policies(ROOT).flows["card_payment"].versions["3"])
    assert (report.same_version, report.same_version_differs) == (2, 0)
    assert report.as_dict()["transitions"]["DECLINE"]["DECLINE"] == 1


def test_verdict_replay_reproduces_the_block_list_decline(log_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`verdict replay LOG --version 3` (a process whose lists are empty) reports both logged decisions reproduced."""
    assert main(["replay", str(log_dir), "--flow", "card_payment", "--version", "3", "--root", str(ROOT), "--no-progress", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reproduction"] == {"logged_by_this_version": 2, "differs": 0, "fallbacks_left_out": 0}


def test_without_the_logged_answers_the_replay_reads_the_current_lists(logged: list[dict]) -> None:
    """A record without ``lists`` (logged before they were) replays against today's lists: the DECLINE becomes an APPROVE."""
    bare = [{k: v for k, v in r.items() if k != "lists"} for r in logged]
    report = replay(bare, load_policies(ROOT).flows["card_payment"].versions["3"])
    assert (report.same_version, report.same_version_differs) == (2, 1)


def test_another_version_reads_the_current_lists(logged: list[dict]) -> None:
    """Version 2 (another version: its questions may differ) does not take version 3's answers."""
    report = replay(logged, load_policies(ROOT).flows["card_payment"].versions["2"])
    assert report.as_dict()["transitions"]["DECLINE"].get("APPROVE") == 1


def test_a_tape_plays_back_in_order_then_asks_the_snapshot() -> None:
    """The n-th question to a list gets the n-th logged answer; past the log the snapshot answers; all are recorded."""
    tape = ListTape({"l": [True, False]})
    asked: list[str] = []

    def ask(value: object) -> bool:
        asked.append("snapshot")
        return value == "x"

    assert [tape.answer("l", ask, "x") for _ in range(3)] == [True, False, True]
    assert tape.answer("m", ask, "y") is False
    assert asked == ["snapshot", "snapshot"]
    assert tape.read() == {"l": (True, False, True), "m": (False,)}
