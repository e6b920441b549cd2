"""``interlink events`` and ``interlink cdc``: publish, read and list events, and choose what captures changes.

Like the rest of the CLI, heavy modules are imported inside the commands so ``--help`` stays instant. The
commands open the org in-process (no server needed) and go through the same layers a server does: publishing
is ``records.create`` as the admin user, reading is the bus's replay positions and cursors.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.bus.bus import Topic
    from interlink.bus.model import StoredEvent

# The sub-apps exist before this module imports interlink.cli.main: run as ``python -m interlink.cli.main``,
# the main module is ``__main__``, so importing ``interlink.cli.main`` here loads a second copy of it, which
# in turn imports this (half-loaded) module for these names.
events_app = typer.Typer(help="Publish, read and list events on the org's event bus.", no_args_is_help=True)
subscription_app = typer.Typer(help="Managed event subscriptions (the Pub/Sub API's ManagedSubscribe).",
                               no_args_is_help=True)
cdc_app = typer.Typer(help="Choose which objects' changes become change events (Change Data Capture).",
                      no_args_is_help=True)
events_app.add_typer(subscription_app, name="subscription")

from interlink.cli.main import DataDir, ProjectDir, StoreUrl, _err, _existing_org  # noqa: E402

Bus = Annotated[str | None, typer.Option("--bus", envvar="INTERLINK_BUS",
                                         help="Event bus: nats://host:port, or empty for the embedded SQLite log.")]
TopicArg = Annotated[str, typer.Argument(
    metavar="TOPIC", help="/event/Name__e, /data/ChangeEvents, /data/AccountChangeEvent or /data/Name__chn "
                          "(the /event/ or /data/ prefix may be left out).")]
ChannelOpt = Annotated[str, typer.Option("--channel", help="ChangeEvents, or a custom channel Name__chn.")]

_DEVELOPER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FOLLOW_BATCH = 100
_READ_BATCH = 500


def _org(data_dir: Path | None, project_dir: Path | None, store: str | None, bus: str | None) -> Any:
    return _existing_org(data_dir, store, project_dir=project_dir, bus=bus)


def _say(message: str) -> None:
    """A message for people on stderr, printed as is (no rich markup in it)."""
    from rich.markup import escape

    _err(escape(message))


def topic_name(raw: str) -> str:
    """``Order_Request__e`` -> ``/event/Order_Request__e``; other bare names are ``/data/`` channels."""
    text = raw.strip()
    if text.startswith("/"):
        return text
    return f"/event/{text}" if text.endswith("__e") else f"/data/{text}"


def _resolve(org: Org, raw: str) -> Topic:
    """The topic called ``raw`` (channel names are case-sensitive, as on the platform)."""
    return org.bus.topic(topic_name(raw))


def _replay_hex(replay_id: int) -> str:
    from interlink.bus.model import encode_replay_id

    return encode_replay_id(replay_id).hex()


def _iso_ms(epoch_ms: int) -> str:
    from interlink.bus.avro import iso_from_epoch_ms

    return iso_from_epoch_ms(epoch_ms)


# -- events publish -------------------------------------------------------------------------------------------


def _event_values(payload: str | None, file: Path | None) -> list[dict[str, Any]]:
    """The events' field values from the JSON argument or --file: an object, or a list of objects."""
    import json

    from interlink.errors import ConfigurationError

    if (payload is None) == (file is None):
        raise ConfigurationError("give the event's fields as a JSON argument or with --file PATH (one of them)")
    where = "the JSON argument"
    if file is not None:
        where = str(file)
        try:
            payload = file.read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {file}: {exc.strerror or exc}") from None
    assert payload is not None
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid JSON in {where}: {exc}") from None
    events = [data] if isinstance(data, dict) else data
    if not isinstance(events, list) or not events or not all(isinstance(item, dict) for item in events):
        raise ConfigurationError(f"{where} must be a JSON object of field values, or a non-empty list of them")
    return events


