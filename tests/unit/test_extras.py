"""engine.extras and pyproject.toml: the serving install leaves the extras out, and a missing extra is named."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from engine.extras import EXTRAS, MissingExtra, require

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NOT_SERVING = ("lightgbm", "scikit-learn", "skl2onnx", "onnxmltools", "onnx", "matplotlib", "scipy", "psycopg", "zen-engine")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_serving_dependencies_leave_out_training_plotting_and_postgres() -> None:
    """[project].dependencies name none of the training, plotting, PostgreSQL or benchmark packages."""
    names = {_name(r) for r in PROJECT["dependencies"]}
    assert names.isdisjoint(NOT_SERVING), names & set(NOT_SERVING)
    assert {"grpcio", "onnxruntime", "numpy"} <= names


def test_extras_exist_and_the_readme_names_each() -> None:
    """train, plots, postgres, otel, redis, bench and test are extras; test pulls train, plots, postgres, batch, otel, console and redis; the README names each."""
    extras = PROJECT["optional-dependencies"]
    assert {"train", "plots", "postgres", "redis", "bench", "test"} <= set(extras)
    assert {"lightgbm", "scikit-learn", "skl2onnx", "onnxmltools", "matplotlib"} <= {_name(r) for r in extras["train"]}
    assert "verdict[train,plots,postgres,batch,otel,console,redis]" in extras["test"]
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc"} <= {_name(r) for r in extras["otel"]}
    readme = (ROOT / "README.md").read_text()
    for extra in ("train", "plots", "postgres", "otel", "redis", "bench", "test"):
        assert f"'.[{extra}]'" in readme


def test_require_names_the_extra_and_the_missing_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """require() raises MissingExtra whose one-line message names the extra, the pip command and what is missing."""
    monkeypatch.setitem(EXTRAS, "demo", ("json", "no_such_module_for_verdict"))  # type: ignore[index]
    with pytest.raises(MissingExtra) as info:
        require("demo", "the demo command")
    message = str(info.value)
    assert "\n" not in message and "pip install 'verdict[demo]'" in message
    assert "no_such_module_for_verdict" in message and "json" not in message.split("missing:")[1]
    assert info.value.missing == ("no_such_module_for_verdict",)


def test_require_passes_when_installed() -> None:
    """With the test extra installed, every extra's modules are found (the suite's environment is complete)."""
    for extra in ("train", "postgres", "bench", "otel"):
        require(extra, "x")
