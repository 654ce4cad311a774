"""The decision log: durable, hash-chained, masked; read, verified and replayed.

Modules: ``record`` (format and hash chain), ``segments`` (the embedded log's files),
``postgres`` (the PostgreSQL store), ``writer`` (group commit), ``sink`` (the Decider's
``DecisionSink``), ``source``, ``follow`` and ``verify`` (reading, gaps and checking), ``replay`` (backtests),
``export``, ``columns`` and ``exported`` (the log to Parquet and back, for replays on Spark),
``wiring`` (what ``verdict serve`` opens from its settings).
"""

from engine.audit.errors import AuditCorrupt, AuditError, AuditUnavailable, LogGap
from engine.audit.follow import Gap
from engine.audit.record import GENESIS, Chain, decision_from_record
from engine.audit.segments import FileStore
from engine.audit.sink import AuditSink
from engine.audit.source import LogSource, open_source
from engine.audit.verify import VerifyReport
from engine.audit.writer import GroupCommitWriter

__all__ = [
    "GENESIS",
    "AuditCorrupt",
    "AuditError",
    "AuditSink",
    "AuditUnavailable",
    "Chain",
    "FileStore",
    "Gap",
    "GroupCommitWriter",
    "LogGap",
    "LogSource",
    "VerifyReport",
    "decision_from_record",
    "open_source",
]
