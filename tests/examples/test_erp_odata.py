"""examples/erp/odata_service.py: the sample ERP answers OData 4.0 as a generic OData client expects."""

from __future__ import annotations

import importlib.util
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "erp" / "odata_service.py"
EDM = {"edm": "http://docs.oasis-open.org/odata/ns/edm", "edmx": "http://docs.oasis-open.org/odata/ns/edmx"}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_odata_service_erp", SERVICE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


erp = load()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """A read-only ERP with 120 orders (tests that write use their own)."""
    with TestClient(erp.create_app(None, seed=120)) as opened:
        yield opened


@pytest.fixture(scope="module")
def orders(client: TestClient) -> list[dict[str, Any]]:
    body = client.get("/odata/Orders").json()
    assert len(body["value"]) == 120 and "@odata.nextLink" not in body
    return body["value"]


def numbers(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [o["OrderNumber"] for o in response.json()["value"]]


def odata_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return body["error"]["message"]


def test_service_document_and_metadata(client: TestClient) -> None:
    root = client.get("/odata/")
    assert root.headers["content-type"] == "application/json;odata.metadata=minimal"
    assert root.headers["odata-version"] == "4.0"
    assert root.json() == {"@odata.context": "http://testserver/odata/$metadata", "value": [
        {"name": "Orders", "kind": "EntitySet", "url": "Orders"},
        {"name": "OrderLines", "kind": "EntitySet", "url": "OrderLines"}]}
    response = client.get("/odata/$metadata")
    assert response.headers["content-type"].startswith("application/xml")
    document = ET.fromstring(response.content)
    assert document.tag == f"{{{EDM['edmx']}}}Edmx" and document.get("Version") == "4.0"
    schema = document.find("edmx:DataServices/edm:Schema", EDM)
    assert schema is not None and schema.get("Namespace") == "ERP"
    order = schema.find("edm:EntityType[@Name='Order']", EDM)
    assert order is not None and order.find("edm:Key/edm:PropertyRef", EDM).get("Name") == "OrderNumber"
    props = {p.get("Name"): p.attrib for p in order.findall("edm:Property", EDM)}
    assert props["OrderNumber"] == {"Name": "OrderNumber", "Type": "Edm.String", "Nullable": "false",
                                    "MaxLength": "20"}
    assert props["CustomerNumber"]["MaxLength"] == "40" and props["Currency"]["MaxLength"] == "3"
    assert (props["Amount"]["Type"], props["Amount"]["Precision"], props["Amount"]["Scale"]) == ("Edm.Decimal",
                                                                                                 "16", "2")
    assert props["ShippedAt"]["Type"] == "Edm.DateTimeOffset" and props["ShippedAt"]["Nullable"] == "true"
    assert [props[n]["Type"] for n in ("OrderDate", "Priority", "Express")] == ["Edm.Date", "Edm.Int32",
                                                                                "Edm.Boolean"]
    assert order.find("edm:NavigationProperty", EDM).attrib == {"Name": "Lines", "Type": "Collection(ERP.OrderLine)",
                                                                "Partner": "Order"}
    line = schema.find("edm:EntityType[@Name='OrderLine']", EDM)
    assert line.find("edm:Key/edm:PropertyRef", EDM).get("Name") == "LineId"
    assert line.find("edm:NavigationProperty[@Name='Order']", EDM).get("Type") == "ERP.Order"
    sets = {s.get("Name"): s for s in schema.findall("edm:EntityContainer/edm:EntitySet", EDM)}
    assert {name: s.get("EntityType") for name, s in sets.items()} == {"Orders": "ERP.Order",
                                                                       "OrderLines": "ERP.OrderLine"}
    binding = sets["Orders"].find("edm:NavigationPropertyBinding", EDM)
    assert (binding.get("Path"), binding.get("Target")) == ("Lines", "OrderLines")


def test_seed_is_deterministic(orders: list[dict[str, Any]]) -> None:
    assert [o["OrderNumber"] for o in orders[:3]] == ["SO-000001", "SO-000002", "SO-000003"]
    assert [o["CustomerNumber"] for o in orders[:2]] + [orders[49]["CustomerNumber"]] == [
        "CUST-0002", "CUST-0003", "CUST-0001"]
    assert all(o["OrderDate"].startswith("2025-") and o["Status"] in erp.STATUSES for o in orders)
    assert all((o["ShippedAt"] is not None) == (o["Status"] in ("Shipped", "Delivered")) for o in orders)
    again = TestClient(erp.create_app(None, seed=3)).get("/odata/Orders").json()["value"]
    assert again == orders[:3]


FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("Status eq 'Shipped'", lambda o: o["Status"] == "Shipped"),
    ("Status ne 'Draft'", lambda o: o["Status"] != "Draft"),
    ("Amount gt 1000", lambda o: o["Amount"] > 1000),
    ("Amount ge 1000.5 and Amount le 2000.25", lambda o: 1000.5 <= o["Amount"] <= 2000.25),
    ("Priority lt 3", lambda o: o["Priority"] < 3),
    ("Priority le 3 or Priority eq 5", lambda o: o["Priority"] <= 3 or o["Priority"] == 5),
    ("Express eq true", lambda o: o["Express"]),
    ("Express", lambda o: o["Express"]),
    ("not Express", lambda o: not o["Express"]),
    ("ShippedAt eq null", lambda o: o["ShippedAt"] is None),
    ("ShippedAt ne null", lambda o: o["ShippedAt"] is not None),
    ("Notes ne 'Gift wrap'", lambda o: o["Notes"] != "Gift wrap"),  # null Notes included, as OData says
    ("Notes gt 'D'", lambda o: o["Notes"] is not None and o["Notes"] > "D"),
    ("not (Notes gt 'D')", lambda o: not (o["Notes"] is not None and o["Notes"] > "D")),
    ("OrderDate ge 2025-06-01 and OrderDate lt 2025-07-01", lambda o: "2025-06-01" <= o["OrderDate"] < "2025-07-01"),
    ("ShippedAt gt 2025-06-01T10:00:00Z", lambda o: (o["ShippedAt"] or "") > "2025-06-01T10:00:00Z"),
    ("ShippedAt lt 2025-06-01T12:00:00+02:00", lambda o: o["ShippedAt"] is not None
     and o["ShippedAt"] < "2025-06-01T10:00:00Z"),
    ("Status eq 'Draft' or (Priority eq 5 and Express eq false)",
     lambda o: o["Status"] == "Draft" or (o["Priority"] == 5 and not o["Express"])),
    ("CustomerNumber in ('CUST-0001', 'CUST-0002')", lambda o: o["CustomerNumber"] in ("CUST-0001", "CUST-0002")),
    ("not (Status in ('Draft','Cancelled'))", lambda o: o["Status"] not in ("Draft", "Cancelled")),
    ("contains(Notes, 'wrap')", lambda o: "wrap" in (o["Notes"] or "")),
    ("not contains(Notes, 'wrap')", lambda o: o["Notes"] is not None and "wrap" not in o["Notes"]),
    ("startswith(CustomerNumber, 'CUST-001')", lambda o: o["CustomerNumber"].startswith("CUST-001")),
    ("endswith(OrderNumber, '7')", lambda o: o["OrderNumber"].endswith("7")),
    ("tolower(Status) eq 'shipped'", lambda o: o["Status"] == "Shipped"),
    ("toupper(Status) eq 'DRAFT' and Currency eq 'EUR'", lambda o: o["Status"] == "Draft" and o["Currency"] == "EUR"),
    ("contains(tolower(Notes), 'rush')", lambda o: "rush" in (o["Notes"] or "").lower()),
    ("Notes eq 'Deliver to O''Brien''s dock'", lambda o: o["Notes"] == "Deliver to O'Brien's dock"),
    ("year(OrderDate) eq 2025 and month(OrderDate) eq 3", lambda o: o["OrderDate"][:7] == "2025-03"),
]


