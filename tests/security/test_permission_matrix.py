"""Object permissions, field-level security and system permissions, enforced the same way on every surface.

Three users besides the admin, all on the *Minimum Access - API Only Integrations* profile:
- ``reader``: permission set Reader (Account read; FLS read on Public__c; read on Payment_Received__e)
- ``editor``: permission set Editor (Account read/create/edit; FLS edit on Public__c; create on Payment_Received__e)
- ``noapi``: a profile without API Enabled
Secret__c is readable by nobody but the admin (no FLS grant); Invoice__c by nobody but the admin.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import permission_world
from interlink.api.app import build_app
from interlink.errors import InterlinkError
from permission_world import API, PASSWORD, accounts, error_code

world = permission_world.world  # the module's fixture

# -- REST sObjects, describe, SOQL, SOSL ---------------------------------------------------------------------


def test_describe_shows_only_what_the_user_may_read(world: dict[str, Any]) -> None:
    reader = world["clients"]["reader"]
    names = {o["name"] for o in reader.get(f"{API}/sobjects").json()["sobjects"]}
    assert "Account" in names and "Invoice__c" not in names and "Contact" not in names
    fields = {f["name"]: f for f in reader.get(f"{API}/sobjects/Account/describe").json()["fields"]}
    assert "Public__c" in fields and "Secret__c" not in fields
    assert fields["Public__c"]["updateable"] is False and fields["Public__c"]["createable"] is False
    assert reader.get(f"{API}/sobjects/Invoice__c/describe").status_code == 404
    editor_fields = {f["name"]: f for f in world["clients"]["editor"].get(
        f"{API}/sobjects/Account/describe").json()["fields"]}
    assert editor_fields["Public__c"]["updateable"] is True
    admin_fields = {f["name"] for f in world["clients"]["admin"].get(f"{API}/sobjects/Account/describe").json()[
        "fields"]}
    assert "Secret__c" in admin_fields


def test_soql_hides_fields_and_objects(world: dict[str, Any]) -> None:
    reader = world["clients"]["reader"]
    ok = reader.get(f"{API}/query", params={"q": "SELECT Name, Public__c FROM Account"})
    assert ok.status_code == 200 and ok.json()["records"][0]["Public__c"] == "hello"
    hidden = reader.get(f"{API}/query", params={"q": "SELECT Secret__c FROM Account"})
    assert hidden.status_code == 400 and error_code(hidden) == "INVALID_FIELD"
    assert "No such column 'Secret__c'" in hidden.json()[0]["message"]
    other = reader.get(f"{API}/query", params={"q": "SELECT Id FROM Invoice__c"})
    assert error_code(other) == "INVALID_TYPE"
    assert error_code(reader.get(f"{API}/query", params={"q": "SELECT Secret__c FROM Account WITH "
                                                             "SECURITY_ENFORCED"})) == "INVALID_FIELD"
    everything = reader.get(f"{API}/query", params={"q": "SELECT FIELDS(ALL) FROM Account LIMIT 10"})
    assert everything.status_code == 200 and "Secret__c" not in everything.json()["records"][0]


def test_rest_record_reads_omit_hidden_fields(world: dict[str, Any]) -> None:
    reader = world["clients"]["reader"]
    record = reader.get(f"{API}/sobjects/Account/{world['account']}").json()
    assert record["Public__c"] == "hello" and "Secret__c" not in record
    assert error_code(reader.get(f"{API}/sobjects/Account/{world['account']}?fields=Secret__c")) == "INVALID_FIELD"
    by_ids = reader.get(f"{API}/composite/sobjects/Account", params={"ids": world["account"], "fields": "Secret__c"})
    assert error_code(by_ids) == "INVALID_FIELD"


def test_sosl_searches_only_readable_objects(world: dict[str, Any]) -> None:
    found = world["clients"]["reader"].get(f"{API}/search", params={"q": "FIND {INV} RETURNING Invoice__c"})
    assert error_code(found) == "INVALID_TYPE"
    default = world["clients"]["reader"].get(f"{API}/search", params={"q": "FIND {Visible}"})
    assert default.status_code == 200
    assert {r["attributes"]["type"] for r in default.json()["searchRecords"]} <= {"Account"}


# -- writes: REST, composite, collections, Bulk ---------------------------------------------------------------


def test_writes_need_object_and_field_permissions(world: dict[str, Any]) -> None:
    org, reader, editor = world["org"], world["clients"]["reader"], world["clients"]["editor"]
    before = accounts(org)
    refused = reader.post(f"{API}/sobjects/Account", json={"Name": "Nope"})
    assert refused.status_code == 400 and error_code(refused) == "INSUFFICIENT_ACCESS_OR_READONLY"
    read_only = reader.patch(f"{API}/sobjects/Account/{world['account']}", json={"Public__c": "x"})
    assert error_code(read_only) == "INSUFFICIENT_ACCESS_OR_READONLY"
    secret = editor.patch(f"{API}/sobjects/Account/{world['account']}", json={"Secret__c": "leak"})
    assert error_code(secret) == "INVALID_FIELD"
    deleting = editor.delete(f"{API}/sobjects/Account/{world['account']}")
    assert error_code(deleting) == "INSUFFICIENT_ACCESS_OR_READONLY"
    invoice = editor.post(f"{API}/sobjects/Invoice__c", json={"Name": "x"})
    assert invoice.status_code == 404  # an object the user cannot read does not exist for them
    collection = editor.post(f"{API}/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "OK Co", "Public__c": "p"},
        {"attributes": {"type": "Account"}, "Name": "Sneaky Co", "Secret__c": "s"}]}).json()
    assert collection[0]["success"] is True
    assert collection[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    composite = reader.post(f"{API}/composite", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "a", "body": {"Name": "Comp"}}]})
    assert composite.json()["compositeResponse"][0]["body"][0]["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    after = {r["Name"] for r in accounts(org)}
    assert after == {r["Name"] for r in before} | {"OK Co"}
    assert next(r for r in accounts(org) if r["Name"] == "Visible Co")["Secret__c"] == "s3cr3t"


def test_bulk_ingest_and_query_jobs_are_enforced(world: dict[str, Any]) -> None:
    org, editor = world["org"], world["clients"]["editor"]
    job = editor.post(f"{API}/jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
    editor.put(f"{API}/jobs/ingest/{job['id']}/batches", content=b"Name,Secret__c\nBulk Co,s\n",
               headers={"Content-Type": "text/csv"})
    editor.patch(f"{API}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    while org.worker.run_once():
        pass
    done = editor.get(f"{API}/jobs/ingest/{job['id']}").json()
    assert done["numberRecordsFailed"] == 1 and done["numberRecordsProcessed"] == 1
    failed = editor.get(f"{API}/jobs/ingest/{job['id']}/failedResults").text
    assert "INVALID_FIELD" in failed
    query = world["clients"]["reader"].post(f"{API}/jobs/query", json={"operation": "query",
                                                                       "query": "SELECT Secret__c FROM Account"})
    assert query.status_code == 400 and error_code(query) == "INVALID_FIELD"


# -- GraphQL and the OData producer ----------------------------------------------------------------------------


def test_graphql_reads_through_the_same_rules(world: dict[str, Any]) -> None:
    reader = world["clients"]["reader"]
    answer = reader.post(f"{API}/graphql", json={"query": "{ uiapi { query { Account { edges { node { "
                                                          "Name { value } } } } } } }"}).json()
    assert answer["data"]["uiapi"]["query"]["Account"]["edges"]
    hidden = reader.post(f"{API}/graphql", json={"query": "{ uiapi { query { Invoice__c { edges { node { "
                                                          "Name { value } } } } } } }"}).json()
    assert hidden.get("errors")


def test_odata_producer_is_enforced(world: dict[str, Any]) -> None:
    editor = world["clients"]["editor"]
    hidden = editor.get("/odata/v4/Accounts?$select=Secret__c")
    assert hidden.status_code >= 400
    created = world["clients"]["reader"].post("/odata/v4/Accounts", json={"Name": "OData Co"})
    assert created.status_code >= 400
    assert "OData Co" not in {r["Name"] for r in accounts(world["org"])}


# -- system permissions, events, the console --------------------------------------------------------------------


def test_users_without_api_enabled_are_refused_everywhere(world: dict[str, Any]) -> None:
    noapi = world["clients"]["noapi"]
    for response in (noapi.get(f"{API}/sobjects"), noapi.get(f"{API}/query", params={"q": "SELECT Id FROM Account"}),
                     noapi.get("/odata/v4/Accounts")):
        assert response.status_code == 403, response.text
    assert error_code(noapi.get(f"{API}/sobjects")) == "API_DISABLED_FOR_ORG"


def test_event_permissions(world: dict[str, Any]) -> None:
    org = world["org"]
    reader, editor = (org.access.for_user(world["users"][n]) for n in ("reader", "editor"))
    ping = org.bus.topic("/event/Ping__e")
    org.bus.check_access(ping, reader)  # read: may subscribe
    with pytest.raises(InterlinkError) as refused:
        org.bus.check_access(ping, reader, publish=True)
    assert refused.value.http_status == 403
    org.bus.check_access(ping, editor, publish=True)
    with pytest.raises(InterlinkError):
        org.bus.check_access(org.bus.topic("/data/AccountChangeEvent"), reader)  # CDC needs View All
    org.bus.check_access(org.bus.topic("/data/AccountChangeEvent"), org.access.for_user(org.admin_context().user_id))
    rest = world["clients"]["reader"].post(f"{API}/sobjects/Ping__e", json={"Note__c": "hi"})
    assert rest.status_code == 400 and error_code(rest) == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert world["clients"]["editor"].post(f"{API}/sobjects/Ping__e", json={"Note__c": "hi"}).status_code == 201


def test_the_console_follows_the_user_s_permissions(world: dict[str, Any]) -> None:
    with TestClient(build_app(world["org"]), base_url="https://testserver") as browser:
        page = browser.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        browser.post("/console/login", data={"username": "noapi@perm.test", "password": PASSWORD, "csrf": token})
        listed = browser.get("/console/o/Account")
        assert listed.status_code == 200 and "Visible Co" in listed.text
        assert "s3cr3t" not in browser.get(f"/console/r/{world['account']}").text
        assert browser.get("/console/o/Invoice__c").status_code in (400, 404)


def test_permission_changes_apply_at_once(world: dict[str, Any], tmp_path: Path) -> None:
    org, user_id = world["org"], world["users"]["reader"]
    ctx = org.context_for(user_id)
    with pytest.raises(InterlinkError):
        org.query.execute("SELECT Secret__c FROM Account", ctx)
    admin = org.admin_context()
    reader_set = org.query.execute("SELECT Id FROM PermissionSet WHERE Name = 'Reader'", admin).records[0]["Id"]
    (grant,) = org.records.create(admin, "FieldPermissions", [{"ParentId": reader_set, "SobjectType": "Account",
                                                               "Field": "Account.Secret__c", "PermissionsRead": True}])
    assert org.query.execute("SELECT Secret__c FROM Account WHERE Name = 'Visible Co'",
                             org.context_for(user_id)).records[0]["Secret__c"] == "s3cr3t"
    org.records.hard_delete(admin, [grant.id])
    with pytest.raises(InterlinkError):
        org.query.execute("SELECT Secret__c FROM Account", org.context_for(user_id))


def test_setup_objects_are_for_administrators(world: dict[str, Any]) -> None:
    editor = world["clients"]["editor"]
    assert error_code(editor.get(f"{API}/query", params={"q": "SELECT Id FROM PermissionSet"})) == "INVALID_TYPE"
    grant = editor.post(f"{API}/sobjects/PermissionSetAssignment", json={"AssigneeId": world["users"]["editor"]})
    assert grant.status_code == 404
    admin = world["clients"]["admin"]
    sets = admin.get(f"{API}/query", params={"q": "SELECT Name, Label FROM PermissionSet WHERE "
                                                  "IsOwnedByProfile = false ORDER BY Name"}).json()["records"]
    assert [s["Name"] for s in sets] == ["Editor", "Reader"]
    profiles = {r["Name"] for r in admin.get(f"{API}/query", params={"q": "SELECT Name FROM Profile"}).json()[
        "records"]}
    assert {"System Administrator", "Standard User", "Minimum Access - API Only Integrations", "No_API"} <= profiles


def test_flows_run_in_system_context(world: dict[str, Any]) -> None:
    """A flow writes a field the user who triggered it may not see, as record-triggered flows do on the platform."""
    created = world["clients"]["editor"].post(f"{API}/sobjects/Account", json={"Name": "Flow Co"})
    assert created.status_code == 201, created.text
    assert next(r for r in accounts(world["org"]) if r["Name"] == "Flow Co")["Secret__c"] == "stamped"


def test_api_only_users_by_profile_cannot_use_the_console(world: dict[str, Any]) -> None:
    with TestClient(build_app(world["org"]), base_url="https://testserver") as browser:
        page = browser.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        refused = browser.post("/console/login", data={"username": "reader@perm.test", "password": PASSWORD,
                                                       "csrf": token})
        assert refused.status_code == 403 and "il_console" not in browser.cookies
    assert world["clients"]["reader"].get(f"{API}/sobjects").status_code == 200  # every API still works
