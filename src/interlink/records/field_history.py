"""Field history: an ``after_save`` hook that writes history rows in the same transaction as the change.

For an object with history enabled (``enableHistory``) and its tracked fields (``trackHistory``):

- create: one row with ``Field`` ``created``;
- update: one row per tracked field whose value changed, with ``OldValue``/``NewValue`` as text (a lookup keeps
  the id, a date ``2024-01-31``, a datetime ``2024-01-31T09:30:00.000+0000``, a checkbox ``true``/``false``).
  Long text areas (more than 255 characters) are recorded as changed without their values, as the platform does;
  other values longer than 255 characters are cut to 255;
- delete: the history stays, moving to the recycle bin with its record (``IsDeleted``) and back on undelete;
  when the record is deleted for good (hard delete, emptying the recycle bin) its history goes too.

The rows are written on the unit of work's connection, so a rolled-back save leaves no history, and every API
(REST, composite, collections, Bulk, GraphQL, flows, triggers) gets it because every write comes through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from interlink import ids
from interlink.metadata.describe import SHORT_TEXT_LIMIT
from interlink.metadata.history import CREATED, history_field_name, history_object_name, history_parent_field
from interlink.metadata.model import FieldDef, FieldType, ObjectDef
from interlink.metadata.values import to_wire

if TYPE_CHECKING:
    from interlink.records.hooks import Hook, HookRegistry, SaveEvent
    from interlink.store.database import Store

VALUE_LENGTH = 255
# History's DataType for each field type (the platform's names for them).
DATA_TYPES: dict[FieldType, str] = {
    FieldType.ID: "EntityId",
    FieldType.REFERENCE: "EntityId",
    FieldType.STRING: "Text",
    FieldType.TEXTAREA: "TextArea",
    FieldType.EMAIL: "Email",
    FieldType.PHONE: "Phone",
    FieldType.URL: "Url",
    FieldType.PICKLIST: "DynamicEnum",
    FieldType.MULTIPICKLIST: "MultiEnum",
    FieldType.BOOLEAN: "Boolean",
    FieldType.INT: "Integer",
    FieldType.DOUBLE: "Double",
    FieldType.CURRENCY: "Currency",
    FieldType.PERCENT: "Percent",
    FieldType.DATE: "DateOnly",
    FieldType.DATETIME: "DateTime",
    FieldType.TIME: "Time",
}
_ids = ids.IdGenerator()


def value_text(fdef: FieldDef, value: Any) -> str | None:
    """A field value as history keeps it (full length; see :data:`VALUE_LENGTH` for what is stored)."""
    if fdef.type is FieldType.BOOLEAN:
        return "true" if value else "false"
    if value is None or value == "":
        return None
    return str(to_wire(fdef, value))


def _values_kept(fdef: FieldDef) -> bool:
    """Long text areas are recorded as changed, without old and new values."""
    return not (fdef.type is FieldType.TEXTAREA and fdef.length > SHORT_TEXT_LIMIT)


def history_rows(obj: ObjectDef, event: SaveEvent) -> list[dict[str, Any]]:
    """The history rows one insert or update batch of ``obj`` writes."""
    parent_field = history_parent_field(obj.name)
    user_id = event.context.user_id
    rows: list[dict[str, Any]] = []

    def row(record: dict[str, Any], field: str, data_type: str | None, old: str | None, new: str | None,
            when: Any) -> None:
        rows.append({"Id": _ids.new("017"), "IsDeleted": False, parent_field: record["Id"], "Field": field,
                     "DataType": data_type, "OldValue": old, "NewValue": new, "CreatedById": user_id,
                     "CreatedDate": when})

    if event.operation == "insert":
        for record in event.new:
            row(record, CREATED, None, None, None, record.get("CreatedDate"))
        return rows
    tracked = obj.tracked_fields
    for position, record in enumerate(event.new):
        before = event.old[position] or {}
        for fdef in tracked:
            old, new = value_text(fdef, before.get(fdef.name)), value_text(fdef, record.get(fdef.name))
            if old == new:
                continue
            if not _values_kept(fdef):
                old = new = None
            row(record, history_field_name(fdef), DATA_TYPES.get(fdef.type), old and old[:VALUE_LENGTH],
                new and new[:VALUE_LENGTH], record.get("LastModifiedDate"))
    return rows


def install_field_history(hooks: HookRegistry, store: Store) -> Hook:
    """Register the hook that keeps every history-enabled object's history (called by the composition root)."""

    def keep_history(event: SaveEvent) -> None:
        obj = event.object
        if not obj.enable_history or not event.new:
            return
        history = store.schema.object(history_object_name(obj.name))
        if history is None or history.history_of != obj.name:
            return
        table = store.table(history.name)
        conn = event.uow.conn
        if event.operation in ("insert", "update"):
            rows = history_rows(obj, event)
            if rows:
                store.insert_rows(conn, table, rows)
            return
        parent = table.c[history_parent_field(obj.name)]
        record_ids = [record["Id"] for record in event.new]
        if event.operation == "undelete":
            conn.execute(update(table).where(parent.in_(record_ids)).values(IsDeleted=False))
            return
        # delete: the same hook runs for a move to the recycle bin and for a hard delete (the row is gone).
        records = store.table(obj.name)
        remaining = set(conn.execute(select(records.c.Id).where(records.c.Id.in_(record_ids))).scalars())
        gone = [record_id for record_id in record_ids if record_id not in remaining]
        if remaining:
            conn.execute(update(table).where(parent.in_(sorted(remaining))).values(IsDeleted=True))
        if gone:
            conn.execute(table.delete().where(parent.in_(gone)))

    return hooks.register("after_save", keep_history)


__all__ = ["DATA_TYPES", "history_rows", "install_field_history", "value_text"]