@pytest.mark.parametrize(("expression", "predicate"), FILTERS, ids=[f for f, _ in FILTERS])
def test_filter(client: TestClient, orders: list[dict[str, Any]], expression: str,
                predicate: Callable[[dict[str, Any]], bool]) -> None:
    expected = [o["OrderNumber"] for o in orders if predicate(o)]
    assert 0 < len(expected) < len(orders)  # the case tells something
    assert numbers(client.get("/odata/Orders", params={"$filter": expression})) == expected


@pytest.mark.parametrize(("query", "status"), [
    ("$filter=Nope eq 1", 400), ("$filter=Status eq", 400), ("$filter=Priority eq 'high'", 400),
    ("$filter=Priority", 400), ("$filter=Status eq 2025-13-45", 400), ("$filter=frobnicate(Status)", 400),
    ("$filter=Priority add 1 eq 2", 501), ("$filter=Lines/any(l: l/Quantity gt 5)", 501),
    ("$filter=round(Amount) eq 2", 501), ("$filter=Lines/Sku eq 'x'", 501), ("$orderby=Nope", 400),
    ("$orderby=Amount sideways", 400), ("$select=Nope", 400), ("$expand=Nope", 400), ("$top=-1", 400),
    ("$skip=x", 400), ("$count=maybe", 400), ("$foo=1", 400), ("$apply=aggregate(Amount)", 501),
    ("$top=1&$top=2", 400), ("$expand=Lines($top=1)", 501), ("$format=xml", 406),
])
def test_bad_query_options_answer_odata_errors(client: TestClient, query: str, status: int) -> None:
    odata_error(client.get(f"/odata/Orders?{query}"), status)


