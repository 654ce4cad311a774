"""``verdict replay --engine spark``: replay a decision log exported to Parquet on Apache Spark.

For logs too large for one machine (docs/decision-log.md, "Replay on Spark")::

    from engine.audit.exported import ExportedLog
    from engine.batch.replay_spark import replay_export

    report = replay_export(ExportedLog("log.parquet"), "credit_application", "2", root="/path/to/policy-root")
    print(report.as_dict()["changed_rate"])

How it runs. The driver checks the flow version (``load_decider``, as ``engine.batch.spark.decide``
does) and ships the policy root to the executors once (``engine.batch.spark``: one tarball named
by its hash, loaded once per executor process). Spark reads the export's rows of the flow (a file,
or a partitioned directory); ``mapInPandas`` turns each partition's Arrow batches back into logged
records (``engine.audit.columns.record_of``) and replays them with the same function as the local
replay (``engine.audit.replay.replay``), each record placed by its ``log_order``; each partition
sends back one partial report, and the driver adds them up (``ReplayReport.merge``). Only those
partial reports reach the driver (their size grows with the rules, versions and groups, not the
rows), and the sum is the report of one replay in log order, bit for bit: counts add, the examples
are the first five in log order, score sums are exact until divided, rankings break ties by name.
Outcomes and protected attributes (files read by the driver) go to the executors once, broadcast.

A version with stateful features replays in parallel when every decision of the flow was logged by
it with its features (``state``): those are taken as logged. When it must recompute them (another
version, an older export), the replay runs in one partition in log order, as the local one does
(features as of each decision need every decision before it): exact, not parallel.

Traps. Integer input columns are read as text (an int64 column with nulls would reach pandas as
float64 and lose integers beyond 2**53). The executors' Python needs this package and the
``[spark]`` extra, like ``verdict batch --engine spark``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.audit.columns import CARRIED_SINCE_2, record_of
from engine.audit.exported import ExportedLog
from engine.audit.replay import Protected, replay
from engine.audit.replay_report import ReplayReport
from engine.batch.run import flow_fields
from engine.batch.spark import _decider, _ship, session, split_by_size
from engine.runtime.flow import CompiledFlow

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

__all__ = ["replay_export"]

_COLUMNS = ("log_order", "ts", "flow", "route", "version", "revision", "decision_id", "request_id", "action", "reasons", "fired",
            *CARRIED_SINCE_2)  # the last: what the decision read (stateful features, custom lists), absent before format /2


def replay_export(
    export: ExportedLog,
    flow: str,
    version: str,
    *,
    root: str | Path,
    outcomes: Mapping[str, bool] | None = None,
    protected: Protected | None = None,
    spark: SparkSession | None = None,
    master: str = "local[2]",
    partitions: int | None = None,
) -> ReplayReport:
    """The report of ``engine.audit.replay.replay`` over ``export``'s decisions of ``flow``, through
    ``version`` of the policies under ``root``, computed on Spark.

    Without ``spark`` the active session is used, else one on ``master`` is started and stopped at
    the end. The export is read in partitions of at most ``MAX_PARTITION_BYTES`` and at least one
    per core; ``partitions`` spreads its rows over that many instead (a shuffle: rows in any order,
    which the report does not depend on). A version with stateful features that must recompute them
    for some decision (logged by another version, or without logged ``state``) replays in one
    partition in ``log_order`` instead: its features as of each decision are built from the decisions
    before it in the whole log, which partitions apart cannot see. Raises FlowNotFound / VersionNotFound / FlowUnavailable (in the driver, before Spark
    runs anything), PolicyError for a broken root, AuditError when the export cannot be read.
    """
    from engine.runtime.service import load_decider

    root = Path(root).resolve()
    _, (compiled,) = flow_fields(load_decider(root), flow, version)
    own = False
    if spark is None:
        from pyspark.sql import SparkSession

        own = SparkSession.getActiveSession() is None
        spark = session(master, app="verdict-replay")
    try:
        total = _run(spark, export, compiled, root, outcomes, protected, partitions)
    finally:
        if own:
            spark.stop()
    total.location = export.describe()
    total.count_unmatched(outcomes)
    total.gaps = export.gaps()
    total.notes = export.notes()
    if total.flow != compiled.flow or total.revision != compiled.revision:  # the executors loaded other files
        raise RuntimeError(f"the executors replayed revision {total.revision[:12]}, the driver loaded {compiled.revision[:12]}")
    return total


def _run(spark: SparkSession, export: ExportedLog, compiled: CompiledFlow, root: Path,
         outcomes: Mapping[str, bool] | None, protected: Protected | None, partitions: int | None) -> ReplayReport:
    """Replay every partition in the executors and add up their reports in the driver."""
    from pyspark.sql import functions as sf

    flow, version = compiled.flow, compiled.version
    name, digest = _ship(spark, root)
    kinds = export.kinds
    files = [p for p in export.path.rglob("*.parquet")] if export.path.is_dir() else [export.path]
    split_by_size(spark, sum(p.stat().st_size for p in files))
    df = spark.read.parquet(str(export.path))
    wanted = [*(c for c in _COLUMNS if c in df.columns), *(c for c in df.columns if c.startswith("score_")), *(c for c in df.columns if c in kinds)]
    selected = [sf.col(f"`{c}`").cast("string").alias(c) if kinds.get(c) == "int"
                else sf.unix_micros(sf.col(c)).alias(c) if c == "ts" else sf.col(f"`{c}`") for c in wanted]
    context = spark.sparkContext
    shared = context.broadcast((outcomes, protected))

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        compiled = _decider(name, digest).policies.flows[flow].versions[version]
        told_outcomes, told_protected = shared.value
        records = (record_of(row, kinds) for pdf in batches for row in pdf.to_dict("records"))
        part = replay(records, compiled, outcomes=told_outcomes, protected=told_protected, order=_log_order)  # one history per partition
        part.protected = None  # the driver has it: not sent back with every partition
        yield pd.DataFrame({"report": [pickle.dumps(part)]})

    rows = df.where(sf.col("flow") == flow).select(*selected)
    if compiled.state is not None and _recomputes(rows, compiled):
        rows = rows.repartition(1).sortWithinPartitions("log_order")  # one history, in log order, as the local replay
    elif partitions is not None:
        rows = rows.repartition(partitions)
    parts = rows.mapInPandas(run, "report binary")
    total: ReplayReport | None = None
    for row in parts.toLocalIterator():
        part = pickle.loads(row["report"])  # our own executors' reports of this very run
        if total is None:
            total = part
        else:
            total.merge(part)
    if total is None:  # no decision of the flow in the export
        total = ReplayReport(flow, version, compiled.revision, outcomes_given=outcomes is not None)
    total.protected = protected
    return total


def _recomputes(rows: Any, compiled: CompiledFlow) -> bool:
    """Whether some decision in ``rows`` must have its stateful features recomputed by ``compiled``: one
    logged by another version or revision, or without logged ``state`` (engine.audit.replay)."""
    from pyspark.sql import functions as sf

    if "state" not in rows.columns:  # an export of format /1
        return True
    logged = (sf.col("version") == compiled.version) & (sf.col("revision") == compiled.revision) & sf.col("state").isNotNull()
    return bool(rows.where((sf.col("route") != "shadow") & ~logged).limit(1).count())


def _log_order(record: Mapping[str, Any]) -> int:
    return int(record["log_order"])

