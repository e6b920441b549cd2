"""Asynchronous callouts: Fire and Forget from flows and triggers, delivered at least once.

A callout asked for inside a transaction is a row of ``il_callout`` written in that transaction, so a rolled-back
save calls nobody. Workers deliver due callouts with a lease; a failure (network error, timeout, HTTP 408, 429 or
5xx) is retried with exponential backoff and jitter, up to ``max_attempts``; other 4xx answers and refused
callouts are final. A callout that gives up is ``Dead``, with every attempt kept (time, status, error, duration,
the start of the response). Each request carries an ``Idempotency-Key`` that retries reuse, so the receiver can
drop duplicates.

Request and Reply runs the same way, on the async path the platform requires from a save: ``on_success`` maps
fields of the JSON response onto the record that asked, in one transaction with marking the callout delivered;
if the callout fails, the record is never changed.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, or_, select, update

from interlink import ids
from interlink.automation.flows import response_value
from interlink.callouts.credentials import CalloutRefused, NamedCredential
from interlink.callouts.principals import for_user
from interlink.errors import InterlinkError
from interlink.records.context import Context
from interlink.store.claims import claim
from interlink.store.database import Store, utcnow

if TYPE_CHECKING:
    from interlink.records.service import RecordService

log = logging.getLogger(__name__)

QUEUED, DELIVERED, DEAD, DISCARDED = "Queued", "Delivered", "Dead", "Discarded"
MAX_CALLOUTS_PER_TRANSACTION = 100
RETRYABLE_STATUSES = frozenset({408, 429})
_RESPONSE_EXCERPT = 2000
REDACTED = "********"
# Header names whose values are credentials wherever they appear (compared in lower case, as substrings), and any
# header named ...key (X-Api-Key, Ocp-Apim-Subscription-Key, X-Functions-Key).
_SECRET_HEADER_WORDS = ("auth", "cookie", "token", "secret", "password", "passwd", "api-key", "apikey", "api_key",
                        "signature", "x-amz-security", "session", "credential")


class CalloutFailed(InterlinkError):
    """A synchronous callout the service refused, or that could not reach it."""

    error_code = "CALLOUT_FAILED"
    http_status = 400


class CalloutLimitExceeded(InterlinkError):
    """More callouts in one transaction than the platform allows (100)."""

    error_code = "LIMIT_EXCEEDED"
    http_status = 400


@dataclass
class Delivery:
    """What one attempt got: an HTTP status and body, or an error before any answer."""

    status: int | None
    body: bytes
    error: str | None
    duration_ms: int


Sender = Callable[[str, str, dict[str, str], bytes | None, float, Any], Delivery]


def http_sender(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float,
                tls: Any = None) -> Delivery:
    """Send one request with httpx (the default transport); ``tls`` is the credential's SSL context, if any."""
    import httpx

    started = time.perf_counter()
    try:
        response = httpx.request(method, url, headers=headers, content=body, timeout=timeout,
                                 verify=tls if tls is not None else True)
    except httpx.TimeoutException:
        return Delivery(None, b"", f"Read timed out after {timeout:g} s", int((time.perf_counter() - started) * 1000))
    except httpx.HTTPError as exc:
        return Delivery(None, b"", f"{type(exc).__name__}: {exc}", int((time.perf_counter() - started) * 1000))
    return Delivery(response.status_code, response.content, None, int((time.perf_counter() - started) * 1000))


