"""The batch on Apache Spark: the same compiled flows, decided in executors with ``mapInPandas``.

For data teams (see docs/batch.md)::

    from pyspark.sql import SparkSession
    from engine.batch import spark as verdict_spark

    session = SparkSession.builder.getOrCreate()
    df = session.read.parquet("applications.parquet")
    decisions = verdict_spark.decide(df, "credit_application", version="1", root="/path/to/policy-root")
    decisions.write.parquet("decisions.parquet")

How it runs. The driver loads the policy root once (``load_decider``: lint and policy tests, as a
server starts) to check the flow and version and to fix the output schema; it packs the root's
``policies/``, ``rules/``, ``model_artifacts/`` and ``lists/`` into one tarball named by its SHA-256 and ships
it to the executors once with ``SparkContext.addFile``. Each executor's Python worker extracts and
loads it the first time a task needs it and keeps the loaded flows in a process-wide cache keyed by
that hash (``_decider``): never per row, nor per batch. Each Arrow batch of rows (at most
``spark.sql.execution.arrow.maxRecordsPerBatch``, 10,000 by default) goes through the same core
as ``verdict batch --engine local`` (``engine.batch.core.decide_rows``), so the answers are the same
bit for bit (tests compare them, and with the gRPC service).

Traps. The executors need Python with this package, ``pyarrow`` and ``pandas`` (the ``[spark]``
extra) and Java 17 (``openjdk-17-jre-headless``). Spark worker reuse
(``spark.python.worker.reuse``, on by default) is what keeps the cache alive between tasks: with
it off every task loads the flows again. Output rows keep the order of the input within each
partition; across partitions Spark gives no order (name an ``id_column`` to join back).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.batch.core import decide_columns
from engine.batch.records import OutputColumns, to_columns
from engine.batch.run import Summary, flow_fields, paused_gc, resolver
from engine.batch.stateful import refuse_on_spark
from engine.batch.table import (
    ColumnPlan,
    InputTable,
    TableFormatError,
    Writer,
    convert_column,
    match_columns,
    table_format,
)
from engine.policy.documents import ROOT_DIRS

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from engine.runtime.service import Decider

__all__ = ["ROOT_DIRS", "csv_plans", "decide", "decide_file_spark", "pack_root", "read_table", "session", "split_by_size"]

#: Input bytes per partition at most when reading a file (~65,000 credit rows of CSV): a partition of
#: 500,000 rows' decisions overflowed a 1 GiB driver heap in toLocalIterator (measured, 1,000,000 rows).
MAX_PARTITION_BYTES = 4 << 20

_cache: dict[str, Decider] = {}  # root hash -> loaded flows, one per executor process
_cache_lock = threading.Lock()


def pack_root(root: Path) -> tuple[bytes, str]:
    """The policy root's decision files as a reproducible .tar.gz and its SHA-256 (hex).

    Reproducible: members sorted, owners and times zeroed, so the same files give the same hash.
    Raises FileNotFoundError when the root has no ``policies/``.
    """
    root = Path(root)
    if not (root / "policies").is_dir():
        raise FileNotFoundError(f"{root}: no policies/ directory")
    buf = io.BytesIO()
    # gzip's header holds a time: zeroed too (tarfile's "w:gz" writes the current one)
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for top in ROOT_DIRS:
            base = root / top
            if not base.is_dir():
                continue
            for path in sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _decider(name: str, digest: str) -> Decider:
    """The flows of the shipped root ``name`` (hash ``digest``), loaded once per process."""
    found = _cache.get(digest)
    if found is not None:
        return found
    with _cache_lock:
        found = _cache.get(digest)
        if found is None:
            from pyspark import SparkFiles

            from engine.runtime.service import load_decider

            target = Path(tempfile.gettempdir()) / f"verdict-root-{digest[:16]}-{os.getpid()}"
            with tarfile.open(SparkFiles.get(name), "r:gz") as tar:
                tar.extractall(target, filter="data")
            found = _cache[digest] = load_decider(target)
    return found


def _spark_schema(names: Sequence[str], float_columns: frozenset[str]) -> str:
    return ", ".join(f"`{n}` {'double' if n in float_columns else 'bigint' if n == 'row' else 'string'}" for n in names)


def _columns_of(pdf: pd.DataFrame, used: Mapping[str, str], plans: Mapping[str, ColumnPlan] | None) -> dict[str, list[Any]]:
    """A pandas batch as the batch core's columns: renamed to fields, missing values (None, NaN, NaT) as None,
    text cells typed by ``plans`` as ``verdict batch`` types a CSV's (``convert_column``)."""
    import pandas as pd

    out: dict[str, list[Any]] = {}
    for column, name in used.items():
        values = [None if v is None or (isinstance(v, float) and v != v) or v is pd.NaT else v for v in pdf[column].tolist()]
        plan = plans.get(column) if plans is not None else None
        if plan is not None and all(v is None or isinstance(v, str) for v in values):
            values = convert_column([v.strip() or None if v is not None else None for v in values], plan)
        elif plan is not None:  # text among typed values: each text cell as a CSV's
            values = [convert_column([v.strip() or None], plan)[0] if isinstance(v, str) else v for v in values]
        out[name] = values
    return out


