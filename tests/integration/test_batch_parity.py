"""`verdict batch` gives the same answers as the online service: the same rows through a real gRPC
server and through the batch command, compared field by field (actions, reasons, scores exactly)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.runtime.service import load_decider
from engine.settings import Settings
from tests.unit.policy_roots import routed_copy

from .helpers import CARD_CSV, CREDIT_CSV, ROOT, card_payments, request

pytestmark = pytest.mark.integration

ROWS = 400


@pytest.fixture(scope="module")
def routed_root(tmp_path_factory) -> Path:
    """The bundled policies with a challenger of credit_application for 10% of customers (the bundled
    routing has none since version 3 went live alone), so both routes are compared."""
    return routed_copy(tmp_path_factory.mktemp("routed"))


@pytest.fixture(scope="module")
def routed_stub(routed_root):
    """A real gRPC server on 127.0.0.1:0 serving ``routed_root``."""
    import grpc

    decider = load_decider(routed_root)
    running = start_server(Settings.load(env={}, port=0, root=routed_root), decider)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DecisionServiceStub(channel), decider
    running.stop(grace=1)




def _online(stub, flow: str, inputs: list[dict], version: str = "") -> list[dict]:
    out = []
    for i, data in enumerate(inputs):
        resp = stub.Decide(request(flow, data, request_id=f"parity-{flow}-{i}", version=version), timeout=10)
        out.append({
            "action": pb.Action.Name(resp.action),
            "reasons": [{"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature,
                         "contribution": r.contribution} for r in resp.reasons],
            "fired_rules": ";".join(f.id for f in resp.fired_rules),
            "scores": dict(resp.scores),
            "version": resp.version,
            "revision": resp.revision,
        })
    return out


def _batch(tmp_path: Path, flow: str, src: Path, capsys, *extra: str, root: Path = ROOT) -> list[dict]:
    out = tmp_path / f"{flow}.parquet"
    code = main(["batch", flow, "--input", str(src), "--output", str(out), "--root", str(root), *extra])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    return pq.read_table(out).to_pylist()


def _compare(online: list[dict], batch: list[dict]) -> None:
    assert len(online) == len(batch)
    for want, got in zip(online, batch, strict=True):
        assert got["action"] == want["action"]
        assert json.loads(got["reasons"]) == want["reasons"]
        assert got["fired_rules"] == want["fired_rules"]
        assert {k[len("score_"):]: v for k, v in got.items() if k.startswith("score_") and v is not None} == want["scores"]
        assert (got["version"], got["revision"]) == (want["version"], want["revision"])


def _credit_csv(tmp_path: Path) -> tuple[Path, list[dict]]:
    """data/credit_data.csv's first ROWS rows plus a customer_id column, and the same rows as JSON inputs."""
    lines = CREDIT_CSV.read_text(encoding="utf-8").splitlines()[: ROWS + 1]
    text = "\n".join([f"customer_id,{lines[0]}", *(f"cust-{i},{line}" for i, line in enumerate(lines[1:]))]) + "\n"
    src = tmp_path / "credit.csv"
    src.write_text(text, encoding="utf-8")
    from engine.datasets import read_credit_applications

    inputs = [dict(r, customer_id=f"cust-{i}") for i, r in enumerate(read_credit_applications(CREDIT_CSV, ROWS, integers=False))]
    return src, inputs


def test_credit_batch_equals_grpc(routed_stub, routed_root, tmp_path, capsys):
    """credit_application (live and challenger routes, model reasons): batch == Decide over gRPC, row for row."""
    src, inputs = _credit_csv(tmp_path)
    stub, decider = routed_stub
    online = _online(stub, "credit_application", inputs)
    assert decider.drain_shadows()  # the shadow evaluations (and their log lines) are done before the batch prints
    capsys.readouterr()
    batch = _batch(tmp_path, "credit_application", src, capsys, root=routed_root)
    assert {r["route"] for r in batch} == {"live", "challenger"}
    assert any(r["source"] == "model" for o in online for r in o["reasons"])
    _compare(online, batch)


def test_card_batch_equals_grpc(stub, tmp_path, capsys):
    """card_payment 1 (fraud and anomaly models; the CSV holds its inputs): batch of the bundled CSV == Decide over gRPC, row for row."""
    inputs = card_payments(ROWS)
    lines = CARD_CSV.read_text(encoding="utf-8").splitlines()[: ROWS + 1]
    src = tmp_path / "card.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    online = _online(stub, "card_payment", inputs, version="1")
    _compare(online, _batch(tmp_path, "card_payment", src, capsys, "--version", "1"))
