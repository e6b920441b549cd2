"""Bulk API 1.0 (the "classic" Bulk API): a job holds batches the client adds; each batch is processed on its own.

Unlike Bulk API 2.0, the client cuts the data into batches (at most 10,000 records and 10 MB each), a batch is
processed as soon as it arrives (while the job is still Open), and results are per batch. Batches are JSON, CSV
or XML, as the job's ``contentType`` says; query jobs take the SOQL text as a batch. Jobs live in
``il_bulk_job`` (``jobType`` Classic) beside Bulk API 2.0 jobs, batches in ``il_bulk_batch``, their request and
result bytes in ``il_bulk_part``. A worker claims a queued batch with a lease and commits its records, its results
and its state in one transaction, so a batch is applied exactly once even across a crash.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import orjson
from sqlalchemy import and_, func, select, update

from interlink import ids
from interlink.errors import BulkJobError, InterlinkError, InvalidEntity, InvalidJobState, NotFoundError
from interlink.jobs import csvdata
from interlink.jobs.bulk import BulkJobs, _check_bulk_query
from interlink.jobs.ingest import ColumnPlan, apply_bodies, error_text
from interlink.jobs.model import CLASSIC, INGEST_OPERATIONS, QUERY_OPERATIONS, Job
from interlink.metadata.values import format_datetime_z, is_temporal_converter, parse_datetime
from interlink.records.context import Context
from interlink.records.results import SaveResult
from interlink.records.service import RecordService
from interlink.store.database import utcnow
from interlink.xmlsafe import check_untrusted_xml

NS = "http://www.force.com/2009/06/asyncapi/dataload"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CONTENT_TYPES = ("JSON", "CSV", "XML")
OPEN, CLOSED, ABORTED, FAILED = "Open", "Closed", "Aborted", "Failed"
QUEUED, IN_PROGRESS, COMPLETED, NOT_PROCESSED = "Queued", "InProgress", "Completed", "NotProcessed"
BATCH_STATES = (QUEUED, IN_PROGRESS, COMPLETED, FAILED, NOT_PROCESSED)
MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 10_000_000
QUERY_RESULT_ROWS = 100_000  # rows per query result file
RESULT_STRIDE = 10_000  # result parts are numbered batch seq * 10,000 + result number


@dataclass
class Batch:
    """One row of ``il_bulk_batch``."""

    id: str
    job_id: str
    seq: int
    state: str
    state_message: str | None
    records_processed: int
    records_failed: int
    processing_ms: int
    api_active_ms: int
    results: int
    created_date: datetime
    system_modstamp: datetime
    claimed_by: str | None
    claimed_until: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Batch:
        return cls(**{name: row._mapping[name] for name in cls.__dataclass_fields__})

    def info(self) -> dict[str, Any]:
        """batchInfo, in the platform's field order."""
        body: dict[str, Any] = {"id": self.id, "jobId": self.job_id, "state": self.state}
        if self.state_message:
            body["stateMessage"] = self.state_message
        body.update({
            "createdDate": format_datetime_z(self.created_date),
            "systemModstamp": format_datetime_z(self.system_modstamp),
            "numberRecordsProcessed": self.records_processed, "numberRecordsFailed": self.records_failed,
            "totalProcessingTime": self.processing_ms, "apiActiveProcessingTime": self.api_active_ms,
            "apexProcessingTime": 0})
        return body


