"""OData 2.0 Atom XML: feeds, entries, the AtomPub service document and errors, for ``/odata/v2/``.

The 2.0 service answers verbose JSON by default; Atom when the request asks for it (see ``wants_atom``)::

    <feed xmlns="http://www.w3.org/2005/Atom" xmlns:d="…/dataservices" xmlns:m="…/dataservices/metadata"
          xml:base="https://host/odata/v2/">
      <id>https://host/odata/v2/Account</id> <title type="text">Account</title> <updated>…Z</updated>
      <link rel="self" title="Account" href="Account"/> <m:count>42</m:count>
      <entry>
        <id>https://host/odata/v2/Account('001…')</id> <title type="text"/> <updated>…Z</updated>
        <author><name/></author> <link rel="edit" title="Account" href="Account('001…')"/>
        <link rel="…/related/Contacts" type="application/atom+xml;type=feed" title="Contacts"
              href="Account('001…')/Contacts"/>          (with <m:inline><feed>…</feed></m:inline> when expanded)
        <category term="Interlink.Account" scheme="…/dataservices/scheme"/>
        <content type="application/xml"><m:properties>
          <d:Id>001…</d:Id> <d:NumberOfEmployees m:type="Edm.Int32">7</d:NumberOfEmployees>
          <d:Fax m:null="true"/> …
        </m:properties></content>
      </entry>
      <link rel="next" href="https://host/odata/v2/Account?$skiptoken=1000"/>
    </feed>

Values: Edm.DateTime ``2024-01-31T09:30:00`` (UTC, ``.fff`` when the milliseconds are not zero; dates at
midnight), Edm.Time ``PT09H30M00S``, Edm.Decimal ``12.50``, Edm.Boolean ``true``. Documents are built with
ElementTree (prefixes written literally, as in csdl.py, so no global namespace registry is touched), so every
value is escaped. Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates) become U+FFFD;
carriage returns in text are written as ``&#13;`` so they survive parsing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from interlink.api.odata.options import Selection
from interlink.api.odata.render import key_segment, v2_value
from interlink.errors import RequestError
from interlink.metadata.model import FieldDef, FieldType

ATOM_NS = "http://www.w3.org/2005/Atom"
APP_NS = "http://www.w3.org/2007/app"
DATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices"
METADATA_NS = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
SCHEME = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme"
RELATED = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/"

FEED = "application/atom+xml;type=feed;charset=utf-8"
ENTRY = "application/atom+xml;type=entry;charset=utf-8"
SERVICE = "application/atomsvc+xml;charset=utf-8"
XML = "application/xml;charset=utf-8"

_ATOM_FORMATS = frozenset({"atom", "xml", "application/atom+xml", "application/xml", "application/atomsvc+xml"})
_JSON_FORMATS = frozenset({"json", "application/json"})
_ATOM_TYPES = ("application/atom+xml", "application/xml", "application/atomsvc+xml")
_XML_BODIES = frozenset({"application/atom+xml", "application/xml", "text/xml"})
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_DATETIMES = frozenset({FieldType.DATETIME, FieldType.DATE})


class UnsupportedMediaType(RequestError):
    """A request body in a format the service does not read (415)."""

    error_code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


# -- choosing the format -------------------------------------------------------------------------------------------

def wants_atom(params: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """Whether a 2.0 request asks for Atom: ``$format=atom|xml`` (``json`` for JSON) or else an ``Accept`` that
    ranks ``application/atom+xml`` or ``application/xml`` above ``application/json``. No ``Accept``, ``*/*``
    and ties keep JSON, the service's default."""
    wanted = (params.get("$format") or "").strip().lower()
    if wanted in _ATOM_FORMATS:
        return True
    if wanted in _JSON_FORMATS:
        return False
    ranges = _media_ranges(headers.get("accept") or "")
    if not ranges:
        return False
    return max(_quality(ranges, t) for t in _ATOM_TYPES) > _quality(ranges, "application/json")


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *parameters = item.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if media.strip():
            ranges.append((media.strip().lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The quality ``Accept`` gives ``media_type``: that of its most specific matching range (0 when none)."""
    family = media_type.split("/")[0] + "/*"
    best: tuple[int, float] = (-1, 0.0)
    for media, quality in ranges:
        specificity = 2 if media == media_type else 1 if media == family else 0 if media == "*/*" else -1
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def refuse_xml_body(content_type: str | None) -> None:
    """Writes take JSON only: an Atom or XML request body is a 415 that says so."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _XML_BODIES:
        raise UnsupportedMediaType(f"The request body is {media}: this service reads OData 2.0 JSON request bodies "
                                   "only (Content-Type: application/json). Atom is supported for responses.")


# -- values --------------------------------------------------------------------------------------------------------

def _clean(text: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", text)


def atom_value(fdef: FieldDef, value: Any) -> str | None:
    """A REST wire value as the text of an Atom property element (None for null)."""
    if value is None:
        return None
    if fdef.type in _DATETIMES and isinstance(value, str):
        if fdef.type is FieldType.DATE:
            return f"{value[:10]}T00:00:00"
        moment = datetime.strptime(value[:23], "%Y-%m-%dT%H:%M:%S.%f")
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{moment.microsecond // 1000:03d}" if moment.microsecond >= 1000 else "")
    value = v2_value(fdef, value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        if fdef.type is FieldType.INT and value.is_integer():
            return str(int(value))
        return repr(value)
    return _clean(str(value))


# -- documents -----------------------------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(root: ET.Element) -> bytes:
    # ElementTree leaves a carriage return in text raw, and parsers would turn it into a newline.
    return ET.tostring(root, encoding="utf-8", xml_declaration=True).replace(b"\r", b"&#13;")


def _text(parent: ET.Element, tag: str, text: str | None = None, attrib: dict[str, str] | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib or {})
    element.text = text
    return element


def _root_attributes(root: str) -> dict[str, str]:
    return {"xmlns": ATOM_NS, "xmlns:d": DATA_NS, "xmlns:m": METADATA_NS, "xml:base": _clean(root)}


def _fill_feed(feed: ET.Element, selection: Selection, records: Iterable[dict[str, Any]], root: str, path: str,
               updated: str, count: int | None = None) -> None:
    title = _clean(path.rsplit("/", 1)[-1])
    _text(feed, "id", _clean(root + path))
    _text(feed, "title", title, {"type": "text"})
    _text(feed, "updated", updated)
    ET.SubElement(feed, "link", {"rel": "self", "title": title, "href": _clean(path)})
    if count is not None:
        _text(feed, "m:count", str(count))
    for record in records:
        _entry(ET.SubElement(feed, "entry"), selection, record, root, updated)


def _entry(entry: ET.Element, selection: Selection, record: dict[str, Any], root: str, updated: str) -> None:
    entity_set = selection.entity_set
    href = _clean(key_segment(entity_set, str(record["Id"])))
    _text(entry, "id", _clean(root) + href)
    _text(entry, "title", None, {"type": "text"})
    _text(entry, "updated", updated)
    _text(ET.SubElement(entry, "author"), "name")
    ET.SubElement(entry, "link", {"rel": "edit", "title": entity_set.name, "href": href})
    expanded_parents = {nav.name: parent for nav, parent in selection.parents}
    expanded_children = {nav.name: child for nav, child in selection.children}
    for nav in entity_set.parents.values():
        link = _nav_link(entry, nav.name, "entry", f"{href}/{nav.name}")
        if nav.name in expanded_parents:
            inline = ET.SubElement(link, "m:inline")
            nested = record.get(nav.name)
            if nested is not None:
                _entry(ET.SubElement(inline, "entry"), expanded_parents[nav.name], nested, root, updated)
    for child_nav in entity_set.children.values():
        link = _nav_link(entry, child_nav.name, "feed", f"{href}/{child_nav.name}")
        if child_nav.name in expanded_children:
            rows = (record.get(child_nav.name) or {}).get("records", [])
            feed = ET.SubElement(ET.SubElement(link, "m:inline"), "feed")
            _fill_feed(feed, expanded_children[child_nav.name].selection, rows, root, f"{href}/{child_nav.name}",
                       updated)
    ET.SubElement(entry, "category", {"term": entity_set.type_name, "scheme": SCHEME})
    properties = ET.SubElement(ET.SubElement(entry, "content", {"type": "application/xml"}), "m:properties")
    for prop in selection.properties:
        text = atom_value(prop.fdef, record.get(prop.name))
        element = ET.SubElement(properties, f"d:{prop.name}")
        if prop.v2_type != "Edm.String":
            element.set("m:type", prop.v2_type)
        if text is None:
            element.set("m:null", "true")
        else:
            element.text = text


def _nav_link(entry: ET.Element, name: str, kind: str, href: str) -> ET.Element:
    return ET.SubElement(entry, "link", {"rel": RELATED + name, "type": f"application/atom+xml;type={kind}",
                                         "title": name, "href": href})


def feed_document(selection: Selection, records: Iterable[dict[str, Any]], root: str, path: str, *,
                  count: int | None = None, next_link: str | None = None) -> bytes:
    """A collection as an Atom feed; ``path`` is the collection's URL relative to ``root`` (``Account`` or
    ``Account('001…')/Contacts``), ``next_link`` the absolute URL of the next page."""
    feed = ET.Element("feed", _root_attributes(root))
    _fill_feed(feed, selection, records, root, path, _now(), count)
    if next_link:
        ET.SubElement(feed, "link", {"rel": "next", "href": _clean(next_link)})
    return _document(feed)


def entry_document(selection: Selection, record: dict[str, Any], root: str) -> bytes:
    """One entity as an Atom entry document."""
    entry = ET.Element("entry", _root_attributes(root))
    _entry(entry, selection, record, root, _now())
    return _document(entry)


def service_document(names: Iterable[str], root: str) -> bytes:
    """The AtomPub service document: one collection per entity set."""
    service = ET.Element("service", {"xmlns": APP_NS, "xmlns:atom": ATOM_NS, "xml:base": _clean(root)})
    workspace = ET.SubElement(service, "workspace")
    _text(workspace, "atom:title", "Default")
    for name in names:
        _text(ET.SubElement(workspace, "collection", {"href": name}), "atom:title", name)
    return _document(service)


def error_document(code: str, message: str) -> bytes:
    """OData 2.0's XML error: ``<error><code/><message xml:lang="en-US"/></error>`` in the metadata namespace."""
    error = ET.Element("error", {"xmlns": METADATA_NS})
    _text(error, "code", _clean(code))
    _text(error, "message", _clean(message), {"xml:lang": "en-US"})
    return _document(error)
