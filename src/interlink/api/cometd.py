"""The legacy Streaming API: Bayeux 1.0 over long polling at ``/cometd/{version}``, with the replay extension.

Existing empApi-style and CometD clients subscribe to platform events (``/event/X__e``), change events
(``/data/ChangeEvents``, ``/data/AccountChangeEvent``) and custom channels (``/data/X__chn``) and get JSON:
``{"channel", "data": {"schema", "payload", "event": {"replayId", ...}}}``. Replay follows the platform's
extension: on ``/meta/subscribe``, ``ext.replay`` maps the channel to ``-1`` (new events), ``-2`` (everything
kept) or a replay id to resume after. New integrations should use the Pub/Sub API; this surface exists so old
clients keep working (see docs/migration.md).

Clients live in this process's memory, as on the platform's app servers: a multi-process deployment needs
sticky routing for ``/cometd`` (the same client id must reach the same process), or clients re-handshake
after ``403::Unknown client``, which every CometD client does by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api.http import JSON_TYPE, client_ip
from interlink.bus.view import EventJson
from interlink.errors import InterlinkError

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.bus.backend import Cursor
    from interlink.bus.bus import Topic
    from interlink.bus.model import StoredEvent
    from interlink.security.tokens import Session

log = logging.getLogger(__name__)

NEW_EVENTS = -1
ALL_EVENTS = -2
HOLD_MS = 110_000  # the platform's long-poll timeout (its socket timeout is 110 s)
MAX_CLIENTS = 2_000  # concurrent CometD clients of an org (the platform's Performance / Unlimited allocation)
BATCH = 100  # events per channel per connect answer
MAX_BODY = 1024 * 1024
_REPLAY_ERROR = ("400::The replayId {{{replay}}} you provided was invalid.  Please provide a valid ID, -2 to replay "
                 "all events, or -1 to replay only new events.")


@dataclass
class _Subscription:
    topic: Topic
    cursor: Cursor


@dataclass
class _Client:
    id: str
    user_id: str
    token_hash: str
    seen: float = field(default_factory=time.monotonic)
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    connected: bool = False
    # A newer /meta/connect ends the one being held (a client holds one poll at a time).
    holding: asyncio.Event | None = None


class CometdServer:
    """Bayeux clients of one org and the messages they exchange."""

    def __init__(self, org: Org, *, hold_ms: int = HOLD_MS, max_clients: int = MAX_CLIENTS) -> None:
        self.org = org
        self.hold_ms = hold_ms
        self.max_clients = max_clients
        self.clients: dict[str, _Client] = {}
        self.view = EventJson(org.bus)

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        version = request.path_params["version"]
        if not _version_ok(self.org, version):
            return _reply([{"channel": "/meta/unknown", "successful": False,
                            "error": f"404::API version {version} is not supported by /cometd"}], 404)
        body = await request.body()
        if len(body) > MAX_BODY:
            return _reply([{"channel": "/meta/unknown", "successful": False,
                            "error": "413::The request body is too large"}], 413)
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        messages = [parsed] if isinstance(parsed, dict) else parsed
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _reply([{"channel": "/meta/unknown", "successful": False,
                            "error": "400::The request body is not a Bayeux message or an array of them"}], 400)
        session = self._session(request)
        draining: asyncio.Event | None = getattr(request.app.state, "draining", None)
        replies: list[dict[str, Any]] = []
        for message in messages:
            replies.extend(await self._handle(message, session, draining))
        return _reply(replies, 200)

    def _session(self, request: Request) -> Session | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("oauth", "bearer") or not token.strip():
            return None
        try:
            return self.org.tokens.validate(token.strip(), client_ip(request))
        except InterlinkError:
            return None

    # -- Bayeux ----------------------------------------------------------------------------------------------

    async def _handle(self, message: dict[str, Any], session: Session | None,
                      draining: asyncio.Event | None) -> list[dict[str, Any]]:
        channel = message.get("channel")
        reply: dict[str, Any] = {"channel": channel if isinstance(channel, str) else "/meta/unknown"}
        if "id" in message:
            reply["id"] = message["id"]
        if channel == "/meta/handshake":
            return [self._handshake(reply, session)]
        client = self.clients.get(str(message.get("clientId", "")))
        if client is None or session is None or session.token_hash != client.token_hash:
            if client is not None and session is None:  # the session ended: the client must authenticate again
                self._drop(client)
            reply.update(successful=False, error="403::Unknown client",
                         advice={"reconnect": "handshake", "interval": 0})
            return [reply]
        client.seen = time.monotonic()
        reply["clientId"] = client.id
        if channel == "/meta/connect":
            return await self._connect(client, message, reply, draining)
        if channel == "/meta/subscribe":
            return [await self._subscribe(client, message, reply, session)]
        if channel == "/meta/unsubscribe":
            return [await self._unsubscribe(client, message, reply)]
        if channel == "/meta/disconnect":
            self._drop(client)
            reply["successful"] = True
            return [reply]
        if isinstance(channel, str) and not channel.startswith("/meta/"):
            reply.update(successful=False, error=f"403::Publishing to {channel} is not supported over the "
                                                 "Streaming API; publish platform events with REST or Pub/Sub")
            return [reply]
        reply.update(successful=False, error=f"400::Unknown meta channel {channel}")
        return [reply]

    def _handshake(self, reply: dict[str, Any], session: Session | None) -> dict[str, Any]:
        reply["ext"] = {"replay": True, "payload.format": True}
        if session is None:
            reply["ext"]["sfdc"] = {"failureReason": "401::Authentication invalid"}
            reply.update(successful=False, error="403::Handshake denied", advice={"reconnect": "none"})
            return reply
        self._expire()
        if len(self.clients) >= self.max_clients:
            reply.update(successful=False, error=f"503::Too many clients ({self.max_clients}); try again later",
                         advice={"reconnect": "handshake", "interval": 5_000})
            return reply
        client = _Client(secrets.token_urlsafe(18), session.user_id, session.token_hash)
        self.clients[client.id] = client
        reply.update(clientId=client.id, version="1.0", minimumVersion="1.0", successful=True,
                     supportedConnectionTypes=["long-polling"],
                     advice={"interval": 0, "timeout": self.hold_ms, "reconnect": "retry"})
        return reply

    async def _subscribe(self, client: _Client, message: dict[str, Any], reply: dict[str, Any],
                         session: Session) -> dict[str, Any]:
        name = message.get("subscription")
        reply["subscription"] = name
        if not isinstance(name, str) or not name.startswith("/"):
            reply.update(successful=False, error="400::The subscription must be a channel name")
            return reply
        try:
            topic = self.org.bus.topic(name)
        except InterlinkError:
            reply.update(successful=False,
                         error=f"400::The channel you requested to subscribe to does not exist {{{name}}}")
            return reply
        try:
            self.org.bus.check_access(topic, self.org.access.for_user(session.user_id))
        except InterlinkError as error:
            reply.update(successful=False, error=f"403::{error.message}")
            return reply
        ext = message.get("ext")
        replay_map = ext.get("replay") if isinstance(ext, dict) else None
        wanted = replay_map.get(name, NEW_EVENTS) if isinstance(replay_map, dict) else NEW_EVENTS
        try:
            replay = int(wanted)
        except (TypeError, ValueError):
            reply.update(successful=False, error=_REPLAY_ERROR.format(replay=wanted))
            return reply
        bounds = self.org.bus.backend.bounds(topic.selector)
        if replay == NEW_EVENTS:
            after = bounds.head
        elif replay == ALL_EVENTS:
            after = bounds.floor
        elif bounds.floor <= replay <= bounds.head:
            after = replay
        else:
            reply.update(successful=False, error=_REPLAY_ERROR.format(replay=replay))
            return reply
        previous = client.subscriptions.pop(name, None)
        if previous is not None:
            await previous.cursor.close()
        client.subscriptions[name] = _Subscription(topic, self.org.bus.cursor(topic, after))
        reply["successful"] = True
        return reply

    async def _unsubscribe(self, client: _Client, message: dict[str, Any],
                           reply: dict[str, Any]) -> dict[str, Any]:
        name = message.get("subscription")
        reply["subscription"] = name
        subscription = client.subscriptions.pop(name, None) if isinstance(name, str) else None
        if subscription is None:
            reply.update(successful=False, error=f"400::Not subscribed to {name}")
            return reply
        await subscription.cursor.close()
        reply["successful"] = True
        return reply

    async def _connect(self, client: _Client, message: dict[str, Any], reply: dict[str, Any],
                       draining: asyncio.Event | None) -> list[dict[str, Any]]:
        hold_ms = self.hold_ms
        advice = message.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("timeout"), int | float):
            hold_ms = max(0, min(hold_ms, int(advice["timeout"])))
        if not client.connected:  # the first connect after a handshake answers at once
            client.connected = True
            hold_ms = 0
        if client.holding is not None:
            client.holding.set()
        released = asyncio.Event()
        client.holding = released
        try:
            events = await self._collect(client, hold_ms / 1000, released, draining)
        finally:
            if client.holding is released:
                client.holding = None
        client.seen = time.monotonic()
        self.org.metrics.events_delivered("cometd", len(events))
        reply.update(successful=True, advice={"interval": 0, "timeout": self.hold_ms, "reconnect": "retry"})
        return [*events, reply]

    async def _collect(self, client: _Client, wait: float, released: asyncio.Event,
                       draining: asyncio.Event | None) -> list[dict[str, Any]]:
        """Events of every subscription, waiting up to ``wait`` seconds for the first one."""
        found = await self._read(client, 0)
        if found or wait <= 0 or not client.subscriptions:
            if not found and wait > 0:  # nothing to wait on: still hold, so clients do not spin
                await _first(released.wait(), draining.wait() if draining else None, timeout=wait)
            return found
        subscriptions = list(client.subscriptions.items())
        tasks = {asyncio.ensure_future(sub.cursor.fetch(BATCH, wait)): name for name, sub in subscriptions}
        stoppers = [asyncio.ensure_future(released.wait())]
        if draining is not None:
            stoppers.append(asyncio.ensure_future(draining.wait()))
        try:
            await asyncio.wait([*tasks, *stoppers], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, *stoppers]:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, *stoppers, return_exceptions=True)
        messages: list[dict[str, Any]] = []
        for task, name in tasks.items():
            if task.cancelled() or task.exception() is not None:
                continue  # a cancelled fetch did not move its cursor
            subscription = client.subscriptions.get(name)
            if subscription is not None:
                messages.extend(self._message(name, event) for event in task.result())
        return messages

    async def _read(self, client: _Client, wait: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for name, subscription in list(client.subscriptions.items()):
            messages.extend(self._message(name, event) for event in await subscription.cursor.fetch(BATCH, wait))
        return messages

    def _message(self, channel: str, event: StoredEvent) -> dict[str, Any]:
        try:
            payload = self.view.payload(event)
        except InterlinkError as error:  # an event whose schema is gone: say so instead of dropping it
            payload = {"error": error.message}
        marker: dict[str, Any] = {"replayId": event.replay_id}
        header = payload.get("ChangeEventHeader")
        if isinstance(header, dict):  # the Streaming API sends changedFields only (no nulled or diff fields)
            header.pop("nulledFields", None)
            header.pop("diffFields", None)
        else:
            marker["EventUuid"] = payload.pop("EventUuid", event.event_uuid)
        return {"channel": channel, "data": {"schema": event.schema_id, "payload": payload, "event": marker}}

    # -- housekeeping ----------------------------------------------------------------------------------------

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.id, None)
        if client.holding is not None:
            client.holding.set()
        for subscription in client.subscriptions.values():
            with contextlib.suppress(Exception):
                task = asyncio.ensure_future(subscription.cursor.close())
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        client.subscriptions.clear()

    def _expire(self) -> None:
        """Forget clients that stopped polling (two poll timeouts and the reconnect allowance)."""
        cutoff = time.monotonic() - (2 * self.hold_ms / 1000 + 40)
        for client in [c for c in self.clients.values() if c.seen < cutoff and c.holding is None]:
            self._drop(client)


async def _first(*awaitables: Any, timeout: float) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables if a is not None]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _version_ok(org: Org, version: str) -> bool:
    try:
        number = float(version)
    except ValueError:
        return False
    return float(org.settings.api_min_version) <= number <= float(org.settings.api_max_version)


def _reply(messages: list[dict[str, Any]], status: int) -> Response:
    return Response(orjson.dumps(messages), status_code=status, media_type=JSON_TYPE)


def routes(org: Org) -> list[Route]:
    server = CometdServer(org)
    org_routes = [
        Route("/cometd/{version}", server.endpoint, methods=["POST"]),
        # CometD clients append the message type to the URL by default (/cometd/58.0/handshake, .../connect).
        Route("/cometd/{version}/{kind:path}", server.endpoint, methods=["POST"]),
    ]
    return org_routes
