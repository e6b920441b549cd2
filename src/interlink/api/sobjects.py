"""sObject resources: describe, create, read, update, delete, upsert by external id, replication.

Paths (``B`` = ``/services/data/vXX.X``)::

    GET        B/sobjects                               describe global
    GET, POST  B/sobjects/{type}                        basic info, create
    GET        B/sobjects/{type}/describe               describe
    GET        B/sobjects/{type}/updated?start=&end=    ids changed in a window
    GET        B/sobjects/{type}/deleted?start=&end=    ids deleted in a window
    GET, PATCH, DELETE  B/sobjects/{type}/{id}          one record (POST B/sobjects/{type}/Id creates)
    GET, PATCH, POST, DELETE  B/sobjects/{type}/{field}/{value}   by external id (PATCH upserts)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, unquote_plus

from starlette.responses import Response

from interlink import ids
from interlink.api.http import json_response, no_content, parse_json_object
from interlink.api.resources import ApiRequest, Handler, ResourceRouter
from interlink.errors import (
    DuplicateExternalId,
    InvalidFieldError,
    InvalidHeaderError,
    InvalidReplicationDate,
    MultipleErrors,
    NotFoundError,
    NotModified,
    PreconditionFailed,
    RequestError,
)
from interlink.metadata import describe
from interlink.metadata.model import ObjectDef
from interlink.metadata.values import format_datetime, parse_datetime, parse_value, to_wire, wire_plan
from interlink.records.results import SaveResult
from interlink.store.database import utcnow

_REPLICATION_WINDOW = timedelta(days=30)


# -- rendering -----------------------------------------------------------------------------------------------

def record_url(request: ApiRequest, obj: ObjectDef, record_id: str) -> str:
    return f"{request.base_path}/sobjects/{obj.name}/{record_id}"


def render_record(request: ApiRequest, obj: ObjectDef, row: dict[str, Any],
                  fields: list[str] | None = None) -> dict[str, Any]:
    """A record as the REST API returns it: ``attributes`` first, then fields in the asked order."""
    body: dict[str, Any] = {"attributes": {"type": obj.name, "url": record_url(request, obj, row["Id"])}}
    if fields:
        for name in fields:
            fdef = obj.field(name)
            if fdef is not None:
                body[fdef.name] = to_wire(fdef, row.get(fdef.name))
    else:  # every field, in declaration order
        for name, convert in wire_plan(obj):
            value = row.get(name)
            body[name] = value if convert is None else convert(value)
    if "Id" not in body:
        body["Id"] = row["Id"]
    return body


def caller_columns(request: ApiRequest, obj: ObjectDef, fields: list[str] | None) -> list[str] | None:
    """The columns to read for ``fields`` (None: every field) of ``obj`` as the caller sees it (:meth:`ApiRequest.
    sobject`): a field they may not read does not exist for them (INVALID_FIELD); with their permissions enforced,
    only the fields they may read, plus OwnerId for the sharing check."""
    for name in fields or ():
        if obj.field(name) is None:
            raise InvalidFieldError(f"No such column '{name}' on sobject of type {obj.name}", [name])
    if request.context.enforced is None:
        return fields
    columns = list(fields or obj.field_names)
    return [*columns, "OwnerId"] if obj.has_field("OwnerId") else columns


def _first_error(results: list[SaveResult]) -> None:
    for result in results:
        if len(result.errors) == 1:
            raise result.errors[0]
        if result.errors:
            raise MultipleErrors(result.errors)


def _fields_param(request: ApiRequest) -> list[str] | None:
    raw = request.query.get("fields")
    if not raw:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def _http_date_header(request: ApiRequest, name: str) -> datetime | None:
    raw = request.header(name)
    if raw is None:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 31 Dec 9999 23:59:59 -1200 is past year 9999
        raise InvalidHeaderError(f"{name}: not a valid HTTP date: {raw}", []) from None
    return parsed


def _last_modified_headers(row: dict[str, Any]) -> dict[str, str]:
    modified = row.get("LastModifiedDate")
    if not isinstance(modified, datetime):
        return {}
    # RFC 7231 IMF-fixdate, built by hand: strftime's %a/%b follow the locale, HTTP's names don't.
    return {"Last-Modified": f"{_DAYS[modified.weekday()]}, {modified.day:02d} {_MONTHS[modified.month - 1]} "
                             f"{modified.year:04d} {modified:%H:%M:%S} GMT"}


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _check_conditions(request: ApiRequest, row: dict[str, Any]) -> None:
    """If-Modified-Since (304) and If-Unmodified-Since (412), at the header's one-second precision."""
    modified = row.get("LastModifiedDate")
    if not isinstance(modified, datetime):
        return
    modified_second = modified.replace(microsecond=0)
    since = _http_date_header(request, "If-Modified-Since")
    if since is not None and modified_second <= since and request.method in ("GET", "HEAD"):
        raise NotModified("Not Modified")
    unmodified = _http_date_header(request, "If-Unmodified-Since")
    if unmodified is not None and modified_second > unmodified:
        raise PreconditionFailed("The requested resource has been modified since the If-Unmodified-Since date")


