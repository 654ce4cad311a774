"""Custom block and allow lists: normal forms, CIDR, expiry, fingerprints, the store and its audit chain."""

from __future__ import annotations

import math
import sqlite3

import pytest

from engine.custom_lists.declarations import ListDeclaration
from engine.custom_lists.kinds import ListKind, entry_key, probe_key, shown
from engine.custom_lists.refresh import ListRefresher
from engine.custom_lists.snapshot import Entry, ListSnapshot, ListView
from engine.custom_lists.store import DB_FILE, ListStore
from engine.errors import InvalidInput
from engine.runtime.privacy import HashKey

KEY = HashKey(b"k" * 32)
OTHER_KEY = HashKey(b"o" * 32)
PAN = "4111111111111111"  # a standard test card number (passes Luhn)
DECLARED = {
    "blocked_cards": ListDeclaration(kind=ListKind.CARD, role="block"),
    "blocked_devices": ListDeclaration(kind=ListKind.DEVICE, role="block"),
    "blocked_ips": ListDeclaration(kind=ListKind.IP, role="block"),
    "blocked_email_domains": ListDeclaration(kind=ListKind.EMAIL_DOMAIN, role="block"),
}


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(tmp_path, clock=None) -> ListStore:
    return ListStore(tmp_path, lambda: DECLARED, KEY, clock or Clock())


def _view(store: ListStore, clock) -> ListView:
    view = ListView({n: d.kind for n, d in DECLARED.items()}, KEY, clock)
    view.declare(DECLARED)
    view.swap(store.snapshot())
    return view


@pytest.mark.parametrize("written", ["Bücher.Example.", "xn--bcher-kva.example", "ALICE@BÜCHER.example", "bob@xn--bcher-kva.EXAMPLE."])
def test_email_domains_are_one_key_whatever_case_trailing_dot_or_idna_form(written):
    """Case, a trailing dot, the part before '@' and the IDNA form do not change an e-mail domain's key."""
    assert entry_key(ListKind.EMAIL_DOMAIN, written, KEY) == "xn--bcher-kva.example"
    assert probe_key(ListKind.EMAIL_DOMAIN, written, KEY) == "xn--bcher-kva.example"


def test_malformed_entries_are_refused_with_the_reason():
    """An entry that cannot be of its list's kind is refused, saying what was expected."""
    with pytest.raises(ValueError, match="Luhn"):
        entry_key(ListKind.CARD, "4111111111111112", KEY)
    with pytest.raises(ValueError, match="IP address"):
        entry_key(ListKind.IP, "300.1.1.1", KEY)
    with pytest.raises(ValueError, match="e-mail domain"):
        entry_key(ListKind.EMAIL_DOMAIN, "localhost", KEY)
    with pytest.raises(ValueError, match="non-empty"):
        entry_key(ListKind.DEVICE, "  ", KEY)


def test_ip_entries_normalise_ranges_and_mapped_addresses():
    """A range is its network (host bits dropped), a /32 is an address, an IPv4-mapped IPv6 address is IPv4."""
    assert entry_key(ListKind.IP, "203.0.113.9/24", KEY) == "203.0.113.0/24"
    assert entry_key(ListKind.IP, "203.0.113.9/32", KEY) == "203.0.113.9"
    assert entry_key(ListKind.IP, "2001:DB8::1/48", KEY) == "2001:db8::/48"
    assert probe_key(ListKind.IP, "::ffff:203.0.113.7", KEY) == "203.0.113.7"
    assert probe_key(ListKind.IP, "not an ip", KEY) is None


