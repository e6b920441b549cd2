"""The records service: the one path every write takes.

create / update / upsert / delete / undelete / hard_delete all run the same pipeline inside a unit of
work::

    prepare (names, types, defaults, required)  ->  database checks (parents, uniqueness)
      -> before_save hooks  ->  write  ->  after_save hooks  ->  commit  ->  on_commit hooks

Every call takes a list of records and answers one :class:`SaveResult` per record, in order.
``all_or_none=True`` writes nothing unless every record succeeds; otherwise the good records are
saved and the bad ones report their errors, and records that an after-save hook rejects are rolled
back with a savepoint and the rest retried, as the platform does for partial saves.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from interlink import ids
from interlink.errors import (
    DmlError,
    DuplicateExternalId,
    DuplicateValue,
    EntityIsDeleted,
    FieldIntegrityError,
    InterlinkError,
    InvalidCrossReference,
    InvalidFieldError,
    InvalidTypeError,
    MalformedIdError,
    NotFoundError,
    PreconditionFailed,
    UnableToLockRow,
    all_or_none_rolled_back,
    no_record_access,
)
from interlink.metadata.model import FieldDef, ObjectDef
from interlink.metadata.values import parse_value
from interlink.records import prepare
from interlink.records.context import Context
from interlink.records.hooks import HookRegistry, Operation, SaveEvent
from interlink.records.lifecycle import RecordLifecycle
from interlink.records.reads import RecordReads
from interlink.records.results import SaveResult
from interlink.records.rollback import RollBack
from interlink.records.unit_of_work import Change, UnitOfWork, UnitOfWorkManager
from interlink.store.database import Store, utcnow

_MAX_PARTIAL_RETRIES = 2


class RecordService(RecordReads, RecordLifecycle):
    """Create, read, update and delete records of any object through one pipeline."""

    def __init__(self, store: Store, hooks: HookRegistry | None = None,
                 id_generator: ids.IdGenerator | None = None) -> None:
        self.store = store
        self.hooks = hooks or HookRegistry()
        self.units = UnitOfWorkManager(store)
        self._ids = id_generator or ids.IdGenerator()
        # The event bus connection (platform events, change events); set by the org when it has a bus.
        self.events: Any = None
        # External objects' rows (interlink.connect.records.ExternalRecords); set by the org.
        self.external: Any = None
        # Read statements by (table, columns, skip deleted): building and cache-keying a SELECT of every
        # column costs more than running it, and a reused statement keeps its memoized cache key.
        self._retrieve_queries: dict[tuple[Table, tuple[str, ...], bool, bool], Select[Any]] = {}

    # -- lookups -------------------------------------------------------------------------------------------

    def object(self, name: str) -> ObjectDef:
        """The object called ``name``; NOT_FOUND when the org has no such object."""
        obj = self.store.schema.object(name)
        if obj is None:
            raise NotFoundError()
        return obj

    def object_for_id(self, record_id: str) -> ObjectDef:
        obj = self.store.object_for_id(record_id)  # history objects share 017: the one whose table has the id
        if obj is None:
            raise MalformedIdError(f"invalid id: {record_id}", ["Id"])
        return obj

    def check_id(self, obj: ObjectDef, raw_id: str) -> str:
        """Normalize an id from a path or body and check it belongs to ``obj``."""
        record_id = ids.normalize(raw_id)
        if record_id is None:
            raise MalformedIdError(f"{obj.label} ID: id value of incorrect type: {raw_id}", ["Id"])
        if record_id[:3] != obj.key_prefix:
            raise MalformedIdError(f"{obj.label} ID: id value of incorrect type: {raw_id}", ["Id"])
        return record_id

    @contextmanager
    def unit_of_work(self, context: Context):  # type: ignore[no-untyped-def]
        """Group several operations in one transaction (joins an open one on this thread)."""
        with self.units.begin(context) as uow:
            yield uow

    # -- writes --------------------------------------------------------------------------------------------

    def create(self, context: Context, object_name: str, records: Sequence[dict[str, Any]], *,
               all_or_none: bool = False, record_ids: Sequence[str] | None = None) -> list[SaveResult]:
        """Insert records. ``record_ids`` pre-assigns ids (bootstrap and migration tools only)."""
        obj = self.object(object_name)
        view = self.as_caller(context, obj, "create")
        if obj.is_event:
            if self.events is None:
                raise InvalidTypeError(f"entity type {obj.name} needs the event bus, which is not running", [])
            return self.events.publish(context, obj, records, all_or_none=all_or_none)  # type: ignore[no-any-return]
        if record_ids is not None and (len(record_ids) != len(records) or
                                       any(r[:3] != obj.key_prefix for r in record_ids)):
            raise ValueError("record_ids must give one id with the object's key prefix per record")
        if not obj.createable and not context.system_mode:
            raise InvalidTypeError(f"entity type {obj.name} does not support insert", [])
        results = [SaveResult() for _ in records]
        prepared: dict[int, dict[str, Any]] = {}
        parents: dict[int, list[prepare.ParentRef]] = {}
        for index, values in enumerate(records):
            try:
                parsed, refs = prepare.resolve(view, values, creating=True, system_mode=context.system_mode)
                if record_ids is not None:
                    parsed["Id"] = ids.to_18(record_ids[index])
                if obj.is_external:
                    prepared[index] = parsed
                    continue
                prepare.apply_defaults(obj, parsed, context.user_id)
                prepare.compute_derived(obj, parsed)
                prepared[index], parents[index] = parsed, refs
            except InterlinkError as error:
                results[index].errors.append(error)
        if obj.is_external:
            return self._external(obj).save(context, obj, "insert", results, self._external_ready(obj, prepared,
                                                                                                   results, True),
                                             {}, all_or_none)
        return self._run(context, obj, "insert", results, prepared, {}, parents, all_or_none)

    def update(self, context: Context, object_name: str, records: Sequence[dict[str, Any]], *,
               all_or_none: bool = False, if_unmodified_since: datetime | None = None) -> list[SaveResult]:
        """Update records; each dict carries its ``Id`` (any case of the key)."""
        obj = self.object(object_name)
        if not obj.updateable and not context.system_mode:
            raise InvalidTypeError(f"entity type {obj.name} does not support update", [])
        view = self.as_caller(context, obj, "edit")
        results = [SaveResult() for _ in records]
        prepared: dict[int, dict[str, Any]] = {}
        parents: dict[int, list[prepare.ParentRef]] = {}
        targets: dict[int, str] = {}
        for index, values in enumerate(records):
            try:
                raw_id = next((v for k, v in values.items() if k.lower() == "id"), None)
                if not isinstance(raw_id, str) or not raw_id:
                    raise DmlError("Id not specified in an update call", ["Id"],
                                   error_code="MISSING_ARGUMENT")
                targets[index] = self.check_id(obj, raw_id)
                results[index].id = targets[index]
                parsed, refs = prepare.resolve(view, values, creating=False, system_mode=context.system_mode)
                prepared[index], parents[index] = parsed, refs
            except InterlinkError as error:
                results[index].errors.append(error)
        if obj.is_external:
            return self._external(obj).save(context, obj, "update", results,  # type: ignore[no-any-return]
                                             self._external_ready(obj, prepared, results, False), targets,
                                             all_or_none)
        return self._run(context, obj, "update", results, prepared, targets, parents, all_or_none,
                         if_unmodified_since=if_unmodified_since)

    def upsert(self, context: Context, object_name: str, external_field: str,
               records: Sequence[dict[str, Any]], *, all_or_none: bool = False,
               values_from_path: Sequence[Any] | None = None, update_only: bool = False) -> list[SaveResult]:
        """Insert or update each record matched on ``external_field`` (``Id`` allowed).

        ``values_from_path`` supplies the key when it came in the URL rather than the body. A key that
        matches several records fails with DUPLICATE_EXTERNAL_ID carrying the matching ids.
        """
        obj = self.object(object_name)
        fdef = self.external_id_field(self.as_caller(context, obj, "read"), external_field)
        results = [SaveResult() for _ in records]
        keys: dict[int, Any] = {}
        keys_missing: list[int] = []
        for index, values in enumerate(records):
            try:
                body_value = next((v for k, v in values.items() if k.lower() == fdef.name.lower()), None)
                key = values_from_path[index] if values_from_path is not None else body_value
                if (key is None or key == "") and fdef.name == "Id" and not update_only:
                    keys_missing.append(index)  # upsert on Id without one inserts, as the platform does
                    continue
                if key is None or key == "":
                    raise DmlError(f"Missing value for external ID field {fdef.name}", [fdef.name],
                                   error_code="MISSING_ARGUMENT")
                key = parse_value(fdef, key)
                if values_from_path is not None and body_value is not None and \
                        self._match_key(fdef, parse_value(fdef, body_value)) != self._match_key(fdef, key):
                    raise InvalidFieldError(
                        f"The external ID field {fdef.name} in the body does not match the URL", [fdef.name])
                keys[index] = key
            except InterlinkError as error:
                results[index].errors.append(error)

        with self._batch_scope(context, all_or_none) as scope:
            # Only the records the caller may see can match (their ids must not leak through a 300 either); a key
            # that matches none of them inserts, as for any record the caller cannot see.
            matches = self.find_by_external_id(obj.name, fdef.name, list(keys.values()), conn=scope.uow.conn,
                                               access=context.enforced)
            creates: list[int] = list(keys_missing)
            updates: list[int] = []
            for index, key in keys.items():
                found = matches.get(key, [])
                if len(found) > 1:
                    results[index].errors.append(DuplicateExternalId(
                        f"{fdef.name}: more than one record found for external id field: {found}",
                        [fdef.name], matches=found))
                elif found:
                    updates.append(index)
                    results[index].id = found[0]
                elif update_only or fdef.name == "Id":
                    results[index].errors.append(NotFoundError())
                else:
                    creates.append(index)
            if creates:
                created = self.create(context, obj.name,
                                      [self._with_key(records[i], fdef, keys.get(i)) for i in creates])
                for index, result in zip(creates, created, strict=True):
                    result.created = True
                    results[index] = result
            if updates:
                rows = [{**{k: v for k, v in records[i].items()
                            if k.lower() != fdef.name.lower() or fdef.name == "Id"}, "Id": results[i].id}
                        for i in updates]
                updated = self.update(context, obj.name, rows)
                for index, result in zip(updates, updated, strict=True):
                    result.created = False
                    results[index] = result
            scope.finish(results)
        return scope.results

    def visible_row(self, context: Context, obj: ObjectDef, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """``row`` when the caller's record-level sharing lets them see it, else None (as if it did not exist)."""
        access = context.enforced
        if row is None or access is None or access.can_see_row(obj, row):
            return row
        return None

    def as_caller(self, context: Context, obj: ObjectDef, operation: str) -> ObjectDef:
        """``obj`` as the caller may use it for ``operation`` (read, create, edit, delete): the caller's view of its
        fields (unreadable ones gone, uneditable ones read-only). An object the caller cannot read does not exist
        for them (INVALID_TYPE); one they cannot change is INSUFFICIENT_ACCESS_OR_READONLY."""
        access = context.enforced
        if access is None:
            return obj
        if not access.can(obj, "read"):
            raise InvalidTypeError(f"sObject type '{obj.name}' is not supported. If you are attempting to use a "
                                   "custom object, be sure to append the '__c' after the entity name. Please "
                                   "reference your WSDL or the describe call for the appropriate names.", [])
        access.require(obj, operation)
        return access.object_view(obj)  # type: ignore[no-any-return]

    def _external(self, obj: ObjectDef) -> Any:
        if self.external is None:
            raise InvalidTypeError(f"{obj.name} is an external object and this org has no data sources", [])
        return self.external

    @staticmethod
    def _external_ready(obj: ObjectDef, prepared: dict[int, dict[str, Any]], results: list[SaveResult],
                        creating: bool) -> dict[int, dict[str, Any]]:
        """Prepared external rows that also pass the required-field check (no parents or uniqueness to check:
        the source owns its rows)."""
        ready: dict[int, dict[str, Any]] = {}
        for index, record in prepared.items():
            error = prepare.missing_required(obj, record, creating=creating)
            if error is not None:
                results[index].errors.append(error)
            else:
                ready[index] = record
        return ready

    def _with_key(self, values: dict[str, Any], fdef: FieldDef, key: Any) -> dict[str, Any]:
        if fdef.name == "Id":
            return {k: v for k, v in values.items() if k.lower() != "id"}
        body = {k: v for k, v in values.items() if k.lower() != fdef.name.lower()}
        raw = values.get(fdef.name, next((v for k, v in values.items() if k.lower() == fdef.name.lower()), None))
        body[fdef.name] = raw if raw is not None else (key.isoformat() if hasattr(key, "isoformat") else key)
        return body

    def delete(self, context: Context, record_ids: Sequence[str], *, all_or_none: bool = False,
               object_name: str | None = None) -> list[SaveResult]:
        """Move records to the recycle bin (IsDeleted), cascading to master-detail children."""
        return self._lifecycle(context, "delete", record_ids, all_or_none, object_name)

    def undelete(self, context: Context, record_ids: Sequence[str], *, all_or_none: bool = False,
                 object_name: str | None = None) -> list[SaveResult]:
        """Restore records from the recycle bin, with the children their deletion took along."""
        return self._lifecycle(context, "undelete", record_ids, all_or_none, object_name)

    def hard_delete(self, context: Context, record_ids: Sequence[str], *, all_or_none: bool = False,
                    object_name: str | None = None) -> list[SaveResult]:
        """Remove records for good (live or in the recycle bin), children included."""
        return self._lifecycle(context, "hard_delete", record_ids, all_or_none, object_name)

    # -- the pipeline ----------------------------------------------------------------------------------------

    class _Scope:
        def __init__(self, uow: UnitOfWork) -> None:
            self.uow = uow
            self.results: list[SaveResult] = []

        def finish(self, results: list[SaveResult]) -> None:
            self.results = results

    @contextmanager
    def _batch_scope(self, context: Context, all_or_none: bool):  # type: ignore[no-untyped-def]
        """A unit of work plus a savepoint that all-or-none failures roll back."""
        with self.units.begin(context) as uow:
            scope = RecordService._Scope(uow)
            try:
                with uow.savepoint():
                    yield scope
                    if all_or_none and any(not r.success for r in scope.results):
                        raise RollBack({})
            except RollBack:
                for result in scope.results:
                    if result.success:
                        result.errors.append(all_or_none_rolled_back())
                        result.id = None if result.created else result.id
                        result.created = None

    def _run(self, context: Context, obj: ObjectDef, operation: Operation, results: list[SaveResult],
             prepared: dict[int, dict[str, Any]], targets: dict[int, str],
             parents: dict[int, list[prepare.ParentRef]], all_or_none: bool, *,
             if_unmodified_since: datetime | None = None) -> list[SaveResult]:
        try:
            with self._batch_scope(context, all_or_none) as scope:
                scope.finish(results)
                if all_or_none and any(not r.success for r in results):
                    raise RollBack({})
                uow = scope.uow
                table = self.store.table(obj.name)
                old_rows: dict[int, dict[str, Any]] = {}
                if operation == "update":
                    old_rows = self._load_for_update(uow, obj, table, targets, results, prepared,
                                                     if_unmodified_since, context.enforced)
                self._resolve_parents(uow, parents, prepared, results)
                for index in list(prepared):
                    if results[index].errors:
                        prepared.pop(index)
                        continue
                    record = prepared[index]
                    if operation == "update":
                        prepare.compute_derived(obj, record, old_rows[index])
                    error = prepare.missing_required(obj, record, creating=operation == "insert")
                    if error is not None:
                        results[index].errors.append(error)
                        prepared.pop(index)
                self._check_references(uow, obj, prepared, results, context.user_id)
                self._check_unique(uow, obj, table, prepared, targets, results)
                if all_or_none and any(not r.success for r in results):
                    raise RollBack({})
                self._write_with_retries(uow, context, obj, operation, table, results, prepared, targets,
                                         old_rows, all_or_none)
        except OperationalError as exc:
            if "locked" in str(exc).lower() or "deadlock" in str(exc).lower():
                raise UnableToLockRow("unable to obtain exclusive access to this record or 1 records") from None
            raise
        return results

    def _load_for_update(self, uow: UnitOfWork, obj: ObjectDef, table: Table, targets: dict[int, str],
                         results: list[SaveResult], prepared: dict[int, dict[str, Any]],
                         if_unmodified_since: datetime | None, access: Any = None) -> dict[int, dict[str, Any]]:
        wanted = {targets[i] for i in prepared}
        query = select(table).where(table.c.Id.in_(wanted))
        if self.store.backend == "postgresql":
            query = query.with_for_update()
        rows = {row.Id: dict(row._mapping) for row in uow.conn.execute(query)}
        # Record-level sharing: which of them the caller may edit (one query, in this transaction).
        editable = None if access is None else access.editable_ids(obj, rows.values(), conn=uow.conn)
        old_rows: dict[int, dict[str, Any]] = {}
        for index in list(prepared):
            row = rows.get(targets[index])
            if row is None:
                results[index].errors.append(NotFoundError())
            elif row.get("IsDeleted"):
                results[index].errors.append(EntityIsDeleted("entity is deleted", []))
            elif editable is not None and row["Id"] not in editable:
                results[index].errors.append(no_record_access())
            elif if_unmodified_since is not None and row["LastModifiedDate"] > if_unmodified_since:
                results[index].errors.append(PreconditionFailed(
                    "The requested resource has been modified since the If-Unmodified-Since date"))
            else:
                old_rows[index] = row
                continue
            prepared.pop(index)
        return old_rows

    def _resolve_parents(self, uow: UnitOfWork, parents: dict[int, list[prepare.ParentRef]],
                         prepared: dict[int, dict[str, Any]], results: list[SaveResult]) -> None:
        for index, refs in parents.items():
            if index not in prepared:
                continue
            for fdef, target, ext_field, ext_value in refs:
                try:
                    target_obj = self.object(target)
                    ext = self.external_id_field(target_obj, ext_field)
                    value = parse_value(ext, ext_value)
                    found = self.find_by_external_id(target_obj.name, ext.name, [value], conn=uow.conn)[value]
                except InterlinkError as error:
                    results[index].errors.append(error)
                    continue
                if len(found) == 1:
                    prepared[index][fdef.name] = found[0]
                elif not found:
                    results[index].errors.append(InvalidCrossReference(
                        f"Foreign key external ID: {ext_value} not found for field {ext.name} in entity "
                        f"{target_obj.name}", [fdef.name]))
                else:
                    results[index].errors.append(DuplicateExternalId(
                        f"Foreign key external ID: {ext_value} matches more than one record in "
                        f"{target_obj.name}", [fdef.name], matches=found))

    def _check_references(self, uow: UnitOfWork, obj: ObjectDef, prepared: dict[int, dict[str, Any]],
                          results: list[SaveResult], caller_id: str) -> None:
        """Lookups must point at a live record of an allowed object.

        The caller's own user id (the default OwnerId) needs no lookup: an authenticated caller exists.
        """
        for fdef in obj.reference_fields:
            if fdef.reference_target_field is not None:
                continue  # an external lookup: its parent lives in a data source, checked there if at all
            pending: dict[str, list[int]] = {}
            for index, record in prepared.items():
                value = record.get(fdef.name)
                if value is None or results[index].errors or (value == caller_id and "User" in fdef.reference_to):
                    continue
                allowed = {self.store.schema.object(t).key_prefix for t in fdef.reference_to
                           if self.store.schema.object(t) is not None}
                if value[:3] not in allowed:
                    results[index].errors.append(FieldIntegrityError(
                        f"{fdef.label}: id value of incorrect type: {value}", [fdef.name]))
                    continue
                pending.setdefault(value, []).append(index)
            by_object: dict[str, set[str]] = {}
            for value in pending:
                target = self.store.schema.by_prefix(value[:3])
                if target is not None:
                    by_object.setdefault(target.name, set()).add(value)
            existing: set[str] = set()
            for target_name, values in by_object.items():
                table = self.store.table(target_name)
                query = select(table.c.Id).where(table.c.Id.in_(values))
                if self.store.schema.object(target_name).has_field("IsDeleted"):  # type: ignore[union-attr]
                    query = query.where(table.c.IsDeleted.is_not(True))
                existing.update(uow.conn.execute(query).scalars())
            for value, indexes in pending.items():
                if value not in existing:
                    for index in indexes:
                        results[index].errors.append(InvalidCrossReference(
                            f"{fdef.label}: invalid cross reference id", [fdef.name]))

    def _check_unique(self, uow: UnitOfWork, obj: ObjectDef, table: Table, prepared: dict[int, dict[str, Any]],
                      targets: dict[int, str], results: list[SaveResult]) -> None:
        """DUPLICATE_VALUE for unique fields, against stored rows and within the batch."""
        for fdef in obj.fields:
            if not fdef.unique or fdef.name == "Id":
                continue
            seen: dict[Any, int] = {}
            for index, record in list(prepared.items()):
                if results[index].errors or record.get(fdef.name) is None:
                    continue
                key = self._match_key(fdef, record[fdef.name])
                if key in seen:
                    results[index].errors.append(DuplicateValue(
                        f"duplicate value found: {fdef.name} duplicates value on record with id: "
                        f"{results[seen[key]].id or '(another record in this request)'}", [fdef.name]))
                    continue
                seen[key] = index
            if not seen:
                continue
            column = table.c[fdef.name]
            expression = func.lower(column) if self._folds(fdef) else column
            rows = uow.conn.execute(select(table.c.Id, column).where(expression.in_(list(seen)))).all()
            for row in rows:
                index = seen.get(self._match_key(fdef, row[1]))
                if index is not None and targets.get(index) != row.Id and not results[index].errors:
                    results[index].errors.append(DuplicateValue(
                        f"duplicate value found: {fdef.name} duplicates value on record with id: {row.Id}",
                        [fdef.name]))

    def _write_with_retries(self, uow: UnitOfWork, context: Context, obj: ObjectDef, operation: Operation,
                            table: Table, results: list[SaveResult], prepared: dict[int, dict[str, Any]],
                            targets: dict[int, str], old_rows: dict[int, dict[str, Any]],
                            all_or_none: bool) -> None:
        remaining = [i for i in prepared if not results[i].errors]
        for _attempt in range(_MAX_PARTIAL_RETRIES + 1):
            if not remaining:
                return
            try:
                with uow.savepoint():
                    event = self._write(uow, context, obj, operation, table, remaining, results, prepared,
                                        targets, old_rows)
                    self.hooks.run("after_save", event)
                    if event.errors:
                        raise RollBack({remaining[i]: errs for i, errs in event.errors.items()})  # type: ignore[misc]
                self._after_write(uow, event, obj, operation)
                return
            except RollBack as rollback:
                for index, errors in rollback.failed.items():
                    results[index].errors.extend(prepare.as_dml_error(e) for e in errors)
                for index in remaining:
                    if operation == "insert":  # rolled back: no record has this id (failed ones included)
                        results[index].id = None
                if all_or_none:
                    raise
                remaining = [i for i in remaining if not results[i].errors]
        for index in remaining:
            results[index].errors.append(DmlError("Too many retries of batch save in the presence of "
                                                  "Apex triggers with failures", error_code="UNKNOWN_EXCEPTION"))

    def _write(self, uow: UnitOfWork, context: Context, obj: ObjectDef, operation: Operation, table: Table,
               indexes: list[int], results: list[SaveResult], prepared: dict[int, dict[str, Any]],
               targets: dict[int, str], old_rows: dict[int, dict[str, Any]]) -> SaveEvent:
        now = utcnow()
        news = [dict(prepared[i]) for i in indexes]
        olds: list[dict[str, Any] | None] = [old_rows.get(i) for i in indexes]
        event = SaveEvent(operation, obj, news, olds, context, uow)
        self.hooks.run("before_save", event)
        if event.errors:
            raise RollBack({indexes[i]: errs for i, errs in event.errors.items()})  # type: ignore[misc]
        if operation == "insert":
            self._assign_autonumbers(uow, obj, news, now)
            for position, record in enumerate(news):
                record.setdefault("Id", self._ids.new(obj.key_prefix))
                record.update(IsDeleted=False, CreatedDate=now,
                              CreatedById=context.user_id, LastModifiedDate=now,
                              LastModifiedById=context.user_id, SystemModstamp=now)
                results[indexes[position]].id = record["Id"]
            self._insert(uow, table, news, obj, indexes, results)
        else:
            for position, record in enumerate(news):
                record.update(LastModifiedDate=now, LastModifiedById=context.user_id, SystemModstamp=now)
                record["Id"] = targets[indexes[position]]
            self._update(uow, table, news, indexes)
            for position, record in enumerate(news):
                news[position] = {**(olds[position] or {}), **record}
        return event

    def _update(self, uow: UnitOfWork, table: Table, rows: list[dict[str, Any]], indexes: list[int]) -> None:
        """UPDATE each row (keyed by ``Id``); many rows go as one ``executemany`` per set of changed columns."""
        def one(position: int) -> None:
            row = rows[position]
            values = {k: v for k, v in row.items() if k != "Id"}
            try:  # the caller's savepoint undoes the batch when RollBack leaves it
                uow.conn.execute(update(table).where(table.c.Id == row["Id"]).values(**values))
            except IntegrityError:
                raise RollBack({indexes[position]: [DuplicateValue(
                    "duplicate value found: a unique field duplicates another record", [])]}) from None

        if len(rows) == 1:
            one(0)
            return
        try:
            with uow.savepoint():
                self.store.update_rows(uow.conn, table, rows)
        except IntegrityError:
            # A unique value taken by another row: find the culprit(s) row by row, as inserts do.
            failed: dict[int, list[InterlinkError]] = {}
            for position in range(len(rows)):
                try:
                    with uow.savepoint():
                        one(position)
                except RollBack as rollback:
                    failed.update(rollback.failed)  # type: ignore[arg-type]
            if failed:
                raise RollBack(failed) from None

    def _insert(self, uow: UnitOfWork, table: Table, rows: list[dict[str, Any]], obj: ObjectDef,
                indexes: list[int], results: list[SaveResult]) -> None:
        columns = obj.field_names
        if len(rows) == 1:
            # One row needs no savepoint of its own: the caller's savepoint undoes it on RollBack.
            try:
                uow.conn.execute(table.insert(), [{c: rows[0].get(c) for c in columns}])
            except IntegrityError:
                raise RollBack({indexes[0]: [DuplicateValue("duplicate value found: a unique field duplicates "
                                                            "another record", [])]}) from None
            return
        try:
            with uow.savepoint():
                self.store.insert_rows(uow.conn, table, rows)
        except IntegrityError:
            full = [{c: row.get(c) for c in columns} for row in rows]
            # A concurrent writer took a unique value after our check: find the culprit(s) row by row.
            failed: dict[int, list[InterlinkError]] = {}
            for position, row in enumerate(full):
                try:
                    with uow.savepoint():
                        uow.conn.execute(table.insert(), [row])
                except IntegrityError:
                    failed[indexes[position]] = [DuplicateValue("duplicate value found: a unique field "
                                                                "duplicates another record", [])]
            if failed:
                raise RollBack(failed) from None

    def _assign_autonumbers(self, uow: UnitOfWork, obj: ObjectDef, rows: list[dict[str, Any]],
                            now: datetime) -> None:
        for fdef in obj.fields:
            if not fdef.auto_number:
                continue
            counters = self.store.system["il_autonumber"]
            where = and_(counters.c.object_name == obj.name, counters.c.field_name == fdef.name)
            bumped = uow.conn.execute(update(counters).where(where)
                                      .values(next_value=counters.c.next_value + len(rows))
                                      .returning(counters.c.next_value)).scalar()
            if bumped is None:
                bumped = fdef.start_number + len(rows)
                uow.conn.execute(counters.insert().values(object_name=obj.name, field_name=fdef.name,
                                                          next_value=bumped))
            first = bumped - len(rows)
            for offset, row in enumerate(rows):
                row[fdef.name] = prepare.format_autonumber(fdef, first + offset, now.date())

    def _after_write(self, uow: UnitOfWork, event: SaveEvent, obj: ObjectDef, operation: Operation) -> None:
        for position, record in enumerate(event.new):
            changed = list(record) if operation != "update" else event.changed_fields(position)
            uow.changes.append(Change(operation, obj.name, record["Id"], record, changed, event.context))
        uow.after_commit(lambda: self.hooks.run("on_commit", event))
        uow.after_rollback(lambda: self.hooks.run("on_rollback", event))


__all__ = ["RecordService"]
