"""The serving install: `verdict serve` and `verdict decide` (with model reasons) work without any extra's packages,
and a command that needs a missing extra says which one to install, in one line, with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.extras import EXTRAS

from .helpers import ROOT, ServeProcess, wait_serving

pytestmark = pytest.mark.integration

HIDER = ROOT / "tests" / "data" / "lean_install"
# Everything outside the serving install: the extras' packages, and scipy (scikit-learn's).
HIDDEN = sorted({m.partition(".")[0] for mods in EXTRAS.values() for m in mods} | {"scipy"})
# A credit application the model declines (pd 0.80), so the decision carries model reasons.
RISKY = {"seniority": 0, "home": "other", "time": 60, "age": 22, "marital": "single", "records": True,
         "job": "partime", "expenses": 90, "income": 120, "assets": 0, "debt": 0, "amount": 1000, "price": 1500}
PROBE = """
import os, sys
from engine.cli import main
code = main(sys.argv[1:])
loaded = sorted({m.partition('.')[0] for m in sys.modules} & set(os.environ['VERDICT_HIDE_PACKAGES'].split(',')))
print('LOADED=' + ','.join(loaded), file=sys.stderr)
sys.exit(code)
"""


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HIDER), str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, VERDICT_HIDE_PACKAGES=",".join(HIDDEN), **extra)


def _verdict(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``verdict ARGS`` in a process where the extras' packages cannot be imported."""
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=120)


def test_hiding_works(tmp_path: Path) -> None:
    """The hiding sitecustomize really makes lightgbm unimportable (else the tests below prove nothing)."""
    out = subprocess.run([sys.executable, "-c", "import lightgbm"], env=_env(), capture_output=True, text=True)
    assert out.returncode != 0 and "hidden by the lean-install test" in out.stderr


def test_decide_with_model_reasons_needs_no_extra(tmp_path: Path) -> None:
    """An in-process decision with TreeSHAP reasons runs with every extra hidden, and loads none of them."""
    (tmp_path / "app.json").write_text(json.dumps(RISKY))
    out = _verdict("decide", "credit_application", "--input", "app.json", "--root", str(ROOT), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["action"] == "DECLINE"
    assert any(r["source"] == "model" and r["contribution"] > 0 for r in decision["reasons"])
    assert "LOADED=\n" in out.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("train", "--data", "x.csv", "--target", "y", "--positive", "1", "--name", "m", "--out", "out"), "train"),
        (("models", "rebuild"), "train"),
        (("audit", "verify", "postgresql://127.0.0.1:1/verdict"), "postgres"),
        (("serve", "--port", "0", "--audit", "off", "--otlp-endpoint", "http://127.0.0.1:4317"), "otel"),
        (("console", "--port", "0"), "console"),
        (("console", "users", "add", "ana", "--role", "analyst"), "console"),
    ],
)
def test_a_command_without_its_extra_names_it(tmp_path: Path, args: tuple[str, ...], extra: str) -> None:
    """A command needing a missing extra exits 2 with one stderr line naming `verdict[EXTRA]`."""
    (tmp_path / "x.csv").write_text("a,y\n1,1\n2,0\n")
    out = _verdict(*args, cwd=tmp_path)
    lines = [line for line in out.stderr.splitlines() if not line.startswith(("LOADED=", "using policy root"))]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and f"pip install 'verdict[{extra}]'" in lines[0], out.stderr
    assert not (tmp_path / "out").exists()


def test_serve_reaches_serving_without_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`verdict serve` on the bundled policies reaches SERVING with every extra's package hidden."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HIDER), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("VERDICT_HIDE_PACKAGES", ",".join(HIDDEN))
    server = ServeProcess(tmp_path, "--audit", "off")
    try:
        wait_serving(server.target)
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
