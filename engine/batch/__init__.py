"""Decisions in bulk: a table of inputs in, one decision per row out (``verdict batch``).

``decide_rows`` is the pure core (validate and derive each row, score a whole chunk per model at
once, then each row's rules and reasons through the compiled flow); ``table`` reads CSV and
Parquet in chunks and writes the decisions; ``run`` streams a file through both; ``spark`` runs
the same core on Apache Spark with ``mapInPandas``. Batch decisions are not written to the
decision log. See docs/batch.md.
"""

from engine.batch.core import Decided, Failed, RowResult, decide_rows
from engine.batch.records import OutputColumns, to_record

__all__ = ["Decided", "Failed", "OutputColumns", "RowResult", "decide_rows", "to_record"]
