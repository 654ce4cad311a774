"""Verdict's latency benchmarks: a manifest of cases (manifest.yaml) and one runner (run.py)."""