class ClassicJobs:
    """Bulk API 1.0 job and batch operations, for the ``/services/async`` surface."""

    def __init__(self, bulk: BulkJobs) -> None:
        self.bulk = bulk
        self.store = bulk.store
        self.parts = bulk.parts

    @property
    def _jobs(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_bulk_job"]

    @property
    def _batches(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_bulk_batch"]

    # -- jobs ------------------------------------------------------------------------------------------------

    def create_job(self, context: Context, spec: dict[str, Any]) -> Job:
        operation = str(spec.get("operation") or "")
        if operation not in (*INGEST_OPERATIONS, *QUERY_OPERATIONS):
            raise BulkJobError(f"Invalid operation: {operation or '(none)'}", ["operation"], error_code="INVALIDJOB")
        object_name = str(spec.get("object") or "")
        obj = self.store.schema.object(object_name)
        if obj is None or not obj.is_stored:
            raise InvalidEntity(f"Unable to find object: {object_name or '(none)'}", ["object"])
        content_type = str(spec.get("contentType") or "XML").upper()
        if content_type not in CONTENT_TYPES:
            raise BulkJobError(f"Invalid contentType {content_type}: use JSON, CSV or XML", ["contentType"],
                               error_code="INVALIDJOB")
        external = spec.get("externalIdFieldName") or None
        if operation == "upsert":
            fdef = obj.field(str(external or ""))
            if fdef is None or not (fdef.external_id or fdef.name == "Id"):
                raise BulkJobError(f"The field {external} is not an external ID field on {obj.name}",
                                   ["externalIdFieldName"], error_code="INVALIDJOB")
            external = fdef.name
        else:
            external = None
        mode = spec.get("concurrencyMode")
        serial = mode in (1, "1") or (isinstance(mode, str) and mode.lower() == "serial")
        now = utcnow()
        job_id = ids.new_id("750")
        with self.store.write() as conn:
            conn.execute(self._jobs.insert().values(
                concurrency_mode="Serial" if serial else "Parallel", id=job_id, job_type=CLASSIC,
                operation=operation, object=obj.name, external_id_field=external,
                assignment_rule_id=None, query=None, column_delimiter="COMMA", line_ending="LF", state=OPEN,
                error_message=None, created_by_id=context.user_id, created_date=now, system_modstamp=now,
                api_version=context.api_version, columns_json=None, content_type=content_type, uploads=0,
                upload_bytes=0, records_uploaded=0, batches_done=0, records_processed=0, records_failed=0,
                retries=0, processing_ms=0, api_active_ms=0, result_bytes=0))
        return self.job(job_id)

    def job(self, job_id: str) -> Job:
        try:
            job = self.bulk.get(job_id, CLASSIC)
        except NotFoundError:
            raise BulkJobError(f"Invalid job id: {job_id}", error_code="INVALIDJOB") from None
        return job

    def job_info(self, job: Job) -> dict[str, Any]:
        """jobInfo with the batch counts, in the platform's field order."""
        table = self._batches
        with self.store.read() as conn:
            counts = dict(conn.execute(select(table.c.state, func.count()).where(table.c.job_id == job.id)
                                       .group_by(table.c.state)).all())
        body: dict[str, Any] = {"id": job.id, "operation": job.operation, "object": job.object,
                                "createdById": job.created_by_id, "createdDate": format_datetime_z(job.created_date),
                                "systemModstamp": format_datetime_z(job.system_modstamp), "state": job.state}
        if job.external_id_field:
            body["externalIdFieldName"] = job.external_id_field
        body.update({
            "concurrencyMode": job.concurrency_mode or "Parallel", "contentType": job.content_type,
            "numberBatchesQueued": counts.get(QUEUED, 0), "numberBatchesInProgress": counts.get(IN_PROGRESS, 0),
            "numberBatchesCompleted": counts.get(COMPLETED, 0), "numberBatchesFailed": counts.get(FAILED, 0),
            "numberBatchesTotal": sum(counts.values()), "numberRecordsProcessed": job.records_processed,
            "numberRetries": job.retries, "apiVersion": float(job.api_version),
            "numberRecordsFailed": job.records_failed, "totalProcessingTime": job.processing_ms,
            "apiActiveProcessingTime": job.api_active_ms, "apexProcessingTime": 0})
        return body

    def set_state(self, job_id: str, state: str) -> Job:
        """Close (no more batches) or abort (queued batches become NotProcessed) a job."""
        job = self.job(job_id)
        if state not in (CLOSED, ABORTED):
            raise InvalidJobState(f"Invalid state {state!r}: a job can be set to Closed or Aborted", ["state"])
        allowed = (OPEN,) if state == CLOSED else (OPEN, CLOSED)
        if job.state not in allowed:
            raise InvalidJobState(f"Job {job.id} is {job.state}: it cannot be set to {state}")
        now = utcnow()
        with self.store.write() as conn:
            conn.execute(update(self._jobs).where(self._jobs.c.id == job.id).values(state=state, system_modstamp=now))
            if state == ABORTED:
                conn.execute(update(self._batches).where(and_(
                    self._batches.c.job_id == job.id, self._batches.c.state == QUEUED)).values(
                    state=NOT_PROCESSED, state_message="The job was aborted", system_modstamp=now))
        return self.job(job.id)

    # -- batches ---------------------------------------------------------------------------------------------

    def add_batch(self, context: Context, job_id: str, data: bytes) -> Batch:
        """Queue one batch of an Open job (records as the job's content type, or a SOQL query)."""
        job = self.job(job_id)
        if job.state != OPEN:
            raise InvalidJobState(f"Job {job.id} is {job.state}: batches can only be added to an Open job")
        if len(data) > MAX_BATCH_BYTES:
            raise BulkJobError(f"The batch is {len(data)} bytes; a batch holds at most {MAX_BATCH_BYTES} bytes",
                               error_code="INVALIDBATCH")
        if not data.strip():
            raise BulkJobError("The batch is empty", error_code="INVALIDBATCH")
        now = utcnow()
        table = self._batches
        batch_id = ids.new_id("751")
        with self.store.write() as conn:
            seq = conn.execute(select(func.coalesce(func.max(table.c.seq), -1)).where(table.c.job_id == job.id)
                               ).scalar() + 1
            conn.execute(table.insert().values(
                id=batch_id, job_id=job.id, seq=seq, state=QUEUED, state_message=None, records_processed=0,
                records_failed=0, processing_ms=0, api_active_ms=0, results=0, created_date=now,
                system_modstamp=now, claimed_by=None, claimed_until=None))
            self.parts.add(conn, job.id, "c_req", seq, data)
        self.bulk.on_runnable()
        return self.batch(job.id, batch_id)

    def batch(self, job_id: str, batch_id: str) -> Batch:
        normalized = ids.normalize(batch_id)
        table = self._batches
        with self.store.read() as conn:
            row = conn.execute(select(table).where(and_(table.c.id == normalized, table.c.job_id == job_id))).first()
        if row is None:
            raise BulkJobError(f"Invalid batch id: {batch_id}", error_code="INVALIDBATCH")
        return Batch.from_row(row)

    def batches(self, job_id: str) -> list[Batch]:
        table = self._batches
        with self.store.read() as conn:
            rows = conn.execute(select(table).where(table.c.job_id == job_id).order_by(table.c.seq)).all()
        return [Batch.from_row(row) for row in rows]

    def request(self, job: Job, batch: Batch) -> bytes:
        return self.parts.data(job.id, "c_req", batch.seq)

    def result(self, job: Job, batch: Batch) -> bytes | list[str]:
        """A DML batch's results (bytes in the job's content type), or a query batch's result ids."""
        if batch.state != COMPLETED:
            raise BulkJobError(f"Batch {batch.id} is {batch.state}: results are available once it is Completed",
                               error_code="INVALIDBATCH")
        if job.operation in QUERY_OPERATIONS:
            return [_result_id(batch, number) for number in range(batch.results)]
        return self.parts.data(job.id, "c_res", batch.seq)

    def result_ids(self, job: Job, batch: Batch) -> list[str]:
        """The result file ids of a completed query batch (none for other batches)."""
        if job.operation not in QUERY_OPERATIONS or batch.state != COMPLETED:
            return []
        return [_result_id(batch, number) for number in range(batch.results)]

    def query_result(self, job: Job, batch: Batch, result_id: str) -> bytes:
        if job.operation not in QUERY_OPERATIONS or batch.state != COMPLETED:
            raise BulkJobError(f"Invalid result id: {result_id}", error_code="INVALIDBATCH")
        for number in range(batch.results):
            if _result_id(batch, number) == result_id:
                return self.parts.data(job.id, "c_qry", batch.seq * RESULT_STRIDE + number)
        raise BulkJobError(f"Invalid result id: {result_id}", error_code="INVALIDBATCH")


def _result_id(batch: Batch, number: int) -> str:
    """A stable 752 id for result ``number`` of ``batch`` (derived from the batch id, so nothing is stored)."""
    return ids.to_18(f"752{batch.id[6:15]}{number:03d}")


# -- processing (run by the worker) ------------------------------------------------------------------------------


class BatchRunner:
    """Runs one claimed batch: parse, apply (or query), write results and state in one transaction."""

    def __init__(self, classic: ClassicJobs, records: RecordService) -> None:
        self.classic = classic
        self.records = records

    def run(self, job: Job, batch: Batch, context: Context, worker_id: str) -> None:
        started = time.perf_counter()
        data = self.classic.request(job, batch)
        if job.operation in QUERY_OPERATIONS:
            try:
                self._query(job, batch, context, data, worker_id, started)
            except InterlinkError as error:
                self._finish(job, batch, worker_id, FAILED, f"InvalidBatch : Failed to process query: "
                                                            f"{error.error_code}: {error.message}", started)
            return
        try:
            bodies = parse_records(job, self.classic.store.schema, data)
        except InterlinkError as error:
            self._finish(job, batch, worker_id, FAILED, f"InvalidBatch : {error.message}", started)
            return
        jobs, batches = self.classic._jobs, self.classic._batches
        with self.records.unit_of_work(context) as uow:
            taken = uow.conn.execute(update(batches).where(and_(
                batches.c.id == batch.id, batches.c.state == IN_PROGRESS, batches.c.claimed_by == worker_id))
                .values(state=COMPLETED)).rowcount
            if taken != 1:
                from interlink.jobs.ingest import LeaseLost

                raise LeaseLost(batch.id)
            results = apply_bodies(self.records, context, job.operation, job.object, job.external_id_field, bodies)
            api_ms = int((time.perf_counter() - started) * 1000)
            failed = sum(1 for result in results if not result.success)
            self.classic.parts.add(uow.conn, job.id, "c_res", batch.seq, render_results(job, results))
            elapsed = int((time.perf_counter() - started) * 1000)
            uow.conn.execute(update(batches).where(batches.c.id == batch.id).values(
                records_processed=len(bodies), records_failed=failed, processing_ms=elapsed, api_active_ms=api_ms,
                system_modstamp=utcnow(), claimed_by=None, claimed_until=None))
            uow.conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                records_processed=jobs.c.records_processed + len(bodies),
                records_failed=jobs.c.records_failed + failed, processing_ms=jobs.c.processing_ms + elapsed,
                api_active_ms=jobs.c.api_active_ms + api_ms, system_modstamp=utcnow()))

    def _finish(self, job: Job, batch: Batch, worker_id: str, state: str, message: str | None, started: float,
                **values: Any) -> None:
        """End the batch (and add what it processed to the job) in one transaction."""
        batches, jobs = self.classic._batches, self.classic._jobs
        with self.classic.store.write() as conn:
            ended = conn.execute(update(batches).where(and_(batches.c.id == batch.id,
                                                            batches.c.claimed_by == worker_id))
                                 .values(state=state, state_message=message, system_modstamp=utcnow(),
                                         claimed_by=None, claimed_until=None,
                                         processing_ms=int((time.perf_counter() - started) * 1000), **values)).rowcount
            if ended and values.get("records_processed"):
                conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                    records_processed=jobs.c.records_processed + values["records_processed"],
                    system_modstamp=utcnow()))

    def _query(self, job: Job, batch: Batch, context: Context, data: bytes, worker_id: str, started: float) -> None:
        soql = data.decode("utf-8", "replace").strip()
        engine = self.classic.bulk.query
        include_deleted = job.operation == "queryAll"
        compiled = engine.compile(soql, context, include_deleted=include_deleted)
        _check_bulk_query(compiled)
        if compiled.object.name.lower() != job.object.lower():
            raise BulkJobError(f"The query's object {compiled.object.name} is not the job's object {job.object}",
                               error_code="INVALIDBATCH")
        renderer = _QueryRenderer(job, compiled)
        count = 0
        number = 0
        prefix = f"/services/data/v{job.api_version}/sobjects"
        with self.classic.store.write() as conn:  # a run cut short by a crash left some result files: start over
            self.classic.parts.remove_range(conn, job.id, "c_qry", batch.seq * RESULT_STRIDE,
                                            (batch.seq + 1) * RESULT_STRIDE)

        def flush() -> None:
            nonlocal number
            with self.classic.store.write() as conn:
                self.classic.parts.add(conn, job.id, "c_qry", batch.seq * RESULT_STRIDE + number, renderer.take())
            number += 1

        for records in engine.stream_records(soql, context, include_deleted=include_deleted, url_prefix=prefix):
            for record in records:
                renderer.add(record)
                count += 1
                if renderer.rows >= QUERY_RESULT_ROWS:
                    flush()
        if renderer.rows or number == 0:
            flush()
        self._finish(job, batch, worker_id, COMPLETED, None, started, records_processed=count, results=number)


