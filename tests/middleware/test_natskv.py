"""Checkpoints and batch jobs' watermarks in a NATS JetStream KV bucket (``--bus nats://…``): compare-and-set on the
KV revision, the copy in the middleware store, switching between embedded and distributed runs, resets, lost
answers, NATS outages, the feeder and ``interlink sync run --bus``.

Needs nats-server with JetStream at 127.0.0.1:4222 (skipped with the reason otherwise). Every test uses its own
bucket, pipeline names and streams, and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sqlite3
import textwrap
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.kv import KeyValue

from interlink.middleware import jobs
from interlink.middleware.base import CheckpointConflict, Delivery, Message, Sink, Source
from interlink.middleware.distributed import BusSettings, FeederRunner, WorkQueue
from interlink.middleware.natskv import KvCheckpointStore, check_bucket_name, checkpoint_key
from interlink.middleware.sources.nats import connect_options
from interlink.middleware.spec import Pipeline
from interlink.middleware.store import MiddlewareStore, decode_json
from interlink.testing import run_cli

NATS_URL = "nats://127.0.0.1:4222"


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 4222), timeout=0.5):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(not _reachable(),
                                reason=f"needs nats-server with JetStream (nats-server -js) at {NATS_URL}")


async def _with_js(work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    nc = await nats.connect(NATS_URL)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


@pytest.fixture
def bucket() -> Iterator[str]:
    """A KV bucket name of this test's own; the bucket is deleted afterwards."""
    name = f"ILTEST_CP_{uuid.uuid4().hex[:10]}"
    yield name

    async def delete(js: Any) -> None:
        with contextlib.suppress(Exception):
            await js.delete_key_value(name)

    if _reachable():
        asyncio.run(_with_js(delete))


@pytest.fixture
def streams() -> Iterator[list[str]]:
    """Work-queue streams to delete afterwards."""
    made: list[str] = []
    yield made

    async def delete(js: Any) -> None:
        for stream in made:
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)

    if made and _reachable():
        asyncio.run(_with_js(delete))


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[MiddlewareStore]:
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'middleware.db'}") as store:
        yield store


def kv_store(sql: MiddlewareStore, bucket: str, **options: Any) -> KvCheckpointStore:
    return KvCheckpointStore(sql, options=connect_options({"url": NATS_URL}), bucket=bucket, storage="memory",
                             **options)


def kv_value(bucket: str, pipeline: str) -> tuple[int, dict[str, Any]] | None:
    """The bucket's entry for ``pipeline`` as another NATS client sees it: (revision, value), or None."""

    async def get(js: Any) -> tuple[int, dict[str, Any]] | None:
        kv = await js.key_value(bucket)
        try:
            entry = await kv.get(checkpoint_key(pipeline))
        except Exception:  # missing or deleted
            return None
        return int(entry.revision), decode_json(entry.value.decode())

    return asyncio.run(_with_js(get))  # type: ignore[no-any-return]


# -- names -----------------------------------------------------------------------------------------------------------

def test_keys_and_bucket_names_are_valid_for_jetstream() -> None:
    assert checkpoint_key("erp.orders") == "erp.orders/source"
    # A part KV keys cannot hold (a trailing dot, a space) is hashed, and never collides with a plain name.
    dotted = checkpoint_key("a.")
    assert dotted.startswith("h-") and dotted.endswith("/source") and dotted != checkpoint_key("a")
    assert checkpoint_key("orders", "src one").startswith("orders/h-")
    assert check_bucket_name("IL_MW_CHECKPOINTS") == "IL_MW_CHECKPOINTS"
    for bad in ("", "a.b", "with space"):
        with pytest.raises(ValueError, match="bad checkpoint bucket name"):
            check_bucket_name(bad)
    with pytest.raises(ValueError, match="bad checkpoint bucket name"):
        BusSettings(NATS_URL, checkpoint_bucket="no.dots")


