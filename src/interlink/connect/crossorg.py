"""The cross-org adapter: another org (Interlink or the real platform) as an external data source.

It speaks the other org's REST API only: ``sobjects`` and ``describe`` for the schema, ``query`` with SOQL built
from the pushdown tree (every value quoted by :mod:`interlink.soql.render`), ``nextRecordsUrl`` for server-driven
paging (``LIMIT``/``OFFSET`` for client-driven), ``search`` with SOSL, and ``sobjects`` for writes. The remote
record Id is the external object's ``ExternalId``. Authenticate with a named credential (for another org: OAuth
2.0 client credentials or JWT bearer against its token endpoint).

::

    # metadata/dataSources/SalesOrg.yaml
    type: crossorg
    namedCredential: SalesOrg      # https://sales.example.com, OAuth client credentials
    options: {apiVersion: "66.0", objects: [Account, Contact]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any
from urllib.parse import quote as url_quote

from interlink.connect.base import (
    DataSource,
    DataSourceConnection,
    ExternalColumn,
    ExternalRequest,
    ExternalResult,
    ExternalTable,
    RowResult,
)
from interlink.connect.http import SourceHttp
from interlink.errors import ExternalObjectError, ExternalObjectUnsupported
from interlink.soql.render import literal, render_filter

_TYPES = {"string": "string", "picklist": "string", "multipicklist": "string", "email": "string", "phone": "string",
          "id": "string", "reference": "string", "combobox": "string", "encryptedstring": "string",
          "textarea": "textarea", "url": "url", "int": "int", "double": "double", "currency": "double",
          "percent": "double", "boolean": "boolean", "date": "date", "datetime": "datetime", "time": "time"}
_SYSTEM = {"Id"}


class CrossOrgConnection(DataSourceConnection):
    """Another org's records, read and written through its REST API."""

    def __init__(self, source: DataSource, http: SourceHttp) -> None:
        self.source = source
        self.http = http
        self.version = str(source.options.get("apiVersion", "66.0"))
        self.supports_search = source.searchable
        self._types: dict[str, dict[str, str]] = {}

    @property
    def _base(self) -> str:
        return f"services/data/v{self.version}"

    def _json(self, method: str, path: str, *, body: Any = None,
              params: Mapping[str, str | int] | None = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body, default=_json_default).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        status, _, content = self.http.request(method, path, body=payload, params=params, headers=headers)
        try:
            answer = json.loads(content) if content else None
        except ValueError:
            answer = content[:300].decode("utf-8", "replace")
        return status, answer

    def _ok(self, method: str, path: str, **kwargs: Any) -> Any:
        status, answer = self._json(method, path, **kwargs)
        if not 200 <= status < 300:
            raise ExternalObjectError(f"{self.source.name}: HTTP {status} from {path}: {_message(answer)}")
        return answer

    # -- schema --------------------------------------------------------------------------------------------------

    def sync(self) -> list[ExternalTable]:
        wanted = self.source.options.get("objects")
        if wanted:
            names = [str(n) for n in wanted]
        else:
            listing = self._ok("GET", f"{self._base}/sobjects")
            names = [o["name"] for o in listing.get("sobjects", []) if o.get("queryable") and not o.get(
                "name", "").endswith(("__e", "__x", "ChangeEvent", "History", "Share", "Feed"))]
        return [self._table(name) for name in names]

    def _table(self, name: str) -> ExternalTable:
        described = self._ok("GET", f"{self._base}/sobjects/{url_quote(name)}/describe")
        columns = []
        types: dict[str, str] = {}
        for fdef in described.get("fields", []):
            kind = _TYPES.get(str(fdef.get("type")), "string")
            types[fdef["name"]] = str(fdef.get("type"))
            if fdef["name"] in _SYSTEM:
                columns.insert(0, ExternalColumn("Id", "string", "Record ID", 18, nullable=False))
                continue
            columns.append(ExternalColumn(fdef["name"], kind, fdef.get("label", ""),
                                          length=int(fdef.get("length") or 255),
                                          precision=int(fdef.get("precision") or 18), scale=int(fdef.get("scale") or 0),
                                          nullable=bool(fdef.get("nillable", True)),
                                          filterable=bool(fdef.get("filterable", True)),
                                          sortable=bool(fdef.get("sortable", True))))
        self._types[name.lower()] = types
        return ExternalTable(described.get("name", name), "Id", tuple(columns), described.get("label", name),
                             described.get("labelPlural", name), searchable=bool(described.get("searchable")),
                             writable=bool(described.get("updateable")))

    # -- reads ---------------------------------------------------------------------------------------------------

    def soql(self, request: ExternalRequest) -> str:
        """The SOQL a request becomes."""
        columns = "COUNT()" if request.count_only else ", ".join(request.columns)
        text = f"SELECT {columns} FROM {request.table}"
        if request.filter is not None:
            text += f" WHERE {render_filter(request.filter)}"
        if request.order_by and not request.count_only:
            keys = []
            for key in request.order_by:
                nulls = "" if key.nulls_last is None else (" NULLS LAST" if key.nulls_last else " NULLS FIRST")
                keys.append(f"{key.column} {'DESC' if key.descending else 'ASC'}{nulls}")
            text += " ORDER BY " + ", ".join(keys)
        if not request.count_only:
            if request.top is not None:
                text += f" LIMIT {request.top}"
            if request.skip > 2000:
                raise ExternalObjectUnsupported(f"{self.source.name}: the other org pages at most 2000 rows deep by "
                                                "OFFSET; use paging: server for this source")
            if request.skip:
                text += f" OFFSET {request.skip}"
        return text

    def query(self, request: ExternalRequest) -> ExternalResult:
        if request.search:
            return ExternalResult(self.search(request.table, request.search, request.columns, request.top or 200))
        if request.page_token:
            if not request.page_token.startswith("/services/data/"):
                raise ExternalObjectError(f"{self.source.name}: refused the next-page link {request.page_token!r}")
            answer = self._ok("GET", request.page_token.lstrip("/"))
        else:
            answer = self._ok("GET", f"{self._base}/query", params={"q": self.soql(request)})
        if request.count_only:
            return ExternalResult([], int(answer.get("totalSize", 0)))
        rows = [self._row(request.table, record) for record in answer.get("records", [])]
        next_page = answer.get("nextRecordsUrl") if self.source.paging == "server" else None
        total = answer.get("totalSize") if request.count or request.page_token is None else None
        return ExternalResult(rows, None if total is None else int(total), next_page)

    def _row(self, table: str, record: Mapping[str, Any]) -> dict[str, Any]:
        types = self._types.get(table.lower(), {})
        row: dict[str, Any] = {}
        for name, value in record.items():
            if name == "attributes":
                continue
            row[name] = _parse(types.get(name), value)
        return row

    def search(self, table: str, text: str, columns: Sequence[str], limit: int) -> list[dict[str, Any]]:
        if not self.supports_search:
            raise ExternalObjectUnsupported(f"{self.source.name} is not searchable (searchable: true in its metadata)")
        terms = "".join("\\" + c if c in "?&|!{}[]()^~*:\\\"'+-" else c for c in text)
        sosl = f"FIND {{{terms}}} IN ALL FIELDS RETURNING {table}({', '.join(columns)}) LIMIT {int(limit)}"
        answer = self._ok("GET", f"{self._base}/search", params={"q": sosl})
        return [self._row(table, r) for r in answer.get("searchRecords", [])]

    # -- writes --------------------------------------------------------------------------------------------------

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> list[RowResult]:
        results = []
        for row in rows:
            body = {k: v for k, v in row.items() if k != "Id"}
            status, answer = self._json("POST", f"{self._base}/sobjects/{url_quote(table)}", body=body)
            if 200 <= status < 300 and isinstance(answer, dict) and answer.get("id"):
                results.append(RowResult(key=answer["id"], created=True))
            else:
                results.append(RowResult(error=f"HTTP {status}: {_message(answer)}"))
        return results

    def update(self, table: str, key: str, rows: Sequence[tuple[Any, dict[str, Any]]]) -> list[RowResult]:
        results = []
        for value, changes in rows:
            body = {k: v for k, v in changes.items() if k != "Id"}
            status, answer = self._json("PATCH", f"{self._base}/sobjects/{url_quote(table)}/{url_quote(str(value))}",
                                        body=body)
            results.append(RowResult(key=str(value)) if 200 <= status < 300 else
                           RowResult(error=f"HTTP {status}: {_message(answer)}"))
        return results

    def delete(self, table: str, key: str, keys: Sequence[Any]) -> list[RowResult]:
        results = []
        for value in keys:
            status, answer = self._json("DELETE", f"{self._base}/sobjects/{url_quote(table)}/{url_quote(str(value))}")
            results.append(RowResult(key=str(value)) if 200 <= status < 300 else
                           RowResult(error=f"HTTP {status}: {_message(answer)}"))
        return results

    def display_url(self, table: str, key: str) -> str:
        return f"{self.http.base_url.rstrip('/')}/{key}"

    def close(self) -> None:
        self.http.close()


def _message(answer: Any) -> str:
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        return "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in answer)
    return str(answer)[:300]


def _parse(kind: str | None, value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "datetime":
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment.replace(tzinfo=None) - (moment.utcoffset() or (moment - moment))
        if kind == "time":
            return time.fromisoformat(value.rstrip("Z"))
    except ValueError:
        return value
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return literal(value) if isinstance(value, datetime) else value.isoformat()
    return str(value)


__all__ = ["CrossOrgConnection"]
