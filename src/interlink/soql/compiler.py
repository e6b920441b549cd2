"""The SOQL compiler: a syntax tree (:class:`~interlink.soql.ast.Query`) to SQLAlchemy Core, plus a row plan.

``compile_query`` resolves every name against the org's :class:`Schema` (case-insensitively, quoting the
user's spelling in errors, as the platform does) and produces a :class:`CompiledQuery`:

- ``statement``: the ordered main ``SELECT`` without paging (the engine adds ``LIMIT``/``OFFSET`` per page). Its
  ``ORDER BY`` always ends with a deterministic tiebreak (the record ``Id``; the group keys for aggregates), so
  pages of a re-executed plan are stable.
- ``count_statement``: ``SELECT count(*)`` over the same filter, for ``totalSize`` when a page is full.
- ``shape`` / ``columns``: where each output value sits in a result row, and how to render it (the platform's
  JSON formatting from :mod:`interlink.metadata.values`).
- ``children``: one statement per child relationship subquery, run once per page with the page's parent ids.

Design notes:

- Parent paths (``Account.Owner.Name``, up to 5 relationships) become ``LEFT OUTER JOIN``\\s on aliased tables,
  one per distinct path. A polymorphic relationship (``Task.What``) joins each target object that has the asked
  field and ``COALESCE``\\s them (ids are unique across objects, so at most one matches); ``Type`` comes from the
  id's key prefix and ``Name`` from each target's name field. Polymorphic paths stop there: no deeper paths
  (``TYPEOF`` selects per-type fields).
- Conditions use the platform's two-valued logic: a comparison with a null field is false, so ``f != 'x'``,
  ``NOT IN``, ``EXCLUDES`` and ``NOT (...)`` match records where ``f`` is null. Text ``=``/``IN``/``LIKE`` are
  case-insensitive (``lower()`` on both sides, which the ``lower(column)`` indexes on unique and external-id
  fields serve); ids are normalised to 18 characters and compared exactly, so the primary key and lookup indexes
  serve them.
- Relative date literals become named bind parameters whose values :meth:`CompiledQuery.parameters` computes
  for the current day, so a cached plan stays right across midnight.
- ``ROLLUP``/``CUBE`` run as a ``UNION ALL`` of one grouped ``SELECT`` per grouping set on both dialects
  (SQLite has no ``ROLLUP``); subtotal rows sort after the rows they total, as on the platform.
- Values only ever reach SQL as bound parameters; identifiers come from metadata, never from query text.
- ``WITH SECURITY_ENFORCED`` / ``WITH USER_MODE`` are accepted and have no effect until the security model
  (object and field permissions, sharing) exists; ``FOR VIEW/REFERENCE/UPDATE`` are accepted and ignored.

The work is split by layer, each module importing only those before it: :mod:`~interlink.soql.compiled` (the
plan), :mod:`~interlink.soql.scope` (compile state, joins, paths), :mod:`~interlink.soql.functions`
(aggregates, date functions), :mod:`~interlink.soql.conditions` (WHERE/HAVING), :mod:`~interlink.soql.records`
(select lists, child subqueries, ORDER BY) and :mod:`~interlink.soql.aggregates` (GROUP BY queries, COUNT()).
This module wires them into :func:`compile_query` and re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, FromClause, Table

from interlink.errors import MalformedQueryError
from interlink.metadata.model import ObjectDef, Schema
from interlink.soql import ast
from interlink.soql.aggregates import _compile_aggregate, _compile_count, _is_aggregate
from interlink.soql.compiled import (
    ChildOut,
    ChildPlan,
    CompiledQuery,
    Converter,
    DateParam,
    FieldOut,
    Out,
    ParentOut,
    RecordShape,
    TypeOfOut,
)
from interlink.soql.conditions import _Scope
from interlink.soql.functions import AGGREGATE_FUNCTIONS, DATE_FUNCTIONS
from interlink.soql.parser import parse_soql
from interlink.soql.records import MAX_FIELDS_MACRO_LIMIT, MAX_OFFSET, _check_clauses, _check_paging, _compile_records
from interlink.soql.scope import MAX_RELATIONSHIP_DEPTH, RowFilter, _Compiler, positioned


def compile_query(query: ast.Query, schema: Schema, tables: Mapping[str, Table], *, include_deleted: bool = False,
                  user_id: str | None = None, fiscal_start_month: int = 1,
                  row_filter: RowFilter | None = None) -> CompiledQuery:
    """Compile ``query`` against ``schema`` and its ``tables`` (keyed by lower-cased object name).

    ``include_deleted`` (queryAll) or the query's ``ALL ROWS`` keeps records in the recycle bin; otherwise
    ``IsDeleted`` rows are left out everywhere (root, parents, children, semi-joins). ``user_id`` serves
    ``USING SCOPE Mine``. Raises MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, INVALID_QUERY_FILTER_OPERATOR
    and NUMBER_OUTSIDE_VALID_RANGE errors as the platform does.
    """
    compiler = _Compiler(schema, tables, include_deleted=include_deleted or query.all_rows, text=query.text,
                         user_id=user_id, row_filter=row_filter)
    obj = compiler.object_for(query.object)
    notes = _check_clauses(compiler, query)
    limit, offset = _check_paging(compiler, query)
    scope = _Scope(compiler, obj, compiler.table(obj), query)
    count_only = [item for item in query.select if isinstance(item.expr, ast.Function)
                  and item.expr.name.upper() == "COUNT" and not item.expr.args]
    if count_only:
        if len(query.select) != 1:
            raise compiler.fail(MalformedQueryError, "COUNT() must be the only element in the SELECT list")
        compiled = _compile_count(scope, query, limit, offset)
    elif _is_aggregate(query):
        compiled = _compile_aggregate(scope, query, limit, offset)
    else:
        if query.having is not None:
            raise compiler.fail(MalformedQueryError, "HAVING needs GROUP BY or aggregate functions")
        compiled = _compile_records(scope, query, limit, offset)
    compiled.date_params = compiler.date_params
    compiled.filter_fields = list(dict.fromkeys(scope.filter_fields))
    compiled.fiscal_start_month = fiscal_start_month
    compiled.notes = notes
    return compiled


def compile_condition(condition: str, obj: ObjectDef, schema: Schema, tables: Mapping[str, Table],
                      table: FromClause) -> ColumnElement[bool]:
    """A SOQL ``WHERE`` condition on ``obj``'s own fields (``Industry = 'Energy' AND AnnualRevenue > 1000000``),
    compiled against ``table`` (the object's table or an alias of it) as a query's WHERE clause would be: the same
    parser, the same semantics. Used by criteria-based sharing rules. Parent paths and relative date literals are
    refused (MALFORMED_QUERY): the condition must stand alone in any query it is added to."""
    text = f"SELECT Id FROM {obj.name} WHERE {condition}"
    query = parse_soql(text)
    if query.where is None:
        raise MalformedQueryError(f"no condition in {condition!r}")
    compiler = _Compiler(schema, tables, include_deleted=False, text=text, user_id=None)
    scope = _Scope(compiler, obj, table, query)
    compiled = scope.condition(query.where)
    if scope.joins:
        raise MalformedQueryError(f"{condition!r}: a sharing condition names fields of {obj.name} itself, "
                                  "not of related records")
    if compiler.date_params:
        raise MalformedQueryError(f"{condition!r}: relative date literals (TODAY, LAST_N_DAYS:n, ...) are not "
                                  "supported in a sharing condition")
    return compiled


__all__ = [
    "AGGREGATE_FUNCTIONS",
    "DATE_FUNCTIONS",
    "MAX_FIELDS_MACRO_LIMIT",
    "MAX_OFFSET",
    "MAX_RELATIONSHIP_DEPTH",
    "ChildOut",
    "ChildPlan",
    "CompiledQuery",
    "Converter",
    "DateParam",
    "FieldOut",
    "Out",
    "ParentOut",
    "RecordShape",
    "TypeOfOut",
    "compile_condition",
    "compile_query",
    "positioned",
]
