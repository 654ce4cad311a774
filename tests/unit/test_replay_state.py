"""Replay of decisions that read stateful features: bit for bit with their version, recomputed for another."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from engine.audit.replay import replay
from engine.audit.source import open_source
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load_policies
from engine.state.store import MemoryStore

from .audit_helpers import PAN, card_payments, logging_decider

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
N = 120
STATE_FIELDS = ("txn_count_1h", "txn_count_24h", "amount_avg_30d", "new_device")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The bundled policies plus '2b': version 2 with a longer lateness (same features, another revision)."""
    root = tmp_path_factory.mktemp("root")
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, root / part)
    flow = yaml.safe_load((root / "policies/card_payment/2/flow.yaml").read_text())
    flow["version"] = "2b"
    flow["behaviour"]["lateness"] = "20m"
    (root / "policies/card_payment/2b").mkdir()
    (root / "policies/card_payment/2b/flow.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def log(tmp_path_factory, root) -> Path:
    """card_payment v2 decisions of 12 customers, ten payments each a few minutes apart (bursts hit VELOCITY)."""
    directory = tmp_path_factory.mktemp("audit")
    decider, writer = logging_decider(directory, load_policies(root), state=MemoryStore(b"s" * 32))
    rows = card_payments(N)
    for i, row in enumerate(rows):
        data = {k: v for k, v in row.items() if k not in STATE_FIELDS}
        data.update(customer_id=f"C{i % 12}", device_id=f"D{i % 5}", card_number=PAN, event_time=T0 + 150 * i)
        decider.decide("card_payment", data, version="2", request_id=f"card-{i}")
    decider.close()
    writer.close()
    return directory


def _version(root: Path, version: str):
    return load_policies(root).flows["card_payment"].versions[version]


def test_replay_with_the_producing_version_reproduces_logged_card_decisions_exactly(log, root):
    """Version 2 replayed on its own log takes the logged features and changes nothing (VELOCITY included)."""
    report = replay(open_source(log).decisions(flow="card_payment"), _version(root, "2"))
    assert report.replayed == N and report.rejected == 0 and report.failed == 0
    assert report.same_version == N and report.same_version_differs == 0 and report.changed == 0
    assert report.before.get("DECLINE", 0) > 0  # the log holds velocity declines: the replay did reproduce them


def test_another_stateful_version_recomputes_features_in_event_time_order(log, root):
    """Version 2b (same features) recomputes them from the log, as of each decision: the same actions."""
    report = replay(open_source(log).decisions(flow="card_payment"), _version(root, "2b"))
    assert report.replayed == N and report.same_version == 0
    assert report.changed == 0 and report.before == report.after

