"""The OData adapter against scripted OData 4.0 / 4.01 / 2.0 services: the exact requests it sends and what it makes
of the answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from interlink.callouts.credentials import NamedCredential
from interlink.connect.base import (
    AllOf,
    AnyOf,
    Compare,
    DataSource,
    ExternalColumn,
    ExternalRequest,
    Filter,
    In,
    Negate,
    RowResult,
    SortKey,
)
from interlink.connect.http import SourceHttp
from interlink.connect.odata import ODataConnection
from interlink.errors import ExternalObjectError, ExternalObjectUnsupported

BASE = "https://erp.example.com/odata/"

V4_METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml">
    <edmx:Include Namespace="Org.OData.Core.V1" Alias="Core"/>
  </edmx:Reference>
  <edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml">
    <edmx:Include Namespace="Org.OData.Capabilities.V1" Alias="Capabilities"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema Namespace="Erp.Sales" Alias="self" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Order">
        <Key><PropertyRef Name="OrderNumber"/></Key>
        <Property Name="OrderNumber" Type="Edm.String" Nullable="false" MaxLength="20"/>
        <Property Name="CustomerName" Type="Edm.String" MaxLength="80">
          <Annotation Term="Core.Description" String="Customer name"/>
        </Property>
        <Property Name="Notes" Type="Edm.String"/>
        <Property Name="Amount" Type="Edm.Decimal" Precision="16" Scale="2"/>
        <Property Name="Weight" Type="Edm.Double"/>
        <Property Name="Quantity" Type="Edm.Int32"/>
        <Property Name="Paid" Type="Edm.Boolean"/>
        <Property Name="OrderDate" Type="Edm.Date"/>
        <Property Name="ShippedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="Cutoff" Type="Edm.TimeOfDay"/>
        <Property Name="TrackingId" Type="Edm.Guid"/>
        <Property Name="Status" Type="Edm.String" MaxLength="10"/>
        <NavigationProperty Name="Lines" Type="Collection(self.OrderLine)"/>
      </EntityType>
      <EntityType Name="OrderLine">
        <Key><PropertyRef Name="LineId"/></Key>
        <Property Name="LineId" Type="Edm.Int32" Nullable="false"/>
        <Property Name="OrderNumber" Type="Edm.String" MaxLength="20"/>
        <Property Name="Sku" Type="Edm.String" MaxLength="40"/>
        <Property Name="Units" Type="Edm.Int64"/>
      </EntityType>
      <EntityType Name="PriceEntry">
        <Key><PropertyRef Name="Sku"/><PropertyRef Name="ValidFrom"/></Key>
        <Property Name="Sku" Type="Edm.String" Nullable="false"/>
        <Property Name="ValidFrom" Type="Edm.Date" Nullable="false"/>
        <Property Name="Price" Type="Edm.Decimal" Precision="12" Scale="2"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="Orders" EntityType="self.Order">
          <Annotation Term="Core.Description" String="Sales orders"/>
        </EntitySet>
        <EntitySet Name="OrderLines" EntityType="Erp.Sales.OrderLine"/>
        <EntitySet Name="Prices" EntityType="self.PriceEntry"/>
      </EntityContainer>
      <Annotations Target="self.Container/OrderLines">
        <Annotation Term="Capabilities.SearchRestrictions">
          <Record><PropertyValue Property="Searchable" Bool="false"/></Record>
        </Annotation>
        <Annotation Term="Org.OData.Capabilities.V1.SortRestrictions">
          <Record>
            <PropertyValue Property="NonSortableProperties">
              <Collection><PropertyPath>Sku</PropertyPath></Collection>
            </PropertyValue>
          </Record>
        </Annotation>
      </Annotations>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""

V2_METADATA = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"
    xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
    xmlns:sap="http://www.sap.com/Protocols/SAPData">
  <edmx:DataServices m:DataServiceVersion="2.0">
    <Schema Namespace="ZSD_ORDERS_SRV" xml:lang="en" sap:schema-version="1"
        xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
      <EntityType Name="Order" sap:content-version="1" sap:label="Sales Order">
        <Key><PropertyRef Name="OrderNumber"/></Key>
        <Property Name="OrderNumber" Type="Edm.String" Nullable="false" MaxLength="10" sap:label="Sales Document"/>
        <Property Name="CustomerName" Type="Edm.String" MaxLength="35" sap:label="Customer"/>
        <Property Name="Amount" Type="Edm.Decimal" Precision="15" Scale="2" sap:label="Net Value"/>
        <Property Name="Quantity" Type="Edm.Int32" sap:label="Quantity"/>
        <Property Name="Units" Type="Edm.Int64"/>
        <Property Name="OrderDate" Type="Edm.DateTime" Precision="0" sap:display-format="Date"
            sap:label="Document Date"/>
        <Property Name="ChangedAt" Type="Edm.DateTime" Precision="0" sap:label="Changed At"/>
        <Property Name="ShippedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="Cutoff" Type="Edm.Time" Precision="0"/>
        <Property Name="Paid" Type="Edm.Boolean"/>
        <Property Name="TrackingId" Type="Edm.Guid"/>
        <Property Name="Internal" Type="Edm.String" MaxLength="10" sap:filterable="false" sap:sortable="false"/>
        <NavigationProperty Name="Lines" Relationship="ZSD_ORDERS_SRV.OrderToLines" FromRole="Order"
            ToRole="Line"/>
      </EntityType>
      <EntityType Name="OrderLine" sap:content-version="1">
        <Key><PropertyRef Name="LineId"/></Key>
        <Property Name="LineId" Type="Edm.Int32" Nullable="false" sap:label="Item"/>
        <Property Name="OrderNumber" Type="Edm.String" MaxLength="10"/>
        <Property Name="Sku" Type="Edm.String" MaxLength="40" sap:label="Material"/>
      </EntityType>
      <EntityContainer Name="ZSD_ORDERS_SRV_Entities" m:IsDefaultEntityContainer="true">
        <EntitySet Name="Orders" EntityType="ZSD_ORDERS_SRV.Order" sap:label="Sales Orders"
            sap:content-version="1"/>
        <EntitySet Name="OrderLines" EntityType="ZSD_ORDERS_SRV.OrderLine" sap:creatable="false"
            sap:updatable="false" sap:deletable="false" sap:content-version="1"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


class Service:
    """A scripted OData service at BASE: ``$metadata`` from a document, other paths from ``answers``."""

    def __init__(self, metadata: bytes | None, version: int) -> None:
        self.metadata, self.version = metadata, version
        self.requests: list[httpx.Request] = []
        self.answers: dict[str, Answer | list[Answer]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/odata/")
        if path == "$metadata":
            if self.metadata is None:
                return httpx.Response(404, text="no metadata here")
            return httpx.Response(200, content=self.metadata, headers={"Content-Type": "application/xml"})
        answer = self.answers.get(path)
        if isinstance(answer, list):
            answer = answer.pop(0)
        if answer is None:
            return httpx.Response(200, json={"value": []} if self.version == 4 else {"d": {"results": []}})
        return answer(request) if callable(answer) else answer

    @property
    def urls(self) -> list[str]:
        """Every URL but $metadata's, relative to BASE."""
        return [str(r.url).removeprefix(BASE) for r in self.requests if not r.url.path.endswith("$metadata")]

    @property
    def metadata_fetches(self) -> int:
        return sum(r.url.path.endswith("$metadata") for r in self.requests)