# -- formats ---------------------------------------------------------------------------------------------------


def parse_records(job: Job, schema: Any, data: bytes) -> list[dict[str, Any]]:
    """A DML batch's records as records-service bodies; INVALIDBATCH when the data cannot be read."""
    obj = schema.object(job.object)
    if obj is None:
        raise InvalidEntity(f"Unable to find object: {job.object}")
    if job.content_type == "JSON":
        try:
            records = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BulkJobError(f"Failed to parse JSON: {exc}", error_code="INVALIDBATCH") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BulkJobError("A JSON batch is an array of records (objects)", error_code="INVALIDBATCH")
        bodies = records
    elif job.content_type == "CSV":
        fmt = csvdata.CsvFormat("COMMA", "CRLF" if b"\r\n" in data[:data.find(b"\n") + 1] else "LF")
        rows = list(csvdata.records((data,), fmt))
        if not rows:
            raise BulkJobError("The CSV batch has no header row", error_code="INVALIDBATCH")
        plan = ColumnPlan(obj, schema, rows[0], job.operation, job.external_id_field)
        bodies = []
        for number, values in enumerate(rows[1:], start=1):
            if not values or values == [""]:
                continue
            if len(values) != len(rows[0]):
                raise BulkJobError(f"Record {number} has {len(values)} values; the header has {len(rows[0])}",
                                   error_code="INVALIDBATCH")
            bodies.append(plan.record(values))
    else:
        bodies = _xml_records(data)
    if len(bodies) > MAX_BATCH_RECORDS:
        raise BulkJobError(f"The batch holds {len(bodies)} records; a batch holds at most {MAX_BATCH_RECORDS}",
                           error_code="INVALIDBATCH")
    return bodies