def decide(
    df: DataFrame,
    flow: str,
    version: str = "",
    *,
    root: str | Path,
    id_column: str | None = None,
    csv_plans: Sequence[ColumnPlan] | None = None,
    carry: Sequence[str] = (),
) -> DataFrame:
    """The decisions of every row of ``df``, as a DataFrame (lazy, like any Spark transformation).

    Columns are those of ``engine.batch.records`` but ``row``: ``id`` (when ``id_column`` names a
    column of ``df``), action, reason_codes, reasons, fired_rules, one ``score_<output>`` double
    per model output, flow, version, revision, route, error_code, error; then each column of
    ``carry`` as text (e.g. a backtest's outcome column). ``df``'s columns feed the flow's fields by
    name (exactly, else ignoring case); the others are not sent. Typed columns (numbers, booleans,
    strings) are sent as they are; ``csv_plans`` types text columns as ``verdict batch`` types a
    CSV's cells. Without ``version`` rows are routed as online. Raises FlowNotFound /
    VersionNotFound / FlowUnavailable, PolicyError for a broken root, TableFormatError when
    ``id_column`` or a ``carry`` column is not in ``df``, or StatefulBatchError when a version
    computes stateful features (decided in event-time order by ``--engine local`` only), at once
    (in the driver).
    """
    from engine.runtime.service import load_decider

    missing = [c for c in (*([id_column] if id_column else []), *carry) if c not in df.columns]
    if missing:
        raise TableFormatError(f"no column {', '.join(map(repr, missing))}; columns: {', '.join(df.columns)}")
    root = Path(root).resolve()
    local = load_decider(root)  # in the driver: fail fast, and the flow's fields and outputs
    fields, versions = flow_fields(local, flow, version)
    refuse_on_spark(flow, versions)
    columns = OutputColumns.of(versions, id_column)
    used, _ = match_columns(df.columns, fields, id_column)
    names = tuple(n for n in columns.names if n != "row")
    schema = ", ".join([_spark_schema(names, columns.float_columns), *(f"`{c}` string" for c in carry)])
    name, digest = _ship(df.sparkSession, root)
    plans = {p.column: p for p in csv_plans} if csv_plans is not None else None
    selected = list(dict.fromkeys([*used, *([id_column] if id_column else []), *carry]))
    whole = {c for c in carry if df.schema[c].dataType.typeName() in _WHOLE}  # pandas gives them as floats with nulls

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        resolve = resolver(_decider(name, digest), flow, version)
        for pdf in batches:
            with paused_gc():
                results = decide_columns(resolve, _columns_of(pdf, used, plans), len(pdf))
                ids = pdf[id_column].tolist() if id_column else None
                data = to_columns(columns, 0, results, ids)
            del data["row"]
            out = pd.DataFrame(data, columns=list(data))
            for c in carry:
                out[c] = [_carried(v, c in whole) for v in pdf[c].tolist()]
            yield out

    return df.select(*[f"`{c}`" for c in selected]).mapInPandas(run, schema)


