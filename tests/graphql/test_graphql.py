"""``POST /services/data/vXX.X/graphql``: UI API shape, filters, paging, mutations, introspection, errors.

One org per store backend for the module; the fixture data are seven accounts ``GQ-1``..``GQ-7`` (the first with
three contacts). Mutation tests name their records with a tag of their own.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import get_introspection_query

from interlink.graphql.literals import LiteralError, quote, soql_literal
from interlink.metadata.model import FieldType
from interlink.testing import backend_org, rest_client

URL = "/services/data/v66.0/graphql"
INDUSTRIES = ["Energy", "Banking", "Energy", "Retail", "Banking", "Energy", "Retail"]


@pytest.fixture(scope="module")
def env(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    root = tmp_path_factory.mktemp(f"graphql-{store_backend}")
    with backend_org(root, store_backend, unavailable=pytest.skip) as org:
        client = rest_client(org)
        ctx = org.admin_context()
        accounts = org.records.create(ctx, "Account", [
            {"Name": f"GQ-{i}", "Industry": INDUSTRIES[i - 1], "AnnualRevenue": i * 1000.0,
             "NumberOfEmployees": i, "AccountNumber": "it's a \\ test" if i == 7 else None}
            for i in range(1, 8)])
        org.records.create(ctx, "Contact", [{"LastName": f"Doe{j}", "AccountId": accounts[0].id}
                                            for j in (3, 1, 2)])
        yield org, client


def gql(env: tuple[Any, Any], query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = env[1].post(URL, json={"query": query, "variables": variables})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "errors"}
    return body


def accounts(env: tuple[Any, Any], args: str, fields: str = "Name { value }") -> dict[str, Any]:
    body = gql(env, f"query {{ uiapi {{ query {{ Account({args}) {{ edges {{ node {{ {fields} }} cursor }} "
                    "pageInfo { hasNextPage hasPreviousPage endCursor } totalCount } } } }")
    assert body["errors"] == [], body["errors"]
    return body["data"]["uiapi"]["query"]["Account"]


def names(conn: dict[str, Any]) -> list[str]:
    return [e["node"]["Name"]["value"] for e in conn["edges"]]


GQ = 'Name: {like: "GQ-%"}'


def test_nested_children_and_parent_fields(env: tuple[Any, Any]) -> None:
    conn = accounts(env, 'where: {Name: {eq: "GQ-1"}}',
                    "Id ApiName Name { value displayValue } Industry { value } AnnualRevenue { value } "
                    "NumberOfEmployees { value } CreatedDate { value } Owner { Name { value } } "
                    "Contacts(first: 2, orderBy: {LastName: {order: ASC}}) { edges { node { LastName { value } "
                    "Account { Name { value } } } } pageInfo { hasNextPage } }")
    assert conn["totalCount"] == 1
    node = conn["edges"][0]["node"]
    assert node["Id"].startswith("001") and node["ApiName"] == "Account"
    assert node["Name"] == {"value": "GQ-1", "displayValue": None}
    assert node["Industry"]["value"] == "Energy" and node["AnnualRevenue"]["value"] == 1000
    assert node["NumberOfEmployees"]["value"] == 1
    assert node["CreatedDate"]["value"].endswith("Z")
    assert node["Owner"]["Name"]["value"] == "Org Admin"
    contacts = node["Contacts"]
    assert [e["node"]["LastName"]["value"] for e in contacts["edges"]] == ["Doe1", "Doe2"]
    assert contacts["edges"][0]["node"]["Account"]["Name"]["value"] == "GQ-1"
    assert contacts["pageInfo"]["hasNextPage"] is True


def test_connections_without_arguments(env: tuple[Any, Any]) -> None:
    body = gql(env, "query { uiapi { query { Account { edges { node { Name { value } "
                    "Contacts { edges { node { LastName { value } } } } } } totalCount } } } }")
    assert body["errors"] == [], body["errors"]
    conn = body["data"]["uiapi"]["query"]["Account"]
    assert len(conn["edges"]) == min(10, conn["totalCount"])  # `first` defaults to 10


def test_child_connection_after_and_total(env: tuple[Any, Any]) -> None:
    cursor = base64.b64encode(b"v1:0").decode()
    conn = accounts(env, 'where: {Name: {eq: "GQ-1"}}',
                    f'Contacts(first: 5, after: "{cursor}", orderBy: {{LastName: {{order: DESC}}}}, '
                    'where: {LastName: {ne: "Doe2"}}) { edges { node { LastName { value } } } totalCount }')
    contacts = conn["edges"][0]["node"]["Contacts"]
    assert [e["node"]["LastName"]["value"] for e in contacts["edges"]] == ["Doe1"]
    assert contacts["totalCount"] == 2


@pytest.mark.parametrize(("where", "expected"), [
    ('{Name: {eq: "GQ-2"}}', ["GQ-2"]),
    ('{Name: {like: "GQ-%", ne: "GQ-2"}, NumberOfEmployees: {lte: 3}}', ["GQ-1", "GQ-3"]),
    (f'{{{GQ}, AnnualRevenue: {{gt: 5000}}}}', ["GQ-6", "GQ-7"]),
    (f'{{{GQ}, AnnualRevenue: {{gte: 5000}}}}', ["GQ-5", "GQ-6", "GQ-7"]),
    (f'{{{GQ}, NumberOfEmployees: {{lt: 2}}}}', ["GQ-1"]),
    (f'{{{GQ}, Industry: {{in: ["Retail", "Banking"]}}}}', ["GQ-2", "GQ-4", "GQ-5", "GQ-7"]),
    (f'{{{GQ}, Industry: {{nin: ["Retail", "Banking"]}}}}', ["GQ-1", "GQ-3", "GQ-6"]),
    (f'{{{GQ}, Industry: {{in: []}}}}', []),
    ('{and: [{Name: {like: "GQ-%"}}, {Industry: {eq: "Energy"}}, {NumberOfEmployees: {gt: 1}}]}', ["GQ-3", "GQ-6"]),
    ('{or: [{Name: {eq: "GQ-1"}}, {Name: {eq: "GQ-4"}}]}', ["GQ-1", "GQ-4"]),
    (f'{{{GQ}, not: {{Industry: {{eq: "Energy"}}}}}}', ["GQ-2", "GQ-4", "GQ-5", "GQ-7"]),
    (f'{{{GQ}, Owner: {{Name: {{eq: "Org Admin"}}}}, AccountNumber: {{eq: null}}}}',
     ["GQ-1", "GQ-2", "GQ-3", "GQ-4", "GQ-5", "GQ-6"]),
    ('{AccountNumber: {eq: "it\'s a \\\\ test"}}', ["GQ-7"]),
    ('{Name: {eq: "x\' OR Name != \'"}}', []),
])
def test_filters(env: tuple[Any, Any], where: str, expected: list[str]) -> None:
    conn = accounts(env, f"where: {where}, first: 20, orderBy: {{Name: {{order: ASC}}}}")
    assert names(conn) == expected
    assert conn["totalCount"] == len(expected)


def test_filter_with_variables(env: tuple[Any, Any]) -> None:
    body = gql(env, "query Q($w: Account_Filter, $n: Int) { uiapi { query { Account(where: $w, first: $n) { "
                    "edges { node { Name { value } } } totalCount } } } }",
               {"w": {"Name": {"in": ["GQ-3", "GQ-5"]}}, "n": 1})
    assert body["errors"] == []
    conn = body["data"]["uiapi"]["query"]["Account"]
    assert conn["totalCount"] == 2 and len(conn["edges"]) == 1


def test_order_by_keeps_written_key_order(env: tuple[Any, Any]) -> None:
    conn = accounts(env, f"where: {{{GQ}}}, first: 20, orderBy: {{Industry: {{order: DESC}}, Name: {{order: ASC}}}}")
    assert names(conn) == ["GQ-4", "GQ-7", "GQ-1", "GQ-3", "GQ-6", "GQ-2", "GQ-5"]
    conn = accounts(env, f"where: {{{GQ}}}, first: 3, orderBy: {{AnnualRevenue: {{order: DESC, nulls: LAST}}}}")
    assert names(conn) == ["GQ-7", "GQ-6", "GQ-5"]


def test_pagination_across_three_pages(env: tuple[Any, Any]) -> None:
    seen: list[str] = []
    after = ""
    pages = []
    for _ in range(3):
        conn = accounts(env, f"where: {{{GQ}}}, first: 3, orderBy: {{Name: {{order: ASC}}}}{after}")
        pages.append(conn)
        seen += names(conn)
        assert conn["totalCount"] == 7
        after = f', after: "{conn["pageInfo"]["endCursor"]}"'
    assert seen == [f"GQ-{i}" for i in range(1, 8)]
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True, True, False]
    assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False, True, True]
    assert base64.b64decode(pages[2]["pageInfo"]["endCursor"]) == b"v1:6"


def test_default_first_is_ten_and_limits(env: tuple[Any, Any]) -> None:
    body = gql(env, "{ uiapi { query { Account(first: 2001) { totalCount } } } }")
    assert body["data"]["uiapi"]["query"]["Account"] is None
    assert "2000" in body["errors"][0]["message"]
    body = gql(env, '{ uiapi { query { Account(after: "bogus") { totalCount } } } }')
    assert "Invalid cursor" in body["errors"][0]["message"]


def test_create_update_delete(env: tuple[Any, Any]) -> None:
    org = env[0]
    name = "gqm-" + uuid.uuid4().hex[:8]
    body = gql(env, "mutation C($n: String) { uiapi { AccountCreate(input: {Account: {Name: $n, AnnualRevenue: 5}}) "
                    "{ Record { Id Name { value } AnnualRevenue { value } Owner { Name { value } } } } } }",
               {"n": name})
    assert body["errors"] == []
    record = body["data"]["uiapi"]["AccountCreate"]["Record"]
    assert record["Name"]["value"] == name and record["AnnualRevenue"]["value"] == 5
    assert record["Owner"]["Name"]["value"] == "Org Admin"
    record_id = record["Id"]
    body = gql(env, "mutation M($id: ID!, $n: String) { uiapi { AccountUpdate(input: {Id: $id, Account: {Name: $n}}) "
                    "{ success Record { Id Name { value } } } } }", {"id": record_id, "n": f"{name}-2"})
    assert body["errors"] == []
    assert body["data"]["uiapi"]["AccountUpdate"] == {"success": True,
                                                     "Record": {"Id": record_id, "Name": {"value": f"{name}-2"}}}
    assert org.query.execute(f"SELECT Name FROM Account WHERE Id = '{record_id}'",
                             org.admin_context()).records[0]["Name"] == f"{name}-2"
    body = gql(env, "mutation D($id: ID!) { uiapi { AccountDelete(input: {Id: $id}) { Id } } }", {"id": record_id})
    assert body == {"data": {"uiapi": {"AccountDelete": {"Id": record_id}}}, "errors": []}
    assert org.query.execute(f"SELECT Id FROM Account WHERE Id = '{record_id}'", org.admin_context()).total_size == 0


def test_failing_mutation_writes_nothing(env: tuple[Any, Any]) -> None:
    org = env[0]
    name = "gqf-" + uuid.uuid4().hex[:8]
    body = gql(env, "mutation F($n: String) { uiapi { a: AccountCreate(input: {Account: {Name: $n}}) { Record { Id } } "
                    "b: ContactCreate(input: {Contact: {FirstName: $n}}) { Record { Id } } } }", {"n": name})
    assert body["data"] is None
    [error] = body["errors"]
    assert "LastName" in error["message"]
    assert error["extensions"]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["path"] == ["uiapi", "b"]
    assert org.query.execute(f"SELECT Id FROM Account WHERE Name = '{name}'", org.admin_context()).total_size == 0
    body = gql(env, 'mutation { uiapi { AccountDelete(input: {Id: "001000000000000AAA"}) { Id } } }')
    assert body["data"] is None and body["errors"][0]["extensions"]["errorCode"]


def test_introspection(env: tuple[Any, Any]) -> None:
    body = gql(env, get_introspection_query())
    assert body["errors"] == []
    types = {t["name"]: t for t in body["data"]["__schema"]["types"]}
    assert {"Account", "AccountConnection", "AccountEdge", "Account_Filter", "StringValue", "PicklistValue",
            "CurrencyValue", "DateTimeValue", "PageInfo"} <= set(types)
    account_fields = {f["name"] for f in types["Account"]["fields"]}
    assert {"Id", "Name", "Industry", "Owner", "Contacts"} <= account_fields


@pytest.mark.parametrize(("query", "error_type"), [
    ("{ uiapi { query { Account { edges { node { Id } } } ", "InvalidSyntax"),
    ("{ uiapi { query { NoSuchObject__c { totalCount } } } }", "ValidationError"),
    ("{ uiapi { query { Account { edges { node { NoSuchField { value } } } } } } }", "ValidationError"),
    ('{ uiapi { query { Account(where: {AnnualRevenue: {gt: "many"}}) { totalCount } } } }', "ValidationError"),
])
def test_bad_queries(env: tuple[Any, Any], query: str, error_type: str) -> None:
    body = gql(env, query)
    assert body["data"] is None
    assert body["errors"][0]["locations"] and body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["ErrorType"] == error_type


def test_bad_bodies_and_old_versions(env: tuple[Any, Any]) -> None:
    client = env[1]
    assert client.post(URL, content=b"{nope").status_code == 400
    body = client.post(URL, json={}).json()
    assert body["data"] is None and body["errors"]
    assert client.post("/services/data/v55.0/graphql", json={"query": "{ __typename }"}).status_code == 404


def test_soql_literals() -> None:
    assert quote("a'b\\c\nd") == "'a\\'b\\\\c\\nd'"
    assert soql_literal(True, FieldType.BOOLEAN) == "TRUE"
    assert soql_literal(1e20, FieldType.DOUBLE) == "100000000000000000000"
    assert soql_literal("2024-01-02T03:04:05+02:00", FieldType.DATETIME) == "2024-01-02T01:04:05Z"
    assert soql_literal("2024-01-02", FieldType.DATE) == "2024-01-02"
    assert soql_literal(None, FieldType.STRING) == "null"
    for value, ftype in [("1; DROP", FieldType.DOUBLE), (True, FieldType.INT), ("x", FieldType.DATE),
                         (1, FieldType.STRING), (float("nan"), FieldType.DOUBLE)]:
        with pytest.raises(LiteralError):
            soql_literal(value, ftype)
