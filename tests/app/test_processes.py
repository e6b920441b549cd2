"""The process registry: every serving process records itself in the org's store, heartbeats and unregisters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import interlink
from interlink.app.org import Org
from interlink.app.processes import PRUNE_SECONDS, Membership, ProcessRegistry, pid_namespace
from interlink.metadata.model import Schema
from interlink.metadata.spec import build_object
from interlink.store.database import Store, utcnow
from interlink.testing import rest_client

INVOICE = {"name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices", "keyPrefix": "a01",
           "fields": [{"name": "Amount__c", "type": "currency"}]}


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """A bare store (system tables and one deployed object) on each backend: cheaper than a whole org."""
    opened = Store(store_url or f"sqlite:///{tmp_path / 'org.db'}")
    opened.open()
    opened.deploy(Schema([build_object(INVOICE, "test")]))
    try:
        yield opened
    finally:
        opened.close()


def what(detail: dict[str, object]) -> dict[str, object]:
    """A process's detail without the pid namespace the registry adds."""
    return {key: value for key, value in detail.items() if key != "pidns"}


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_register_heartbeat_unregister(store: Store) -> None:
    clock = Clock()
    registry = ProcessRegistry(store, clock=clock, host="web-1", pid=4242)
    process_id = registry.register("worker", {"jobs": True, "pipelines": ["orders"]})
    other = registry.register("api", {"jobs": False, "port": 8443})
    assert process_id != other

    [api, worker] = registry.live()
    assert (worker.id, worker.kind, worker.host, worker.pid) == (process_id, "worker", "web-1", 4242)
    assert worker.jobs and not api.jobs
    assert what(worker.detail) == {"jobs": True, "pipelines": ["orders"]}
    assert worker.detail["pidns"] == pid_namespace()  # the namespace its pid means something in
    assert worker.version == interlink.__version__
    assert worker.schema_version == store.schema.version != ""
    assert worker.started_at == worker.last_seen == clock.now

    clock.advance(5)
    registry.heartbeat(process_id, {"grpc_port": 7443})
    seen = registry.get(process_id)
    assert seen is not None and seen.last_seen == clock.now and seen.started_at == clock.now - timedelta(seconds=5)
    assert what(seen.detail) == {"jobs": True, "pipelines": ["orders"], "grpc_port": 7443}  # merged, not replaced
    assert seen.age_seconds(clock.now) == 5 and seen.silent_seconds(clock.now) == 0

    registry.unregister(process_id)
    assert [p.id for p in registry.live()] == [other]
    assert registry.get(process_id) is None


def test_a_process_that_stops_heartbeating_goes_stale(store: Store) -> None:
    clock = Clock()
    registry = ProcessRegistry(store, clock=clock)
    crashed = registry.register("worker", {"jobs": True})
    alive = registry.register("api", {})
    clock.advance(25)
    registry.heartbeat(alive)
    assert {p.id for p in registry.live()} == {crashed, alive}
    clock.advance(10)  # the crashed one is silent for 35 s
    registry.heartbeat(alive)
    assert [p.id for p in registry.live()] == [alive]
    assert [p.id for p in registry.stale()] == [crashed]
    assert [p.id for p in registry.live(max_age_seconds=60)] == [alive, crashed]  # by kind: api first
    assert {p.id for p in registry.all()} == {crashed, alive}


def test_prune_and_register_keep_the_table_bounded(store: Store) -> None:
    clock = Clock()
    registry = ProcessRegistry(store, clock=clock)
    old = registry.register("api", {})
    clock.advance(3600)
    recent = registry.register("worker", {})
    assert registry.prune(older_than_seconds=1800) == 1
    assert [p.id for p in registry.all()] == [recent]

    clock.advance(PRUNE_SECONDS + 1)  # every register prunes what is silent for a day
    newest = registry.register("supervisor", {})
    assert [p.id for p in registry.all()] == [newest]
    assert old != recent != newest


