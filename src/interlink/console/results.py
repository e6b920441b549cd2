"""Query results as a grid and as CSV: REST-shaped records flattened into columns.

A parent's fields become dotted columns (``Account.Name``, ``Account.Owner.Name``); a child subquery stays one
column holding its records (shown as a count that expands, written to CSV as the count). Cells written to CSV are
made safe for spreadsheets: text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
single quote so it is never run as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from interlink import ids
from interlink.console.fields import record_href
from interlink.soql import ast
from interlink.soql.parser import parse_soql

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ChildRecords:
    """A child subquery's result inside one row."""

    total: int
    records: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.total)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"Name": .., "Account": {"Name": ..}}`` -> ``{"Name": .., "Account.Name": ..}`` (attributes dropped)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(value.get("records"), list):
            flat[name] = ChildRecords(int(value.get("totalSize", len(value["records"]))), value["records"])
        elif isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def columns_of(rows: Iterable[Mapping[str, Any]], extra: Iterable[str] = ()) -> list[str]:
    """Every column of flattened rows in order of appearance, plus ``extra`` ones (matched ignoring case).

    A null parent flattens to a bare ``Account`` column; it is dropped when another row (or ``extra``) has the
    parent's fields as ``Account.Name``.
    """
    found: dict[str, str] = {}
    for row in rows:
        for key in row:
            found.setdefault(key.lower(), key)
    for key in extra:
        found.setdefault(key.lower(), key)
    names = list(found.values())
    return [n for n in names if not any(other.lower().startswith(n.lower() + ".") for other in names)]


def parent_paths(soql: str) -> list[str]:
    """The dotted field paths of a query's select list (so a CSV's header does not depend on its first page)."""
    try:
        query = parse_soql(soql)
    except Exception:  # the engine has already accepted the text; a parse failure here only loses hints
        return []
    return [item.expr.text for item in query.select
            if isinstance(item.expr, ast.FieldPath) and len(item.expr.parts) > 1]


def value_of(row: Mapping[str, Any], column: str) -> Any:
    if column in row:
        return row[column]
    lowered = column.lower()
    return next((value for key, value in row.items() if key.lower() == lowered), None)


# -- the grid ------------------------------------------------------------------------------------------------------


@dataclass
class GridCell:
    text: str
    href: str = ""
    css: str = ""
    child: Grid | None = None


@dataclass
class Grid:
    columns: list[str]
    rows: list[list[GridCell]]
    total: int = 0


def _cell(column: str, value: Any, prefixes: frozenset[str], depth: int) -> GridCell:
    if isinstance(value, ChildRecords):
        nested = grid(value.records, prefixes, depth + 1) if depth < 2 else None
        return GridCell(f"{value.total} record{'s' if value.total != 1 else ''}", css="child", child=nested)
    if value is None:
        return GridCell("null", css="null")
    if isinstance(value, bool):
        return GridCell("true" if value else "false", css="bool")
    if isinstance(value, int | float):
        return GridCell(str(value), css="num")
    if isinstance(value, dict | list):
        return GridCell(orjson.dumps(value).decode())
    text = str(value)
    if column.endswith("Id") and len(text) in (15, 18):
        record_id = ids.normalize(text)
        if record_id is not None and record_id[:3] in prefixes:
            return GridCell(text, record_href(record_id))
    return GridCell(text)


def grid(records: Sequence[Mapping[str, Any]], prefixes: frozenset[str], depth: int = 0,
         extra: Iterable[str] = ()) -> Grid:
    """Records as a grid; ``prefixes`` are the key prefixes of objects whose Ids link to record pages."""
    rows = [flatten(r) for r in records]
    columns = columns_of(rows, extra)
    return Grid(columns, [[_cell(c, value_of(row, c), prefixes, depth) for c in columns] for row in rows],
                len(records))


# -- CSV -------------------------------------------------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """One CSV cell: text that a spreadsheet would run as a formula is prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | ChildRecords):
        return str(value)  # numbers are numbers (a negative one is not a formula)
    text = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(records: Sequence[Mapping[str, Any]], extra: Iterable[str] = ()) -> str:
    """A header row and one row per record, CRLF-terminated as RFC 4180 asks; header names are made safe too."""
    rows = [flatten(r) for r in records]
    columns = columns_of(rows, extra)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(value_of(row, c)) for c in columns])
    return out.getvalue()


__all__ = ["ChildRecords", "Grid", "GridCell", "columns_of", "csv_cell", "flatten", "grid", "parent_paths",
           "to_csv"]
