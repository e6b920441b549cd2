"""sObject Collections and sObject Tree: many records in one call, with ``allOrNone``.

Paths (``B`` = ``/services/data/vXX.X``)::

    POST    B/composite/sobjects                           create (mixed types, <= 200 records)      v42+
    PATCH   B/composite/sobjects                           update (each record carries its id)       v42+
    DELETE  B/composite/sobjects?ids=a,b&allOrNone=false   delete (<= 200 ids, mixed types)          v42+
    GET     B/composite/sobjects/{type}?ids=&fields=       retrieve (null for ids not found)         v42+
    POST    B/composite/sobjects/{type}                    retrieve with {"ids": [...], "fields": [...]}
    PATCH   B/composite/sobjects/{type}/{extIdField}       upsert (one type; items carry ``created``) v46+
    POST    B/composite/tree/{type}                        nested parent-child creation, all or nothing v34+

Collections answer HTTP 200 with one result per record, in request order, and 400 only for a malformed
request. Records are processed in *chunks* — runs of consecutive records of the same type, as the platform
does ({a1, a2, c1, a3} is three chunks) — at most 10 per request. All chunks run in one unit of work;
with ``allOrNone: true`` a failure anywhere undoes every chunk (and discards the change events and other
after-commit work they queued), and each record that had no error of its own reports
ALL_OR_NONE_OPERATION_ROLLED_BACK.

A tree creates its records level by level (the roots, then every second-level record of one type, and so
on), setting each child's lookup to its parent from the child relationship named in the body. It is all or
nothing: success is 201 with every reference id and its new id; failure is 400 with the records that
failed, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.responses import Response

from interlink.api.http import json_response, parse_json_object
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.api.sobjects import caller_columns, render_record
from interlink.errors import (
    InterlinkError,
    InvalidFieldError,
    InvalidTypeError,
    JsonParserError,
    NotFoundError,
    RequestError,
    all_or_none_rolled_back,
)
from interlink.metadata.model import ObjectDef
from interlink.records.results import SaveResult

if TYPE_CHECKING:
    from interlink.records.context import Context
    from interlink.records.service import RecordService


MAX_RECORDS = 200  # create, update, upsert, delete
MAX_RETRIEVE_IDS = 2000  # POST retrieve (GET is bounded by the URL length first)
MAX_CHUNKS = 10
MAX_TREE_RECORDS = 200
MAX_TREE_DEPTH = 5
MAX_TREE_TYPES = 5
COLLECTIONS_SINCE = 42.0
UPSERT_SINCE = 46.0
TREE_SINCE = 34.0

_ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


# -- errors ------------------------------------------------------------------------------------------------------

def _too_many(limit: int) -> RequestError:
    return RequestError(f"record limit reached. cannot submit more than {limit} records into this call",
                        error_code="EXCEEDED_ID_LIMIT")


def _invalid_input(message: str) -> RequestError:
    return RequestError(message, error_code="INVALID_INPUT")


def _missing(name: str) -> RequestError:
    return RequestError(f"Missing required parameter: {name}", [name], error_code="MISSING_ARGUMENT")


def _since(request: ApiRequest, version: float) -> None:
    """Resources newer than the request's API version do not exist there."""
    if float(request.version) < version:
        raise NotFoundError()


# -- one transaction, all or nothing ---------------------------------------------------------------------------

class _Undo(Exception):
    """Raised inside :func:`_one_transaction` to undo everything done inside it."""


@contextmanager
def _one_transaction(records: RecordService, context: Context) -> Iterator[None]:
    """Run the body in one unit of work; raising :class:`_Undo` inside undoes all of its writes.

    On its own, the request's unit of work is rolled back (its rollback callbacks run, its after-commit work
    is dropped). Inside an enclosing unit of work (a composite request) only a savepoint is rolled back, which
    drops what was queued inside it the same way.
    """
    outer = records.units.current
    if outer is None:
        try:
            with records.unit_of_work(context):
                yield
        except _Undo:
            pass
        return
    try:
        with outer.savepoint():  # a rolled-back savepoint also drops the change records queued inside it
            yield
    except _Undo:
        pass


def _mark_rolled_back(results: list[SaveResult], *, inserted: Callable[[SaveResult], bool]) -> None:
    """Records that had no error of their own were undone with the rest: say so, and drop new ids."""
    for result in results:
        if result.success:
            result.errors.append(all_or_none_rolled_back())
            if inserted(result):
                result.id = None
            if result.created is not None:
                result.created = False


def _all_or_none_flag(raw: Any, where: str = "allOrNone") -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise JsonParserError(f"Cannot deserialize value of type `boolean` from {type(raw).__name__}: {where}")


