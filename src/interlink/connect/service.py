"""The connect service: runs external-object queries and writes against their data sources.

It is the query engine's :class:`~interlink.soql.engine.ExternalRunner` and the records service's handler for
external objects, so SOQL, REST, GraphQL and the console reach remote rows through the same two doors as stored
ones. For each request it

- maps field API names to remote columns (``externalName``; ``ExternalId`` is the table's key),
- turns record Ids into remote keys and back: an external row's Id is a hash of its object and key (every process
  derives the same one), remembered in ``il_external_key`` so an Id can be looked up again,
- pages: client-driven (``$top``/``$skip`` by the batch size) or server-driven (the source's next-page token,
  carried in the query locator; a source page larger than the batch is served in slices),
- meters callouts against the hourly allocation (``HourlyODataCallout``), and
- keeps answers for ``cacheSeconds`` when the source asks for it (off by default).

Failures of the source surface as EXTERNAL_OBJECT_EXCEPTION naming the source; they never reach queries on stored
objects, which do not come here.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from interlink import ids
from interlink.callouts.credentials import NamedCredential
from interlink.connect.base import DataSource, DataSourceConnection, ExternalRequest, ExternalResult, RowResult
from interlink.connect.sources import adapter_class, source_credential
from interlink.errors import (
    ExternalObjectError,
    ExternalObjectUnsupported,
    InterlinkError,
    InvalidFieldError,
    NotFoundError,
)
from interlink.metadata.model import FieldDef, ObjectDef
from interlink.records.context import Context
from interlink.security.limits import ApiUsage
from interlink.soql.engine import ExternalPage, ExternalRunner
from interlink.soql.external import (
    AllOf,
    AnyOf,
    Compare,
    ExternalChild,
    ExternalPlan,
    Filter,
    In,
    Negate,
    SortKey,
    bind_dates,
)
from interlink.store.database import Store

ConnectionFactory = Callable[[DataSource, NamedCredential | None], DataSourceConnection]
_CHILD_KEYS_PER_REQUEST = 50
_UNKNOWN_KEY = "\u0000no such record"
_CACHE_ENTRIES = 256
_ID_CACHE = 200_000


def external_record_id(obj: ObjectDef, key: str) -> str:
    """The 18-character Id of the row of ``obj`` whose remote key is ``key`` (the same in every process)."""
    digest = int.from_bytes(hashlib.sha256(f"{obj.name.lower()}\0{key}".encode()).digest()[:9], "big")
    body = []
    for _ in range(12):
        digest, index = divmod(digest, 62)
        body.append(ids.BASE62[index])
    return ids.to_18(obj.key_prefix + "".join(body))


class ExternalData(ExternalRunner):
    """External data sources of one org: their connections, Ids, usage and cache."""

    def __init__(self, store: Store, *, hourly_allocation: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.sources: dict[str, DataSource] = {}
        self.credentials: Mapping[str, NamedCredential] = {}
        self.project_dir = Path(".")
        self.usage = ApiUsage(store, hourly_allocation, table="il_external_usage", window_minutes=60,
                              limit_message="HourlyODataCallout Limit exceeded.", limit_error_code="LIMIT_EXCEEDED")
        self.factories: dict[str, ConnectionFactory] = {}
        self._connections: dict[str, DataSourceConnection] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, ExternalResult]] = OrderedDict()
        # (object, key) -> Id and back, for mappings known to be stored
        self._ids: dict[tuple[str, str], str] = {}
        self._keys: dict[str, tuple[str, str]] = {}

    # -- configuration -------------------------------------------------------------------------------------------

    def configure(self, sources: Mapping[str, DataSource], credentials: Mapping[str, NamedCredential],
                  project_dir: Path) -> None:
        """Use these sources from now on (closing connections to the old ones)."""
        with self._lock:
            old, self._connections = self._connections, {}
            self.sources = dict(sources)
            self.credentials = credentials
            self.project_dir = project_dir
            self._cache.clear()
        for connection in old.values():
            connection.close()

    def source(self, name: str) -> DataSource:
        found = self.sources.get(name.lower())
        if found is None:
            raise ExternalObjectError(f"there is no external data source {name!r} (metadata/dataSources/{name}.yaml)")
        return found

    def connection(self, name: str) -> DataSourceConnection:
        """The open connection to the source called ``name`` (opened on first use)."""
        source = self.source(name)
        with self._lock:
            found = self._connections.get(source.name.lower())
            if found is None:
                found = self._open(source)
                self._connections[source.name.lower()] = found
            return found

    def _open(self, source: DataSource) -> DataSourceConnection:
        if source.type in self.factories:
            credential = source_credential(source, self.credentials) if source.type != "python" else None
            return self.factories[source.type](source, credential)
        if source.type == "python":
            return adapter_class(source, self.project_dir)(source)  # type: ignore[call-arg]
        from interlink.connect.http import SourceHttp

        http = SourceHttp(source, source_credential(source, self.credentials))
        if source.type == "crossorg":
            from interlink.connect.crossorg import CrossOrgConnection

            return CrossOrgConnection(source, http)
        from interlink.connect.odata import ODataConnection

        return ODataConnection(source, http)

    def close(self) -> None:
        with self._lock:
            old, self._connections = self._connections, {}
        for connection in old.values():
            connection.close()

    # -- calling a source ----------------------------------------------------------------------------------------

    def _call(self, source: DataSource, what: str, call: Callable[[], Any]) -> Any:
        self.usage.count()
        try:
            return call()
        except InterlinkError:
            raise
        except Exception as exc:  # a custom adapter's bug or an unexpected answer: name the source
            raise ExternalObjectError(f"{source.name}: {what} failed: {type(exc).__name__}: {exc}") from None

    def _query(self, source: DataSource, request: ExternalRequest) -> ExternalResult:
        connection = self.connection(source.name)
        if source.cache_seconds <= 0:
            return self._call(source, "query", lambda: connection.query(request))  # type: ignore[no-any-return]
        key = (source.name.lower(), request)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(key)
                return cached[1]
        result: ExternalResult = self._call(source, "query", lambda: connection.query(request))
        with self._lock:
            self._cache[key] = (now + source.cache_seconds, result)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return result

    # -- names and keys ------------------------------------------------------------------------------------------

    @staticmethod
    def remote_name(obj: ObjectDef, fdef: FieldDef) -> str:
        if fdef.name == "Id" or fdef.name == "DisplayUrl":
            raise ExternalObjectUnsupported(f"{obj.name}.{fdef.name} is computed by the org and has no remote column")
        return fdef.external_name or fdef.name

    def key_column(self, obj: ObjectDef) -> str:
        key = obj.field("ExternalId")
        assert key is not None
        return key.external_name or "ExternalId"

    def remember(self, obj: ObjectDef, keys: Sequence[str]) -> dict[str, str]:
        """Record Ids for remote keys, remembering new ones so the Id can be looked up later.

        Mappings this process has seen stored are kept in memory (they never change), so a page of rows already
        answered once costs no database round trip."""
        name = obj.name.lower()
        wanted: dict[str, str] = {}
        unsure: dict[str, str] = {}
        for key in keys:
            if key in wanted:
                continue
            record_id = self._ids.get((name, key))
            if record_id is None:
                record_id = unsure[key] = external_record_id(obj, key)
            wanted[key] = record_id
        if not unsure:
            return wanted
        table = self.store.system["il_external_key"]
        with self.store.read() as conn:
            known = {row[0] for chunk in _chunks(list(unsure.values()), 500)
                     for row in conn.execute(select(table.c.id).where(table.c.id.in_(chunk)))}
        missing = [{"id": record_id, "object": obj.name, "external_id": key}
                   for key, record_id in unsure.items() if record_id not in known]
        if missing:
            with self.store.write() as conn:
                for row in missing:  # a concurrent reader may have added the same (deterministic) row
                    exists = conn.execute(select(table.c.id).where(table.c.id == row["id"])).first()
                    if exists is None:
                        conn.execute(table.insert().values(**row))
        if len(self._ids) + len(unsure) > _ID_CACHE:
            self._ids.clear()
            self._keys.clear()
        for key, record_id in unsure.items():
            self._ids[(name, key)] = record_id
            self._keys[record_id] = (name, key)
        return wanted

    def keys_for(self, obj: ObjectDef, record_ids: Sequence[str]) -> dict[str, str]:
        """Remote keys of record Ids this org has answered before (unknown Ids are left out)."""
        table = self.store.system["il_external_key"]
        normalized = [i for i in (ids.normalize(r) for r in record_ids) if i is not None]
        found: dict[str, str] = {}
        name = obj.name.lower()
        for record_id in normalized:
            cached = self._keys.get(record_id)
            if cached is not None and cached[0] == name:
                found[record_id] = cached[1]
        normalized = [i for i in normalized if i not in found]
        with self.store.read() as conn:
            for chunk in _chunks(normalized, 500):
                for row in conn.execute(select(table.c.id, table.c.external_id)
                                        .where(table.c.id.in_(chunk), table.c.object == obj.name)):
                    found[row.id] = row.external_id
        return found

    def _filter(self, obj: ObjectDef, node: Filter | None) -> Filter | None:
        """A filter on field names made into one on remote columns (Ids become keys)."""
        if node is None:
            return None
        if isinstance(node, AllOf):
            return AllOf(tuple(self._filter(obj, i) for i in node.items))  # type: ignore[misc]
        if isinstance(node, AnyOf):
            return AnyOf(tuple(self._filter(obj, i) for i in node.items))  # type: ignore[misc]
        if isinstance(node, Negate):
            return Negate(self._filter(obj, node.item))  # type: ignore[arg-type]
        fdef = obj.field(node.column)
        assert fdef is not None
        if fdef.name == "Id":
            values = [node.value] if isinstance(node, Compare) else list(node.values)
            keys = self.keys_for(obj, [v for v in values if isinstance(v, str)])
            mapped = tuple(None if v is None else keys.get(ids.normalize(v) or "", _UNKNOWN_KEY) for v in values)
            column = self.key_column(obj)
            if isinstance(node, Compare):
                return Compare(column, node.op, mapped[0])
            return In(column, mapped, node.negated)
        column = self.remote_name(obj, fdef)
        if isinstance(node, Compare):
            return Compare(column, node.op, node.value)
        return In(column, node.values, node.negated)

    def _columns(self, obj: ObjectDef, fields: Sequence[FieldDef]) -> tuple[str, ...]:
        columns = [self.key_column(obj)]
        for fdef in fields:
            if fdef.name not in ("Id", "DisplayUrl", "ExternalId"):
                columns.append(self.remote_name(obj, fdef))
        return tuple(dict.fromkeys(columns))

    def _rows(self, source: DataSource, obj: ObjectDef, raw: Sequence[Mapping[str, Any]],
              fields: Sequence[FieldDef]) -> list[dict[str, Any]]:
        key_column = self.key_column(obj)
        keys = []
        for row in raw:
            key = row.get(key_column)
            if key is None:
                raise ExternalObjectError(f"{source.name}: a row of {obj.external_name} has no key ({key_column})")
            keys.append(str(key))
        record_ids = self.remember(obj, keys)
        connection = self.connection(source.name)
        display = getattr(connection, "display_url", None)
        rows = []
        for row, key in zip(raw, keys, strict=True):
            out: dict[str, Any] = {"Id": record_ids[key], "ExternalId": key}
            for fdef in fields:
                if fdef.name == "DisplayUrl":
                    out["DisplayUrl"] = display(obj.external_name, key) if callable(display) else None
                elif fdef.name not in ("Id", "ExternalId"):
                    out[fdef.name] = row.get(fdef.external_name or fdef.name)
            rows.append(out)
        return rows

    def _fetch_fields(self, plan: ExternalPlan) -> list[FieldDef]:
        """The root fields a plan needs from the source: its own, the lookups parents are read by, and the keys
        its child subqueries match on."""
        obj = plan.object
        fields = list(plan.fields)
        fields += [p.lookup for p in plan.parents]
        for child in plan.children:
            target = obj.field(child.parent_field)
            assert target is not None
            fields.append(target)
        return list({f.name: f for f in fields}.values())

    # -- the runner ------------------------------------------------------------------------------------------------

    def run(self, plan: ExternalPlan, context: Context, *, offset: int, batch_size: int, state: Any,
            today: date) -> ExternalPage:
        obj = plan.object
        source = self.source(obj.data_source)
        where = self._filter(obj, bind_dates(plan.filter, obj, today))
        order = tuple(SortKey(self._sort_column(obj, k.column), k.descending, k.nulls_last) for k in plan.order_by)
        if plan.kind == "count":
            result = self._query(source, ExternalRequest(obj.external_name, (self.key_column(obj),), where,
                                                         count=True, count_only=True))
            total = max(0, (result.total or 0) - plan.offset)
            return ExternalPage([], total if plan.limit is None else min(total, plan.limit))
        remaining = None if plan.limit is None else plan.limit - offset
        if remaining is not None and remaining <= 0:
            return ExternalPage([], offset, None, True)
        fields = self._fetch_fields(plan)
        columns = self._columns(obj, fields)
        if source.paging == "server":
            raw, total, next_state = self._server_page(source, obj, plan, columns, where, order, batch_size,
                                                       remaining, state)
        else:
            top = min(batch_size, source.page_size) if remaining is None else min(batch_size, source.page_size,
                                                                                  remaining)
            # The total is known without a count when the query's LIMIT fits in this page.
            count = offset == 0 and (remaining is None or remaining > top)
            result = self._query(source, ExternalRequest(obj.external_name, columns, where, order, top,
                                                         plan.offset + offset, count=count))
            raw = result.rows[:top]
            total = None if result.total is None else max(0, result.total - plan.offset)
            # a source that caps its pages below $top says so with a next link: keep paging by $skip
            more = len(result.rows) >= top or (bool(result.next_page) and bool(raw))
            next_state = None if not more else "client"
        if total is not None and plan.limit is not None:
            total = min(total, plan.limit)
        rows = self._rows(source, obj, raw, fields)
        end = offset + len(rows)
        done = next_state is None or (total is not None and end >= total) or \
            (remaining is not None and len(rows) >= remaining)
        return ExternalPage(rows, total, None if done else next_state, done)

    def _sort_column(self, obj: ObjectDef, name: str) -> str:
        fdef = obj.field(name)
        assert fdef is not None
        return self.key_column(obj) if fdef.name in ("Id", "ExternalId") else self.remote_name(obj, fdef)

    def _server_page(self, source: DataSource, obj: ObjectDef, plan: ExternalPlan, columns: tuple[str, ...],
                     where: Filter | None, order: tuple[SortKey, ...], batch_size: int, remaining: int | None,
                     state: Any) -> tuple[list[Mapping[str, Any]], int | None, Any]:
        """One batch of server-driven paging. ``state`` is (the token of the source page, rows of it served)."""
        token, served = state if isinstance(state, tuple) else (None, 0)
        request = ExternalRequest(obj.external_name, columns, where, order, plan.limit, plan.offset,
                                  count=token is None, page_token=token)
        result = self._query(source, request)
        limit = batch_size if remaining is None else min(batch_size, remaining)
        rows = result.rows[served:served + limit]
        total = None if result.total is None else max(0, result.total - (plan.offset if token is None else 0))
        if served + len(rows) < len(result.rows):
            next_state: Any = (token, served + len(rows))
        elif result.next_page:
            next_state = (result.next_page, 0)
        else:
            next_state = None
        return rows, total if token is None else None, next_state

    def children(self, child: ExternalChild, keys: Sequence[Any], context: Context,
                 today: date) -> dict[Any, list[dict[str, Any]]]:
        grouped: dict[Any, list[dict[str, Any]]] = {}
        plan = child.plan
        assert plan is not None
        for chunk in _chunks(list(keys), _CHILD_KEYS_PER_REQUEST):
            scoped = plan.with_filter(In(child.lookup.name, tuple(chunk)))
            offset, state = 0, None
            while True:
                page = self.run(scoped, context, offset=offset, batch_size=2000, state=state, today=today)
                for row in page.rows:
                    grouped.setdefault(row.get(child.lookup.name), []).append(row)
                offset += len(page.rows)
                if page.done or not page.rows:
                    break
                state = page.state
        return grouped

    def search_ids(self, obj: ObjectDef, text: str, limit: int) -> list[str]:
        """SOSL on an external object: the source's own search, as record Ids in its order."""
        source = self.source(obj.data_source)
        connection = self.connection(source.name)
        if not (source.searchable and connection.supports_search):
            raise ExternalObjectUnsupported(f"{obj.name}: data source {source.name} does not support search "
                                            "(searchable: true in its metadata, and an adapter that can search)")
        key = self.key_column(obj)
        rows = self._call(source, "search", lambda: connection.search(obj.external_name, text, [key], limit))
        keys = [str(row[key]) for row in rows if row.get(key) is not None]
        known = self.remember(obj, keys)
        return [known[k] for k in dict.fromkeys(keys)]

    # -- reads and writes by Id (REST sObject rows, the records service) -------------------------------------------

    def retrieve(self, obj: ObjectDef, record_ids: Sequence[str], field_names: Sequence[str] | None = None,
                 ) -> dict[str, dict[str, Any]]:
        """Rows of ``obj`` by record Id (Python values keyed by field name); unknown Ids are left out."""
        source = self.source(obj.data_source)
        keys = self.keys_for(obj, record_ids)
        if not keys:
            return {}
        fields = [f for f in obj.fields if field_names is None or f.name.lower() in {n.lower() for n in field_names}]
        columns = self._columns(obj, fields)
        result = self._query(source, ExternalRequest(obj.external_name, columns,
                                                     In(self.key_column(obj), tuple(keys.values())),
                                                     top=len(keys)))
        rows = self._rows(source, obj, result.rows, fields)
        return {row["Id"]: row for row in rows}

    def find_ids(self, obj: ObjectDef, fdef: FieldDef, values: Sequence[Any]) -> dict[Any, list[str]]:
        """Ids of the rows whose field ``fdef`` holds each of ``values`` (exact matches, as the source compares)."""
        found: dict[Any, list[str]] = {v: [] for v in values}
        wanted = [v for v in dict.fromkeys(values) if v is not None]
        if not wanted:
            return found
        source = self.source(obj.data_source)
        column = self.key_column(obj) if fdef.name == "ExternalId" else self.remote_name(obj, fdef)
        result = self._query(source, ExternalRequest(obj.external_name, self._columns(obj, [fdef]),
                                                     In(column, tuple(wanted)), top=len(wanted) * 2 + 1))
        for row in self._rows(source, obj, result.rows, [fdef]):
            value = row.get(fdef.name)
            if value in found:
                found[value].append(row["Id"])
        return found

    def insert(self, obj: ObjectDef, rows: Sequence[dict[str, Any]]) -> list[RowResult]:
        source = self._writable(obj, "create")
        remote = [self._remote_values(obj, row) for row in rows]
        connection = self.connection(source.name)
        self._cache.clear()
        return self._call(source, "insert", lambda: connection.insert(obj.external_name, remote))  # type: ignore[no-any-return]

    def update(self, obj: ObjectDef, changes: Sequence[tuple[str, dict[str, Any]]]) -> list[RowResult]:
        """Change rows by Id: ``changes`` are (record Id, field values)."""
        source = self._writable(obj, "update")
        keys = self.keys_for(obj, [record_id for record_id, _ in changes])
        pairs = []
        for record_id, values in changes:
            if record_id not in keys:
                raise NotFoundError()
            pairs.append((keys[record_id], self._remote_values(obj, values)))
        connection = self.connection(source.name)
        self._cache.clear()
        return self._call(source, "update",  # type: ignore[no-any-return]
                          lambda: connection.update(obj.external_name, self.key_column(obj), pairs))

    def delete(self, obj: ObjectDef, record_ids: Sequence[str]) -> list[RowResult]:
        source = self._writable(obj, "delete")
        keys = self.keys_for(obj, record_ids)
        missing = [r for r in record_ids if r not in keys]
        if missing:
            raise NotFoundError()
        connection = self.connection(source.name)
        self._cache.clear()
        return self._call(source, "delete",  # type: ignore[no-any-return]
                          lambda: connection.delete(obj.external_name, self.key_column(obj),
                                                    [keys[r] for r in record_ids]))

    def _writable(self, obj: ObjectDef, operation: str) -> DataSource:
        source = self.source(obj.data_source)
        if not source.writable:
            raise ExternalObjectUnsupported(f"{obj.name}: data source {source.name} is read only "
                                            f"(set writable: true in its metadata to allow {operation})")
        return source

    def _remote_values(self, obj: ObjectDef, values: Mapping[str, Any]) -> dict[str, Any]:
        remote: dict[str, Any] = {}
        for name, value in values.items():
            fdef = obj.field(name)
            if fdef is None:
                raise InvalidFieldError(f"No such column '{name}' on sobject of type {obj.name}", [name])
            if fdef.name in ("Id", "DisplayUrl"):
                continue
            remote[self.key_column(obj) if fdef.name == "ExternalId" else self.remote_name(obj, fdef)] = value
        return remote


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


__all__ = ["ExternalData", "external_record_id"]
