"""What `verdict serve` opens from its settings: log location, per-worker chains, idempotency rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.segments import list_segments
from engine.audit.source import open_source
from engine.audit.wiring import open_audit
from engine.errors import IdempotencyConflict
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KEY_1 = "key-1-" + "a" * 32  # keys are at least 32 bytes
KEY_2 = "key-2-" + "b" * 32
APPLICATION = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846,
}  # fmt: skip


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def settings(**kw) -> Settings:
    return Settings.load(env={}, root=ROOT, **kw)


def serve_once(policies, audit):
    return Decider(policies, sink=audit.sink, idempotency=audit.idempotency)


def decide_once(policies, audit, request_id: str):
    """One decision through a fresh decider; its shadow evaluations finish before the log closes."""
    decider = serve_once(policies, audit)
    try:
        return decider.decide("credit_application", APPLICATION, request_id=request_id)
    finally:
        decider.close()


def answered(directory: Path) -> list[dict]:
    """The logged decisions a caller received (shadow evaluations of other versions left out)."""
    assert open_source(directory).verify().ok
    return [r for r in open_source(directory).decisions() if r["route"] != "shadow"]


def test_audit_setting_defaults_and_off():
    """The log defaults to ./audit; 'off' turns it off; a DSN replaces the directory."""
    assert Settings.load(env={}).audit_dir == Path("audit")
    assert Settings.load(env={"VERDICT_AUDIT": "off"}).audit_dir is None
    assert Settings.load(env={}, audit_dsn="postgresql://x@127.0.0.1/db").audit_dir is None
    key = Settings.load(env={"VERDICT_AUDIT_HASH_KEY": "s3cret" * 6}).audit_hash_key
    assert key is not None and "s3cret" not in repr(key) and key.get_secret_value() == "s3cret" * 6


def test_off_keeps_idempotency_in_memory(policies):
    """With the log off there is no sink, but retries are still answered from memory."""
    audit = open_audit(settings(audit="off"))
    assert audit.sink is None and audit.idempotency is not None
    decider = serve_once(policies, audit)
    a = decider.decide("credit_application", APPLICATION, request_id="r")
    assert decider.decide("credit_application", APPLICATION, request_id="r").decision_id == a.decision_id
    audit.close()


def test_worker_gets_its_own_chain_directory(tmp_path, policies):
    """Worker i of --workers N logs under DIR/worker-i."""
    audit = open_audit(settings(audit=str(tmp_path)), worker=1)
    decider = serve_once(policies, audit)
    decider.decide("credit_application", APPLICATION)
    decider.close()
    audit.close()
    assert list_segments(tmp_path / "worker-1") and not list_segments(tmp_path)
    assert len(answered(tmp_path)) == 1


def test_retry_after_restart_gets_the_logged_decision(tmp_path, policies):
    """The idempotency cache is rebuilt from the log: a retry after a restart gets the same decision."""
    s = settings(audit=str(tmp_path), audit_hash_key=KEY_1)
    audit = open_audit(s)
    decider = serve_once(policies, audit)
    first = decider.decide("credit_application", APPLICATION, request_id="r-1")
    decider.close()
    audit.close()

    audit = open_audit(s)
    decider = serve_once(policies, audit)
    again = decider.decide("credit_application", APPLICATION, request_id="r-1")
    assert again.decision_id == first.decision_id and again.outcome.action == first.outcome.action
    assert again.reasons == first.reasons and dict(again.outcome.scores) == dict(first.outcome.scores)
    with pytest.raises(IdempotencyConflict):
        decider.decide("credit_application", {**APPLICATION, "amount": 700}, request_id="r-1")
    decider.close()
    audit.close()
    assert [r["decision_id"] for r in answered(tmp_path)] == [first.decision_id]  # the retry was not logged twice


def test_rebuild_ignores_records_of_another_key(tmp_path, policies):
    """Fingerprints made with another key cannot be compared: those request ids are decided again."""
    audit = open_audit(settings(audit=str(tmp_path), audit_hash_key=KEY_1))
    first = decide_once(policies, audit, "r-1")
    audit.close()
    audit = open_audit(settings(audit=str(tmp_path), audit_hash_key=KEY_2))
    again = decide_once(policies, audit, "r-1")
    audit.close()
    assert again.decision_id != first.decision_id


def test_rebuild_skips_records_older_than_the_window(tmp_path, policies):
    """Only records within the window come back (clock moved past it)."""
    import time

    s = settings(audit=str(tmp_path), audit_hash_key=KEY_1, idempotency_window_seconds=60)
    audit = open_audit(s)
    first = decide_once(policies, audit, "r-1")
    audit.close()
    audit = open_audit(s, clock=lambda: time.time() + 61)
    assert audit.idempotency is not None and len(audit.idempotency) == 0
    audit.close()
    audit = open_audit(s)
    assert audit.idempotency is not None and len(audit.idempotency) == 1
    assert decide_once(policies, audit, "r-1").decision_id == first.decision_id
    audit.close()


def test_the_log_records_the_caller_and_a_restart_keeps_request_ids_scoped(tmp_path, policies):
    """A decision made for a caller is logged with it; after a restart only that caller's retry gets it back."""
    s = settings(audit=str(tmp_path), audit_hash_key="key-1" * 7)
    audit = open_audit(s)
    decider = serve_once(policies, audit)
    first = decider.decide("credit_application", APPLICATION, request_id="r-1", caller="alice")
    decider.close()
    audit.close()
    assert [r.get("caller") for r in answered(tmp_path)] == ["alice"]

    audit = open_audit(s)
    decider = serve_once(policies, audit)
    assert decider.decide("credit_application", APPLICATION, request_id="r-1", caller="alice").decision_id == first.decision_id
    other = decider.decide("credit_application", APPLICATION, request_id="r-1", caller="bob")
    assert other.decision_id != first.decision_id
    decider.close()
    audit.close()


