"""Bulk API 2.0 jobs: what the surface asks of them (create, upload, close, abort, info, results, delete).

Jobs and their bytes live in the store (``il_bulk_job``, ``il_bulk_part``); background workers
(:mod:`interlink.jobs.worker`) process them. An upload is checked completely before it is kept (CSV structure,
line endings, header against the object and operation, the daily allocation), so a refused upload changes
nothing and an accepted one is durable.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select, update

from interlink import ids
from interlink.errors import (
    BulkJobError,
    ClientInputError,
    ExceededQuota,
    InvalidEntity,
    InvalidJobState,
    JobApiVersionMismatch,
    MalformedQueryError,
    NotFoundError,
)
from interlink.jobs import csvdata
from interlink.jobs.ingest import ColumnPlan
from interlink.jobs.model import (
    ABORTED,
    DELETED,
    FAILED,
    FINISHED,
    INGEST,
    INGEST_OPERATIONS,
    OPEN,
    QUERY,
    QUERY_OPERATIONS,
    RUNNABLE,
    UPLOAD_COMPLETE,
    Job,
)
from interlink.jobs.parts import UPLOAD_SEQ_STRIDE, Parts, split
from interlink.records.context import Context
from interlink.soql.compiled import flat_columns
from interlink.soql.engine import QueryEngine
from interlink.store.database import Store, utcnow

JOB_RETENTION = timedelta(days=7)  # finished jobs and their results are deleted after seven days
LIST_PAGE = 1000
DEFAULT_MAX_RECORDS = 100_000
RESULT_PAGES_PER_RESPONSE = 5


@dataclass(frozen=True)
class BulkLimits:
    daily_records: int = 150_000_000
    daily_batches: int = 15_000
    daily_query_jobs: int = 10_000
    batch_size: int = 10_000
    max_upload_bytes: int = 150 * 1024 * 1024


@dataclass
class ResultPage:
    """A page of query results: the CSV bytes (streamed), its record count and the next locator."""

    chunks: Iterator[bytes]
    records: int
    next_locator: str | None


@dataclass(frozen=True)
class QueueStats:
    """Bulk jobs waiting for a worker and running now; how long the oldest waiting one has waited (seconds)."""

    queued: int
    running: int
    oldest_wait: float


def job_queue(store: Store) -> QueueStats:
    """The state of the job queue, for ``/health`` and ``interlink doctor``."""
    table = store.system["il_bulk_job"]
    now = utcnow()
    with store.read() as conn:
        rows = conn.execute(select(table.c.state, table.c.claimed_until, table.c.system_modstamp)
                            .where(table.c.state.in_(RUNNABLE))).all()
    running = sum(1 for row in rows if row.claimed_until is not None and row.claimed_until >= now)
    waiting = [row.system_modstamp for row in rows if row.claimed_until is None or row.claimed_until < now]
    oldest = max(((now - stamp).total_seconds() for stamp in waiting), default=0.0)
    return QueueStats(len(waiting), running, oldest)


class BulkJobs:
    """Bulk API 2.0 job operations for the API surface and the CLI."""

    def __init__(self, store: Store, query: QueryEngine, limits: BulkLimits | None = None) -> None:
        self.store = store
        self.query = query
        self.limits = limits or BulkLimits()
        self.parts = Parts(store)
        self.on_runnable: Callable[[], None] = lambda: None  # the worker's wake-up call

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_bulk_job"]

    # -- reading jobs ----------------------------------------------------------------------------------------

    def get(self, job_id: str, job_type: str | None = None) -> Job:
        """The job, or NOT_FOUND (also for a deleted job, or one of the other type)."""
        normalized = ids.normalize(job_id) if len(job_id) in (15, 18) else None
        if normalized is None:
            raise NotFoundError()
        with self.store.read() as conn:
            row = conn.execute(select(self._table).where(self._table.c.id == normalized)).first()
        if row is None:
            raise NotFoundError()
        job = Job.from_row(row)
        if job.state == DELETED or (job_type is not None and job.job_type != job_type):
            raise NotFoundError()
        return job

    def list(self, job_type: str, *, after: str | None = None, limit: int = LIST_PAGE,
             filters: dict[str, str] | None = None) -> tuple[list[Job], str | None]:
        """Jobs of one type, oldest first, from after the ``after`` job id; returns (jobs, next locator)."""
        table = self._table
        query = select(table).where(and_(table.c.job_type == job_type, table.c.state != DELETED))
        if after:
            query = query.where(table.c.id > after)
        for key, value in (filters or {}).items():
            if key == "concurrencyMode" and value != "Parallel":
                return [], None
            if key == "isPkChunkingEnabled" and value.lower() == "true":
                return [], None
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(table.c.id).limit(limit + 1)).all()
        jobs = [Job.from_row(row) for row in rows[:limit]]
        return jobs, (jobs[-1].id if len(rows) > limit else None)

    def recent(self, limit: int = 50) -> list[Job]:
        """The newest jobs of every type (Bulk API 2.0 ingest and query, classic), newest first (the console)."""
        table = self._table
        with self.store.read() as conn:
            rows = conn.execute(select(table).where(table.c.state != DELETED)
                                .order_by(table.c.created_date.desc(), table.c.id.desc()).limit(limit)).all()
        return [Job.from_row(row) for row in rows]

    # -- creating jobs ----------------------------------------------------------------------------------------

    def create_ingest(self, context: Context, body: dict[str, Any]) -> Job:
        operation = _text(body, "operation", required=True)
        if operation not in INGEST_OPERATIONS:
            raise BulkJobError(f"Invalid operation: {operation}", ["operation"], error_code="INVALIDJOB")
        object_name = _text(body, "object", required=True)
        obj = self.store.schema.object(object_name)
        if obj is None or not obj.is_stored:
            raise InvalidEntity(f"Entity '{object_name}' is not supported by the Bulk API.", ["object"])
        allowed = {"insert": obj.createable, "update": obj.updateable, "upsert": obj.createable and obj.updateable,
                   "delete": obj.deletable, "hardDelete": obj.deletable}
        if not allowed[operation] and not context.system_mode:
            raise InvalidEntity(f"Entity '{obj.name}' does not support the {operation} operation.", ["operation"])
        external = _text(body, "externalIdFieldName")
        if operation == "upsert":
            if not external:
                raise BulkJobError("External ID was blank for Upsert. An external ID field is required.",
                                   ["externalIdFieldName"], error_code="INVALIDJOB")
            fdef = obj.field(external)
            if fdef is None or not (fdef.external_id or fdef.name == "Id"):
                raise BulkJobError(f"The field {external} is not an external ID field on {obj.name}",
                                   ["externalIdFieldName"], error_code="INVALIDJOB")
            external = fdef.name
        elif external:
            external = None  # the platform ignores it for other operations
        fmt = _format(body)
        _content_type(body)
        now = utcnow()
        job_id = ids.new_id("750")
        with self.store.write() as conn:
            conn.execute(self._table.insert().values(
                id=job_id, job_type=INGEST, operation=operation, object=obj.name, external_id_field=external,
                assignment_rule_id=_text(body, "assignmentRuleId"), query=None, content_type="CSV",
                concurrency_mode="Parallel",
                column_delimiter=fmt.column_delimiter, line_ending=fmt.line_ending, state=OPEN,
                created_by_id=context.user_id, created_date=now, system_modstamp=now,
                api_version=context.api_version, **_zero_counters()))
        return self.get(job_id)

    def create_query(self, context: Context, body: dict[str, Any]) -> Job:
        operation = _text(body, "operation", required=True)
        if operation not in QUERY_OPERATIONS:
            raise BulkJobError(f"Invalid operation: {operation}", ["operation"], error_code="INVALIDJOB")
        soql = _text(body, "query", required=True)
        fmt = _format(body)
        _content_type(body)
        compiled = self.query.compile(soql, context, include_deleted=operation == "queryAll")
        _check_bulk_query(compiled)
        since = utcnow() - timedelta(hours=24)
        with self.store.read() as conn:
            used = conn.execute(select(func.count()).select_from(self._table).where(and_(
                self._table.c.job_type == QUERY, self._table.c.created_date > since))).scalar() or 0
        if used >= self.limits.daily_query_jobs:
            raise ExceededQuota(f"Exceeded the limit of {self.limits.daily_query_jobs} Bulk API query jobs in the "
                                "last 24 hours")
        now = utcnow()
        values = dict(id=ids.new_id("750"), job_type=QUERY, operation=operation, object=compiled.object.name,
                      external_id_field=None, assignment_rule_id=None, query=soql,
                      column_delimiter=fmt.column_delimiter, line_ending=fmt.line_ending, state=UPLOAD_COMPLETE,
                      error_message=None, created_by_id=context.user_id, created_date=now, system_modstamp=now,
                      api_version=context.api_version, columns_json=None, content_type="CSV",
                      concurrency_mode="Parallel", claimed_by=None,
                      claimed_until=None,
                      **_zero_counters())
        with self.store.write() as conn:
            conn.execute(self._table.insert().values(**values))
        self.on_runnable()
        # The answer shows the job as created (UploadComplete), whatever a worker has done with it meanwhile.
        return Job(**values)  # type: ignore[arg-type]

    # -- uploads and state changes ------------------------------------------------------------------------------

    def upload(self, context: Context, job_id: str, data: bytes) -> Job:
        """Keep one CSV upload of an Open ingest job.

        As on the platform, data the job cannot process (bad CSV, wrong line endings, unknown columns) is still
        accepted; the job then fails when it runs, with the platform's ``errorMessage`` (``InvalidBatch : Field
        name not found : X``), and no record changes. Requests the job cannot take at all (not Open, too large,
        over the daily allocation) are refused at once.
        """
        job = self.get(job_id, INGEST)
        if job.state != OPEN:
            raise InvalidJobState(f"Job {job.id} is not in the Open state (it is {job.state}): data can only be "
                                  "uploaded to an Open job")
        if len(data) > self.limits.max_upload_bytes:
            raise ClientInputError(f"The upload is {len(data)} bytes; the limit is "
                                   f"{self.limits.max_upload_bytes} bytes per upload")
        header, records, problem = self._check_upload(job, data)
        used = self.records_used()
        if used + records > self.limits.daily_records:
            raise ExceededQuota(f"Exceeded the limit of {self.limits.daily_records} Bulk API records in the last "
                                f"24 hours ({used} used)")
        table = self._table
        with self.store.write() as conn:
            values: dict[str, Any] = {
                "uploads": table.c.uploads + 1, "upload_bytes": table.c.upload_bytes + len(data),
                "records_uploaded": table.c.records_uploaded + records,
                "columns_json": json.dumps(job.columns or header), "system_modstamp": utcnow()}
            if problem and not job.error_message:
                values["error_message"] = problem
            moved = conn.execute(update(table).where(and_(table.c.id == job.id, table.c.state == OPEN))
                                 .values(**values)).rowcount
            if moved != 1:
                raise InvalidJobState(f"Job {job.id} is no longer Open: the upload was not kept")
            counts = conn.execute(select(table.c.uploads, table.c.records_uploaded)
                                  .where(table.c.id == job.id)).one()
            upload_no = int(counts.uploads) - 1
            for offset, piece in enumerate(split(data)):
                self.parts.add(conn, job.id, "upload", upload_no * UPLOAD_SEQ_STRIDE + offset, piece,
                               first_row=int(counts.records_uploaded) - records,
                               rows=records if offset == 0 else 0)
        return self.get(job.id)

    def _check_upload(self, job: Job, data: bytes) -> tuple[list[str], int, str | None]:
        """(header, records, the job's future errorMessage or None) of one upload."""
        try:
            scanned = csvdata.scan(data, job.format)
        except BulkJobError as error:
            return job.columns, 0, _job_error(error)
        try:
            obj = self.store.schema.object(job.object)
            if obj is None:
                raise InvalidEntity(f"Entity '{job.object}' is not supported by the Bulk API.", ["object"])
            ColumnPlan(obj, self.store.schema, scanned.header, job.operation, job.external_id_field)
            if job.columns and [c.lower() for c in job.columns] != [c.lower() for c in scanned.header]:
                raise ClientInputError("Every upload of a job must have the same header: the first upload had "
                                       f"{','.join(job.columns)}")
        except BulkJobError as error:
            return scanned.header, scanned.records, _job_error(error)
        return scanned.header, scanned.records, None

    def set_state(self, context: Context, job_id: str, job_type: str, state: Any) -> Job:
        """PATCH the job's state: ``UploadComplete`` (queue an Open ingest job) or ``Aborted``."""
        job = self.get(job_id, job_type)
        if state == UPLOAD_COMPLETE and job_type == INGEST:
            return self._close(job)
        if state == ABORTED:
            return self._abort(job)
        raise InvalidJobState(f"Invalid state {state!r}: a {'n ingest' if job_type == INGEST else ' query'} job "
                              f"can be set to {'UploadComplete or ' if job_type == INGEST else ''}Aborted", ["state"])

    def _close(self, job: Job) -> Job:
        if job.state != OPEN:
            raise InvalidJobState(f"Job {job.id} is {job.state}: only an Open job can be set to UploadComplete")
        batches = math.ceil(job.records_uploaded / self.limits.batch_size)
        used = self.batches_used()
        if used + batches > self.limits.daily_batches:
            raise ExceededQuota(f"Exceeded the limit of {self.limits.daily_batches} Bulk API batches in the last "
                                f"24 hours ({used} used, this job needs {batches})")
        table = self._table
        values: dict[str, Any] = {"state": UPLOAD_COMPLETE, "system_modstamp": utcnow()}
        if job.uploads == 0:
            values = {"state": FAILED, "error_message": "InvalidBatch : No data was uploaded for the job",
                      "system_modstamp": utcnow()}
        with self.store.write() as conn:
            moved = conn.execute(update(table).where(and_(table.c.id == job.id, table.c.state == OPEN))
                                 .values(**values)).rowcount
        if moved != 1:
            raise InvalidJobState(f"Job {job.id} is no longer Open")
        self.on_runnable()
        # The answer shows the state this request set, whatever a worker has done with the job meanwhile.
        return dataclasses.replace(job, **{k: v for k, v in values.items() if k in ("state", "error_message")},
                                   system_modstamp=values["system_modstamp"])

    def _abort(self, job: Job) -> Job:
        if job.state in FINISHED:
            raise InvalidJobState(f"Job {job.id} is already {job.state}: it can no longer be aborted")
        table = self._table
        with self.store.write() as conn:
            moved = conn.execute(update(table).where(and_(table.c.id == job.id, table.c.state.not_in(
                (*FINISHED, DELETED)))).values(state=ABORTED, system_modstamp=utcnow())).rowcount
        if moved != 1:
            raise InvalidJobState(f"Job {job.id} finished before it could be aborted")
        return self.get(job.id)

    def delete(self, job_id: str, job_type: str) -> None:
        job = self.get(job_id, job_type)
        if job.state not in (*FINISHED, UPLOAD_COMPLETE) or (job.state == UPLOAD_COMPLETE and job.claimed_by):
            raise InvalidJobState(f"Job {job.id} is {job.state}: only a finished job can be deleted")
        table = self._table
        with self.store.write() as conn:
            # The row stays (state Deleted) so the job still counts against the 24-hour allocation.
            conn.execute(update(table).where(table.c.id == job.id).values(
                state=DELETED, system_modstamp=utcnow(), claimed_by=None, claimed_until=None))
            self.parts.remove(conn, job.id)

    # -- usage ------------------------------------------------------------------------------------------------

    def queue(self) -> QueueStats:
        return job_queue(self.store)

    def records_used(self) -> int:
        since = utcnow() - timedelta(hours=24)
        table = self._table
        with self.store.read() as conn:
            total = conn.execute(select(func.coalesce(func.sum(table.c.records_uploaded), 0)).where(and_(
                table.c.job_type == INGEST, table.c.created_date > since))).scalar()
        return int(total or 0)

    def batches_used(self) -> int:
        since = utcnow() - timedelta(hours=24)
        table = self._table
        with self.store.read() as conn:
            counts = conn.execute(select(table.c.records_uploaded).where(and_(
                table.c.job_type == INGEST, table.c.created_date > since,
                table.c.state != OPEN))).scalars().all()
        return sum(math.ceil(int(n) / self.limits.batch_size) for n in counts)

    def query_jobs_used(self) -> int:
        since = utcnow() - timedelta(hours=24)
        table = self._table
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(and_(
                table.c.job_type == QUERY, table.c.created_date > since))).scalar() or 0)

    # -- ingest results --------------------------------------------------------------------------------------

    def ingest_results(self, job_id: str, kind: str) -> Iterator[bytes]:
        """``successfulResults``, ``failedResults`` or ``unprocessedrecords`` as CSV chunks."""
        job = self.get(job_id, INGEST)
        fmt = job.format
        columns = job.columns
        if kind == "success":
            return _prefixed(fmt.header(columns, quoted_prefix=("sf__Id", "sf__Created")),
                             self.parts.stream(job.id, "success"))
        if kind == "failure":
            return _prefixed(fmt.header(columns, quoted_prefix=("sf__Id", "sf__Error")),
                             self.parts.stream(job.id, "failure"))
        return self._unprocessed(job)

    def _unprocessed(self, job: Job) -> Iterator[bytes]:
        fmt = job.format
        if job.state not in (ABORTED, FAILED) or not job.columns:
            yield fmt.header(job.columns).encode() if job.columns else b""
            return
        yield fmt.header(job.columns).encode()
        skip = job.batches_done * self.limits.batch_size
        lines: list[str] = []
        try:
            for values in self.upload_records(job):
                if skip:
                    skip -= 1
                    continue
                lines.append(fmt.line(values))
                if len(lines) >= 10_000:
                    yield "".join(lines).encode()
                    lines.clear()
        except BulkJobError:
            pass  # data the job could not read: what could be read is all there is to show
        if lines:
            yield "".join(lines).encode()

    def upload_records(self, job: Job) -> Iterator[list[str]]:
        """Every uploaded record of the job in upload order (headers left out), one part in memory at a time."""
        for seqs in self.parts.uploads(job.id):
            chunks = (self.parts.data(job.id, "upload", seq) for seq in seqs)
            yield from csvdata.data_records(chunks, job.format)

    # -- query results ----------------------------------------------------------------------------------------

    def query_results(self, job_id: str, version: str, *, locator: str | None, max_records: int | None) -> ResultPage:
        job = self._complete_query(job_id, version)
        start = _decode_locator(locator) if locator else 0
        count = max_records or DEFAULT_MAX_RECORDS
        total = job.records_processed
        if start > total:
            raise BulkJobError(f"Invalid locator: {locator}", ["locator"], error_code="INVALIDLOCATOR")
        end = min(total, start + count)
        header = job.format.line(job.columns).encode() if job.columns else b""
        next_locator = _encode_locator(end) if end < total else None
        return ResultPage(self._rows(job.id, header, start, end), end - start, next_locator)

    def result_pages(self, job_id: str, version: str, *, max_records: int | None,
                     locator: str | None) -> tuple[list[str], str | None]:
        """Locators for up to five pages from ``locator`` on (``resultPages``), and where the next set starts."""
        job = self._complete_query(job_id, version)
        size = max_records or DEFAULT_MAX_RECORDS
        start = _decode_locator(locator) if locator else 0
        total = job.records_processed
        starts = list(range(start, max(total, 1), size))[:RESULT_PAGES_PER_RESPONSE] if start < max(total, 1) else []
        following = start + RESULT_PAGES_PER_RESPONSE * size
        return [_encode_locator(s) for s in starts], (_encode_locator(following) if following < total else None)

    def _complete_query(self, job_id: str, version: str) -> Job:
        job = self.get(job_id, QUERY)
        if job.api_version != version:
            raise JobApiVersionMismatch(f"The job was created with API version {job.api_version}; get its results "
                                        f"with the same version (not {version})")
        if job.state != "JobComplete":
            raise InvalidJobState(f"Job {job.id} is {job.state}: results are available once it is JobComplete")
        return job

    def _rows(self, job_id: str, header: bytes, start: int, end: int) -> Iterator[bytes]:
        yield header
        if end <= start:
            return
        for info in self.parts.infos(job_id, "result"):
            part_end = info.first_row + info.rows
            if part_end <= start or info.first_row >= end:
                continue
            data, offsets = self.parts.offsets(job_id, info.seq)
            low = max(start, info.first_row) - info.first_row
            high = min(end, part_end) - info.first_row
            begin = offsets[low]
            finish = offsets[high] if high < len(offsets) else len(data)
            yield data[begin:finish]

    # -- housekeeping --------------------------------------------------------------------------------------------

    def purge(self) -> int:
        """Delete jobs finished more than seven days ago (and their data); returns how many."""
        table = self._table
        cutoff = utcnow() - JOB_RETENTION
        with self.store.write() as conn:
            old = conn.execute(select(table.c.id).where(and_(
                table.c.state.in_((*FINISHED, DELETED)), table.c.system_modstamp < cutoff))).scalars().all()
            for job_id in old:
                self.parts.remove(conn, job_id)
                conn.execute(table.delete().where(table.c.id == job_id))
        return len(old)