def connect(kind: str = "odata4", metadata: bytes | None = b"", *, credential: NamedCredential | None = None,
            transport: httpx.BaseTransport | None = None, **options: Any) -> tuple[ODataConnection, Service]:
    version = 2 if kind == "odata2" else 4
    if metadata == b"":
        metadata = V2_METADATA if version == 2 else V4_METADATA
    service = Service(metadata, version)
    source = DataSource("ERP", kind, url="" if credential else BASE, **options)
    http = SourceHttp(source, credential, transport=transport or httpx.MockTransport(service))
    return ODataConnection(source, http), service


def query(connection: ODataConnection, service: Service, table: str = "Orders", **request: Any) -> str:
    """Run one query and answer the URL it sent (relative to BASE)."""
    connection.query(ExternalRequest(table, request.pop("columns", ("OrderNumber",)), **request))
    return service.urls[-1]


# -- sync -----------------------------------------------------------------------------------------------------------


def test_sync_reads_v4_entity_sets_types_labels_and_capabilities() -> None:
    connection, service = connect("odata4", searchable=True, writable=True)
    tables = {table.name: table for table in connection.sync()}
    assert [str(r.url) for r in service.requests] == [f"{BASE}$metadata"]
    assert set(tables) == {"Orders", "OrderLines"}
    assert connection.notes == ["entity set Prices skipped: composite key (Sku, ValidFrom) is not supported"]
    orders = tables["Orders"]
    assert (orders.key, orders.label, orders.searchable, orders.writable) == ("OrderNumber", "Sales orders", True, True)
    columns = {column.name: column for column in orders.columns}
    assert list(columns) == ["OrderNumber", "CustomerName", "Notes", "Amount", "Weight", "Quantity", "Paid",
                             "OrderDate", "ShippedAt", "Cutoff", "TrackingId", "Status"]  # no navigation property
    assert columns["OrderNumber"] == ExternalColumn("OrderNumber", "string", "OrderNumber", length=20, nullable=False)
    assert columns["CustomerName"] == ExternalColumn("CustomerName", "string", "Customer name", length=80)
    assert (columns["Notes"].type, columns["Notes"].length) == ("textarea", 131072)
    assert (columns["Amount"].type, columns["Amount"].precision, columns["Amount"].scale) == ("double", 16, 2)
    assert columns["Weight"].type == "double"
    assert [columns[n].type for n in ("Quantity", "Paid", "OrderDate", "ShippedAt", "Cutoff")] == \
        ["int", "boolean", "date", "datetime", "time"]
    assert (columns["TrackingId"].type, columns["TrackingId"].length) == ("string", 36)
    lines = tables["OrderLines"]
    assert (lines.key, lines.label, lines.searchable) == ("LineId", "OrderLines", False)
    assert [(c.name, c.type, c.sortable) for c in lines.columns] == [
        ("LineId", "int", True), ("OrderNumber", "string", True), ("Sku", "string", False), ("Units", "int", True)]


