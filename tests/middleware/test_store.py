"""The middleware store on SQLite and PostgreSQL: checkpoints that never move backwards, atomic dedupe keys, dead
letters, run records and key-value state, shared by several processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, String, Table, insert, select

from interlink.middleware.base import Message
from interlink.middleware.store import (
    MIDDLEWARE_METADATA,
    CheckpointConflict,
    MiddlewareStore,
    decode_json,
    encode_json,
)
from interlink.settings import Settings
from interlink.testing import postgres_database

EXTENSION = Table("mw_test_extension", MIDDLEWARE_METADATA, Column("job", String(50), primary_key=True),
                  Column("rows", Integer), extend_existing=True)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store_url(store_backend: str, tmp_path: Path) -> Iterator[str]:
    if store_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'middleware.db'}"
        return
    try:
        with postgres_database() as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[MiddlewareStore]:
    with MiddlewareStore.open_url(store_url, clock=clock) as opened:
        yield opened


def test_checkpoint_compare_and_set_never_moves_backwards(store: MiddlewareStore, store_url: str,
                                                          clock: Clock) -> None:
    assert store.load_checkpoint("orders") is None
    assert store.save_checkpoint("orders", {"replay": b"\x00\x01"}, expected_version=0) == 1
    # A second worker (another process: its own store object) read version 1 too.
    with MiddlewareStore.open_url(store_url, clock=clock) as other:
        assert other.save_checkpoint("orders", 20, expected_version=1) == 2
        with pytest.raises(CheckpointConflict, match="another worker"):
            store.save_checkpoint("orders", 10, expected_version=1)  # stale: would move it back
        with pytest.raises(CheckpointConflict):
            store.save_checkpoint("orders", 5, expected_version=0)  # a "first" save when one exists
    found = store.load_checkpoint("orders")
    assert found is not None and found.position == 20 and found.version == 2
    assert store.delete_checkpoint("orders") == 1
    assert store.load_checkpoint("orders") is None


def test_positions_keep_their_python_types(store: MiddlewareStore) -> None:
    import datetime as dt
    import decimal

    position = {"replayId": b"\x00\xff", "at": dt.datetime(2025, 1, 2, 3, 4, 5), "amount": decimal.Decimal("1.50"),
                "ids": [1, "a"]}
    store.save_checkpoint("p", position, expected_version=0)
    loaded = store.load_checkpoint("p")
    assert loaded is not None and loaded.position == position
    assert decode_json(encode_json(b"raw")) == b"raw"


def test_seen_before_records_atomically_and_expires(store: MiddlewareStore, clock: Clock) -> None:
    assert store.seen_before("orders", "k1", 60) is False
    assert store.seen_before("orders", "k1", 60) is True
    assert store.seen_before("other-scope", "k1", 60) is False
    assert store.is_seen("orders", "k1", 60) and not store.is_seen("orders", "k2", 60)
    clock.now += 61
    assert store.is_seen("orders", "k1", 60) is False
    assert store.seen_before("orders", "k1", 60) is False  # expired: new again, retention restarts
    assert store.seen_before("orders", "k1", 60) is True
    long_key = "x" * 5000
    assert store.seen_before("orders", long_key, 60) is False
    assert store.seen_before("orders", long_key, 60) is True
    clock.now += 30
    store.seen_before("orders", "fresh", 60)
    clock.now += 40
    assert store.purge(60) == 3  # k1, the long key and other-scope's k1 are older than 60 s
    assert store.is_seen("orders", "fresh", 60)


def test_a_batch_of_keys_is_checked_and_recorded_like_one_key_at_a_time(store: MiddlewareStore,
                                                                       clock: Clock) -> None:
    long_key = "y" * 5000
    assert store.seen_keys("orders", [], 60) == set() and store.record_seen("orders", [], 60) == set()
    assert store.seen_keys("orders", ["k1", "k2", long_key], 60) == set()
    # Repeats in one batch are one key: recorded once, answered as new.
    assert store.record_seen("orders", ["k1", "k2", "k1", long_key], 60) == set()
    assert store.seen_keys("orders", ["k1", "k2", "k3", long_key], 60) == {"k1", "k2", long_key}
    assert store.seen_keys("other-scope", ["k1"], 60) == set()
    assert store.is_seen("orders", long_key, 60) and store.seen_before("orders", "k2", 60) is True
    clock.now += 30
    assert store.record_seen("orders", ["k1", "k3"], 60) == {"k1"}  # k1 keeps its time (seen 30 s ago)
    clock.now += 31
    # k1 and k2 expired (61 s); k3 (31 s) did not: an expired key is new again and restarts its retention.
    assert store.seen_keys("orders", ["k1", "k2", "k3"], 60) == {"k3"}
    assert store.record_seen("orders", ["k1", "k3"], 60) == {"k3"}
    assert store.seen_keys("orders", ["k1", "k2", "k3"], 60) == {"k1", "k3"}
    assert store.seen_before("orders", "k1", 60) is True
    # Batches larger than one statement's list of keys.
    many = [f"m{index}" for index in range(1234)]
    assert store.record_seen("bulk", many[:700], 60) == set()
    assert store.seen_keys("bulk", many, 60) == set(many[:700])
    assert store.record_seen("bulk", many, 60) == set(many[:700])
    assert store.seen_keys("bulk", many, 60) == set(many)


def test_racing_workers_agree_on_who_saw_a_key_first(store: MiddlewareStore, store_url: str, clock: Clock) -> None:
    others = [MiddlewareStore.open_url(store_url, clock=clock) for _ in range(3)]
    answers: list[bool] = []
    lock = threading.Lock()

    def ask(worker: MiddlewareStore) -> None:
        for index in range(10):
            seen = worker.seen_before("race", f"key-{index}", 3600)
            with lock:
                answers.append(seen)

    threads = [threading.Thread(target=ask, args=(worker,)) for worker in [store, *others]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    assert answers.count(False) == 10 and answers.count(True) == 30


def test_racing_workers_recording_batches_agree_on_who_saw_each_key_first(store: MiddlewareStore, store_url: str,
                                                                         clock: Clock) -> None:
    others = [MiddlewareStore.open_url(store_url, clock=clock) for _ in range(3)]
    new_keys: list[str] = []
    recorded: set[str] = set()
    lock = threading.Lock()

    def record(worker: MiddlewareStore, offset: int) -> None:
        for batch in range(5):
            # Overlapping batches, each worker's keys in a different order.
            keys = [f"key-{(batch * 7 + index * (offset + 1)) % 40}" for index in range(12)]
            seen = worker.record_seen("race", keys, 3600)
            with lock:
                recorded.update(keys)
                new_keys.extend(key for key in dict.fromkeys(keys) if key not in seen)

    threads = [threading.Thread(target=record, args=(worker, offset))
               for offset, worker in enumerate([store, *others])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    assert sorted(new_keys) == sorted(recorded)  # each key was new for exactly one worker
    assert store.seen_keys("race", new_keys, 3600) == set(new_keys)


def test_dead_letters_keep_message_error_and_attempts(store: MiddlewareStore, clock: Clock) -> None:
    message = Message(body={"Amount": 5}, id="m1", headers={"topic": "/event/X"}, position=b"\x07", key="K")
    attempts = [{"at": "2025-01-01T00:00:00Z", "error": "timeout"}, {"at": "2025-01-01T00:00:01Z", "error": "400"}]
    letter_id = store.add_dead_letter("orders", "sink", message, "400", attempts, step_index=2, branch="big")
    other = store.add_dead_letter("billing", "map[0]", Message(body={}), "bad", [], step_index=0)
    letter = store.dead_letter(letter_id)
    assert letter is not None
    assert letter.message == message and letter.attempts == attempts and letter.state == "New"
    assert (letter.step, letter.step_index, letter.branch, letter.error) == ("sink", 2, "big", "400")
    assert store.dead_letter(letter_id[:10]) == letter  # a unique prefix works
    assert [item.id for item in store.dead_letters("orders")] == [letter_id]
    assert store.count_dead_letters() == 2
    clock.now += 5
    store.record_dead_letter_failure(letter_id, "sink:big", 3, "big", "still 400", [{"at": "t", "error": "x"}])
    again = store.dead_letter(letter_id)
    assert again is not None and len(again.attempts) == 3 and again.error == "still 400" and again.step_index == 3
    assert again.updated_at == clock.now
    assert store.set_dead_letter_state([letter_id], "Replayed") == 1
    assert store.set_dead_letter_state([letter_id], "Discarded") == 0  # only New letters change
    assert store.dead_letters("orders") == [] and len(store.dead_letters("orders", state=None)) == 1
    assert store.set_dead_letter_state([other], "Discarded") == 1
    shown = store.dead_letter(letter_id).to_dict()  # type: ignore[union-attr]
    assert shown["message"]["position"] == {"$bytes": "Bw=="} and shown["state"] == "Replayed"
    with pytest.raises(ValueError, match="state"):
        store.set_dead_letter_state([other], "Gone")


def test_runs_are_recorded(store: MiddlewareStore, clock: Clock) -> None:
    run_id = store.start_run("orders")
    store.update_run(run_id, read=10, written=8, failed=2, dead=1)
    clock.now += 3
    store.update_run(run_id, read=12, written=10, failed=2, dead=1, status="Succeeded")
    (run,) = store.runs("orders")
    assert (run.read, run.written, run.dead, run.status) == (12, 10, 1, "Succeeded")
    assert run.finished == run.started + 3


def test_key_value_helpers(store: MiddlewareStore) -> None:
    assert store.kv_get("etl", "watermark", "none") == "none"
    store.kv_set("etl", "watermark", {"at": "2025-01-01", "id": 3})
    store.kv_set("etl", "watermark", {"at": "2025-02-01", "id": 9})
    store.kv_set("etl", "other", [1, 2])
    assert store.kv_get("etl", "watermark") == {"at": "2025-02-01", "id": 9}
    assert store.kv_items("etl") == {"other": [1, 2], "watermark": {"at": "2025-02-01", "id": 9}}
    assert store.kv_delete("etl", "other") and not store.kv_delete("etl", "other")


def test_new_tables_are_easy_to_add(store: MiddlewareStore) -> None:
    store.ensure_tables([EXTENSION])  # idempotent, also done by open()
    with store.transaction() as conn:
        conn.execute(insert(EXTENSION).values(job="nightly", rows=42))
    with store.transaction() as conn:
        assert conn.execute(select(EXTENSION.c.rows)).scalar() == 42


def test_settings_choose_the_store(tmp_path: Path) -> None:
    settings = Settings.load({"data_dir": tmp_path}, env={})
    assert settings.middleware_store_url == f"sqlite:///{(tmp_path / 'middleware.db').resolve()}"
    chosen = Settings.load({"data_dir": tmp_path}, env={"INTERLINK_MIDDLEWARE_STORE": "postgresql://u@h/mw"})
    assert chosen.middleware_store_url == "postgresql://u@h/mw"
