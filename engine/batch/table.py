"""Tables in and out of a batch: CSV and Parquet read in chunks, decisions written as they come.

Input. CSV goes through the project's one CSV reader (``engine.tabular.read_chunks``: encoding,
delimiter, quoting and header as ``read_rows``) and Parquet through pyarrow's ``iter_batches``;
either way at most ``size`` rows are held at a time, so memory is flat in the file's length.
Columns are matched to the flow's input fields by name, exactly or else ignoring case
(``Seniority`` feeds ``seniority``); the other columns (labels, ids, outcomes) are not sent and
are listed in ``InputTable.ignored``. A CSV cell is read by its field's type: numbers under the
column's number convention (``engine.tabular.numbers``, found on the first chunk), ``NA``-like
markers as missing, ``yes``/``true``/``no``/``false`` for booleans, text for text; a cell that
does not read as its type is sent as text, so that row fails validation naming the field, as the
online service would. An empty cell, a Parquet null and a NaN are a missing value (left out).

Output. ``Writer`` writes CSV (pyarrow's CSV writer) or Parquet (one row group per chunk) with
the columns of ``engine.batch.records``; the format is chosen by the file's suffix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import VerdictError
from engine.policy.schema import FieldSpec
from engine.tabular import MISSING_MARKERS, fitting_conventions, parse_number, read_chunks, type_columns

__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "Chunk", "ColumnPlan", "InputTable", "TableFormatError", "Writer",
           "convert_cell", "convert_column", "table_format"]

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_TRUE = frozenset({"yes", "true"})
_FALSE = frozenset({"no", "false"})


class TableFormatError(VerdictError):
    """A batch input or output file is not a format the batch reads or writes, or cannot be read."""

    code = "table_format"


def table_format(path: Path) -> str:
    """``csv`` or ``parquet`` by the file's suffix; raises TableFormatError for another suffix."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise TableFormatError(
        f"{path}: unknown table format {suffix or '(no suffix)'}; use one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


@dataclass(frozen=True)
class ColumnPlan:
    """How one input column feeds the flow: its field, the field's type and the number convention."""

    column: str
    field: str
    kind: str  # the field's type: integer | number | boolean | string | category
    number_format: str = "plain"


def convert_cell(cell: str | None, plan: ColumnPlan) -> Any:
    """A CSV cell as its field's value: None when missing; the text itself when it does not read as the type."""
    if cell is None:
        return None
    if plan.kind in ("integer", "number"):
        value = parse_number(cell, plan.number_format)
        if value is not None:
            return value
        return None if cell.lower() in MISSING_MARKERS else cell
    if plan.kind == "boolean":
        low = cell.lower()
        return True if low in _TRUE else False if low in _FALSE else cell
    return cell


def convert_column(cells: Sequence[str | None], plan: ColumnPlan) -> list[Any]:
    """``convert_cell`` of every cell of a column (the same values), a column at a time.

    A number column whose cells all read under its convention is parsed in a few C-level passes
    (``engine.tabular.fitting_conventions``: the same regular expression and ``float`` as
    ``parse_number``); a column with a cell that does not goes cell by cell.
    """
    if plan.kind in ("integer", "number"):
        present = [c for c in cells if c is not None]
        parsed = fitting_conventions(present, (plan.number_format,)).get(plan.number_format)
        if parsed is None:
            return [convert_cell(c, plan) for c in cells]
        if len(present) == len(cells):
            return list(parsed)
        it = iter(parsed)
        return [None if c is None else next(it) for c in cells]
    if plan.kind == "boolean":
        return [None if c is None else _BOOLEANS.get(c.lower(), c) for c in cells]
    return list(cells)


_BOOLEANS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def match_columns(header: Sequence[str], fields: Mapping[str, FieldSpec], id_column: str | None) -> tuple[dict[str, str], list[str]]:
    """(column -> field) for the columns that feed a field, and the ignored columns (in header order)."""
    by_fold: dict[str, list[str]] = {}
    for name in fields:
        by_fold.setdefault(name.casefold(), []).append(name)
    used: dict[str, str] = {}
    ignored: list[str] = []
    exact = set(header)
    for column in header:
        if column == id_column:
            continue
        if column in fields:
            used[column] = column
            continue
        candidates = by_fold.get(column.casefold(), [])
        if len(candidates) == 1 and candidates[0] not in exact:
            used[column] = candidates[0]
        else:
            ignored.append(column)
    return used, ignored


