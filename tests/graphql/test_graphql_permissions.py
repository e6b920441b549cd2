"""GraphQL follows the caller's permissions: what they may not read is not in their schema.

The users and org are those of ``tests/permission_world.py`` (its ``world`` fixture, run again for
this module): ``reader`` may read Account and its Public__c, ``editor`` may also create and edit them; neither may
read Secret__c nor Invoice__c; the admin may do everything.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import permission_world
from interlink.graphql import run
from interlink.graphql.execute import NOTHING_TO_QUERY, RESOLVERS
from interlink.graphql.schema import schema_for
from interlink.metadata.model import Schema
from interlink.records.context import Context

world = permission_world.world  # the shared fixture
URL = f"{permission_world.API}/graphql"


def gql(world: dict[str, Any], who: str, query: str) -> dict[str, Any]:
    response = world["clients"][who].post(URL, json={"query": query})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def type_fields(world: dict[str, Any], who: str, name: str, *, inputs: bool = False) -> set[str] | None:
    """The field names of type ``name`` in ``who``'s schema (None: no such type for them)."""
    kind = "inputFields" if inputs else "fields"
    body = gql(world, who, f'{{ __type(name: "{name}") {{ {kind} {{ name }} }} }}')
    assert body["errors"] == [], body["errors"]
    found = body["data"]["__type"]
    return None if found is None else {f["name"] for f in found[kind]}


def type_names(world: dict[str, Any], who: str) -> set[str]:
    body = gql(world, who, "{ __schema { types { name } } }")
    assert body["errors"] == [], body["errors"]
    return {t["name"] for t in body["data"]["__schema"]["types"]}


def test_introspection_lists_only_what_the_caller_may_read(world: dict[str, Any]) -> None:
    names = type_names(world, "reader")
    assert "Account" in names
    assert not {"Invoice__c", "Invoice__cConnection", "Invoice__c_Filter", "Contact"} & names
    queryable = type_fields(world, "reader", "RecordQuery") or set()
    assert "Account" in queryable and not {"Invoice__c", "Contact", "User"} & queryable
    assert type_fields(world, "reader", "Invoice__c") is None
    account = type_fields(world, "reader", "Account")
    assert account is not None and "Public__c" in account and "Secret__c" not in account
    assert "Contacts" not in account and "Owner" not in account  # Contact and User are not readable either
    for kind in ("Account_Filter", "Account_OrderBy"):
        hidden = type_fields(world, "reader", kind, inputs=True)
        assert hidden is not None and "Public__c" in hidden and "Secret__c" not in hidden

    admin = type_names(world, "admin")
    assert {"Invoice__c", "Contact"} <= admin
    assert {"Secret__c", "Contacts", "Owner"} <= (type_fields(world, "admin", "Account") or set())


def test_hidden_objects_and_fields_fail_validation_as_unknown_ones_do(world: dict[str, Any]) -> None:
    """As the platform answers (its schema has no such field): HTTP 200, no data, a ValidationError."""
    queries = {
        "Secret__c": "{ uiapi { query { Account { edges { node { Secret__c { value } } } } } } }",
        "Invoice__c": "{ uiapi { query { Invoice__c { edges { node { Id } } } } } }",
        "filter": '{ uiapi { query { Account(where: {Secret__c: {eq: "s3cr3t"}}) { totalCount } } } }',
        "order": "{ uiapi { query { Account(orderBy: {Secret__c: {order: ASC}}) { totalCount } } } }",
    }
    for label, query in queries.items():
        body = gql(world, "reader", query)
        assert body["data"] is None, label
        assert [e["extensions"]["ErrorType"] for e in body["errors"]] == ["ValidationError"], label
        admin = gql(world, "admin", query)
        assert admin["errors"] == [], (label, admin["errors"])
    unknown = gql(world, "reader", "{ uiapi { query { Account { edges { node { Nope__c { value } } } } } } }")
    hidden = gql(world, "reader", queries["Secret__c"])
    assert hidden["errors"][0]["message"] == unknown["errors"][0]["message"].replace("Nope__c", "Secret__c")
    admin_rows = gql(world, "admin", queries["Secret__c"])["data"]["uiapi"]["query"]["Account"]["edges"]
    assert "s3cr3t" in {e["node"]["Secret__c"]["value"] for e in admin_rows}


