"""List views as SOQL: the columns, filters and sort a person picks, compiled into one query for the one engine.

Every name in the query comes from the object's metadata (an unknown field is refused, never copied into the
text) and every value a person types is written as a SOQL literal by :mod:`interlink.soql.render`, so nothing
typed into a filter can change the query's shape::

    view = ListView.from_params(schema, obj, request.query_params)
    view.soql()   # SELECT Id, Name, Owner.Name, ... FROM Account WHERE (Name = 'O\\'Brien') ORDER BY Name ASC
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol

from interlink.console.fields import parent_name_path
from interlink.errors import InvalidFieldError, RequestError
from interlink.metadata.model import TEXT_TYPES, FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.values import parse_date, parse_datetime
from interlink.soql.render import like_pattern, literal, quote

OPERATORS: dict[str, str] = {
    "eq": "equals", "ne": "not equal to", "lt": "less than", "le": "less or equal", "gt": "greater than",
    "ge": "greater or equal", "contains": "contains", "starts": "starts with", "ends": "ends with",
    "null": "is empty", "notnull": "is not empty",
}
_COMPARISONS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_LIKE = {"contains": (True, True), "starts": (False, True), "ends": (True, False)}
_NUMBERS = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})
_UNSORTABLE = frozenset({FieldType.TEXTAREA, FieldType.MULTIPICKLIST})
_RELATIVE_DATE = re.compile(
    r"^(YESTERDAY|TODAY|TOMORROW|(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)|"
    r"(LAST|NEXT)_90_DAYS|(LAST|NEXT)_N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS):\d{1,4}|"
    r"N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)_AGO:\d{1,4})$")
# Fields that only make up a computed name field (Contact.Name from FirstName + LastName): not worth a column.
_NAME_PARTS = frozenset({"FirstName", "LastName", "MiddleName", "Salutation", "Suffix"})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_FILTERS = 10


class Params(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...
    def getlist(self, key: str) -> list[str]: ...


class FilterError(RequestError):
    """A filter that cannot be written as SOQL (a value of the wrong type, an operator the field has not)."""

    error_code = "INVALID_FILTER"


@dataclass(frozen=True)
class Filter:
    field: FieldDef
    op: str
    value: str = ""

    def condition(self) -> str:
        """The filter as a SOQL condition; the value always goes through a SOQL literal writer."""
        name = self.field.name
        if self.op == "null":
            return f"{name} = null"
        if self.op == "notnull":
            return f"{name} != null"
        if self.op in _LIKE:
            if self.field.type not in TEXT_TYPES:
                raise FilterError(f"{self.field.label}: '{OPERATORS[self.op]}' only applies to text fields",
                                  [name])
            prefix, suffix = _LIKE[self.op]
            return f"{name} LIKE {like_pattern(self.value, prefix=prefix, suffix=suffix)}"
        return f"{name} {_COMPARISONS[self.op]} {value_literal(self.field, self.value)}"


def value_literal(fdef: FieldDef, text: str) -> str:
    """``text`` as a SOQL literal of ``fdef``'s type; FilterError when it is not one."""
    text = text.strip() if fdef.type not in TEXT_TYPES else text
    kind = fdef.type
    try:
        if kind is FieldType.BOOLEAN:
            lowered = text.lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(text)
            return "true" if lowered in ("true", "yes", "1") else "false"
        if kind in _NUMBERS:
            number = Decimal(text)
            if not number.is_finite():
                raise ValueError(text)
            return format(number, "f")
        if kind is FieldType.DATE:
            return text.upper() if _RELATIVE_DATE.match(text.upper()) else parse_date(text).isoformat()
        if kind is FieldType.DATETIME:
            return text.upper() if _RELATIVE_DATE.match(text.upper()) else literal(parse_datetime(text))
    except (ValueError, InvalidOperation):
        raise FilterError(f"{fdef.label}: not a valid {kind.value} value: {text}", [fdef.name]) from None
    return quote(text)


def sortable(fdef: FieldDef) -> bool:
    return fdef.type not in _UNSORTABLE


def default_columns(obj: ObjectDef) -> list[FieldDef]:
    """The name field, up to four telling fields, and LastModifiedDate when the object has it.

    Telling, in this order: the first lookup to another record (not the owner), required fields, the first
    email, phone and amount, picklists, dates, then anything short.
    """
    name = obj.name_field
    computed_name = name is not None and not name.createable
    ranked: list[tuple[int, int, FieldDef]] = []
    seen_types: set[FieldType] = set()
    lookup_taken = False
    for index, fdef in enumerate(obj.fields):
        if fdef is name or fdef.is_system or fdef.name in ("OwnerId", "ExternalId", "DisplayUrl") or \
                fdef.type in (FieldType.TEXTAREA, FieldType.ID) or (computed_name and fdef.name in _NAME_PARTS):
            continue
        if fdef.type is FieldType.REFERENCE:
            if lookup_taken:
                continue
            rank, lookup_taken = 0, True
        elif fdef.required:
            rank = 1
        elif fdef.type in (FieldType.EMAIL, FieldType.PHONE, FieldType.CURRENCY):
            if fdef.type in seen_types:
                continue
            rank = 2
            seen_types.add(fdef.type)
        elif fdef.type is FieldType.PICKLIST:
            rank = 3
        elif fdef.type in (FieldType.DATE, FieldType.DATETIME):
            rank = 4
        else:
            rank = 5
        ranked.append((rank, index, fdef))
    chosen = [fdef for _, _, fdef in sorted(ranked, key=lambda item: item[:2])[:4]]
    columns = ([name] if name else [obj.fields[0]]) + chosen
    modified = obj.field("LastModifiedDate")
    if modified is not None:
        columns.append(modified)
    return columns


