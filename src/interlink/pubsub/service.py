"""``eventbus.v1.PubSub``: GetTopic, GetSchema, Publish, PublishStream, Subscribe and ManagedSubscribe.

A thin adapter: authentication from call metadata (``accesstoken``, ``tenantid``, ``instanceurl``; keys
read case-insensitively), then the bus does the work. Errors end the call with a gRPC status whose
details end in ``rpcId: <id>`` and trailers ``error-code`` (the platform's code string) and ``rpc-id``.

Subscriptions are pull-based: every FetchRequest adds its ``num_requested`` to the credit (at most 100
outstanding); events go out in FetchResponses of at most the credit, each reporting the credit still
owed (``pending_num_requested``); an idle subscription gets an empty FetchResponse carrying
``latest_replay_id`` every ``keepalive_seconds``. Replay options count only in the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from sqlalchemy import select, update

from interlink import ids
from interlink.bus.bus import CUSTOM, EARLIEST, LATEST, Topic
from interlink.bus.model import decode_replay_id, encode_replay_id
from interlink.errors import (
    ConfigurationError,
    InterlinkError,
    InvalidSession,
    PubSubAuthError,
    PubSubInvalidRequest,
    SchemaNotFound,
    SubscriptionNotFound,
)
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.security.tokens import Session
from interlink.store.database import utcnow
from interlink.store.failures import store_failure

if TYPE_CHECKING:
    from interlink.app.org import Org

log = logging.getLogger(__name__)

MAX_CREDIT = 100
MAX_EVENTS_PER_PUBLISH = 200
MAX_PUBLISH_BYTES = 3 * 1024 * 1024
PUBLISH_STREAM_IDLE_SECONDS = 70.0
#: How often an open subscription checks that its session still counts (not revoked or expired, the user active,
#: inside their login hours and IP ranges) and that the user may still read the topic.
SESSION_CHECK_SECONDS = 30.0


@dataclass
class _Credit:
    """Events the client has asked for and not yet received, and what woke the sender."""

    outstanding: int
    signal: asyncio.Event
    failure: InterlinkError | None = None
    finished: bool = False

    def add(self, requested: int) -> None:
        if requested < 0:
            self.failure = PubSubInvalidRequest("num_requested must not be negative")
        self.outstanding = min(self.outstanding + max(requested, 0), MAX_CREDIT)
        self.signal.set()


class PubSubService(pb_grpc.PubSubServicer):
    def __init__(self, org: Org, *, keepalive_seconds: float = 270.0) -> None:
        self.org = org
        self.bus = org.bus
        self.keepalive_seconds = keepalive_seconds

    # -- plumbing --------------------------------------------------------------------------------------------

    def _session(self, context: grpc.aio.ServicerContext) -> Session:
        metadata = {key.lower(): value for key, value in (context.invocation_metadata() or ())}
        token = metadata.get("accesstoken")
        if not token:
            raise PubSubAuthError("Missing the accesstoken header in the call metadata")
        try:
            session = self.org.tokens.validate(str(token), _peer_address(context))
        except InvalidSession:
            raise PubSubAuthError("The access token is invalid or expired") from None
        tenant = metadata.get("tenantid")
        if tenant and ids.normalize(str(tenant)) != ids.normalize(self.org.org_id):
            raise PubSubAuthError(f"The tenantid {tenant} does not match this org ({self.org.org_id})")
        return session

    async def _fail(self, context: grpc.aio.ServicerContext, error: InterlinkError, rpc_id: str) -> None:
        code = getattr(grpc.StatusCode, error.grpc_status, grpc.StatusCode.INTERNAL)
        await context.abort(code, f"{error.message} rpcId: {rpc_id}",
                            trailing_metadata=(("error-code", error.error_code), ("rpc-id", rpc_id)))

    async def _guard(self, context: grpc.aio.ServicerContext, rpc_id: str, work: Callable[[], Any]) -> Any:
        try:
            return await work()
        except Exception as error:
            await self._fail(context, _wire_error(error), rpc_id)

    # -- unary calls -----------------------------------------------------------------------------------------

    async def GetTopic(self, request: pb.TopicRequest, context: grpc.aio.ServicerContext) -> pb.TopicInfo:
        rpc_id = str(uuid.uuid4())

        async def work() -> pb.TopicInfo:
            session = self._session(context)
            topic = self.bus.topic(request.topic_name)
            access = self.org.access.for_user(session.user_id)
            return pb.TopicInfo(topic_name=topic.name, tenant_guid=self.org.org_id,
                                can_publish=topic.can_publish and _allowed(self.bus, topic, access, publish=True),
                                can_subscribe=_allowed(self.bus, topic, access), schema_id=topic.schema_id,
                                rpc_id=rpc_id)

        return await self._guard(context, rpc_id, work)  # type: ignore[no-any-return]

    async def GetSchema(self, request: pb.SchemaRequest, context: grpc.aio.ServicerContext) -> pb.SchemaInfo:
        rpc_id = str(uuid.uuid4())

        async def work() -> pb.SchemaInfo:
            self._session(context)
            text = self.bus.registry.json_of(request.schema_id) if request.schema_id else None
            if text is None:
                raise SchemaNotFound(f"Schema not found: {request.schema_id!r}")
            return pb.SchemaInfo(schema_json=text, schema_id=request.schema_id, rpc_id=rpc_id)

        return await self._guard(context, rpc_id, work)  # type: ignore[no-any-return]

    async def Publish(self, request: pb.PublishRequest, context: grpc.aio.ServicerContext) -> pb.PublishResponse:
        rpc_id = str(uuid.uuid4())

        async def work() -> pb.PublishResponse:
            session = self._session(context)
            return await self._publish(request, session, rpc_id)

        return await self._guard(context, rpc_id, work)  # type: ignore[no-any-return]

    async def _publish(self, request: pb.PublishRequest, session: Session, rpc_id: str,
                       topic_name: str | None = None) -> pb.PublishResponse:
        name = request.topic_name or topic_name or ""
        if len(request.events) > MAX_EVENTS_PER_PUBLISH:
            raise PubSubInvalidRequest(f"A PublishRequest carries at most {MAX_EVENTS_PER_PUBLISH} events; "
                                       f"this one has {len(request.events)}")
        size = sum(len(e.payload) for e in request.events)
        if size > MAX_PUBLISH_BYTES:
            raise PubSubInvalidRequest(f"A PublishRequest carries at most 3 MB of events; this one has {size} bytes")
        if name:
            self.bus.check_access(self.bus.topic(name), self.org.access.for_user(session.user_id), publish=True)
        topic, outcomes = await self.bus.publish_encoded(
            name, [(e.id, e.schema_id, e.payload) for e in request.events], session.user_id)
        results = []
        for outcome in outcomes:
            if outcome.replay_id is not None:
                results.append(pb.PublishResult(replay_id=encode_replay_id(outcome.replay_id),
                                                correlation_key=outcome.correlation_key))
            else:
                results.append(pb.PublishResult(error=pb.Error(code=pb.PUBLISH, msg=outcome.error or "not published"),
                                                correlation_key=outcome.correlation_key))
        return pb.PublishResponse(results=results, schema_id=topic.schema_id, rpc_id=rpc_id)

    # -- streams ---------------------------------------------------------------------------------------------

    async def PublishStream(self, request_iterator: AsyncIterator[pb.PublishRequest],
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PublishResponse]:
        rpc_id = str(uuid.uuid4())
        try:
            session = self._session(context)
            topic_name: str | None = None
            iterator = request_iterator.__aiter__()
            while True:
                try:
                    request = await asyncio.wait_for(iterator.__anext__(), PUBLISH_STREAM_IDLE_SECONDS)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise PubSubInvalidRequest("No PublishRequest for 70 seconds: the stream is closed") from None
                if topic_name is None:
                    if not request.topic_name:
                        raise PubSubInvalidRequest("The first PublishRequest of a stream must name the topic")
                    topic_name = request.topic_name
                elif request.topic_name and request.topic_name != topic_name:
                    raise PubSubInvalidRequest(f"This stream publishes to {topic_name}, not {request.topic_name}")
                yield await self._publish(request, session, rpc_id, topic_name)
        except Exception as error:
            await self._fail(context, _wire_error(error), rpc_id)

    async def Subscribe(self, request_iterator: AsyncIterator[pb.FetchRequest],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.FetchResponse]:
        rpc_id = str(uuid.uuid4())
        try:
            session = self._session(context)
            iterator = request_iterator.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return
            if not first.topic_name:
                raise PubSubInvalidRequest("The first FetchRequest must name the topic")
            topic = self.bus.topic(first.topic_name)
            self.bus.check_access(topic, self.org.access.for_user(session.user_id))
            preset = int(first.replay_preset)
            if preset not in (LATEST, EARLIEST, CUSTOM):
                raise PubSubInvalidRequest(f"Unknown replay preset {preset}")
            after = self.bus.start_after(topic, preset, bytes(first.replay_id))
            credit = _Credit(0, asyncio.Event())
            credit.add(first.num_requested)

            async def more(request: pb.FetchRequest) -> None:
                if request.topic_name and request.topic_name != topic.name:
                    credit.failure = PubSubInvalidRequest(
                        f"This subscription reads {topic.name}; a FetchRequest named {request.topic_name}")
                credit.add(request.num_requested)

            async for events, latest, pending in self._deliver(topic, after, iterator, credit, more,
                                                               recheck=self._rechecker(context, topic)):
                yield pb.FetchResponse(events=events, latest_replay_id=latest, rpc_id=rpc_id,
                                       pending_num_requested=pending)
        except Exception as error:
            await self._fail(context, _wire_error(error), rpc_id)

    async def ManagedSubscribe(self, request_iterator: AsyncIterator[pb.ManagedFetchRequest],
                               context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ManagedFetchResponse]:
        rpc_id = str(uuid.uuid4())
        try:
            session = self._session(context)
            iterator = request_iterator.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return
            subscription = self._managed_subscription(first.subscription_id, first.developer_name)
            topic = self.bus.topic(subscription.topic)
            self.bus.check_access(topic, self.org.access.for_user(session.user_id))
            if subscription.committed_replay_id:
                after = self.bus.start_after(topic, CUSTOM, subscription.committed_replay_id)
            else:
                after = self.bus.start_after(topic, EARLIEST if subscription.default_replay == "EARLIEST" else LATEST)
            credit = _Credit(0, asyncio.Event())
            commits: list[pb.CommitReplayResponse] = []

            async def handle(request: pb.ManagedFetchRequest) -> None:
                if request.HasField("commit_replay_id_request"):
                    commits.append(self._commit(subscription.id, request.commit_replay_id_request))
                credit.add(request.num_requested)

            await handle(first)
            async for events, latest, pending in self._deliver(topic, after, iterator, credit, handle,
                                                               flush=lambda: bool(commits),
                                                               recheck=self._rechecker(context, topic)):
                commit = commits.pop() if commits else None
                commits.clear()  # several commits coalesce into one response reflecting the last
                response = pb.ManagedFetchResponse(events=events, latest_replay_id=latest, rpc_id=rpc_id,
                                                   pending_num_requested=pending)
                if commit is not None:
                    response.commit_response.CopyFrom(commit)
                yield response
        except Exception as error:
            await self._fail(context, _wire_error(error), rpc_id)

    def _rechecker(self, context: grpc.aio.ServicerContext, topic: Topic) -> Callable[[], None]:
        """What an open subscription checks now and then: its session, then the user's read access to ``topic``
        (a revoked token, a deactivated user or a permission taken away ends the stream with the call's error)."""

        def recheck() -> None:
            session = self._session(context)
            user = self.org.directory.user_by_id(session.user_id)  # the token check may be cached a little
            if user is None or not user.is_active:
                raise PubSubAuthError("The access token is invalid or expired")
            self.bus.check_access(topic, self.org.access.for_user(session.user_id))

        return recheck

    async def _deliver(self, topic: Topic, after: int, iterator: AsyncIterator[Any], credit: _Credit,
                       on_request: Callable[[Any], Any], flush: Callable[[], bool] = lambda: False,
                       recheck: Callable[[], None] = lambda: None,
                       ) -> AsyncIterator[tuple[list[pb.ConsumerEvent], bytes, int]]:
        """The subscription loop shared by Subscribe and ManagedSubscribe; ``recheck`` runs every
        :data:`SESSION_CHECK_SECONDS` and ends the stream by raising."""

        async def read_requests() -> None:
            try:
                async for request in iterator:
                    await on_request(request)
            except Exception as exc:  # the client went away; the sender notices through `finished`
                log.debug("subscription request stream ended: %s", exc)
            credit.finished = True
            credit.signal.set()

        reader = asyncio.create_task(read_requests())
        cursor = self.bus.cursor(topic, after)
        idle_since = checked = time.monotonic()
        try:
            while True:
                if credit.failure is not None:
                    raise credit.failure
                if time.monotonic() - checked >= SESSION_CHECK_SECONDS:
                    recheck()
                    checked = time.monotonic()
                if flush():
                    yield [], encode_replay_id(cursor.position), credit.outstanding
                if credit.outstanding > 0:
                    stored = await cursor.fetch(credit.outstanding, 0)
                    if not stored:
                        stored = await self._fetch_or_wake(cursor, credit)
                    if stored:
                        credit.outstanding -= len(stored)
                        self.bus.deliveries.add(len(stored))
                        self.org.metrics.events_delivered("pubsub", len(stored))
                        events = [pb.ConsumerEvent(event=pb.ProducerEvent(id=e.event_uuid, schema_id=e.schema_id,
                                                                          payload=e.payload),
                                                   replay_id=encode_replay_id(e.replay_id)) for e in stored]
                        yield events, encode_replay_id(stored[-1].replay_id), credit.outstanding
                        idle_since = time.monotonic()
                        continue
                else:
                    if credit.finished:
                        return
                    credit.signal.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(credit.signal.wait(), min(1.0, self.keepalive_seconds))
                if time.monotonic() - idle_since >= self.keepalive_seconds:
                    yield [], encode_replay_id(cursor.position), credit.outstanding
                    idle_since = time.monotonic()
        finally:
            reader.cancel()
            await cursor.close()

    async def _fetch_or_wake(self, cursor: Any, credit: _Credit) -> list[Any]:
        """Wait for events, but give up as soon as the client sends a request (a commit, more credit, an error)."""
        credit.signal.clear()
        fetch = asyncio.ensure_future(cursor.fetch(credit.outstanding, min(1.0, self.keepalive_seconds)))
        woken = asyncio.ensure_future(credit.signal.wait())
        try:
            await asyncio.wait((fetch, woken), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the call is cancelled (the client went away): its cursor closes, so must the fetch
            fetch.cancel()
            fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
            raise
        finally:
            woken.cancel()
        if fetch.done():
            return fetch.result()  # type: ignore[no-any-return]
        fetch.cancel()
        try:
            # A fetch that finished while being cancelled (asyncio.wait_for may swallow the cancel) has moved
            # its cursor: its events must be delivered, not dropped.
            return await fetch  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            return []

    # -- managed subscriptions -------------------------------------------------------------------------------

    def _managed_subscription(self, subscription_id: str, developer_name: str) -> Any:
        table = self.org.store.system["il_managed_subscription"]
        if subscription_id:
            where = table.c.id == (ids.normalize(subscription_id) or subscription_id)
        elif developer_name:
            where = table.c.developer_name == developer_name
        else:
            raise PubSubInvalidRequest("ManagedFetchRequest needs subscription_id or developer_name")
        with self.org.store.read() as conn:
            row = conn.execute(select(table).where(where)).first()
        if row is None:
            raise SubscriptionNotFound(f"No managed event subscription {subscription_id or developer_name!r}; "
                                       "create it with `interlink events subscription create`")
        return row

    def _commit(self, subscription_id: str, request: pb.CommitReplayRequest) -> pb.CommitReplayResponse:
        response = pb.CommitReplayResponse(commit_request_id=request.commit_request_id, replay_id=request.replay_id,
                                           process_time=int(time.time() * 1000))
        try:
            decode_replay_id(bytes(request.replay_id))
        except InterlinkError as error:
            response.error.CopyFrom(pb.Error(code=pb.COMMIT, msg=error.message))
            return response
        table = self.org.store.system["il_managed_subscription"]
        with self.org.store.write() as conn:
            conn.execute(update(table).where(table.c.id == subscription_id)
                         .values(committed_replay_id=bytes(request.replay_id), updated_at=utcnow()))
        return response


def _wire_error(error: Exception) -> InterlinkError:
    """What a call ends with: an InterlinkError as it is, a database outage or full disk as its wire error
    (UNAVAILABLE, RESOURCE_EXHAUSTED); anything else is raised again (gRPC reports it as INTERNAL)."""
    if isinstance(error, InterlinkError):
        return error
    failure = store_failure(error)
    if failure is None:
        raise error
    log.warning("Pub/Sub call failed: %s (%s)", failure.error_code, type(error).__name__)
    return failure


def _allowed(bus: Any, topic: Any, access: Any, *, publish: bool = False) -> bool:
    try:
        bus.check_access(topic, access, publish=publish)
    except InterlinkError:
        return False
    return True


async def start_server(org: Org, host: str, port: int, *, server_cert: bytes, server_key: bytes,
                       keepalive_seconds: float, reuse_port: bool = False) -> tuple[grpc.aio.Server, int]:
    """Start the Pub/Sub API on ``host:port`` (0 picks a free port) over TLS; returns (server, bound port).

    ``reuse_port``: one of several API processes sharing the port (the supervisor reserved it)."""
    # so_reuseport off unless shared: gRPC turns it on by default, and a second org would share the port silently.
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
                                      ("grpc.max_send_message_length", 16 * 1024 * 1024),
                                      ("grpc.so_reuseport", 1 if reuse_port else 0)],
                             interceptors=org.metrics.pubsub_interceptors())  # times each call (/metrics)
    pb_grpc.add_PubSubServicer_to_server(PubSubService(org, keepalive_seconds=keepalive_seconds), server)
    # gRPC's Python API has no protocol-floor option; its TLS stack refuses TLS 1.0/1.1 by default, like the
    # HTTPS port (tests/security/test_tls_versions.py proves it on a live server).
    credentials = grpc.ssl_server_credentials([(server_key, server_cert)])
    try:
        bound = server.add_secure_port(f"{host}:{port}", credentials)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ConfigurationError(f"cannot listen for the Pub/Sub API on {host}:{port}: the port is taken "
                                 "(choose another with --grpc-port, 0 for any free port, -1 for none)")
    await server.start()
    return server, bound


def _peer_address(context: grpc.aio.ServicerContext) -> str | None:
    """The client's address from gRPC's peer string (``ipv4:10.0.0.5:53012``, ``ipv6:[::1]:53012``)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None
