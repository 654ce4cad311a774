"""A Node.js grpc-js client that has only proto/ decides real credit applications correctly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.grpc.convert import decision_to_response, response_to_dict, struct_to_dict, to_struct
from engine.grpc.server import start_server
from engine.service import load_decider
from engine.settings import Settings

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLIENT = HERE / "decide_credit.mjs"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; the interop test needs Node.js >= 18 and npm")
    return path


@pytest.fixture(scope="module")
def node_deps() -> str:
    """The client's pinned dependencies, installed with `npm ci` from package-lock.json if missing."""
    node = _tool("node")
    installed = all((HERE / "node_modules" / "@grpc" / pkg / "package.json").exists() for pkg in ("grpc-js", "proto-loader"))
    if not installed:
        subprocess.run(
            [_tool("npm"), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=HERE, check=True, capture_output=True, timeout=600,
        )
    return node


@pytest.fixture(scope="module")
def decider():
    return load_decider(ROOT)


@pytest.fixture(scope="module")
def target(decider):
    running = start_server(Settings.load(env={}, port=0, root=ROOT), decider)
    yield f"127.0.0.1:{running.port}"
    running.stop(1)


def _expected(decider, data: dict) -> dict:
    """What the Python core decides in-process for the same input (as it arrives over the wire)."""
    decision = decider.decide("credit_application", struct_to_dict(to_struct(data)))
    return response_to_dict(decision_to_response(decision))


def _essence(doc: dict) -> dict:
    return {
        "action": doc["action"],
        "reasons": [(r["code"], r["source"], r["rule_id"], r["feature"], round(r["contribution"], 12)) for r in doc["reasons"]],
        "fired_rules": [(f["id"], f["ruleset"], f["action"], f["reason_code"], f["priority"]) for f in doc["fired_rules"]],
        "scores": doc["scores"],
        "models": doc["models"],
        "flow": doc["flow"],
        "version": doc["version"],
        "revision": doc["revision"],
        "route": doc["route"],
    }


def test_node_client_decides_real_applications(node_deps, target, decider, tmp_path):
    """The Node client's checks pass, and each of its 25 answers equals the in-process decision."""
    proto_only = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", proto_only)  # the client gets the contract and nothing else
    result = subprocess.run(
        [node_deps, str(CLIENT), target, str(proto_only), str(ROOT / "data" / "credit_data.csv"), "25"],
        cwd=HERE, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] == []
    assert len(report["decided"]) == 25
    for item in report["decided"]:
        assert _essence(item["response"]) == _essence(_expected(decider, item["input"])), item["line"]
    assert {item["response"]["action"] for item in report["decided"]} >= {"APPROVE", "DECLINE"}
