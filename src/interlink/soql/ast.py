"""The SOQL syntax tree: what the parser produces and the compiler consumes.

Names are kept as written (case-insensitive matching against metadata happens in the compiler), so
error messages can quote the user's own spelling. Every node is a frozen dataclass; ``Query`` is the
root. A field reference is a dotted path: ``Account.Owner.Name`` is ``FieldPath(("Account", "Owner",
"Name"))`` — every element but the last is a relationship name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

# -- values -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateLiteral:
    """A relative date literal: ``TODAY``, ``LAST_N_DAYS:30``, ``THIS_FISCAL_QUARTER`` ... (name upper-cased)."""

    name: str
    n: int | None = None


@dataclass(frozen=True)
class Bind:
    """An Apex-style bind variable ``:name`` (refused by the REST API with a clear error)."""

    name: str


# A literal value in a condition. str for quoted strings (escapes resolved), bool for TRUE/FALSE, None for
# NULL, int/float for numbers (a number with a fraction or exponent is float), date for 2024-01-31, datetime
# (naive UTC) for 2024-01-31T10:00:00Z / +01:00 / +0100, DateLiteral for relative dates.
Value = str | bool | int | float | date | datetime | DateLiteral | Bind | None


# -- select list ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    line: int = 0
    column: int = 0

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class FieldsMacro:
    """``FIELDS(ALL)``, ``FIELDS(STANDARD)`` or ``FIELDS(CUSTOM)``."""

    kind: Literal["ALL", "STANDARD", "CUSTOM"]


@dataclass(frozen=True)
class Function:
    """A function in the select list, GROUP BY, ORDER BY or a condition.

    ``name`` is upper-cased: aggregates COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX; date functions
    CALENDAR_YEAR, CALENDAR_QUARTER, CALENDAR_MONTH, DAY_IN_MONTH, DAY_IN_WEEK, DAY_IN_YEAR, DAY_ONLY,
    HOUR_IN_DAY, WEEK_IN_MONTH, WEEK_IN_YEAR, FISCAL_YEAR, FISCAL_QUARTER, FISCAL_MONTH; others:
    TOLABEL, FORMAT, CONVERTCURRENCY, GROUPING. ``args`` is empty for ``COUNT()``.
    """

    name: str
    args: tuple[FieldPath | Function, ...] = ()
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class TypeOfWhen:
    object_name: str
    fields: tuple[FieldPath, ...]


@dataclass(frozen=True)
class TypeOf:
    """``TYPEOF What WHEN Account THEN Name ELSE Name END``."""

    relationship: str
    whens: tuple[TypeOfWhen, ...]
    else_fields: tuple[FieldPath, ...] = ()


@dataclass(frozen=True)
class SelectItem:
    """One entry of the select list with its optional alias (aliases only make sense on aggregates)."""

    expr: FieldPath | FieldsMacro | Function | SubQuery | TypeOf
    alias: str | None = None


# -- conditions -------------------------------------------------------------------------------------------------------

ComparisonOp = Literal["=", "!=", "<", "<=", ">", ">=", "LIKE"]


@dataclass(frozen=True)
class Comparison:
    left: FieldPath | Function
    op: ComparisonOp
    value: Value


@dataclass(frozen=True)
class InList:
    """``f IN ('a', 'b')`` / ``f NOT IN (...)``."""

    left: FieldPath | Function
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class InSubquery:
    """Semi-join ``Id IN (SELECT AccountId FROM Contact ...)`` / anti-join with ``NOT IN``."""

    left: FieldPath
    query: Query
    negated: bool = False


@dataclass(frozen=True)
class Includes:
    """Multi-select picklists: ``f INCLUDES ('a;b', 'c')`` / ``EXCLUDES``. Each value may hold ``;``-joined sets."""

    left: FieldPath
    values: tuple[str, ...]
    negated: bool = False  # True for EXCLUDES


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | InList | InSubquery | Includes | And | Or | Not


# -- the query --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderItem:
    expr: FieldPath | Function
    descending: bool = False
    nulls_last: bool | None = None  # None: the platform's default (NULLS FIRST for ASC, NULLS LAST for DESC)


@dataclass(frozen=True)
class GroupBy:
    items: tuple[FieldPath | Function, ...]
    kind: Literal["PLAIN", "ROLLUP", "CUBE"] = "PLAIN"


@dataclass(frozen=True)
class Query:
    """``SELECT ... FROM object [alias] [USING SCOPE s] [WHERE ...] [WITH ...] [GROUP BY ...] [HAVING ...]
    [ORDER BY ...] [LIMIT n] [OFFSET n] [FOR VIEW|REFERENCE|UPDATE] [ALL ROWS]``.

    In a child subquery ``object`` is a child relationship name (``Contacts``), not an object name.
    ``with_clauses`` holds upper-cased ``SECURITY_ENFORCED``, ``USER_MODE``, ``SYSTEM_MODE`` and
    ``DATA CATEGORY`` (refused later with a clear error).
    """

    select: tuple[SelectItem, ...]
    object: str
    alias: str | None = None
    where: Condition | None = None
    with_clauses: tuple[str, ...] = ()
    group_by: GroupBy | None = None
    having: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | Bind | None = None
    offset: int | Bind | None = None
    for_clause: str | None = None  # VIEW, REFERENCE or UPDATE
    all_rows: bool = False
    using_scope: str | None = None
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class SubQuery:
    """A child relationship subquery in the select list: ``(SELECT Id FROM Contacts)``."""

    query: Query


__all__ = [
    "And",
    "Bind",
    "Comparison",
    "ComparisonOp",
    "Condition",
    "DateLiteral",
    "FieldPath",
    "FieldsMacro",
    "Function",
    "GroupBy",
    "InList",
    "InSubquery",
    "Includes",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "SelectItem",
    "SubQuery",
    "TypeOf",
    "TypeOfWhen",
    "Value",
]
