"""The server's metrics: Prometheus families (prometheus-client), also read by the status RPC.

Every family is declared once, in ``FAMILIES`` (name, kind, labels, help); ``Metrics`` owns a
``CollectorRegistry`` holding all of them. Code updates a family by its Prometheus name or by
the short name it had before Prometheus (``reloads``, ``shadow_agree``, ...); ``snapshot()``
gives the status RPC's map ``name{k=v,...} -> value`` under the short name when there is one
(counters and gauges; histograms as ``name_count`` and ``name_sum``). Naming follows the
Prometheus conventions (https://prometheus.io/docs/practices/naming/): base units (seconds),
``_total`` on counters, ``_timestamp_seconds`` for Unix times.

Labels have bounded cardinality: flow, version, route, action, rule id, reason code, model,
feature, step, status code, never request data (no customer or request id). Still bounded in
memory: at most ``engine.limits.MAX_METRIC_SERIES`` distinct series; an update that would create
one more is refused and counted in ``verdict_metrics_series_dropped_total``.

Several worker processes (``verdict serve --workers N``): the parent calls
``enable_multiprocess(DIR)`` before forking; each worker's values then live in memory-mapped files
in ``DIR`` (prometheus-client's multiprocess mode) and the parent alone serves ``/metrics``,
summing counters and histograms over workers (``multiprocess_registry``). Gauges declare how
workers combine (``mode``): min for "every worker is fine" gauges, max for drift. The status RPC
of a worker shows that worker's own values.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import start_http_server

from engine.limits import MAX_METRIC_SERIES

__all__ = [
    "FAMILIES",
    "Family",
    "Metrics",
    "enable_multiprocess",
    "metric_name",
    "multiprocess_registry",
    "serve_metrics",
]

# Decision latency, seconds: a decision takes ~0.1-2 ms in-process; the top buckets catch stalls.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Decisions queued before the request path applies them itself (bounds the queue's memory).
MAX_PENDING = 10_000
# Model scores are probabilities in [0, 1]: twenty 0.05-wide buckets.
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


@dataclass(frozen=True)
class Family:
    """One metric family: Prometheus ``name`` (counters without ``_total``), kind, label names, help.

    ``short``: the status RPC's name of it before Prometheus (kept so its map keeps its keys).
    ``mode``: how a gauge combines over worker processes (prometheus-client multiprocess modes).
    """

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    labels: tuple[str, ...]
    help: str
    short: str = ""
    mode: str = "max"
    buckets: tuple[float, ...] = LATENCY_BUCKETS


FAMILIES: tuple[Family, ...] = (
    Family("verdict_decisions", "counter", ("flow", "version", "route", "action"), "Decisions answered (route: live, challenger or pinned).", "decisions"),
    Family("verdict_decision_duration_seconds", "histogram", ("flow",), "Time to decide one request in the server, log included (seconds)."),
    Family("verdict_decision_step_duration_seconds", "histogram", ("flow", "step"),
           "Time of one step of a decision (validate, features, score, rules, explain, log), seconds."),
    Family("verdict_rule_hits", "counter", ("flow", "version", "rule"), "Rules that held, by rule id (every rule that held, not only the deciding one)."),
    Family("verdict_reason_codes", "counter", ("flow", "version", "code"), "Reason codes given in decisions."),
    Family("verdict_model_score", "histogram", ("model",), "Scores of each model (probability).", buckets=SCORE_BUCKETS),
    Family("verdict_errors", "counter", ("method", "code"), "Calls answered with an error, by gRPC status code."),
    Family("verdict_idempotent_replays", "counter", ("flow",), "Retries answered with the stored decision of their request id."),
    Family("verdict_events", "counter", ("type", "placed"), "Events recorded through RecordEvent or `verdict events import`, by declared type; placed=false: no history took it (engine.state)."),
    Family("verdict_fallbacks", "counter", ("flow", "version", "step", "reason"),
           "Declared fallbacks applied because a step missed its budget or failed (reason: budget, error, busy; engine.runtime.fallback)."),
    Family("verdict_reloads", "counter", ("result", "trigger"), "Policy reloads by result (ok, refused, error) and trigger.", "reloads"),
    Family("verdict_reload_ok", "gauge", (), "1 when the last reload activated cleanly, else 0.", "reload_ok", mode="min"),
    Family("verdict_flow_ok", "gauge", ("flow",), "1 when the flow's files loaded cleanly, 0 when held back.", "flow_ok", mode="min"),
    Family("verdict_reload_last_success_timestamp_seconds", "gauge", (), "Unix time of the last clean reload.",
           "reload_last_good_unixtime", mode="min"),
    Family("verdict_decision_log_write_seconds", "histogram", (), "Wait of one decision until the decision log has it durable (lag), seconds."),
    Family("verdict_decision_log_commit_seconds", "histogram", (), "Time of one group commit (write and fsync, or PostgreSQL commit), seconds."),
    Family("verdict_shadow_decisions", "counter", ("flow", "version", "action"), "Shadow evaluations by action.", "shadow_decisions"),
    Family("verdict_shadow_agreements", "counter", ("flow", "version"), "Shadow outcomes with the served action.", "shadow_agree"),
    Family("verdict_shadow_disagreements", "counter", ("flow", "version"), "Shadow outcomes with another action than the served one.", "shadow_disagree"),
    Family("verdict_shadow_dropped", "counter", ("flow",), "Shadow evaluations not queued (queue full).", "shadow_dropped"),
    Family("verdict_shadow_errors", "counter", ("flow", "version"), "Shadow evaluations that failed.", "shadow_errors"),
    Family("verdict_shadow_record_errors", "counter", ("flow", "version"), "Shadow outcomes the decision log refused.", "shadow_record_errors"),
    Family("verdict_feature_psi", "gauge", ("model", "version", "feature"), "Population stability index of a model input, live window vs training bins."),
    Family("verdict_score_psi", "gauge", ("model", "version"), "Population stability index of a model's score, live window vs training bins."),
    Family("verdict_psi_threshold", "gauge", ("model", "version", "level"),
           "PSI from which a model's drift is graded watch or act (level), the strictest of the flows serving it (their psi:).",
           mode="min"),
    Family("verdict_psi_sample_size", "gauge", ("model", "version"), "Decisions in the live window the PSI gauges are computed on."),
    Family("verdict_feature_missing_ratio", "gauge", ("model", "version", "feature"), "Share of the live window where the input was missing."),
    Family("verdict_feature_unseen_ratio", "gauge", ("model", "version", "feature"), "Share of the live window with a category not seen in training."),
    Family("verdict_metrics_series_dropped", "counter", (), "Metric updates refused because the series bound was reached.", "metrics_series_dropped"),
)

_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES} | {f.short: f for f in FAMILIES if f.short}
_DROPPED = "verdict_metrics_series_dropped"


def metric_name(name: str, labels: Mapping[str, str]) -> str:
    """``name{k=v,...}`` with labels in key order (``name`` alone without labels)."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={labels[k]}" for k in sorted(labels)) + "}"