# -- describe --------------------------------------------------------------------------------------------------

async def describe_global(request: ApiRequest) -> Response:
    schema = request.schema
    _check_schema_conditions(request)
    return json_response(describe.describe_global(schema, request.version), pretty=request.pretty,
                         headers=_schema_headers(request))


def _schema_changed_at(request: ApiRequest) -> datetime | None:
    version = request.org.store.schema.version
    return datetime.fromisoformat(version) if version else None


def _schema_headers(request: ApiRequest) -> dict[str, str]:
    changed = _schema_changed_at(request)
    return _last_modified_headers({"LastModifiedDate": changed}) if changed else {}


def _check_schema_conditions(request: ApiRequest) -> None:
    changed = _schema_changed_at(request)
    if changed is not None:
        _check_conditions(request, {"LastModifiedDate": changed})


async def sobject_basic_info(request: ApiRequest) -> Response:
    obj = request.sobject()
    return json_response(describe.basic_info(obj, request.version, []), pretty=request.pretty)


async def sobject_describe(request: ApiRequest) -> Response:
    obj = request.sobject()
    _check_schema_conditions(request)
    return json_response(describe.describe_sobject(obj, request.schema, request.version),
                         pretty=request.pretty, headers=_schema_headers(request))


# -- create, read, update, delete by id ----------------------------------------------------------------------------

async def create_record(request: ApiRequest) -> Response:
    obj = request.sobject()
    body = parse_json_object(request.body)
    results = request.org.records.create(request.context, obj.name, [body], all_or_none=True)
    _first_error(results)
    return json_response(results[0].to_wire(), status=201, pretty=request.pretty)


async def get_record(request: ApiRequest) -> Response:
    obj = request.sobject()
    record_id = _path_id(request, obj)
    fields = _fields_param(request)
    row = request.org.records.retrieve(obj.name, [record_id], caller_columns(request, obj, fields))[0]
    row = request.org.records.visible_row(request.context, obj, row)  # someone else's private record: 404
    if row is None:
        raise NotFoundError()
    if fields:
        full = request.org.records.retrieve(obj.name, [record_id], ["LastModifiedDate"])[0] or {}
        _check_conditions(request, full)
    else:
        _check_conditions(request, row)
    return json_response(render_record(request, obj, row, fields), pretty=request.pretty,
                         headers=_last_modified_headers(row))


def _path_id(request: ApiRequest, obj: ObjectDef) -> str:
    raw = unquote(request.params["id"])
    if ids.normalize(raw) is None:
        # Not an id: the platform reads a two-segment path's last part as an external id field name.
        raise NotFoundError(f"Provided external ID field does not exist or is not accessible: {raw}")
    return request.org.records.check_id(obj, raw)


async def update_record(request: ApiRequest) -> Response:
    obj = request.sobject()
    record_id = _path_id(request, obj)
    body = parse_json_object(request.body)
    body_id = next((v for k, v in body.items() if k.lower() == "id"), None)
    if body_id is not None and ids.normalize(body_id) != record_id:
        raise InvalidFieldError("The Id field in the body does not match the id in the URL", ["Id"])
    unmodified = _http_date_header(request, "If-Unmodified-Since")
    results = request.org.records.update(request.context, obj.name, [{**body, "Id": record_id}],
                                         all_or_none=True,
                                         if_unmodified_since=unmodified.replace(microsecond=999999)
                                         if unmodified else None)
    _first_error(results)
    return no_content()


async def delete_record(request: ApiRequest) -> Response:
    obj = request.sobject()
    record_id = _path_id(request, obj)
    results = request.org.records.delete(request.context, [record_id], all_or_none=True, object_name=obj.name)
    _first_error(results)
    return no_content()


async def create_by_id_path(request: ApiRequest) -> Response:
    """``POST B/sobjects/{type}/Id`` creates a record (the ``Id`` "external id" with no value)."""
    if request.params["id"].lower() != "id":
        from interlink.errors import MethodNotAllowed

        raise MethodNotAllowed("POST", ["GET", "PATCH", "DELETE", "HEAD"])
    return await create_record(request)


# -- by external id ------------------------------------------------------------------------------------------------

def _external(request: ApiRequest) -> tuple[ObjectDef, str, str]:
    obj = request.sobject()
    field_name = unquote(request.params["field"])
    fdef = request.org.records.external_id_field(obj, field_name)
    value = unquote_plus(request.params["value"])
    return obj, fdef.name, value


def _multiple_choices(request: ApiRequest, obj: ObjectDef, matches: list[str]) -> Response:
    return json_response([record_url(request, obj, m) for m in matches], status=300, pretty=request.pretty)


