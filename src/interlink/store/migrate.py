"""Schema changes: compare the deployed schema with a new one and apply the difference.

Additive changes (new objects, new fields, wider text, new indexes) are applied freely. Destructive
ones (dropped objects or fields, narrowed or changed types) lose data, so they are refused unless the
caller passes ``allow_destructive`` (``interlink deploy --allow-destructive``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Column, Connection, MetaData, Table, inspect, text
from sqlalchemy.schema import CreateIndex, CreateTable, DropIndex

from interlink.metadata.model import FieldDef, ObjectDef, Schema
from interlink.store.tables import column_type, object_indexes, object_table


@dataclass
class Change:
    description: str
    destructive: bool
    object_name: str
    field_name: str | None = None
    kind: str = ""


@dataclass
class Plan:
    """What a deploy would do; empty when the schemas match."""

    changes: list[Change] = field(default_factory=list)

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.destructive]

    @property
    def additive(self) -> list[Change]:
        return [c for c in self.changes if not c.destructive]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def describe(self) -> list[str]:
        return [("! " if c.destructive else "+ ") + c.description for c in self.changes]


def _object_attributes(obj: ObjectDef) -> tuple[object, ...]:
    return (obj.label, obj.label_plural, obj.description, obj.createable, obj.updateable, obj.deletable,
            obj.queryable, obj.searchable, obj.sharing_model, obj.grant_access_using_hierarchies)


def _type_signature(fdef: FieldDef) -> tuple[str, int]:
    sql_type = column_type(fdef)
    return type(sql_type).__name__, int(getattr(sql_type, "length", 0) or 0)


def plan_changes(deployed: Schema | None, target: Schema) -> Plan:
    """Compute the changes that turn ``deployed`` (None for a new org) into ``target``."""
    plan = Plan()
    old_objects = {o.name.lower(): o for o in deployed} if deployed else {}
    for obj in target:
        old = old_objects.get(obj.name.lower())
        if not obj.is_stored or (old is not None and not old.is_stored):
            _plan_event(plan, old, obj)
            continue
        if old is None:
            plan.changes.append(Change(f"create object {obj.name}", False, obj.name, kind="create_table"))
            continue
        if old.key_prefix != obj.key_prefix:
            plan.changes.append(Change(f"{obj.name}: key prefix {old.key_prefix} -> {obj.key_prefix} "
                                       "would orphan every existing id", True, obj.name, kind="rekey"))
        for fdef in obj.fields:
            before = old.field(fdef.name)
            if before is None:
                plan.changes.append(Change(f"add field {obj.name}.{fdef.name} ({fdef.type.value})", False,
                                           obj.name, fdef.name, "add_column"))
                continue
            old_kind, old_len = _type_signature(before)
            new_kind, new_len = _type_signature(fdef)
            if old_kind != new_kind:
                plan.changes.append(Change(f"change type of {obj.name}.{fdef.name} {before.type.value} -> "
                                           f"{fdef.type.value} (drops its data)", True, obj.name, fdef.name,
                                           "retype_column"))
            elif new_len < old_len:
                plan.changes.append(Change(f"shorten {obj.name}.{fdef.name} {old_len} -> {new_len}", True,
                                           obj.name, fdef.name, "resize_column"))
            elif new_len > old_len:
                plan.changes.append(Change(f"widen {obj.name}.{fdef.name} {old_len} -> {new_len}", False,
                                           obj.name, fdef.name, "resize_column"))
            elif before != fdef:
                plan.changes.append(Change(f"update field {obj.name}.{fdef.name}", False, obj.name, fdef.name,
                                           "update_field"))
        for fdef in old.fields:
            if not obj.has_field(fdef.name):
                plan.changes.append(Change(f"drop field {obj.name}.{fdef.name} (drops its data)", True,
                                           obj.name, fdef.name, "drop_column"))
        if _object_attributes(old) != _object_attributes(obj):
            plan.changes.append(Change(f"update object {obj.name}", False, obj.name, kind="update_object"))
    target_names = {o.name.lower() for o in target}
    for name, old in old_objects.items():
        if name not in target_names and not old.is_stored:
            plan.changes.append(Change(f"remove {_kind_label(old)} {old.name}", False, old.name, kind="event"))
        elif name not in target_names:
            plan.changes.append(Change(f"drop object {old.name} (drops all its records)", True, old.name,
                                       kind="drop_table"))
    return plan


def _kind_label(obj: ObjectDef) -> str:
    return {"event": "platform event", "external": "external object"}.get(obj.kind, "object")


def _plan_event(plan: Plan, old: ObjectDef | None, obj: ObjectDef) -> None:
    """Platform events and external objects have no table: defining or changing one is a metadata-only change."""
    if old is not None and old.kind != obj.kind:
        plan.changes.append(Change(f"{obj.name} cannot change between {_kind_label(old)} and {_kind_label(obj)}",
                                   True, obj.name, kind="rekind"))
    elif old is None:
        plan.changes.append(Change(f"define {_kind_label(obj)} {obj.name}", False, obj.name, kind="event"))
    elif old != obj:
        plan.changes.append(Change(f"update {_kind_label(obj)} {obj.name}", False, obj.name, kind="event"))


def apply_plan(conn: Connection, plan: Plan, deployed: Schema | None, target: Schema) -> None:
    """Run the DDL for ``plan`` inside the caller's transaction.

    Index sets are reconciled for every touched object, so unique/external-id changes take effect.
    """
    dialect = conn.dialect
    preparer = dialect.identifier_preparer
    touched: set[str] = set()
    for change in plan.changes:
        obj = target.object(change.object_name)
        old = deployed.object(change.object_name) if deployed else None
        touched.add(change.object_name.lower())
        if change.kind == "create_table" and obj is not None:
            table = object_table(obj, MetaData())
            conn.execute(CreateTable(table))
            for index in table.indexes:
                conn.execute(CreateIndex(index))
        elif change.kind == "drop_table" and old is not None:
            _drop_indexes(conn, old)
            conn.execute(text(f"DROP TABLE {preparer.quote(old.name)}"))
        elif change.kind in ("add_column", "retype_column") and obj is not None and change.field_name:
            fdef = obj.field(change.field_name)
            assert fdef is not None
            if change.kind == "retype_column":
                _drop_indexes(conn, obj)
                conn.execute(text(f"ALTER TABLE {preparer.quote(obj.name)} DROP COLUMN "
                                  f"{preparer.quote(fdef.name)}"))
            column = Column(fdef.name, column_type(fdef))
            column_sql = column.type.compile(dialect=dialect)
            conn.execute(text(f"ALTER TABLE {preparer.quote(obj.name)} ADD COLUMN "
                              f"{preparer.quote(fdef.name)} {column_sql}"))
            if fdef.default_value is not None and fdef.type.value == "boolean":
                # A schema change, not a data change: keep CDC's change-logging triggers from reporting it.
                mark = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM il_external_change")).scalar()
                conn.execute(text(f"UPDATE {preparer.quote(obj.name)} SET {preparer.quote(fdef.name)} = :v"),
                             {"v": bool(fdef.default_value)})
                conn.execute(text("DELETE FROM il_external_change WHERE id > :mark"), {"mark": mark})
        elif change.kind == "drop_column" and old is not None and change.field_name:
            _drop_indexes(conn, old)
            conn.execute(text(f"ALTER TABLE {preparer.quote(old.name)} DROP COLUMN "
                              f"{preparer.quote(change.field_name)}"))
        elif change.kind == "resize_column" and obj is not None and change.field_name and \
                dialect.name == "postgresql":
            fdef = obj.field(change.field_name)
            assert fdef is not None
            column_sql = column_type(fdef).compile(dialect=dialect)
            conn.execute(text(f"ALTER TABLE {preparer.quote(obj.name)} ALTER COLUMN "
                              f"{preparer.quote(fdef.name)} TYPE {column_sql}"))
    for name in touched:
        obj = target.object(name)
        if obj is not None and obj.is_stored and not any(c.kind == "create_table" and c.object_name.lower() == name
                                       for c in plan.changes):
            _sync_indexes(conn, obj)


def _index_names(conn: Connection, table_name: str) -> set[str]:
    """Names of the indexes on a table, expression indexes included (SQLite's inspector skips those)."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                                 "AND sql IS NOT NULL"), {"t": table_name})
        return {row[0] for row in rows}
    return {ix["name"] for ix in inspect(conn).get_indexes(table_name) if ix["name"]}


def _drop_indexes(conn: Connection, obj: ObjectDef) -> None:
    existing = _index_names(conn, obj.name)
    table = Table(obj.name, MetaData())
    for name in existing:
        if name and name.startswith("ix_"):
            conn.execute(DropIndex(_named_index(name, table)))


def _sync_indexes(conn: Connection, obj: ObjectDef) -> None:
    existing = _index_names(conn, obj.name)
    table = object_table(obj, MetaData())
    wanted = {ix.name: ix for ix in object_indexes(obj, table)}
    for name in existing - set(wanted):
        if name and name.startswith("ix_"):
            conn.execute(DropIndex(_named_index(name, table)))
    for name, index in wanted.items():
        if name not in existing:
            conn.execute(CreateIndex(index))


def _named_index(name: str, table: Table):  # type: ignore[no-untyped-def]
    from sqlalchemy import Index

    index = Index(name)
    index.table = table
    return index
