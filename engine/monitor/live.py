"""Rolling windows of the inputs and scores each served model sees, and their PSI gauges.

The request path only appends (model, values, score, row) to a queue of at most ``window`` entries
(``observe``: a deque append, no encoding, no numpy; past it the oldest is dropped): ``row`` is the
encoded row the model scored (``Outcome.rows``), so nothing is encoded twice. ``drain`` — every
second on a daemon thread of the server — copies the queued rows into the windows (encoding, as
``Model.encode`` does, only an outcome that carries no row); ``refresh`` — every ``interval`` seconds, or called by tests — drains, keeps
the last ``window`` of them per model version, and sets ``verdict_feature_psi``,
``verdict_score_psi``, ``verdict_psi_sample_size`` and the missing and unseen-category shares
(``engine.metrics``) against the model's training baseline (``engine.monitor.baseline``). A
model without a ``baseline.json`` is not monitored (logged once when the policies load).

With several worker processes each worker has its own window; the gauges combine as the
maximum over workers (docs/operations.md).

Thresholds: each flow version declares its PSI watch/act thresholds (``psi:``, default 0.1/0.25);
``psi_thresholds`` gives each model version the strictest of the flow versions that run it, which
``watch`` exports as ``verdict_psi_threshold{model,version,level}`` for the alerting rules to
compare with (deploy/prometheus/alerts.yaml) and ``verdict monitor`` grades with.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from engine.monitor.baseline import Baseline, BaselineError, read_baseline
from engine.monitor.psi import bin_counts, psi

if TYPE_CHECKING:
    from engine.metrics import Metrics
    from engine.policy.loader import PolicySet
    from engine.runtime.flow import CompiledFlow
    from engine.types import Outcome

__all__ = ["DEFAULT_WINDOW", "DriftMonitor", "ModelWindow", "psi_thresholds"]

DEFAULT_WINDOW = 10_000  # decisions per model version: PSI on fewer than a few hundred is noise
_log = structlog.get_logger("verdict.monitor")


def psi_thresholds(policies: PolicySet) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, version) -> (watch, act): the lowest thresholds among the loaded flow versions running it."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for entry in policies.flows.values():
        for compiled in entry.versions.values():
            for bound in compiled.models:
                key = (bound.model.name, bound.model.version)
                watch, act = out.get(key, compiled.psi)
                out[key] = (min(watch, compiled.psi[0]), min(act, compiled.psi[1]))
    return out


class ModelWindow:
    """The last ``size`` encoded rows and scores of one model version, with its baseline."""

    def __init__(self, model: Any, baseline: Baseline, size: int = DEFAULT_WINDOW) -> None:
        self.model = model
        self.baseline = baseline
        width = len(baseline.features)
        self._x = np.full((size, width), np.nan)
        self._absent = np.zeros((size, width), dtype=bool)  # the input was missing (not merely unseen)
        self._scores = np.full(size, np.nan)
        self._size = size
        self._next = 0
        self.count = 0  # rows held, at most size
        self._names = tuple(f.name for f in baseline.features)

    def add(self, values: Mapping[str, Any], score: float, row: Any = None) -> None:
        """Keep one decision's encoded row (``row``, the (1, n) array the model scored; None: encode
        ``values`` as the model does) and score; the oldest row goes."""
        i = self._next
        self._x[i] = (self.model.encode(values) if row is None else row)[0]
        self._absent[i] = [values.get(name) is None for name in self._names]
        self._scores[i] = score
        self._next = (i + 1) % self._size
        self.count = min(self.count + 1, self._size)

    def stability(self) -> dict[str, Any]:
        """PSI per input and of the score, missing and unseen shares, over the rows held."""
        n = self.count
        x, absent = self._x[:n], self._absent[:n]
        out: dict[str, Any] = {"n": n, "features": {}, "score_psi": float("nan")}
        if n == 0:
            return out
        for j, f in enumerate(self.baseline.features):
            column = x[:, j]
            nan = np.isnan(column)
            missing = float(absent[:, j].mean())
            unseen = float((nan & ~absent[:, j]).mean()) if f.kind == "categorical" else 0.0
            out["features"][f.name] = {"psi": psi(f.shares, f.counts(column)), "missing": missing, "unseen": unseen}
        out["score_psi"] = psi(self.baseline.score_shares, bin_counts(self._scores[:n], self.baseline.score_edges))
        return out


class DriftMonitor:
    """Windows of every served model version that has a baseline; gauges on ``refresh``."""

    def __init__(self, metrics: Metrics, *, window: int = DEFAULT_WINDOW, interval: float = 15.0) -> None:
        self._metrics = metrics
        self._window = window
        self._interval = interval
        self._queue: deque[tuple[ModelWindow, Mapping[str, Any], float, Any]] = deque(maxlen=window)
        self._windows: dict[int, ModelWindow] = {}  # id(model) -> its window
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, policies: PolicySet) -> None:
        """Track every model of ``policies`` that has a baseline (call on each activation)."""
        windows: dict[int, ModelWindow] = {}
        for entry in policies.flows.values():
            for compiled in entry.versions.values():
                for bound in compiled.models:
                    model = bound.model
                    if id(model) in windows:
                        continue
                    old = self._windows.get(id(model))
                    if old is not None and old.model is model:
                        windows[id(model)] = old
                        continue
                    directory = getattr(model, "directory", None)
                    try:
                        baseline = read_baseline(directory, model.feature_names) if directory is not None else None
                    except BaselineError as exc:
                        _log.warning("baseline_invalid", model=model.name, version=model.version, error=str(exc))
                        continue
                    if baseline is None:
                        _log.info("baseline_missing", model=model.name, version=model.version, detail="no drift gauges for it")
                        continue
                    windows[id(model)] = ModelWindow(model, baseline, self._window)
        thresholds = psi_thresholds(policies)
        for w in windows.values():
            watch, act = thresholds[(w.model.name, w.model.version)]
            self._metrics.set("verdict_psi_threshold", watch, model=w.model.name, version=w.model.version, level="watch")
            self._metrics.set("verdict_psi_threshold", act, model=w.model.name, version=w.model.version, level="act")
        with self._lock:
            self._windows = windows

    def observe(self, compiled: CompiledFlow, outcome: Outcome) -> None:
        """Queue the values and scores of one answered decision (cheap: the request path)."""
        windows = self._windows
        if not windows:
            return
        rows = outcome.rows
        for m, bound in enumerate(compiled.models):
            w = windows.get(id(bound.model))
            if w is not None and bound.output in outcome.scores:
                self._queue.append((w, outcome.features, outcome.scores[bound.output], rows[m] if m < len(rows) else None))

    def drain(self) -> None:
        """Move the queued rows into the windows (encoding them), so the queue holds no input long."""
        with self._lock:
            queue = self._queue
            while queue:
                w, values, score, row = queue.popleft()
                w.add(values, score, row)

    def refresh(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Drain the queue and set the gauges; the stability by (model, version)."""
        self.drain()
        with self._lock:
            result = {}
            for w in self._windows.values():
                if w.count == 0:
                    continue
                labels = {"model": w.model.name, "version": w.model.version}
                s = w.stability()
                result[(w.model.name, w.model.version)] = s
                self._metrics.set("verdict_psi_sample_size", s["n"], **labels)
                self._metrics.set("verdict_score_psi", s["score_psi"], **labels)
                for feature, f in s["features"].items():
                    self._metrics.set("verdict_feature_psi", f["psi"], **labels, feature=feature)
                    self._metrics.set("verdict_feature_missing_ratio", f["missing"], **labels, feature=feature)
                    self._metrics.set("verdict_feature_unseen_ratio", f["unseen"], **labels, feature=feature)
        return result

    def start(self) -> None:
        """Refresh every ``interval`` seconds on a daemon thread until ``stop``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="verdict-drift", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        ticks = 0
        every = max(1, round(self._interval))
        while not self._stop.wait(1.0):  # drain every second (bounded memory), gauges every interval
            ticks += 1
            try:
                if ticks % every:
                    self.drain()
                else:
                    self.refresh()
            except Exception as exc:  # noqa: BLE001 - monitoring must never take the server down
                _log.error("drift_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop the refresh thread (the gauges keep their last values)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
