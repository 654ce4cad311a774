"""Counters and gauges of one server process, read by the status RPC and the tests.

Deliberately small (no exporter dependency): a metric is a name plus sorted labels, e.g.
``shadow_dropped{flow=credit_application}``. Counters only go up; gauges are set. Increments take
a lock, so they are exact under concurrency; a snapshot is a consistent copy.

Bounded: at most ``engine.limits.MAX_METRIC_SERIES`` distinct series (name plus labels; about
200 bytes each, so ~2 MB). A new series beyond it is not created; ``metrics_series_dropped``
counts the updates refused. Labels are flow, version, action and the like, never request data.
"""

from __future__ import annotations

import threading

from engine.limits import MAX_METRIC_SERIES

__all__ = ["Metrics", "metric_name"]


def metric_name(name: str, labels: dict[str, str]) -> str:
    """``name{k=v,...}`` with labels in key order (``name`` alone without labels)."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


_DROPPED = "metrics_series_dropped"


class Metrics:
    """Thread-safe counters and gauges."""

    def __init__(self, max_series: int = MAX_METRIC_SERIES) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._max_series = max_series

    def _room(self, key: str) -> bool:
        """Whether ``key`` exists or may be created (call with the lock held); counts a refusal."""
        values = self._values
        if key in values or len(values) < self._max_series:
            return True
        values[_DROPPED] = values.get(_DROPPED, 0) + 1  # the one series allowed past the bound
        return False

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add `amount` to the counter `name{labels}`."""
        key = metric_name(name, labels)
        with self._lock:
            if self._room(key):
                self._values[key] = self._values.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge `name{labels}` to `value`."""
        key = metric_name(name, labels)
        with self._lock:
            if self._room(key):
                self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        """The current value of `name{labels}` (0 when never touched)."""
        with self._lock:
            return self._values.get(metric_name(name, labels), 0)

    def snapshot(self) -> dict[str, float]:
        """A copy of every metric."""
        with self._lock:
            return dict(self._values)
