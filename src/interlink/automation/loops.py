"""The ``loop`` flow action: nested actions for each item of a collection (the platform's Loop element).

::

    actions:
      - loop:
          name: Each_Contact                  # optional: for error messages
          over: Contacts                      # the records of a child relationship of $Record ...
          # query: "SELECT Id FROM Case WHERE AccountId = {!$Record.Id} AND IsClosed = false"   # ... or SOQL
          # collection: Get_Invoices.items    # ... or (API flows) an array of a named callout's answer
          actions:
            - update: {object: Contact, id: "{!$Item.Id}", values: {Description: "{!$Record.Name}"}}
            - create: {object: Task, values: {Subject: "Call {!$Item.LastName}", WhoId: "{!$Item.Id}"}}

Inside the loop ``{!$Item.Field}`` is the current item (parents through lookups too: ``{!$Item.Account.Name}``),
``$Record`` is still the record the flow runs for. A merge field in ``query`` becomes a SOQL literal (quoted and
escaped): write ``AccountId = {!$Record.Id}``, without quotes.

Bulk-safe, as the platform's guidance asks ("no DML in a loop"): the items of every record of the batch are
collected first (one query for a relationship, one per distinct query text), then each nested action runs **once**
for all of them: one DML call for all the items' creates, one for their updates, and so on. It is the same as
adding to a collection variable in the loop and saving after it. Governor limits per transaction: 50,000 query
rows (``Too many query rows: 50001``) and 10,000 loop iterations (``Too many loop iterations: 10001``). A failure
fails the record whose item failed, which then follows the flow's fault path (or fails the save).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlink.errors import InterlinkError, MetadataError
from interlink.metadata.model import ObjectDef, Schema

if TYPE_CHECKING:
    from interlink.automation.flows import Action, ActionKind

MAX_LOOP_ITEMS = 10_000  # loop iterations per transaction (every loop of every flow in it)
MAX_QUERY_ROWS = 50_000  # the platform's SOQL rows per transaction
_IN_QUERY = re.compile(r"\{!\s*\$(Record__Prior|Record|User)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*\}")
_KEYS = {"name", "over", "query", "collection", "actions"}


class LoopLimitExceeded(InterlinkError):
    """A governor limit of the transaction reached by a loop (query rows, iterations)."""

    error_code = "LIMIT_EXCEEDED"
    http_status = 400


@dataclass(frozen=True)
class LoopDef:
    """What a loop iterates over and what it runs per item."""

    name: str
    source: str  # over | query | collection
    item_object: str | None  # the items' object (None for a collection: JSON items)
    parent_field: str | None = None  # over: the child's lookup to $Record
    query: str | None = None
    collection: tuple[str, str] | None = None  # (the named callout, the path of the array in its answer)
    actions: tuple[Action, ...] = ()


def parse_loop(where: str, key: str, spec: Any, obj: ObjectDef, schema: Schema, kinds: Mapping[str, ActionKind],
               parse_actions: Callable[..., list[Action]], *, api: bool, outputs: set[str]) -> LoopDef:
    """Check a ``loop`` action when flows load: MetadataError naming the file and the key."""
    if not isinstance(spec, dict) or set(spec) - _KEYS:
        raise MetadataError(f"{where}: loop takes {', '.join(sorted(_KEYS))}")
    sources = [name for name in ("over", "query", "collection") if spec.get(name) is not None]
    if len(sources) != 1:
        raise MetadataError(f"{where}: loop: give one of over (a child relationship), query (SOQL) or collection "
                            "(an array of a named callout's answer)")
    name = str(spec.get("name") or "Loop")
    source = sources[0]
    item: ObjectDef | None = None
    parent_field = query = None
    collection = None
    if source == "over":
        relation = str(spec["over"])
        found = next((c for c in schema.children_of(obj.name)
                      if (c.relationship_name or "").lower() == relation.lower()), None)
        item = schema.object(found.child_object) if found is not None else None
        if found is None or item is None:
            known = sorted(c.relationship_name for c in schema.children_of(obj.name) if c.relationship_name)
            raise MetadataError(f"{where}: over: {obj.name} has no child relationship {relation!r}"
                                + (f" (it has {', '.join(known)})" if known else ""))
        if not item.is_stored or item.is_external:
            raise MetadataError(f"{where}: over: {relation} holds {item.name} records the org does not store")
        parent_field = found.field
    elif source == "query":
        query = spec["query"]
        if not isinstance(query, str):
            raise MetadataError(f"{where}: query: a SOQL query such as \"SELECT Id FROM Case WHERE AccountId = "
                                "{!$Record.Id}\"")
        item = _check_query(f"{where}: query", query, obj, schema)
    else:
        if not api:
            raise MetadataError(f"{where}: collection: loops over a callout's answer run in API flows "
                                "(trigger: api), where callouts wait for their answers")
        step, _, path = str(spec["collection"]).partition(".")
        if step not in outputs:
            raise MetadataError(f"{where}: collection: {step!r} is not a callout or external_service named earlier "
                                f"in this flow (name: {step})")
        collection = (step, path)
    raw = spec.get("actions")
    if not isinstance(raw, list) or not raw:
        raise MetadataError(f"{where}: loop: actions: the actions to run for each item")
    actions = parse_actions(where, key, raw, obj, schema, kinds, before=False, item=item or _JSON_ITEM, api=api,
                            outputs=outputs)
    for number, action in enumerate(actions, start=1):
        if api and action.kind in kinds and kinds[action.kind].call is not None:
            raise MetadataError(f"{where}.actions[{number}]: an API flow's callouts wait for their answers and "
                                "cannot run per item of a loop; call once and loop over the answer (collection)")
        if item is None and (action.kind == "decision" or action.kind in kinds):
            raise MetadataError(f"{where}.actions[{number}]: a loop over a collection runs create, update (by id) "
                                "and publish actions")
    return LoopDef(name, source, item.name if item is not None else None, parent_field, query, collection,
                   tuple(actions))


# Items of a collection are JSON: no object to check their fields against.
_JSON_ITEM = ObjectDef(name="$Item", label="$Item", label_plural="$Item", key_prefix="", fields=())


def is_json_item(obj: ObjectDef | None) -> bool:
    return obj is _JSON_ITEM


def _check_query(where: str, text: str, obj: ObjectDef, schema: Schema) -> ObjectDef:
    from interlink.soql import ast
    from interlink.soql.compiler import compile_query
    from interlink.soql.parser import parse_soql
    from interlink.store.tables import build_metadata

    for scope, path in _IN_QUERY.findall(text):
        if scope != "User" and _path_problem(obj, path, schema):
            raise MetadataError(f"{where}: {{!${scope}.{path}}}: {_path_problem(obj, path, schema)}")
        if scope == "User" and path.lower() != "id":
            raise MetadataError(f"{where}: {{!$User.{path}}}: only $User.Id is available")
    if "{!" in _IN_QUERY.sub("", text):
        raise MetadataError(f"{where}: merge fields in a query are {{!$Record.Field}}, {{!$Record__Prior.Field}} or "
                            "{!$User.Id}")
    checked = _IN_QUERY.sub("null", text)
    try:
        query = parse_soql(checked)
        target = schema.object(query.object)
        if target is None or not target.is_stored or target.is_external:
            raise MetadataError(f"{where}: {query.object!r} is not an object whose records the org stores")
        _metadata, tables, _system = build_metadata(schema)
        compiled = compile_query(query, schema, tables)
    except InterlinkError as error:
        raise MetadataError(f"{where}: {error.message}") from None
    if compiled.kind != "records" or not any(isinstance(s.expr, ast.FieldPath) and s.expr.parts == ("Id",)
                                             for s in query.select):
        raise MetadataError(f"{where}: the query selects records with their Id (SELECT Id, ... FROM {target.name})")
    return target


def _path_problem(obj: ObjectDef, path: str, schema: Schema) -> str | None:
    from interlink.automation.flows import _check_parent_path

    return _check_parent_path(obj, path, schema)


def query_text(text: str, resolve: Callable[[str, str], Any]) -> str:
    """``text`` with each merge field replaced by its value as a SOQL literal (quoted, escaped)."""
    from interlink.soql.render import literal

    return _IN_QUERY.sub(lambda m: literal(resolve(m.group(1), m.group(2))), text)


def count(counters: dict[str, int], name: str, amount: int) -> None:
    """Add ``amount`` to a governor counter of the transaction; LoopLimitExceeded past its limit."""
    counters[name] = counters.get(name, 0) + amount
    limit = MAX_QUERY_ROWS if name == "query_rows" else MAX_LOOP_ITEMS
    if counters[name] > limit:
        what = "query rows" if name == "query_rows" else "loop iterations"
        raise LoopLimitExceeded(f"Too many {what}: {counters[name]}")


__all__ = ["MAX_LOOP_ITEMS", "MAX_QUERY_ROWS", "LoopDef", "LoopLimitExceeded", "is_json_item", "parse_loop",
           "query_text"]
