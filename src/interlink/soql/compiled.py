"""The compiled plan of a SOQL query, as :mod:`interlink.soql.engine` runs it.

A :class:`CompiledQuery` holds the main and count statements, the row shape (:class:`RecordShape` of
:class:`FieldOut`/:class:`ParentOut`/:class:`TypeOfOut`/:class:`ChildOut` items) or the aggregate columns, one
:class:`ChildPlan` per child relationship subquery, and the :class:`DateParam` bind parameters of relative date
literals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import Select

from interlink.metadata.model import ObjectDef
from interlink.soql import ast
from interlink.soql.dates import as_datetimes, resolve

# -- the compiled plan -------------------------------------------------------------------------------------------


Converter = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class FieldOut:
    """One output value: ``record[key] = convert(row[index])``."""

    key: str
    index: int
    convert: Converter = None


@dataclass(slots=True)
class ParentOut:
    """A nested parent record; null when ``row[id_index]`` is null.

    ``type_name`` is None for a polymorphic relationship: the type comes from the id's key prefix.
    """

    key: str
    id_index: int
    type_name: str | None
    prefixes: Mapping[str, str]
    items: list[Out] = field(default_factory=list)


@dataclass(slots=True)
class TypeOfOut:
    """``TYPEOF rel WHEN A THEN ... ELSE ... END``: the nested record's fields depend on the parent's type."""

    key: str
    id_index: int
    prefixes: Mapping[str, str]
    variants: dict[str, list[FieldOut]]
    otherwise: list[FieldOut]


@dataclass(frozen=True, slots=True)
class ChildOut:
    """A child relationship block: ``CompiledQuery.children[child]`` grouped by this record's id."""

    key: str
    child: int


Out = FieldOut | ParentOut | TypeOfOut | ChildOut


@dataclass(slots=True)
class RecordShape:
    type_name: str
    id_index: int
    items: list[Out]


def flat_columns(shape: RecordShape) -> list[tuple[str, int]]:
    """The shape as flat columns in SELECT order: (``Name`` or ``Account.Owner.Name``, row index).

    A parent's fields read null when the parent is (the outer join leaves them null). Child subqueries and
    TYPEOF have no flat form: ValueError names the first one.
    """
    columns: list[tuple[str, int]] = []

    def walk(items: list[Out], prefix: str) -> None:
        for item in items:
            if isinstance(item, FieldOut):
                columns.append((prefix + item.key, item.index))
            elif isinstance(item, ParentOut):
                walk(item.items, f"{prefix}{item.key}.")
            else:
                raise ValueError(item.key)

    walk(shape.items, "")
    return columns


@dataclass
class ChildPlan:
    """One child relationship subquery: run with ``parent_ids`` bound to the page's parent record ids."""

    key: str
    object: ObjectDef
    statement: Select[Any] | None
    parent_index: int  # stored children: the child's lookup column; external: the parent's key column
    shape: RecordShape | None
    # A child subquery on an external object (an interlink.soql.external.ExternalChild): run by the data source.
    external: Any = None


@dataclass(frozen=True)
class DateParam:
    """A bind parameter holding one end of a relative date literal's range."""

    name: str
    literal: ast.DateLiteral
    end: bool
    as_datetime: bool


@dataclass
class CompiledQuery:
    kind: Literal["records", "aggregate", "count"]
    object: ObjectDef
    statement: Select[Any]
    count_statement: Select[Any]
    limit: int | None
    offset: int
    shape: RecordShape | None = None
    columns: list[FieldOut] = field(default_factory=list)
    children: list[ChildPlan] = field(default_factory=list)
    date_params: list[DateParam] = field(default_factory=list)
    filter_fields: list[str] = field(default_factory=list)
    fiscal_start_month: int = 1
    notes: list[str] = field(default_factory=list)

    def parameters(self, today: date) -> dict[str, Any]:
        """Bind values for the relative date literals, for the given current (UTC) date."""
        values: dict[str, Any] = {}
        for param in self.date_params:
            bounds = resolve(param.literal, today, fiscal_start_month=self.fiscal_start_month)
            if param.as_datetime:
                bounds = as_datetimes(bounds)  # type: ignore[assignment]
            values[param.name] = bounds[1] if param.end else bounds[0]
        return values
