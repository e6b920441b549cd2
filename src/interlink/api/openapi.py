"""An OpenAPI 3.0 document of the REST data API, generated from the org's live metadata and the data API's router.

    GET /interlink/v1/openapi.json[?version=66.0][&objects=Account,Contact]

The document describes one API version (the newest served unless ``version`` says otherwise) with full paths
(``/services/data/v66.0/...``) and the caller's instance URL as its server. The router says which resources
exist; this module says what each one takes and answers. Resources whose path holds ``{type}`` are written out
once per object, so every object gets its own record schemas built from its field types (``Account``,
``AccountCreate``, ``AccountUpdate``). ``objects`` limits those per-object paths to the named objects.

The schema given is the caller's view of the org (``QueryEngine.schema_for``, what describe shows them): objects and
fields they may not read are absent, and the create, update and delete operations and request-body fields follow
their edit rights, so each user's document describes the API as they may use it.

A router resource that is neither described here nor listed in :data:`NOT_DESCRIBED` is an error a test
catches, so a new resource cannot be left out of the document silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from interlink.api.collections import COLLECTIONS_SINCE, MAX_RECORDS, MAX_RETRIEVE_IDS, TREE_SINCE, UPSERT_SINCE
from interlink.api.composite import MAX_BATCH, MAX_COMPOSITE, MAX_GRAPHS
from interlink.metadata.model import NUMBER_TYPES, FieldDef, FieldType, ObjectDef

if TYPE_CHECKING:
    from interlink.api.resources import ResourceRouter
    from interlink.metadata.model import Schema

OPENAPI_VERSION = "3.0.3"
ID_PATTERN = "^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$"
_TIME_PATTERN = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z?$"

# Router resources (pattern, method) the document leaves out, and why.
NOT_DESCRIBED: dict[tuple[str, str], str] = {
    ("sobjects/{type}/{id}", "POST"): "only POST sobjects/{type}/Id, an alias of create",
    ("sobjects/{type}/{field}/{value}", "POST"): "an alias of the PATCH upsert",
    ("graphql", "POST"): "GraphQL has its own schema and introspection (docs/graphql.md)",
    **{(f"jobs/{pattern}", method): "Bulk API 2.0 speaks CSV; see docs/bulk.md" for pattern, method in (
        ("ingest", "GET"), ("ingest", "POST"), ("query", "GET"), ("query", "POST"),
        ("ingest/{job}", "GET"), ("ingest/{job}", "PATCH"), ("ingest/{job}", "DELETE"),
        ("query/{job}", "GET"), ("query/{job}", "PATCH"), ("query/{job}", "DELETE"),
        ("ingest/{job}/batches", "PUT"), ("ingest/{job}/successfulResults", "GET"),
        ("ingest/{job}/failedResults", "GET"), ("ingest/{job}/unprocessedrecords", "GET"),
        ("query/{job}/results", "GET"), ("query/{job}/resultPages", "GET"))},
    ("actions/custom/externalService", "GET"): "invocable actions depend on the project's External Services",
    ("actions/custom/externalService/{action}", "POST"): "invocable actions depend on the project's services",
    ("actions/custom/externalService/{action}", "GET"): "invocable actions depend on the project's services",
    ("actions/custom/flow", "GET"): "invocable actions depend on the project's flows",
    ("actions/custom/flow/{flow}", "POST"): "invocable actions depend on the project's flows",
}

# The first API version each resource is served at (the handlers answer 404 below it).
_SINCE: dict[str, float] = {
    "composite": 38.0, "composite/batch": 34.0, "composite/graph": 50.0, "composite/sobjects": COLLECTIONS_SINCE,
    "composite/sobjects/{type}": COLLECTIONS_SINCE, "composite/sobjects/{type}/{field}": UPSERT_SINCE,
    "composite/tree/{type}": TREE_SINCE,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    """Error answers: always 401 (no or bad token) and 403 (allocation used up), plus ``statuses``."""
    texts = {300: "Several records match the external id: their URLs", 400: "Bad request",
             401: "Missing, expired or revoked token (INVALID_SESSION_ID)", 403: "Refused (REQUEST_LIMIT_EXCEEDED)",
             404: "Not found (NOT_FOUND)", 405: "Method not allowed", 409: "Conflict",
             412: "Precondition failed", 413: "Request body over the size limit (EXCEEDED_MAX_SIZE_REQUEST)"}
    answers = {str(code): _json(_ref("ErrorList"), texts[code]) for code in sorted({401, 403, *statuses})}
    if 300 in statuses:
        answers["300"] = _json({"type": "array", "items": {"type": "string"}}, texts[300])
    return answers


def _param(name: str, where: str, schema: dict[str, Any], description: str = "", *,
           required: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        param["description"] = description
    return param


_IF_MODIFIED_SINCE = _param("If-Modified-Since", "header", {"type": "string"},
                            "An HTTP date: 304 when nothing changed since then")
_IF_UNMODIFIED_SINCE = _param("If-Unmodified-Since", "header", {"type": "string"},
                              "An HTTP date: 412 when the record changed since then")
_ID_PARAM = _param("id", "path", {"type": "string", "pattern": ID_PATTERN}, "A 15- or 18-character record id")
_FIELDS_PARAM = _param("fields", "query", {"type": "string"}, "Comma-separated field names to return")


# -- field and record schemas ----------------------------------------------------------------------------------

def field_schema(fdef: FieldDef, *, write: bool = False) -> dict[str, Any]:
    """The JSON schema of one field's value (``write``: as a request may send it)."""
    kind = fdef.type
    schema: dict[str, Any]
    if kind in (FieldType.ID, FieldType.REFERENCE):
        schema = {"type": "string", "pattern": ID_PATTERN}
    elif kind is FieldType.BOOLEAN:
        schema = {"type": "boolean"}
    elif kind is FieldType.INT:
        schema = {"type": "integer"}
    elif kind in NUMBER_TYPES:
        schema = {"type": "number"}
    elif kind is FieldType.DATE:
        schema = {"type": "string", "format": "date"}
    elif kind is FieldType.DATETIME:
        # Answers read 2024-01-31T09:30:00.000+0000, which is not RFC 3339; requests may send RFC 3339.
        schema = {"type": "string", "format": "date-time"} if write else {"type": "string"}
    elif kind is FieldType.TIME:
        schema = {"type": "string", "pattern": _TIME_PATTERN}
    else:
        schema = {"type": "string"}
        if fdef.length:
            schema["maxLength"] = fdef.length
        if kind is FieldType.PICKLIST and fdef.restricted_picklist and fdef.picklist_values:
            schema["enum"] = sorted(fdef.picklist_names) + ([None] if fdef.nillable else [])
    if fdef.nillable or (not write and kind is not FieldType.BOOLEAN):
        schema["nullable"] = True
    note = ", values separated by ;" if kind is FieldType.MULTIPICKLIST else ""
    schema["description"] = f"{fdef.label or fdef.name} ({kind.value}{note})"
    return schema