def test_orderby_top_skip_select(client: TestClient, orders: list[dict[str, Any]]) -> None:
    by_amount = sorted(orders, key=lambda o: (-o["Amount"], o["OrderNumber"]))
    assert numbers(client.get("/odata/Orders?$orderby=Amount desc")) == [o["OrderNumber"] for o in by_amount]
    two_keys = sorted(sorted(orders, key=lambda o: o["OrderDate"], reverse=True), key=lambda o: o["CustomerNumber"])
    got = numbers(client.get("/odata/Orders", params={"$orderby": "CustomerNumber asc,OrderDate desc"}))
    assert [(o["CustomerNumber"], o["OrderDate"]) for o in two_keys] == [
        (o["CustomerNumber"], o["OrderDate"]) for o in (orders[int(n[3:]) - 1] for n in got)]
    assert numbers(client.get("/odata/Orders?$top=5&$skip=10")) == [o["OrderNumber"] for o in orders[10:15]]
    assert numbers(client.get("/odata/Orders?$skip=118")) == ["SO-000119", "SO-000120"]
    assert numbers(client.get("/odata/Orders?$top=0")) == []
    body = client.get("/odata/Orders?$select=OrderNumber,Status&$top=1").json()
    assert body == {"@odata.context": "http://testserver/odata/$metadata#Orders(OrderNumber,Status)",
                    "value": [{"OrderNumber": "SO-000001", "Status": orders[0]["Status"]}]}


def test_count(client: TestClient, orders: list[dict[str, Any]]) -> None:
    shipped = [o for o in orders if o["Status"] == "Shipped"]
    body = client.get("/odata/Orders", params={"$filter": "Status eq 'Shipped'", "$count": "true", "$top": "2"}).json()
    assert list(body) == ["@odata.context", "@odata.count", "value"]
    assert body["@odata.count"] == len(shipped) and len(body["value"]) == 2
    response = client.get("/odata/Orders/$count", params={"$filter": "Status eq 'Shipped'"})
    assert response.headers["content-type"].startswith("text/plain") and response.text == str(len(shipped))
    assert client.get("/odata/Orders/$count").text == "120"
    assert client.get("/odata/OrderLines/$count").text == str(sum(
        len(o["Lines"]) for o in client.get("/odata/Orders?$expand=Lines").json()["value"]))


@pytest.mark.parametrize(("search", "predicate"), [
    ("wrap", lambda o: "wrap" in (o["Notes"] or "").lower()),
    ("SHIPPED", lambda o: o["Status"] == "Shipped"),
    ('"call before"', lambda o: "call before" in (o["Notes"] or "").lower()),
    ("cust-0007 OR cust-0008", lambda o: o["CustomerNumber"] in ("CUST-0007", "CUST-0008")),
    ("delivered NOT dock", lambda o: o["Status"] == "Delivered" and "dock" not in (o["Notes"] or "")),
    ("so-00001", lambda o: o["OrderNumber"].startswith("SO-00001")),
])
def test_search(client: TestClient, orders: list[dict[str, Any]], search: str,
                predicate: Callable[[dict[str, Any]], bool]) -> None:
    expected = [o["OrderNumber"] for o in orders if predicate(o)]
    assert expected and numbers(client.get("/odata/Orders", params={"$search": search})) == expected