def test_sync_reads_a_v2_sap_document_with_sap_labels_and_display_formats() -> None:
    connection, _ = connect("odata2", writable=True)
    tables = {table.name: table for table in connection.sync()}
    orders = tables["Orders"]
    assert (orders.key, orders.label, orders.searchable, orders.writable) == ("OrderNumber", "Sales Orders", False,
                                                                              True)
    columns = {column.name: column for column in orders.columns}
    assert [(n, columns[n].type, columns[n].label) for n in ("OrderNumber", "Amount", "OrderDate", "ChangedAt")] == [
        ("OrderNumber", "string", "Sales Document"), ("Amount", "double", "Net Value"),
        ("OrderDate", "date", "Document Date"), ("ChangedAt", "datetime", "Changed At")]
    assert [columns[n].type for n in ("Quantity", "Units", "ShippedAt", "Cutoff", "Paid", "TrackingId")] == \
        ["int", "int", "datetime", "time", "boolean", "string"]
    assert (columns["Internal"].filterable, columns["Internal"].sortable) == (False, False)
    assert (columns["Amount"].precision, columns["Amount"].scale) == (15, 2)
    assert tables["OrderLines"].writable is False  # sap:creatable/updatable/deletable="false"
    assert [c.label for c in tables["OrderLines"].columns] == ["Item", "OrderNumber", "Material"]


@pytest.mark.parametrize(("kind", "document", "message"), [
    ("odata4", V2_METADATA, r"^ERP: \$metadata is OData 2.0 \(EDMX 1.0\), but the data source's type is odata4"),
    ("odata2", V4_METADATA, r"^ERP: \$metadata is OData 4.x, but the data source's type is odata2"),
    ("odata4", b"<html><body>Login</body></html>", r"^ERP: \$metadata is not an OData EDMX document"),
    ("odata4", b"<edmx:Edmx", r"^ERP: \$metadata is not valid XML"),
    ("odata4", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
     r"^ERP: \$metadata declares a DTD or entities, which are refused"),
])
def test_sync_refuses_documents_it_cannot_trust_or_read(kind: str, document: bytes, message: str) -> None:
    connection, _ = connect(kind, document)
    with pytest.raises(ExternalObjectError, match=message):
        connection.sync()


# -- query URLs -----------------------------------------------------------------------------------------------------


def test_a_v4_query_sends_every_option() -> None:
    connection, service = connect("odata4")
    url = query(connection, service, columns=("OrderNumber", "CustomerName"), filter=Compare("Status", "eq", "Open"),
                order_by=(SortKey("OrderDate", descending=True), SortKey("OrderNumber")), top=50, skip=100,
                count=True)
    assert url == ("Orders?$select=OrderNumber,CustomerName&$filter=Status%20eq%20'Open'"
                   "&$orderby=OrderDate%20desc,OrderNumber&$top=50&$skip=100&$count=true")
    headers = service.requests[-1].headers
    assert (headers["Accept"], headers["OData-Version"], headers["OData-MaxVersion"]) == \
        ("application/json;odata.metadata=minimal", "4.0", "4.0")
    assert "Prefer" not in headers


def test_a_v2_query_sends_inlinecount_and_format() -> None:
    connection, service = connect("odata2")
    url = query(connection, service, columns=("OrderNumber", "Amount"), filter=Compare("Amount", "gt", 100),
                order_by=(SortKey("ChangedAt", descending=True),), top=20, count=True)
    assert url == ("Orders?$select=OrderNumber,Amount&$filter=Amount%20gt%20100M&$orderby=ChangedAt%20desc"
                   "&$top=20&$inlinecount=allpages&$format=json")
    assert service.requests[-1].headers["DataServiceVersion"] == "2.0"


FILTERS: list[tuple[Filter, str, str, str]] = [
    # filter, OData 4.0, OData 4.01, OData 2.0 ($filter as decoded text)
    (Compare("CustomerName", "eq", "Acme"), "CustomerName eq 'Acme'", "CustomerName eq 'Acme'",
     "CustomerName eq 'Acme'"),
    (Compare("CustomerName", "ne", None), "CustomerName ne null", "CustomerName ne null", "CustomerName ne null"),
    (Compare("Quantity", "lt", 5), "Quantity lt 5", "Quantity lt 5", "Quantity lt 5"),
    (Compare("Quantity", "le", 5), "Quantity le 5", "Quantity le 5", "Quantity le 5"),
    (Compare("Quantity", "ge", 5), "Quantity ge 5", "Quantity ge 5", "Quantity ge 5"),
    (Compare("CustomerName", "startswith", "Ac"), "startswith(CustomerName,'Ac')", "startswith(CustomerName,'Ac')",
     "startswith(CustomerName,'Ac') eq true"),
    (Compare("CustomerName", "endswith", "me"), "endswith(CustomerName,'me')", "endswith(CustomerName,'me')",
     "endswith(CustomerName,'me') eq true"),
    (Compare("CustomerName", "contains", "O'Br"), "contains(CustomerName,'O''Br')",
     "contains(CustomerName,'O''Br')", "substringof('O''Br',CustomerName) eq true"),
    (In("OrderNumber", ("SO-1", "SO-2")), "(OrderNumber eq 'SO-1' or OrderNumber eq 'SO-2')",
     "OrderNumber in ('SO-1','SO-2')", "(OrderNumber eq 'SO-1' or OrderNumber eq 'SO-2')"),
    (In("OrderNumber", ("SO-1", "SO-2"), negated=True), "not (OrderNumber eq 'SO-1' or OrderNumber eq 'SO-2')",
     "not (OrderNumber in ('SO-1','SO-2'))", "not (OrderNumber eq 'SO-1' or OrderNumber eq 'SO-2')"),
    (In("OrderNumber", ("SO-1",)), "OrderNumber eq 'SO-1'", "OrderNumber in ('SO-1')", "OrderNumber eq 'SO-1'"),
    (AllOf((Compare("Paid", "eq", True), AnyOf((Compare("Quantity", "gt", 1), Compare("Status", "eq", None))))),
     "Paid eq true and (Quantity gt 1 or Status eq null)", "Paid eq true and (Quantity gt 1 or Status eq null)",
     "Paid eq true and (Quantity gt 1 or Status eq null)"),
    (AnyOf((AllOf((Compare("Paid", "eq", False), Compare("Quantity", "eq", 0))), Compare("Status", "eq", "X"))),
     "(Paid eq false and Quantity eq 0) or Status eq 'X'", "(Paid eq false and Quantity eq 0) or Status eq 'X'",
     "(Paid eq false and Quantity eq 0) or Status eq 'X'"),
    (Negate(Compare("CustomerName", "startswith", "A")), "not (startswith(CustomerName,'A'))",
     "not (startswith(CustomerName,'A'))", "not (startswith(CustomerName,'A') eq true)"),
    (Negate(AllOf((Compare("Quantity", "gt", 1), Compare("Quantity", "lt", 9)))),
     "not (Quantity gt 1 and Quantity lt 9)", "not (Quantity gt 1 and Quantity lt 9)",
     "not (Quantity gt 1 and Quantity lt 9)"),
]