def _build(family: Family, registry: CollectorRegistry) -> Any:
    if family.kind == "counter":
        return Counter(family.name, family.help, family.labels, registry=registry)
    if family.kind == "gauge":
        return Gauge(family.name, family.help, family.labels, registry=registry, multiprocess_mode=family.mode)  # type: ignore[arg-type]  # Family.mode is one of Gauge's literals, checked in Family
    return Histogram(family.name, family.help, family.labels, registry=registry, buckets=family.buckets)


class Metrics:
    """Every family of ``FAMILIES`` in one registry; thread-safe (prometheus-client locks each value)."""

    def __init__(self, max_series: int = MAX_METRIC_SERIES) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Flush(self))  # first: every collection applies the queued decisions
        self._families = {f.name: _build(f, self.registry) for f in FAMILIES}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        self._max_series = max_series
        self._pending: deque[tuple[Any, ...]] = deque()  # decisions not yet applied (see ``decision``)
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def _child(self, name: str, labels: Mapping[str, str]) -> Any:
        """The labelled value of family ``name`` (created within the series bound), else None.

        Raises KeyError for an unknown family or label set (a programming error).
        """
        family = _BY_NAME[name]
        try:
            key = (family.name, tuple(labels[label] for label in family.labels))
        except KeyError:
            raise KeyError(f"{family.name} takes labels {family.labels}, got {sorted(labels)}") from None
        if len(labels) != len(family.labels):
            raise KeyError(f"{family.name} takes labels {family.labels}, got {sorted(labels)}")
        child = self._children.get(key)
        if child is not None:
            return child
        with self._lock:
            child = self._children.get(key)
            if child is None:
                if len(self._children) >= self._max_series:
                    self._families[_DROPPED].inc()
                    return None
                metric = self._families[family.name]
                child = metric.labels(*key[1]) if key[1] else metric
                self._children[key] = child
        return child

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to the counter ``name{labels}``."""
        child = self._child(name, labels)
        if child is not None:
            child.inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name{labels}`` to ``value``."""
        child = self._child(name, labels)
        if child is not None:
            child.set(value)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Add one observation (seconds, or a score) to the histogram ``name{labels}``."""
        child = self._child(name, labels)
        if child is not None:
            child.observe(value)

    def get(self, name: str, **labels: str) -> float:
        """The current value of the counter or gauge ``name{labels}`` (0 when never touched);
        of a histogram, its observation count."""
        self.flush()
        family = _BY_NAME[name]
        sample = family.name + {"counter": "_total", "histogram": "_count"}.get(family.kind, "")
        value = self.registry.get_sample_value(sample, dict(labels))
        return 0.0 if value is None else value

    def snapshot(self) -> dict[str, float]:
        """Every touched series as ``name{k=v,...} -> value`` (short names where a family has one)."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():  # the flush collector runs first
            if metric.name not in _BY_NAME:
                continue
            family = _BY_NAME[metric.name]
            for sample in metric.samples:
                if sample.name.endswith(("_created", "_bucket")):
                    continue
                if family.kind == "histogram":
                    name = sample.name
                else:
                    name = family.short or sample.name
                out[metric_name(name, sample.labels)] = sample.value
        return out

    # -- what the core records ---------------------------------------------------------------

    def decision(
        self, flow: str, version: str, route: str, action: str, rules: Iterable[str], codes: Iterable[str],
        scores: Mapping[str, float], seconds: float, steps: Mapping[str, float],
    ) -> None:
        """Count one answered decision: its action, the rules that held, its reason codes, each
        model's score (``scores``: model name -> score), its time and its steps' times (seconds).

        The request path only queues it (a deque append, ~0.1 µs, instead of a dozen locked
        updates); ``flush`` applies the queue: before every collection (a scrape, ``get``,
        ``snapshot``), every second on the flusher thread (``start``), and inline past
        ``MAX_PENDING`` queued decisions.
        """
        pending = self._pending
        pending.append((flow, version, route, action, tuple(rules), tuple(codes), scores, seconds, steps))
        if len(pending) > MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Apply every queued decision to the metric families (thread-safe; cheap when none is queued)."""
        pending = self._pending
        if not pending:
            return
        with self._flush_lock:
            counts: Tally[tuple[str, tuple[str, ...]]] = Tally()  # one locked inc per series, not per decision
            observed: dict[tuple[str, tuple[str, ...]], list[float]] = {}  # series -> its observations
            while pending:
                try:
                    item = pending.popleft()
                except IndexError:
                    break
                self._gather(counts, observed, *item)
            for key, n in counts.items():
                child = self._labelled(key)
                if child is not None:
                    child.inc(n)
            for key, amounts in observed.items():
                child = self._labelled(key)
                if child is not None:
                    _observe_many(child, amounts)

    def start(self, interval: float = 1.0) -> None:
        """Flush every ``interval`` seconds on a daemon thread until ``stop`` (the server's workers
        need it: the parent reads their files without asking them to flush)."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_every, args=(interval,), name="verdict-metrics", daemon=True)
            self._flusher.start()

    def _flush_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def stop(self) -> None:
        """Stop the flusher thread after a last flush."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.flush()

    def _labelled(self, key: tuple[str, tuple[str, ...]]) -> Any:
        """The child of ``(family, label values in declared order)``, else as ``_child`` makes it."""
        child = self._children.get(key)
        if child is None:
            name, values = key
            child = self._child(name, dict(zip(_BY_NAME[name].labels, values, strict=True)))
        return child

    @staticmethod
    def _gather(
        counts: Tally[tuple[str, tuple[str, ...]]], observed: dict[tuple[str, tuple[str, ...]], list[float]],
        flow: str, version: str, route: str, action: str, rules: tuple[str, ...], codes: tuple[str, ...],
        scores: Mapping[str, float], seconds: float, steps: Mapping[str, float],
    ) -> None:
        """Add one queued decision to a flush's counter increments and histogram observations."""
        counts["verdict_decisions", (flow, version, route, action)] += 1
        for rule in rules:
            counts["verdict_rule_hits", (flow, version, rule)] += 1
        for code in codes:
            counts["verdict_reason_codes", (flow, version, code)] += 1
        for model, score in scores.items():
            observed.setdefault(("verdict_model_score", (model,)), []).append(score)
        observed.setdefault(("verdict_decision_duration_seconds", (flow,)), []).append(seconds)
        for step, spent in steps.items():
            observed.setdefault(("verdict_decision_step_duration_seconds", (flow, step)), []).append(spent)

    def commit(self, records: int, seconds: float) -> None:
        """One decision-log group commit of ``records`` took ``seconds`` (write and fsync)."""
        self.observe("verdict_decision_log_commit_seconds", seconds)


