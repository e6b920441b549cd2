"""Retry-now and discard on the callout and outbound-message queues, and what a callout's request shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlink.app.org import Org
from interlink.callouts.credentials import NamedCredential
from interlink.callouts.outbound import OutboundMessage
from interlink.callouts.queue import Delivery, redact_headers
from interlink.testing import local_org


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    with local_org(tmp_path / "org", bulk_workers=0) as org:
        org.callouts.credentials["billing"] = NamedCredential(
            "Billing", "https://billing.example.com/api", protocol="bearer", settings={"token": "t0ken"},
            secret_headers=("Authorization",))
        org.callouts.clock = Clock()
        org.callouts.sender = lambda *args: Delivery(503, b"busy", None, 5)  # type: ignore[assignment]
        yield org


def _callout(org: Org, headers: dict[str, str] | None = None) -> str:
    with org.store.write() as conn:
        return org.callouts.enqueue(conn, {}, org.admin_context(), credential="Billing", method="POST",
                                    path="/accounts", body={"n": 1}, headers=headers, source="test")


def _claim_only(org: Org) -> Any:
    return org.callouts._claim("someone-else")


def test_retry_now_makes_a_waiting_callout_due_and_requeues_a_dead_one(org: Org) -> None:
    callout_id = _callout(org)
    assert org.callouts.run_once("w")
    assert not org.callouts.run_once("w")  # waiting for its backoff
    assert org.callouts.retry_now(callout_id)
    assert org.callouts.run_once("w")
    assert org.callouts.get(callout_id)["attempts"] == 2  # type: ignore[index]
    org.callouts.max_attempts = 3
    org.callouts.retry_now(callout_id)
    org.callouts.run_once("w")
    assert org.callouts.get(callout_id)["state"] == "Dead"  # type: ignore[index]
    assert org.callouts.retry_now(callout_id)  # a dead one is queued again
    assert org.callouts.get(callout_id)["state"] == "Queued"  # type: ignore[index]
    assert not org.callouts.retry_now("0Cq000000000000AAA")


def test_discard_stops_a_callout_for_good_but_not_while_it_is_being_sent(org: Org) -> None:
    callout_id = _callout(org)
    assert _claim_only(org) is not None
    assert not org.callouts.discard(callout_id)  # in flight: the worker's outcome must not be overwritten
    assert not org.callouts.retry_now(callout_id)
    org.callouts.clock.now += timedelta(minutes=5)  # type: ignore[attr-defined]  # the lease ran out
    assert org.callouts.discard(callout_id)
    found = org.callouts.get(callout_id)
    assert found is not None and found["state"] == "Discarded"
    assert not org.callouts.run_once("w")
    assert not org.callouts.discard(callout_id) and not org.callouts.retry_now(callout_id)


def test_a_callouts_request_is_shown_with_credentials_redacted(org: Org) -> None:
    callout_id = _callout(org, {"Authorization": "Bearer typed", "X-Api-Key": "k", "Cookie": "c=1", "Accept": "x/y"})
    request = org.callouts.request(callout_id)
    assert request == {"method": "POST", "url": "https://billing.example.com/api/accounts",
                       "headers": {"Authorization": "********", "X-Api-Key": "********", "Cookie": "********",
                                   "Accept": "x/y", "Content-Type": "application/json"},
                       "body": '{"n": 1}', "bodyBytes": 8}
    assert org.callouts.request("0Cq000000000000AAA") is None
    assert redact_headers({"X-Custom": "v", "x-session-id": "s"}, ("X-Custom",)) == {"X-Custom": "********",
                                                                                     "x-session-id": "********"}


def test_outbound_notifications_can_be_read_retried_and_discarded(org: Org) -> None:
    org.outbound.definitions["erp"] = OutboundMessage("ERP", "Account", ("Id", "Name"), "Billing", "/om", "test")
    (account,) = org.records.create(org.admin_context(), "Account", [{"Name": "Acme"}])
    with org.store.write() as conn:
        first, second = org.outbound.enqueue(conn, "ERP", [account.id, account.id])  # type: ignore[arg-type]
    assert org.outbound.run_once("w")
    found = org.outbound.get(first)
    assert found is not None and found["attempts"] == 1 and found["history"][0]["status"] == 503
    assert org.outbound.get("04l000000000000AAA") is None
    assert not org.outbound.run_once("w")
    assert org.outbound.retry(first)
    assert org.outbound.discard(second)
    assert org.outbound.run_once("w")
    assert org.outbound.get(first)["attempts"] == 2  # type: ignore[index]
    assert org.outbound.get(second)["state"] == "Discarded"  # type: ignore[index]
    assert not org.outbound.retry(second) and not org.outbound.discard(second)
