"""Counters and gauges of one server process, read by the status RPC and the tests.

Deliberately small (no exporter dependency): a metric is a name plus sorted labels, e.g.
``shadow_dropped{flow=credit_application}``. Counters only go up; gauges are set. Increments take
a lock, so they are exact under concurrency; a snapshot is a consistent copy.
"""

from __future__ import annotations

import threading

__all__ = ["Metrics", "metric_name"]


def metric_name(name: str, labels: dict[str, str]) -> str:
    """``name{k=v,...}`` with labels in key order (``name`` alone without labels)."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


class Metrics:
    """Thread-safe counters and gauges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add `amount` to the counter `name{labels}`."""
        key = metric_name(name, labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge `name{labels}` to `value`."""
        key = metric_name(name, labels)
        with self._lock:
            self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        """The current value of `name{labels}` (0 when never touched)."""
        with self._lock:
            return self._values.get(metric_name(name, labels), 0)

    def snapshot(self) -> dict[str, float]:
        """A copy of every metric."""
        with self._lock:
            return dict(self._values)