def test_mutations_follow_edit_rights(world: dict[str, Any]) -> None:
    assert type_fields(world, "reader", "UIAPIMutations") is None  # reader may change nothing: no mutation type
    refused = gql(world, "reader", 'mutation { uiapi { AccountCreate(input: {Account: {Name: "No"}}) '
                                   '{ Record { Id } } } }')
    assert refused["data"] is None and refused["errors"][0]["extensions"]["ErrorType"] == "ValidationError"
    editor = type_fields(world, "editor", "UIAPIMutations") or set()
    assert {"AccountCreate", "AccountUpdate"} <= editor and "AccountDelete" not in editor
    assert not {name for name in editor if name.startswith("Invoice__c")}
    writable = type_fields(world, "editor", "AccountCreateRepresentation", inputs=True)
    assert writable is not None and "Public__c" in writable and "Secret__c" not in writable
    assert "Secret__c" in (type_fields(world, "admin", "AccountCreateRepresentation", inputs=True) or set())
    sneaky = gql(world, "editor", 'mutation { uiapi { AccountCreate(input: {Account: {Name: "Sneaky", '
                                  'Secret__c: "x"}}) { Record { Id } } } }')
    assert sneaky["data"] is None and sneaky["errors"][0]["extensions"]["ErrorType"] == "ValidationError"


def test_unrestricted_callers_share_the_one_schema(world: dict[str, Any]) -> None:
    org = world["org"]
    shared = schema_for(org.store.schema, RESOLVERS)
    admin_view = org.query.schema_for(org.admin_context())
    assert admin_view is org.store.schema
    assert schema_for(admin_view, RESOLVERS) is shared
    reader = org.context_for(world["users"]["reader"])
    reader_schema = schema_for(org.query.schema_for(reader), RESOLVERS)
    assert reader_schema is not shared
    assert schema_for(org.query.schema_for(org.context_for(world["users"]["reader"])), RESOLVERS) is reader_schema
    editor_schema = schema_for(org.query.schema_for(org.context_for(world["users"]["editor"])), RESOLVERS)
    assert editor_schema is not reader_schema and editor_schema is not shared


def test_a_superseded_view_takes_its_schema_with_it(world: dict[str, Any]) -> None:
    """The cache is keyed weakly by the view: nothing it builds keeps the view alive."""
    view = Schema(list(world["org"].store.schema), version="throwaway")
    schema_for(view, RESOLVERS)
    gone = weakref.ref(view)
    del view
    gc.collect()
    assert gone() is None


def test_a_permission_change_shows_in_the_schema_at_once(world: dict[str, Any]) -> None:
    org = world["org"]
    admin = org.admin_context()
    reader_set = org.query.execute("SELECT Id FROM PermissionSet WHERE Name = 'Reader'", admin).records[0]["Id"]
    (grant,) = org.records.create(admin, "FieldPermissions", [{"ParentId": reader_set, "SobjectType": "Account",
                                                               "Field": "Account.Secret__c", "PermissionsRead": True}])
    try:
        assert "Secret__c" in (type_fields(world, "reader", "Account") or set())
    finally:
        org.records.hard_delete(admin, [grant.id])
    assert "Secret__c" not in (type_fields(world, "reader", "Account") or set())


class _OnlyEvents:
    """A caller's permissions whose schema view holds nothing queryable (only platform events)."""

    def schema(self, schema: Schema) -> Schema:
        return Schema([obj for obj in schema if obj.is_event], version="only-events")


def test_a_caller_who_may_query_nothing_gets_a_validation_error(world: dict[str, Any]) -> None:
    org = world["org"]
    nobody = Context(world["users"]["reader"], org.org_id, access=_OnlyEvents())
    body = run(org, nobody, "{ __schema { types { name } } }")
    assert body["data"] is None
    assert [(e["message"], e["extensions"]["ErrorType"]) for e in body["errors"]] == [
        (NOTHING_TO_QUERY, "ValidationError")]