def test_a_short_hash_key_is_refused_at_start():
    """VERDICT_AUDIT_HASH_KEY under 32 bytes is a settings error naming the setting and the minimum."""
    from engine.settings import SettingsError

    with pytest.raises(SettingsError, match=r"audit_hash_key \(VERDICT_AUDIT_HASH_KEY\).*at least 32 bytes"):
        Settings.load(env={"VERDICT_AUDIT_HASH_KEY": "x" * 31})
    assert Settings.load(env={"VERDICT_AUDIT_HASH_KEY": "x" * 32}).audit_hash_key is not None


def test_without_a_key_setting_the_key_is_kept_in_the_log_directory(tmp_path, policies):
    """No VERDICT_AUDIT_HASH_KEY: hash.key (0600, 32 random bytes) is created once and reused, so a
    retry after a restart gets the logged decision; the key's text appears in no record."""
    s = settings(audit=str(tmp_path / "log"))
    audit = open_audit(s)
    first = decide_once(policies, audit, "r-1")
    audit.close()
    key_file = tmp_path / "log" / "hash.key"
    text = key_file.read_text()
    assert len(bytes.fromhex(text.strip())) == 32 and (key_file.stat().st_mode & 0o777) == 0o600
    audit = open_audit(s)
    assert decide_once(policies, audit, "r-1").decision_id == first.decision_id
    audit.close()
    assert key_file.read_text() == text
    logged = b"".join(p.read_bytes() for p in (tmp_path / "log").glob("segment-*.log"))
    assert text.strip().encode() not in logged


def test_a_short_or_garbled_key_file_is_refused(tmp_path):
    """A hash.key with fewer than 32 bytes or no hex is refused with an error naming the file."""
    from engine.audit.errors import AuditError

    (tmp_path / "hash.key").write_text("00" * 31 + "\n")
    with pytest.raises(AuditError, match=r"hash.key: the hash key has 31 bytes; at least 32"):
        open_audit(settings(audit=str(tmp_path)))
    (tmp_path / "hash.key").write_text("not hex\n")
    with pytest.raises(AuditError, match=r"hash.key: not a hash key"):
        open_audit(settings(audit=str(tmp_path)))


def test_concurrent_starts_agree_on_one_key(tmp_path):
    """Several processes creating the key at once (workers) all read the same key; no temp file stays."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.audit.keyfile import load_or_create_key

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: load_or_create_key(tmp_path), range(16)))
    assert len({key.secret for key, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hash.key"]