def _writable(obj: ObjectDef, *, create: bool) -> list[FieldDef]:
    return [f for f in obj.fields if not f.is_system and (f.createable if create else f.updateable)]


def record_schemas(obj: ObjectDef) -> dict[str, dict[str, Any]]:
    """``{Name}`` (a record as answered), ``{Name}Create`` and ``{Name}Update`` (request bodies)."""
    record = {"type": "object", "description": f"A {obj.label} record as the API answers it",
              "properties": {"attributes": _ref("Attributes"),
                             **{f.name: field_schema(f) for f in obj.fields}}}
    schemas = {obj.name: record}
    attributes = {"type": "object", "properties": {"type": {"type": "string"}}}
    for suffix, create in (("Create", True), ("Update", False)):
        fields = _writable(obj, create=create)
        properties: dict[str, Any] = {"attributes": attributes, **{f.name: field_schema(f, write=True) for f in fields}}
        for fdef in fields:  # a parent by external id: "Account": {"Ext__c": "A-1"}
            if fdef.type is FieldType.REFERENCE and fdef.relationship_name:
                properties[fdef.relationship_name] = {
                    "type": "object", "description": f"The {fdef.relationship_name} parent, named by an external id",
                    "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "number"}]}}
        body: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if create:
            required = [f.name for f in fields if f.required and f.default_value is None and not f.auto_number
                        and f.name != "OwnerId"]  # the owner defaults to the caller
            if required:
                body["required"] = required
        else:
            properties["Id"] = {"type": "string", "pattern": ID_PATTERN, "description": "Must match the URL's id"}
        schemas[obj.name + suffix] = body
    return schemas


def external_id_fields(obj: ObjectDef) -> list[str]:
    """Fields a record can be addressed by in ``sobjects/{type}/{field}/{value}``: Id, external ids, unique text."""
    names = ["Id"]
    names += [f.name for f in obj.fields if (f.external_id or f.unique) and f.name != "Id"]
    return names


# -- shared components ---------------------------------------------------------------------------------------

def _components() -> dict[str, Any]:
    error = {"type": "object", "required": ["message", "errorCode"],
             "properties": {"message": {"type": "string"}, "errorCode": {"type": "string"},
                            "fields": {"type": "array", "items": {"type": "string"}}}}
    save_error = {"type": "object", "properties": {"statusCode": {"type": "string"}, "message": {"type": "string"},
                                                  "fields": {"type": "array", "items": {"type": "string"}}}}
    save_result = {"type": "object", "required": ["success", "errors"],
                   "properties": {"id": {"type": "string", "nullable": True}, "success": {"type": "boolean"},
                                  "errors": {"type": "array", "items": _ref("SaveError")},
                                  "created": {"type": "boolean"}}}
    loose = {"type": "object", "additionalProperties": True}
    subrequest = {"type": "object", "required": ["method", "url", "referenceId"], "properties": {
        "method": {"type": "string", "enum": ["GET", "POST", "PATCH", "PUT", "DELETE"]},
        "url": {"type": "string", "description": "/services/data/vXX.X/..., may hold @{referenceId.path}"},
        "referenceId": {"type": "string"}, "body": {"nullable": True},
        "httpHeaders": {"type": "object", "additionalProperties": {"type": "string"}}}}
    sub_response = {"type": "object", "properties": {
        "body": {"nullable": True}, "httpHeaders": {"type": "object", "additionalProperties": {"type": "string"}},
        "httpStatusCode": {"type": "integer"}, "referenceId": {"type": "string", "nullable": True}}}
    return {
        "Error": error,
        "ErrorList": {"type": "array", "items": _ref("Error"), "description": "The platform's error body"},
        "SaveError": save_error,
        "SaveResult": save_result,
        "SaveResultList": {"type": "array", "items": _ref("SaveResult")},
        "Attributes": {"type": "object", "properties": {"type": {"type": "string"}, "url": {"type": "string"}}},
        "QueryRecord": {"type": "object", "properties": {"attributes": _ref("Attributes")},
                        "additionalProperties": True},
        "QueryResult": {"type": "object", "required": ["totalSize", "done", "records"], "properties": {
            "totalSize": {"type": "integer"}, "done": {"type": "boolean"},
            "nextRecordsUrl": {"type": "string"}, "records": {"type": "array", "items": _ref("QueryRecord")}}},
        "SearchResult": {"type": "object", "properties": {
            "searchRecords": {"type": "array", "items": _ref("QueryRecord")}, "metadata": loose}},
        "ParameterizedSearch": {"type": "object", "required": ["q"], "properties": {
            "q": {"type": "string"}, "in": {"type": "string", "enum": ["ALL", "NAME", "EMAIL", "PHONE", "SIDEBAR"]},
            "fields": {"type": "array", "items": {"type": "string"}},
            "sobjects": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "fields": {"type": "array", "items": {"type": "string"}},
                "where": {"type": "string"}, "orderBy": {"type": "string"}, "limit": {"type": "integer"}}}},
            "defaultLimit": {"type": "integer"}, "overallLimit": {"type": "integer"}, "offset": {"type": "integer"},
            "metadata": {"type": "string", "enum": ["LABELS"]}}},
        "DescribeGlobal": {"type": "object", "properties": {
            "encoding": {"type": "string"}, "maxBatchSize": {"type": "integer"},
            "sobjects": {"type": "array", "items": loose}}},
        "BasicInfo": {"type": "object", "properties": {"objectDescribe": loose,
                                                      "recentItems": {"type": "array", "items": loose}}},
        "SObjectDescribe": {"type": "object", "properties": {
            "name": {"type": "string"}, "fields": {"type": "array", "items": loose},
            "childRelationships": {"type": "array", "items": loose}}, "additionalProperties": True},
        "Updated": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}},
                                                    "latestDateCovered": {"type": "string"}}},
        "Deleted": {"type": "object", "properties": {
            "deletedRecords": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "deletedDate": {"type": "string"}}}},
            "earliestDateAvailable": {"type": "string"}, "latestDateCovered": {"type": "string"}}},
        "Limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "Max": {"type": "integer"}, "Remaining": {"type": "integer"}}}},
        "Versions": {"type": "array", "items": {"type": "object", "properties": {
            "label": {"type": "string"}, "url": {"type": "string"}, "version": {"type": "string"}}}},
        "Resources": {"type": "object", "additionalProperties": {"type": "string"}},
        "CompositeRequest": {"type": "object", "required": ["compositeRequest"], "properties": {
            "allOrNone": {"type": "boolean"}, "collateSubrequests": {"type": "boolean"},
            "compositeRequest": {"type": "array", "items": _ref("Subrequest"), "maxItems": MAX_COMPOSITE}}},
        "Subrequest": subrequest,
        "CompositeResponse": {"type": "object", "properties": {
            "compositeResponse": {"type": "array", "items": _ref("SubrequestResult")}}},
        "SubrequestResult": sub_response,
        "BatchRequest": {"type": "object", "required": ["batchRequests"], "properties": {
            "haltOnError": {"type": "boolean"},
            "batchRequests": {"type": "array", "maxItems": MAX_BATCH, "items": {
                "type": "object", "required": ["method", "url"], "properties": {
                    "method": {"type": "string"}, "url": {"type": "string", "description": "vXX.X/..."},
                    "richInput": {"nullable": True}}}}}},
        "BatchResponse": {"type": "object", "properties": {
            "hasErrors": {"type": "boolean"}, "results": {"type": "array", "items": {"type": "object", "properties": {
                "statusCode": {"type": "integer"}, "result": {"nullable": True}}}}}},
        "GraphRequest": {"type": "object", "required": ["graphs"], "properties": {
            "graphs": {"type": "array", "maxItems": MAX_GRAPHS, "items": {
                "type": "object", "required": ["graphId", "compositeRequest"], "properties": {
                    "graphId": {"type": "string"},
                    "compositeRequest": {"type": "array", "items": _ref("Subrequest")}}}}}},
        "GraphResponse": {"type": "object", "properties": {"graphs": {"type": "array", "items": {
            "type": "object", "properties": {"graphId": {"type": "string"}, "isSuccessful": {"type": "boolean"},
                                             "graphResponse": _ref("CompositeResponse")}}}}},
        "CollectionRequest": {"type": "object", "required": ["records"], "properties": {
            "allOrNone": {"type": "boolean"},
            "records": {"type": "array", "maxItems": MAX_RECORDS, "items": {
                "type": "object", "required": ["attributes"], "properties": {
                    "attributes": {"type": "object", "required": ["type"],
                                   "properties": {"type": {"type": "string"}}}},
                "additionalProperties": True}}}},
        "RetrieveRequest": {"type": "object", "required": ["ids", "fields"], "properties": {
            "ids": {"type": "array", "maxItems": MAX_RETRIEVE_IDS, "items": {"type": "string"}},
            "fields": {"type": "array", "items": {"type": "string"}}}},
        "TreeResponse": {"type": "object", "properties": {
            "hasErrors": {"type": "boolean"}, "results": {"type": "array", "items": {"type": "object", "properties": {
                "referenceId": {"type": "string"}, "id": {"type": "string"},
                "errors": {"type": "array", "items": loose}}}}}},
    }


