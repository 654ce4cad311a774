"""The package's public API (engine/__init__.py): every exported name resolves, and cheaply."""

from __future__ import annotations

import subprocess
import sys

import engine
import engine.errors
import engine.runtime.service
import engine.types


def test_every_public_name_resolves_to_its_home() -> None:
    """Each name in engine.__all__ is the object of the module that defines it."""
    homes = (engine.errors, engine.types, engine.runtime.service)
    for name in engine.__all__:
        value = getattr(engine, name)
        assert any(getattr(home, name, None) is value for home in homes), name


def test_public_api_names_the_core_types() -> None:
    """The decider, its loader, the outcome types and every error class are exported."""
    for name in ("Decider", "load_decider", "Decision", "Outcome", "Action", "InvalidInput", "PolicyError", "VerdictError"):
        assert name in engine.__all__
    errors = {n for n in engine.errors.__all__ if isinstance(getattr(engine.errors, n), type) and issubclass(getattr(engine.errors, n), Exception)}
    assert errors <= set(engine.__all__)


def test_unknown_name_is_an_attribute_error() -> None:
    """A name the package does not export raises AttributeError, as for any module."""
    try:
        engine.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("engine.no_such_name resolved")


def test_importing_the_package_does_not_import_the_service() -> None:
    """`import engine` (and so the CLI's start-up) does not load the decision service or its models."""
    code = "import sys, engine; print('engine.runtime.service' in sys.modules, 'engine.models.runtime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
