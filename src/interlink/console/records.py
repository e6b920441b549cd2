"""Record pages: detail with related lists, and the create / edit / delete forms.

    GET  /console/r/{Id}                 every field with its label, references linked by name, related lists
    GET  /console/o/{Object}/new         the create form (query parameters pre-fill fields: ``?AccountId=001…``)
    POST /console/o/{Object}/new         create through the records service
    GET  /console/r/{Id}/edit            the edit form
    POST /console/r/{Id}/edit            update the fields that changed
    POST /console/r/{Id}/delete          delete, then back to the object's list view

Reads are SOQL run by the query engine with the user's context; writes go through ``org.records`` with the same
context, ``allOrNone``: the one write path, so validation, triggers, flows and change events are the API's. A
rejected save re-renders the form with the user's input, the platform's error and the fields it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from interlink import ids
from interlink.console.fields import (
    Cell,
    default_form_value,
    display,
    form_value,
    input_kind,
    list_href,
    number_step,
    parent_name_path,
    record_href,
    submitted,
    to_save,
)
from interlink.console.listview import default_columns
from interlink.console.objects import SECTION, kind_label, object_or_404, visible_schema
from interlink.console.render import org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.errors import InterlinkError, NotFoundError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema
from interlink.metadata.values import parse_datetime
from interlink.soql.render import quote

RELATED_ROWS = 5


def _record_target(request: Request, user: ConsoleUser) -> tuple[ObjectDef, str]:
    """The object (as ``user`` sees it) and normalized Id of ``{id}`` in the path; NOT_FOUND for anything that is
    not the Id of a record of an object they may read."""
    raw = request.path_params["id"]
    record_id = ids.normalize(raw)
    stored = org_of(request).store.object_for_id(record_id) if record_id else None
    obj = visible_schema(request, user).object(stored.name) if stored is not None else None
    if record_id is None or obj is None or obj.is_event:
        raise NotFoundError(f"No record has the id {raw}.")
    return obj, record_id


def _select_list(schema: Schema, obj: ObjectDef, fields: Sequence[FieldDef]) -> list[str]:
    names = ["Id"]
    for fdef in fields:
        names.append(fdef.name)
        path = parent_name_path(schema, obj, fdef)
        if path:
            names.append(path)
    return list(dict.fromkeys(names))


def fetch_record(request: Request, user: ConsoleUser, obj: ObjectDef, record_id: str) -> dict[str, Any]:
    """Every field of one record (and its parents' names), read by SOQL with the user's context."""
    soql = (f"SELECT {', '.join(_select_list(visible_schema(request, user), obj, obj.fields))} FROM {obj.name} "
            f"WHERE Id = {quote(record_id)}")
    result = org_of(request).query.execute(soql, user.context, batch_size=1)
    if not result.records:
        raise NotFoundError(f"No {obj.label} has the id {record_id} (it may have been deleted).")
    return result.records[0]


def record_title(obj: ObjectDef, record: dict[str, Any]) -> str:
    name = obj.name_field
    value = record.get(name.name) if name else None
    return str(value) if value not in (None, "") else str(record.get("Id", ""))


# -- detail -------------------------------------------------------------------------------------------------------


@dataclass
class RelatedList:
    """One child relationship of a record, as a small child subquery."""

    name: str
    child: ObjectDef
    lookup: FieldDef
    columns: list[FieldDef]
    rows: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False
    soql: str = ""
    view_all: str = ""
    new_href: str = ""
    error: InterlinkError | None = None


def _related_columns(child: ObjectDef, lookup: FieldDef) -> list[FieldDef]:
    columns = [f for f in default_columns(child) if f is not lookup and f.name != "LastModifiedDate"]
    return columns[:4]


def related_lists(request: Request, user: ConsoleUser, obj: ObjectDef, record: dict[str, Any]) -> list[RelatedList]:
    """Each child relationship (stored and external children) as ``SELECT Id, (SELECT … FROM Rel LIMIT 6) FROM
    Parent WHERE Id = …``: one query per list, so one failing data source spoils only its own list. Only children
    ``user`` may read, through lookups they may read, are listed."""
    org = org_of(request)
    schema = visible_schema(request, user)
    found: list[RelatedList] = []
    for relationship in schema.children_of(obj.name):
        child = schema.object(relationship.child_object)
        lookup = child.field(relationship.field) if child else None
        if child is None or lookup is None or not relationship.relationship_name or child.is_event or \
                not child.queryable:
            continue
        related = RelatedList(relationship.relationship_name, child, lookup, _related_columns(child, lookup))
        names = ["Id", *(f.name for f in related.columns)]
        if child.is_stored:
            names += [p for p in (parent_name_path(schema, child, f) for f in related.columns) if p]
        order = f" ORDER BY {child.name_field.name}" if child.is_stored and child.name_field else ""
        subquery = f"SELECT {', '.join(dict.fromkeys(names))} FROM {related.name}{order} LIMIT {RELATED_ROWS + 1}"
        related.soql = f"SELECT Id, ({subquery}) FROM {obj.name} WHERE Id = {quote(str(record['Id']))}"
        key = record.get(lookup.reference_target_field) if lookup.reference_target_field else record.get("Id")
        if key not in (None, ""):
            related.view_all = list_href(child.name) + "?" + urlencode(
                [("ff", lookup.name), ("fo", "eq"), ("fv", str(key))])
            if child.createable and lookup.createable:
                related.new_href = list_href(child.name) + "/new?" + urlencode([(lookup.name, str(key))])
        try:
            result = org.query.execute(related.soql, user.context, batch_size=1)
            block = result.records[0].get(related.name) if result.records else None
            children = (block or {}).get("records", [])
        except InterlinkError as error:
            related.error = error
            children = []
        related.more = len(children) > RELATED_ROWS
        related.rows = [{"id": r.get("Id"), "cells": [display(f, r) for f in related.columns]}
                        for r in children[:RELATED_ROWS]]
        found.append(related)
    return found


@page
async def record_detail(request: Request, user: ConsoleUser) -> Response:
    obj, record_id = _record_target(request, user)
    record = fetch_record(request, user, obj, record_id)
    details = [(f, display(f, record)) for f in obj.fields if not f.is_system]
    system = [(f, display(f, record)) for f in obj.fields if f.is_system and f.name != "IsDeleted"]
    notices = {"created": "The record was created.", "saved": "Your changes were saved.",
               "unchanged": "Nothing was changed."}
    return render(request, "record.html", user, section=SECTION, obj=obj, kind=kind_label(obj), record_id=record_id,
                  title=record_title(obj, record), details=details, system=system,
                  related=related_lists(request, user, obj, record),
                  notice=notices.get(request.query_params.get("done", ""), ""))


# -- forms --------------------------------------------------------------------------------------------------------


@dataclass
class FormField:
    """One field on a create or edit form."""

    field: FieldDef
    kind: str
    value: str
    editable: bool
    shown: Cell | None = None  # read-only fields, as the detail page shows them
    invalid: bool = False
    note: str = ""
    required: bool = False  # marked with an asterisk (the records service is what enforces it)

    @property
    def step(self) -> str:
        return number_step(self.field)

    @property
    def options(self) -> list[str]:
        """A picklist's active values, plus the current value when an unrestricted picklist holds another."""
        values = [v.value for v in self.field.picklist_values if v.active]
        chosen = [v for v in self.value.split(";") if v] if self.kind == "multiselect" else [self.value]
        return values + [v for v in chosen if v and v not in values]

    @property
    def selected(self) -> set[str]:
        return set(self.value.split(";")) if self.kind == "multiselect" else {self.value}


def _reference_note(request: Request, fdef: FieldDef) -> str:
    schema = org_of(request).store.schema
    labels = []
    for name in fdef.reference_to:
        target = schema.object(name)
        labels.append(target.label if target is not None else name)
    if fdef.reference_target_field:
        return f"{fdef.reference_target_field} of the {' or '.join(labels)}"
    return f"Id of the {' or '.join(labels)}"


def _form_fields(request: Request, obj: ObjectDef, *, creating: bool, values: dict[str, str],
                 record: dict[str, Any] | None, invalid: set[str]) -> list[FormField]:
    fields = []
    for fdef in obj.fields:
        if fdef.is_system:
            continue
        editable = fdef.createable if creating else fdef.updateable
        # On create the org fills OwnerId (the user) and fields with a default: not required of the user.
        defaulted = creating and (fdef.name == "OwnerId" or fdef.default_value is not None)
        item = FormField(fdef, input_kind(fdef), values.get(fdef.name, ""), editable,
                         invalid=fdef.name in invalid,
                         required=fdef.required and editable and fdef.type is not FieldType.BOOLEAN and not defaulted)
        if not editable:
            item.shown = display(fdef, record) if record is not None else Cell("")
        elif fdef.type is FieldType.REFERENCE:
            item.note = _reference_note(request, fdef) + ("; empty: you" if creating and fdef.name == "OwnerId"
                                                          else "")
            if record is not None:
                item.shown = display(fdef, record)
        fields.append(item)
    return fields


def _editable(obj: ObjectDef, *, creating: bool) -> list[FieldDef]:
    return [f for f in obj.fields if not f.is_system and (f.createable if creating else f.updateable)]


async def _form_lists(request: Request) -> dict[str, list[str]]:
    """The urlencoded body with repeated names kept (a multi-select picklist sends one pair per value)."""
    body = (await request.body()).decode("utf-8", "replace")
    found: dict[str, list[str]] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        found.setdefault(key, []).append(value)
    return found


def _entered(fields: Sequence[FieldDef], form: dict[str, list[str]]) -> dict[str, str]:
    """What the form says for each field it has (fields it lacks are left alone)."""
    found = {}
    for fdef in fields:
        value = submitted(fdef, form)
        if value is not None:
            found[fdef.name] = value
    return found


def _errors_of(results: Sequence[Any]) -> list[InterlinkError]:
    return [error for result in results for error in result.errors]


def _invalid_fields(obj: ObjectDef, errors: Sequence[InterlinkError]) -> set[str]:
    names = set()
    for error in errors:
        for name in error.fields:
            fdef = obj.field(name)
            if fdef is not None:
                names.add(fdef.name)
    return names


def _render_form(request: Request, user: ConsoleUser, obj: ObjectDef, *, creating: bool, values: dict[str, str],
                 record: dict[str, Any] | None = None, errors: Sequence[InterlinkError] = (),
                 record_id: str = "", modified: str = "") -> Response:
    fields = _form_fields(request, obj, creating=creating, values=values, record=record,
                          invalid=_invalid_fields(obj, errors))
    action = f"{list_href(obj.name)}/new" if creating else f"{record_href(record_id)}/edit"
    cancel = list_href(obj.name) if creating else record_href(record_id)
    return render(request, "record_form.html", user, section=SECTION, status=400 if errors else 200, obj=obj,
                  kind=kind_label(obj), creating=creating, fields=fields, errors=list(errors), action=action,
                  cancel=cancel, record_id=record_id, title=record_title(obj, record) if record else "",
                  modified=modified)


def _creatable_object(request: Request, user: ConsoleUser) -> ObjectDef:
    obj = object_or_404(request, request.path_params["object"], user)
    if obj.is_event:
        raise NotFoundError(f"{obj.label} is a platform event: publish events from Event streams, not as records.")
    return obj


@page
async def new_form(request: Request, user: ConsoleUser) -> Response:
    obj = _creatable_object(request, user)
    values = {f.name: default_form_value(f) for f in _editable(obj, creating=True)}
    for key, value in request.query_params.items():
        fdef = obj.field(key)
        if fdef is not None and fdef.name in values:
            values[fdef.name] = value
    return _render_form(request, user, obj, creating=True, values=values)


@page
async def create(request: Request, user: ConsoleUser) -> Response:
    obj = _creatable_object(request, user)
    form = await _form_lists(request)
    fields = _editable(obj, creating=True)
    entered = _entered(fields, form)
    try:
        results = org_of(request).records.create(user.context, obj.name, [to_save(fields, entered)],
                                                 all_or_none=True)
        errors = _errors_of(results)
    except InterlinkError as error:
        errors, results = [error], []
    if errors:
        return _render_form(request, user, obj, creating=True, values=entered, errors=errors)
    return RedirectResponse(f"{record_href(results[0].id)}?done=created", 303)


@page
async def edit_form(request: Request, user: ConsoleUser) -> Response:
    obj, record_id = _record_target(request, user)
    record = fetch_record(request, user, obj, record_id)
    values = {f.name: form_value(f, record.get(f.name)) for f in _editable(obj, creating=False)}
    return _render_form(request, user, obj, creating=False, values=values, record=record, record_id=record_id,
                        modified=str(record.get("LastModifiedDate") or ""))


@page
async def update(request: Request, user: ConsoleUser) -> Response:
    obj, record_id = _record_target(request, user)
    record = fetch_record(request, user, obj, record_id)
    form = await _form_lists(request)
    fields = _editable(obj, creating=False)
    entered = _entered(fields, form)
    current = {f.name: form_value(f, record.get(f.name)) for f in fields}
    changes = to_save(fields, entered, current=current)
    if not changes:
        return RedirectResponse(f"{record_href(record_id)}?done=unchanged", 303)
    modified = (form.get("_modified") or [""])[-1]
    try:
        # The form carries the LastModifiedDate it was opened at: a save over someone else's newer change is
        # refused (PRECONDITION_FAILED) rather than silently undoing it.
        since = parse_datetime(modified) if modified and obj.is_stored else None
    except ValueError:
        since = None
    try:
        results = org_of(request).records.update(user.context, obj.name, [{**changes, "Id": record_id}],
                                                 all_or_none=True, if_unmodified_since=since)
        errors = _errors_of(results)
    except InterlinkError as error:
        errors = [error]
    if errors:
        return _render_form(request, user, obj, creating=False, values={**current, **entered}, record=record,
                            errors=errors, record_id=record_id, modified=modified)
    return RedirectResponse(f"{record_href(record_id)}?done=saved", 303)


@page
async def delete(request: Request, user: ConsoleUser) -> Response:
    obj, record_id = _record_target(request, user)
    fetch_record(request, user, obj, record_id)  # 404 for a record this user cannot see
    results = org_of(request).records.delete(user.context, [record_id], all_or_none=True, object_name=obj.name)
    errors = _errors_of(results)
    if errors:
        raise errors[0]
    return RedirectResponse(f"{list_href(obj.name)}?done=deleted", 303)


def routes() -> list[BaseRoute]:
    return [
        Route("/o/{object}/new", new_form, methods=["GET", "HEAD"]),
        Route("/o/{object}/new", create, methods=["POST"]),
        Route("/r/{id}", record_detail, methods=["GET", "HEAD"]),
        Route("/r/{id}/edit", edit_form, methods=["GET", "HEAD"]),
        Route("/r/{id}/edit", update, methods=["POST"]),
        Route("/r/{id}/delete", delete, methods=["POST"]),
    ]


__all__ = ["fetch_record", "related_lists", "routes"]