# -- operations ----------------------------------------------------------------------------------------------

Operation = dict[str, Any]


def _op(operation_id: str, summary: str, responses: dict[str, Any], *, parameters: Iterable[dict[str, Any]] = (),
        body: dict[str, Any] | None = None, tag: str = "") -> Operation:
    operation: Operation = {"operationId": operation_id, "summary": summary, "responses": responses}
    if tag:
        operation["tags"] = [tag]
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _ok(schema: dict[str, Any], description: str = "OK", status: str = "200") -> dict[str, Any]:
    return {status: _json(schema, description)}


_NO_CONTENT = {"204": {"description": "Done, no body"}}
_ALL_OR_NONE = _param("allOrNone", "query", {"type": "boolean"}, "Undo every record when one fails")


def _window(obj: ObjectDef, kind: str) -> Operation | None:
    if not obj.is_stored:
        return None
    times = [_param(name, "query", {"type": "string", "format": "date-time"}, f"{name} of the window (UTC)",
                    required=True) for name in ("start", "end")]
    return _op(f"{obj.name}_{kind}", f"{obj.name} ids {kind} in a window of at most 30 days back",
               {**_ok(_ref(kind.capitalize())), **_errors(400, 404)}, parameters=times, tag=obj.name)


def _per_object(obj: ObjectDef, method: str, pattern: str) -> Operation | None:
    name = obj.name
    stored = obj.is_stored
    if pattern == "sobjects/{type}":
        if method == "GET":
            return _op(f"{name}_basicInfo", f"{name}: basic information", {**_ok(_ref("BasicInfo")), **_errors(404)},
                       tag=name)
        if not obj.createable:
            return None
        return _op(f"{name}_create", f"Create a {name}", {**_ok(_ref("SaveResult"), "Created", "201"),
                                                          **_errors(400, 404)}, body=_ref(f"{name}Create"), tag=name)
    if pattern == "sobjects/{type}/describe":
        return _op(f"{name}_describe", f"Describe {name}", {**_ok(_ref("SObjectDescribe")),
                                                            "304": {"description": "Not modified"},
                                                            **_errors(400, 404)},
                   parameters=[_IF_MODIFIED_SINCE], tag=name)
    if pattern == "sobjects/{type}/updated":
        return _window(obj, "updated")
    if pattern == "sobjects/{type}/deleted":
        return _window(obj, "deleted")
    if not stored and not obj.is_external:
        return None  # platform events: create only
    if pattern == "sobjects/{type}/{id}":
        if method == "GET":
            return _op(f"{name}_get", f"Get a {name} by id",
                       {**_ok(_ref(name)), "304": {"description": "Not modified"}, **_errors(400, 404, 412)},
                       parameters=[_ID_PARAM, _FIELDS_PARAM, _IF_MODIFIED_SINCE, _IF_UNMODIFIED_SINCE], tag=name)
        if method == "PATCH" and obj.updateable:
            return _op(f"{name}_update", f"Update a {name}", {**_NO_CONTENT, **_errors(400, 404, 409, 412)},
                       parameters=[_ID_PARAM, _IF_UNMODIFIED_SINCE], body=_ref(f"{name}Update"), tag=name)
        if method == "DELETE" and obj.deletable:
            return _op(f"{name}_delete", f"Delete a {name} (to the recycle bin)", {**_NO_CONTENT,
                                                                                  **_errors(400, 404, 409)},
                       parameters=[_ID_PARAM], tag=name)
        return None
    field = _param("field", "path", {"type": "string", "enum": external_id_fields(obj)}, "An external id field")
    if pattern == "sobjects/{type}/{field}/{value}":
        value = _param("value", "path", {"type": "string"}, "The external id value")
        if method == "GET":
            return _op(f"{name}_getByExternalId", f"Get a {name} by external id",
                       {**_ok(_ref(name)), **_errors(300, 400, 404)}, parameters=[field, value, _FIELDS_PARAM],
                       tag=name)
        if method == "PATCH" and (obj.createable or obj.updateable):
            update_only = _param("updateOnly", "query", {"type": "boolean"}, "404 instead of creating")
            return _op(f"{name}_upsert", f"Upsert a {name} by external id",
                       {**_ok(_ref("SaveResult"), "Updated"), **_ok(_ref("SaveResult"), "Created", "201"),
                        **_NO_CONTENT, **_errors(300, 400, 404, 409)},
                       parameters=[field, value, update_only], body=_ref(f"{name}Update"), tag=name)
        if method == "DELETE" and obj.deletable:
            return _op(f"{name}_deleteByExternalId", f"Delete a {name} by external id",
                       {**_NO_CONTENT, **_errors(300, 400, 404, 409)}, parameters=[field, value], tag=name)
        return None
    if pattern == "composite/sobjects/{type}":
        records = {"type": "array", "items": {"allOf": [_ref(name)], "nullable": True}}
        if method == "GET":
            ids = _param("ids", "query", {"type": "string"}, "Comma-separated record ids", required=True)
            fields = _param("fields", "query", {"type": "string"}, "Comma-separated field names", required=True)
            return _op(f"{name}_retrieveMany", f"Get many {name} records by id (null for ids not found)",
                       {**_ok(records), **_errors(400, 404)}, parameters=[ids, fields], tag=name)
        return _op(f"{name}_retrieveManyPost", f"Get many {name} records by id, ids in the body",
                   {**_ok(records), **_errors(400, 404)}, body=_ref("RetrieveRequest"), tag=name)
    if pattern == "composite/sobjects/{type}/{field}":
        if not (obj.createable or obj.updateable):
            return None
        body = {"type": "object", "required": ["records"], "properties": {
            "allOrNone": {"type": "boolean"},
            "records": {"type": "array", "maxItems": MAX_RECORDS, "items": _ref(f"{name}Update")}}}
        return _op(f"{name}_upsertMany", f"Upsert up to {MAX_RECORDS} {name} records by external id",
                   {**_ok(_ref("SaveResultList")), **_errors(400, 404)}, parameters=[field], body=body, tag=name)
    if pattern == "composite/tree/{type}":
        if not obj.createable:
            return None
        body = {"type": "object", "required": ["records"], "properties": {"records": {
            "type": "array", "maxItems": MAX_RECORDS, "items": {
                "type": "object", "required": ["attributes"], "additionalProperties": True, "properties": {
                    "attributes": {"type": "object", "required": ["type", "referenceId"], "properties": {
                        "type": {"type": "string"}, "referenceId": {"type": "string"}}}}}}}}
        return _op(f"{name}_tree", f"Create {name} records with nested children, all or nothing",
                   {**_ok(_ref("TreeResponse"), "Created", "201"), **_errors(404),
                    **_ok({"oneOf": [_ref("TreeResponse"), _ref("ErrorList")]},
                          "Records failed (per record), or the request is malformed", "400")},
                   body=body, tag=name)
    return None