@events_app.command("publish")
def events_publish(
    event: Annotated[str, typer.Argument(metavar="TOPIC_OR_EVENT",
                                         help="The platform event: Order_Request__e or /event/Order_Request__e.")],
    payload: Annotated[str | None, typer.Argument(
        metavar="[JSON]", help='Field values, e.g. \'{"Amount__c": 10}\'; a list publishes several events.')] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the JSON from this file instead.")] = None,
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Publish platform events as the admin user; prints each event's uuid, id and replay id."""
    from interlink.errors import PubSubPermissionDenied

    values = _event_values(payload, file)
    with _org(data_dir, project_dir, store, bus) as org:
        topic = _resolve(org, event)
        if topic.event_object is None:
            raise PubSubPermissionDenied(f"Publishing to {topic.name} is not allowed: only platform event topics "
                                         "(/event/Name__e) accept published events")
        before = org.bus.latest_replay_id(topic)
        results = org.records.create(org.admin_context(), topic.event_object.name, values)
        published = [r.notices[0].message for r in results if not r.errors and r.notices]
        replay_ids = {e.event_uuid: e.replay_id for e in org.bus.read(topic, before, len(published) + 1000)}
        failed = 0
        for number, result in enumerate(results, 1):
            if result.errors:
                failed += 1
                for error in result.errors:
                    wire = error.to_save_error()
                    fields = f" (fields: {', '.join(wire['fields'])})" if wire["fields"] else ""
                    _say(f"error: event {number}: {wire['statusCode']}: {wire['message']}{fields}")
                continue
            event_uuid = result.notices[0].message if result.notices else ""
            line = f"event_uuid={event_uuid} id={result.id}"
            if event_uuid in replay_ids:
                line += f" replay_id={_replay_hex(replay_ids[event_uuid])}"
            typer.echo(line)
        if published:
            _say(f"Published {len(published)} event(s) to {topic.name}")
        if failed:
            raise typer.Exit(1)


# -- events tail ----------------------------------------------------------------------------------------------


class EventView:
    """Events as people (and scripts) read them: names instead of bitmaps, ISO dates instead of epoch numbers."""

    def __init__(self, org: Org) -> None:
        from interlink.bus.view import EventJson

        self.org = org
        self.json = EventJson(org.bus)

    def payload(self, event: StoredEvent) -> dict[str, Any]:
        return self.json.payload(event)

    def line(self, event: StoredEvent) -> dict[str, Any]:
        """The ``--json`` object of an event."""
        from interlink.errors import InterlinkError

        item: dict[str, Any] = {"replay_id": _replay_hex(event.replay_id), "topic": event.topic,
                                "event_uuid": event.event_uuid, "schema_id": event.schema_id,
                                "created_date": _iso_ms(event.created_ms)}
        try:
            item["payload"] = self.payload(event)
        except InterlinkError as error:
            item["payload"] = None
            item["error"] = error.message
        return item

    def text(self, event: StoredEvent) -> str:
        """An event for people: a summary line, then its fields indented."""
        item = self.line(event)
        first = f"{item['replay_id']}  {event.topic}  {item['created_date']}"
        payload = item["payload"]
        if payload is None:
            return f"{first}  {event.event_uuid}\n  (cannot decode: {item['error']})"
        lines: list[str] = []
        header = payload.pop("ChangeEventHeader", None)
        if header is None:
            first += f"  {event.event_uuid}"
            payload = {k: v for k, v in payload.items() if v is not None and k != "EventUuid"}
        else:
            first += f"  {header['changeType']} {header['entityName']} {', '.join(header['recordIds'])}"
            for key in ("changedFields", "nulledFields"):
                if header[key]:
                    lines.append(f"  {key}: {', '.join(header[key])}")
        lines += [f"  {name}: {_shown(value)}" for name, value in payload.items()]
        return "\n".join([first, *lines])


def _shown(value: Any) -> str:
    import json

    if isinstance(value, str) and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _start(org: Org, topic: Topic, replay: str) -> tuple[int, bool]:
    """(replay id to read after, whether the position is LATEST) for a --replay value."""
    from interlink.bus.bus import CUSTOM, EARLIEST, LATEST
    from interlink.errors import ReplayIdCorrupted

    chosen = replay.strip().lower()
    if chosen == "latest":
        return org.bus.start_after(topic, LATEST), True
    if chosen == "earliest":
        return org.bus.start_after(topic, EARLIEST), False
    try:
        raw = bytes.fromhex(chosen.removeprefix("0x"))
    except ValueError:
        raise ReplayIdCorrupted(f"The Replay ID is corrupted or not valid for this topic: {replay!r} is not "
                                "latest, earliest or a replay id in hex") from None
    return org.bus.start_after(topic, CUSTOM, raw), False


@events_app.command("tail")
def events_tail(
    topic: TopicArg,
    replay: Annotated[str, typer.Option(
        "--replay", help="Where to start: latest, earliest, or after a replay id (hex, as tail prints it).")]
    = "latest",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Stop after this many events.")] = None,
    follow: Annotated[bool | None, typer.Option(
        "--follow/--no-follow", help="Keep printing new events (Ctrl-C stops); the default with --replay latest.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Print a topic's events, decoded: from a replay position, then (with --follow) as they arrive."""
    import asyncio
    import json

    with _org(data_dir, project_dir, store, bus) as org:
        resolved = _resolve(org, topic)
        after, latest = _start(org, resolved, replay)
        view = EventView(org)

        def show(event: StoredEvent) -> None:
            text = json.dumps(view.line(event), ensure_ascii=False) if as_json else view.text(event)
            typer.echo(text)
            sys.stdout.flush()

        try:
            if follow if follow is not None else latest:
                _say(f"Following {resolved.name} after replay {_replay_hex(after)} (Ctrl-C to stop)")
                with contextlib.suppress(KeyboardInterrupt):
                    asyncio.run(_follow(org, resolved, after, limit, show))
            else:
                _drain(org, resolved, after, limit, show)
        except BrokenPipeError:  # `interlink events tail ... | head`: stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _drain(org: Org, topic: Topic, after: int, limit: int | None, show: Any) -> None:
    """Print the events after ``after`` that are there now, then return."""
    head = org.bus.latest_replay_id(topic)
    printed = 0
    while limit is None or printed < limit:
        wanted = _READ_BATCH if limit is None else min(_READ_BATCH, limit - printed)
        batch = [e for e in org.bus.read(topic, after, wanted) if e.replay_id <= head]
        if not batch:
            return
        for event in batch:
            show(event)
        printed += len(batch)
        after = batch[-1].replay_id


async def _follow(org: Org, topic: Topic, after: int, limit: int | None, show: Any) -> None:
    """Print events as the bus cursor delivers them, until ``limit``, Ctrl-C or SIGTERM."""
    import asyncio
    import signal

    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers off Unix
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    cursor = org.bus.cursor(topic, after)
    printed = 0
    try:
        while limit is None or printed < limit:
            wanted = _FOLLOW_BATCH if limit is None else min(_FOLLOW_BATCH, limit - printed)
            for event in await cursor.fetch(wanted, 5.0):
                show(event)
                printed += 1
    except asyncio.CancelledError:
        return  # SIGTERM or Ctrl-C: stop cleanly, the org is closed by the caller
    finally:
        await cursor.close()


# -- events topics --------------------------------------------------------------------------------------------


def _member_details(member: Any) -> str:
    details = [member.entity]
    if member.filter:
        details.append(f"filter: {member.filter}")
    if member.enriched_fields:
        details.append(f"enriched: {', '.join(member.enriched_fields)}")
    return details[0] + (f" ({'; '.join(details[1:])})" if len(details) > 1 else "")


def _wide_console() -> Any:
    from rich.console import Console

    return Console(width=max(160, Console().width))


@events_app.command("topics")
def events_topics(
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """List the org's topics: platform events, change event channels and custom channels."""
    from rich.table import Table

    from interlink.bus.channels import CHANGE_EVENTS

    with _org(data_dir, project_dir, store, bus) as org:
        table = Table("Topic", "Kind", "Details")
        for obj in sorted((o for o in org.store.schema if o.is_event), key=lambda o: o.name.lower()):
            fields = ", ".join(f.name for f in obj.fields if f.name.endswith("__c"))
            table.add_row(f"/event/{obj.name}", "platform event",
                          f"{obj.publish_behavior or 'PublishAfterCommit'}; fields: {fields or '-'}")
        channels = org.bus.channels.channels()
        members = sorted(channels.get(CHANGE_EVENTS.lower(), []), key=lambda m: m.entity.lower())
        table.add_row("/data/ChangeEvents", "change events (all)",
                      ", ".join(m.entity for m in members) or "no objects selected (interlink cdc enable)")
        for member in members:
            table.add_row(member.topic, "change event", _member_details(member))
        for key in sorted(channels):
            if key == CHANGE_EVENTS.lower() or not channels[key]:
                continue
            chosen = channels[key]
            table.add_row(f"/data/{chosen[0].channel}", "custom channel",
                          "\n".join(_member_details(m) for m in sorted(chosen, key=lambda m: m.entity.lower())))
        _wide_console().print(table)


# -- events subscription --------------------------------------------------------------------------------------


@subscription_app.command("create")
def subscription_create(
    name: Annotated[str, typer.Argument(help="Developer name, e.g. Order_Sync (letters, digits, underscores).")],
    topic: Annotated[str, typer.Option("--topic", help="The topic it reads, e.g. /event/Order_Request__e.")],
    replay: Annotated[str, typer.Option("--replay", help="Where a subscription with no committed replay id "
                                                         "starts: latest or earliest.")] = "latest",
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Create a managed event subscription; prints its id."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from interlink import ids
    from interlink.errors import ConfigurationError, DuplicateValue
    from interlink.store.database import utcnow

    if not _DEVELOPER_NAME.match(name) or len(name) > 80:
        raise ConfigurationError(f"subscription names start with a letter and hold letters, digits and underscores "
                                 f"(at most 80 characters): {name!r}")
    default_replay = replay.strip().upper()
    if default_replay not in ("LATEST", "EARLIEST"):
        raise ConfigurationError(f"--replay is latest or earliest, not {replay!r}")
    duplicate = f"a managed event subscription named {name} already exists"
    with _org(data_dir, project_dir, store, bus) as org:
        resolved = _resolve(org, topic)
        table = org.store.system["il_managed_subscription"]
        with org.store.read() as conn:
            existing = conn.execute(select(table.c.developer_name, table.c.id)
                                    .where(func.lower(table.c.developer_name) == name.lower())).first()
        if existing is not None:  # developer names are unique whatever their case, as on the platform
            raise DuplicateValue(f"a managed event subscription named {existing.developer_name} already exists "
                                 f"({existing.id}); delete it first or choose another name", ["DeveloperName"])
        subscription_id = ids.new_id("18x")
        try:
            with org.store.write() as conn:
                conn.execute(table.insert().values(id=subscription_id, developer_name=name, topic=resolved.name,
                                                   default_replay=default_replay, committed_replay_id=None,
                                                   updated_at=utcnow()))
        except IntegrityError:
            raise DuplicateValue(duplicate, ["DeveloperName"]) from None
        typer.echo(subscription_id)
        _say(f"Created managed event subscription {name} on {resolved.name} "
             f"(starts at {default_replay} until a replay id is committed)")


@subscription_app.command("list")
def subscription_list(
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """List managed event subscriptions with their committed replay ids."""
    from rich.table import Table
    from sqlalchemy import select

    with _org(data_dir, project_dir, store, bus) as org:
        table = org.store.system["il_managed_subscription"]
        with org.store.read() as conn:
            rows = conn.execute(select(table).order_by(table.c.developer_name)).all()
        shown = Table("Name", "Id", "Topic", "Default replay", "Committed replay id", "Updated")
        for row in rows:
            committed = bytes(row.committed_replay_id).hex() if row.committed_replay_id else "-"
            shown.add_row(row.developer_name, row.id, row.topic, row.default_replay, committed,
                          row.updated_at.isoformat(sep=" ", timespec="seconds"))
        _wide_console().print(shown)


@subscription_app.command("delete")
def subscription_delete(
    name: Annotated[str, typer.Argument(help="Developer name (or id) of the subscription.")],
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Delete a managed event subscription (clients using it get a subscription-not-found error)."""
    from sqlalchemy import func, or_

    from interlink.errors import SubscriptionNotFound

    with _org(data_dir, project_dir, store, bus) as org:
        table = org.store.system["il_managed_subscription"]
        with org.store.write() as conn:
            removed = conn.execute(table.delete().where(or_(func.lower(table.c.developer_name) == name.lower(),
                                                            table.c.id == name))).rowcount
        if not removed:
            raise SubscriptionNotFound(f"No managed event subscription {name!r}")
        _say(f"Deleted managed event subscription {name}")


# -- cdc ------------------------------------------------------------------------------------------------------


def _source(member: Any) -> str:
    if member.source == "cli":
        return "interlink cdc"
    if member.source == "metadata":
        return "metadata"
    return f"metadata ({Path(member.source).name})"


@cdc_app.command("enable")
def cdc_enable(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT", help="The object, e.g. Lead or Invoice__c.")],
    channel: ChannelOpt = "ChangeEvents",
    filter_: Annotated[str | None, typer.Option(
        "--filter", help="Custom channels only: a SOQL condition on the object, e.g. \"Amount > 1000\".")] = None,
    enrich: Annotated[list[str] | None, typer.Option(
        "--enrich", help="A field every update event carries even when unchanged (repeat, or comma-separate).")]
    = None,
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Send an object's changes to ChangeEvents or a custom channel (redefines an existing member)."""
    fields = [name.strip() for item in enrich or [] for name in item.split(",") if name.strip()]
    with _org(data_dir, project_dir, store, bus) as org:
        member = org.bus.channels.enable(object_name, channel, filter=filter_, enriched_fields=fields)
        extras = [f"filter: {member.filter}"] if member.filter else []
        extras += [f"enriched: {', '.join(member.enriched_fields)}"] if member.enriched_fields else []
        _say(f"Enabled change events for {member.entity} on {member.channel}: topic {member.topic}"
             + (f" ({'; '.join(extras)})" if extras else ""))


@cdc_app.command("disable")
def cdc_disable(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT", help="The object, e.g. Lead.")],
    channel: ChannelOpt = "ChangeEvents",
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """Stop sending an object's changes to a channel."""
    from interlink.errors import NotFoundError

    with _org(data_dir, project_dir, store, bus) as org:
        members = org.bus.channels.channel(channel) or []
        member = next((m for m in members if m.entity.lower() == object_name.lower()), None)
        if member is None or not org.bus.channels.disable(member.entity, member.channel):
            raise NotFoundError(f"{object_name} is not a member of {channel}")
        _say(f"Disabled change events for {member.entity} on {member.channel}")
        if member.source != "cli":
            where = "" if member.source == "metadata" else f" ({Path(member.source).name})"
            _say(f"note: the project's metadata declares {member.entity} on {member.channel}{where}; the next "
                 "deploy (interlink deploy or interlink up) restores it unless the metadata changes")


@cdc_app.command("list")
def cdc_list(
    data_dir: DataDir = None,
    project_dir: ProjectDir = None,
    store: StoreUrl = None,
    bus: Bus = None,
) -> None:
    """List the objects whose changes become change events, per channel."""
    from rich.table import Table

    with _org(data_dir, project_dir, store, bus) as org:
        table = Table("Channel", "Object", "Topic", "Filter", "Enriched fields", "Declared by")
        channels = org.bus.channels.channels()
        for key in sorted(channels, key=lambda k: (k != "changeevents", k)):
            for member in sorted(channels[key], key=lambda m: m.entity.lower()):
                table.add_row(member.channel, member.entity, member.topic, member.filter or "",
                              ", ".join(member.enriched_fields), _source(member))
        _wide_console().print(table)
