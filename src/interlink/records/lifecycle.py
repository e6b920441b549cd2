"""Delete (to the recycle bin), undelete and hard delete, with cascades to child records.

A mixin of :class:`~interlink.records.service.RecordService`: the same unit of work, hooks and results
as every other write; children whose relationship cascades follow their parent in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from interlink.errors import (
    DmlError,
    EntityIsDeleted,
    InterlinkError,
    InvalidCrossReference,
    InvalidTypeError,
    NotFoundError,
    no_record_access,
)
from interlink.metadata.model import ObjectDef
from interlink.records import prepare
from interlink.records.context import Context
from interlink.records.hooks import Operation, SaveEvent
from interlink.records.results import SaveResult
from interlink.records.rollback import RollBack
from interlink.records.unit_of_work import UnitOfWork
from interlink.store.database import utcnow


class RecordLifecycle:
    """Mixed into RecordService, which provides the store, hooks, id checks and the batch scope."""

    # -- delete, undelete, hard delete -------------------------------------------------------------------------

    def _lifecycle(self, context: Context, action: str, record_ids: Sequence[str], all_or_none: bool,
                   object_name: str | None) -> list[SaveResult]:
        results = [SaveResult() for _ in record_ids]
        grouped: dict[str, list[int]] = {}
        normalized: dict[int, str] = {}
        for index, raw in enumerate(record_ids):
            try:
                obj = self.object(object_name) if object_name else self.object_for_id(str(raw))
                normalized[index] = self.check_id(obj, str(raw))
                results[index].id = normalized[index]
                grouped.setdefault(obj.name, []).append(index)
            except InterlinkError as error:
                results[index].errors.append(error)
        with self._batch_scope(context, all_or_none) as scope:
            scope.finish(results)
            if all_or_none and any(not r.success for r in results):
                raise RollBack({})
            for name, indexes in grouped.items():
                self._lifecycle_object(scope.uow, context, action, self.object(name), indexes, normalized,
                                       results)
        return results

    def _lifecycle_object(self, uow: UnitOfWork, context: Context, action: str, obj: ObjectDef,
                          indexes: list[int], normalized: dict[int, str], results: list[SaveResult],
                          now: datetime | None = None) -> None:
        if action != "undelete" and not obj.deletable:
            for index in indexes:
                results[index].errors.append(InvalidTypeError(f"entity type {obj.name} does not support delete"))
            return
        try:
            self.as_caller(context, obj, "delete")  # type: ignore[attr-defined]
        except InterlinkError as error:
            for index in indexes:
                results[index].errors.append(error)
            return
        if obj.is_external:
            self._external(obj).delete(obj, [normalized[i] for i in indexes], results, indexes, action)
            return
        table = self.store.table(obj.name)
        rows = {row.Id: dict(row._mapping) for row in
                uow.conn.execute(select(table).where(table.c.Id.in_([normalized[i] for i in indexes])))}
        ready: list[int] = []
        access = context.enforced
        editable = None if access is None else access.editable_ids(obj, rows.values(), conn=uow.conn)
        for index in indexes:
            row = rows.get(normalized[index])
            if row is None:
                results[index].errors.append(NotFoundError() if action != "undelete" else InvalidCrossReference(
                    "invalid cross reference id", []))
            elif editable is not None and row["Id"] not in editable:
                results[index].errors.append(no_record_access())
            elif action == "delete" and row.get("IsDeleted"):
                results[index].errors.append(EntityIsDeleted("entity is deleted", []))
            elif action == "undelete" and not row.get("IsDeleted"):
                results[index].errors.append(DmlError("Record is not in the recycle bin", [],
                                                      error_code="UNDELETE_FAILED"))
            else:
                ready.append(index)
        if not ready:
            return
        operation: Operation = "undelete" if action == "undelete" else "delete"
        olds: list[dict[str, Any] | None] = [rows[normalized[i]] for i in ready]
        news = [dict(rows[normalized[i]]) for i in ready]
        event = SaveEvent(operation, obj, news, olds, context, uow)
        self.hooks.run("before_save", event)
        rejected = {ready[i] for i in event.errors}
        for position, errors in event.errors.items():
            results[ready[position]].errors.extend(prepare.as_dml_error(e) for e in errors)
        if rejected:
            keep = [p for p, i in enumerate(ready) if i not in rejected]
            ready = [ready[p] for p in keep]
            event = SaveEvent(operation, obj, [news[p] for p in keep], [olds[p] for p in keep], context, uow)
        if not ready:
            return
        targets = [normalized[i] for i in ready]
        now = now or utcnow()  # cascaded children share the parent's instant, so undelete can find them
        if action == "hard_delete":
            self._cascade(uow, context, obj, targets, action, now)
            uow.conn.execute(table.delete().where(table.c.Id.in_(targets)))
        else:
            deleting = action == "delete"
            if deleting:
                self._cascade(uow, context, obj, targets, action, now)
            uow.conn.execute(update(table).where(table.c.Id.in_(targets))
                             .values(IsDeleted=deleting, SystemModstamp=now))
            for record in event.new:
                record.update(IsDeleted=deleting, SystemModstamp=now)
            if not deleting:
                self._cascade(uow, context, obj, targets, action, now, stamps={
                    row["Id"]: row["SystemModstamp"] for row in olds if row})
        self.hooks.run("after_save", event)
        self._after_write(uow, event, obj, operation)

    def _cascade(self, uow: UnitOfWork, context: Context, obj: ObjectDef, parent_ids: list[str], action: str,
                 now: datetime, stamps: dict[str, datetime] | None = None) -> None:
        """Carry a delete, undelete or hard delete to children whose relationship cascades."""
        for relation in self.store.schema.children_of(obj.name):
            if not relation.cascade_delete:
                continue
            child = self.store.schema.object(relation.child_object)
            if child is None:
                continue
            table = self.store.table(child.name)
            column = table.c[relation.field]
            query = select(table.c.Id).where(column.in_(parent_ids))
            if action == "delete":
                query = query.where(table.c.IsDeleted.is_not(True))
            elif action == "undelete":
                # Only the children this parent's deletion took along (deleted in the same instant).
                times = set((stamps or {}).values())
                query = query.where(table.c.IsDeleted.is_(True), table.c.SystemModstamp.in_(times))
            child_ids = list(uow.conn.execute(query).scalars())
            if child_ids:
                self._lifecycle_object(uow, context, action, child, list(range(len(child_ids))),
                                       dict(enumerate(child_ids)), [SaveResult() for _ in child_ids], now)

