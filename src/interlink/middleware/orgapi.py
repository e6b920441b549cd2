"""An org's wire APIs for the middleware: REST, sObject Collections, Bulk API 2.0 and the Pub/Sub API.

:class:`OrgConnection` is everything a pipeline step needs from an org, and it speaks only the public wire
protocols, so the same step runs against a local Interlink org or a production org. It never imports org
internals. Failures come back in the middleware's two kinds: :class:`OrgUnavailable` (a
:class:`~interlink.middleware.base.RetryableError`: 5xx, timeouts, connection errors, ``UNABLE_TO_LOCK_ROW``,
``REQUEST_LIMIT_EXCEEDED``) and :class:`OrgRejected` (a :class:`~interlink.middleware.base.PermanentError`:
validation and other 4xx answers), both carrying the org's ``errorCode`` and message.

Authentication (``auth=``, :mod:`~interlink.middleware.orgauth`): a static token, or an OAuth 2.0 grant run
again once when the org answers 401 ``INVALID_SESSION_ID``. Named connections come from ``connections.yaml``
through :mod:`~interlink.middleware.connections`; both modules' names are still importable from here.
Pub/Sub subscriptions (:meth:`OrgConnection.subscribe`) are streamed by
:class:`interlink.middleware.sources.org.Subscription` (flow control, keep-alives, the stall watchdog).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from interlink.middleware.base import MiddlewareError, PermanentError, PipelineSpecError, RetryableError
from interlink.middleware.orgauth import (
    Auth,
    ClientCredentials,
    Credentials,
    JwtBearer,
    StaticToken,
    UsernamePassword,
    auth_from_config,
)

if TYPE_CHECKING:  # re-exported lazily (see __getattr__ at the end): that module builds on this one
    from interlink.middleware.connections import (
        config_error,
        connection_for,
        connection_from_config,
        require_connection,
        resolve_connections,
    )

log = logging.getLogger(__name__)

API_VERSION = "66.0"
COLLECTION_SIZE = 200  # sObject Collections take at most 200 records per call
FINISHED = ("JobComplete", "Failed", "Aborted")
RETRYABLE_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE",
                             "ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED", "QUERY_TIMEOUT"})
NOT_AN_ERROR = "OPERATION_ENQUEUED"  # a published event's SaveResult carries its EventUuid under this code


# -- errors --------------------------------------------------------------------------------------------------


class _OrgFailure(MiddlewareError):
    """What the org said: its ``errorCode``, the HTTP status (None for gRPC and network failures), the message."""

    def __init__(self, message: str, *, error_code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class OrgUnavailable(_OrgFailure, RetryableError):
    """The org could not do it now (5xx, timeout, connection error, row lock, request limit): retry later."""


class OrgRejected(_OrgFailure, PermanentError):
    """The org refused the request (validation, unknown field or object, bad query): retrying will not help."""


class OrgAuthError(OrgRejected):
    """The org refused the credentials (a bad or expired static token, a wrong client secret, a bad key)."""


class ReplayIdInvalid(OrgRejected):
    """The Pub/Sub API refused a replay id: past the retention window, not a position of the topic, or corrupted."""


# -- results and values ---------------------------------------------------------------------------------------


@dataclass
class RecordResult:
    """One record's outcome in a collections call, a Bulk job or a publish (errors use ``statusCode``)."""

    success: bool
    id: str | None = None
    created: bool | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        """A failure that another try may cure (a row lock, a rolled-back batch), not bad data."""
        codes = {str(e.get("statusCode", "")) for e in self.errors}
        return not self.success and bool(codes) and codes <= RETRYABLE_CODES

    @property
    def error(self) -> str | None:
        """``CODE: message [fields]`` of every error, or None when the record succeeded."""
        if self.success:
            return None
        return "; ".join(f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}"
                         + (f" [{', '.join(e['fields'])}]" if e.get("fields") else "")
                         for e in self.errors) or "failed without an error"


