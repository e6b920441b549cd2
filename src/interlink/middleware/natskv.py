"""Checkpoints (and batch jobs' watermarks) in a NATS JetStream key-value bucket, for pipelines run on a NATS bus.

With ``--bus nats://…`` a feeder's checkpoint (``interlink pipelines run``) and a batch job's watermark
(``interlink sync run``) live in the KV bucket ``IL_MW_CHECKPOINTS`` (one key ``<pipeline>/<source>`` each), next
to the work queues, instead of only in the middleware store. :class:`KvCheckpointStore` is the middleware store
(the same engine and connections: dead letters, dedupe keys and runs stay in SQL) whose checkpoints go through the
bucket:

- **Compare-and-set.** A checkpoint's version is its KV revision: saving one is ``kv.update(key, last=version)``
  (``kv.create`` for version 0), and a revision that moved meanwhile raises the same
  :class:`~interlink.middleware.base.CheckpointConflict` as the SQL store ("another worker runs this pipeline").
- **The SQL row is kept as a copy.** Every save also stores the position in the middleware store (after the KV),
  so ``interlink pipelines list`` and ``interlink sync status`` show it and a pipeline run embedded again resumes
  where the distributed one stopped. The KV entry records which SQL version it wrote
  (``sqlVersion``), which is how a load reconciles the two:

  ========================================  =====================================================================
  KV entry / SQL row                        the checkpoint
  ========================================  =====================================================================
  none / none                               none (the source starts at its beginning)
  none / a row                              the SQL position, copied into the bucket first (switching to
                                            ``--bus`` does not replay from the start)
  an entry / a newer row (a higher version  the SQL position, copied into the bucket: the pipeline ran
  than the entry wrote)                     embedded since
  an entry that wrote a row / no row        none, and the entry is deleted: the SQL checkpoint was reset
                                            (``interlink sync reset``)
  an entry / its own row (or an older one)  the KV position (the SQL copy may lag by a save a crash cut short)
  ========================================  =====================================================================

- **NATS outages hold the pipeline back.** A KV request failing because NATS is away or slow is tried again
  (backoff up to 15 s) until it succeeds or the runner's stop event is set, as the feeder's publishes are. A save
  whose answer was lost is recognised on the retry by the writer token it stored, so it is not mistaken for a
  conflict.

The bucket (history 1, file storage by default) is created on first use; several processes may race to create it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from interlink.middleware.base import CheckpointConflict
from interlink.middleware.sources.nats import (
    RETRYABLE_ERRORS,
    NatsLoop,
    NatsSource,
    close_connection,
    open_connection,
)
from interlink.middleware.store import Checkpoint, MiddlewareStore, decode_json, encode_json

T = TypeVar("T")

log = logging.getLogger("interlink.middleware.natskv")

#: the bucket of the checkpoints and watermarks, unless configured otherwise
CHECKPOINT_BUCKET = "IL_MW_CHECKPOINTS"
_BUCKET = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_PART = re.compile(r"^[A-Za-z0-9_=-][A-Za-z0-9_=.-]*$")
# A KV request that cannot be answered is retried; a single one taking longer than this is a failure to retry.
_REQUEST_TIMEOUT = 30.0
# JetStream's "wrong last sequence" error codes: the compare-and-set of a KV write failed
_WRONG_LAST_SEQUENCE = (10071, 10164)


def checkpoint_key(pipeline: str, source: str = "source") -> str:
    """``<pipeline>/<source>``: pipeline names have no ``/``, so keys never collide. A part KV keys cannot hold
    (a ``.`` at either end, other characters) is replaced by a hash of it."""

    def part(text: str) -> str:
        if _KEY_PART.match(text) and not text.endswith("."):
            return text
        return "h-" + hashlib.sha1(text.encode()).hexdigest()[:16]

    return f"{part(pipeline)}/{part(source)}"


def check_bucket_name(bucket: str) -> str:
    """``bucket`` if JetStream accepts it as a KV bucket name (letters, digits, ``_`` and ``-``), else ValueError."""
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise ValueError(f"bad checkpoint bucket name {bucket!r}: use letters, digits, '_' and '-'")
    return bucket


@dataclass(frozen=True)
class _Entry:
    """One KV entry: its revision and what it holds."""

    revision: int
    position: Any
    sql_version: int
    updated_at: float
    writer: str


class KvCheckpointStore(MiddlewareStore):
    """The middleware store whose checkpoints live in a JetStream KV bucket (see the module docstring).

    ``options`` are NATS connection settings (:func:`~interlink.middleware.sources.nats.connect_options`).
    The connection opens on the first checkpoint call and :meth:`close` closes it (not the shared store, which
    its owner closes); it opens again if used afterwards. ``stop_event`` ends the retries of a NATS outage.
    """

    def __init__(self, shared: MiddlewareStore, *, options: dict[str, Any], bucket: str = CHECKPOINT_BUCKET,
                 storage: str = "file", stop_event: threading.Event | None = None, backoff: float = 0.5,
                 max_backoff: float = 15.0) -> None:  # no super().__init__: share, do not reconnect
        self.__dict__.update(shared.__dict__)
        self.sql = shared
        self.options = options
        self.bucket = check_bucket_name(bucket)
        self.storage = storage
        self.stop_event = stop_event or threading.Event()
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._kv_lock = threading.Lock()
        self._loop: NatsLoop | None = None
        self._nc: Client | None = None
        self._kv: KeyValue | None = None

    # -- checkpoints -------------------------------------------------------------------------------------------

    def load_checkpoint(self, pipeline: str, source: str = "source") -> Checkpoint | None:
        """The checkpoint of ``pipeline``'s ``source``, reconciled with the SQL copy (see the module docstring)."""
        key = checkpoint_key(pipeline, source)
        for _ in range(5):  # another process seeding, adopting or saving at the same moment: look again
            entry = self._get(key)
            stored = self.sql.load_checkpoint(pipeline, source)
            try:
                if entry is None:
                    if stored is None:
                        return None
                    revision = self._write(key, stored.position, stored.version, expected=0)
                    log.info("checkpoint of %s (%s) copied from the middleware store into KV bucket %s",
                             pipeline, source, self.bucket)
                    return Checkpoint(pipeline, source, stored.position, revision, stored.updated_at)
                if stored is not None and stored.version > entry.sql_version:
                    revision = self._write(key, stored.position, stored.version, expected=entry.revision)
                    log.info("checkpoint of %s (%s) moved in the middleware store (an embedded run): taking it",
                             pipeline, source)
                    return Checkpoint(pipeline, source, stored.position, revision, stored.updated_at)
                if stored is None and entry.sql_version > 0:
                    self._delete(key, entry.revision)
                    log.info("checkpoint of %s (%s) was reset in the middleware store: forgetting the KV one",
                             pipeline, source)
                    return None
            except KeyWrongLastSequenceError:
                continue
            return Checkpoint(pipeline, source, entry.position, entry.revision, entry.updated_at)
        raise CheckpointConflict(f"checkpoint of pipeline {pipeline!r} ({source}) keeps changing in KV bucket "
                                 f"{self.bucket}: another worker runs this pipeline")

    def save_checkpoint(self, pipeline: str, position: Any, *, expected_version: int, source: str = "source") -> int:
        """Store ``position`` if the KV entry is still at revision ``expected_version`` (0: none yet), then copy it
        to the middleware store; answer the new revision. Raises :class:`CheckpointConflict` as the SQL store does.
        """
        key = checkpoint_key(pipeline, source)
        stored = self.sql.load_checkpoint(pipeline, source)
        sql_version = stored.version if stored else 0
        try:
            revision = self._write(key, position, sql_version + 1, expected=expected_version)
        except KeyWrongLastSequenceError:
            current = self._get(key)
            raise CheckpointConflict(
                f"checkpoint of pipeline {pipeline!r} ({source}) is at version "
                f"{current.revision if current else 0}, not {expected_version}: another worker runs this "
                "pipeline") from None
        try:
            self.sql.save_checkpoint(pipeline, position, expected_version=sql_version, source=source)
        except CheckpointConflict as exc:  # two runners of one pipeline; the KV copy stays the authority
            log.warning("checkpoint of %s (%s): the copy in the middleware store was not updated: %s", pipeline,
                        source, exc)
        return revision

    # -- the bucket --------------------------------------------------------------------------------------------

    def _write(self, key: str, position: Any, sql_version: int, *, expected: int) -> int:
        """``kv.create`` (``expected`` 0) or ``kv.update(last=expected)``; KeyWrongLastSequenceError on a
        conflict, unless the entry is this very write (a retry whose first answer was lost)."""
        writer = uuid.uuid4().hex
        data = encode_json({"position": position, "sqlVersion": sql_version, "updatedAt": self.clock(),
                            "writer": writer}).encode()

        async def write(kv: KeyValue) -> int:
            if expected == 0:
                return int(await kv.create(key, data))
            return int(await kv.update(key, data, last=expected))

        try:
            return self._retrying(write)
        except KeyWrongLastSequenceError:
            current = self._get(key)
            if current is not None and current.writer == writer:
                return current.revision
            raise

    def _delete(self, key: str, revision: int) -> None:
        """Delete ``key`` if it is still at ``revision`` (KeyWrongLastSequenceError if not)."""

        async def delete(kv: KeyValue) -> None:
            try:
                await kv.delete(key, last=revision)
            except APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE:
                    raise KeyWrongLastSequenceError(description=exc.description) from None
                raise

        self._retrying(delete)

    def _get(self, key: str) -> _Entry | None:
        async def get(kv: KeyValue) -> Any:
            try:
                return await kv.get(key)
            except KeyNotFoundError:  # also a deleted or purged key
                return None

        entry = self._retrying(get)
        if entry is None:
            return None
        try:
            record = decode_json(entry.value.decode())
            return _Entry(int(entry.revision), record["position"], int(record.get("sqlVersion", 0)),
                          float(record.get("updatedAt", 0.0)), str(record.get("writer", "")))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("KV bucket %s: unreadable checkpoint %s at revision %s: ignored", self.bucket, key,
                        entry.revision)
            return None

    def _retrying(self, call: Callable[[KeyValue], Coroutine[Any, Any, T]]) -> T:
        """Run ``call(kv)`` on the NATS loop; NATS being away or slow is retried (backoff up to ``max_backoff``)
        until the stop event is set, then the last failure is raised."""
        delay = self.backoff
        while True:
            try:
                with self._kv_lock:
                    if self._loop is None:
                        self._loop = NatsLoop(f"nats-kv-{self.bucket}")
                    timeout = _REQUEST_TIMEOUT
                    if self._nc is None or self._nc.is_closed:
                        timeout += NatsSource.connect_deadline(self.options)
                    future = asyncio.run_coroutine_threadsafe(self._on_bucket(call), self._loop.loop)
                    try:
                        return future.result(timeout)
                    except concurrent.futures.TimeoutError:
                        future.cancel()  # not left running next to the retry
                        raise
            except (*RETRYABLE_ERRORS, BucketNotFoundError) as exc:
                self._kv = None  # look the bucket up again: it may have been deleted
                if self.stop_event.is_set():
                    raise
                log.warning("KV bucket %s: %r; trying again in %.1fs", self.bucket, exc, delay)
                if self.stop_event.wait(delay):
                    raise
                delay = min(self.max_backoff, delay * 2)

    async def _on_bucket(self, call: Callable[[KeyValue], Coroutine[Any, Any, T]]) -> T:
        if self._nc is None or self._nc.is_closed:
            self._nc = await open_connection(self.options)
            self._kv = None
        if self._kv is None:
            self._kv = await self._bucket()
        return await call(self._kv)

    async def _bucket(self) -> KeyValue:
        assert self._nc is not None
        js = self._nc.jetstream()
        try:
            return await js.key_value(self.bucket)
        except BucketNotFoundError:
            pass
        storage = api.StorageType.MEMORY if self.storage == "memory" else api.StorageType.FILE
        try:
            return await js.create_key_value(bucket=self.bucket, history=1, storage=storage,
                                             description="Interlink pipeline checkpoints and job watermarks")
        except Exception:  # another process created it first (with other settings): use it
            await asyncio.sleep(0.1)
            return await js.key_value(self.bucket)

    def close(self) -> None:
        """Close the NATS connection (the shared store stays open: its owner closes it)."""
        with self._kv_lock:
            close_connection(self._loop, self._nc)
            self._loop = self._nc = self._kv = None


__all__ = ["CHECKPOINT_BUCKET", "KvCheckpointStore", "check_bucket_name", "checkpoint_key"]
