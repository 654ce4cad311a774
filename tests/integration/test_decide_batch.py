"""DecideBatch through the generated stub on a real server: each request answered as Decide answers
it or failed on its own with Decide's status, logged and idempotent per request id, bounded in size."""

from __future__ import annotations

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.limits import MAX_BATCH_REQUESTS
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider
from engine.settings import Settings

from .helpers import ROOT, card_payments, comparable, credit_applications, request

pytestmark = pytest.mark.integration


class ListSink:
    """A decision log that keeps the records in memory."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []

    def record(self, decision, raw_input, *, masker, delivery: str = "") -> None:
        self.records.append((decision.decision_id, decision.request_id, decision.route))


@pytest.fixture(scope="module")
def logged(decider):
    """A server whose decider logs to a ListSink and remembers request ids, and its stub and sink."""
    sink = ListSink()
    core = Decider(decider.policies, sink=sink, idempotency=IdempotencyCache(Fingerprinter(HashKey(b"batch-test-key-" + b"k" * 20))))
    settings = Settings.load(env={}, port=0, root=ROOT, max_message_bytes=1 << 20, threads=4)
    running = start_server(settings, core)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DecisionServiceStub(channel), sink
    running.stop(grace=1)
    core.close()


def test_each_request_is_answered_as_decide_answers_it(stub):
    """Good requests of two flows get Decide's exact answers; bad ones fail alone with Decide's status."""
    good = [request("credit_application", r) for r in credit_applications(5)] + [request("card_payment", r, version="1") for r in card_payments(5)]
    bad_input = request("credit_application", dict(credit_applications(1)[0], age=-1, home="castle"))
    unknown = request("no_such_flow", {"a": 1})
    long_id = request("credit_application", credit_applications(1)[0], request_id="x" * 500)
    batch = pb.DecideBatchRequest(requests=[good[0], bad_input, *good[1:], unknown, long_id])
    results = stub.DecideBatch(batch, timeout=30).results
    assert len(results) == len(batch.requests)
    answers = [results[0], *results[2 : 2 + len(good) - 1]]
    for message, result in zip(good, answers, strict=True):
        assert result.WhichOneof("result") == "response"
        assert comparable(result.response) == comparable(stub.Decide(message, timeout=10))
    error = results[1].error
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert {f.field for f in error.field_errors} == {"age", "home"}
    assert "age" in error.message and "home" in error.message
    assert results[-2].error.code == grpc.StatusCode.NOT_FOUND.value[0] and "no_such_flow" in results[-2].error.message
    assert results[-1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [f.code for f in results[-1].error.field_errors] == ["too_long"]


def test_too_many_requests_fail_the_call(stub):
    """More than MAX_BATCH_REQUESTS requests: INVALID_ARGUMENT for the whole call, naming the limit."""
    tiny = request("credit_application", {})
    with pytest.raises(grpc.RpcError) as caught:
        stub.DecideBatch(pb.DecideBatchRequest(requests=[tiny] * (MAX_BATCH_REQUESTS + 1)), timeout=30)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"{MAX_BATCH_REQUESTS:,}" in caught.value.details()


def test_garbage_is_invalid_argument(channel):
    """Bytes that are not a DecideBatchRequest get INVALID_ARGUMENT, and the server keeps serving."""
    call = channel.unary_unary("/verdict.v1.DecisionService/DecideBatch")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\x0a\xff\xff\xff\x0f", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert pb_grpc.DecisionServiceStub(channel).ListFlows(pb.ListFlowsRequest(), timeout=10).flows


def test_logged_and_idempotent_per_request_id(logged):
    """Each decided request is logged once; a retried batch gets the stored decisions for its request ids."""
    stub, sink = logged
    rows = credit_applications(4)
    batch = pb.DecideBatchRequest(requests=[
        *(request("credit_application", r, request_id=f"b-{i}") for i, r in enumerate(rows)),
        request("credit_application", {"age": -1}, request_id="b-bad"),
    ])
    first = stub.DecideBatch(batch, timeout=30).results
    assert [r.WhichOneof("result") for r in first] == ["response"] * 4 + ["error"]
    served = [(did, rid) for did, rid, route in sink.records if rid.startswith("b-") and route != "shadow"]
    assert sorted(rid for _, rid in served) == ["b-0", "b-1", "b-2", "b-3"]
    logged_ids = {did for did, _ in served}
    assert logged_ids == {r.response.decision_id for r in first[:4]}
    again = stub.DecideBatch(batch, timeout=30).results
    assert [r.response.decision_id for r in again[:4]] == [r.response.decision_id for r in first[:4]]
    single = stub.Decide(request("credit_application", rows[2], request_id="b-2"), timeout=10)
    assert single.decision_id == first[2].response.decision_id  # the same id, alone or in a batch