# -- collections: request parsing --------------------------------------------------------------------------------

def _records_body(request: ApiRequest) -> tuple[list[dict[str, Any]], bool]:
    body = parse_json_object(request.body)
    all_or_none = _all_or_none_flag(body.get("allOrNone"))
    records = body.get("records")
    if records is None:
        raise _missing("records")
    if not isinstance(records, list):
        raise JsonParserError("Cannot deserialize value of type `List<SObject>` from non-array value: records")
    if len(records) > MAX_RECORDS:
        raise _too_many(MAX_RECORDS)
    for record in records:
        if not isinstance(record, dict):
            raise JsonParserError("Cannot deserialize instance of SObject from non-object value: records")
    return records, all_or_none


def _record_type(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    if not isinstance(attributes, dict):
        return None
    value = attributes.get("type")
    return value if isinstance(value, str) and value.strip() else None


def _chunks(request: ApiRequest, records: list[dict[str, Any]],
            results: list[SaveResult]) -> list[tuple[ObjectDef, list[int]]]:
    """Runs of consecutive records of one type (at most 10); records without a usable type fail in place."""
    schema = request.org.store.schema
    runs: list[tuple[str, list[int]]] = []
    for index, record in enumerate(records):
        name = _record_type(record)
        if name is None:
            results[index].errors.append(InvalidTypeError(
                "Missing the sObject type: each record needs attributes.type", ["attributes"]))
            continue
        if runs and runs[-1][0].lower() == name.lower():
            runs[-1][1].append(index)
        else:
            runs.append((name, [index]))
    if len(runs) > MAX_CHUNKS:
        raise RequestError(f"Cannot have more than {MAX_CHUNKS} chunks in a single operation. Please rearrange "
                           "the data to reduce chunking.", error_code="INVALID_BATCH_REQUEST")
    chunks: list[tuple[ObjectDef, list[int]]] = []
    for name, indexes in runs:
        obj = schema.object(name)
        if obj is None:
            for index in indexes:
                results[index].errors.append(InvalidTypeError(f"sObject type '{name}' is not supported.", []))
            continue
        chunks.append((obj, indexes))
    return chunks


def _save_chunks(request: ApiRequest, records: list[dict[str, Any]], all_or_none: bool,
                 save: Callable[[ObjectDef, list[dict[str, Any]]], list[SaveResult]],
                 *, inserting: bool) -> list[SaveResult]:
    results = [SaveResult() for _ in records]
    chunks = _chunks(request, records, results)
    org = request.org
    with _one_transaction(org.records, request.context):
        for obj, indexes in chunks:
            try:
                saved = save(obj, [records[i] for i in indexes])
            except InterlinkError as error:  # the whole chunk was refused (e.g. the type is not createable)
                saved = [SaveResult(errors=[error]) for _ in indexes]
            for index, result in zip(indexes, saved, strict=True):
                results[index] = result
        if all_or_none and any(not r.success for r in results):
            raise _Undo
    if all_or_none and any(not r.success for r in results):
        _mark_rolled_back(results, inserted=lambda _r: inserting)
    return results


# -- collections: handlers -------------------------------------------------------------------------------------

async def _create_or_update(request: ApiRequest, *, inserting: bool) -> Response:
    _since(request, COLLECTIONS_SINCE)
    records, all_or_none = _records_body(request)
    service, context = request.org.records, request.context
    save = service.create if inserting else service.update
    results = _save_chunks(request, records, all_or_none,
                           lambda obj, rows: save(context, obj.name, rows, all_or_none=all_or_none),
                           inserting=inserting)
    return json_response([r.to_wire() for r in results], pretty=request.pretty)


async def create_records(request: ApiRequest) -> Response:
    return await _create_or_update(request, inserting=True)


async def update_records(request: ApiRequest) -> Response:
    return await _create_or_update(request, inserting=False)


async def upsert_records(request: ApiRequest) -> Response:
    _since(request, UPSERT_SINCE)
    service, context = request.org.records, request.context
    obj = service.object(request.params["type"])
    field_name = service.external_id_field(obj, unquote(request.params["field"])).name
    records, all_or_none = _records_body(request)
    results = [SaveResult() for _ in records]
    for result, record in zip(results, records, strict=True):
        name = _record_type(record)
        if name is None:
            result.errors.append(InvalidTypeError("Missing the sObject type: each record needs attributes.type",
                                                  ["attributes"]))
        elif name.lower() != obj.name.lower():
            result.errors.append(InvalidTypeError(
                f"The record's type {name} does not match the sObject {obj.name} in the URL", ["attributes"]))
    wanted = [i for i, r in enumerate(results) if r.success]
    with _one_transaction(service, context):
        if wanted:
            saved = service.upsert(context, obj.name, field_name, [records[i] for i in wanted],
                                   all_or_none=all_or_none)
            for index, result in zip(wanted, saved, strict=True):
                results[index] = result
        if all_or_none and any(not r.success for r in results):
            raise _Undo
    if all_or_none and any(not r.success for r in results):
        _mark_rolled_back(results, inserted=lambda r: bool(r.created))
    body = []
    for result in results:
        item = result.to_wire()
        item["created"] = bool(result.created) and result.success  # a failed upsert created nothing
        body.append(item)
    return json_response(body, pretty=request.pretty)


def _ids_param(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        raise _missing("ids")
    return [part.strip() for part in raw.split(",") if part.strip()]


async def delete_records(request: ApiRequest) -> Response:
    _since(request, COLLECTIONS_SINCE)
    record_ids = _ids_param(request.query.get("ids"))
    if len(record_ids) > MAX_RECORDS:
        raise _too_many(MAX_RECORDS)
    all_or_none = _all_or_none_flag(request.query.get("allOrNone"), "allOrNone parameter")
    service, context = request.org.records, request.context
    results: list[SaveResult] = []
    with _one_transaction(service, context):
        results = service.delete(context, record_ids, all_or_none=all_or_none)
        if all_or_none and any(not r.success for r in results):
            raise _Undo
    if all_or_none and any(not r.success for r in results):
        _mark_rolled_back(results, inserted=lambda _r: False)
    return json_response([r.to_wire() for r in results], pretty=request.pretty)


def _retrieve(request: ApiRequest, record_ids: list[str], fields: list[str]) -> Response:
    if not record_ids:
        raise _missing("ids")
    if len(record_ids) > MAX_RETRIEVE_IDS:
        raise _too_many(MAX_RETRIEVE_IDS)
    if not fields:
        raise _missing("fields")
    service = request.org.records
    obj = request.sobject()
    rows = [service.visible_row(request.context, obj, row)
            for row in service.retrieve(obj.name, record_ids, caller_columns(request, obj, fields))]
    return json_response([None if row is None else render_record(request, obj, row, fields) for row in rows],
                         pretty=request.pretty)


async def retrieve_records(request: ApiRequest) -> Response:
    _since(request, COLLECTIONS_SINCE)
    fields = [f.strip() for f in (request.query.get("fields") or "").split(",") if f.strip()]
    return _retrieve(request, _ids_param(request.query.get("ids")), fields)


async def retrieve_records_post(request: ApiRequest) -> Response:
    _since(request, COLLECTIONS_SINCE)
    body = parse_json_object(request.body)
    record_ids, fields = body.get("ids"), body.get("fields")
    for name, value in (("ids", record_ids), ("fields", fields)):
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise JsonParserError(f"Cannot deserialize value of type `List<String>` from {name}")
    return _retrieve(request, [i.strip() for i in record_ids or [] if i.strip()],
                     [f.strip() for f in fields or [] if f.strip()])


# -- sObject Tree ----------------------------------------------------------------------------------------------

@dataclass
class _Node:
    reference_id: str
    obj: ObjectDef
    values: dict[str, Any]
    level: int
    parent: _Node | None = None
    parent_field: str | None = None
    record_id: str | None = None
    errors: list[InterlinkError] = field(default_factory=list)


def _tree_nodes(request: ApiRequest, root: ObjectDef, records: Any) -> list[_Node]:
    """Flatten the request's trees (depth first, request order); request-level problems raise."""
    schema = request.org.store.schema
    nodes: list[_Node] = []

    def walk(items: Any, expected: ObjectDef, level: int, parent: _Node | None, parent_field: str | None,
             where: str) -> None:
        if not isinstance(items, list):
            raise JsonParserError(f"Cannot deserialize value of type `List<SObject>` from non-array value: {where}")
        if level > MAX_TREE_DEPTH:
            raise _invalid_input(f"sObject trees can be at most {MAX_TREE_DEPTH} levels deep")
        for raw in items:
            if not isinstance(raw, dict):
                raise JsonParserError(f"Cannot deserialize instance of SObject from non-object value: {where}")
            attributes = raw.get("attributes")
            reference_id = attributes.get("referenceId") if isinstance(attributes, dict) else None
            if not isinstance(reference_id, str) or not reference_id.strip():
                raise _invalid_input("Include a reference ID (attributes.referenceId) for each record in the "
                                     "request")
            node = _Node(reference_id, expected, {}, level, parent, parent_field)
            nodes.append(node)
            if len(nodes) > MAX_TREE_RECORDS:
                raise _too_many(MAX_TREE_RECORDS)
            type_name = _record_type(raw)
            if type_name is None:
                node.errors.append(InvalidTypeError("Missing the sObject type: each record needs attributes.type",
                                                    ["attributes"]))
            elif type_name.lower() != expected.name.lower():
                node.errors.append(InvalidTypeError(
                    f"The record's type {type_name} does not match the expected sObject {expected.name}",
                    ["attributes"]))
            relationships = {rel.relationship_name.lower(): rel for rel in schema.children_of(expected.name)
                             if rel.relationship_name}
            for key, value in raw.items():
                if key == "attributes":
                    continue
                if isinstance(value, dict) and "records" in value:
                    rel = relationships.get(key.lower())
                    child = schema.object(rel.child_object) if rel is not None else None
                    if rel is None or child is None:
                        node.errors.append(InvalidFieldError(
                            f"No such child relationship '{key}' on sobject of type {expected.name}", [key]))
                        continue
                    walk(value["records"], child, level + 1, node, rel.field, f"{where}.{key}.records")
                else:
                    node.values[key] = value

    walk(records, root, 1, None, None, "records")
    types = {n.obj.name for n in nodes}
    if len(types) > MAX_TREE_TYPES:
        raise _invalid_input(f"An sObject tree request can contain at most {MAX_TREE_TYPES} object types")
    seen: dict[str, _Node] = {}
    for node in nodes:
        key = node.reference_id
        if key in seen:
            node.errors.append(_invalid_input(f"Duplicate ReferenceId provided in the request: {key}"))
        else:
            seen[key] = node
    return nodes


def _tree_failure(nodes: list[_Node]) -> Response:
    failed = []
    for node in nodes:
        own = [e for e in node.errors if e.error_code != _ROLLED_BACK]
        if own:
            failed.append({"referenceId": node.reference_id, "errors": [e.to_save_error() for e in own]})
    return json_response({"hasErrors": True, "results": failed}, status=400)


def _create_tree(request: ApiRequest, nodes: list[_Node]) -> list[_Node]:
    """Insert level by level, one call per type per level; the nodes in the order they were created."""
    service, context = request.org.records, request.context
    created: list[_Node] = []
    with _one_transaction(service, context):
        for level in range(1, MAX_TREE_DEPTH + 1):
            groups: dict[str, list[_Node]] = {}
            for node in nodes:
                if node.level == level:
                    groups.setdefault(node.obj.name, []).append(node)
            for name, group in groups.items():
                rows = []
                for node in group:
                    row = dict(node.values)
                    if node.parent is not None and node.parent_field is not None:
                        for key in [k for k in row if k.lower() == node.parent_field.lower()]:
                            del row[key]
                        row[node.parent_field] = node.parent.record_id
                    rows.append(row)
                try:
                    results = service.create(context, name, rows, all_or_none=True)
                except InterlinkError as error:  # the whole type was refused (e.g. not createable)
                    results = [SaveResult(errors=[error]) for _ in group]
                for node, result in zip(group, results, strict=True):
                    node.errors.extend(result.errors)
                    node.record_id = result.id
                if any(node.errors for node in group):
                    raise _Undo
                created.extend(group)
    return created


async def create_tree(request: ApiRequest) -> Response:
    _since(request, TREE_SINCE)
    root = request.sobject()
    body = parse_json_object(request.body)
    if body.get("records") is None:
        raise _missing("records")
    nodes = _tree_nodes(request, root, body["records"])
    if not nodes:
        raise _invalid_input("The request must contain at least one record")
    if any(node.errors for node in nodes):
        return _tree_failure(nodes)
    created = _create_tree(request, nodes)
    if any(node.errors for node in nodes):
        return _tree_failure(nodes)
    return json_response({"hasErrors": False, "results": [
        {"referenceId": node.reference_id, "id": node.record_id} for node in created]},
        status=201, pretty=request.pretty)


def register(router: ResourceRouter) -> None:
    """Add sObject Collections and sObject Tree to ``router``."""
    router.add("composite/sobjects", {"POST": create_records, "PATCH": update_records, "DELETE": delete_records})
    router.add("composite/sobjects/{type}", {"GET": retrieve_records, "POST": retrieve_records_post})
    router.add("composite/sobjects/{type}/{field}", {"PATCH": upsert_records})
    router.add("composite/tree/{type}", {"POST": create_tree})
