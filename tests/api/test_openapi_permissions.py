"""GET /interlink/v1/openapi.json follows the caller's permissions, as describe does.

The users and org are those of ``tests/permission_world.py`` (its ``world`` fixture, run again for
this module): ``reader`` may read Account and its Public__c, ``editor`` may also create and edit them; neither may
read Secret__c nor Invoice__c; the admin may do everything.
"""

from __future__ import annotations

from typing import Any

import pytest

import permission_world

world = permission_world.world  # the shared fixture
URL = "/interlink/v1/openapi.json"
B = permission_world.API


def document(world: dict[str, Any], who: str) -> dict[str, Any]:
    response = world["clients"][who].get(URL)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def properties(doc: dict[str, Any], schema: str) -> set[str]:
    return set(doc["components"]["schemas"][schema]["properties"])


def test_a_restricted_user_sees_only_what_they_may_read(world: dict[str, Any]) -> None:
    doc = document(world, "reader")
    paths = set(doc["paths"])
    assert f"{B}/sobjects/Account/{{id}}" in paths
    assert not [p for p in paths if "/Invoice__c" in p or "/Contact" in p]
    schemas = doc["components"]["schemas"]
    assert "Invoice__c" not in schemas and "Contact" not in schemas
    assert "Public__c" in properties(doc, "Account") and "Secret__c" not in properties(doc, "Account")
    assert "Secret__c" not in str(doc) and "Invoice__c" not in str(doc)

    admin = document(world, "admin")
    assert f"{B}/sobjects/Invoice__c/{{id}}" in admin["paths"]
    assert {"Secret__c", "Public__c"} <= properties(admin, "Account") & properties(admin, "AccountCreate")


def test_writes_follow_edit_rights(world: dict[str, Any]) -> None:
    reader = document(world, "reader")["paths"]
    assert set(reader[f"{B}/sobjects/Account"]) == {"get"}  # no create
    assert set(reader[f"{B}/sobjects/Account/{{id}}"]) == {"get"}  # no update, no delete
    assert f"{B}/composite/sobjects/Account/{{field}}" not in reader  # no upsert either

    editor = document(world, "editor")
    assert set(editor["paths"][f"{B}/sobjects/Account"]) == {"get", "post"}
    assert set(editor["paths"][f"{B}/sobjects/Account/{{id}}"]) == {"get", "patch"}  # no delete permission
    for body in ("AccountCreate", "AccountUpdate"):
        assert "Public__c" in properties(editor, body) and "Secret__c" not in properties(editor, body)
    assert "Public__c" not in properties(document(world, "reader"), "AccountCreate")


def test_naming_a_hidden_object_answers_as_an_unknown_one(world: dict[str, Any]) -> None:
    reader = world["clients"]["reader"]
    hidden = reader.get(URL, params={"objects": "Account,Invoice__c"})
    unknown = reader.get(URL, params={"objects": "Account,Nope__c"})
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()[0]["message"] == unknown.json()[0]["message"].replace("Nope__c", "Invoice__c")
    assert world["clients"]["admin"].get(URL, params={"objects": "Invoice__c"}).status_code == 200


def test_a_restricted_document_is_still_valid_openapi(world: dict[str, Any]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    for who in ("reader", "editor"):
        schemathesis.openapi.from_dict(document(world, who)).validate()


def test_interlink_admin_routes_need_api_enabled_and_setup_rights(world: dict[str, Any]) -> None:
    """Interlink's own /interlink/v1 routes: API Enabled for all; View Setup for the queues (they carry other
    users' payloads), Modify All Data for a retry."""
    noapi, reader, admin = (world["clients"][who] for who in ("noapi", "reader", "admin"))
    refused = noapi.get(URL)
    assert refused.status_code == 403 and refused.json()[0]["errorCode"] == "API_DISABLED_FOR_ORG"
    for path in ("/interlink/v1/callouts", "/interlink/v1/outbound"):
        answer = reader.get(path)
        assert answer.status_code == 403, answer.text
        assert answer.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS" and "ViewSetup" in answer.json()[0]["message"]
        assert admin.get(path).status_code == 200
    retry = reader.post("/interlink/v1/callouts/a0Z000000000001AAA/retry")
    assert retry.status_code == 403 and "ModifyAllData" in retry.json()[0]["message"]
    assert admin.post("/interlink/v1/callouts/a0Z000000000001AAA/retry").status_code == 404
