"""The console's Event streams section: pick a channel, watch its events arrive live, replay, publish a test event.

The page lists every topic of the bus (platform events, all change events, each captured object's change events,
custom channels); the browser subscribes through ``/console/stream/{channel}`` (``interlink.console.streams``).
"Publish a test event" goes through the records service, exactly as ``POST /services/data/vXX.X/sobjects/X__e``
does, and answers the event's replay id (or the platform's errors).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from interlink.api.http import parse_json
from interlink.bus.bus import Topic
from interlink.bus.channels import CHANGE_EVENTS
from interlink.bus.model import change_event_topic
from interlink.console.render import api, json_response, org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.console.streams import check_can_read
from interlink.errors import InterlinkError, MultipleErrors, OperationEnqueued, PubSubPermissionDenied, RequestError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef

SECTION = "/console/events"
MAX_ROWS = 200  # rows the live table keeps (the oldest go first)
# How far past the log's head before publishing the console looks for the event it published (others may
# publish meanwhile); an event not found there is still published, its replay id just is not shown.
_FIND_WINDOW = 2_000

_INPUT_TYPES = {FieldType.INT: "number", FieldType.DOUBLE: "number", FieldType.CURRENCY: "number",
                FieldType.PERCENT: "number", FieldType.DATE: "date", FieldType.DATETIME: "datetime-local",
                FieldType.TIME: "time", FieldType.BOOLEAN: "checkbox", FieldType.EMAIL: "email",
                FieldType.URL: "url", FieldType.TEXTAREA: "textarea"}


def _field_spec(fdef: FieldDef) -> dict[str, Any]:
    return {"name": fdef.name, "label": fdef.label or fdef.name, "type": str(fdef.type),
            "input": "select" if fdef.picklist_values else _INPUT_TYPES.get(fdef.type, "text"),
            "required": fdef.required, "scale": fdef.scale, "length": fdef.length,
            "options": [v.value for v in fdef.picklist_values]}


def _readable(org: Any, user: ConsoleUser, name: str) -> Topic | None:
    try:
        topic = org.bus.topic(name)
        check_can_read(org, user, topic)
    except InterlinkError:
        return None
    return topic  # type: ignore[no-any-return]


def channel_groups(org: Any, user: ConsoleUser) -> list[dict[str, Any]]:
    """The topics this user may read, grouped as the picker shows them; platform events carry their fields."""
    events = []
    for obj in sorted((o for o in org.store.schema if o.is_event), key=lambda o: o.name.lower()):
        if _readable(org, user, f"/event/{obj.name}") is None:
            continue
        events.append({"channel": f"/event/{obj.name}", "label": obj.label or obj.name, "publish": True,
                       "behavior": obj.publish_behavior or "PublishAfterCommit",
                       "fields": [_field_spec(f) for f in obj.fields if f.name.endswith("__c")]})
    channels = org.bus.channels.channels()
    members = sorted(channels.get(CHANGE_EVENTS.lower(), []), key=lambda m: m.entity.lower())
    changes = [{"channel": "/data/ChangeEvents", "label": "All change events", "publish": False}]
    for member in members:
        changes.append({"channel": change_event_topic(member.entity), "label": f"{member.entity} changes",
                        "publish": False})
    custom = []
    for key in sorted(channels):
        if key == CHANGE_EVENTS.lower() or not channels[key]:
            continue
        name = f"/data/{channels[key][0].channel}"
        entities = ", ".join(sorted(m.entity for m in channels[key]))
        custom.append({"channel": name, "label": f"{channels[key][0].channel} ({entities})", "publish": False})
    groups = [("Platform events", events), ("Change events", changes), ("Custom channels", custom)]
    return [{"label": label, "channels": [c for c in items if _readable(org, user, c["channel"]) is not None]}
            for label, items in groups if items]


@page
async def events_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    groups = channel_groups(org, user)
    chosen = request.query_params.get("channel", "")
    known = {c["channel"] for group in groups for c in group["channels"]}
    replay = request.query_params.get("replay", "LATEST")
    return render(request, "events.html", user, section=SECTION, groups=groups,
                  chosen=chosen if chosen in known else "", replay=replay, max_rows=MAX_ROWS,
                  config={"groups": groups, "channel": chosen if chosen in known else "", "replay": replay,
                          "maxRows": MAX_ROWS, "autostart": chosen in known})


def _event_object(org: Any, channel: str) -> ObjectDef:
    topic = org.bus.topic(channel)
    if topic.event_object is None or not topic.can_publish:
        raise PubSubPermissionDenied(f"Publishing to {channel} is not allowed: only platform event channels "
                                     "(/event/Name__e) accept published events")
    return topic.event_object  # type: ignore[no-any-return]


def publish_values(obj: ObjectDef, raw: Any) -> dict[str, Any]:
    """The event's field values from the form's JSON: its own custom fields only; blanks are left out."""
    if not isinstance(raw, dict):
        raise RequestError("values: an object of field name to value", ["values"])
    values: dict[str, Any] = {}
    for name, value in raw.items():
        fdef = obj.field(str(name))
        if fdef is None or not fdef.name.endswith("__c"):
            raise RequestError(f"No such column '{name}' on sobject of type {obj.name}", [str(name)],
                               error_code="INVALID_FIELD")
        if value is None or value == "":
            continue
        values[fdef.name] = value
    return values


def _publish(org: Any, user: ConsoleUser, obj: ObjectDef, values: dict[str, Any]) -> dict[str, Any]:
    """Publish through the records service (the REST path) and find the event's replay id on the bus."""
    topic = org.bus.topic(f"/event/{obj.name}")
    head = org.bus.latest_replay_id(topic)
    (result,) = org.records.create(user.context, obj.name, [values])
    if result.errors:
        raise MultipleErrors(result.errors)
    event_uuid = next((n.message for n in result.notices if isinstance(n, OperationEnqueued)), None)
    replay_id = None
    if event_uuid is not None:
        for event in org.bus.read(topic, head, _FIND_WINDOW):
            if event.event_uuid == event_uuid:
                replay_id = event.replay_id
                break
    return {"id": result.id, "success": True, "channel": topic.name, "eventUuid": event_uuid, "replayId": replay_id,
            "published": replay_id is not None,
            "behavior": obj.publish_behavior or "PublishAfterCommit"}


@api
async def publish_endpoint(request: Request, user: ConsoleUser) -> Response:
    """``POST /console/api/events/publish`` ``{"channel": "/event/X__e", "values": {...}}``."""
    org = org_of(request)
    body = parse_json(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
        raise RequestError("Send {\"channel\": \"/event/Name__e\", \"values\": {...}}", ["channel"])
    obj = _event_object(org, body["channel"])
    values = publish_values(obj, body.get("values") or {})
    outcome = await asyncio.to_thread(_publish, org, user, obj, values)
    return json_response(outcome, status=201)


@api
async def channels_endpoint(request: Request, user: ConsoleUser) -> Response:
    """``GET /console/api/events/channels``: the picker's topics (for scripts and tests)."""
    return json_response(channel_groups(org_of(request), user))


def routes() -> list[BaseRoute]:
    return [
        Route("/events", events_page, methods=["GET", "HEAD"]),
        Route("/api/events/channels", channels_endpoint, methods=["GET"]),
        Route("/api/events/publish", publish_endpoint, methods=["POST"]),
    ]
