"""engine.tabular: the one CSV reader (encodings, delimiters, quoting, header, rows) and column typing with numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.tabular import TableError, convert, parse_number, read_rows, type_columns
from engine.tabular.numbers import fitting_conventions


def _write(tmp_path: Path, data: bytes | str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _typed(tmp_path: Path, text: str, **kw) -> dict:
    raw = read_rows(_write(tmp_path, text))
    types = type_columns(raw, **kw)
    return {n: (types[n], convert(raw.column(n), types[n])) for n in raw.header}


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("cell", "convention", "value"),
    [
        ("1234.5", "plain", 1234.5), ("-0.25", "plain", -0.25), (".5", "plain", 0.5), ("1e-4", "plain", 1e-4),
        ("1,234.5", "plain", None), ("inf", "plain", None), ("nan", "plain", None), ("1_000", "plain", None),
        ("1e999", "plain", None),
        ("1,234.56", "thousands_comma", 1234.56), ("12,345", "thousands_comma", 12345.0),
        ("1234.5", "thousands_comma", 1234.5), ("1,23.5", "thousands_comma", None), ("1234,567", "thousands_comma", None),
        ("1.234,56", "decimal_comma", 1234.56), ("1 234,56", "decimal_comma", 1234.56),
        ("1\u00a0234,5", "decimal_comma", 1234.5), ("1234,56", "decimal_comma", 1234.56),
        ("1.234", "decimal_comma", 1234.0), ("1.5", "decimal_comma", None), ("1.234 567,8", "decimal_comma", None),
    ],
)
def test_parse_number_under_each_convention(cell: str, convention: str, value: float | None) -> None:
    """Each convention reads its own spelling and refuses the others' (and inf, nan, overflow)."""
    assert parse_number(cell, convention) == value


def test_fitting_conventions_lists_every_reading() -> None:
    """"1,234" fits both separator conventions with different values; plain numbers fit plain."""
    fits = fitting_conventions(["1,234", "17"])
    assert fits == {"thousands_comma": [1234.0, 17.0], "decimal_comma": [1.234, 17.0]}
    assert "plain" in fitting_conventions(["1.5", "2"])


# ---------------------------------------------------------------- column typing


def test_a_few_thousands_separators_keep_a_column_numeric(tmp_path: Path) -> None:
    """Five "7,860.20" cells among plain numbers: the column is numeric (thousands_comma) with the right values."""
    rows = "\n".join(f"{i}.5,{'x' if i % 2 else 'y'}" for i in range(100))
    t = _typed(tmp_path, f'amount,k\n{rows}\n"7,860.20",x\n')
    ctype, values = t["amount"]
    assert (ctype.kind, ctype.number_format, ctype.problem) == ("numeric", "thousands_comma", None)
    assert values[0] == 0.5 and values[-1] == 7860.2


def test_decimal_commas_and_the_file_convention_decide_ambiguous_cells(tmp_path: Path) -> None:
    """In a file whose numbers use decimal commas, "1.234" in another column is 1234, and ";" is the delimiter."""
    t = _typed(tmp_path, "price;units;name\n1,5;1.234;a\n2,25;2.500;b\n10;7;c\n")
    assert t["price"][0].number_format == "decimal_comma" and t["price"][1] == [1.5, 2.25, 10.0]
    assert t["units"][0].number_format == "decimal_comma" and t["units"][1] == [1234.0, 2500.0, 7.0]
    assert t["name"][0].kind == "categorical"


def test_ambiguous_numbers_are_a_problem_unless_the_format_is_given(tmp_path: Path) -> None:
    """A column of only "1,234"-like cells is refused as ambiguous; number_format decides it."""
    text = 'n\n"1,234"\n"2,500"\n17\n'
    ctype, _ = _typed(tmp_path, text)["n"]
    assert ctype.problem_code == "number_ambiguous" and "'n'" in ctype.problem
    ctype, values = _typed(tmp_path, text, number_format="thousands_comma")["n"]
    assert ctype.kind == "numeric" and values == [1234.0, 2500.0, 17.0]


def test_mostly_numbers_is_refused_naming_the_cells(tmp_path: Path) -> None:
    """A column with 95% numbers and a few words is a problem naming the column, the count and the lines."""
    body = "\n".join(str(i) for i in range(95)) + "\nabout 5\n" + "\n".join(["unknown"] * 4)
    ctype, _ = _typed(tmp_path, f"amount\n{body}\n")["amount"]
    assert ctype.kind == "categorical" and ctype.problem_code == "column_mixed"
    assert "95 of 100 cells are numbers" in ctype.problem and "line 97 'about 5'" in ctype.problem
    ctype, _ = _typed(tmp_path, f"amount\n{body}\n", categorical=["amount"])["amount"]
    assert ctype.problem is None and ctype.kind == "categorical"


def test_half_numbers_is_categorical(tmp_path: Path) -> None:
    """A code column that is half numbers is an ordinary categorical, no problem."""
    ctype, values = _typed(tmp_path, "code\n1\nA\n2\nB\n")["code"]
    assert (ctype.kind, ctype.problem) == ("categorical", None) and values == ["1", "A", "2", "B"]


