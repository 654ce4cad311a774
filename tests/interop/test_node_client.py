"""A Node.js grpc-js client that has only proto/ decides real credit applications correctly,
in plaintext and over mutual TLS with a client certificate made in the test (tests/pki.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.grpc.convert import decision_to_response, response_to_dict, struct_to_dict, to_struct
from engine.grpc.server import start_server
from engine.runtime.service import load_decider
from engine.settings import Settings
from tests.pki import make_pki

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
    """The Node client's checks pass, and each of its 25 answers, by Decide and by DecideBatch, equals the in-process decision."""
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
    assert len(report["batch"]) == 25
    for item, batched in zip(report["decided"], report["batch"], strict=True):
        assert _essence(batched) == _essence(_expected(decider, item["input"])), item["line"]


@pytest.fixture(scope="module")
def mtls_target(decider, tmp_path_factory):
    """A mutual-TLS server whose authorization file lets alice decide credit_application only."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    authz = pki.dir / "authz.yaml"
    authz.write_text("callers:\n  alice:\n    decide: [credit_application]\n")
    settings = Settings.load(
        env={}, port=0, root=ROOT, tls_cert=pki.path("server.pem"), tls_key=pki.path("server.key"),
        tls_client_ca=pki.path("ca.pem"), authz=authz,
    )  # fmt: skip
    running = start_server(settings, decider)
    yield f"127.0.0.1:{running.port}", pki
    running.stop(1)


def _run_node(node: str, target: str, proto: Path, count: int, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, str(CLIENT), target, str(proto), str(ROOT / "data" / "credit_data.csv"), str(count), *options],
        cwd=HERE, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_node_client_over_mutual_tls_decides_and_is_refused_what_it_may_not_call(node_deps, mtls_target, decider, tmp_path):
    """grpc-js with alice's client certificate: 10 answers equal the in-process decisions; card_payment and an
    unknown flow get PERMISSION_DENIED naming the flow."""
    target, pki = mtls_target
    proto_only = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", proto_only)
    tls = ["--tls-ca", str(pki.path("ca.pem")), "--tls-cert", str(pki.path("alice.pem")), "--tls-key", str(pki.path("alice.key"))]
    result = _run_node(node_deps, target, proto_only, 10, *tls, "--denied-flow", "card_payment")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] == [] and len(report["decided"]) == 10
    for item in report["decided"]:
        assert _essence(item["response"]) == _essence(_expected(decider, item["input"])), item["line"]


def test_node_client_without_a_client_certificate_is_refused(node_deps, mtls_target, tmp_path):
    """grpc-js trusting the CA but presenting no certificate cannot call the mutual-TLS server (UNAVAILABLE)."""
    target, pki = mtls_target
    proto_only = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", proto_only)
    result = _run_node(node_deps, target, proto_only, 1, "--tls-ca", str(pki.path("ca.pem")))
    assert result.returncode == 1
    assert "14 UNAVAILABLE" in result.stderr, result.stderr
