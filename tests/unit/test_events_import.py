"""`verdict events import`: CSV and JSON Lines events recorded in time order, bad rows named by line."""

from __future__ import annotations

from pathlib import Path

from engine.cli import main
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.state.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000


def test_import_records_events_a_payout_then_reads(tmp_path, capsys):
    """Imported reset and new-device login (file out of time order) make a large payout an ATO decline;
    the row with a bad boolean is refused naming its line and field, and the exit code is 1."""
    csv = tmp_path / "events.csv"
    csv.write_text(
        "type,event_time,customer_id,device_id,new_device,channel\n"
        f"login,{T0 + 600},C9,D9,true,\n"
        f"password_reset,{T0},C9,,,web\n"
        f"login,{T0 + 700},C9,,maybe,\n"
    )
    state = tmp_path / "state.db"
    assert main(["events", "import", str(csv), "--root", str(ROOT), "--state", str(state)]) == 1
    err = capsys.readouterr().err
    assert "events.csv:4" in err and "new_device" in err
    decider = Decider(load_policies(ROOT), state=SqliteStore(state))
    payout = {"customer_id": "C9", "amount": 900.0, "currency": "EUR", "destination": "own_account", "event_time": T0 + 900}
    decision = decider.decide("account_payout", payout)
    assert decision.state["since_password_reset"] == 900 and decision.state["since_new_device_login"] == 300
    assert decision.action.name == "DECLINE"


def test_import_of_jsonl_names_an_unknown_type(tmp_path, capsys):
    """A JSON Lines row of an undeclared type is refused with the declared types listed; the others are recorded."""
    path = tmp_path / "events.jsonl"
    path.write_text(f'{{"type": "password_reset", "customer_id": "C8", "event_time": {T0}}}\n{{"type": "pasword_reset"}}\n')
    assert main(["events", "import", str(path), "--root", str(ROOT), "--state", str(tmp_path / "s.db")]) == 1
    captured = capsys.readouterr()
    assert "events.jsonl:2" in captured.err and "password_reset" in captured.err
    assert "1 recorded" in captured.out
