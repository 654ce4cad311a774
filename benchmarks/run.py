#!/usr/bin/env python3
"""Verdict's benchmark suite: ``python benchmarks/run.py [--quick] [--json FILE] [--plot DIR]``.

The cases are in benchmarks/manifest.yaml; benchmarks/README.md explains them and shows the
latest full run. ``verdict bench`` runs the same thing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
