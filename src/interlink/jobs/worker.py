"""Background workers that run Bulk API 2.0 jobs, safely shared by any number of processes.

A worker claims a runnable job with a lease (``claimed_by`` / ``claimed_until``, set by a compare-and-set
UPDATE, so two workers never hold one job), renews the lease with every batch and gives the job back when it
stops. A worker that dies simply lets its lease run out; another worker then resumes the job after its last
committed batch. Each batch commits its records, its result lines and ``batches_done`` together
(:func:`interlink.jobs.ingest.run_batch`), and only while this worker still holds the lease, so no batch is
applied twice.

Query jobs write their result in parts as the query streams; a restarted query job starts over (it changes
no data).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import OperationalError

from interlink.errors import InterlinkError, UnableToLockRow
from interlink.jobs.bulk import BulkJobs
from interlink.jobs.classic import IN_PROGRESS as BATCH_IN_PROGRESS
from interlink.jobs.classic import NOT_PROCESSED, QUEUED, Batch, BatchRunner, ClassicJobs
from interlink.jobs.csvdata import RowWriter
from interlink.jobs.ingest import ColumnPlan, LeaseLost, run_batch
from interlink.jobs.model import ABORTED, FAILED, IN_PROGRESS, JOB_COMPLETE, RUNNABLE, Job
from interlink.jobs.parts import PART_BYTES
from interlink.records.context import Context
from interlink.records.service import RecordService
from interlink.soql.compiled import flat_columns
from interlink.soql.engine import QueryEngine
from interlink.store.claims import claim, holder_id, holder_is_gone
from interlink.store.database import utcnow
from interlink.store.failures import store_failure

log = logging.getLogger(__name__)

MAX_BATCH_RETRIES = 10
RESULT_PART_ROWS = 10_000


class _Stopped(Exception):
    """The job was aborted, deleted or the worker is stopping: leave it where it is."""


class JobWorker:
    """Claims and runs Bulk jobs on ``threads`` background threads."""

    def __init__(self, jobs: BulkJobs, records: RecordService, query: QueryEngine,
                 context_for: Callable[[str, str], Context], *, threads: int = 2, lease_seconds: float = 30.0,
                 poll_seconds: float = 1.0, retry_delay: float = 0.2) -> None:
        self.jobs = jobs
        self.records = records
        self.query = query
        self.context_for = context_for
        self.threads = threads
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.retry_delay = retry_delay
        self.worker_id = holder_id()
        self.classic = ClassicJobs(jobs)
        self.batches = BatchRunner(self.classic, records)
        # Other durable work the same threads run (async callouts): each takes the worker id, True when it worked.
        self.tasks: list[Callable[[str], bool]] = []
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._pending_wakeups = 0
        self._threads: list[threading.Thread] = []
        self._outage_logged = 0.0
        # Test hook: called inside each batch's transaction just before it commits.
        self.before_batch_commit: Callable[[Job, int], None] | None = None

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.jobs.store.system["il_bulk_job"]

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads or self.threads <= 0:
            return
        self._stop.clear()
        for number in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"interlink-bulk-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.jobs.on_runnable = self.wake

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in hand; claimed jobs are given back for the next start (or another process)."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wake(self) -> None:
        with self._wake:
            self._pending_wakeups += 1
            self._wake.notify_all()

    def release_orphans(self, *, dead_only: bool = False) -> int:
        """Give back claims of Bulk jobs and batches, async callouts and outbound messages: every claim, or with
        ``dead_only`` only those whose holder was a process of this host that no longer runs (a claim of a
        process that is alive, or of another host, is left to its lease)."""
        released = 0
        store = self.jobs.store
        tables = [store.system[name] for name in ("il_bulk_job", "il_bulk_batch", "il_callout", "il_om_notification")]
        with store.write() as conn:
            for table in tables:
                holders = set(conn.execute(select(table.c.claimed_by).where(table.c.claimed_by.is_not(None))
                                           .distinct()).scalars())
                gone = [holder for holder in holders if not dead_only or holder_is_gone(holder)]
                if gone:
                    released += conn.execute(update(table).where(table.c.claimed_by.in_(gone))
                                             .values(claimed_by=None, claimed_until=None)).rowcount
        return released

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as exc:
                failure = store_failure(exc)
                if failure is None:
                    log.exception("bulk worker failed")
                elif time.monotonic() - self._outage_logged > 30:  # an outage: a line every 30 s, no traceback
                    self._outage_logged = time.monotonic()
                    log.warning("background jobs wait for the store: %s", failure.message)
                worked = False
            if worked:
                continue
            with self._wake:
                if self._pending_wakeups == 0:
                    self._wake.wait(self.poll_seconds)
                self._pending_wakeups = 0

    # -- claiming ------------------------------------------------------------------------------------------------

    def claim(self) -> Job | None:
        """Take the oldest runnable job nobody holds (or whose holder's lease ran out)."""
        table = self._table
        now = utcnow()
        free = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        taken = claim(self.jobs.store, table, and_(table.c.state.in_(RUNNABLE), free),
                      order_by=[table.c.created_date], limit=1,
                      values={"state": IN_PROGRESS, "claimed_by": self.worker_id, "claimed_until": self._lease_end(),
                              "system_modstamp": now})
        return self.jobs.get(taken[0].id) if taken else None

    def run_once(self) -> bool:
        """Claim one job (or Bulk API 1.0 batch) and run it to its end; False when there was nothing to do."""
        job = self.claim()
        if job is None:
            if self._run_classic_batch():
                return True
            return any(task(self.worker_id) for task in self.tasks)
        # Only a worker that is still alive gives its claim back; one that dies (anything not an Exception)
        # leaves the lease to run out, as a killed process would.
        try:
            if job.is_ingest:
                self._run_ingest(job)
            else:
                self._run_query(job)
        except _Stopped:
            pass
        except LeaseLost:
            log.warning("bulk job %s was taken over by another worker", job.id)
            return True
        except Exception:
            self._release(job.id)
            raise
        self._release(job.id)
        return True

    def _lease_end(self):  # type: ignore[no-untyped-def]
        return utcnow() + timedelta(seconds=self.lease_seconds)

    def _release(self, job_id: str) -> None:
        table = self._table
        with self.jobs.store.write() as conn:
            conn.execute(update(table).where(and_(table.c.id == job_id, table.c.claimed_by == self.worker_id))
                         .values(claimed_by=None, claimed_until=None))

    def _check(self, job_id: str) -> None:
        """Between batches: stop when the worker stops or the job is no longer ours to run."""
        if self._stop.is_set():
            raise _Stopped()
        table = self._table
        with self.jobs.store.read() as conn:
            row = conn.execute(select(table.c.state, table.c.claimed_by).where(table.c.id == job_id)).first()
        if row is None or row.state != IN_PROGRESS:
            raise _Stopped()
        if row.claimed_by != self.worker_id:
            raise LeaseLost(job_id)

    def _finish(self, job_id: str, state: str, message: str | None = None, **values: object) -> None:
        table = self._table
        with self.jobs.store.write() as conn:
            conn.execute(update(table).where(and_(
                table.c.id == job_id, table.c.state == IN_PROGRESS, table.c.claimed_by == self.worker_id)).values(
                state=state, error_message=message, system_modstamp=utcnow(), **values))

    def _context(self, job: Job) -> Context:
        return dataclasses.replace(self.context_for(job.created_by_id, job.api_version), api="bulkapi")

    # -- Bulk API 1.0 batches ------------------------------------------------------------------------------------

    def _run_classic_batch(self) -> bool:
        claimed = self._claim_batch()
        if claimed is None:
            return False
        job, batch = claimed
        try:
            self.batches.run(job, batch, self._context(job), self.worker_id)
        except LeaseLost:
            log.warning("bulk batch %s was taken over by another worker", batch.id)
        except (UnableToLockRow, OperationalError):
            self._count_retry(job.id)
            self._release_batch(batch.id, QUEUED, None)  # tried again later, as the platform retries
        except Exception as error:
            log.exception("bulk batch %s failed", batch.id)  # the details stay in the server log
            self._release_batch(batch.id, FAILED, f"InternalServerError : {type(error).__name__}")
        return True

    def _claim_batch(self) -> tuple[Job, Batch] | None:
        batches, jobs = self.jobs.store.system["il_bulk_batch"], self._table
        now = utcnow()
        free = or_(batches.c.claimed_until.is_(None), batches.c.claimed_until < now)
        # In progress with a lapsed lease: its worker died mid-batch (its transaction rolled back).
        waiting = and_(batches.c.state.in_((QUEUED, BATCH_IN_PROGRESS)), free)
        with self.jobs.store.read() as conn:
            candidates = conn.execute(
                select(batches.c.id, batches.c.job_id, batches.c.seq, jobs.c.state, jobs.c.concurrency_mode)
                .join(jobs, jobs.c.id == batches.c.job_id).where(waiting)
                .order_by(batches.c.created_date).limit(20)).all()
        for batch_id, job_id, seq, job_state, mode in candidates:
            if job_state == ABORTED:  # a batch its dead worker left behind in a job aborted since
                self._settle_aborted(batch_id, waiting)
                continue
            if mode == "Serial" and self._earlier_batch_pending(job_id, seq):
                continue  # serial mode: one batch at a time, in the order they were added
            with self.jobs.store.write() as conn:
                taken = conn.execute(update(batches).where(and_(batches.c.id == batch_id, waiting)).values(
                    state=BATCH_IN_PROGRESS, claimed_by=self.worker_id, claimed_until=self._lease_end(),
                    system_modstamp=now)).rowcount
            if taken == 1:
                return self.classic.job(job_id), self.classic.batch(job_id, batch_id)
        return None

    def _earlier_batch_pending(self, job_id: str, seq: int) -> bool:
        batches = self.jobs.store.system["il_bulk_batch"]
        with self.jobs.store.read() as conn:
            return conn.execute(select(batches.c.id).where(and_(
                batches.c.job_id == job_id, batches.c.seq < seq,
                batches.c.state.in_((QUEUED, BATCH_IN_PROGRESS)))).limit(1)).first() is not None

    def _settle_aborted(self, batch_id: str, waiting: Any) -> None:
        batches = self.jobs.store.system["il_bulk_batch"]
        with self.jobs.store.write() as conn:
            conn.execute(update(batches).where(and_(batches.c.id == batch_id, waiting)).values(
                state=NOT_PROCESSED, state_message="The job was aborted", claimed_by=None, claimed_until=None,
                system_modstamp=utcnow()))

    def _release_batch(self, batch_id: str, state: str, message: str | None) -> None:
        batches = self.jobs.store.system["il_bulk_batch"]
        with self.jobs.store.write() as conn:
            conn.execute(update(batches).where(and_(batches.c.id == batch_id, batches.c.claimed_by == self.worker_id))
                         .values(state=state, state_message=message, claimed_by=None, claimed_until=None,
                                 system_modstamp=utcnow()))

    # -- ingest --------------------------------------------------------------------------------------------------

    def _run_ingest(self, job: Job) -> None:
        if job.error_message:  # the uploaded data could not be processed: the job fails before any batch
            self._finish(job.id, FAILED, job.error_message)
            return
        schema = self.jobs.store.schema
        obj = schema.object(job.object)
        try:
            if obj is None:
                raise InterlinkError(f"Entity '{job.object}' is not supported by the Bulk API.")
            plan = ColumnPlan(obj, schema, job.columns, job.operation, job.external_id_field)
        except InterlinkError as error:
            self._finish(job.id, FAILED, f"InvalidBatch : {error.message}")
            return
        context = self._context(job)
        size = self.jobs.limits.batch_size
        records = self.jobs.upload_records(job)
        skipped = job.batches_done * size
        if skipped:
            next(itertools.islice(records, skipped - 1, skipped), None)
        batch_no = job.batches_done
        while True:
            rows = list(itertools.islice(records, size))
            if not rows:
                break
            self._check(job.id)
            if not self._batch_with_retries(job, plan, context, batch_no, rows):
                return
            batch_no += 1
        self._finish(job.id, JOB_COMPLETE)

    def _batch_with_retries(self, job: Job, plan: ColumnPlan, context: Context, batch_no: int,
                            rows: list[list[str]]) -> bool:
        hook = self.before_batch_commit
        for attempt in range(MAX_BATCH_RETRIES + 1):
            try:
                run_batch(self.records, self.jobs.parts, job, plan, context, batch_no, rows,
                          worker_id=self.worker_id, lease_seconds=self.lease_seconds,
                          before_commit=None if hook is None else (lambda: hook(job, batch_no)))
                return True
            except LeaseLost:
                raise
            except (UnableToLockRow, OperationalError) as error:
                reason = f"{error}"
            except Exception as error:  # a bug or an outage: retried like the platform retries a failed batch
                log.exception("bulk job %s batch %s failed", job.id, batch_no)
                reason = f"{type(error).__name__}: {error}"
            self._count_retry(job.id)
            if attempt < MAX_BATCH_RETRIES:
                self._check(job.id)
                time.sleep(min(self.retry_delay * 2 ** attempt, 5.0))
        self._finish(job.id, FAILED, f"InternalServerError : batch {batch_no} failed after {MAX_BATCH_RETRIES} "
                                     f"retries: {reason}")
        return False

    def _count_retry(self, job_id: str) -> None:
        table = self._table
        with self.jobs.store.write() as conn:
            conn.execute(update(table).where(table.c.id == job_id).values(
                retries=table.c.retries + 1, claimed_until=self._lease_end()))

    # -- query ---------------------------------------------------------------------------------------------------

    def _run_query(self, job: Job) -> None:
        context = self._context(job)
        include_deleted = job.operation == "queryAll"
        started = time.perf_counter()
        assert job.query is not None
        try:
            compiled = self.query.compile(job.query, context, include_deleted=include_deleted)
            assert compiled.shape is not None
            columns = flat_columns(compiled.shape)
        except (InterlinkError, ValueError, AssertionError) as error:
            self._finish(job.id, FAILED, f"InvalidBatch : {getattr(error, 'message', error)}")
            return
        table = self._table
        with self.jobs.store.write() as conn:
            self.jobs.parts.remove(conn, job.id, "result")
            conn.execute(update(table).where(table.c.id == job.id).values(
                columns_json=json.dumps([name for name, _ in columns]), records_processed=0, result_bytes=0))
        writer = RowWriter(job.format, [index for _, index in columns])
        written = 0
        seq = 0
        result_bytes = 0

        def flush() -> None:
            nonlocal written, seq, result_bytes
            if not len(writer):
                return
            self._check(job.id)
            count = len(writer)
            data, offsets = writer.take()
            with self.jobs.store.write() as conn:
                self.jobs.parts.add(conn, job.id, "result", seq, data, rows=count, first_row=written,
                                    offsets=offsets)
                conn.execute(update(table).where(table.c.id == job.id).values(  # progress shows while it runs
                    claimed_until=self._lease_end(), records_processed=written + count))
            written += count
            result_bytes += len(data)
            seq += 1

        try:
            for _compiled, partition in self.query.stream(job.query, context, include_deleted=include_deleted,
                                                          chunk_size=RESULT_PART_ROWS):
                for row in partition:
                    writer.add(row)
                    if len(writer) >= RESULT_PART_ROWS or writer.size >= PART_BYTES:
                        flush()
            flush()
        except InterlinkError as error:
            self._finish(job.id, FAILED, f"InvalidBatch : {error.message}")
            return
        elapsed = int((time.perf_counter() - started) * 1000)
        self._finish(job.id, JOB_COMPLETE, records_processed=written, result_bytes=result_bytes,
                     processing_ms=elapsed)


__all__ = ["JobWorker"]
