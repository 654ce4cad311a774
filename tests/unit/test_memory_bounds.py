"""Every in-memory queue and table is bounded by bytes: shadow queue, metrics series, the size estimate they use."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from pathlib import Path
from typing import ClassVar

from engine.datasets import read_card_payments, read_credit_applications
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.wire import decode_decide_request
from engine.limits import mapping_bytes
from engine.metrics import Metrics
from engine.runtime.shadow import ShadowPool
from engine.types import Action, Outcome

ROOT = Path(__file__).resolve().parents[2]


def _decoded(rows, flow):
    out = []
    for row in rows:
        message = pb.DecideRequest(flow=flow)
        message.input.update(row)
        out.append(decode_decide_request(message.SerializeToString()).input)
    return out


def test_mapping_bytes_covers_the_measured_size_of_request_inputs():
    """For 500 real decoded inputs of each flow, plus long-text inputs, the estimate is at or above tracemalloc's measure."""
    rows = read_credit_applications(ROOT / "data" / "credit_data.csv", 500) + read_card_payments(ROOT / "data" / "card_payments.csv", 500)
    rows.append({f"field_{i}": "x" * 200 for i in range(200)})
    samples = [dict(row) for row in rows]
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    held = [{(k + "\0")[:-1]: (v + "\0")[:-1] if isinstance(v, str) else float(v) for k, v in s.items()} for s in samples]
    measured = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    estimated = sum(mapping_bytes(h) for h in held)
    assert measured <= estimated <= 3 * measured, (measured, estimated)


class _SlowFlow:
    """A stand-in compiled flow whose evaluation waits until released."""

    flow, version, revision, prepare_key = "demo", "2", "r" * 64, ""
    model_versions: ClassVar[dict[str, str]] = {}

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def evaluate(self, input):
        self.release.wait(10)
        return Outcome(Action.APPROVE, (), (), {})


def test_the_shadow_queue_is_bounded_by_bytes():
    """With the worker stuck, tasks beyond the byte budget are dropped and counted; the held bytes return to 0 after."""
    release = threading.Event()
    metrics = Metrics()
    big = {f"f{i}": "x" * 1000 for i in range(10)}
    size = mapping_bytes(big)
    pool = ShadowPool(None, metrics, queue_size=1000, max_bytes=5 * size, new_id=lambda: "id")
    flow = _SlowFlow(release)
    accepted = [pool.submit([flow], big, "r", "d", Action.APPROVE) for _ in range(20)]
    assert sum(accepted) <= 5 and pool.queued_bytes <= 5 * size
    assert metrics.get("shadow_dropped", flow="demo") == 20 - sum(accepted)
    release.set()
    assert pool.drain()
    assert pool.queued_bytes == 0
    pool.close()


def test_metrics_keep_at_most_max_series_and_count_the_rest():
    """Past max_series a new series is not created; the refused updates are counted; existing series still move."""
    metrics = Metrics(max_series=3)
    for i in range(5):
        metrics.inc("verdict_idempotent_replays", flow=f"f{i}")
    metrics.inc("verdict_idempotent_replays", flow="f0")
    snapshot = metrics.snapshot()
    assert snapshot["verdict_idempotent_replays_total{flow=f0}"] == 2 and "verdict_idempotent_replays_total{flow=f4}" not in snapshot
    assert snapshot["metrics_series_dropped"] == 2  # f3 and f4 refused; the drop counter is outside the bound
    assert len([k for k in snapshot if k.startswith("verdict_idempotent_replays")]) == 3