@pytest.mark.parametrize(
    ("address", "member"),
    [("203.0.113.200", True), ("203.0.114.1", False), ("198.51.100.7", True), ("198.51.100.8", False),
     ("2001:db8:0:ffff::1", True), ("2001:db9::1", False), ("::ffff:203.0.113.5", True)],
)
def test_cidr_ranges_and_single_addresses_match_by_containment(address, member):
    """An address is in an IP list when it is one of its addresses or inside one of its ranges (v4 and v6)."""
    keys = ["203.0.113.0/24", "198.51.100.7", "2001:db8::/48"]
    snap = ListSnapshot([Entry("blocked_ips", entry_key(ListKind.IP, k, KEY)) for k in keys], {"blocked_ips": ListKind.IP})
    assert snap.contains("blocked_ips", probe_key(ListKind.IP, address, KEY) or "", 0.0) is member


def test_card_fingerprints_are_keyed_and_ignore_separators():
    """A card's key is an HMAC under the log's key: separators do not matter, another key gives another key."""
    key = entry_key(ListKind.CARD, "4111 1111-1111 1111", KEY)
    assert key == probe_key(ListKind.CARD, PAN, KEY)
    assert PAN not in key and len(key) == 64
    assert key != entry_key(ListKind.CARD, PAN, OTHER_KEY)
    assert shown(ListKind.CARD, PAN) == "411111******1111"


def test_an_entry_stops_counting_at_its_expiry_without_a_refresh(tmp_path):
    """An entry with expires_at is a member before that instant and not after, from the same snapshot."""
    clock = Clock()
    store = _store(tmp_path, clock)
    store.add("blocked_devices", "D-1", actor="alice", reason="fraud ring", expires_at=clock.now + 60)
    member = _view(store, clock).lookup("blocked_devices")
    assert member("D-1") is True
    clock.now += 61
    assert member("D-1") is False
    assert store.snapshot().sizes().get("blocked_devices", 0) == 0  # the next refresh leaves it out


def test_a_missing_value_is_in_no_list(tmp_path):
    """A look-up of a missing value is missing (None), so both 'in' and 'not in' are false for it."""
    clock = Clock()
    store = _store(tmp_path, clock)
    store.add("blocked_devices", "D-1", actor="alice", reason="r")
    member = _view(store, clock).lookup("blocked_devices")
    assert member(None) is None
    assert member(True) is False and member("D-2") is False


def test_the_store_never_holds_a_card_number(tmp_path):
    """After adding and removing a card (its number also typed into a note and a reason), no file of the store holds it."""
    store = _store(tmp_path)
    store.add("blocked_cards", "4111 1111 1111 1111", actor="alice", reason="stolen", note=f"reported by issuer for {PAN}")
    store.remove("blocked_cards", PAN, actor="bob", reason=f"card {PAN} recovered")
    store.close()
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert PAN.encode() not in data and b"4111 1111 1111 1111" not in data, path.name