@pytest.mark.parametrize(("node", "v4", "v401", "v2"), FILTERS)
def test_every_filter_form_in_every_version(node: Filter, v4: str, v401: str, v2: str) -> None:
    from urllib.parse import quote

    for kind, expected in (("odata4", v4), ("odata401", v401), ("odata2", v2)):
        connection, service = connect(kind)
        url = query(connection, service, filter=node)
        encoded = quote(expected, safe="$'(),:/@!*")
        assert url == f"Orders?$select=OrderNumber&$filter={encoded}" + ("&$format=json" if kind == "odata2" else "")


def test_a_filter_url_is_encoded_exactly() -> None:
    connection, service = connect("odata4")
    url = query(connection, service, filter=AllOf((Compare("CustomerName", "eq", "A&B + C #1"),
                                                   Compare("ShippedAt", "ge", datetime(2025, 1, 31, 10)))))
    assert url == ("Orders?$select=OrderNumber&$filter=CustomerName%20eq%20'A%26B%20%2B%20C%20%231'"
                   "%20and%20ShippedAt%20ge%202025-01-31T10:00:00Z")


LITERALS: list[tuple[str, str, Any, str, str]] = [
    # table, column, value, OData 4.0 literal, OData 2.0 literal: by the remote type in $metadata
    ("OrderLines", "LineId", "123", "123", "123"),                       # Edm.Int32 compared with a string
    ("Orders", "OrderNumber", 123, "'123'", "'123'"),                    # Edm.String compared with a number
    ("Orders", "Amount", 10.5, "10.5", "10.5M"),                         # Edm.Decimal
    ("Orders", "Amount", Decimal("10.50"), "10.50", "10.50M"),
    ("Orders", "Amount", "7", "7", "7M"),
    ("Orders", "Units", 5, "5", "5L"),                                   # Edm.Int64
    ("Orders", "Paid", "true", "true", "true"),
    ("Orders", "OrderDate", date(2025, 1, 31), "2025-01-31", "datetime'2025-01-31T00:00:00'"),
    ("Orders", "OrderDate", datetime(2025, 1, 31, 10), "2025-01-31", "datetime'2025-01-31T00:00:00'"),
    ("Orders", "ShippedAt", datetime(2025, 1, 31, 10, 0, 0, 250000), "2025-01-31T10:00:00.250Z",
     "datetimeoffset'2025-01-31T10:00:00.250Z'"),
    ("Orders", "ShippedAt", date(2025, 1, 31), "2025-01-31T00:00:00Z", "datetimeoffset'2025-01-31T00:00:00Z'"),
    ("Orders", "Cutoff", time(17, 30), "17:30:00", "time'PT17H30M00S'"),
    ("Orders", "TrackingId", "0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e",
     "guid'0f8fad5b-d9cb-469f-a165-70867728950e'"),
    ("Orders", "CustomerName", "O'Brien", "'O''Brien'", "'O''Brien'"),
]


@pytest.mark.parametrize(("table", "column", "value", "v4", "v2"), LITERALS)
def test_literals_follow_the_remote_type(table: str, column: str, value: Any, v4: str, v2: str) -> None:
    for kind, expected in (("odata4", v4), ("odata2", v2)):
        connection, service = connect(kind)
        connection.query(ExternalRequest(table, (column,), Compare(column, "eq", value)))
        sent = service.requests[-1].url.params["$filter"]
        assert sent == f"{column} eq {expected}", kind


def test_v2_datetime_columns_take_datetime_literals() -> None:
    connection, service = connect("odata2")
    query(connection, service, filter=Compare("ChangedAt", "lt", datetime(2025, 1, 31, 10)))
    assert service.requests[-1].url.params["$filter"] == "ChangedAt lt datetime'2025-01-31T10:00:00'"


def test_a_value_that_is_not_of_the_remote_type_is_refused_before_any_request() -> None:
    connection, service = connect("odata4")
    with pytest.raises(ExternalObjectUnsupported, match=r"^ERP: 'SO-1' is not a valid Edm.Int32 value for LineId"):
        connection.query(ExternalRequest("OrderLines", ("LineId",), Compare("LineId", "eq", "SO-1")))
    assert service.urls == []