def _generic_operations() -> dict[tuple[str, str], Callable[[], Operation]]:
    query_param = _param("q", "query", {"type": "string"}, "A SOQL query", required=True)
    locator = _param("locator", "path", {"type": "string"}, "From nextRecordsUrl: <cursor id>-<offset>")
    options = _param("Sforce-Query-Options", "header", {"type": "string"}, "batchSize=N (200 to 2000)")
    return {
        ("", "GET"): lambda: _op("resources", "The resources of this API version", {**_ok(_ref("Resources")),
                                                                                   **_errors()}),
        ("limits", "GET"): lambda: _op("limits", "The org's allocations and what remains of them",
                                       {**_ok(_ref("Limits")), **_errors()}),
        ("sobjects", "GET"): lambda: _op("describeGlobal", "Every object of the org",
                                         {**_ok(_ref("DescribeGlobal")), "304": {"description": "Not modified"},
                                          **_errors(400)}, parameters=[_IF_MODIFIED_SINCE]),
        ("query", "GET"): lambda: _op("query", "Run a SOQL query (first page)",
                                      {**_ok(_ref("QueryResult")), **_errors(400)}, parameters=[query_param, options],
                                      tag="query"),
        ("queryAll", "GET"): lambda: _op("queryAll", "Run a SOQL query including deleted records",
                                         {**_ok(_ref("QueryResult")), **_errors(400)},
                                         parameters=[query_param, options], tag="query"),
        ("query/{locator}", "GET"): lambda: _op("queryMore", "The next page of a query",
                                                {**_ok(_ref("QueryResult")), **_errors(400)},
                                                parameters=[locator, options], tag="query"),
        ("queryAll/{locator}", "GET"): lambda: _op("queryAllMore", "The next page of a queryAll",
                                                   {**_ok(_ref("QueryResult")), **_errors(400)},
                                                   parameters=[locator, options], tag="query"),
        ("search", "GET"): lambda: _op("search", "Run a SOSL search",
                                       {**_ok(_ref("SearchResult")), **_errors(400)},
                                       parameters=[_param("q", "query", {"type": "string"}, "A SOSL statement",
                                                          required=True)], tag="search"),
        ("parameterizedSearch", "GET"): lambda: _op(
            "parameterizedSearchGet", "Search with parameters", {**_ok(_ref("SearchResult")), **_errors(400)},
            parameters=[_param("q", "query", {"type": "string"}, "The search term", required=True),
                        _param("sobject", "query", {"type": "string"}, "Objects to search, comma-separated"),
                        _param("in", "query", {"type": "string", "enum": ["ALL", "NAME", "EMAIL", "PHONE",
                                                                          "SIDEBAR"]}),
                        _param("fields", "query", {"type": "string"}, "Fields to return, comma-separated"),
                        *(_param(name, "query", {"type": "integer", "minimum": 0})
                          for name in ("defaultLimit", "overallLimit", "offset")),
                        _param("metadata", "query", {"type": "string", "enum": ["LABELS"]})], tag="search"),
        ("parameterizedSearch", "POST"): lambda: _op(
            "parameterizedSearchPost", "Search with parameters in a JSON body",
            {**_ok(_ref("SearchResult")), **_errors(400)}, body=_ref("ParameterizedSearch"), tag="search"),
        ("composite", "GET"): lambda: _op("compositeResources", "The composite resources",
                                          {**_ok(_ref("Resources")), **_errors()}, tag="composite"),
        ("composite", "POST"): lambda: _op(
            "composite", f"Up to {MAX_COMPOSITE} subrequests with @{{ref}} references, optionally all or none",
            {**_ok(_ref("CompositeResponse")), **_errors(400)}, body=_ref("CompositeRequest"), tag="composite"),
        ("composite/batch", "POST"): lambda: _op(
            "compositeBatch", f"Up to {MAX_BATCH} independent subrequests", {**_ok(_ref("BatchResponse")),
                                                                            **_errors(400)},
            body=_ref("BatchRequest"), tag="composite"),
        ("composite/graph", "POST"): lambda: _op(
            "compositeGraph", f"Up to {MAX_GRAPHS} graphs, each one transaction", {**_ok(_ref("GraphResponse")),
                                                                                   **_errors(400)},
            body=_ref("GraphRequest"), tag="composite"),
        ("composite/sobjects", "POST"): lambda: _op(
            "collectionsCreate", f"Create up to {MAX_RECORDS} records of any types",
            {**_ok(_ref("SaveResultList")), **_errors(400)}, body=_ref("CollectionRequest"), tag="composite"),
        ("composite/sobjects", "PATCH"): lambda: _op(
            "collectionsUpdate", f"Update up to {MAX_RECORDS} records of any types (each with its id)",
            {**_ok(_ref("SaveResultList")), **_errors(400)}, body=_ref("CollectionRequest"), tag="composite"),
        ("composite/sobjects", "DELETE"): lambda: _op(
            "collectionsDelete", f"Delete up to {MAX_RECORDS} records by id", {**_ok(_ref("SaveResultList")),
                                                                              **_errors(400)},
            parameters=[_param("ids", "query", {"type": "string"}, "Comma-separated record ids", required=True),
                        _ALL_OR_NONE], tag="composite"),
    }