def test_na_markers_are_missing_only_in_numeric_columns(tmp_path: Path) -> None:
    """NA, n/a, null, - are missing in a numeric column (and counted); "none" stays a category in a text column."""
    t = _typed(tmp_path, "x,other\n1,none\nNA,bank\nn/a,none\n-,stores\n2.5,none\n")
    assert t["x"][0].kind == "numeric" and t["x"][0].missing_markers == 3
    assert t["x"][1] == [1.0, None, None, None, 2.5]
    assert t["other"][1] == ["none", "bank", "none", "stores", "none"]


def test_booleans_any_case(tmp_path: Path) -> None:
    """yes/no and true/false in any case are booleans."""
    t = _typed(tmp_path, "a,b\nYes,TRUE\nno,false\n,True\n")
    assert t["a"][1] == [True, False, None] and t["b"][1] == [True, False, True]


# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("name,x\ncafé,1\n".encode(), "utf-8"),
        (b"\xef\xbb\xbf" + "name,x\ncafé,1\n".encode(), "utf-8-sig"),
        ("name,x\ncafé,1\n".encode("cp1252"), "cp1252"),
        ("name,x\ncafé,1\n".encode("utf-16"), "utf-16"),
        (b"name,x\ncaf\xe9\x81,1\n", "latin-1"),
    ],
)
def test_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    """UTF-8 with or without BOM, UTF-16 with BOM, cp1252, then latin-1: header clean, é read right."""
    raw = read_rows(_write(tmp_path, data))
    assert raw.encoding == encoding and raw.header == ("name", "x")
    assert raw.rows[0][0].startswith("café")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    """Comma, semicolon, tab and pipe files read as the same table (a comma inside a cell does not fool it)."""
    text = delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join(["1", "x,y" if delimiter != "," else '"x,y"', "3"]) + "\n"
    raw = read_rows(_write(tmp_path, text))
    assert raw.delimiter == delimiter and raw.header == ("a", "b", "c") and raw.rows == (("1", "x,y", "3"),)


def test_quoting_blank_lines_and_line_numbers(tmp_path: Path) -> None:
    """Quoted delimiters, doubled quotes and line breaks; blank rows skipped; each row keeps its first line."""
    raw = read_rows(_write(tmp_path, ' a , b \n\n1, "x, ""y"""\n"2","multi\nline"\n\n3,  \n'))
    assert raw.header == ("a", "b")
    assert raw.rows == (("1", 'x, "y"'), ("2", "multi\nline"), ("3", None))
    assert raw.lines == (3, 4, 7)
    assert raw.where(2).endswith("d.csv:7")


def test_trailing_delimiter_is_tolerated(tmp_path: Path) -> None:
    """A trailing delimiter on every line (an unnamed, empty last column) is dropped."""
    raw = read_rows(_write(tmp_path, "a,b,\n1,2,\n3,4,\n"))
    assert raw.header == ("a", "b") and raw.rows == (("1", "2"), ("3", "4"))


@pytest.mark.parametrize(
    ("text", "code", "needle"),
    [
        ("", "data_empty", "no header"),
        ("a,b\n", "data_empty", "no data rows"),
        ("a,b\n1,2\n3,4,5\n", "data_ragged", "d.csv:3: this row has 3 cells, the header has 2"),
        ("a,b,a\n1,2,3\n", "data_bad_header", "duplicate column names: a"),
        ("a,,b\n1,2,3\n", "data_bad_header", "column 2 has no name"),
        ("a,b\n1,\x002\n", "data_unreadable", "NUL"),
    ],
)
def test_refusals_name_file_line_and_column(tmp_path: Path, text: str, code: str, needle: str) -> None:
    """Empty files, ragged rows, bad headers and binary files are refused with a code and where."""
    with pytest.raises(TableError) as err:
        read_rows(_write(tmp_path, text))
    assert err.value.code == code and needle in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is data_missing naming the path."""
    with pytest.raises(TableError, match="no such file") as err:
        read_rows(tmp_path / "nope.csv")
    assert err.value.code == "data_missing"


def test_limit_reads_only_the_first_rows(tmp_path: Path) -> None:
    """limit stops after that many data rows (a ragged row further down is never read)."""
    raw = read_rows(_write(tmp_path, "a\n1\n2\n3\n4,5,6\n"), limit=2)
    assert raw.rows == (("1",), ("2",))


def test_a_one_column_file_keeps_commas_in_its_cells(tmp_path: Path) -> None:
    """A file whose header has one name is one column: "Smith, John" is one cell, not a ragged row."""
    raw = read_rows(_write(tmp_path, "name\nSmith, John\nDoe\n"))
    assert raw.header == ("name",) and raw.rows == (("Smith, John",), ("Doe",))


def test_mixed_column_is_judged_by_its_best_convention(tmp_path: Path) -> None:
    """Thousands-comma numbers plus two words: the problem names the words, not the separated numbers."""
    body = "\n".join(f'"{i},500.25"' for i in range(1, 40)) + "\nn.a.\nabout 3\n"
    ctype, _ = _typed(tmp_path, f"amount\n{body}")["amount"]
    assert ctype.problem_code == "column_mixed" and "(thousands_comma) but 2 are not" in ctype.problem
    assert "'n.a.'" in ctype.problem and "500.25" not in ctype.problem


def test_a_column_of_only_na_cells_is_text_without_a_problem(tmp_path: Path) -> None:
    """A column holding only NA markers is categorical with no problem (nothing to call mixed)."""
    ctype, values = _typed(tmp_path, "x,y\nNA,1\nNA,2\n")["x"]
    assert (ctype.kind, ctype.problem) == ("categorical", None) and values == ["NA", "NA"]
