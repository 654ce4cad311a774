"""Reading tabular CSV files: the one reader every CSV in Verdict goes through.

``read_rows`` (``reader``) turns bytes into a header and trimmed cells with line numbers;
``type_columns`` (``columns``) types each column, parsing numbers by one convention per column
(``numbers``). Training data, outcomes for replay and the bundled data sets all use them.
"""

from engine.tabular.columns import MISSING_MARKERS, MOSTLY_NUMERIC, ColumnType, convert, type_columns
from engine.tabular.numbers import NUMBER_FORMATS, fitting_conventions, parse_number
from engine.tabular.reader import DELIMITERS, RawTable, TableError, read_rows

__all__ = [
    "DELIMITERS", "MISSING_MARKERS", "MOSTLY_NUMERIC", "NUMBER_FORMATS", "ColumnType", "RawTable", "TableError",
    "convert", "fitting_conventions", "parse_number", "read_rows", "type_columns",
]
