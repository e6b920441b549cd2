"""The UI Update pattern's live pages: the org changes, the page shows it at once, and nobody loses their typing.

- ``/console/live/cases/{id}``: a case for the agent on the phone. The page streams (SSE) what concerns this case
  only: payments the payment processor reports (``Payment_Received__e`` whose ``CaseId__c`` is the case) and the
  case's own change events (``CaseChangeEvent``: other users' edits, the flow that records the payment). The page
  updates its values without a reload; a form field the user has changed and not saved keeps their text and says
  it was changed elsewhere.
- ``/console/live/manager``: alerts for a service manager when one of their reps (users whose ``ManagerId`` is the
  manager) closes a case as Successful (``Case_Closed__e``, published by the sample flow
  ``Case_Closed_Successfully``). The filter runs on the server: other teams' events never reach the browser.

Both streams start where the page's data was read (the page carries the replay positions it was rendered at), so
nothing that happens between the render and the subscription is missed; the ids of their messages list one
replay id per topic (``"42,97"``), which the EventSource resends when it reconnects.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from interlink import ids
from interlink.api.http import parse_json
from interlink.bus.bus import Topic
from interlink.console.render import api, json_response, org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.console.streams import Shape, check_can_read, position_id, serve
from interlink.errors import MultipleErrors, NotFoundError, RequestError, TopicNotFound
from interlink.soql.render import quote

if TYPE_CHECKING:
    from interlink.app.org import Org

SECTION = "/console/events"
PAYMENTS = "/event/Payment_Received__e"
CASE_CHANGES = "/data/CaseChangeEvent"
CASE_CLOSED = "/event/Case_Closed__e"
# Case fields the page shows, when the org has them (the sample org adds the custom ones).
DISPLAY_FIELDS = ("CaseNumber", "Subject", "Status", "Priority", "Origin", "Resolution__c", "Payment_Status__c",
                  "Payment_Amount__c", "Description", "OwnerId", "LastModifiedDate")
EDITABLE_FIELDS = ("Subject", "Status", "Priority", "Resolution__c", "Description")
TEAM_REFRESH_SECONDS = 10.0
MAX_LISTED = 200


# -- reading ---------------------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return quote(value)


def _case_id(org: Org, raw: str) -> str:
    obj = org.records.object("Case")
    return org.records.check_id(obj, raw)


def _case(org: Org, user: ConsoleUser, case_id: str) -> dict[str, Any]:
    obj = org.records.object("Case")
    fields = [f for f in DISPLAY_FIELDS if obj.field(f) is not None]
    soql = (f"SELECT Id, {', '.join(fields)}, Owner.Name, Account.Name, LastModifiedBy.Name FROM Case "
            f"WHERE Id = {_quoted(case_id)}")
    rows = org.query.execute(soql, user.context).records
    if not rows:
        raise NotFoundError(f"There is no case {case_id}")
    return rows[0]  # type: ignore[no-any-return]


def _picklists(org: Org) -> dict[str, list[str]]:
    obj = org.records.object("Case")
    found: dict[str, list[str]] = {}
    for name in EDITABLE_FIELDS:
        fdef = obj.field(name)
        if fdef is not None and fdef.picklist_values:
            found[name] = [v.value for v in fdef.picklist_values if v.active]
    return found


def _topic(org: Org, name: str) -> Topic | None:
    try:
        return org.bus.topic(name)
    except TopicNotFound:
        return None


def _case_topics(org: Org, user: ConsoleUser) -> list[Topic]:
    """The payments channel (when the org has it) and the case's change events, in the stream's order."""
    topics = [t for t in (_topic(org, PAYMENTS), _topic(org, CASE_CHANGES)) if t is not None]
    for topic in topics:
        check_can_read(org, user, topic)
    return topics


def _heads(org: Org, topics: list[Topic]) -> str:
    return position_id([org.bus.latest_replay_id(topic) for topic in topics])


def _team(org: Org, user: ConsoleUser) -> list[dict[str, Any]]:
    """The users this user manages (``User.ManagerId``), active ones only."""
    soql = (f"SELECT Id, Name, Username, Title FROM User WHERE ManagerId = {_quoted(user.id)} AND IsActive = true "
            "ORDER BY Name")
    return org.query.execute(soql, user.context, batch_size=MAX_LISTED).records  # type: ignore[no-any-return]


# -- pages -----------------------------------------------------------------------------------------------------


@page
async def index_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    obj = org.records.object("Case")
    extra = [f for f in ("Payment_Status__c", "Resolution__c") if obj.field(f) is not None]
    soql = (f"SELECT Id, CaseNumber, Subject, Status, {''.join(f + ', ' for f in extra)}Owner.Name, "
            f"Owner.Manager.Name FROM Case ORDER BY CaseNumber DESC LIMIT {MAX_LISTED}")
    cases = org.query.execute(soql, user.context, batch_size=MAX_LISTED).records
    return render(request, "live_index.html", user, section=SECTION, cases=cases, extra=extra,
                  team=_team(org, user), has_payments=_topic(org, PAYMENTS) is not None,
                  has_alerts=_topic(org, CASE_CLOSED) is not None)


@page
async def case_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    case_id = _case_id(org, request.path_params["case_id"])
    topics = _case_topics(org, user)
    replay = _heads(org, topics)  # before the read: whatever changes after it arrives on the stream
    record = _case(org, user, case_id)
    obj = org.records.object("Case")
    editable = [obj.field(f) for f in EDITABLE_FIELDS if obj.field(f) is not None]
    return render(request, "live_case.html", user, section=SECTION, case=record, editable=editable,
                  picklists=_picklists(org), has_payments=_topic(org, PAYMENTS) is not None,
                  config={"caseId": case_id, "stream": f"/console/live/cases/{case_id}/stream", "replay": replay,
                          "save": f"/console/api/live/cases/{case_id}",
                          "labels": {f.name: f.label or f.name for f in obj.fields},
                          "values": {f.name: record.get(f.name) for f in editable}})


@page
async def manager_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    topic = _topic(org, CASE_CLOSED)
    if topic is not None:
        check_can_read(org, user, topic)
    replay = _heads(org, [topic]) if topic is not None else ""
    team = _team(org, user)
    cases: list[dict[str, Any]] = []
    if team:
        owners = ", ".join(_quoted(member["Id"]) for member in team)
        cases = org.query.execute(
            f"SELECT Id, CaseNumber, Subject, Status, Owner.Name FROM Case WHERE OwnerId IN ({owners}) "
            f"AND Status != 'Closed' ORDER BY CaseNumber LIMIT {MAX_LISTED}", user.context,
            batch_size=MAX_LISTED).records
    return render(request, "live_manager.html", user, section=SECTION, team=team, cases=cases,
                  has_alerts=topic is not None,
                  config={"stream": "/console/live/manager/stream", "replay": replay})


# -- streams ---------------------------------------------------------------------------------------------------


def _same_id(value: Any, record_id: str) -> bool:
    return isinstance(value, str) and ids.normalize(value) == record_id


def _case_plan(org: Org, user: ConsoleUser, request: Request) -> list[tuple[Topic, Shape | None]]:
    case_id = _case_id(org, request.path_params["case_id"])
    _case(org, user, case_id)  # 404 for a case that is not there

    def payment(message: dict[str, Any]) -> dict[str, Any] | None:
        payload = message.get("payload") or {}
        return {**message, "kind": "payment"} if _same_id(payload.get("CaseId__c"), case_id) else None

    def change(message: dict[str, Any]) -> dict[str, Any] | None:
        header = (message.get("payload") or {}).get("ChangeEventHeader") or {}
        if not any(_same_id(record_id, case_id) for record_id in header.get("recordIds") or []):
            return None
        author = org.directory.user_by_id(str(header.get("commitUser") or ""))
        return {**message, "kind": "change", "by": author.name if author is not None else header.get("commitUser")}

    return [(topic, payment if topic.name == PAYMENTS else change) for topic in _case_topics(org, user)]


def _alerts_for(org: Org, user: ConsoleUser) -> Shape:
    """Keeps the Case_Closed__e events of cases owned by the user's reps, with the case and the rep's name."""
    team: dict[str, str] = {}
    loaded = [0.0]

    def members() -> dict[str, str]:
        if time.monotonic() - loaded[0] > TEAM_REFRESH_SECONDS:  # a rep who joins or leaves counts soon
            team.clear()
            team.update({member["Id"]: member["Name"] for member in _team(org, user)})
            loaded[0] = time.monotonic()
        return team

    def alert(message: dict[str, Any]) -> dict[str, Any] | None:
        payload = message.get("payload") or {}
        owner = ids.normalize(payload.get("OwnerId__c"))
        reps = members()
        if owner is None or owner not in reps:
            return None
        case: dict[str, Any] = {}
        case_id = ids.normalize(payload.get("CaseId__c"))
        if case_id is not None:
            rows = org.query.execute(f"SELECT CaseNumber, Subject FROM Case WHERE Id = {_quoted(case_id)}",
                                     user.context).records
            case = {"Id": case_id, **({k: v for k, v in rows[0].items() if k != "attributes"} if rows else {})}
        return {**message, "kind": "alert", "rep": {"Id": owner, "Name": reps[owner]}, "case": case}

    return alert


def _manager_plan(org: Org, user: ConsoleUser, request: Request) -> list[tuple[Topic, Shape | None]]:
    del request
    return [(org.bus.topic(CASE_CLOSED), _alerts_for(org, user))]


async def case_stream(request: Request) -> Response:
    return await serve(request, _case_plan)


async def manager_stream(request: Request) -> Response:
    return await serve(request, _manager_plan)


# -- saving ----------------------------------------------------------------------------------------------------


def _save(org: Org, user: ConsoleUser, case_id: str, values: dict[str, Any]) -> dict[str, Any]:
    (result,) = org.records.update(user.context, "Case", [{**values, "Id": case_id}])
    if result.errors:
        raise MultipleErrors(result.errors)
    return _case(org, user, case_id)


@api
async def save_case(request: Request, user: ConsoleUser) -> Response:
    """``POST /console/api/live/cases/{id}`` ``{"values": {"Subject": ...}}``: the changed fields, saved through the
    records service as the user; answers the case as it now is."""
    org = org_of(request)
    case_id = _case_id(org, request.path_params["case_id"])
    body = parse_json(await request.body())
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        raise RequestError("Send {\"values\": {\"Field\": value, ...}}", ["values"])
    allowed = {name.lower(): name for name in EDITABLE_FIELDS}
    unknown = [name for name in values if str(name).lower() not in allowed]
    if unknown:
        raise RequestError(f"This page does not edit {', '.join(map(str, unknown))}", [str(u) for u in unknown],
                           error_code="INVALID_FIELD_FOR_INSERT_UPDATE")
    chosen = {allowed[str(name).lower()]: (None if value == "" else value) for name, value in values.items()}
    record = await asyncio.to_thread(_save, org, user, case_id, chosen)
    return json_response({"success": True, "record": record})



def routes() -> list[BaseRoute]:
    return [
        Route("/live/", index_page, methods=["GET", "HEAD"]),
        Route("/live", index_page, methods=["GET", "HEAD"]),
        Route("/live/cases/{case_id}", case_page, methods=["GET", "HEAD"]),
        Route("/live/cases/{case_id}/stream", case_stream, methods=["GET"]),
        Route("/live/manager", manager_page, methods=["GET", "HEAD"]),
        Route("/live/manager/stream", manager_stream, methods=["GET"]),
        Route("/api/live/cases/{case_id}", save_case, methods=["POST"]),
    ]