def redact_headers(headers: Mapping[str, str], secret_names: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers fit to show: values of authentication headers (and of ``secret_names``) replaced by asterisks."""
    secret = {name.lower() for name in secret_names}

    def hidden(name: str) -> bool:
        lower = name.lower()
        return lower in secret or lower.endswith("key") or any(word in lower for word in _SECRET_HEADER_WORDS)

    return {name: REDACTED if hidden(name) else value for name, value in headers.items()}


def attempt_entry(attempt: int, at: datetime, delivery: Delivery, error: str | None) -> dict[str, Any]:
    """One attempt as the history keeps it: when, the HTTP status, the error, how long, the start of the answer."""
    return {"attempt": attempt, "at": at.isoformat(timespec="milliseconds") + "Z", "status": delivery.status,
            "error": error, "durationMs": delivery.duration_ms,
            "response": delivery.body[:_RESPONSE_EXCERPT].decode("utf-8", "replace")}


class CalloutQueue:
    """Enqueue callouts in a transaction; deliver them later, with retries."""

    def __init__(self, store: Store, credentials: Mapping[str, NamedCredential], *, max_attempts: int = 10,
                 backoff_seconds: float = 2.0, backoff_cap_seconds: float = 600.0,
                 clock: Callable[[], datetime] = utcnow, sender: Sender = http_sender,
                 lease_seconds: float = 60.0, jitter: Callable[[], float] = random.random) -> None:
        self.store = store
        self.credentials = dict(credentials)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.clock = clock
        self.sender = sender
        self.lease_seconds = lease_seconds
        # Types an External Service answer (``service.operation``, status, answer); set by the org.
        self.typed: Callable[[str, int, Any], Any] | None = None
        self.jitter = jitter
        self.records: RecordService | None = None  # set by the org: on_success updates go through the write path

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_callout"]

    def credential(self, name: str) -> NamedCredential:
        found = self.credentials.get(name.lower())
        if found is None:
            raise CalloutRefused(f"there is no named credential {name!r}: callouts go only to named credentials")
        return found

    def send_now(self, credential: str, method: str, path: str, body: Any = None,
                 headers: Mapping[str, str] | None = None, *, user_id: str | None = None) -> tuple[int, Any]:
        """A synchronous callout (outside a save) as ``user_id`` (a per-user principal uses that user's
        credential): (status, the JSON answer); errors raise CalloutFailed (CalloutRefused: nothing was sent)."""
        named = for_user(self.credential(credential), user_id, self.store)
        all_headers = dict(headers or {})
        # Every request carries a key receivers can deduplicate on; a flow that may repeat a synchronous call sets a
        # stable one itself (headers: {Idempotency-Key: "{!$Record.Id}-activate"}), which is kept.
        if not any(name.lower() == "idempotency-key" for name in all_headers):
            all_headers["Idempotency-Key"] = str(uuid.uuid4())
        payload = None
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        url = named.endpoint(path)
        all_headers.update(named.auth_headers(method, url, payload, all_headers))
        delivery = self.sender(method.upper(), url, all_headers, payload, named.timeout, named.tls())
        if delivery.status is None:
            raise CalloutFailed(f"callout:{named.name}{path}: {delivery.error}")
        if not 200 <= delivery.status < 300:
            raise CalloutFailed(f"callout:{named.name}{path}: HTTP {delivery.status}: "
                                f"{delivery.body[:300].decode('utf-8', 'replace')}")
        try:
            return delivery.status, json.loads(delivery.body) if delivery.body else None
        except ValueError:
            return delivery.status, delivery.body.decode("utf-8", "replace")

    # -- asking ------------------------------------------------------------------------------------------------

    def enqueue(self, conn: Connection, counters: dict[str, int], context: Context, *, credential: str,
                method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None,
                source: str, object_name: str | None = None, record_id: str | None = None,
                on_success: Mapping[str, str] | None = None, operation: str | None = None) -> str:
        """Queue one callout in the open transaction ``conn``; returns its id.

        The credential and path are checked now (a refused callout fails the caller, not a later delivery).
        ``operation`` (``service.operationId``): an External Service call, whose answer is typed by the operation's
        response schema before ``on_success`` maps it.
        """
        named = self.credential(credential)
        named.endpoint(path)
        counters["callouts"] = counters.get("callouts", 0) + 1
        if counters["callouts"] > MAX_CALLOUTS_PER_TRANSACTION:
            raise CalloutLimitExceeded(f"Too many callouts: {counters['callouts']}")
        payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            all_headers.setdefault("Content-Type", "application/json")
        now = self.clock()
        callout_id = ids.new_id("0Cq")
        conn.execute(self._table.insert().values(
            id=callout_id, credential=named.name, method=method.upper(), path=path,
            headers_json=json.dumps(all_headers), body=payload, idempotency_key=str(uuid.uuid4()), source=source,
            object_name=object_name, record_id=record_id,
            on_success_json=_on_success_json(on_success, operation), user_id=context.user_id,
            api_version=context.api_version, state=QUEUED, attempts=0, next_attempt_at=now, last_error=None,
            history_json="[]", created_at=now, updated_at=now, claimed_by=None, claimed_until=None))
        return callout_id

    # -- delivering ----------------------------------------------------------------------------------------------

    def run_once(self, worker_id: str) -> bool:
        """Deliver one due callout; False when none is due."""
        row = self._claim(worker_id)
        if row is None:
            return False
        try:
            self._deliver(row, worker_id)
        except Exception:
            log.exception("callout %s failed unexpectedly", row.id)
            self._release(row.id, worker_id)
        return True

    def _claim(self, worker_id: str) -> Any:
        table = self._table
        now = self.clock()
        due = and_(table.c.state == QUEUED, table.c.next_attempt_at <= now,
                   or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
        taken = claim(self.store, table, due, order_by=[table.c.next_attempt_at], limit=1, values={
            "claimed_by": worker_id, "claimed_until": now + timedelta(seconds=self.lease_seconds)})
        return taken[0] if taken else None

    def _release(self, callout_id: str, worker_id: str) -> None:
        table = self._table
        with self.store.write() as conn:
            conn.execute(update(table).where(and_(table.c.id == callout_id, table.c.claimed_by == worker_id))
                         .values(claimed_by=None, claimed_until=None))

    def _deliver(self, row: Any, worker_id: str) -> None:
        attempt = row.attempts + 1
        started_at = self.clock()
        try:
            # A per-user principal: the credential of the user who queued the callout (refused without access).
            named = for_user(self.credential(row.credential), row.user_id, self.store)
            url = named.endpoint(row.path)
            headers = {**json.loads(row.headers_json), "Idempotency-Key": row.idempotency_key}
            headers.update(named.auth_headers(row.method, url, row.body, headers))
            delivery = self.sender(row.method, url, headers, row.body, named.timeout, named.tls())
        except CalloutRefused as refused:
            delivery = Delivery(None, b"", refused.message, 0)
            self._finish(row, worker_id, attempt, started_at, delivery, final=True)
            return
        ok = delivery.status is not None and 200 <= delivery.status < 300
        retryable = delivery.status is None or delivery.status >= 500 or delivery.status in RETRYABLE_STATUSES
        if delivery.status == 401 and named.protocol.startswith("oauth_"):
            named.forget_token()  # revoked or expired early: the retry fetches a new token
            retryable = True
        if ok:
            self._finish(row, worker_id, attempt, started_at, delivery, delivered=True)
        else:
            self._finish(row, worker_id, attempt, started_at, delivery, final=not retryable)

    def _finish(self, row: Any, worker_id: str, attempt: int, started_at: datetime, delivery: Delivery, *,
                delivered: bool = False, final: bool = False) -> None:
        table = self._table
        error = delivery.error or (None if delivered else f"HTTP {delivery.status}")
        history = [*json.loads(row.history_json), attempt_entry(attempt, started_at, delivery, error)]
        values: dict[str, Any] = {"attempts": attempt, "history_json": json.dumps(history), "last_error": error,
                                  "updated_at": self.clock(), "claimed_by": None, "claimed_until": None}
        mapping = delivered and row.on_success_json and row.record_id and self.records is not None
        # With a response to store, the record update and the callout's new state share one unit of work.
        scope = self.records.unit_of_work(Context(row.user_id, "", row.api_version)) if mapping else \
            _plain(self.store)  # type: ignore[union-attr]
        with scope as unit:
            conn = unit.conn if mapping else unit
            if mapping:
                problem = self._apply_response(row, delivery.status or 0, delivery.body)
                if problem is not None:  # the answer could not be stored: the callout is dead, the record untouched
                    history[-1]["error"] = problem
                    values.update(history_json=json.dumps(history), last_error=problem)
                    delivered, final = False, True
            if delivered:
                values["state"] = DELIVERED
            elif final or attempt >= self.max_attempts:
                values["state"] = DEAD
            else:
                values["next_attempt_at"] = self.clock() + timedelta(seconds=self.backoff(attempt))
            conn.execute(update(table).where(and_(table.c.id == row.id, table.c.claimed_by == worker_id))
                         .values(**values))

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: exponential, capped, with jitter (50 to 100 %)."""
        delay = min(self.backoff_cap_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return delay * (0.5 + self.jitter() / 2)

    def _apply_response(self, row: Any, status: int, body: bytes) -> str | None:
        """Set the asking record's fields from the JSON response (Request and Reply); a problem, or None."""
        assert self.records is not None
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return "the response is not JSON: its fields cannot be mapped onto the record"
        mapping, operation = _read_on_success(row.on_success_json)
        if operation is not None and self.typed is not None:
            try:
                data = self.typed(operation, status, data)
            except InterlinkError as error:  # an answer that does not fit its schema is not stored
                return error.message
        values = {name: response_value(data, str(path)) for name, path in mapping.items()}
        context = Context(row.user_id, "", row.api_version)
        assert self.records is not None
        (result,) = self.records.update(context, row.object_name, [{"Id": row.record_id, **values}])
        if result.errors:
            error = result.errors[0]
            return f"the response could not be stored on {row.record_id}: {error.error_code}: {error.message}"
        return None

    # -- reading -----------------------------------------------------------------------------------------------

    def list(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        table = self._table
        query = select(table).order_by(table.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(table.c.state == state)
        with self.store.read() as conn:
            return [self._wire(row) for row in conn.execute(query)]

    def get(self, callout_id: str) -> dict[str, Any] | None:
        table = self._table
        with self.store.read() as conn:
            row = conn.execute(select(table).where(table.c.id == callout_id)).first()
        return None if row is None else self._wire(row)

    def retry(self, callout_id: str) -> bool:
        """Send a dead callout again (with its idempotency key); True when it was dead."""
        table = self._table
        with self.store.write() as conn:
            return conn.execute(update(table).where(and_(table.c.id == callout_id, table.c.state == DEAD)).values(
                state=QUEUED, attempts=0, next_attempt_at=self.clock(), updated_at=self.clock())).rowcount == 1

    def retry_now(self, callout_id: str) -> bool:
        """Deliver a waiting callout at once (a dead one is queued again); False when it is neither, or in flight."""
        table = self._table
        now = self.clock()
        idle = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        with self.store.write() as conn:
            if conn.execute(update(table).where(and_(table.c.id == callout_id, table.c.state == QUEUED, idle))
                            .values(next_attempt_at=now, updated_at=now)).rowcount == 1:
                return True
        return self.retry(callout_id)

    def discard(self, callout_id: str) -> bool:
        """Give up a waiting or dead callout for good (``Discarded``, history kept); False when it is neither,
        or while a worker is sending it."""
        table = self._table
        now = self.clock()
        with self.store.write() as conn:
            return conn.execute(update(table).where(and_(
                table.c.id == callout_id, table.c.state.in_((QUEUED, DEAD)),
                or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))).values(
                state=DISCARDED, updated_at=now, claimed_by=None, claimed_until=None)).rowcount == 1

    def request(self, callout_id: str, *, limit: int = _RESPONSE_EXCERPT) -> dict[str, Any] | None:
        """What the callout sends, fit to show: the URL, headers with credentials redacted, the start of the body.

        Authentication headers are added when a callout is sent and never stored; headers the flow set itself are
        redacted by name (and by the credential's secret header names).
        """
        table = self._table
        with self.store.read() as conn:
            row = conn.execute(select(table.c.credential, table.c.method, table.c.path, table.c.headers_json,
                                      table.c.body).where(table.c.id == callout_id)).first()
        if row is None:
            return None
        named = self.credentials.get(row.credential.lower())
        try:
            url = named.endpoint(row.path) if named is not None else None
        except CalloutRefused:
            url = None
        body = row.body or b""
        return {"method": row.method, "url": url or f"callout:{row.credential}{row.path}",
                "headers": redact_headers(json.loads(row.headers_json), named.secret_headers if named else ()),
                "body": body[:limit].decode("utf-8", "replace"), "bodyBytes": len(body)}

    @staticmethod
    def _wire(row: Any) -> dict[str, Any]:
        return {"id": row.id, "credential": row.credential, "method": row.method, "path": row.path,
                "state": row.state, "attempts": row.attempts, "source": row.source, "recordId": row.record_id,
                "idempotencyKey": row.idempotency_key, "lastError": row.last_error,
                "nextAttemptAt": row.next_attempt_at.isoformat(timespec="milliseconds") + "Z",
                "createdAt": row.created_at.isoformat(timespec="milliseconds") + "Z",
                "history": json.loads(row.history_json)}


def _plain(store: Store) -> Any:
    """A write transaction of the store, for state changes that touch no record."""
    return store.write()



def _on_success_json(on_success: Mapping[str, str] | None, operation: str | None) -> str | None:
    """What a callout row keeps of ``on_success``: the mapping, with the External Service operation that types the
    answer (``{"fields": {...}, "operation": "billing.createAccount"}``)."""
    if not on_success:
        return None
    if operation is None:
        return json.dumps(dict(on_success))
    return json.dumps({"fields": dict(on_success), "operation": operation})


def _read_on_success(stored: str) -> tuple[dict[str, Any], str | None]:
    """(field -> answer path, the typing operation or None) from a row's ``on_success_json``."""
    spec = json.loads(stored)
    if isinstance(spec.get("fields"), dict) and isinstance(spec.get("operation"), str):
        return spec["fields"], spec["operation"]
    return spec, None


__all__ = [
    "DEAD",
    "DELIVERED",
    "DISCARDED",
    "MAX_CALLOUTS_PER_TRANSACTION",
    "QUEUED",
    "CalloutLimitExceeded",
    "CalloutQueue",
    "Delivery",
    "attempt_entry",
    "http_sender",
    "redact_headers",
]