def test_expand(client: TestClient, orders: list[dict[str, Any]]) -> None:
    body = client.get("/odata/Orders?$expand=Lines&$top=20").json()
    assert body["@odata.context"] == "http://testserver/odata/$metadata#Orders(Lines())"
    for order in body["value"]:
        assert 1 <= len(order["Lines"]) <= 3
        assert {line["OrderNumber"] for line in order["Lines"]} == {order["OrderNumber"]}
        assert sum(line["Quantity"] * line["UnitPrice"] for line in order["Lines"]) == pytest.approx(order["Amount"])
    nested = client.get("/odata/Orders", params={
        "$select": "OrderNumber", "$top": "3", "$expand": "Lines($select=Sku,Quantity;$orderby=Sku desc)"}).json()
    for order in nested["value"]:
        assert list(order) == ["OrderNumber", "Lines"]
        assert all(list(line) == ["Sku", "Quantity"] for line in order["Lines"])
        assert [line["Sku"] for line in order["Lines"]] == sorted((line["Sku"] for line in order["Lines"]),
                                                                  reverse=True)
    line = client.get("/odata/OrderLines?$expand=Order&$top=1").json()["value"][0]
    assert line["Order"]["OrderNumber"] == line["OrderNumber"] == "SO-000001"


def follow(client: Any, url: str, **headers: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, pages = [], []
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        rows += page["value"]
        url = page.get("@odata.nextLink")
    return rows, pages


def test_server_driven_paging_returns_every_row_once() -> None:
    client = TestClient(erp.create_app(None, seed=1200, max_page_size=500))
    everything, pages = follow(client, "/odata/Orders?$count=true")
    assert [len(p["value"]) for p in pages] == [500, 500, 200]
    assert [o["OrderNumber"] for o in everything] == [f"SO-{i:06d}" for i in range(1, 1201)]
    assert all(p["@odata.count"] == 1200 for p in pages)
    assert pages[0]["@odata.nextLink"] == "http://testserver/odata/Orders?$count=true&$skiptoken=500"
    assert list(pages[0]) == ["@odata.context", "@odata.count", "value", "@odata.nextLink"]
    # the client's page size, a filter and an order: every match once, in order
    rows, pages = follow(client, "/odata/Orders?$filter=Status%20ne%20'Draft'&$orderby=Amount%20desc",
                         Prefer="odata.maxpagesize=100")
    expected = sorted((o for o in everything if o["Status"] != "Draft"), key=lambda o: (-o["Amount"], o["OrderNumber"]))
    assert len(expected) > 900 and len(pages) == -(-len(expected) // 100)
    assert [o["OrderNumber"] for o in rows] == [o["OrderNumber"] for o in expected]
    response = client.get("/odata/Orders", headers={"Prefer": "odata.maxpagesize=50"})
    assert response.headers["preference-applied"] == "odata.maxpagesize=50" and len(response.json()["value"]) == 50
    assert client.get("/odata/Orders", headers={"Prefer": "odata.maxpagesize=900"}).headers[
        "preference-applied"] == "odata.maxpagesize=500"
    # $top bounds the pages; $skip is applied once
    rows, pages = follow(client, "/odata/Orders?$top=700&$skip=100")
    assert [len(p["value"]) for p in pages] == [500, 200] and "@odata.nextLink" not in pages[-1]
    assert [o["OrderNumber"] for o in rows] == [f"SO-{i:06d}" for i in range(101, 801)]
    rows, pages = follow(client, "/odata/Orders?$top=1000")
    assert [len(p["value"]) for p in pages] == [500, 500]
    odata_error(client.get("/odata/Orders?$skiptoken=abc"), 400)


def test_single_entities_navigation_and_404(client: TestClient, orders: list[dict[str, Any]]) -> None:
    response = client.get("/odata/Orders('SO-000001')")
    assert response.json() == {"@odata.context": "http://testserver/odata/$metadata#Orders/$entity", **orders[0]}
    assert client.get("/odata/Orders(OrderNumber='SO-000002')").json()["OrderNumber"] == "SO-000002"
    assert client.get("/odata/Orders(%27SO-000003%27)?$select=Status").json() == {
        "@odata.context": "http://testserver/odata/$metadata#Orders(Status)/$entity", "Status": orders[2]["Status"]}
    line = client.get("/odata/OrderLines(5)").json()
    assert line["LineId"] == 5 and set(line) == {"@odata.context", "LineId", "OrderNumber", "Sku", "Quantity",
                                                 "UnitPrice"}
    lines = client.get("/odata/Orders('SO-000001')/Lines").json()
    assert {row["OrderNumber"] for row in lines["value"]} == {"SO-000001"}
    assert client.get("/odata/Orders('SO-000001')/Lines/$count").text == str(len(lines["value"]))
    assert client.get("/odata/OrderLines(5)/Order").json()["OrderNumber"] == line["OrderNumber"]
    assert client.get("/odata/Orders('SO-000001')/Status").json()["value"] == orders[0]["Status"]
    assert client.get("/odata/Orders('SO-000001')/Priority/$value").text == str(orders[0]["Priority"])
    assert "SO-999999" in odata_error(client.get("/odata/Orders('SO-999999')"), 404)
    odata_error(client.get("/odata/OrderLines(999999)"), 404)
    odata_error(client.get("/odata/Orders('SO-999999')/Lines"), 404)
    odata_error(client.get("/odata/Customers"), 404)
    odata_error(client.get("/odata/Orders(5)"), 400)
    odata_error(client.get("/odata/$batch"), 501)
    odata_error(client.delete("/odata/Orders"), 405)


def test_ieee754_compatible_decimals(client: TestClient, orders: list[dict[str, Any]]) -> None:
    response = client.get("/odata/Orders?$top=1", headers={"Accept": "application/json;IEEE754Compatible=true"})
    assert response.headers["content-type"] == "application/json;odata.metadata=minimal;IEEE754Compatible=true"
    assert response.json()["value"][0]["Amount"] == f"{orders[0]['Amount']:.2f}"


def test_create_update_delete() -> None:
    client = TestClient(erp.create_app(None, seed=3))
    new = {"CustomerNumber": "CUST-0042", "Amount": 12.5, "OrderDate": "2025-05-01", "Notes": None,
           "Lines": [{"Sku": "SKU-1001", "Quantity": 2, "UnitPrice": 6.25}]}
    response = client.post("/odata/Orders", json=new)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "http://testserver/odata/Orders('SO-000004')"
    created = response.json()
    assert created["@odata.context"] == "http://testserver/odata/$metadata#Orders(Lines())/$entity"
    assert (created["OrderNumber"], created["Status"], created["Amount"], created["Express"]) == (
        "SO-000004", "Draft", 12.5, False)
    assert [(line["Sku"], line["OrderNumber"]) for line in created["Lines"]] == [("SKU-1001", "SO-000004")]
    assert client.get(response.headers["location"]).json()["CustomerNumber"] == "CUST-0042"
    explicit = client.post("/odata/Orders", json={"OrderNumber": "SO-X1", "CustomerNumber": "CUST-0001"})
    assert explicit.status_code == 201 and explicit.json()["OrderNumber"] == "SO-X1"
    odata_error(client.post("/odata/Orders", json={"OrderNumber": "SO-X1", "CustomerNumber": "CUST-0001"}), 409)
    for bad in ({"CustomerNumber": "C", "Status": "Bogus"}, {"CustomerNumber": "C", "Amount": "abc"},
                {"CustomerNumber": "C", "Amount": 1.234}, {"CustomerNumber": "C", "Color": "red"}, {"Amount": 1},
                {"CustomerNumber": "C", "Priority": "high"}, {"CustomerNumber": "C", "OrderNumber": "S" * 21},
                {"CustomerNumber": "C", "OrderDate": "2025-02-30"}, {"CustomerNumber": "C", "Express": "yes"},
                {"CustomerNumber": None}, {"CustomerNumber": "C", "Lines": [{"Sku": "S"}]}, [1, 2]):
        odata_error(client.post("/odata/Orders", json=bad), 400)
    odata_error(client.post("/odata/OrderLines", json={"OrderNumber": "SO-NOPE", "Sku": "S", "Quantity": 1,
                                                       "UnitPrice": 1}), 400)
    assert client.get("/odata/Orders/$count").text == "5"  # nothing half-created

    patched = client.patch("/odata/Orders('SO-000001')", json={"Status": "Shipped",
                                                                "ShippedAt": "2025-07-01T12:00:00+02:00"})
    assert patched.status_code == 204 and patched.content == b""
    after = client.get("/odata/Orders('SO-000001')").json()
    assert (after["Status"], after["ShippedAt"]) == ("Shipped", "2025-07-01T10:00:00Z")
    shown = client.patch("/odata/Orders('SO-000001')", json={"Notes": "Leave at the door"},
                         headers={"Prefer": "return=representation"})
    assert shown.status_code == 200 and shown.json()["Notes"] == "Leave at the door"
    odata_error(client.patch("/odata/Orders('SO-000001')", json={"OrderNumber": "SO-2"}), 400)
    odata_error(client.patch("/odata/Orders('SO-000001')", json={"Status": "Lost"}), 400)
    odata_error(client.patch("/odata/Orders('SO-NOPE')", json={"Status": "Draft"}), 404)
    replaced = client.put("/odata/Orders('SO-000002')", json={"CustomerNumber": "CUST-0009"})
    assert replaced.status_code == 204
    assert client.get("/odata/Orders('SO-000002')?$select=CustomerNumber,Status,Notes").json()["Status"] == "Draft"

    assert client.delete("/odata/Orders('SO-000004')").status_code == 204
    odata_error(client.get("/odata/Orders('SO-000004')"), 404)
    assert client.get("/odata/OrderLines/$count?$filter=OrderNumber eq 'SO-000004'").text == "0"
    odata_error(client.delete("/odata/Orders('SO-000004')"), 404)


def test_sql_injection_is_just_data() -> None:
    client = TestClient(erp.create_app(None, seed=10))
    attempts = {"$filter": "Notes eq 'x'' OR 1=1 --'"}, {"$filter": "Status eq 'a''); DROP TABLE \"Orders\"; --'"}, {
        "$search": "'; DROP TABLE Orders; --"}, {"$search": "x' OR '1'='1"}
    for params in attempts:
        assert numbers(client.get("/odata/Orders", params=params)) == []
    for params in ({"$orderby": "Amount; DROP TABLE Orders"}, {"$filter": "Status eq 'x' ; DROP TABLE Orders"},
                   {"$select": "OrderNumber FROM Orders; --"}, {"$filter": '"Status" eq 1'},
                   {"$search": '" OR 1=1 --'}):
        odata_error(client.get("/odata/Orders", params=params), 400)
    odata_error(client.get("/odata/Orders('x'' OR ''1''=''1')"), 404)
    assert client.get("/odata/Orders/$count").text == "10"
    assert client.app.state.service.db.execute('SELECT COUNT(*) FROM "Orders"').fetchone()[0] == 10


def test_down_up_stats_and_latency() -> None:
    client = TestClient(erp.create_app(None, seed=2))
    assert client.post("/control/down").json()["down"] is True
    assert "down" in odata_error(client.get("/odata/Orders"), 503)
    assert client.post("/control/up").json()["down"] is False
    assert client.get("/odata/Orders?$top=1").status_code == 200
    stats = client.get("/control/stats").json()
    assert stats["requests"] == 2 and stats["last_url"] == "http://testserver/odata/Orders?$top=1"
    assert stats["recent"] == ["GET http://testserver/odata/Orders", "GET http://testserver/odata/Orders?$top=1"]
    client.post("/control/latency?ms=60")
    started = time.monotonic()
    client.get("/odata/Orders/$count")
    assert time.monotonic() - started >= 0.06
    assert client.post("/control/reset").json()["requests"] == 0


def test_bearer_token() -> None:
    client = TestClient(erp.create_app(None, seed=2, token="s3cret"))
    response = client.get("/odata/Orders")
    assert odata_error(response, 401) and response.headers["www-authenticate"] == "Bearer"
    odata_error(client.get("/odata/$metadata", headers={"Authorization": "Bearer wrong"}), 401)
    assert numbers(client.get("/odata/Orders", headers={"Authorization": "Bearer s3cret"})) == ["SO-000001",
                                                                                                  "SO-000002"]
    assert client.get("/control/stats").json()["requests"] == 3


def test_under_uvicorn_with_a_file_database(tmp_path: Path) -> None:
    db = tmp_path / "erp.sqlite"
    server, url = erp.serve_in_thread(erp.create_app(str(db), seed=5, max_page_size=2))
    try:
        rows, pages = follow(httpx, f"{url}/odata/Orders")
        assert len(rows) == 5 and pages[0]["@odata.nextLink"].startswith(f"{url}/odata/Orders?")
    finally:
        server.should_exit = True
    reopened = TestClient(erp.create_app(str(db), seed=50))  # an existing database is not seeded again
    assert reopened.get("/odata/Orders/$count").text == "5"