def test_without_metadata_literals_follow_python_types_and_metadata_is_asked_once() -> None:
    for kind, expected in (
            ("odata4", "Id eq 'A''1' and N eq 5 and D eq 2025-01-31 and T ge 2025-01-31T10:00:00Z and B eq false"
                       " and X eq 1.25 and Z eq null"),
            ("odata2", "Id eq 'A''1' and N eq 5 and D eq datetime'2025-01-31T00:00:00'"
                       " and T ge datetime'2025-01-31T10:00:00' and B eq false and X eq 1.25 and Z eq null")):
        connection, service = connect(kind, None)
        node = AllOf((Compare("Id", "eq", "A'1"), Compare("N", "eq", 5), Compare("D", "eq", date(2025, 1, 31)),
                      Compare("T", "ge", datetime(2025, 1, 31, 10)), Compare("B", "eq", False),
                      Compare("X", "eq", Decimal("1.25")), Compare("Z", "eq", None)))
        query(connection, service, "Widgets", filter=node)
        query(connection, service, "Widgets", filter=node)
        assert service.metadata_fetches == 1
        assert service.requests[-1].url.params["$filter"] == expected
        assert connection.notes[0].startswith("$metadata unavailable: ERP: HTTP 404 from")


def test_metadata_is_fetched_lazily_once_per_connection() -> None:
    connection, service = connect("odata4")
    query(connection, service, "OrderLines", filter=Compare("LineId", "eq", "7"))
    query(connection, service, "Orders", filter=Compare("Quantity", "eq", "7"))
    query(connection, service, "Unknown", filter=Compare("Quantity", "eq", "7"))
    assert service.metadata_fetches == 1
    assert service.urls[:2] == ["OrderLines?$select=OrderNumber&$filter=LineId%20eq%207",
                                "Orders?$select=OrderNumber&$filter=Quantity%20eq%207"]
    assert service.urls[2] == "Unknown?$select=OrderNumber&$filter=Quantity%20eq%20'7'"


def test_null_ordering_other_than_the_odata_default_is_refused() -> None:
    connection, service = connect("odata4")
    assert query(connection, service, order_by=(SortKey("Amount", nulls_last=False),
                                                SortKey("Quantity", True, nulls_last=True))) == \
        "Orders?$select=OrderNumber&$orderby=Amount,Quantity%20desc"
    for key in (SortKey("Amount", nulls_last=True), SortKey("Amount", descending=True, nulls_last=False)):
        with pytest.raises(ExternalObjectUnsupported, match=r"^ERP: OData cannot sort Amount"):
            connection.query(ExternalRequest("Orders", ("OrderNumber",), order_by=(key,)))


# -- answers --------------------------------------------------------------------------------------------------------


def test_v4_rows_become_python_values() -> None:
    connection, service = connect("odata4")
    service.answers["Orders"] = httpx.Response(200, json={
        "@odata.context": f"{BASE}$metadata#Orders", "@odata.count": 2,
        "value": [{"@odata.etag": 'W/"1"', "OrderNumber": "SO-1", "Amount": 1234.5, "Weight": "INF",
                   "Quantity": 3, "Units@odata.type": "#Int64", "Paid": True, "OrderDate": "2025-01-31",
                   "ShippedAt": "2025-01-31T12:00:00.1234567+02:00", "Cutoff": "17:30:00.000", "Notes": None},
                  {"OrderNumber": "SO-2", "Amount": "0.10", "ShippedAt": "2025-02-01T00:00:00Z"}]})
    result = connection.query(ExternalRequest("Orders", ("OrderNumber",), count=True))
    assert result.total == 2 and result.next_page is None
    assert result.rows == [
        {"OrderNumber": "SO-1", "Amount": Decimal("1234.5"), "Weight": float("inf"), "Quantity": 3, "Paid": True,
         "OrderDate": date(2025, 1, 31), "ShippedAt": datetime(2025, 1, 31, 10, 0, 0, 123456),
         "Cutoff": time(17, 30), "Notes": None},
        {"OrderNumber": "SO-2", "Amount": Decimal("0.10"), "ShippedAt": datetime(2025, 2, 1)}]


def test_v2_rows_become_python_values() -> None:
    connection, service = connect("odata2")
    service.answers["Orders"] = httpx.Response(200, json={"d": {"__count": "2", "results": [
        {"__metadata": {"uri": f"{BASE}Orders('SO-1')", "type": "ZSD_ORDERS_SRV.Order"},
         "OrderNumber": "SO-1", "Amount": "1234.50", "Units": "9007199254740993", "OrderDate": "/Date(1738281600000)/",
         "ChangedAt": "/Date(1738317600000)/", "ShippedAt": "/Date(1738317600000+0060)/", "Cutoff": "PT17H30M00S",
         "Lines": {"__deferred": {"uri": f"{BASE}Orders('SO-1')/Lines"}}},
        {"OrderNumber": "SO-2", "CustomerName": "/Date(0)/"}]}})
    result = connection.query(ExternalRequest("Orders", ("OrderNumber",), count=True))
    assert result.total == 2
    assert result.rows == [
        {"OrderNumber": "SO-1", "Amount": Decimal("1234.50"), "Units": 9007199254740993,
         "OrderDate": date(2025, 1, 31), "ChangedAt": datetime(2025, 1, 31, 10), "ShippedAt": datetime(2025, 1, 31, 10),
         "Cutoff": time(17, 30)},
        {"OrderNumber": "SO-2", "CustomerName": "/Date(0)/"}]  # a string column keeps its text


def test_v2_older_answers_are_a_bare_list() -> None:
    connection, service = connect("odata2", None)
    service.answers["Orders"] = httpx.Response(200, json={"d": [{"OrderNumber": "SO-1", "At": "/Date(0)/"}]})
    assert connection.query(ExternalRequest("Orders", ("OrderNumber",))).rows == [
        {"OrderNumber": "SO-1", "At": datetime(1970, 1, 1)}]