@dataclass(frozen=True)
class ListView:
    """What a list view shows: an object's columns, filters (ANDed) and sort."""

    schema: Schema
    obj: ObjectDef
    columns: tuple[FieldDef, ...]
    filters: tuple[Filter, ...] = ()
    sort: FieldDef | None = None
    descending: bool = False
    page_size: int = DEFAULT_PAGE_SIZE
    ignored: tuple[str, ...] = field(default=())

    @classmethod
    def from_params(cls, schema: Schema, obj: ObjectDef, params: Params) -> ListView:
        """The view a list page's query string asks for: ``col`` (repeated), ``ff``/``fo``/``fv`` (one triple
        per filter), ``sort``, ``dir`` (``asc``/``desc``), ``size``. Unknown columns are ignored (and reported);
        an unknown filter field or operator is refused."""
        ignored: list[str] = []
        columns: list[FieldDef] = []
        for name in params.getlist("col"):
            fdef = obj.field(name.strip())
            if fdef is None:
                ignored.append(name)
            elif fdef not in columns:
                columns.append(fdef)
        if not columns:
            columns = default_columns(obj)
        filters = _filters(obj, params.getlist("ff"), params.getlist("fo"), params.getlist("fv"))
        sort_name = params.get("sort") or ""
        sort = obj.field(sort_name) if sort_name else None
        if sort_name and (sort is None or not sortable(sort)):
            ignored.append(sort_name)
            sort = None
        if not sort_name and obj.is_stored:
            sort = obj.name_field
        descending = (params.get("dir") or "").lower() == "desc"
        try:
            size = max(1, min(MAX_PAGE_SIZE, int(params.get("size") or DEFAULT_PAGE_SIZE)))
        except ValueError:
            size = DEFAULT_PAGE_SIZE
        return cls(schema, obj, tuple(columns), filters, sort, descending, size, tuple(ignored))

    def select_list(self) -> list[str]:
        names = ["Id"]
        for fdef in self.columns:
            names.append(fdef.name)
            path = parent_name_path(self.schema, self.obj, fdef)
            if path:
                names.append(path)
        return list(dict.fromkeys(names))

    def where(self) -> str:
        return " AND ".join(f"({f.condition()})" for f in self.filters)

    def soql(self) -> str:
        text = f"SELECT {', '.join(self.select_list())} FROM {self.obj.name}"
        where = self.where()
        if where:
            text += f" WHERE {where}"
        if self.sort is not None:
            text += f" ORDER BY {self.sort.name} {'DESC' if self.descending else 'ASC'}"
        return text

    def params(self, *, sort: FieldDef | None = None, descending: bool | None = None,
               filters: bool = True) -> list[tuple[str, str]]:
        """The query string that shows this view again (optionally re-sorted, or without its filters)."""
        pairs: list[tuple[str, str]] = [("col", f.name) for f in self.columns]
        for item in self.filters if filters else ():
            pairs += [("ff", item.field.name), ("fo", item.op), ("fv", item.value)]
        chosen = sort if sort is not None else self.sort
        if chosen is not None:
            pairs.append(("sort", chosen.name))
            pairs.append(("dir", "desc" if (self.descending if descending is None else descending) else "asc"))
        if self.page_size != DEFAULT_PAGE_SIZE:
            pairs.append(("size", str(self.page_size)))
        return pairs


def _filters(obj: ObjectDef, names: Sequence[str], ops: Sequence[str], values: Sequence[str]) -> tuple[Filter, ...]:
    found: list[Filter] = []
    for index, name in enumerate(names):
        if not name.strip():
            continue  # the blank row a list page offers for a new filter
        fdef = obj.field(name.strip())
        if fdef is None:
            raise InvalidFieldError(f"No such column '{name}' on entity '{obj.name}'", [name])
        op = ops[index] if index < len(ops) else "eq"
        if op not in OPERATORS:
            raise FilterError(f"Unknown filter operator: {op}", [fdef.name])
        found.append(Filter(fdef, op, values[index] if index < len(values) else ""))
    if len(found) > MAX_FILTERS:
        raise FilterError(f"A list view takes at most {MAX_FILTERS} filters")
    for item in found:
        item.condition()  # refuse a bad value now, before anything runs
    return tuple(found)


__all__ = ["DEFAULT_PAGE_SIZE", "OPERATORS", "Filter", "FilterError", "ListView", "default_columns", "sortable",
           "value_literal"]
