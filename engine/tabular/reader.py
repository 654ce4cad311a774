"""The one CSV reader: bytes to a header and rows of trimmed cells, with file:line for every row.

What it accepts (``read_rows``):

- **Encoding**: UTF-8 (with or without a byte-order mark), UTF-16 with a byte-order mark, and,
  when the bytes are not UTF-8, Windows-1252 (cp1252, what Excel writes on Western Windows), then
  Latin-1 (which decodes any byte). A file with NUL bytes and no UTF-16 mark is refused as binary.
- **Delimiter**: sniffed among ``,`` ``;`` TAB and ``|`` on the first ``SNIFF_ROWS`` lines: the one
  that gives the header more than one column and every sampled row as many cells as the header
  (the widest such, ties in that order); when none splits the header, the file is one column
  (commas in its cells are text).
- **Quoting**: RFC 4180 double quotes (``"a, b"``, a doubled quote inside quotes, line breaks inside quotes);
  spaces after a delimiter are skipped, so ``1, "2,5"`` is two cells.
- **Header**: the first non-blank row. Names are trimmed (spaces, a stray byte-order mark);
  trailing unnamed columns whose cells are all empty (a trailing delimiter) are dropped; any other
  unnamed column and duplicate names are refused.
- **Rows**: blank rows are skipped; every cell is trimmed and an empty cell is ``None`` (missing);
  a row with more or fewer cells than the header is refused with its line.

Every refusal is a :class:`TableError` with a stable ``code`` and a message that starts with
``file:line`` where a line applies and names the column where one applies.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.errors import VerdictError

__all__ = [
    "DELIMITERS", "SNIFF_ROWS", "RawTable", "TableError", "decode", "read_chunks", "read_rows", "sniff_delimiter",
]

DELIMITERS = (",", ";", "\t", "|")
ONE_COLUMN = "\x00"  # the "delimiter" of a one-column file: NUL never occurs in a file that is read
SNIFF_ROWS = 50
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class TableError(VerdictError):
    """A CSV file cannot be read as a table; ``code`` says why, the message where (file:line, column)."""

    code = "table_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


@dataclass(frozen=True)
class RawTable:
    """A CSV's header and rows of trimmed text cells (None = empty), each row with its first line number."""

    path: Path
    encoding: str
    delimiter: str
    header: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]
    lines: tuple[int, ...]  # 1-based physical line on which each row starts

    @cached_property
    def _columns(self) -> dict[str, list[str | None]]:
        return {name: list(cells) for name, cells in zip(self.header, zip(*self.rows, strict=True), strict=True)}

    def column(self, name: str) -> list[str | None]:
        """The cells of column ``name``, top to bottom (a shared list: do not modify). KeyError if unknown."""
        return self._columns[name]

    def where(self, row: int) -> str:
        """``file:line`` of data row ``row`` (0-based), for messages."""
        return f"{self.path}:{self.lines[row]}"


def decode(data: bytes, path: Path) -> tuple[str, str]:
    """The text of a file's bytes and the encoding used (see the module docstring for the order)."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise TableError(f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16: {exc}",
                             "data_unreadable") from None
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        data = data[3:]
    if b"\x00" in data:
        raise TableError(f"{path}: contains NUL bytes; not a text CSV file", "data_unreadable")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding), ("utf-8-sig" if bom and encoding == "utf-8" else encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _records(text: str, delimiter: str) -> Any:  # a csv reader (its type is private to _csv)
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True, strict=False)


def _blank(record: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in record)


def sniff_delimiter(text: str, rows: int = SNIFF_ROWS) -> str:
    """The delimiter among ``DELIMITERS`` that splits the first ``rows`` lines into a consistent table."""
    cut = 0
    for _ in range(rows + 1):
        nxt = text.find("\n", cut)
        if nxt < 0:
            cut = len(text)
            break
        cut = nxt + 1
    sample = text[:cut]
    best: tuple[int, float, int] | None = None  # (width if consistent else 0, share consistent, -order)
    choice = ONE_COLUMN
    for order, delimiter in enumerate(DELIMITERS):
        try:
            records = [r for r in _records(sample, delimiter) if not _blank(r)]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        body = records[1:-1] if cut < len(text) and len(records) > 2 else records[1:]  # the last may be cut
        share = sum(len(r) == width for r in body) / len(body) if body else 1.0
        key = (width if share == 1.0 else 0, share, -order)
        if best is None or key > best:
            best, choice = key, delimiter
    return choice


def _clean_name(name: str) -> str:
    return name.replace("\ufeff", "").strip()


def read_rows(path: Path, *, limit: int | None = None) -> RawTable:
    """Read ``path`` into a :class:`RawTable` (at most ``limit`` data rows). Raises TableError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TableError(f"{path}: no such file", "data_missing") from None
    except OSError as exc:
        raise TableError(f"{path}: cannot read: {exc.strerror or exc}", "data_unreadable") from None
    text, encoding = decode(data, path)
    delimiter = sniff_delimiter(text)
    header: tuple[str, ...] = ()
    rows: list[tuple[str | None, ...]] = []
    lines: list[int] = []
    for header, row, line in _parse(path, _records(text, delimiter), delimiter):  # noqa: B007 - header is read after the loop
        rows.append(row)
        lines.append(line)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise TableError(f"{path}: the file has a header but no data rows", "data_empty")
    return RawTable(path, encoding, delimiter, header, tuple(rows), tuple(lines))