def _observe_many(child: Any, amounts: list[float]) -> None:
    """``child.observe(a)`` for every ``a`` of ``amounts``, with one locked update per bucket touched
    and one for the sum instead of two per observation (the flusher's main cost, measured).

    Relies on prometheus-client's ``Histogram`` storing, per child, ``_upper_bounds`` (ending in
    +Inf), one non-cumulative value per bucket (``_buckets``) and ``_sum`` (prometheus-client
    0.x, ``metrics.py``); a child without them is updated one observation at a time. A NaN counts
    in no bucket and makes the sum NaN, as ``observe`` does.
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for a in amounts:
            child.observe(a)
        return
    hits = Tally(bisect_left(bounds, a) for a in amounts if a == a)  # first bound >= a: ``a <= bound``
    for i, n in hits.items():
        buckets[i].inc(n)
    total.inc(sum(amounts))


class _Flush:
    """A collector that yields nothing and applies ``Metrics``' queued decisions when collected."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self._metrics.flush()
        return []


def enable_multiprocess(directory: str | os.PathLike[str]) -> None:
    """Keep the values of every ``Metrics`` created from now on in ``directory`` (shared by the
    worker processes; empty it first). Call in the parent before forking."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.fspath(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # prometheus-client ships no annotation for it


def multiprocess_registry(directory: str | os.PathLike[str]) -> CollectorRegistry:
    """A registry that sums the workers' files in ``directory`` at each scrape."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.fspath(directory))  # type: ignore[no-untyped-call]  # unannotated in prometheus-client
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve ``registry`` as ``http://host:port/metrics`` on a daemon thread; (server, bound port).

    ``port`` 0 picks a free one. Raises OSError when the address cannot be bound.
    """
    server, _thread = start_http_server(port, host, registry)
    return server, server.server_port