def test_an_answer_that_is_not_an_entity_list_is_an_error() -> None:
    connection, service = connect("odata4")
    service.answers["Orders"] = httpx.Response(200, text="<html>maintenance</html>")
    with pytest.raises(ExternalObjectError, match=r"^ERP: the answer from https://erp\.example\.com/odata/Orders\?"
                                                  r"\$select=OrderNumber is not JSON: <html>maintenance</html>"):
        connection.query(ExternalRequest("Orders", ("OrderNumber",)))
    service.answers["Orders"] = httpx.Response(200, json={"value": "nope"})
    with pytest.raises(ExternalObjectError, match=r"holds no list of entities"):
        connection.query(ExternalRequest("Orders", ("OrderNumber",)))
    service.answers["Orders"] = httpx.Response(200, json={"value": [{"OrderNumber": "SO-1", "Quantity": "many"}]})
    with pytest.raises(ExternalObjectError, match=r"answered 'many' for Quantity, which is not a valid Edm\.Int32"):
        connection.query(ExternalRequest("Orders", ("OrderNumber",)))


# -- paging and counts ----------------------------------------------------------------------------------------------


def test_server_driven_paging_follows_next_links() -> None:
    connection, service = connect("odata4", paging="server", page_size=500)
    next_link = f"{BASE}Orders?$select=OrderNumber&$skiptoken='SO-2'"
    service.answers["Orders"] = [
        httpx.Response(200, json={"value": [{"OrderNumber": "SO-1"}, {"OrderNumber": "SO-2"}],
                                  "@odata.nextLink": next_link}),
        httpx.Response(200, json={"value": [{"OrderNumber": "SO-3"}]}),
        httpx.Response(200, json={"value": []})]
    first = connection.query(ExternalRequest("Orders", ("OrderNumber",), top=2))
    assert service.urls == ["Orders?$select=OrderNumber"]  # the server pages: no $top
    assert service.requests[-1].headers["Prefer"] == "odata.maxpagesize=2"
    assert first.next_page == next_link
    second = connection.query(ExternalRequest("Orders", ("OrderNumber",), page_token=first.next_page))
    assert str(service.requests[-1].url) == next_link
    assert [row["OrderNumber"] for row in second.rows] == ["SO-3"] and second.next_page is None
    connection.query(ExternalRequest("Orders", ("OrderNumber",)))
    assert service.requests[-1].headers["Prefer"] == "odata.maxpagesize=500"


def test_a_relative_next_link_is_made_absolute_and_a_foreign_one_is_refused() -> None:
    connection, service = connect("odata4", paging="server")
    service.answers["Orders"] = httpx.Response(200, json={"value": [], "@odata.nextLink": "Orders?$skiptoken=9"})
    assert connection.query(ExternalRequest("Orders", ("OrderNumber",))).next_page == f"{BASE}Orders?$skiptoken=9"
    before = len(service.requests)
    with pytest.raises(ExternalObjectError, match=r"^ERP: refused to call https://evil\.example\.com/steal"):
        connection.query(ExternalRequest("Orders", ("OrderNumber",), page_token="https://evil.example.com/steal?x=1"))
    assert len(service.requests) == before


def test_v2_server_paging_follows_next() -> None:
    connection, service = connect("odata2", paging="server")
    service.answers["Orders"] = httpx.Response(200, json={"d": {"results": [{"OrderNumber": "SO-1"}],
                                                                "__next": f"{BASE}Orders?$skiptoken=1"}})
    result = connection.query(ExternalRequest("Orders", ("OrderNumber",), top=100))
    assert service.urls == ["Orders?$select=OrderNumber&$format=json"]
    assert "Prefer" not in service.requests[-1].headers
    assert result.next_page == f"{BASE}Orders?$skiptoken=1"


def test_client_driven_paging_sends_top_and_skip() -> None:
    connection, service = connect("odata4")
    assert query(connection, service, top=200, skip=400) == "Orders?$select=OrderNumber&$top=200&$skip=400"
    assert "Prefer" not in service.requests[-1].headers


def test_count_only_asks_the_count_segment() -> None:
    for kind, count, expected in (("odata4", "42", "Orders/$count?$filter=Status%20eq%20'Open'"),
                                  ("odata2", "\ufeff7\r\n", "Orders/$count?$filter=Status%20eq%20'Open'")):
        connection, service = connect(kind, None)
        service.answers["Orders/$count"] = httpx.Response(200, text=count, headers={"Content-Type": "text/plain"})
        result = connection.query(ExternalRequest("Orders", ("OrderNumber",), Compare("Status", "eq", "Open"),
                                                  count_only=True))
        assert result.rows == [] and result.total == int(count.strip("\ufeff\r\n"))
        assert service.urls == [expected]
        assert service.requests[-1].headers["Accept"] == "text/plain"


def test_count_with_rows_reads_the_inline_count() -> None:
    connection, service = connect("odata401")
    service.answers["Orders"] = httpx.Response(200, json={"@odata.count": 1234, "value": [{"OrderNumber": "SO-1"}]})
    result = connection.query(ExternalRequest("Orders", ("OrderNumber",), top=1, count=True))
    assert service.urls == ["Orders?$select=OrderNumber&$top=1&$count=true"]
    assert result.total == 1234
    assert service.requests[-1].headers["OData-Version"] == "4.01"


