"""A custom data source adapter for tests: tables held in memory, every pushdown evaluated exactly.

It is copied into a test project's ``adapters/`` folder and named by ``adapter: memory:MemoryAdapter``, the way
users plug in their own Python adapters. ``requests`` records each query the org sent, so tests can check what
was pushed down.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from interlink.connect.base import (
    AllOf,
    AnyOf,
    Compare,
    DataSourceConnection,
    ExternalColumn,
    ExternalRequest,
    ExternalResult,
    ExternalTable,
    In,
    Negate,
    RowResult,
)

SCHEMA = (
    ExternalTable("Shipments", "ShipmentNo", (
        ExternalColumn("ShipmentNo", "string", length=20),
        ExternalColumn("Customer", "string", length=40),
        ExternalColumn("Weight", "double", precision=10, scale=2),
        ExternalColumn("Pieces", "int"),
        ExternalColumn("ShippedOn", "date"),
        ExternalColumn("Fragile", "boolean"),
        ExternalColumn("Notes", "textarea", length=2000),
        ExternalColumn("AccountRef", "string", length=18),
    ), label="Shipment", label_plural="Shipments", searchable=True, writable=True),
    ExternalTable("Parcels", "ParcelNo", (
        ExternalColumn("ParcelNo", "string", length=20),
        ExternalColumn("Shipment", "string", length=20),
    ), label="Parcel", label_plural="Parcels"),
)


def _matches(row: dict[str, Any], node: Any) -> bool:
    if isinstance(node, AllOf):
        return all(_matches(row, i) for i in node.items)
    if isinstance(node, AnyOf):
        return any(_matches(row, i) for i in node.items)
    if isinstance(node, Negate):
        return not _matches(row, node.item)
    if isinstance(node, In):
        found = row.get(node.column) in node.values
        return not found if node.negated else found
    assert isinstance(node, Compare)
    value, wanted = row.get(node.column), node.value
    if node.op == "eq":
        return bool(value == wanted)
    if node.op == "ne":
        return bool(value != wanted)
    if value is None or wanted is None:
        return False
    if node.op in ("startswith", "endswith", "contains"):
        text, part = str(value).lower(), str(wanted).lower()
        return {"startswith": text.startswith, "endswith": text.endswith, "contains": text.__contains__}[node.op](part)
    return {"lt": value < wanted, "le": value <= wanted, "gt": value > wanted, "ge": value >= wanted}[node.op]


class MemoryAdapter(DataSourceConnection):
    supports_search = True

    def __init__(self, source: Any) -> None:
        self.source = source
        count = int(source.options.get("seed", 0))
        self.rows: dict[str, dict[str, Any]] = {}
        for n in range(1, count + 1):
            number = f"SH-{n:04d}"
            self.rows[number] = {"ShipmentNo": number, "Customer": f"CUST-{(n % 5) + 1:04d}",
                                 "Weight": Decimal(n) / 4, "Pieces": n % 7, "Fragile": n % 3 == 0,
                                 "ShippedOn": date(2025, 1, 1) + timedelta(days=n), "Notes": f"note {n}"}
        # parcel n belongs to shipment (n % 3) + 1
        self.parcels = {f"P-{n}": {"ParcelNo": f"P-{n}", "Shipment": f"SH-{n % 3 + 1:04d}"} for n in range(1, 7)}
        self.requests: list[ExternalRequest] = []
        self.down = False

    def sync(self) -> list[ExternalTable]:
        return list(SCHEMA)

    def query(self, request: ExternalRequest) -> ExternalResult:
        if self.down:
            raise ConnectionError("the warehouse is down")
        self.requests.append(request)
        table = self.parcels if request.table == "Parcels" else self.rows
        rows = [r for r in table.values() if request.filter is None or _matches(r, request.filter)]
        for key in reversed(request.order_by):
            rows.sort(key=lambda r, k=key: (r.get(k.column) is None, 0 if r.get(k.column) is None else r.get(k.column)),
                      reverse=key.descending)
        if request.search:  # every word must appear (the org sends "a AND b" for FIND {a b})
            words = [w for w in request.search.lower().replace('"', " ").split() if w != "and"]
            rows = [r for r in rows if all(w in " ".join(map(str, r.values())).lower().split() for w in words)]
        total = len(rows)
        if request.count_only:
            return ExternalResult([], total)
        rows = rows[request.skip:]
        if request.top is not None:
            rows = rows[:request.top]
        return ExternalResult([{c: r.get(c) for c in request.columns} for r in rows],
                              total if request.count else None)

    def search(self, table: str, text: str, columns: Any, limit: int) -> list[dict[str, Any]]:
        return self.query(ExternalRequest(table, tuple(columns), top=limit, search=text)).rows

    def insert(self, table: str, rows: Any) -> list[RowResult]:
        results = []
        for row in rows:
            key = row.get("ShipmentNo")
            if not key or key in self.rows:
                results.append(RowResult(error=f"duplicate or missing ShipmentNo {key!r}"))
                continue
            self.rows[key] = dict(row)
            results.append(RowResult(key=key, created=True))
        return results

    def update(self, table: str, key: str, rows: Any) -> list[RowResult]:
        results = []
        for value, changes in rows:
            if value not in self.rows:
                results.append(RowResult(error=f"no shipment {value}"))
                continue
            self.rows[value].update(changes)
            results.append(RowResult(key=value))
        return results

    def delete(self, table: str, key: str, keys: Any) -> list[RowResult]:
        return [RowResult(key=k) if self.rows.pop(k, None) is not None else RowResult(error=f"no shipment {k}")
                for k in keys]
