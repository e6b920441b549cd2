"""GraphQL (``/services/data/vXX.X/graphql``) through the real, unpatched simple-salesforce ``restful()``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from interlink.testing import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    session = requests.Session()
    session.verify = live.ca_bundle
    session.trust_env = False
    return Salesforce(instance_url=live.url, session_id=live.token(), session=session)


def graphql(sf: Salesforce, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return sf.restful("graphql", method="POST", json={"query": query, "variables": variables or {}})


PAGE = """query Page($tag: String, $after: String) { uiapi { query {
  Account(where: {Name: {like: $tag}}, first: 2, after: $after, orderBy: {Name: {order: ASC}}) {
    edges { node { Id Name { value } Contacts(first: 5) { edges { node { LastName { value } } } } } }
    pageInfo { hasNextPage endCursor } totalCount } } } }"""


def test_graphql_query_children_pagination_and_mutation(sf: Salesforce) -> None:
    tag = "lg" + uuid.uuid4().hex[:10]
    created = []
    for i in range(3):
        body = graphql(sf, "mutation C($name: String) { uiapi { AccountCreate(input: {Account: {Name: $name}}) "
                           "{ Record { Id Name { value } } } } }", {"name": f"{tag}-{i}"})
        assert body["errors"] == []
        created.append(body["data"]["uiapi"]["AccountCreate"]["Record"]["Id"])
    sf.Contact.create({"LastName": f"{tag}-c", "AccountId": created[0]})

    seen, after, pages = [], None, 0
    while True:
        body = graphql(sf, PAGE, {"tag": f"{tag}%", "after": after})
        assert body["errors"] == []
        conn = body["data"]["uiapi"]["query"]["Account"]
        assert conn["totalCount"] == 3
        seen += [(e["node"]["Name"]["value"], [c["node"]["LastName"]["value"]
                                               for c in e["node"]["Contacts"]["edges"]]) for e in conn["edges"]]
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 2
    assert seen == [(f"{tag}-0", [f"{tag}-c"]), (f"{tag}-1", []), (f"{tag}-2", [])]

    body = graphql(sf, "mutation U($id: ID!, $n: String) { uiapi { "
                       "AccountUpdate(input: {Id: $id, Account: {Name: $n}}) { success } } }",
                   {"id": created[1], "n": f"{tag}-x"})
    assert body == {"data": {"uiapi": {"AccountUpdate": {"success": True}}}, "errors": []}
    assert sf.Account.get(created[1])["Name"] == f"{tag}-x"
    body = graphql(sf, "mutation D($id: ID!) { uiapi { AccountDelete(input: {Id: $id}) { Id } } }", {"id": created[2]})
    assert body["data"]["uiapi"]["AccountDelete"]["Id"] == created[2]
    assert sf.query(f"SELECT Id FROM Account WHERE Name LIKE '{tag}%'")["totalSize"] == 2


def test_graphql_errors_answer_200(sf: Salesforce) -> None:
    body = graphql(sf, "{ uiapi { query { NoSuchThing { totalCount } } } }")
    assert body["data"] is None and body["errors"][0]["extensions"]["ErrorType"] == "ValidationError"
    tag = "lg" + uuid.uuid4().hex[:10]
    body = graphql(sf, "mutation F($n: String) { uiapi { a: AccountCreate(input: {Account: {Name: $n}}) "
                       "{ Record { Id } } "
                       'b: AccountCreate(input: {Account: {Name: ""}}) { Record { Id } } } }', {"n": tag})
    assert body["data"] is None and body["errors"][0]["extensions"]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query(f"SELECT Id FROM Account WHERE Name = '{tag}'")["totalSize"] == 0