# -- search ---------------------------------------------------------------------------------------------------------


def test_search_sends_a_quoted_search_phrase() -> None:
    connection, service = connect("odata4", searchable=True)
    assert connection.supports_search
    service.answers["Orders"] = httpx.Response(200, json={"value": [{"OrderNumber": "SO-1", "Status": "Open"}]})
    rows = connection.search("Orders", 'blue "widget" & co', ["OrderNumber", "Status"], 5)
    assert rows == [{"OrderNumber": "SO-1", "Status": "Open"}]
    assert service.urls == ["Orders?$select=OrderNumber,Status&$search=%22blue%20widget%20%26%20co%22&$top=5"]
    assert query(connection, service, search="acme", top=10) == \
        "Orders?$select=OrderNumber&$search=%22acme%22&$top=10"


def test_search_is_refused_where_the_source_cannot_search() -> None:
    for kind, searchable, message in (("odata2", True, "OData 2.0 has no"), ("odata4", False, "support search")):
        connection, service = connect(kind, searchable=searchable)
        assert not connection.supports_search
        with pytest.raises(ExternalObjectUnsupported, match=message):
            connection.search("Orders", "acme", ["OrderNumber"], 5)
        with pytest.raises(ExternalObjectUnsupported, match=r"^ERP does not support search"):
            connection.query(ExternalRequest("Orders", ("OrderNumber",), search="acme"))
        assert service.urls == []


# -- writes ---------------------------------------------------------------------------------------------------------


def created(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("Quantity", 0) < 0:
        return httpx.Response(400, json={"error": {"code": "VALIDATION", "message": "Quantity must be positive"}})
    return httpx.Response(201, json={"@odata.context": f"{BASE}$metadata#Orders/$entity", **body,
                                     "OrderNumber": "SO-100"})


def test_insert_posts_each_row_and_reports_each_outcome() -> None:
    connection, service = connect("odata4", writable=True)
    service.answers["Orders"] = created
    results = connection.insert("Orders", [
        {"CustomerName": "Acme", "Quantity": 2, "Amount": Decimal("19.90"), "OrderDate": date(2025, 1, 31),
         "ShippedAt": datetime(2025, 1, 31, 10), "Paid": False},
        {"CustomerName": "Bad", "Quantity": -1}])
    assert results == [
        RowResult(key="SO-100", created=True),
        RowResult(error=f"ERP: HTTP 400 from {BASE}Orders: Quantity must be positive (VALIDATION)")]
    posts = [r for r in service.requests if r.method == "POST"]
    assert [str(r.url) for r in posts] == [f"{BASE}Orders"] * 2
    assert posts[0].content == (b'{"CustomerName":"Acme","Quantity":2,"Amount":19.90,"OrderDate":"2025-01-31",'
                                b'"ShippedAt":"2025-01-31T10:00:00Z","Paid":false}')
    assert (posts[0].headers["Content-Type"], posts[0].headers["Prefer"]) == ("application/json",
                                                                              "return=representation")


def test_insert_takes_the_key_from_the_location_header() -> None:
    connection, service = connect("odata2", writable=True)
    service.answers["OrderLines"] = [
        httpx.Response(201, headers={"Location": f"{BASE}OrderLines(LineId=42)"}),
        httpx.Response(201, json={"d": {"LineId": 43}})]
    service.answers["Orders"] = httpx.Response(204, headers={"Location": f"{BASE}Orders('SO%2F7''s')"})
    assert connection.insert("OrderLines", [{"Sku": "W-1"}, {"Sku": "W-2"}]) == [
        RowResult(key="42", created=True), RowResult(key="43", created=True)]
    assert connection.insert("Orders", [{"Amount": 5, "Units": 7, "OrderDate": date(2025, 1, 31)}]) == [
        RowResult(key="SO/7's", created=True)]
    assert service.requests[-1].content == b'{"Amount":"5","Units":"7","OrderDate":"/Date(1738281600000)/"}'


def test_update_patches_each_row_at_its_key() -> None:
    connection, service = connect("odata4", writable=True)
    service.answers["Orders('SO/1')"] = httpx.Response(204)
    service.answers["OrderLines(7)"] = httpx.Response(404, json={"error": {"code": "NotFound",
                                                                           "message": "No line 7"}})
    assert connection.update("Orders", "OrderNumber", [("SO/1", {"Status": "Shipped"})]) == [RowResult(key="SO/1")]
    assert connection.update("OrderLines", "LineId", [("7", {"Units": 2})]) == [
        RowResult(error=f"ERP: HTTP 404 from {BASE}OrderLines(7): No line 7 (NotFound)")]
    assert [(r.method, str(r.url).removeprefix(BASE), r.content) for r in service.requests if r.method != "GET"] == [
        ("PATCH", "Orders('SO%2F1')", b'{"Status":"Shipped"}'), ("PATCH", "OrderLines(7)", b'{"Units":2}')]


def test_v2_updates_may_use_merge() -> None:
    connection, service = connect("odata2", writable=True, options={"updateMethod": "MERGE"})
    service.answers["Orders('SO-1')"] = httpx.Response(204)
    assert connection.update("Orders", "OrderNumber", [("SO-1", {"Units": 3})]) == [RowResult(key="SO-1")]
    sent = service.requests[-1]
    assert (sent.method, sent.headers["X-HTTP-Method"], sent.content) == ("POST", "MERGE", b'{"Units":"3"}')


def test_delete_removes_each_row_and_reports_failures() -> None:
    connection, service = connect("odata4", writable=True)
    service.answers["OrderLines(1)"] = httpx.Response(204)
    service.answers["OrderLines(2)"] = httpx.Response(409, json={"error": {"code": "Conflict",
                                                                           "message": "Line is invoiced"}})
    assert connection.delete("OrderLines", "LineId", [1, "2", "x"]) == [
        RowResult(key="1"), RowResult(error=f"ERP: HTTP 409 from {BASE}OrderLines(2): Line is invoiced (Conflict)"),
        RowResult(error="ERP: 'x' is not a valid Edm.Int32 value for LineId")]
    assert [(r.method, str(r.url).removeprefix(BASE)) for r in service.requests if r.method == "DELETE"] == [
        ("DELETE", "OrderLines(1)"), ("DELETE", "OrderLines(2)")]


def test_writes_to_a_read_only_source_are_refused() -> None:
    connection, service = connect("odata4")
    for write in (lambda: connection.insert("Orders", [{"Status": "X"}]),
                  lambda: connection.update("Orders", "OrderNumber", [("SO-1", {"Status": "X"})]),
                  lambda: connection.delete("Orders", "OrderNumber", ["SO-1"])):
        with pytest.raises(ExternalObjectUnsupported, match=r"^ERP is not writable"):
            write()
    assert service.requests == []


def test_an_outage_during_writes_stops_sending_rows() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("$metadata"):
            return httpx.Response(200, content=V4_METADATA)
        raise httpx.ConnectTimeout("timed out", request=request)

    calls: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or down(request))
    connection, _ = connect("odata4", writable=True, transport=transport)
    results = connection.insert("Orders", [{"Status": "A"}, {"Status": "B"}])
    message = f"ERP: no answer within 30 s from {BASE}Orders (the data source's timeout)"
    assert results == [RowResult(error=message), RowResult(error=message)]
    assert [r.method for r in calls] == ["GET", "POST"]


