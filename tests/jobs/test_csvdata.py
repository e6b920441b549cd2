"""CSV as Bulk API 2.0 reads and writes it: dialects, chunked decoding, structural checks, value formatting."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from interlink.errors import ClientInputError
from interlink.jobs.csvdata import CsvFormat, RowWriter, csv_value, data_records, records, scan


def test_records_survive_any_chunking() -> None:
    data = 'Name,Note\n"a, b","line1\nline2 \u2028 é"\nplain,"say ""hi"""\n'.encode()
    expected = [["Name", "Note"], ["a, b", "line1\nline2 \u2028 é"], ["plain", 'say "hi"']]
    for size in (1, 2, 3, 7, len(data)):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert list(records(chunks, CsvFormat())) == expected


@pytest.mark.parametrize(("name", "sep"), [("TAB", "\t"), ("PIPE", "|"), ("SEMICOLON", ";"), ("CARET", "^"),
                                           ("BACKQUOTE", "`")])
def test_every_delimiter(name: str, sep: str) -> None:
    fmt = CsvFormat(name, "CRLF")
    data = f"A{sep}B\r\n1{sep}\"x{sep}y\"\r\n".encode()
    assert scan(data, fmt).records == 1
    assert list(data_records([data], fmt)) == [["1", f"x{sep}y"]]
    assert fmt.line(["1", f"x{sep}y"]) == f'"1"{sep}"x{sep}y"\r\n'


def test_scan_counts_and_skips_blank_lines_and_a_bom() -> None:
    result = scan(b"\xef\xbb\xbfName,Industry\nA,B\n\nC,D\n", CsvFormat())
    assert (result.header, result.records) == (["Name", "Industry"], 2)
    assert list(data_records([b"Name\nA\n\nB\n"], CsvFormat())) == [["A"], ["B"]]


@pytest.mark.parametrize(("data", "fmt", "message"), [
    (b"A,B\n1,2,3\n", CsvFormat(), "3 values in record 1"),
    (b'A\n"open\n', CsvFormat(), "malformed"),
    (b"A\r\n1\r\n", CsvFormat(), "LineEnding is invalid"),
    (b"A\n1\n", CsvFormat("COMMA", "CRLF"), "Current LineEnding setting is CRLF"),
    (b"", CsvFormat(), "empty"),
    (b"A,,B\n1,2,3\n", CsvFormat(), "empty column name"),
    (b"A\n\x80\n", CsvFormat(), "UTF-8"),
])
def test_scan_refuses_broken_data(data: bytes, fmt: CsvFormat, message: str) -> None:
    with pytest.raises(ClientInputError, match=message):
        scan(data, fmt)


def test_headers_quote_only_what_needs_it() -> None:
    fmt = CsvFormat()
    assert fmt.header(["Name", "Odd,Name"], quoted_prefix=("sf__Id",)) == '"sf__Id",Name,"Odd,Name"\n'


def test_values_in_bulk_format() -> None:
    assert [csv_value(v) for v in (None, True, False, 3, 2.5, "x")] == ["", "true", "false", "3", "2.5", "x"]
    assert csv_value(datetime(2024, 1, 31, 9, 30, 0, 123456)) == "2024-01-31T09:30:00.123Z"
    assert csv_value(date(2024, 1, 31)) == "2024-01-31"
    assert csv_value(time(9, 5)) == "09:05:00.000Z"


def test_row_writer_offsets_are_byte_offsets() -> None:
    writer = RowWriter(CsvFormat("PIPE", "CRLF"), [0, 2])
    rows = [("é|x", "skip", True), (None, "skip", datetime(2024, 1, 31, 9, 30)), ("plain", "skip", False)]
    for row in rows:
        writer.add(row)
    data, offsets = writer.take()
    lines = [data[start:end].decode() for start, end in zip(offsets, [*offsets[1:], len(data)], strict=True)]
    assert lines == ['"é|x"|"true"\r\n', '""|"2024-01-31T09:30:00.000Z"\r\n', '"plain"|"false"\r\n']
    assert len(writer) == 0 and writer.take() == (b"", writer.take()[1])
