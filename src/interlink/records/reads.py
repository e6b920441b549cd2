"""Reads the write path needs: records by id, by external id, and changes in a time window.

A mixin of :class:`~interlink.records.service.RecordService`; queries from clients go through the SOQL
engine instead. These reads run inside the caller's unit of work when one is open, so checks see the
transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Table, bindparam, func, select

from interlink import ids
from interlink.errors import InvalidFieldError, InvalidTypeError, NotFoundError
from interlink.metadata.model import FieldDef, FieldType, ObjectDef
from interlink.store.database import Store

TEXT_TYPES = {FieldType.STRING, FieldType.TEXTAREA, FieldType.EMAIL, FieldType.PHONE, FieldType.URL,
              FieldType.PICKLIST, FieldType.MULTIPICKLIST}


class RecordReads:
    store: Store
    _retrieve_queries: dict[tuple[Any, ...], Select[Any]]

    if TYPE_CHECKING:  # provided by RecordService
        def object(self, name: str) -> ObjectDef: ...

        def _external(self, obj: ObjectDef) -> Any: ...

    def retrieve(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str] | None = None,
                 *, include_deleted: bool = False) -> list[dict[str, Any] | None]:
        """Rows for ``record_ids`` in the same order (None where missing or deleted)."""
        obj = self._stored_object(object_name)
        if obj.is_external:
            return self._external(obj).retrieve(obj, record_ids, fields)  # type: ignore[no-any-return]
        columns = self._columns(obj, fields)
        table = self.store.table(obj.name)
        wanted = [ids.normalize(r) for r in record_ids]
        present = [w for w in wanted if w]
        single = len(present) == 1  # the common case: ``Id = :record_id`` skips expanding the IN list
        query = self._retrieve_query(table, columns, not include_deleted and obj.has_field("IsDeleted"), single)
        params: dict[str, Any] = {"record_id": present[0]} if single else {"record_ids": present}
        keys, fetched = self.store.fetch(query, params)
        rows = {row[0]: dict(zip(keys, row, strict=True)) for row in fetched} if keys[0] == "Id" else {}
        return [rows.get(w) if w else None for w in wanted]

    def _stored_object(self, name: str) -> ObjectDef:
        """An object whose records are stored: platform events are published, never kept as records."""
        obj = self.object(name)
        if obj.is_event:
            raise NotFoundError(f"{obj.name} is a platform event: events are published, not stored as records")
        return obj

    def _retrieve_query(self, table: Table, columns: Sequence[str], skip_deleted: bool, single: bool) -> Select[Any]:
        """``SELECT columns FROM table WHERE Id = :record_id`` (``single``) or ``Id IN :record_ids`` (expanding),
        built once per shape."""
        key = (table, tuple(columns), skip_deleted, single)
        query = self._retrieve_queries.get(key)
        if query is None:
            id_type = table.c.Id.type
            query = select(*[table.c[c] for c in columns]).where(
                table.c.Id == bindparam("record_id", type_=id_type) if single
                else table.c.Id.in_(bindparam("record_ids", expanding=True, type_=id_type)))
            if skip_deleted:
                query = query.where(table.c.IsDeleted.is_not(True))
            if len(self._retrieve_queries) >= 512:  # tables are replaced on redeploy; drop stale shapes
                self._retrieve_queries.clear()
            self._retrieve_queries[key] = query
        return query

    def _columns(self, obj: ObjectDef, fields: Sequence[str] | None) -> list[str]:
        if not fields:
            return obj.field_names
        names = ["Id"]
        for name in fields:
            fdef = obj.field(name.strip())
            if fdef is None:
                raise InvalidFieldError(f"No such column '{name.strip()}' on sobject of type {obj.name}",
                                        [name.strip()])
            if fdef.name not in names:
                names.append(fdef.name)
        return names

    def find_by_external_id(self, object_name: str, field_name: str, values: Sequence[Any],
                            conn: Any | None = None, access: Any | None = None) -> dict[Any, list[str]]:
        """Ids of live records whose ``field_name`` matches each value (case-insensitively for text).

        With ``access`` (the caller's :class:`~interlink.security.access.UserAccess`) only the records its row
        filter lets the caller see can match: a record the caller may not see does not exist for them.
        """
        obj = self.object(object_name)
        fdef = self.external_id_field(obj, field_name)
        if obj.is_external:
            return self._external(obj).find(obj, fdef, values)  # type: ignore[no-any-return]
        table = self.store.table(obj.name)
        keys = {self._match_key(fdef, v): v for v in values if v is not None}
        found: dict[Any, list[str]] = {v: [] for v in values}
        if not keys:
            return found
        column = table.c[fdef.name]
        folded = self._folds(fdef)
        expression = func.lower(column) if folded else column
        query = select(table.c.Id, column).where(expression.in_(list(keys)))
        if obj.has_field("IsDeleted"):
            query = query.where(table.c.IsDeleted.is_not(True))
        visible = access.row_filter(table, obj) if access is not None else None
        if visible is not None:
            query = query.where(visible)

        def run(connection: Any) -> None:
            for row in connection.execute(query.order_by(table.c.Id)):
                original = keys.get(self._match_key(fdef, row[1]))
                if original is not None:
                    found.setdefault(original, []).append(row.Id)

        if conn is not None:
            run(conn)
        else:
            with self.store.read() as connection:
                run(connection)
        return found

    def external_id_field(self, obj: ObjectDef, field_name: str) -> FieldDef:
        fdef = obj.field(field_name)
        if fdef is None or not (fdef.external_id or fdef.name == "Id" or (fdef.unique and fdef.type in TEXT_TYPES)):
            raise NotFoundError(
                f"Provided external ID field does not exist or is not accessible: {field_name}")
        return fdef

    def _folds(self, fdef: FieldDef) -> bool:
        return fdef.type in TEXT_TYPES and not fdef.case_sensitive

    def _match_key(self, fdef: FieldDef, value: Any) -> Any:
        if fdef.name == "Id":
            return ids.normalize(value) or value
        return value.lower() if isinstance(value, str) and self._folds(fdef) else value

    def changed_between(self, object_name: str, start: datetime, end: datetime, *,
                        deleted: bool) -> list[tuple[str, datetime]]:
        """(id, SystemModstamp) of records changed (or deleted) in [start, end)."""
        obj = self._stored_object(object_name)
        if obj.is_external:
            raise InvalidTypeError(f"entity type {obj.name} does not support replication: it is an external "
                                   "object, its changes are in its data source", [])
        table = self.store.table(obj.name)
        # History rows never change once written: they have no SystemModstamp, their CreatedDate is one.
        stamp = table.c.SystemModstamp if "SystemModstamp" in table.c else table.c.CreatedDate
        query = (select(table.c.Id, stamp)
                 .where(stamp >= start, stamp < end)
                 .where(table.c.IsDeleted.is_(True) if deleted else table.c.IsDeleted.is_not(True))
                 .order_by(stamp, table.c.Id))
        with self.store.read() as conn:
            return [(row[0], row[1]) for row in conn.execute(query)]
