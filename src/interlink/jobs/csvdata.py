"""CSV as Bulk API 2.0 reads and writes it.

Uploads are UTF-8 CSV with the job's ``columnDelimiter`` (COMMA, TAB, PIPE, SEMICOLON, CARET, BACKQUOTE) and
``lineEnding`` (LF, CRLF); a field may be quoted with ``"`` and then hold delimiters, quotes (doubled) and
line breaks. Data arrives and is kept in byte chunks, so the reader decodes incrementally and never needs a
whole upload in memory.

Results are written the way the platform writes them: the ``sf__`` columns quoted in the header, every value
quoted, the job's delimiter and line ending.
"""

from __future__ import annotations

import codecs
import csv
import io
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from interlink.errors import ClientInputError
from interlink.metadata.values import format_datetime_z

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
NULL_MARKER = "#N/A"  # a value that sets the field to null (an empty value leaves it alone)


@dataclass(frozen=True)
class CsvFormat:
    """The job's ``columnDelimiter`` and ``lineEnding``, by their wire names."""

    column_delimiter: str = "COMMA"
    line_ending: str = "LF"

    @property
    def delimiter(self) -> str:
        return DELIMITERS[self.column_delimiter]

    @property
    def newline(self) -> str:
        return LINE_ENDINGS[self.line_ending]

    def quote(self, value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    def line(self, values: Iterable[str]) -> str:
        """One CSV record with every value quoted, ended by the job's line ending."""
        return self.delimiter.join('"' + v.replace('"', '""') + '"' for v in values) + self.newline

    def header(self, names: Sequence[str], *, quoted_prefix: Sequence[str] = ()) -> str:
        """A header line: ``quoted_prefix`` names quoted (``"sf__Id"``), the original names as uploaded."""
        parts = [self.quote(n) for n in quoted_prefix] + [self._bare(n) for n in names]
        return self.delimiter.join(parts) + self.newline

    def _bare(self, name: str) -> str:
        needs = any(c in name for c in (self.delimiter, '"', "\n", "\r"))
        return self.quote(name) if needs else name


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decode UTF-8 (a leading BOM dropped) and cut at ``\\n`` only, keeping the line ends.

    ``str.splitlines`` would also cut at characters such as U+2028 that are ordinary data inside a value.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    try:
        for chunk in chunks:
            text = pending + decoder.decode(chunk)
            start = 0
            while True:
                end = text.find("\n", start)
                if end < 0:
                    break
                yield text[start:end + 1]
                start = end + 1
            pending = text[start:]
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ClientInputError(f"The uploaded data is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    if pending:
        yield pending


def records(chunks: Iterable[bytes], fmt: CsvFormat) -> Iterator[list[str]]:
    """Every CSV record of the data (the header included) as a list of values."""
    reader = csv.reader(_lines(chunks), delimiter=fmt.delimiter, quotechar='"', doublequote=True, strict=True)
    try:
        yield from reader
    except csv.Error as exc:
        raise ClientInputError(f"The uploaded CSV is malformed at line {reader.line_num}: {exc}") from None


def data_records(chunks: Iterable[bytes], fmt: CsvFormat) -> Iterator[list[str]]:
    """The records after the header, blank lines left out (as :func:`scan` counted them)."""
    rows = records(chunks, fmt)
    header = next(rows, None)
    if header is None:
        return
    width = len(header)
    for values in rows:
        if len(values) != width and (not values or values == [""]):
            continue
        yield values


@dataclass
class UploadScan:
    """What one upload holds: its header and how many records follow it."""

    header: list[str]
    records: int


def scan(data: bytes, fmt: CsvFormat) -> UploadScan:
    """Read a whole upload once: check its structure and line endings, count its records.

    Raises CLIENTINPUTERROR for data the job cannot process, so a bad upload is refused before anything is kept.
    """
    first_end = data.find(b"\n")
    if first_end >= 0 and (data[first_end - 1:first_end] == b"\r") != (fmt.line_ending == "CRLF"):
        raise ClientInputError(f"LineEnding is invalid on user data. Current LineEnding setting is {fmt.line_ending}")
    header: list[str] | None = None
    count = 0
    width = 0
    for values in records((data,), fmt):
        if header is None:
            header = [v.strip() for v in values]
            width = len(header)
            _check_header(header)
            continue
        if len(values) != width:
            if not values or values == [""]:
                continue  # a blank line
            raise ClientInputError(f"The uploaded CSV has {len(values)} values in record {count + 1} but the header "
                                   f"has {width} columns")
        count += 1
    if header is None:
        raise ClientInputError("The uploaded data is empty: a CSV with a header row is required")
    return UploadScan(header, count)


def _check_header(header: list[str]) -> None:
    if not header or all(not name for name in header):
        raise ClientInputError("The uploaded CSV has no header row")
    seen: set[str] = set()
    for name in header:
        if not name:
            raise ClientInputError("The uploaded CSV header has an empty column name")
        if name.lower() in seen:
            raise ClientInputError(f"The uploaded CSV header names the column {name} twice")
        seen.add(name.lower())


class RowWriter:
    """Query rows as CSV lines of the job's format, every value quoted, with where each line starts.

    The C ``csv`` writer does the quoting; only columns holding booleans or dates need a Python call per value
    (chosen from the first value seen in each column, as a column holds one type).
    """

    def __init__(self, fmt: CsvFormat, indexes: Sequence[int]) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=fmt.delimiter, lineterminator=fmt.newline,
                                  quoting=csv.QUOTE_ALL, doublequote=True)
        self._indexes = list(indexes)
        self._undecided = set(range(len(self._indexes)))
        self._converters: list[tuple[int, Callable[[Any], str]]] = []
        self._lengths: list[int] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, row: Sequence[Any]) -> None:
        values = [row[i] for i in self._indexes]
        if self._undecided:
            self._decide(values)
        for position, convert in self._converters:
            value = values[position]
            if value is not None:
                values[position] = convert(value)
        length = self._writer.writerow(values)
        self._lengths.append(length)
        self.size += length

    def _decide(self, values: list[Any]) -> None:
        for position in list(self._undecided):
            value = values[position]
            if value is None:
                continue
            self._undecided.discard(position)
            if isinstance(value, bool | datetime | date | time):
                self._converters.append((position, csv_value))

    def take(self) -> tuple[bytes, array[int]]:
        """The lines written since the last take, encoded, and the byte offset where each starts."""
        text = self._buffer.getvalue()
        data = text.encode()
        offsets: array[int] = array("I")
        position = 0
        if len(data) == len(text):  # ASCII: characters are bytes
            for length in self._lengths:
                offsets.append(position)
                position += length
        else:
            start = 0
            for length in self._lengths:
                offsets.append(position)
                position += len(text[start:start + length].encode())
                start += length
        self._buffer.seek(0)
        self._buffer.truncate()
        self._lengths.clear()
        self.size = 0
        return data, offsets


def csv_value(value: object) -> str:
    """A stored value as Bulk API CSV text: null empty, booleans lowercase, datetimes in UTC with ``Z``."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return format_datetime_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


__all__ = ["DELIMITERS", "LINE_ENDINGS", "NULL_MARKER", "CsvFormat", "RowWriter", "UploadScan", "csv_value",
           "data_records", "records", "scan"]
