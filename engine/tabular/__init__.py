"""Reading tabular CSV files: the one reader every CSV in Verdict goes through.

``read_rows`` (``reader``) turns bytes into a header and trimmed cells with line numbers
(``read_chunks``: the same, a chunk of rows at a time, for files of any length);
``type_columns`` (``columns``) types each column, parsing numbers by one convention per column
(``numbers``). Training data, outcomes for replay and the bundled data sets all use them.
"""

from engine.tabular.columns import MISSING_MARKERS, MOSTLY_NUMERIC, ColumnType, convert, type_columns
from engine.tabular.numbers import NUMBER_FORMATS, fitting_conventions, parse_number
from engine.tabular.reader import DELIMITERS, RawTable, TableError, read_chunks, read_rows

__all__ = [
    "DELIMITERS", "MISSING_MARKERS", "MOSTLY_NUMERIC", "NUMBER_FORMATS", "ColumnType", "RawTable", "TableError",
    "convert", "fitting_conventions", "parse_number", "read_chunks", "read_rows", "type_columns",
]