def _save_result(item: Mapping[str, Any]) -> RecordResult:
    errors = [e for e in item.get("errors") or [] if e.get("statusCode") != NOT_AN_ERROR]
    return RecordResult(bool(item.get("success")), item.get("id"), item.get("created"),
                        errors if not item.get("success") else [])


def format_value(value: Any) -> Any:
    """A Python value in the wire form: dates and datetimes ISO 8601 (UTC ``Z``), decimals as numbers."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _json_default(value: Any) -> Any:
    formatted = format_value(value)
    return str(value) if formatted is value else formatted  # UUIDs, enums...: their text


def _json(body: Any) -> bytes:
    return json.dumps(body, default=_json_default).encode()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""  # Bulk API 2.0 leaves an empty cell unchanged; "#N/A" clears a field
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default)
    return str(format_value(value))


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested relationship values ({"Account": {"Ext__c": "A1"}}) as Bulk columns (``Account.Ext__c``)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _problems(response: httpx.Response) -> list[tuple[str, str]]:
    """(errorCode, message) of an error body (a JSON array on REST and Bulk API 2.0, an object on OAuth)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found = []
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict) and ("errorCode" in item or "message" in item):
            found.append((str(item.get("errorCode", "ERROR")), str(item.get("message", ""))))
        elif isinstance(item, dict) and "error" in item:
            found.append((str(item["error"]), str(item.get("error_description", ""))))
    return found or [(f"HTTP_{response.status_code}", response.text.strip()[:300] or response.reason_phrase)]


def _failure(response: httpx.Response, what: str) -> MiddlewareError:
    problems = _problems(response)
    code = problems[0][0]
    message = f"{what}: " + "; ".join(f"{c}: {m}" for c, m in problems)
    status = response.status_code
    if status >= 500 or status == 429 or code in RETRYABLE_CODES:
        return OrgUnavailable(message, error_code=code, status=status)
    if status == 401:
        return OrgAuthError(message, error_code=code, status=status)
    return OrgRejected(message, error_code=code, status=status)


# -- the connection ------------------------------------------------------------------------------------------