def test_without_a_bucket_checkpoints_stay_in_the_middleware_store_only(sql: MiddlewareStore) -> None:
    assert BusSettings(NATS_URL, checkpoint_bucket=None).checkpoint_store(sql) is sql
    assert isinstance(BusSettings(NATS_URL).checkpoint_store(sql), KvCheckpointStore)  # no connection until used


# -- the store ---------------------------------------------------------------------------------------------------

@needs_nats
def test_a_checkpoint_lives_in_the_bucket_with_compare_and_set_on_its_revision(sql: MiddlewareStore,
                                                                                bucket: str) -> None:
    store = kv_store(sql, bucket)
    other = kv_store(sql, bucket)  # another process's view
    try:
        assert store.load_checkpoint("orders") is None
        first = store.save_checkpoint("orders", {"file": "a.csv", "line": 3}, expected_version=0)
        revision, value = kv_value(bucket, "orders")  # type: ignore[misc]
        assert revision == first and value["position"] == {"file": "a.csv", "line": 3}

        seen = other.load_checkpoint("orders")
        assert seen is not None and (seen.position, seen.version) == ({"file": "a.csv", "line": 3}, first)
        second = other.save_checkpoint("orders", {"file": "a.csv", "line": 9}, expected_version=first)
        assert second > first

        # The first process's view is stale now: the same error as the SQL store's compare-and-set.
        with pytest.raises(CheckpointConflict, match=f"at version {second}, not {first}: another worker runs"):
            store.save_checkpoint("orders", {"file": "a.csv", "line": 5}, expected_version=first)
        with pytest.raises(CheckpointConflict, match="another worker runs this pipeline"):
            store.save_checkpoint("orders", {"file": "b.csv", "line": 1}, expected_version=0)
        assert kv_value(bucket, "orders")[1]["position"] == {"file": "a.csv", "line": 9}  # type: ignore[index]
        # Bytes (replay ids) survive the trip, tagged as in the middleware store.
        third = store.save_checkpoint("orders", b"\x00\x01\xff", expected_version=second)
        assert store.load_checkpoint("orders").position == b"\x00\x01\xff"  # type: ignore[union-attr]
        assert third > second
    finally:
        store.close()
        other.close()
    # The middleware store has a copy: `interlink pipelines list` and `sync status` show it.
    copy = sql.load_checkpoint("orders")
    assert copy is not None and copy.position == b"\x00\x01\xff"


@needs_nats
def test_switching_to_the_bus_and_back_never_replays_from_the_start(sql: MiddlewareStore, bucket: str) -> None:
    sql.save_checkpoint("import", {"watermark": 5, "id": 5}, expected_version=0)  # runs embedded so far
    store = kv_store(sql, bucket)
    try:
        seeded = store.load_checkpoint("import")
        assert seeded is not None and seeded.position == {"watermark": 5, "id": 5}
        assert kv_value(bucket, "import")[1]["position"] == {"watermark": 5, "id": 5}  # type: ignore[index]
        moved = store.save_checkpoint("import", {"watermark": 9, "id": 9}, expected_version=seeded.version)

        # Back to an embedded run: it resumes from the distributed run's checkpoint, then moves on.
        embedded = sql.load_checkpoint("import")
        assert embedded is not None and embedded.position == {"watermark": 9, "id": 9}
        sql.save_checkpoint("import", {"watermark": 12, "id": 12}, expected_version=embedded.version)

        # And on the bus again: the newer embedded checkpoint wins over the KV entry.
        again = store.load_checkpoint("import")
        assert again is not None and again.position == {"watermark": 12, "id": 12} and again.version > moved
        store.save_checkpoint("import", {"watermark": 13, "id": 13}, expected_version=again.version)
    finally:
        store.close()
    assert sql.load_checkpoint("import").position == {"watermark": 13, "id": 13}  # type: ignore[union-attr]