def _xml_records(data: bytes) -> list[dict[str, Any]]:
    try:
        check_untrusted_xml(data)
        root = ET.fromstring(data)
    except (ValueError, ET.ParseError, ExpatError) as exc:
        raise BulkJobError(f"Failed to parse XML: {exc}", error_code="INVALIDBATCH") from None
    if _local(root.tag) != "sObjects":
        raise BulkJobError("An XML batch is an <sObjects> element of <sObject> records", error_code="INVALIDBATCH")
    return [_xml_record(element) for element in root if _local(element.tag) == "sObject"]


def _xml_record(element: ET.Element) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if len(child):  # a parent by external id: <Account><sObject><Ext__c>A-1</Ext__c></sObject></Account>
            inner = child[0] if len(child) == 1 and _local(child[0].tag) == "sObject" else child
            body[name] = _xml_record(inner)
        elif child.get(f"{{{XSI}}}nil") == "true":
            body[name] = None
        else:
            body[name] = child.text or ""
    return body


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def render_results(job: Job, results: list[SaveResult]) -> bytes:
    """A DML batch's results: JSON array, CSV (``Id,Success,Created,Error``) or XML ``<results>``."""
    def created(result: SaveResult) -> bool:
        if not result.success:
            return False
        return result.created if result.created is not None else job.operation == "insert"

    if job.content_type == "JSON":
        return orjson.dumps([{"success": r.success, "created": created(r), "id": r.id,
                              "errors": [e.to_save_error() for e in r.errors]} for r in results])
    if job.content_type == "CSV":
        fmt = csvdata.CsvFormat()
        lines = [fmt.line(["Id", "Success", "Created", "Error"])]
        lines += [fmt.line([r.id or "", _bool(r.success), _bool(created(r)), error_text(r) if r.errors else ""])
                  for r in results]
        return "".join(lines).encode()
    parts = [f'<?xml version="1.0" encoding="UTF-8"?><results xmlns="{NS}">']
    for r in results:
        parts.append("<result>")
        parts.append(f"<id>{escape(r.id)}</id>" if r.id else f'<id xsi:nil="true" xmlns:xsi="{XSI}"/>')
        parts.extend(f"<errors>{''.join(f'<fields>{escape(f)}</fields>' for f in e.fields)}"
                     f"<message>{escape(e.message)}</message><statusCode>{e.error_code}</statusCode></errors>"
                     for e in r.errors)
        parts.append(f"<success>{_bool(r.success)}</success><created>{_bool(created(r))}</created></result>")
    parts.append("</results>")
    return "".join(parts).encode()