def _matches(request: ApiRequest, obj: ObjectDef, field_name: str, value: str) -> list[str]:
    fdef = obj.field(field_name)
    assert fdef is not None
    key = parse_value(fdef, value)
    return request.org.records.find_by_external_id(obj.name, field_name, [key],
                                                   access=request.context.enforced)[key]


async def _by_external_id(request: ApiRequest, on_record: Handler) -> Response:
    """Resolve ``{field}/{value}`` to one record and hand over to the by-id handler (300 when several)."""
    obj, field_name, value = _external(request)
    matches = _matches(request, obj, field_name, value)
    if len(matches) > 1:
        return _multiple_choices(request, obj, matches)
    if not matches:
        raise NotFoundError()
    request.params["id"] = matches[0]
    return await on_record(request)


async def get_by_external_id(request: ApiRequest) -> Response:
    return await _by_external_id(request, get_record)


async def delete_by_external_id(request: ApiRequest) -> Response:
    return await _by_external_id(request, delete_record)


async def upsert_by_external_id(request: ApiRequest) -> Response:
    obj, field_name, value = _external(request)
    body = parse_json_object(request.body)
    update_only = request.query.get("updateOnly", "").lower() == "true"
    try:
        results = request.org.records.upsert(request.context, obj.name, field_name, [body], all_or_none=True,
                                              values_from_path=[value], update_only=update_only)
    except DuplicateExternalId as error:
        return _multiple_choices(request, obj, error.matches)
    result = results[0]
    duplicate = next((e for e in result.errors if isinstance(e, DuplicateExternalId)), None)
    if duplicate is not None:
        return _multiple_choices(request, obj, duplicate.matches)
    _first_error(results)
    if result.created:
        return json_response(result.to_wire(with_created=True), status=201, pretty=request.pretty)
    if float(request.version) <= 45.0:
        return no_content()
    return json_response(result.to_wire(with_created=True), status=200, pretty=request.pretty)


async def post_by_external_id(request: ApiRequest) -> Response:
    """``POST B/sobjects/{type}/{field}/{value}`` behaves as an upsert, as the platform allows."""
    return await upsert_by_external_id(request)


# -- replication: updated / deleted --------------------------------------------------------------------------------

def _window(request: ApiRequest) -> tuple[datetime, datetime]:
    values: list[datetime] = []
    for name in ("start", "end"):
        raw = request.query.get(name)
        if not raw:
            raise RequestError(f"Missing required parameter: {name}", [name], error_code="MISSING_ARGUMENT")
        try:
            values.append(parse_datetime(unquote(raw)))
        except ValueError:
            raise InvalidReplicationDate(f"{name}: not a valid date and time: {raw}", [name]) from None
    start, end = values
    if end < start:
        raise InvalidReplicationDate("end date must be after start date", ["end"])
    now = utcnow()
    if start < now - _REPLICATION_WINDOW:
        raise InvalidReplicationDate("startDate cannot be more than 30 days ago", ["start"])
    return start.replace(second=0, microsecond=0), min(end, now).replace(second=0, microsecond=0)


async def updated_records(request: ApiRequest) -> Response:
    obj = request.sobject()
    start, end = _window(request)
    changed = request.org.records.changed_between(obj.name, start, end, deleted=False)
    return json_response({"ids": [record_id for record_id, _ in changed],
                          "latestDateCovered": format_datetime(end)}, pretty=request.pretty)


async def deleted_records(request: ApiRequest) -> Response:
    obj = request.sobject()
    start, end = _window(request)
    changed = request.org.records.changed_between(obj.name, start, end, deleted=True)
    earliest = max(request.org.created_at or start, utcnow() - _REPLICATION_WINDOW).replace(second=0,
                                                                                          microsecond=0)
    return json_response({
        "deletedRecords": [{"id": record_id, "deletedDate": format_datetime(stamp)} for record_id, stamp in changed],
        "earliestDateAvailable": format_datetime(earliest),
        "latestDateCovered": format_datetime(end),
    }, pretty=request.pretty)


def register(router: ResourceRouter) -> None:
    """Add the sObject resources to ``router`` (literal paths before parameterised ones)."""
    router.add("sobjects", {"GET": describe_global})
    router.add("sobjects/{type}", {"GET": sobject_basic_info, "POST": create_record})
    router.add("sobjects/{type}/describe", {"GET": sobject_describe})
    router.add("sobjects/{type}/updated", {"GET": updated_records})
    router.add("sobjects/{type}/deleted", {"GET": deleted_records})
    router.add("sobjects/{type}/{id}", {"GET": get_record, "PATCH": update_record, "DELETE": delete_record,
                                        "POST": create_by_id_path})
    router.add("sobjects/{type}/{field}/{value}", {"GET": get_by_external_id, "PATCH": upsert_by_external_id,
                                                   "POST": post_by_external_id,
                                                   "DELETE": delete_by_external_id})