def test_bad_changes_name_every_bad_field(tmp_path):
    """An unknown list, a missing actor and reason and a past expiry are reported together."""
    store = _store(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        store.add("blocked_device", "D-1", actor=" ", reason="", expires_at=1.0)
    fields = {e.field: e.message for e in caught.value.errors}
    assert set(fields) == {"list", "actor", "reason", "expires_at"}
    assert "did you mean 'blocked_devices'" in fields["list"]
    with pytest.raises(InvalidInput) as caught:
        store.add("blocked_ips", "10.0.0.999", actor="a", reason="r")
    assert caught.value.errors[0].field == "value" and "ip list" in caught.value.errors[0].message
    with pytest.raises(InvalidInput) as caught:
        store.remove("blocked_ips", "10.0.0.1", actor="a", reason="r")
    assert caught.value.errors[0].code == "not_in_list"


def test_an_import_is_all_or_none_and_names_each_bad_row(tmp_path):
    """A bad row refuses the whole import, naming its index; a good import adds every row at once."""
    store = _store(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        store.import_entries("blocked_ips", [("10.0.0.1", None, ""), ("nope", None, "")], actor="a", reason="r")
    assert [e.field for e in caught.value.errors] == ["entries[1]"]
    assert store.entries("blocked_ips") == []
    changes = store.import_entries("blocked_ips", [("10.0.0.1", None, ""), ("10.1.0.0/16", None, "n")], actor="a", reason="r")
    assert [c.record["action"] for c in changes] == ["import", "import"]
    assert {e.key for e in store.entries("blocked_ips")} == {"10.0.0.1", "10.1.0.0/16"}


def test_every_change_is_audited_with_who_when_why_before_and_after(tmp_path):
    """Add, renew and remove each leave a record with actor, reason, time and the entry before and after."""
    store = _store(tmp_path)
    store.add("blocked_devices", "D-1", actor="alice", reason="fraud ring", note="first")
    store.add("blocked_devices", "D-1", actor="bob", reason="still active", note="renewed")
    store.remove("blocked_devices", "D-1", actor="carol", reason="cleared")
    records = [c.record for c in store.history("blocked_devices")]
    assert [(r["action"], r["actor"], r["reason"]) for r in records] == [
        ("add", "alice", "fraud ring"), ("add", "bob", "still active"), ("remove", "carol", "cleared")]
    assert records[0]["before"] is None and records[0]["after"]["note"] == "first"
    assert records[1]["before"]["note"] == "first" and records[1]["after"]["note"] == "renewed"
    assert records[2]["before"]["note"] == "renewed" and records[2]["after"] is None
    assert all(r["at"].endswith("Z") for r in records)
    assert store.verify() == []
    assert store.generation() == 3


def test_the_change_history_refuses_updates_and_deletes(tmp_path):
    """SQLite triggers refuse to rewrite or delete a change through SQL."""
    store = _store(tmp_path)
    store.add("blocked_devices", "D-1", actor="alice", reason="r")
    db = sqlite3.connect(tmp_path / DB_FILE)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE changes SET record = '{}'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM changes")


@pytest.mark.parametrize("tamper", ["edit", "delete"])
def test_tampering_with_the_history_is_detected(tmp_path, tamper):
    """Editing a record's text or removing one (triggers dropped) breaks the hash chain, which verify reports."""
    store = _store(tmp_path)
    for actor in ("alice", "bob", "carol"):
        store.add("blocked_devices", f"D-{actor}", actor=actor, reason="r")
    db = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    db.execute("DROP TRIGGER changes_append_only_u")
    db.execute("DROP TRIGGER changes_append_only_d")
    if tamper == "edit":
        db.execute("UPDATE changes SET record = replace(record, '\"actor\":\"bob\"', '\"actor\":\"eve\"') WHERE seq = 1")
        expected = "change 1: its hash does not match"
    else:
        db.execute("DELETE FROM changes WHERE seq = 1")
        expected = "change 2: expected sequence number 1"
    problems = store.verify()
    assert any(p.startswith(expected) for p in problems), problems


def test_changes_survive_reopening_and_reach_a_view_through_the_refresher(tmp_path):
    """A committed change is read by a new connection (another process) and swapped into its view on refresh."""
    clock = Clock()
    writer = _store(tmp_path, clock)
    reader = _store(tmp_path, clock)
    view = _view(reader, clock)
    refresher = ListRefresher(reader, view)
    assert refresher.refresh() is False  # nothing changed yet
    writer.add("blocked_devices", "D-9", actor="alice", reason="r")
    writer.close()
    assert view.lookup("blocked_devices")("D-9") is False
    assert refresher.refresh() is True
    assert view.lookup("blocked_devices")("D-9") is True
    assert view.snapshot.generation == 1


def test_using_replaces_the_snapshot_in_this_context_only(tmp_path):
    """A policy test's snapshot (ListView.using) is seen inside the block only; the current one is kept."""
    view = ListView({"blocked_devices": ListKind.DEVICE}, KEY)
    member = view.lookup("blocked_devices")
    with view.using(ListSnapshot([Entry("blocked_devices", "D-1")], view.kinds)):
        assert member("D-1") is True
    assert member("D-1") is False
    assert math.isinf(Entry("x", "y").expires_at)
