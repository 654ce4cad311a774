"""The bad_request_cost benchmark case: its payloads are the worst within the size limit, and its target is wired."""

from __future__ import annotations

from pathlib import Path

from benchmarks.suite.bad_requests import BAD_KINDS, LIMIT, bad_payloads
from benchmarks.suite.manifest import load_manifest
from benchmarks.suite.report import evaluate_targets
from engine.errors import InvalidInput
from engine.grpc.wire import Malformed, decode_decide_request
from engine.limits import MAX_INPUT_FIELDS
from engine.runtime.service import load_decider

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"seniority": 1.0, "home": "rent", "time": 60.0, "age": 22.0, "marital": "single", "records": True,
        "job": "partime", "expenses": 60.0, "income": 90.0, "assets": 0.0, "debt": 0.0, "amount": 1400.0, "price": 1500.0}


def test_every_bad_payload_fits_the_limit_and_is_refused_as_invalid_input():
    """Each bad kind is at most LIMIT bytes, and the server's decoder or core refuses it as bad input (never decides it)."""
    decider = load_decider(ROOT)
    payloads = bad_payloads(GOOD)
    assert tuple(payloads) == BAD_KINDS
    for kind, data in payloads.items():
        assert len(data) <= LIMIT, kind
        call = decode_decide_request(data)
        if isinstance(call, Malformed):
            assert kind in ("malformed", "too_many_fields"), kind
            continue
        try:
            decider.decide(call.flow, call.input, version=call.version, request_id=call.request_id)
        except InvalidInput:
            continue
        raise AssertionError(f"{kind} was decided")


def test_payloads_fill_the_limit_up_to_the_field_cap():
    """The long-names kind carries as many fields as a request may (near 64 KiB); too_many_fields carries far more."""
    payloads = bad_payloads(GOOD)
    assert len(decode_decide_request(payloads["unknown_long_names"]).input) == 255
    assert len(payloads["unknown_long_names"]) > LIMIT - 4096
    assert len(payloads["too_many_fields"]) > LIMIT - 64 and MAX_INPUT_FIELDS < 1000


def test_the_cost_target_divides_worst_by_good():
    """The manifest's bad-request target picks the 'worst' and 'good' rows of bad_request_cost and bounds their ratio at 5."""
    manifest = load_manifest(ROOT / "benchmarks" / "manifest.yaml")
    target = next(t for t in manifest.targets if t.numerator.case == "bad_request_cost")
    rows = [
        {"name": "bad_request_cost", "kind": "good", "server_cpu_us_per_request": 500.0},
        {"name": "bad_request_cost", "kind": "worst", "server_cpu_us_per_request": 3000.0},
    ]
    (result,) = evaluate_targets([target], rows)
    assert (result["ratio"], result["met"], target.max) == (6.0, False, 5.0)