@dataclass
class Chunk:
    """Consecutive input rows: the first one's 1-based position, the inputs as columns (field -> one
    value per row, None: missing), the number of rows and the id column's values (``carried``: the
    values of the other columns asked for, e.g. a backtest's outcome column)."""

    start: int
    columns: dict[str, list[Any]]
    n: int
    ids: list[Any]
    carried: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The raw inputs, one dict per row (missing values left out), as a JSON client would send them."""
        items = list(self.columns.items())
        return [{k: column[i] for k, column in items if column[i] is not None} for i in range(self.n)]


@dataclass
class InputTable:
    """A batch input file, read chunk by chunk (``chunks``); ``ignored`` is known after the first chunk."""

    path: Path
    fields: Mapping[str, FieldSpec]
    id_column: str | None = None
    size: int = 10_000
    carry: tuple[str, ...] = ()  # columns whose values each chunk carries as they are (not sent)
    ignored: list[str] = field(default_factory=list)
    plans: list[ColumnPlan] = field(default_factory=list)

    def chunks(self) -> Iterator[Chunk]:
        """The input's rows, ``size`` at a time. Raises TableFormatError (or the CSV reader's TableError)."""
        if table_format(self.path) == "csv":
            return self._csv_chunks()
        return self._parquet_chunks()

    def _check_id(self, header: Sequence[str]) -> None:
        if self.id_column is not None and self.id_column not in header:
            raise TableFormatError(f"{self.path}: no id column {self.id_column!r}; columns: {', '.join(header)}")
        missing = [c for c in self.carry if c not in header]
        if missing:
            raise TableFormatError(f"{self.path}: no column {', '.join(map(repr, missing))}; columns: {', '.join(header)}")

    def _csv_chunks(self) -> Iterator[Chunk]:
        start = 1
        for raw in read_chunks(self.path, size=self.size):
            if not self.plans:
                self._check_id(raw.header)
                used, self.ignored = match_columns(raw.header, self.fields, self.id_column)
                text = [c for c, f in used.items() if self.fields[f].type in ("string", "category", "boolean")]
                ctypes = type_columns(raw, categorical=[*text, *self.ignored, *([self.id_column] if self.id_column else [])])
                self.plans = [
                    ColumnPlan(c, f, self.fields[f].type, ctypes[c].number_format or "plain") for c, f in used.items()
                ]
            columns = {plan.field: convert_column(raw.column(plan.column), plan) for plan in self.plans}  # one column a field
            n = len(raw.rows)
            ids = list(raw.column(self.id_column)) if self.id_column is not None else []
            carried = {c: list(raw.column(c)) for c in self.carry}
            yield Chunk(start, columns, n, ids, carried)
            start += n

    def _parquet_chunks(self) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise TableFormatError(f"{self.path}: no such file") from None
        except Exception as exc:  # noqa: BLE001 - pyarrow's ArrowInvalid and kin: not a Parquet file
            raise TableFormatError(f"{self.path}: not a readable Parquet file: {exc}") from None
        header = pf.schema_arrow.names
        self._check_id(header)
        used, self.ignored = match_columns(header, self.fields, self.id_column)
        self.plans = [ColumnPlan(c, f, self.fields[f].type) for c, f in used.items()]
        wanted = list(dict.fromkeys([*used, *([self.id_column] if self.id_column else []), *self.carry]))
        start = 1
        for batch in pf.iter_batches(batch_size=self.size, columns=wanted):
            data = batch.to_pydict()
            n = batch.num_rows
            columns = {name: [None if _missing(v) else v for v in data[column]] for column, name in used.items()}
            ids = data[self.id_column] if self.id_column else []
            yield Chunk(start, columns, n, ids, {c: data[c] for c in self.carry})
            start += n


class Writer:
    """Writes output records (``engine.batch.records``) to CSV or Parquet as they come; ``close`` ends the file."""

    def __init__(self, path: Path, names: Sequence[str], float_columns: frozenset[str]) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.format = table_format(self.path)
        types = {"row": pa.int64()}
        self.schema = pa.schema([(n, types.get(n, pa.float64() if n in float_columns else pa.string())) for n in names])
        self._pa = pa
        self._writer: Any = None
        pa.array([None], pa.string())  # pyarrow imports pandas on its first array from a list (~1 s): at set-up, not mid-run

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append ``records`` (dicts with every column) to the file, creating it on the first call."""
        self.write_table(self._pa.Table.from_pylist(list(records), schema=self.schema))

    def write_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Append rows given as columns (name -> values, every column of the schema; engine.batch.records.to_columns):
        one ``pyarrow.array`` per column, about a tenth of the cost of ``write`` for the same rows."""
        pa = self._pa
        self.write_table(pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in self.schema], schema=self.schema))

    def write_table(self, table: Any) -> None:
        """Append a ``pyarrow.Table`` of this writer's schema."""
        if self._writer is None:
            self._writer = self._open()
        self._writer.write_table(table)

    def _open(self) -> Any:
        try:
            if self.format == "csv":
                import pyarrow.csv as pcsv

                return pcsv.CSVWriter(str(self.path), self.schema)
            import pyarrow.parquet as pq

            return pq.ParquetWriter(str(self.path), self.schema)
        except OSError as exc:
            raise TableFormatError(f"{self.path}: cannot write: {exc}") from None

    def close(self) -> None:
        """Finish the file (an input with no rows still gets a header / an empty Parquet file)."""
        if self._writer is None:
            self._writer = self._open()
        self._writer.close()