_GENERIC = _generic_operations()
_PER_OBJECT = frozenset({"sobjects/{type}", "sobjects/{type}/describe", "sobjects/{type}/updated",
                         "sobjects/{type}/deleted", "sobjects/{type}/{id}", "sobjects/{type}/{field}/{value}",
                         "composite/sobjects/{type}", "composite/sobjects/{type}/{field}", "composite/tree/{type}"})


# -- the document --------------------------------------------------------------------------------------------

def _since_ok(pattern: str, version: str) -> bool:
    return float(version) >= _SINCE.get(pattern, 0.0)


def _routes(router: ResourceRouter) -> list[tuple[str, str]]:
    """Every (pattern, method) of the router, in registration order."""
    return [(pattern, method) for pattern, methods in router.routes() for method in methods]


def undescribed(router: ResourceRouter) -> list[tuple[str, str]]:
    """Router resources this module neither describes nor lists in :data:`NOT_DESCRIBED` (should be none)."""
    return [(pattern, method) for pattern, method in _routes(router)
            if (pattern, method) not in NOT_DESCRIBED and (pattern, method) not in _GENERIC
            and pattern not in _PER_OBJECT]


def build_document(schema: Schema, router: ResourceRouter, *, version: str, server_url: str,
                   objects: Iterable[str] | None = None, org_name: str = "Interlink") -> dict[str, Any]:
    """The OpenAPI 3.0 document of the data API at ``version``, served from ``server_url``, for the objects and
    fields of ``schema`` (the caller's view of the org's schema)."""
    wanted = None if objects is None else {name.lower() for name in objects}
    chosen = [obj for obj in schema if wanted is None or obj.name.lower() in wanted]
    base = f"/services/data/v{version}"
    paths: dict[str, dict[str, Any]] = {
        "/services/data": {"get": _op("versions", "The API versions this org serves", _ok(_ref("Versions")))}}
    paths["/services/data"]["get"]["security"] = []
    components = _components()
    for obj in chosen:
        if obj.is_stored or obj.is_external:
            components.update(record_schemas(obj))
        elif obj.createable:
            components[obj.name + "Create"] = record_schemas(obj)[obj.name + "Create"]
    for pattern, method in _routes(router):
        if (pattern, method) in NOT_DESCRIBED or not _since_ok(pattern, version):
            continue
        if pattern in _PER_OBJECT:
            for obj in chosen:
                operation = _per_object(obj, method, pattern)
                if operation is not None:
                    path = f"{base}/{pattern}".replace("{type}", obj.name)
                    paths.setdefault(path, {})[method.lower()] = operation
        elif (pattern, method) in _GENERIC:
            path = f"{base}/{pattern}" if pattern else base
            paths.setdefault(path, {})[method.lower()] = _GENERIC[(pattern, method)]()
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": f"{org_name} REST API", "version": version,
                 "description": "The REST data API of an Interlink org, generated from its metadata. Errors are "
                                "the platform's body: a JSON array of {message, errorCode, fields}. Get a token "
                                "from /services/oauth2/token (or `interlink token`) and send it as a Bearer token."},
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An access token of the org"}},
        },
    }


__all__ = ["ID_PATTERN", "NOT_DESCRIBED", "OPENAPI_VERSION", "build_document", "external_id_fields",
           "field_schema", "record_schemas", "undescribed"]
