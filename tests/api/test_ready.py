"""``/ready``: 200 only while this process can serve (store, bus, schema, not draining), else 503 with reasons."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.app.org import Org
from interlink.testing import rest_client


@pytest.fixture
def anonymous(org: Org) -> Iterator[TestClient]:
    """No token, and the app's lifespan running (the process registers itself, as under `interlink up`)."""
    with rest_client(org, authorised=False) as client:
        yield client


@pytest.fixture
def probe(org: Org) -> TestClient:
    """No token and no lifespan: no background flusher that would touch the store a test breaks."""
    return rest_client(org, authorised=False)


def test_a_serving_process_is_ready_without_authentication(org: Org, anonymous: TestClient) -> None:
    answer = anonymous.get("/ready")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready" and body["pid"] == os.getpid() and body["org_id"] == org.org_id
    # The process id is the one `interlink doctor` lists.
    assert body["process"] in {process.id for process in org.processes.live()}
    assert answer.headers["cache-control"] == "no-store"
    head = anonymous.head("/ready")
    assert head.status_code == 200 and head.content == b""


def test_without_the_lifespan_the_process_still_has_an_id(probe: TestClient) -> None:
    first, second = probe.get("/ready").json(), probe.get("/ready").json()  # not registered: no lifespan
    assert first["status"] == "ready" and first["process"] == second["process"]
    assert str(os.getpid()) in first["process"]


def test_draining_takes_the_process_out_but_it_stays_alive(anonymous: TestClient) -> None:
    anonymous.app.state.draining.set()  # type: ignore[attr-defined]
    answer = anonymous.get("/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable" and body["pid"] == os.getpid()
    assert body["reasons"] == ["draining: the server is shutting down"]
    assert anonymous.get("/health").status_code == 200  # liveness is another question


def test_a_store_that_does_not_answer(org: Org, probe: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def broken() -> Iterator[Any]:
        raise ConnectionError("connection refused\nwith details on a second line")
        yield  # pragma: no cover

    monkeypatch.setattr(org.store, "read", broken)
    answer = probe.get("/ready")
    assert answer.status_code == 503
    (reason,) = answer.json()["reasons"]
    # The error's kind, not its text: driver messages name hosts and ports, and /ready needs no authentication.
    assert reason == f"store: {org.store.backend} does not answer: ConnectionError"
    assert probe.get("/health").json()["components"]["store"]["status"] == "error"


def test_a_bus_that_does_not_answer(org: Org, probe: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_args: Any) -> Any:
        raise OSError("nats: no servers available")

    monkeypatch.setattr(org.bus.backend, "bounds", down)
    answer = probe.get("/ready")
    assert answer.status_code == 503
    (reason,) = answer.json()["reasons"]
    assert reason.startswith("bus: ") and reason.endswith("does not answer: nats: no servers available")


def test_a_process_without_a_schema_is_not_ready(org: Org, probe: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from interlink.metadata.model import Schema

    monkeypatch.setattr(org.store, "schema", Schema([]))
    answer = probe.get("/ready")
    assert answer.status_code == 503 and answer.json()["reasons"] == ["schema: no schema is loaded"]
