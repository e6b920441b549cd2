"""The OData adapter: external objects backed by an OData 4.0, 4.01 or 2.0 service.

``sync()`` reads the service's CSDL (``$metadata``) into :class:`~interlink.connect.base.ExternalTable` values, one per
entity set with a single-property key. ``query()`` turns an :class:`~interlink.connect.base.ExternalRequest` into one
GET with ``$select``, ``$filter``, ``$orderby``, ``$top``, ``$skip``, ``$count`` (2.0: ``$inlinecount``) and
``$search`` (4.x only), and answers Python values. Literals are written by the column's remote type as ``$metadata``
declares it (fetched at most once per connection when ``sync`` has not run), so ``LineId = '7'`` on an ``Edm.Int32``
sends ``LineId eq 7``. Writes are one request per row; a row the service refuses becomes a
:class:`~interlink.connect.base.RowResult` with the service's message. The ``$metadata``
parser lives in :mod:`interlink.connect.csdl`, literal and value conversion in :mod:`interlink.connect.odata_values`.

What differs by version::

    option            4.0 / 4.01                          2.0
    text match        startswith(C,'x') contains(C,'x')   startswith(C,'x') eq true, substringof('x',C) eq true
    in                4.01: C in ('a','b'); 4.0 or-list   or-list
    count             $count=true, C/$count               $inlinecount=allpages, C/$count
    server paging     Prefer: odata.maxpagesize, nextLink __next (the server's page size)
    search            $search="text"                      not supported
    date / datetime   2025-01-31 / 2025-01-31T10:00:00Z   datetime'2025-01-31T00:00:00' / datetime'...T10:00:00'
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urljoin

from interlink.connect.base import (
    AllOf,
    AnyOf,
    Compare,
    DataSource,
    DataSourceConnection,
    ExternalRequest,
    ExternalResult,
    ExternalTable,
    Filter,
    In,
    Negate,
    RowResult,
    SortKey,
)
from interlink.connect.csdl import EntitySetInfo, parse_csdl
from interlink.connect.http import SourceHttp
from interlink.connect.odata_values import (
    _DATETIMES,
    _DECIMALS,
    _INTS,
    _TIMES,
    _V2_SUFFIX,
    _duration,
    _iso,
    _number,
    _parse_datetime,
    _parse_time,
    _python_edm,
    _quote,
    _snippet,
    coerce,
    json_body,
)
from interlink.errors import ConfigurationError, ExternalObjectError, ExternalObjectUnsupported

log = logging.getLogger(__name__)

VERSIONS = {"odata4": "4.0", "odata401": "4.01", "odata2": "2.0"}
_DATE_TYPES = {None, "Edm.Date", *_DATETIMES}
_V2_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_KEY_SAFE = "'(),=:@!$*+;"


class ODataConnection(DataSourceConnection):
    """An OData 4.0 / 4.01 / 2.0 data source (``DataSource.type`` odata4, odata401 or odata2)."""

    def __init__(self, source: DataSource, http: SourceHttp) -> None:
        if source.type not in VERSIONS:
            raise ConfigurationError(f"{source.name}: type {source.type!r} is not an OData version "
                                     f"({', '.join(VERSIONS)})")
        self.source, self.http = source, http
        self.version = 2 if source.type == "odata2" else 4
        self.supports_search = self.version == 4 and source.searchable
        #: entity sets ``sync`` skipped, and why (composite keys, unknown types)
        self.notes: list[str] = []
        self._tables: dict[str, EntitySetInfo] = {}
        self._metadata_fetched = False
        self._lock = threading.Lock()

    # -- schema -------------------------------------------------------------------------------------------------

    def sync(self) -> list[ExternalTable]:
        """The service's entity sets, read from ``$metadata``."""
        with self._lock:
            return self._load_metadata()

    def _load_metadata(self) -> list[ExternalTable]:
        self._metadata_fetched = True
        url = self.http.resolve("$metadata")
        status, _, body = self.http.get(url, headers={"Accept": "application/xml"})
        if not 200 <= status < 300:
            raise self._failure(url, status, body)
        tables, infos, notes = parse_csdl(body, self.source)
        self._tables, self.notes = infos, notes
        for note in notes:
            log.info("%s: %s", self.source.name, note)
        return tables

    def _table(self, name: str) -> EntitySetInfo | None:
        """The remote types of ``name``; ``$metadata`` is fetched once when ``sync`` has not run."""
        if name not in self._tables and not self._metadata_fetched:
            with self._lock:
                if not self._metadata_fetched:
                    try:
                        self._load_metadata()
                    except ExternalObjectError as exc:  # literals then follow their Python types
                        self.notes.append(f"$metadata unavailable: {exc.message}")
        return self._tables.get(name)

    # -- reads ------------------------------------------------------------------------------------------------

    def query(self, request: ExternalRequest) -> ExternalResult:
        """One page of ``request``: a GET on the entity set, or on ``request.page_token`` (a next link)."""
        table = self._table(request.table) or EntitySetInfo(None, {})
        if request.page_token:
            return self._rows(request.page_token, table, request.top)
        if request.search and not self.supports_search:
            raise ExternalObjectUnsupported(f"{self.source.name} does not support search ($search)")
        params: dict[str, str | int] = {}
        if request.columns and not request.count_only:
            params["$select"] = ",".join(request.columns)
        if request.filter is not None:
            params["$filter"] = self.render_filter(request.filter, table.types)
        if request.search:
            params["$search"] = search_phrase(request.search)
        if request.count_only:
            return ExternalResult(rows=[], total=self._count(request.table, params))
        if request.order_by:
            params["$orderby"] = ",".join(self._sort(key) for key in request.order_by)
        if request.top is not None and self.source.paging != "server":
            params["$top"] = request.top
        if request.skip:
            params["$skip"] = request.skip
        if request.count:
            params.update({"$inlinecount": "allpages"} if self.version == 2 else {"$count": "true"})
        if self.version == 2:
            params["$format"] = "json"
        return self._rows(self.http.resolve(_segment(request.table), params), table, request.top)

    def search(self, table: str, text: str, columns: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``text`` through ``$search`` (OData 4.x, when the source allows search)."""
        if not self.supports_search:
            raise ExternalObjectUnsupported(f"{self.source.name} does not support search"
                                            + (" (OData 2.0 has no $search)" if self.version == 2 else ""))
        phrase = search_phrase(text)
        if phrase == '""':
            return []
        params: dict[str, str | int] = {"$select": ",".join(columns)} if columns else {}
        params.update({"$search": phrase, "$top": limit})
        info = self._table(table) or EntitySetInfo(None, {})
        return self._rows(self.http.resolve(_segment(table), params), info, limit).rows

    def _headers(self) -> dict[str, str]:
        if self.version == 2:
            return {"Accept": "application/json", "DataServiceVersion": "2.0", "MaxDataServiceVersion": "2.0"}
        version = VERSIONS[self.source.type]
        return {"Accept": "application/json;odata.metadata=minimal", "OData-Version": version,
                "OData-MaxVersion": version}

    def _rows(self, url: str, table: EntitySetInfo, page_size: int | None = None) -> ExternalResult:
        headers = self._headers()
        if self.source.paging == "server" and self.version == 4:
            headers["Prefer"] = f"odata.maxpagesize={page_size or self.source.page_size}"
        status, _, body = self.http.get(url, headers=headers)
        if not 200 <= status < 300:
            raise self._failure(url, status, body)
        data = self._json(url, body)
        if self.version == 4 and isinstance(data, dict):
            rows, total = data.get("value"), data.get("@odata.count", data.get("@count"))
            next_link = data.get("@odata.nextLink", data.get("@nextLink"))
        else:
            wrapped = data.get("d") if isinstance(data, dict) else None
            rows = wrapped.get("results") if isinstance(wrapped, dict) else wrapped
            total = wrapped.get("__count") if isinstance(wrapped, dict) else None
            next_link = wrapped.get("__next") if isinstance(wrapped, dict) else None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ExternalObjectError(f"{self.source.name}: the answer from {url} holds no list of entities: "
                                      f"{_snippet(body)}")
        try:
            count = int(total) if total is not None else None
        except (TypeError, ValueError):
            raise ExternalObjectError(f"{self.source.name}: {url} answered a count that is not a number: "
                                      f"{total!r}") from None
        return ExternalResult(rows=[self._row(row, table, url) for row in rows], total=count,
                              next_page=urljoin(url, next_link) if isinstance(next_link, str) and next_link else None)

    def _count(self, entity_set: str, params: dict[str, str | int]) -> int:
        url = self.http.resolve(f"{_segment(entity_set)}/$count", params)
        status, _, body = self.http.get(url, headers={**self._headers(), "Accept": "text/plain"})
        if not 200 <= status < 300:
            raise self._failure(url, status, body)
        text = body.decode("utf-8-sig", errors="replace").strip()
        if text.isdigit():
            return int(text)
        raise ExternalObjectError(f"{self.source.name}: {url} answered a count that is not a number: {_snippet(body)}")

    def _row(self, raw: dict[str, Any], table: EntitySetInfo, url: str) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in raw.items():
            if "@" in name or name.startswith("__") or (isinstance(value, dict) and "__deferred" in value):
                continue
            try:
                row[name] = self._python(value, table.types.get(name))
            except (ValueError, ArithmeticError):
                raise ExternalObjectError(f"{self.source.name}: {url} answered {value!r} for {name}, which is not "
                                          f"a valid {table.types.get(name)}") from None
        return row

    def _python(self, value: Any, edm: str | None) -> Any:
        """A JSON value from the service as a Python value of its remote type."""
        if value is None:
            return None
        if isinstance(value, str) and edm in _DATE_TYPES and (match := _V2_DATE.match(value)):
            moment = datetime(1970, 1, 1) + timedelta(milliseconds=int(match.group(1)))
            return moment.date() if edm == "Edm.Date" else moment
        if isinstance(value, dict | list):
            return json.dumps(value, default=str)  # complex and collection values arrive as JSON text
        if edm in _INTS:
            return int(value)
        if edm == "Edm.Decimal":
            return Decimal(str(value))
        if edm in ("Edm.Double", "Edm.Single"):
            return float({"INF": "inf", "-INF": "-inf"}.get(value, value)) if isinstance(value, str) else value
        if edm == "Edm.Boolean" and isinstance(value, str):
            return value.lower() == "true"
        if not isinstance(value, str):
            return value
        if edm == "Edm.Date":
            return date.fromisoformat(value[:10])
        if edm in _DATETIMES:
            return _parse_datetime(value)
        if edm in _TIMES:
            return _parse_time(value)
        return value

    # -- filters and literals ---------------------------------------------------------------------------------

    def render_filter(self, node: Filter, types: dict[str, str] | None = None) -> str:
        """``node`` as a ``$filter`` expression for this OData version (``types``: remote types by column)."""
        types = types or {}
        if isinstance(node, Compare):
            return self._compare(node, types.get(node.column))
        if isinstance(node, In):
            return self._in(node, types.get(node.column))
        if isinstance(node, Negate):
            return f"not ({self.render_filter(node.item, types)})"
        joiner = " and " if isinstance(node, AllOf) else " or "
        if not node.items:
            return "true" if isinstance(node, AllOf) else "false"
        parts = [self.render_filter(item, types) for item in node.items]
        return joiner.join(f"({part})" if isinstance(item, AllOf | AnyOf) and len(item.items) > 1 else part
                           for item, part in zip(node.items, parts, strict=True))

    def _compare(self, node: Compare, edm: str | None) -> str:
        if node.op in ("startswith", "endswith", "contains"):
            if node.value is None:
                raise ExternalObjectUnsupported(f"{self.source.name}: {node.op} on {node.column} needs text, not null")
            text = _quote(str(node.value))
            if self.version == 4:
                return f"{node.op}({node.column},{text})"
            if node.op == "contains":
                return f"substringof({text},{node.column}) eq true"
            return f"{node.op}({node.column},{text}) eq true"
        if node.value is None and node.op not in ("eq", "ne"):
            raise ExternalObjectUnsupported(f"{self.source.name}: {node.column} {node.op} null cannot be sent")
        return f"{node.column} {node.op} {self.literal(node.value, edm, node.column)}"

    def _in(self, node: In, edm: str | None) -> str:
        literals = [self.literal(value, edm, node.column) for value in node.values]
        if not literals:
            return "true" if node.negated else "false"
        if self.source.type == "odata401" and "null" not in literals:
            text = f"{node.column} in ({','.join(literals)})"
        elif len(literals) == 1:
            text = f"{node.column} eq {literals[0]}"
        else:
            text = "(" + " or ".join(f"{node.column} eq {literal}" for literal in literals) + ")"
        if node.negated:
            return f"not ({text[1:-1] if text.startswith('(') else text})"
        return text

    def _sort(self, key: SortKey) -> str:
        # OData sorts nulls as the smallest values: first ascending, last descending (as SOQL does by default).
        if key.nulls_last is not None and key.nulls_last != key.descending:
            order = "DESC" if key.descending else "ASC"
            raise ExternalObjectUnsupported(
                f"{self.source.name}: OData cannot sort {key.column} {order} NULLS "
                f"{'LAST' if key.nulls_last else 'FIRST'} (nulls come {'last' if key.descending else 'first'})")
        return f"{key.column} desc" if key.descending else key.column

    def literal(self, value: Any, edm: str | None = None, column: str = "") -> str:
        """``value`` as an OData URL literal, by the remote type ``edm`` when known, else by its Python type."""
        if value is None:
            return "null"
        if edm is None:
            edm = _python_edm(value, self.version)
            if edm in _INTS or edm == "Edm.Decimal":  # numbers of unknown remote type go bare, without suffix
                return _number(value)
        try:
            value = coerce(value, edm)
        except (ValueError, ArithmeticError):
            raise ExternalObjectUnsupported(f"{self.source.name}: {value!r} is not a valid {edm} value for "
                                            f"{column or 'the column'}") from None
        v2 = self.version == 2
        if edm in _INTS or edm in _DECIMALS:
            return _number(value) + (_V2_SUFFIX.get(edm, "") if v2 else "")
        if edm == "Edm.Boolean":
            return "true" if value else "false"
        if edm == "Edm.Guid":
            return f"guid'{value}'" if v2 else str(value)
        if edm == "Edm.Date":
            return f"datetime'{value.isoformat()}T00:00:00'" if v2 else value.isoformat()
        if edm == "Edm.DateTimeOffset":
            return f"datetimeoffset'{_iso(value)}Z'" if v2 else f"{_iso(value)}Z"
        if edm == "Edm.DateTime":
            return f"datetime'{_iso(value)}'"
        if edm in _TIMES:
            return f"time'{_duration(value)}'" if v2 else value.isoformat()
        return _quote(str(value))

    # -- writes -----------------------------------------------------------------------------------------------

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> list[RowResult]:
        """POST each row to the entity set; the new key comes from the answer's body or its Location header."""
        info = self._writable(table, "insert")
        headers = self._write_headers()
        if self.version == 4:
            headers["Prefer"] = "return=representation"
        results: list[RowResult] = []
        outage: list[str] = []
        for row in rows:
            answer = self._send_row(outage, "POST", lambda: _segment(table), row, info, headers)
            if isinstance(answer, RowResult):
                results.append(answer)
                continue
            key = self._new_key(answer[2], answer[1], info)
            if key is None and info.key and row.get(info.key) is not None:
                key = str(row[info.key])
            results.append(RowResult(key=key, created=True))
        return results

    def update(self, table: str, key: str, rows: Sequence[tuple[Any, dict[str, Any]]]) -> list[RowResult]:
        """PATCH each row at ``EntitySet(<key>)`` (2.0: the ``updateMethod`` option may choose MERGE or PUT)."""
        info = self._writable(table, "update")
        method = str(self.source.options.get("updateMethod", "PATCH")).upper() if self.version == 2 else "PATCH"
        if method not in ("PATCH", "MERGE", "PUT"):
            raise ConfigurationError(f"{self.source.name}: options.updateMethod is PATCH, MERGE or PUT, not {method}")
        headers = self._write_headers()
        if method == "MERGE":
            method, headers["X-HTTP-Method"] = "POST", "MERGE"
        results: list[RowResult] = []
        outage: list[str] = []
        for key_value, changes in rows:
            answer = self._send_row(outage, method, lambda v=key_value: self._entity_path(table, key, v, info),
                                    changes, info, headers)
            results.append(answer if isinstance(answer, RowResult) else RowResult(key=str(key_value)))
        return results

    def delete(self, table: str, key: str, keys: Sequence[Any]) -> list[RowResult]:
        """DELETE each ``EntitySet(<key>)``."""
        info = self._writable(table, "delete")
        results: list[RowResult] = []
        outage: list[str] = []
        for key_value in keys:
            answer = self._send_row(outage, "DELETE", lambda v=key_value: self._entity_path(table, key, v, info),
                                    None, info, self._write_headers())
            results.append(answer if isinstance(answer, RowResult) else RowResult(key=str(key_value)))
        return results

    def _writable(self, table: str, operation: str) -> EntitySetInfo:
        if not self.source.writable:
            raise ExternalObjectUnsupported(f"{self.source.name} is not writable: {operation} on {table} is refused")
        return self._table(table) or EntitySetInfo(None, {})

    def _write_headers(self) -> dict[str, str]:
        return {**self._headers(), "Content-Type": "application/json"}

    def _entity_path(self, table: str, key: str, value: Any, info: EntitySetInfo) -> str:
        """``EntitySet(<key literal>)``, path-encoded: ``Orders('SO%2F1')``, ``OrderLines(7)``."""
        return f"{_segment(table)}({quote(self.literal(value, info.types.get(key), key), _KEY_SAFE)})"

    def _send_row(self, outage: list[str], method: str, path: Callable[[], str], row: dict[str, Any] | None,
                  info: EntitySetInfo, headers: dict[str, str]) -> RowResult | tuple[int, Any, bytes]:
        """One row's request: the answer, or a RowResult with the error. Once the source is unreachable
        (``outage``), the remaining rows are not sent."""
        if outage:
            return RowResult(error=outage[0])
        try:
            url = self.http.resolve(path())
            body = None if row is None else json_body(row, info.types, self.version)
            status, answer_headers, content = self.http.request(method, url, body=body, headers=headers)
        except ExternalObjectUnsupported as exc:
            return RowResult(error=exc.message)
        except ValueError as exc:
            return RowResult(error=f"{self.source.name}: {exc}")
        except ExternalObjectError as exc:
            outage.append(exc.message)
            return RowResult(error=exc.message)
        if not 200 <= status < 300:
            return RowResult(error=self._failure(url, status, content).message)
        return status, answer_headers, content

    def _new_key(self, body: bytes, headers: Any, info: EntitySetInfo) -> str | None:
        if body.strip() and info.key:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            entity = data.get("d", data) if isinstance(data, dict) else None
            if isinstance(entity, dict) and entity.get(info.key) is not None:
                return str(entity[info.key])
        location = headers.get("Location") or headers.get("OData-EntityId") or ""
        match = re.search(r"\(([^()]*)\)/?$", unquote(location))
        if match is None:
            return None
        literal = match.group(1).split("=", 1)[-1] if re.match(r"^\w+=", match.group(1)) else match.group(1)
        literal = re.sub(r"^(guid|datetime|datetimeoffset)(?=')", "", literal)
        if len(literal) >= 2 and literal[0] == literal[-1] == "'":
            return literal[1:-1].replace("''", "'")
        return literal.rstrip("LlMm") if re.match(r"^-?\d+[LlMm]?$", literal) else literal

    # -- errors -----------------------------------------------------------------------------------------------

    def _json(self, url: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise ExternalObjectError(f"{self.source.name}: the answer from {url} is not JSON: "
                                      f"{_snippet(body)}") from None

    def _failure(self, url: str, status: int, body: bytes) -> ExternalObjectError:
        """An error naming the source, the status and URL, and the service's own message when it gave one."""
        return ExternalObjectError(f"{self.source.name}: HTTP {status} from {url}: {odata_error(body)}")

    def close(self) -> None:
        """Close the source's HTTP connections."""
        self.http.close()


# -- search, URLs and errors --------------------------------------------------------------------------------------


def search_phrase(text: str) -> str:
    """``text`` as a quoted ``$search`` phrase (double quotes and backslashes cannot appear inside one)."""
    return '"' + " ".join(re.sub(r'["\\]', " ", text).split()) + '"'


def _segment(entity_set: str) -> str:
    return quote(entity_set, safe="")


def odata_error(body: bytes) -> str:
    """The service's error message from an OData error body (JSON 4.x / 2.0, or XML), else the body's start."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        message = error.get("message")
        message = message.get("value") if isinstance(message, dict) else message
        if message:
            code = error.get("code")
            return f"{str(message)[:1000]}" + (f" ({code})" if code else "")
    match = re.search(rb"<(?:\w+:)?message[^>]*>(.*?)</(?:\w+:)?message>", body, re.S)
    if match:
        return match.group(1).decode("utf-8", errors="replace")[:1000]
    return _snippet(body) or "(empty body)"


__all__ = ["VERSIONS", "ODataConnection", "coerce", "json_body", "odata_error", "parse_csdl", "search_phrase"]