def read_chunks(path: Path, *, size: int = 10_000) -> Iterator[RawTable]:
    """Read ``path`` as :func:`read_rows` does, as successive tables of at most ``size`` rows.

    Memory is flat in the file's length: the encoding is found in one streaming pass (the same
    order as ``decode``), the delimiter is sniffed on the first ``SNIFF_ROWS`` lines, and the rows
    are parsed as they are read. Each chunk carries the file's header and the rows' own line
    numbers. Raises TableError as ``read_rows`` does (a fault in a later row is raised when its
    chunk is reached, after the earlier chunks were yielded).
    """
    path = Path(path)
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    encoding = _stream_encoding(path)
    with open(path, encoding=encoding, newline="") as f:
        head = "".join(itertools.islice(f, SNIFF_ROWS + 1))
        delimiter = sniff_delimiter(head)
        lines_in = itertools.chain(io.StringIO(head, newline=""), f)
        reader = csv.reader(lines_in, delimiter=delimiter, skipinitialspace=True, strict=False)
        rows: list[tuple[str | None, ...]] = []
        lines: list[int] = []
        header: tuple[str, ...] = ()
        given = 0
        for header, row, line in _parse(path, reader, delimiter):
            rows.append(row)
            lines.append(line)
            if len(rows) >= size:
                yield RawTable(path, encoding, delimiter, header, tuple(rows), tuple(lines))
                given += len(rows)
                rows, lines = [], []
        if rows:
            yield RawTable(path, encoding, delimiter, header, tuple(rows), tuple(lines))
        elif not given:
            raise TableError(f"{path}: the file has a header but no data rows", "data_empty")


_BLOCK = 1 << 20


def _stream_encoding(path: Path) -> str:
    """The encoding ``decode`` would choose for the file, found block by block (flat memory)."""
    try:
        with open(path, "rb") as f:
            start = f.read(3)
            if start.startswith(_UTF16_BOMS):
                return "utf-16"
            bom = start == b"\xef\xbb\xbf"
            for encoding in ("utf-8", "cp1252"):
                f.seek(3 if bom else 0)
                decoder = codecs.getincrementaldecoder(encoding)()
                try:
                    while block := f.read(_BLOCK):
                        if b"\x00" in block:
                            raise TableError(f"{path}: contains NUL bytes; not a text CSV file", "data_unreadable")
                        decoder.decode(block)
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    continue
                return "utf-8-sig" if bom and encoding == "utf-8" else encoding
            return "latin-1"
    except FileNotFoundError:
        raise TableError(f"{path}: no such file", "data_missing") from None
    except OSError as exc:
        raise TableError(f"{path}: cannot read: {exc.strerror or exc}", "data_unreadable") from None


def _parse(path: Path, reader: Any, delimiter: str) -> Iterator[tuple[tuple[str, ...], tuple[str | None, ...], int]]:
    """(header, row of trimmed cells, first line) for every data row; checks the header and row widths.

    Raises TableError for an empty file, a bad header, a ragged row or invalid CSV.
    """
    header: tuple[str, ...] | None = None
    width = last_line = 0
    try:
        for record in reader:
            start, last_line = last_line + 1, reader.line_num
            cells = [c.strip() for c in record]
            if not any(cells):  # a blank line (``_blank``), found on the cells stripped once for the row
                continue
            if header is None:
                names = [_clean_name(n) for n in record]
                while len(names) > 1 and not names[-1]:
                    names.pop()
                if not any(names):
                    break  # reported below as an empty file
                _check_header(path, start, names)
                header, width = tuple(names), len(names)
                continue
            if len(cells) > width and not any(cells[width:]):
                cells = cells[:width]  # a trailing delimiter, as under an unnamed trailing column
            if len(cells) != width:
                raise TableError(
                    f"{path}:{start}: this row has {len(cells)} cells, the header has {width} "
                    f"(delimiter {_show(delimiter)})", "data_ragged",
                )
            yield header, tuple([c or None for c in cells]), start
    except csv.Error as exc:
        raise TableError(f"{path}:{reader.line_num}: not valid CSV: {exc}", "data_unreadable") from None
    if header is None or not any(header):
        raise TableError(f"{path}: the file is empty (no header row)", "data_empty")


def _show(delimiter: str) -> str:
    return {"\t": "TAB", ONE_COLUMN: "none: one column"}.get(delimiter, repr(delimiter))


def _check_header(path: Path, line: int, header: Sequence[str]) -> None:
    problems = [f"column {j + 1} has no name" for j, name in enumerate(header) if not name]
    dupes = sorted({n for n in header if n and header.count(n) > 1})
    if dupes:
        problems.append(f"duplicate column names: {', '.join(dupes)}")
    if problems:
        raise TableError(f"{path}:{line}: bad header: {'; '.join(problems)}", "data_bad_header")
