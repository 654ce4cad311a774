"""Hides the packages of Verdict's extras from every Python process started with this directory on
PYTHONPATH (Python imports ``sitecustomize`` at start-up), as if only ``pip install .`` had run.
The hidden top-level names are in VERDICT_HIDE_PACKAGES (comma-separated). Used by
tests/integration/test_lean_install.py."""

import importlib.abc
import os
import sys

_HIDDEN = frozenset(filter(None, os.environ.get("VERDICT_HIDE_PACKAGES", "").split(",")))


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the lean-install test)", name=name)
        return None


sys.meta_path.insert(0, _Hide())