def _prefixed(first: str, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first.encode()
    yield from rest


_ERROR_PREFIXES = {"INVALIDBATCH": "InvalidBatch", "CLIENTINPUTERROR": "ClientInputError"}


def _job_error(error: BulkJobError) -> str:
    """A problem with uploaded data as the platform's job ``errorMessage``: ``InvalidBatch : Field name …``."""
    return f"{_ERROR_PREFIXES.get(error.error_code, 'InvalidBatch')} : {error.message}"


def _encode_locator(row: int) -> str:
    return base64.b64encode(str(row).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded, validate=True).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BulkJobError(f"Invalid locator: {locator}", ["locator"], error_code="INVALIDLOCATOR") from None


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BulkJobError(f"The {key} field is required to create a job", [key], error_code="INVALIDJOB")
        return None
    if not isinstance(value, str):
        raise BulkJobError(f"The {key} field must be a string", [key], error_code="INVALIDJOB")
    return value


def _format(body: dict[str, Any]) -> csvdata.CsvFormat:
    delimiter = _text(body, "columnDelimiter") or "COMMA"
    line_ending = _text(body, "lineEnding") or "LF"
    if delimiter not in csvdata.DELIMITERS:
        raise BulkJobError(f"Invalid columnDelimiter {delimiter}: use one of {', '.join(csvdata.DELIMITERS)}",
                           ["columnDelimiter"], error_code="INVALIDJOB")
    if line_ending not in csvdata.LINE_ENDINGS:
        raise BulkJobError(f"Invalid lineEnding {line_ending}: use LF or CRLF", ["lineEnding"],
                           error_code="INVALIDJOB")
    return csvdata.CsvFormat(delimiter, line_ending)


def _content_type(body: dict[str, Any]) -> None:
    content_type = _text(body, "contentType") or "CSV"
    if content_type != "CSV":
        raise BulkJobError(f"Invalid contentType {content_type}: Bulk API 2.0 takes CSV", ["contentType"],
                           error_code="INVALIDJOB")


def _check_bulk_query(compiled: Any) -> None:
    """The SOQL the Bulk API refuses: aggregates, COUNT(), OFFSET, child subqueries, TYPEOF."""
    if compiled.kind != "records":
        raise MalformedQueryError("Aggregate queries and COUNT() are not supported by the Bulk API")
    if compiled.offset:
        raise MalformedQueryError("OFFSET is not supported by the Bulk API")
    try:
        flat_columns(compiled.shape)
    except ValueError as exc:
        raise MalformedQueryError(f"Child relationship subqueries and TYPEOF are not supported by the Bulk API: "
                                  f"{exc}") from None


def _zero_counters() -> dict[str, Any]:
    return {"uploads": 0, "upload_bytes": 0, "records_uploaded": 0, "batches_done": 0, "records_processed": 0,
            "records_failed": 0, "retries": 0, "processing_ms": 0, "api_active_ms": 0, "result_bytes": 0}


__all__ = ["BulkJobs", "BulkLimits", "QueueStats", "ResultPage", "job_queue"]