@needs_nats
def test_resetting_the_restart_point_in_the_middleware_store_resets_the_bucket_too(sql: MiddlewareStore,
                                                                                   bucket: str) -> None:
    store = kv_store(sql, bucket)
    try:
        version = store.save_checkpoint("job", {"watermark": 3, "id": 3}, expected_version=0)
        store.save_checkpoint("job", {"watermark": 4, "id": 4}, expected_version=version)
        assert jobs.reset(sql, "job")  # `interlink sync reset job`, which knows nothing of NATS
        assert store.load_checkpoint("job") is None
        assert kv_value(bucket, "job") is None
        assert store.save_checkpoint("job", {"watermark": 1, "id": 1}, expected_version=0) > 0
    finally:
        store.close()


class LosesOneAnswer(KvCheckpointStore):
    """Applies the next KV request, then reports a timeout as if its answer had been lost on the way back."""

    lose_next = False

    async def _on_bucket(self, call: Callable[[KeyValue], Coroutine[Any, Any, Any]]) -> Any:
        result = await super()._on_bucket(call)
        if self.lose_next:
            self.lose_next = False
            raise NatsTimeoutError
        return result


@needs_nats
def test_a_save_whose_answer_was_lost_is_not_taken_for_a_conflict(sql: MiddlewareStore, bucket: str) -> None:
    store = LosesOneAnswer(sql, options=connect_options({"url": NATS_URL}), bucket=bucket, storage="memory",
                           backoff=0.01)
    try:
        store.lose_next = True
        first = store.save_checkpoint("lossy", 10, expected_version=0)  # retried: the key exists by then
        store.lose_next = True
        second = store.save_checkpoint("lossy", 20, expected_version=first)  # retried: the revision moved
        assert kv_value(bucket, "lossy") == (second, kv_value(bucket, "lossy")[1])  # type: ignore[index]
        assert store.load_checkpoint("lossy").position == 20  # type: ignore[union-attr]
        assert store.save_checkpoint("lossy", 30, expected_version=second) > second
    finally:
        store.close()


