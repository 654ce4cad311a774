"""Decisions in bulk: a table of inputs in, one decision per row out (``verdict batch``).

``decide_columns`` is the pure core (a chunk's inputs as columns: validated and encoded column by
column, each model scored over the whole chunk at once, each row's rules and reasons through the
compiled flow; ``decide_rows`` takes the same rows as dicts); ``table`` reads CSV and Parquet in
chunks and writes the decisions; ``run`` streams a file through both (``--jobs`` worker
processes); ``stateful`` decides flows with stateful features in event-time order; ``spark`` runs
the same core on Apache Spark with ``mapInPandas``. Batch decisions are not written to the
decision log. See docs/batch.md.
"""

from engine.batch.core import Decided, Failed, RowResult, decide_columns, decide_rows
from engine.batch.records import OutputColumns, to_columns, to_record

__all__ = ["Decided", "Failed", "OutputColumns", "RowResult", "decide_columns", "decide_rows", "to_columns", "to_record"]