# -- errors ---------------------------------------------------------------------------------------------------------


def test_a_server_error_names_the_source_and_carries_the_remote_message() -> None:
    connection, service = connect("odata4")
    service.answers["Orders"] = httpx.Response(500, json={"error": {"code": "ERP-42", "message": "Database offline"}})
    with pytest.raises(ExternalObjectError) as caught:
        connection.query(ExternalRequest("Orders", ("OrderNumber",), top=5))
    assert caught.value.message == f"ERP: HTTP 500 from {BASE}Orders?$select=OrderNumber&$top=5: Database offline " \
                                   "(ERP-42)"
    assert caught.value.error_code == "EXTERNAL_OBJECT_EXCEPTION"


def test_v2_error_bodies_and_plain_bodies_are_reported() -> None:
    connection, service = connect("odata2")
    service.answers["Orders"] = [
        httpx.Response(400, json={"error": {"code": "/IWBEP/CM_MGW_RT/020", "message": {
            "lang": "en", "value": "Property 'Foo' is invalid"}}}),
        httpx.Response(503, text="Service Unavailable " + "x" * 400),
        httpx.Response(500, content=b'<?xml version="1.0"?><error xmlns="http://schemas.microsoft.com/ado/2007/08/'
                                    b'dataservices/metadata"><code>X</code><message xml:lang="en">Dump</message>'
                                    b'</error>')]
    messages = []
    for _ in range(3):
        with pytest.raises(ExternalObjectError) as caught:
            connection.query(ExternalRequest("Orders", ("OrderNumber",)))
        messages.append(caught.value.message.removeprefix("ERP: "))
    url = f"{BASE}Orders?$select=OrderNumber&$format=json"
    assert messages == [f"HTTP 400 from {url}: Property 'Foo' is invalid (/IWBEP/CM_MGW_RT/020)",
                        f"HTTP 503 from {url}: Service Unavailable {'x' * 280}",
                        f"HTTP 500 from {url}: Dump"]


def test_a_timeout_is_an_external_object_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    connection, _ = connect("odata4", transport=httpx.MockTransport(slow), timeout=10)
    with pytest.raises(ExternalObjectError, match=r"^ERP: no answer within 10 s from https://erp\.example\.com/"):
        connection.sync()


def test_an_oversize_answer_is_an_error() -> None:
    connection, service = connect("odata4", None)
    service.answers["Orders"] = httpx.Response(200, content=b'{"value": [' + b" " * (8 * 1024 * 1024) + b"]}")
    with pytest.raises(ExternalObjectError, match=r"exceeds 8 MB"):
        connection.query(ExternalRequest("Orders", ("OrderNumber",)))


def test_a_401_refreshes_the_credential_and_retries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    forgotten: list[str] = []

    class Credential(NamedCredential):
        def forget_token(self) -> None:
            forgotten.append(self.name)

    monkeypatch.setenv("ERP_API_KEY", "k-1")
    credential = Credential("ErpKey", BASE.rstrip("/"), protocol="header",
                            settings={"header": "X-Api-Key", "value": "${ERP_API_KEY}"})
    connection, service = connect("odata4", None, credential=credential)
    service.answers["Orders"] = [httpx.Response(401, json={"error": {"code": "401", "message": "expired"}}),
                                 httpx.Response(200, json={"value": [{"OrderNumber": "SO-1"}]})]
    assert connection.query(ExternalRequest("Orders", ("OrderNumber",))).rows == [{"OrderNumber": "SO-1"}]
    assert forgotten == ["ErpKey"]
    assert [r.headers["X-Api-Key"] for r in service.requests if "Orders" in r.url.path] == ["k-1", "k-1"]