def _absent(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


_WHOLE = frozenset({"byte", "short", "integer", "long"})


def _carried(v: Any, whole: bool) -> str | None:
    """A carried cell as the text of the value ``--engine local`` reads (``str`` of the Python value):
    an integer column's cells as integers even where pandas made them floats (a column with nulls)."""
    import pandas as pd

    if _absent(v) or v is pd.NA or v is pd.NaT:
        return None
    if whole:
        return str(int(v))
    return str(v.item() if hasattr(v, "item") else v)


def _ship(session: SparkSession, root: Path) -> tuple[str, str]:
    """Ship the packed root to the executors once per session and hash; its file name and hash."""
    data, digest = pack_root(root)
    # Not named *.tar.gz: SparkContext.addFile unpacks such names itself (deprecated behaviour).
    tar_path = Path(tempfile.gettempdir()) / f"verdict-root-{digest[:16]}.vroot"
    if not tar_path.exists():
        tar_path.write_bytes(data)
    key = f"verdict.shipped.{digest[:16]}"
    if not session.conf.get(key, ""):
        session.sparkContext.addFile(str(tar_path))
        session.conf.set(key, "1")
    return tar_path.name, digest


def csv_plans(source: Path, fields: Mapping[str, Any], id_column: str | None) -> list[ColumnPlan] | None:
    """How ``verdict batch`` types each column of a CSV (found on its first chunk); None for Parquet."""
    if table_format(Path(source)) != "csv":
        return None
    probe = InputTable(Path(source), fields, id_column, 10_000)
    next(probe.chunks(), None)
    return probe.plans


def split_by_size(spark: SparkSession, size: int) -> None:
    """Set the session's ``spark.sql.files.maxPartitionBytes`` for input of ``size`` bytes: at least
    one partition per core (1 MiB to ``MAX_PARTITION_BYTES`` each)."""
    # Split even a small file into a partition per core (file order is kept: a split is a byte
    # range), else one task on one core decides it all; and a big one into partitions of at most
    # MAX_PARTITION_BYTES, whose decisions the driver's JVM holds at once (toLocalIterator).
    slots = max(1, spark.sparkContext.defaultParallelism)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(min(MAX_PARTITION_BYTES, max(1 << 20, size // slots + 1))))


def read_table(spark: SparkSession, source: Path, fields: Mapping[str, Any], id_column: str | None) -> DataFrame:
    """``source`` as a DataFrame: Parquet as it is; CSV as text with the delimiter our reader finds
    (cells trimmed, empty as null; typed later by ``csv_plans``). The CSV must be UTF-8. Sets the
    session's ``spark.sql.files.maxPartitionBytes`` so the file is split into at least one partition
    per core (1 MiB to ``MAX_PARTITION_BYTES`` each), in file order."""
    source = Path(source)
    split_by_size(spark, source.stat().st_size if source.exists() else 0)
    if table_format(source) == "parquet":
        return spark.read.parquet(str(source))
    from engine.tabular import read_chunks

    sep = next(read_chunks(source, size=1)).delimiter
    return spark.read.csv(str(source), header=True, sep=sep, inferSchema=False, encoding="UTF-8",
                          ignoreLeadingWhiteSpace=True, ignoreTrailingWhiteSpace=True)


def session(master: str = "local[2]", app: str = "verdict-batch") -> SparkSession:
    """A Spark session for the command line (``--master``; Arrow batches of 10,000 rows).

    Python workers run this interpreter (``sys.executable``, which has this package) unless
    ``PYSPARK_PYTHON`` names another one (it is set to it in this process's environment).
    """
    import sys

    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master).appName(app)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
        .config("spark.ui.enabled", "false")
    )
    # PySpark starts its workers with PYSPARK_PYTHON (read when the context starts), "python3" if unset.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate()


# Long (67 lines): open, decide, stream the rows out in bounded buffers, close: each step a few lines, with the
# session and the writer closed in nested finally blocks (owned by the batch work; issue 13 lists it).
def decide_file_spark(
    root: Path,
    flow: str,
    source: Path,
    dest: Path,
    *,
    version: str = "",
    id_column: str | None = None,
    master: str = "local[2]",
    spark: SparkSession | None = None,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """``verdict batch --engine spark``: read ``source`` with Spark, decide with ``decide``, write ``dest``.

    CSV input is read by Spark as text with the delimiter and column types our CSV reader finds on
    the first chunk (so cells are typed as ``--engine local`` types them; the file must be UTF-8);
    the decisions come back to the driver partition by partition (``toLocalIterator``) and are
    written as one CSV or Parquet file, rows numbered in input order. Without ``spark`` the active
    session is used, else one on ``master`` is started and stopped at the end. Raises as ``decide`` and ``decide_file`` do.
    """
    import time

    from engine.runtime.service import load_decider

    source, dest = Path(source), Path(dest)
    table_format(source)
    table_format(dest)
    began = time.monotonic()
    local = load_decider(Path(root))
    fields, versions = flow_fields(local, flow, version)
    refuse_on_spark(flow, versions)  # before a session starts
    plans = csv_plans(source, fields, id_column)
    own = False
    if spark is None:
        from pyspark.sql import SparkSession

        own = SparkSession.getActiveSession() is None  # stop only a session started here
        spark = session(master)
    try:
        df = read_table(spark, source, fields, id_column)
        decisions = decide(df, flow, version, root=root, id_column=id_column, csv_plans=plans)
        columns = OutputColumns.of(versions, id_column)
        writer = Writer(dest, columns.names, columns.float_columns)
        summary = Summary(flow)
        summary.ignored_columns = match_columns(df.columns, fields, id_column)[1]
        buf: list[dict[str, Any]] = []
        n = 0
        try:
            for row in decisions.toLocalIterator(prefetchPartitions=True):
                n += 1
                buf.append({"row": n, **row.asDict()})
                if len(buf) >= 10_000:
                    writer.write(buf)
                    summary.add(buf)
                    buf = []
                    summary.seconds = time.monotonic() - began
                    if progress is not None:
                        progress(summary)
            if buf:
                writer.write(buf)
                summary.add(buf)
        finally:
            writer.close()
    finally:
        if own:
            spark.stop()
    summary.seconds = time.monotonic() - began
    return summary