def _bool(value: bool) -> str:
    return "true" if value else "false"


class _QueryRenderer:
    """Query records in the job's content type, one result file at a time."""

    def __init__(self, job: Job, compiled: Any) -> None:
        self.kind = job.content_type
        self.rows = 0
        self._chunks: list[bytes] = []
        # JSON results carry dates and datetimes as epoch milliseconds, as the platform's Bulk API 1.0 does.
        self._temporal = temporal_paths(compiled.shape) if self.kind == "JSON" else []
        if self.kind == "CSV":
            from interlink.soql.compiled import flat_columns

            self._names = [name for name, _ in flat_columns(compiled.shape)]
            self._writer = csvdata.RowWriter(csvdata.CsvFormat(), range(len(self._names)))
            self._header = csvdata.CsvFormat().line(self._names).encode()

    def add(self, record: dict[str, Any]) -> None:
        self.rows += 1
        if self.kind == "JSON":
            for path in self._temporal:
                _to_epoch_ms(record, path)
            self._chunks.append(orjson.dumps(record))
        elif self.kind == "CSV":
            self._writer.add([_wire_to_csv(_flat_value(record, name)) for name in self._names])
        else:
            self._chunks.append(f'<records xsi:type="sObject">{_xml_fields(record)}</records>'.encode())

    def take(self) -> bytes:
        """The result file of the records added since the last take."""
        self.rows = 0
        if self.kind == "JSON":
            data = b"[" + b",".join(self._chunks) + b"]"
        elif self.kind == "CSV":
            data = self._header + self._writer.take()[0]
        else:
            data = (f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}" xmlns:xsi="{XSI}">'.encode()
                    + b"".join(self._chunks) + b"</queryResult>")
        self._chunks = []
        return data