class OrgConnection:
    """One org's REST, Collections, Bulk API 2.0 and Pub/Sub API, for middleware steps.

    ``url`` is the instance (``https://acme.my.salesforce.com``, ``https://127.0.0.1:8443``); ``ca_bundle`` a PEM
    file of trusted CAs (the local org's ``tls/bundle.pem``), else the system's; ``grpc_target`` the Pub/Sub API
    ``host:port`` (default ``api.pubsub.salesforce.com:7443``); ``org_id`` the tenant id sent to the Pub/Sub API
    (found from the login or ``/services/oauth2/userinfo`` when not given).
    """

    def __init__(self, url: str, *, token: str | None = None, auth: Auth | None = None,
                 ca_bundle: str | Path | None = None, api_version: str = API_VERSION,
                 grpc_target: str | None = None, org_id: str | None = None, timeout: float = 120.0,
                 name: str = "default") -> None:
        import ssl

        if (token is None) == (auth is None):
            raise PipelineSpecError(f"connection {name}: give token= or auth= (one of them)")
        if not url.startswith(("https://", "http://")):
            raise PipelineSpecError(f"connection {name}: url must be an https:// URL, not {url!r}")
        self.name = name
        self.url = url.rstrip("/")
        self.auth: Auth = auth if auth is not None else StaticToken(str(token))
        self.api_version = api_version.removeprefix("v")
        self.ca_bundle = str(ca_bundle) if ca_bundle else None
        self.grpc_target = grpc_target or "api.pubsub.salesforce.com:7443"
        self.org_id = org_id
        self.timeout = timeout
        verify = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
        self.http = httpx.Client(verify=verify, timeout=httpx.Timeout(timeout, connect=15.0))
        self._credentials: Credentials | None = None
        self._login_lock = threading.Lock()
        self._channel: Any = None
        self._schemas: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._org_id_asked = False

    @classmethod
    def from_server_file(cls, path: str | Path, token: str, **options: Any) -> OrgConnection:
        """The local org a running ``interlink up`` recorded in ``<data_dir>/run/server.json`` (url, CA bundle,
        Pub/Sub port, org id), with a token the caller minted (``interlink token``)."""
        try:
            info = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            info = {"error": exc}
        if not isinstance(info, dict) or not info.get("url"):
            raise PipelineSpecError(f"cannot read the server file {path}: {info.get('error', 'no url')} "
                                    "(is `interlink up` running?)")
        url = str(info["url"])
        grpc_target = None
        if info.get("grpc_port"):
            grpc_target = f"{urlsplit(url).hostname}:{info['grpc_port']}"
        defaults = {"ca_bundle": info.get("ca_bundle"), "grpc_target": grpc_target, "org_id": info.get("org_id"),
                    "name": "local"}
        return cls(url, token=token, **{**defaults, **options})

    def close(self) -> None:
        """Close the HTTP client and the gRPC channel."""
        self.http.close()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __repr__(self) -> str:
        return f"OrgConnection({self.name!r}, {self.url!r})"

    # -- tokens ---------------------------------------------------------------------------------------------

    def access_token(self) -> str:
        """The current access token, logging in first if needed."""
        with self._login_lock:
            if self._credentials is None:
                self._credentials = self.auth.login(self.http, self.url)
                if self._credentials.org_id and not self.org_id:
                    self.org_id = self._credentials.org_id
                if self.auth.login_url and self._credentials.instance_url:
                    self.url = self._credentials.instance_url.rstrip("/")
            return self._credentials.access_token

    def refresh(self, stale: str | None = None) -> str:
        """Log in again after the org refused ``stale`` (another thread may already have done it)."""
        if not self.auth.refreshable:
            raise OrgAuthError(f"connection {self.name}: the org refused the token (INVALID_SESSION_ID) and a "
                               "static token cannot be refreshed: mint a new one, or configure an OAuth grant "
                               "(client_credentials, password, jwt) in connections.yaml",
                               error_code="INVALID_SESSION_ID", status=401)
        with self._login_lock:
            if self._credentials is not None and self._credentials.access_token == stale:
                self._credentials = None
        return self.access_token()

    # -- REST -----------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("https://", "http://")):
            return path
        if path.startswith("/"):
            return self.url + path
        return f"{self.url}/services/data/v{self.api_version}/{path}"

    def request(self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None,
                params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """One REST call (``path`` relative to ``/services/data/vXX.X/``, or absolute from ``/``), with one
        token refresh on 401; a 4xx/5xx answer, timeout or network failure raises Org{Unavailable,Rejected}."""
        sent = {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            content = _json(json_body)
            sent.setdefault("Content-Type", "application/json")
        what = f"{method} {path.split('?')[0]}"
        for attempt in (1, 2):
            token = self.access_token()
            try:
                response = self.http.request(method, self._url(path), content=content, params=params,
                                             headers={**sent, "Authorization": f"Bearer {token}"})
            except httpx.TimeoutException:
                raise OrgUnavailable(f"{what}: {self.url} did not answer in time") from None
            except httpx.HTTPError as exc:
                raise OrgUnavailable(f"{what}: cannot reach {self.url}: {exc or type(exc).__name__}") from None
            if response.status_code == 401 and attempt == 1 and self.auth.refreshable:
                self.refresh(token)
                continue
            if response.status_code == 401 and not self.auth.refreshable:
                self.refresh(token)  # raises the clear static-token error
            if response.status_code >= 400:
                raise _failure(response, what)
            return response
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        response = self.request(method, path, json_body=body, **options)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise OrgRejected(f"{method} {path}: answered {response.status_code} without JSON "
                              f"(is {self.url} an org?)", status=response.status_code) from None

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path``: its JSON answer."""
        return self._call("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON to ``path``: its JSON answer (None for 204)."""
        return self._call("POST", path, body)

    def patch(self, path: str, body: Any = None) -> Any:
        """PATCH JSON to ``path``: its JSON answer (None for 204)."""
        return self._call("PATCH", path, body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``: its JSON answer (None for 204)."""
        return self._call("DELETE", path)

    def query(self, soql: str, *, batch_size: int | None = None, include_deleted: bool = False
              ) -> Iterator[dict[str, Any]]:
        """The records of a SOQL query, page after page (``nextRecordsUrl``), fetched as they are consumed."""
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        page = self._call("GET", "queryAll" if include_deleted else "query", params={"q": soql}, headers=headers)
        while True:
            yield from page.get("records", [])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._call("GET", page["nextRecordsUrl"], headers=headers)

    # -- sObject Collections --------------------------------------------------------------------------------

    def save(self, operation: str, object_name: str, records: Sequence[Mapping[str, Any]], *,
             external_id: str | None = None, all_or_none: bool = False) -> list[RecordResult]:
        """Create, update (records carry ``Id``) or upsert (by ``external_id``) through sObject Collections,
        200 records a call; one :class:`RecordResult` per record, in order."""
        if operation == "upsert":
            if not external_id:
                raise ValueError("upsert needs external_id")
            method, path = "PATCH", f"composite/sobjects/{object_name}/{external_id}"
        elif operation in ("create", "update"):
            method, path = ("POST" if operation == "create" else "PATCH"), "composite/sobjects"
        else:
            raise ValueError(f"operation is create, update or upsert, not {operation!r}")
        results: list[RecordResult] = []
        for start in range(0, len(records), COLLECTION_SIZE):
            chunk = [{"attributes": {"type": object_name}, **{k: v for k, v in r.items() if k != "attributes"}}
                     for r in records[start:start + COLLECTION_SIZE]]
            answer = self._call(method, path, {"allOrNone": all_or_none, "records": chunk})
            if not isinstance(answer, list) or len(answer) != len(chunk):
                raise OrgRejected(f"{method} {path}: expected {len(chunk)} results, got {answer!r:.200}")
            results.extend(_save_result(item) for item in answer)
        return results

    def upsert(self, object_name: str, external_id: str, records: Sequence[Mapping[str, Any]], *,
               all_or_none: bool = False) -> list[RecordResult]:
        """Upsert by external id (``PATCH /composite/sobjects/{object}/{externalIdField}``), 200 a call."""
        return self.save("upsert", object_name, records, external_id=external_id, all_or_none=all_or_none)

    def publish(self, event: str, payloads: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        """Publish platform events: one ``POST /sobjects/{Event__e}``, or collections create for several.
        A result's ``id`` is the event's id; it succeeds once the bus has the event."""
        if len(payloads) == 1:
            return [_save_result(self._call("POST", f"sobjects/{event}", dict(payloads[0])))]
        return self.save("create", event, payloads)

    # -- Bulk API 2.0 ---------------------------------------------------------------------------------------

    def bulk_upsert(self, object_name: str, external_id: str, records: Sequence[Mapping[str, Any]], *,
                    timeout: float = 1800.0, poll_max: float = 5.0) -> list[RecordResult]:
        """Upsert through one Bulk API 2.0 ingest job; per-record results in input order.

        Creates the job (CSV, LF), uploads the CSV, closes it, polls with a growing delay until it is
        JobComplete (a Failed or Aborted job raises), then maps ``successfulResults`` / ``failedResults`` back to
        the records by external id (by position among equal ids); a record in neither is reported retryable.
        """
        if not records:
            return []
        flat = [_flatten(record) for record in records]
        columns = list(dict.fromkeys(key for row in flat for key in row))
        if external_id not in columns:
            raise OrgRejected(f"bulk upsert of {object_name}: no record has the external id {external_id}")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        lines = [[_csv_cell(row.get(column)) for column in columns] for row in flat]
        writer.writerows(lines)
        job = self._call("POST", "jobs/ingest", {"object": object_name, "operation": "upsert",
                                                 "externalIdFieldName": external_id, "contentType": "CSV",
                                                 "columnDelimiter": "COMMA", "lineEnding": "LF"})
        job_id = str(job["id"])
        try:
            self.request("PUT", f"jobs/ingest/{job_id}/batches", content=buffer.getvalue().encode(),
                         headers={"Content-Type": "text/csv; charset=UTF-8"})
            self._call("PATCH", f"jobs/ingest/{job_id}", {"state": "UploadComplete"})
            info = self._wait(job_id, timeout, poll_max)
        except BaseException:
            with contextlib.suppress(MiddlewareError):  # best effort: the job may already be finished
                self._call("PATCH", f"jobs/ingest/{job_id}", {"state": "Aborted"})
            raise
        if info.get("state") != "JobComplete":
            message = f"bulk job {job_id} ({object_name} upsert) {info.get('state')}: {info.get('errorMessage')}"
            raise (OrgUnavailable if info.get("state") == "Aborted" else OrgRejected)(message, error_code="INVALIDJOB")
        waiting: dict[str, deque[int]] = {}
        key_at = columns.index(external_id)
        for position, line in enumerate(lines):
            waiting.setdefault(line[key_at], deque()).append(position)
        results: list[RecordResult | None] = [None] * len(records)
        for kind in ("successfulResults", "failedResults"):
            text = self.request("GET", f"jobs/ingest/{job_id}/{kind}", headers={"Accept": "text/csv"}).text
            for row in csv.DictReader(io.StringIO(text, newline="")):
                queue_ = waiting.get(row.get(external_id, ""))
                if not queue_:
                    continue
                position = queue_.popleft()
                if kind == "successfulResults":
                    results[position] = RecordResult(True, row.get("sf__Id") or None,
                                                     str(row.get("sf__Created")).lower() == "true")
                else:
                    results[position] = RecordResult(False, row.get("sf__Id") or None,
                                                     errors=_bulk_errors(row.get("sf__Error", "")))
        missing = {"statusCode": "PROCESSING_HALTED", "message": f"not in the results of bulk job {job_id}"}
        return [r if r is not None else RecordResult(False, errors=[missing]) for r in results]

    def _wait(self, job_id: str, timeout: float, poll_max: float) -> dict[str, Any]:
        delay, deadline = 0.1, time.monotonic() + timeout
        while True:
            info: dict[str, Any] = self._call("GET", f"jobs/ingest/{job_id}")
            if info.get("state") in FINISHED:
                return info
            if time.monotonic() > deadline:
                raise OrgUnavailable(f"bulk job {job_id} is still {info.get('state')} after {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 1.5, poll_max)

    # -- Pub/Sub API ----------------------------------------------------------------------------------------

    def _stub(self) -> Any:
        import grpc

        from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc

        if self._channel is None:
            roots = Path(self.ca_bundle).read_bytes() if self.ca_bundle else None
            self._channel = grpc.secure_channel(self.grpc_target, grpc.ssl_channel_credentials(roots))
        return pb_grpc.PubSubStub(self._channel)

    def grpc_metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        """The Pub/Sub call metadata: ``accesstoken``, ``instanceurl`` and (when known) ``tenantid``."""
        token = token or self.access_token()
        if not self.org_id and not self._org_id_asked:
            self._org_id_asked = True
            with contextlib.suppress(MiddlewareError):  # without it, the org tells the tenant from the token
                answer = self.get("/services/oauth2/userinfo")
                self.org_id = str(answer.get("organization_id") or "") or None if isinstance(answer, dict) else None
        metadata = [("accesstoken", token), ("instanceurl", self.url)]
        if self.org_id:
            metadata.append(("tenantid", self.org_id))
        return tuple(metadata)

    def pubsub_call(self, rpc: str, request: Any) -> Any:
        """A unary Pub/Sub call (GetTopic, GetSchema, Publish), with one token refresh on UNAUTHENTICATED."""
        import grpc

        for attempt in (1, 2):
            token = self.access_token()
            try:
                return getattr(self._stub(), rpc)(request, metadata=self.grpc_metadata(token), timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED and attempt == 1:
                    self.refresh(token)
                    continue
                raise grpc_failure(error, rpc) from None
        raise AssertionError("unreachable")

    def schema(self, schema_id: str) -> tuple[Any, dict[str, Any]]:
        """(fastavro parsed schema, schema JSON) of ``schema_id``, fetched once through GetSchema."""
        import fastavro

        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        if schema_id not in self._schemas:
            raw = json.loads(self.pubsub_call("GetSchema", pb.SchemaRequest(schema_id=schema_id)).schema_json)
            self._schemas[schema_id] = (fastavro.parse_schema(raw), raw)
        return self._schemas[schema_id]

    def topic(self, topic: str) -> Any:
        """GetTopic: the topic's ``TopicInfo`` (schema id, can_subscribe, can_publish)."""
        from interlink.pubsub._proto import pubsub_api_pb2 as pb

        return self.pubsub_call("GetTopic", pb.TopicRequest(topic_name=topic))

    def subscribe(self, topic: str, replay_preset: str = "latest", replay_id: bytes | None = None,
                  batch: int = 100, *, watchdog: float | None = 300.0, max_reconnects: int = 5) -> Any:
        """Subscribe to ``topic`` (``latest``, ``earliest``, or ``custom`` after ``replay_id``): an iterator of
        :class:`ReceivedEvent` with :meth:`Subscription.poll` for bounded waits. See :class:`Subscription`."""
        from interlink.middleware.sources.org import Subscription

        return Subscription(self, topic, replay_preset, replay_id, batch, watchdog=watchdog,
                            max_reconnects=max_reconnects)


def _bulk_errors(text: str) -> list[dict[str, Any]]:
    """``sf__Error`` (``CODE:message:fields --`` per error) as SaveResult-style errors."""
    errors = []
    for part in filter(None, (p.strip() for p in text.split("--"))):
        code, _, rest = part.partition(":")
        message, _, fields = rest.rpartition(":") if rest.count(":") else (rest, "", "")
        errors.append({"statusCode": code, "message": message or rest,
                       "fields": [f for f in fields.strip().split(",") if f]})
    return errors or [{"statusCode": "UNKNOWN_EXCEPTION", "message": text or "failed", "fields": []}]


def grpc_failure(error: Any, what: str) -> MiddlewareError:
    """A gRPC error as the middleware's kind: :class:`ReplayIdInvalid`, :class:`OrgAuthError`, other
    :class:`OrgRejected` (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT...) or :class:`OrgUnavailable`."""
    import grpc

    code = error.code()
    trailers = {str(k).lower(): str(v) for k, v in (error.trailing_metadata() or ())}
    error_code = trailers.get("error-code", code.name if code else "UNKNOWN")
    message = f"{what}: {code.name if code else 'UNKNOWN'} {error_code}: {error.details()}"
    if code == grpc.StatusCode.INVALID_ARGUMENT and ("replayid" in error_code.lower()
                                                     or "replay id" in str(error.details()).lower()):
        return ReplayIdInvalid(message, error_code=error_code)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return OrgAuthError(message, error_code=error_code)
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.OUT_OF_RANGE):
        return OrgRejected(message, error_code=error_code)
    return OrgUnavailable(message, error_code=error_code)


def __getattr__(name: str) -> Any:
    """The names of ``__all__`` not defined here, from :mod:`.connections` on first use (it builds on this one)."""
    if name in __all__:
        from interlink.middleware import connections

        return getattr(connections, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "Auth",
    "ClientCredentials",
    "Credentials",
    "JwtBearer",
    "OrgAuthError",
    "OrgConnection",
    "OrgRejected",
    "OrgUnavailable",
    "RecordResult",
    "ReplayIdInvalid",
    "StaticToken",
    "UsernamePassword",
    "auth_from_config",
    "config_error",
    "connection_for",
    "connection_from_config",
    "format_value",
    "grpc_failure",
    "require_connection",
    "resolve_connections",
]
