"""Bulk ingest: CSV records to records-service calls, one internal batch per transaction.

A :class:`ColumnPlan` reads the header once: plain fields (``Name``), relationship columns that name a parent
by one of its external ids (``Account.External_Id__c``, or ``Owner:User.Username`` for a polymorphic lookup).
Per record, an empty value leaves the field alone and ``#N/A`` sets it to null, as the platform does.

:func:`run_batch` applies one batch through the one write path (validation, triggers, CDC) and writes its result
lines and the job's progress in the same transaction, so a crash either keeps all three or none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, update

from interlink.errors import BulkJobError, ClientInputError, InterlinkError, InvalidTypeOnField
from interlink.jobs.csvdata import NULL_MARKER, CsvFormat
from interlink.jobs.model import Job
from interlink.jobs.parts import Parts
from interlink.metadata.model import FieldType, ObjectDef, Schema
from interlink.records.context import Context
from interlink.records.results import SaveResult
from interlink.records.service import RecordService
from interlink.store.database import utcnow


def field_not_found(name: str) -> BulkJobError:
    return BulkJobError(f"Field name not found : {name}", [name], error_code="INVALIDBATCH")


@dataclass(frozen=True)
class _Column:
    position: int
    key: str  # the field name, or the relationship name for a parent reference
    parent_field: str | None = None  # the parent's external id field
    parent_type: str | None = None  # the parent's object, for polymorphic lookups
    reference: str | None = None  # the lookup field a relationship column sets


class ColumnPlan:
    """How each CSV column maps onto the object, checked once per job."""

    def __init__(self, obj: ObjectDef, schema: Schema, header: Sequence[str], operation: str,
                 external_id_field: str | None) -> None:
        self.obj = obj
        self.header = list(header)
        self.operation = operation
        self.columns: list[_Column] = [self._column(obj, schema, position, name.strip())
                                       for position, name in enumerate(header)]
        names = {c.key.lower() for c in self.columns if c.parent_field is None}
        if operation in ("delete", "hardDelete"):
            if names != {"id"} or len(self.columns) != 1:
                raise ClientInputError(f"A {operation} job takes one column, Id; the header has: {', '.join(header)}")
        elif operation == "update" and "id" not in names:
            raise ClientInputError("An update job needs an Id column")
        elif operation == "upsert":
            key = (external_id_field or "").lower()
            if key not in names:
                raise ClientInputError(f"An upsert job on {external_id_field} needs a {external_id_field} column")
        self.id_position = next((c.position for c in self.columns if c.key.lower() == "id"), None)
        # Child records sorted by their parent keep batches from fighting over the same parents (parent-key grouping).
        groups = [c for c in self.columns if c.reference is not None or self._is_parent_key(obj, c)]
        self.group_position = groups[0].position if groups else None

    @staticmethod
    def _is_parent_key(obj: ObjectDef, column: _Column) -> bool:
        fdef = obj.field(column.key)
        return fdef is not None and fdef.type is FieldType.REFERENCE and fdef.name not in ("OwnerId",)

    @staticmethod
    def _column(obj: ObjectDef, schema: Schema, position: int, name: str) -> _Column:
        if "." not in name:
            fdef = obj.field(name)
            if fdef is None:
                raise field_not_found(name)
            return _Column(position, fdef.name)
        relation, _, parent_field = name.partition(".")
        parent_type = None
        if ":" in relation:
            parent_type, _, relation = relation.partition(":")
        reference = obj.relationship(relation)
        if reference is None or "." in parent_field:
            raise field_not_found(name)
        target_name = parent_type or reference.reference_to[0]
        if target_name.lower() not in {t.lower() for t in reference.reference_to}:
            raise field_not_found(name)
        target = schema.object(target_name)
        if target is None or target.field(parent_field) is None:
            raise field_not_found(name)
        return _Column(position, reference.relationship_name or relation, target.field(parent_field).name,  # type: ignore[union-attr]
                       target.name if parent_type else None, reference.name)

    def record(self, values: Sequence[str]) -> dict[str, Any]:
        """One CSV record as a records-service body: empty values left out, ``#N/A`` as null."""
        body: dict[str, Any] = {}
        for column in self.columns:
            raw = values[column.position]
            if raw == "":
                continue
            value = None if raw == NULL_MARKER else raw
            if column.parent_field is None:
                body[column.key] = value
            elif value is None:
                body[column.reference] = None  # type: ignore[index]
            else:
                parent: dict[str, Any] = {column.parent_field: value}
                if column.parent_type:
                    parent["attributes"] = {"type": column.parent_type}
                body[column.key] = parent
        return body


def error_text(result: SaveResult) -> str:
    """``sf__Error`` as the platform writes it: ``CODE:message:field,field --`` per error (``CODE:message:--``
    when the error names no field)."""
    return " ".join(f"{e.error_code}:{e.message}:{','.join(e.fields) + ' ' if e.fields else ''}--"
                    for e in result.errors)


@dataclass
class BatchOutcome:
    processed: int
    failed: int
    api_ms: int


class LeaseLost(Exception):
    """Another worker took the job over (this worker's lease ran out): the batch must not commit."""