def test_nats_away_is_retried_until_the_runner_stops(sql: MiddlewareStore, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = threading.Event()
    store = KvCheckpointStore(sql, options=connect_options({"url": f"nats://127.0.0.1:{port}", "connectTimeout": 0.5,
                                                            "connectAttempts": 1, "reconnectWait": 0.1}),
                              bucket="ILTEST_AWAY", stop_event=stop, backoff=0.05, max_backoff=0.05)
    retried = threading.Event()

    class Noticed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "trying again" in record.getMessage():
                retried.set()
                stop.set()  # the runner is asked to stop while NATS is away

    handler = Noticed()
    logging.getLogger("interlink.middleware.natskv").addHandler(handler)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the connection failure was
            store.load_checkpoint("away")
    finally:
        logging.getLogger("interlink.middleware.natskv").removeHandler(handler)
        store.close()
    assert retried.is_set(), "the failure was retried before giving up"


# -- the feeder ----------------------------------------------------------------------------------------------------

class CountingSource(Source):
    """Messages n = 0..count-1 at position n; resumes after the checkpoint it is opened with."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.next = 0
        self.opened_at: Any = "not opened"

    def open(self, checkpoint: Any | None) -> None:
        self.opened_at = checkpoint
        self.next = 0 if checkpoint is None else int(checkpoint) + 1

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        end = min(self.count, self.next + max_messages)
        batch = [Message(body={"n": n}, id=f"m{n}", position=n) for n in range(self.next, end)]
        self.next = end
        self.exhausted = self.next >= self.count
        return batch


class Nowhere(Sink):
    def write(self, messages: Any) -> list[Delivery]:
        return [Delivery() for _ in messages]


@needs_nats
def test_a_feeder_resumes_from_the_embedded_checkpoint_and_keeps_its_own_in_the_bucket(
        sql: MiddlewareStore, bucket: str, streams: list[str]) -> None:
    name = f"kvfeed-{uuid.uuid4().hex[:8]}"
    streams.append(WorkQueue.of(name).stream)
    sql.save_checkpoint(name, 4, expected_version=0)  # an embedded run read 0..4
    source = CountingSource(10)
    pipeline = Pipeline(name=name, source=source, sink=Nowhere(), batch=3, poll=0.1)
    bus = BusSettings(NATS_URL, storage="memory", checkpoint_bucket=bucket)
    report = FeederRunner(pipeline, sql, bus).run(once=True, idle_timeout=0.5)
    assert report.status == "Succeeded" and source.opened_at == 4
    assert (report.read, report.written) == (5, 5)
    assert kv_value(bucket, name)[1]["position"] == 9  # type: ignore[index]
    assert sql.load_checkpoint(name).position == 9  # type: ignore[union-attr]

    async def queued(js: Any) -> int:
        return int((await js.stream_info(WorkQueue.of(name).stream)).state.messages)

    assert asyncio.run(_with_js(queued)) == 5, "only what the embedded run had not read was fed"
    # A second feeder run starts where the first stopped: nothing to feed.
    again = FeederRunner(Pipeline(name=name, source=CountingSource(10), sink=Nowhere(), batch=3, poll=0.1), sql,
                         bus).run(once=True, idle_timeout=0.5)
    assert (again.status, again.read) == ("Succeeded", 0)


# -- interlink sync run --bus ------------------------------------------------------------------------------------

def _job_project(root: Path) -> tuple[Path, Path]:
    project = root / "project"
    (project / "pipelines").mkdir(parents=True)
    database = root / "source.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, seq INTEGER)")
        db.executemany("INSERT INTO items VALUES (?, ?, ?)", [(n, f"item {n}", n) for n in range(1, 4)])
    (project / "pipelines" / "items.yaml").write_text(textwrap.dedent(f"""\
        source: {{type: sql, url: "sqlite:///{database}", table: items, watermark: seq, id: id}}
        sink: {{type: files, folder: out, format: jsonl, fsync: false}}
        batch: 2
        """))
    return project, database


def _loaded(project: Path) -> list[int]:
    return sorted(json.loads(line)["id"] for path in (project / "out").glob("*.jsonl")
                  for line in path.read_text().splitlines())


@needs_nats
def test_sync_run_on_the_bus_keeps_the_watermark_in_the_bucket(tmp_path: Path, bucket: str) -> None:
    project, database = _job_project(tmp_path)
    args = ("--project-dir", str(project), "--data-dir", str(tmp_path / "data"))
    bus = ("--bus", NATS_URL, "--checkpoint-bucket", bucket)
    run_cli("sync", "run", "items", *args, *bus)
    assert _loaded(project) == [1, 2, 3]
    assert kv_value(bucket, "items")[1]["position"] == {"watermark": 3, "id": 3}  # type: ignore[index]
    status = run_cli("sync", "status", *args)  # control records stay in the middleware store
    assert "3 / 3" in status.stdout and "Succeeded" in status.stdout

    with sqlite3.connect(database) as db:
        db.executemany("INSERT INTO items VALUES (?, ?, ?)", [(4, "item 4", 4), (5, "item 5", 5)])
    run_cli("sync", "run", "items", *args, *bus)
    assert _loaded(project) == [1, 2, 3, 4, 5], "only the new rows were extracted"
    assert kv_value(bucket, "items")[1]["position"] == {"watermark": 5, "id": 5}  # type: ignore[index]

    run_cli("sync", "reset", "items", *args)
    run_cli("sync", "run", "items", *args, *bus)
    assert _loaded(project) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "a reset job extracts everything again"
    bad = run_cli("sync", "run", "items", *args, "--bus", NATS_URL, "--checkpoint-bucket", "a.b", check=False)
    assert bad.returncode == 2 and "bad checkpoint bucket name" in bad.stderr
