"""Outbound messages: SOAP ``notifications`` sent to a listener when a flow says so (Fire and Forget).

::

    # metadata/outboundMessages/Order_To_ERP.yaml
    object: Opportunity
    fields: [Id, Name, Amount, StageName]
    credential: ERP                # a named credential: the listener's URL and authentication
    path: /notifications

A flow fires it with the action ``outbound_message: {name: Order_To_ERP}``. Each fire is a notification (an
``04l`` id that retries keep, so the listener can drop duplicates) queued in the save's transaction. Workers send
the due notifications of a definition together, up to 100 per message, with the record's data **at send time**
(the platform sends the latest values). The listener acknowledges with ``<Ack>true</Ack>`` anywhere in a 2xx
answer; anything else is retried with growing delays, at most 2 hours apart, and dropped after 24 hours, as on the
platform. ``wsdl()`` writes the WSDL a listener is generated from.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from sqlalchemy import Connection, and_, or_, select, update

from interlink import ids
from interlink.callouts.credentials import CalloutRefused, NamedCredential
from interlink.callouts.queue import DEAD, DELIVERED, DISCARDED, QUEUED, Delivery, attempt_entry
from interlink.errors import MetadataError
from interlink.metadata.model import FieldType, ObjectDef, Schema
from interlink.metadata.values import format_datetime_z, to_wire
from interlink.store.claims import claim
from interlink.store.database import Store
from interlink.xmlsafe import check_untrusted_xml

if TYPE_CHECKING:
    from interlink.callouts.queue import CalloutQueue

log = logging.getLogger(__name__)

OM_NS = "http://soap.sforce.com/2005/09/outbound"
SF_NS = "urn:sobject.enterprise.soap.sforce.com"
MAX_NOTIFICATIONS = 100
RETRY_CAP = timedelta(hours=2)
GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=15)
_XSD_TYPES = {FieldType.BOOLEAN: "xsd:boolean", FieldType.INT: "xsd:int", FieldType.DOUBLE: "xsd:double",
              FieldType.CURRENCY: "xsd:double", FieldType.PERCENT: "xsd:double", FieldType.DATE: "xsd:date",
              FieldType.DATETIME: "xsd:dateTime", FieldType.TIME: "xsd:time"}


@dataclass(frozen=True)
class OutboundMessage:
    name: str
    object: str
    fields: tuple[str, ...]
    credential: str
    path: str
    source: str
    session_user: str | None = None  # includeSessionId: the user whose session id the message carries

    @property
    def action_id(self) -> str:
        """A stable ``04k`` id for the definition (the message's ActionId)."""
        digest = hashlib.sha1(self.name.lower().encode()).hexdigest()
        body = "".join(ids.BASE62[int(digest[i:i + 2], 16) % 62] for i in range(0, 24, 2))
        return ids.to_18("04k" + body)


def load_outbound_messages(project_dir: Path, schema: Schema,
                           credentials: Mapping[str, NamedCredential]) -> dict[str, OutboundMessage]:
    """Read ``metadata/outboundMessages/*.yaml``; errors name the file and the key."""
    from interlink.metadata.loader import read_yaml_files

    found: dict[str, OutboundMessage] = {}
    for path, data in read_yaml_files(project_dir / "metadata" / "outboundMessages"):
        source = str(path)
        if not isinstance(data, dict):
            raise MetadataError(f"{source}: an outbound message holds a mapping (object, fields, credential, path)")
        unknown = set(data) - {"name", "object", "fields", "credential", "path", "description", "includeSessionId",
                               "user"}
        if unknown:
            raise MetadataError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        obj = schema.object(str(data.get("object") or ""))
        if obj is None or obj.is_event:
            raise MetadataError(f"{source}: object: {data.get('object')!r} is not an object of this org")
        fields = data.get("fields") or ["Id"]
        if not isinstance(fields, list) or any(not isinstance(f, str) or obj.field(f) is None for f in fields):
            raise MetadataError(f"{source}: fields: list fields of {obj.name}")
        names = [obj.field(f).name for f in fields]  # type: ignore[union-attr]
        if "Id" not in names:
            names.insert(0, "Id")
        credential = str(data.get("credential") or "")
        if credential.lower() not in credentials:
            raise MetadataError(f"{source}: credential: {credential!r} is not a named credential of the project")
        if not isinstance(data.get("includeSessionId", False), bool):
            raise MetadataError(f"{source}: includeSessionId: true or false")
        session_user = str(data.get("user") or "admin@interlink.local") if data.get("includeSessionId") else None
        message = OutboundMessage(str(data.get("name") or path.stem), obj.name, tuple(names),
                                  credentials[credential.lower()].name, str(data.get("path") or ""), source,
                                  session_user)
        try:
            credentials[credential.lower()].endpoint(message.path)
        except CalloutRefused as refused:
            raise MetadataError(f"{source}: path: {refused.message}") from None
        found[message.name.lower()] = message
    return found


class OutboundQueue:
    """Queue notifications with a save; send them in messages of up to 100; keep every attempt."""

    def __init__(self, store: Store, callouts: CalloutQueue, org: Callable[[], tuple[str, str]],
                 session: Callable[[str], str] | None = None) -> None:
        self.store = store
        self.callouts = callouts  # credentials, the HTTP sender and the clock
        self.org = org  # (org id, instance URL) for the message header
        self.session = session  # mints a session id for a username (includeSessionId)
        self.definitions: dict[str, OutboundMessage] = {}

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_om_notification"]

    def definition(self, name: str) -> OutboundMessage:
        found = self.definitions.get(name.lower())
        if found is None:
            raise MetadataError(f"there is no outbound message {name!r}")
        return found

    def enqueue(self, conn: Connection, name: str, record_ids: list[str]) -> list[str]:
        """Queue a notification per record in the open transaction ``conn``."""
        definition = self.definition(name)
        now = self.callouts.clock()
        notification_ids = [ids.new_id("04l") for _ in record_ids]
        if record_ids:
            conn.execute(self._table.insert(), [
                {"id": nid, "definition": definition.name, "object_name": definition.object, "record_id": rid,
                 "state": QUEUED, "attempts": 0, "next_attempt_at": now, "last_error": None, "history_json": "[]",
                 "created_at": now, "updated_at": now, "claimed_by": None, "claimed_until": None}
                for nid, rid in zip(notification_ids, record_ids, strict=True)])
        return notification_ids

    # -- sending -------------------------------------------------------------------------------------------------

    def run_once(self, worker_id: str) -> bool:
        """Send one message (the due notifications of one definition, up to 100); False when none is due."""
        claimed = self._claim(worker_id)
        if not claimed:
            return False
        definition = self.definitions.get(claimed[0].definition.lower())
        try:
            if definition is None:
                raise CalloutRefused(f"the outbound message {claimed[0].definition} is no longer defined")
            named = self.callouts.credential(definition.credential)
            body = self.message(definition, claimed)
            url = named.endpoint(definition.path)
            headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
            headers.update(named.auth_headers("POST", url, body, headers))
            delivery = self.callouts.sender("POST", url, headers, body, named.timeout, named.tls())
        except CalloutRefused as refused:
            delivery = Delivery(None, b"", refused.message, 0)
        except Exception as exc:  # a bug must not leave the notifications claimed forever
            log.exception("outbound message failed")
            delivery = Delivery(None, b"", type(exc).__name__, 0)
        self._finish(claimed, worker_id, delivery)
        return True

    def _claim(self, worker_id: str) -> list[Any]:
        table = self._table
        now = self.callouts.clock()
        due = and_(table.c.state == QUEUED, table.c.next_attempt_at <= now,
                   or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
        with self.store.read() as conn:
            first = conn.execute(select(table.c.definition).where(due).order_by(table.c.next_attempt_at)
                                 .limit(1)).scalar()
            if first is None:
                return []
            candidates = conn.execute(select(table.c.id).where(and_(due, table.c.definition == first))
                                      .order_by(table.c.created_at).limit(MAX_NOTIFICATIONS)).scalars().all()
        return claim(self.store, table, and_(table.c.id.in_(candidates), due), order_by=[table.c.created_at],
                     limit=len(candidates), values={
                         "claimed_by": worker_id,
                         "claimed_until": now + timedelta(seconds=self.callouts.lease_seconds)})

    def _finish(self, rows: list[Any], worker_id: str, delivery: Delivery) -> None:
        acked = delivery.status is not None and 200 <= delivery.status < 300 and acknowledged(delivery.body)
        error = None if acked else delivery.error or (
            f"HTTP {delivery.status}" if delivery.status is None or not 200 <= delivery.status < 300
            else "the listener did not acknowledge with <Ack>true</Ack>")
        now = self.callouts.clock()
        table = self._table
        with self.store.write() as conn:
            for row in rows:
                attempt = row.attempts + 1
                history = [*json.loads(row.history_json), attempt_entry(attempt, now, delivery, error)]
                values: dict[str, Any] = {"attempts": attempt, "history_json": json.dumps(history),
                                          "last_error": error, "updated_at": now, "claimed_by": None,
                                          "claimed_until": None}
                delay = min(RETRY_CAP, FIRST_RETRY * 2 ** (attempt - 1))
                if acked:
                    values["state"] = DELIVERED
                elif now + delay - row.created_at > GIVE_UP_AFTER:
                    values["state"] = DEAD
                else:
                    values["next_attempt_at"] = now + delay
                conn.execute(update(table).where(and_(table.c.id == row.id, table.c.claimed_by == worker_id))
                             .values(**values))

    def message(self, definition: OutboundMessage, rows: list[Any]) -> bytes:
        """The SOAP envelope of a message: the records' current values of the definition's fields."""
        obj = self.store.schema.object(definition.object)
        assert obj is not None
        assert self.callouts.records is not None
        found = self.callouts.records.retrieve(obj.name, [r.record_id for r in rows], list(definition.fields),
                                               include_deleted=True)
        current = {record["Id"]: record for record in found if record is not None}
        org_id, instance = self.org()
        short_org = org_id[:15]
        parts = ['<?xml version="1.0" encoding="UTF-8"?>'
                 '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                 'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                 f'<soapenv:Body><notifications xmlns="{OM_NS}">'
                 f"<OrganizationId>{org_id}</OrganizationId><ActionId>{definition.action_id}</ActionId>"
                 f"{self._session_element(definition)}"
                 f"<EnterpriseUrl>{escape(instance)}/services/Soap/c/66.0/{short_org}</EnterpriseUrl>"
                 f"<PartnerUrl>{escape(instance)}/services/Soap/u/66.0/{short_org}</PartnerUrl>"]
        for row in rows:
            record = current.get(row.record_id)
            if record is None:  # the record is gone: there is nothing left to tell
                continue
            parts.append(f'<Notification><Id>{row.id}</Id><sObject xsi:type="sf:{obj.name}" xmlns:sf="{SF_NS}">')
            for name in definition.fields:
                value = record[name]
                if value is None:
                    continue
                parts.append(f"<sf:{name}>{escape(_soap_value(obj, name, value))}</sf:{name}>")
            parts.append("</sObject></Notification>")
        parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
        return "".join(parts).encode()

    def _session_element(self, definition: OutboundMessage) -> str:
        """A fresh session id of the definition's user, so the listener can call back (or nil)."""
        if definition.session_user is None or self.session is None:
            return '<SessionId xsi:nil="true"/>'
        return f"<SessionId>{escape(self.session(definition.session_user))}</SessionId>"

    # -- reading -----------------------------------------------------------------------------------------------

    def list(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        table = self._table
        query = select(table).order_by(table.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(table.c.state == state)
        with self.store.read() as conn:
            return [self._wire(r) for r in conn.execute(query)]

    def get(self, notification_id: str) -> dict[str, Any] | None:
        """One notification with every attempt (the message itself is built at send time and not kept)."""
        table = self._table
        with self.store.read() as conn:
            row = conn.execute(select(table).where(table.c.id == notification_id)).first()
        return None if row is None else self._wire(row)

    def retry(self, notification_id: str) -> bool:
        """Send a notification at once: a waiting one now, a dead one once more; False when it is neither, or in
        flight. A dead notification older than 24 hours gets that one attempt before it is dropped again."""
        table = self._table
        now = self.callouts.clock()
        idle = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
        with self.store.write() as conn:
            return conn.execute(update(table).where(and_(
                table.c.id == notification_id, table.c.state.in_((QUEUED, DEAD)), idle)).values(
                state=QUEUED, next_attempt_at=now, updated_at=now)).rowcount == 1

    def discard(self, notification_id: str) -> bool:
        """Give up a waiting or dead notification (``Discarded``, history kept); False when it is neither, or in
        flight."""
        table = self._table
        now = self.callouts.clock()
        with self.store.write() as conn:
            return conn.execute(update(table).where(and_(
                table.c.id == notification_id, table.c.state.in_((QUEUED, DEAD)),
                or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))).values(
                state=DISCARDED, updated_at=now, claimed_by=None, claimed_until=None)).rowcount == 1

    @staticmethod
    def _wire(r: Any) -> dict[str, Any]:
        return {"id": r.id, "definition": r.definition, "objectName": r.object_name, "recordId": r.record_id,
                "state": r.state, "attempts": r.attempts, "lastError": r.last_error,
                "history": json.loads(r.history_json),
                "nextAttemptAt": r.next_attempt_at.isoformat(timespec="milliseconds") + "Z",
                "createdAt": r.created_at.isoformat(timespec="milliseconds") + "Z"}

    def wsdl(self, name: str, instance_url: str = "https://127.0.0.1:8443") -> str:
        """The WSDL a listener for ``name`` is generated from (the platform's outbound-message WSDL shape)."""
        definition = self.definition(name)
        obj = self.store.schema.object(definition.object)
        assert obj is not None
        named = self.callouts.credential(definition.credential)
        elements = "".join(  # Id comes from the sObject base type
            f'<element name="{f}" nillable="true" minOccurs="0" type="{_xsd_type(obj, f)}"/>'
            for f in definition.fields if f != "Id")
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions targetNamespace="{OM_NS}" xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:ens="{SF_NS}" xmlns:tns="{OM_NS}">
  <types>
    <schema elementFormDefault="qualified" xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="{SF_NS}">
      <simpleType name="ID"><restriction base="xsd:string"><length value="18"/></restriction></simpleType>
      <complexType name="sObject"><sequence>
        <element name="fieldsToNull" type="xsd:string" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
        <element name="Id" type="ens:ID" nillable="true" minOccurs="0"/>
      </sequence></complexType>
      <complexType name="{obj.name}"><complexContent><extension base="ens:sObject"><sequence>
        {elements}
      </sequence></extension></complexContent></complexType>
    </schema>
    <schema elementFormDefault="qualified" xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="{OM_NS}">
      <import namespace="{SF_NS}"/>
      <element name="notifications"><complexType><sequence>
        <element name="OrganizationId" type="ens:ID"/>
        <element name="ActionId" type="ens:ID"/>
        <element name="SessionId" type="xsd:string" nillable="true"/>
        <element name="EnterpriseUrl" type="xsd:string"/>
        <element name="PartnerUrl" type="xsd:string"/>
        <element name="Notification" maxOccurs="100" type="tns:{obj.name}Notification"/>
      </sequence></complexType></element>
      <complexType name="{obj.name}Notification"><sequence>
        <element name="Id" type="ens:ID"/>
        <element name="sObject" type="ens:{obj.name}"/>
      </sequence></complexType>
      <element name="notificationsResponse"><complexType><sequence>
        <element name="Ack" type="xsd:boolean"/>
      </sequence></complexType></element>
    </schema>
  </types>
  <message name="notificationsRequest"><part element="tns:notifications" name="request"/></message>
  <message name="notificationsResponse"><part element="tns:notificationsResponse" name="response"/></message>
  <portType name="NotificationPort">
    <operation name="notifications">
      <documentation>Process a number of notifications.</documentation>
      <input message="tns:notificationsRequest"/>
      <output message="tns:notificationsResponse"/>
    </operation>
  </portType>
  <binding name="NotificationBinding" type="tns:NotificationPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="notifications">
      <soap:operation soapAction=""/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="NotificationService">
    <documentation>{escape(definition.name)}: {escape(obj.name)} notifications from {escape(instance_url)}
    </documentation>
    <port binding="tns:NotificationBinding" name="Notification">
      <soap:address location="{escape(named.endpoint(definition.path))}"/>
    </port>
  </service>
</definitions>
"""


def acknowledged(body: bytes) -> bool:
    """Whether a listener's answer holds ``<Ack>true</Ack>`` (any namespace, any wrapper, any case)."""
    try:
        check_untrusted_xml(body)
        root = ET.fromstring(body)
    except (ValueError, ET.ParseError, ExpatError):
        return False
    return any(element.tag.rpartition("}")[2] == "Ack" and (element.text or "").strip().lower() == "true"
               for element in root.iter())


def _soap_value(obj: ObjectDef, name: str, value: Any) -> str:
    fdef = obj.field(name)
    assert fdef is not None
    if isinstance(value, datetime):
        return format_datetime_z(value)  # xsd:dateTime in UTC
    wire = to_wire(fdef, value)
    return ("true" if wire else "false") if isinstance(wire, bool) else str(wire)


def _xsd_type(obj: ObjectDef, name: str) -> str:
    fdef = obj.field(name)
    assert fdef is not None
    if fdef.name == "Id" or fdef.type in (FieldType.ID, FieldType.REFERENCE):
        return "ens:ID"
    return _XSD_TYPES.get(fdef.type, "xsd:string")


__all__ = ["MAX_NOTIFICATIONS", "OutboundMessage", "OutboundQueue", "acknowledged", "load_outbound_messages"]