def run_batch(records: RecordService, parts: Parts, job: Job, plan: ColumnPlan, context: Context, batch_no: int,
              rows: list[list[str]], *, worker_id: str, lease_seconds: float,
              before_commit: Callable[[], None] | None = None) -> BatchOutcome:
    """Apply one internal batch and record its results and the job's progress in one transaction."""
    if plan.group_position is not None:
        position = plan.group_position
        rows = sorted(rows, key=lambda values: values[position])
    fmt = job.format
    started = time.perf_counter()
    table = records.store.system["il_bulk_job"]
    with records.unit_of_work(context) as uow:
        # First claim the batch: only the lease holder moves ``batches_done`` past it, and only once. On
        # PostgreSQL this also locks the job row until the batch commits.
        moved = uow.conn.execute(update(table).where(and_(
            table.c.id == job.id, table.c.batches_done == batch_no, table.c.claimed_by == worker_id)).values(
            batches_done=batch_no + 1, claimed_until=_lease_end(lease_seconds))).rowcount
        if moved != 1:
            raise LeaseLost(job.id)
        results = _apply(records, job, plan, context, rows)
        api_ms = int((time.perf_counter() - started) * 1000)
        success, failure, failed = _result_lines(fmt, job.operation, rows, results)
        if success:
            parts.add(uow.conn, job.id, "success", batch_no, success.encode(), rows=len(rows) - failed)
        if failure:
            parts.add(uow.conn, job.id, "failure", batch_no, failure.encode(), rows=failed)
        uow.conn.execute(update(table).where(table.c.id == job.id).values(
            records_processed=table.c.records_processed + len(rows),
            records_failed=table.c.records_failed + failed,
            api_active_ms=table.c.api_active_ms + api_ms,
            processing_ms=table.c.processing_ms + int((time.perf_counter() - started) * 1000),
            system_modstamp=utcnow()))
        if before_commit is not None:
            before_commit()
    return BatchOutcome(len(rows), failed, api_ms)


def _lease_end(seconds: float):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return utcnow() + timedelta(seconds=seconds)


def _apply(records: RecordService, job: Job, plan: ColumnPlan, context: Context,
           rows: list[list[str]]) -> list[SaveResult]:
    if job.operation in ("delete", "hardDelete"):
        position = plan.id_position
        assert position is not None
        bodies = [{"Id": values[position]} for values in rows]
    else:
        bodies = [plan.record(values) for values in rows]
    results = apply_bodies(records, context, job.operation, job.object, job.external_id_field, bodies)
    for body, result in zip(bodies, results, strict=True):
        result.errors = [_as_csv_error(plan.obj, body, error) for error in result.errors]
    return results


def apply_bodies(records: RecordService, context: Context, operation: str, object_name: str,
                 external_id_field: str | None, bodies: list[dict[str, Any]]) -> list[SaveResult]:
    """One Bulk batch's records-service call: a result per body, in order (both Bulk APIs use this)."""
    if operation in ("delete", "hardDelete"):
        ids = [str(next((v for k, v in body.items() if k.lower() == "id"), "") or "") for body in bodies]
        call = records.delete if operation == "delete" else records.hard_delete
        return _per_record(lambda: call(context, ids, object_name=object_name), len(bodies))
    if operation == "insert":
        return _per_record(lambda: records.create(context, object_name, bodies), len(bodies))
    if operation == "update":
        return _per_record(lambda: records.update(context, object_name, bodies), len(bodies))
    return _per_record(lambda: records.upsert(context, object_name, external_id_field or "Id", bodies),
                       len(bodies))


def _as_csv_error(obj: ObjectDef, body: dict[str, Any], error: InterlinkError) -> InterlinkError:
    """A value that does not parse is a JSON error to the REST API; CSV callers get the platform's CSV wording."""
    if error.error_code != "JSON_PARSER_ERROR" or len(error.fields) != 1:
        return error
    fdef = obj.field(error.fields[0])
    label = fdef.label if fdef is not None else error.fields[0]
    raw = body.get(error.fields[0], next((v for k, v in body.items() if k.lower() == error.fields[0].lower()), ""))
    return InvalidTypeOnField(f"{label}: value not of required type: {raw}", error.fields)


def _per_record(call: Callable[[], list[SaveResult]], count: int) -> list[SaveResult]:
    """Run the call; an error about the whole call (not a record) fails every record of the batch with it.

    UNABLE_TO_LOCK_ROW is left to propagate: the batch is retried, as the platform does.
    """
    from interlink.errors import UnableToLockRow

    try:
        return call()
    except UnableToLockRow:
        raise
    except InterlinkError as error:
        return [SaveResult(errors=[error]) for _ in range(count)]


def _result_lines(fmt: CsvFormat, operation: str, rows: list[list[str]],
                  results: list[SaveResult]) -> tuple[str, str, int]:
    success: list[str] = []
    failure: list[str] = []
    for values, result in zip(rows, results, strict=True):
        if result.success:
            created = "true" if result.created or (operation == "insert" and result.created is None) else "false"
            success.append(fmt.line([result.id or "", created, *values]))
        else:
            failure.append(fmt.line([result.id or "", error_text(result), *values]))
    return "".join(success), "".join(failure), len(failure)


__all__ = ["BatchOutcome", "ColumnPlan", "LeaseLost", "apply_bodies", "error_text", "field_not_found", "run_batch"]