def test_heartbeat_writes_a_pruned_row_again(store: Store) -> None:
    clock = Clock()
    registry = ProcessRegistry(store, clock=clock)
    process_id = registry.register("worker", {"jobs": True})
    clock.advance(120)  # paused (a stopped VM), pruned meanwhile by someone else
    assert ProcessRegistry(store, clock=clock).prune(60) == 1
    registry.heartbeat(process_id)
    back = registry.get(process_id)
    assert back is not None and back.last_seen == clock.now and what(back.detail) == {"jobs": True}


def test_a_heartbeat_from_another_registry_replaces_the_detail(store: Store) -> None:
    process_id = ProcessRegistry(store).register("api", {"port": 8443, "jobs": True})
    ProcessRegistry(store).heartbeat(process_id, {"jobs": False})
    seen = ProcessRegistry(store).get(process_id)
    assert seen is not None and seen.detail == {"jobs": False}


def test_unknown_kind_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown process kind"):
        ProcessRegistry(store).register("cron", {})


def test_membership_heartbeats_every_interval_and_unregisters(org: Org) -> None:
    ticks = [100.0]
    membership = Membership(org.processes, "worker", {"jobs": True}, interval=5.0, monotonic=lambda: ticks[0])
    process_id = membership.start()
    assert process_id is not None
    first = org.processes.get(process_id)
    assert first is not None
    ticks[0] += 1
    assert membership.beat() is False  # too soon
    assert membership.beat({"pipelines": ["orders"]}) is False  # kept until the next heartbeat
    ticks[0] += 5
    assert membership.beat() is True
    seen = org.processes.get(process_id)
    assert seen is not None and what(seen.detail) == {"jobs": True, "pipelines": ["orders"]}
    assert membership.beat(force=True) is True
    membership.stop()
    assert org.processes.get(process_id) is None and membership.process_id is None


def test_membership_as_context_manager_heartbeats_on_a_thread(store: Store) -> None:
    clock = Clock()
    registry = ProcessRegistry(store, clock=clock)
    with registry.membership("worker", {"jobs": True}, interval=0.01) as membership:
        process_id = membership.process_id
        assert process_id is not None
        registered = clock.now
        clock.advance(30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = registry.get(process_id)
            if seen is not None and seen.last_seen > registered:
                break
            time.sleep(0.01)
        else:
            pytest.fail("no heartbeat from the background thread")
    assert registry.get(process_id) is None


def test_membership_survives_a_store_that_refuses(store: Store) -> None:
    class Failing(ProcessRegistry):
        fail = True

        def register(self, kind: str, detail: object = None) -> str:  # type: ignore[override]
            if self.fail:
                raise OSError("store unreachable")
            return super().register(kind, detail)  # type: ignore[arg-type]

    registry = Failing(store)
    membership = registry.membership("api", {})
    assert membership.start() is None  # logged, not raised: the process keeps serving
    registry.fail = False
    assert membership.beat() is True  # registered late
    assert membership.process_id is not None and registry.get(membership.process_id) is not None
    membership.stop()


def test_the_api_registers_while_it_serves(org: Org) -> None:
    with rest_client(org) as client:
        assert client.get("/health").status_code == 200
        [api] = [p for p in org.processes.live() if p.kind == "api"]
        assert api.detail["jobs"] is (org.settings.bulk_workers > 0)
        assert api.detail["bus"] == org.bus.backend.name
        assert api.schema_version == org.store.schema.version
    assert [p for p in org.processes.all() if p.kind == "api"] == []


def test_an_existing_store_gets_the_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'org.db'}"
    store = Store(url)
    store.open()
    with store.write() as conn:
        conn.execute(text("DROP TABLE il_process"))
    store.close()
    reopened = Store(url)
    reopened.open()  # an org made before the registry: the table is created on open
    try:
        registry = ProcessRegistry(reopened)
        registry.register("api", {})
        assert len(registry.live()) == 1
    finally:
        reopened.close()
