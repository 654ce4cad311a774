"""The Decider's decision-log sink: what a record holds, masking by the deciding flow's compiled masker, shadow records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.audit.segments import FileStore, list_segments
from engine.audit.sink import AuditSink
from engine.audit.source import open_source
from engine.audit.writer import GroupCommitWriter
from engine.policy.loader import load_policies
from engine.policy.schema import FieldSpec
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import REDACTED, HashKey, Masker, keyed_hash
from engine.runtime.service import Decider

from .audit_helpers import PAN, ROOT, live_card_payments

KEY = HashKey(b"sink-test")


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


@pytest.fixture
def logged(tmp_path, policies):
    """A decider whose decisions go to a log under tmp_path; yields (decider, sink, directory)."""
    writer = GroupCommitWriter(FileStore(tmp_path, fsync=False))
    sink = AuditSink(writer, KEY, Fingerprinter(KEY), clock=lambda: 1_700_000_000.25)
    decider = Decider(policies, sink=sink)
    yield decider, sink, tmp_path
    writer.close()


def disk(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for _, p in list_segments(directory))


def test_record_holds_everything_needed_to_explain_the_decision(logged):
    """Decision id, request id, time, flow, version, revision, route, models, scores, rules,
    reasons, timing, the masked input and its fingerprint are all in the record."""
    decider, sink, directory = logged
    payment = {**live_card_payments(1)[0], "card_number": PAN}
    decision = decider.decide("card_payment", payment, request_id="req-1")
    sink.close()
    (record,) = list(open_source(directory).decisions())
    assert record["decision_id"] == decision.decision_id and record["request_id"] == "req-1"
    assert record["ts"] == "2023-11-14T22:13:20.250000Z"
    assert (record["flow"], record["version"], record["revision"], record["route"]) == (
        "card_payment", decision.version, decision.revision, "live",
    )  # fmt: skip
    assert record["models"] == dict(decision.models) and record["scores"] == dict(decision.outcome.scores)
    assert record["action"] == decision.action.name
    assert [r["code"] for r in record["reasons"]] == [r.code for r in decision.reasons]
    assert [f["id"] for f in record["fired"]] == [f.id for f in decision.outcome.fired]
    assert record["timings"]["eval_us"] == decision.eval_us
    assert record["input"] == {**payment, "card_number": "411111******1111"} and record["masked"] == ["card_number"]
    assert record["fp"] == Fingerprinter(KEY)("card_payment", "", payment) and record["key_id"] == KEY.key_id


def test_shadow_records_are_masked_and_carry_no_fingerprint(logged):
    """A shadow outcome (route 'shadow') is logged masked and never answers a retry."""
    decider, sink, directory = logged
    payment = {**live_card_payments(2)[1], "card_number": PAN}
    decision = decider.decide("card_payment", payment, request_id="req-2")
    masker = policies_of(decider).flows["card_payment"].versions[decision.version].masker
    sink.record(dataclasses.replace(decision, decision_id="shadow-1", route="shadow"), payment, masker=masker)
    sink.close()
    records = {r["decision_id"]: r for r in open_source(directory).decisions()}
    assert records["shadow-1"]["route"] == "shadow" and "fp" not in records["shadow-1"]
    assert records["shadow-1"]["input"]["card_number"] == "411111******1111"
    assert PAN.encode() not in disk(directory)


def policies_of(decider):
    return decider.policies


def test_the_conservative_masker_masks_every_card_number(logged):
    """Masker(None) (no schema known) still masks every card number, in declared and undeclared fields."""
    decider, sink, directory = logged
    payment = {**live_card_payments(1)[0], "card_number": PAN, "device_id": f"dev {PAN}"}
    decision = decider.decide("card_payment", {k: v for k, v in payment.items() if k != "device_id"})
    sink.record(dataclasses.replace(decision, decision_id="old-rev", revision="0" * 64), payment, masker=Masker(None))
    sink.close()
    assert PAN.encode() not in disk(directory)
    (old,) = [r for r in open_source(directory).decisions() if r["decision_id"] == "old-rev"]
    assert old["input"]["card_number"] == "411111******1111" and old["input"]["device_id"] == "dev 411111******1111"


def test_the_sink_masks_with_the_flows_compiled_masker_and_looks_nothing_up(tmp_path, policies):
    """A sink with no policies at all stores hash and redact fields as the masker it is handed says (issue 13, item 3)."""
    writer = GroupCommitWriter(FileStore(tmp_path, fsync=False))
    sink = AuditSink(writer, KEY)  # knows no Decider and no policies
    decision = Decider(policies).decide("card_payment", live_card_payments(1)[0])
    fields = {
        "email": FieldSpec.model_validate({"type": "string", "sensitive": "hash"}),
        "name": FieldSpec.model_validate({"type": "string", "sensitive": "redact"}),
    }
    sink.record(decision, {"email": "a@b.c", "name": "Ann", "amount": 5.0}, masker=Masker(fields))
    sink.close()
    (record,) = list(open_source(tmp_path).decisions())
    assert record["input"] == {"email": keyed_hash("a@b.c", KEY), "name": REDACTED, "amount": 5.0}
    assert record["masked"] == ["email", "name"]


def test_each_compiled_flow_carries_the_masker_of_its_input_schema(policies):
    """CompiledFlow.masker is built at compile time from the version's sensitive fields (card_payment: card_number)."""
    for compiled in policies.flows["card_payment"].versions.values():
        assert compiled.masker.sensitive == ("card_number",)
        out, masked = compiled.masker({"card_number": PAN}, KEY)
        assert out == {"card_number": "411111******1111"} and masked == ["card_number"]


def test_pinned_requests_are_fingerprinted_with_their_version(logged, policies):
    """A pinned request's fingerprint includes the version it asked for (a live retry differs)."""
    decider, sink, directory = logged
    payment = live_card_payments(1)[0]
    version = policies.flows["card_payment"].live
    decider.decide("card_payment", payment, version=version, request_id="pinned")
    sink.close()
    (record,) = list(open_source(directory).decisions())
    assert record["route"] == "pinned"
    assert record["fp"] == Fingerprinter(KEY)("card_payment", version, payment) != Fingerprinter(KEY)("card_payment", "", payment)