def temporal_paths(shape: Any) -> list[tuple[str, ...]]:
    """The keys (parents first) of the date and datetime values in records of ``shape``."""
    from interlink.soql.compiled import FieldOut, ParentOut

    found: list[tuple[str, ...]] = []

    def walk(items: list[Any], prefix: tuple[str, ...]) -> None:
        for item in items:
            if isinstance(item, FieldOut) and is_temporal_converter(item.convert):
                found.append((*prefix, item.key))
            elif isinstance(item, ParentOut):
                walk(item.items, (*prefix, item.key))

    walk(shape.items, ())
    return found


def _to_epoch_ms(record: dict[str, Any], path: tuple[str, ...]) -> None:
    target: Any = record
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict) and isinstance(target.get(path[-1]), str):
        moment = parse_datetime(target[path[-1]]).replace(tzinfo=UTC)
        target[path[-1]] = int(moment.timestamp() * 1000)


def _flat_value(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _wire_to_csv(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 28 and value.endswith("+0000") and value[10] == "T":
        return value[:23] + "Z"  # a REST datetime as Bulk CSV and XML write it
    return value


def _xml_fields(record: dict[str, Any]) -> str:
    """``<type>`` and the fields of a record (parents nested) as Bulk API 1.0 XML query results write them."""
    parts = [f"<type>{escape(record.get('attributes', {}).get('type', 'sObject'))}</type>"]
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            parts.append(f'<{key} xsi:type="sObject">{_xml_fields(value)}</{key}>')
        elif value is None:
            parts.append(f'<{key} xsi:nil="true"/>')
        else:
            text = json.dumps(value) if isinstance(value, bool) else str(_wire_to_csv(value))
            parts.append(f"<{key}>{escape(text)}</{key}>")
    return "".join(parts)


__all__ = ["BATCH_STATES", "CONTENT_TYPES", "Batch", "BatchRunner", "ClassicJobs", "parse_records",
           "render_results"]
