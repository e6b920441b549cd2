"""Three leaks closed: upsert matching hidden records, SOSL matching hidden fields, OData showing hidden fields.

``Widget__c`` is Private; the user ``rep`` (Minimum Access profile plus the *Widgets* permission set) may read and edit
widgets and their ``Code__c`` and ``Note__c`` fields, but not ``Secret__c``. The admin owns two widgets coded
``SHARED`` that rep cannot see.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.security.access import API_ONLY_PROFILE
from interlink.testing import local_org

API = "/services/data/v66.0"
PROJECT = {
    "metadata/objects/Widget__c.yaml": """\
        name: Widget__c
        label: Widget
        labelPlural: Widgets
        sharingModel: Private
        fields:
          - {name: Code__c, type: text, length: 40, externalId: true}
          - {name: Note__c, type: text, length: 80}
          - {name: Secret__c, type: text, length: 80}
        """,
    "metadata/permissionSets/Widgets.yaml": """\
        label: Widgets
        objectPermissions:
          Widget__c: read, create, edit, delete
        fieldPermissions:
          Widget__c.Code__c: edit
          Widget__c.Note__c: edit
        """,
    "metadata/odata.yaml": "objects:\n  - {name: Widget__c, writable: true}\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("leaks")
    for relative, text in PROJECT.items():
        path = root / "project" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with local_org(root / "org", project_dir=root / "project", bulk_workers=0) as org:
        rep_id, _ = create_user(org, "rep@leaks.test", last_name="Rep")
        assign(org, rep_id, profile=API_ONLY_PROFILE, permission_sets=["Widgets"], exact=True)
        admin = org.admin_context()
        hidden = org.records.create(admin, "Widget__c", [
            {"Name": "Admin one", "Code__c": "SHARED", "Secret__c": "zebrafish"},
            {"Name": "Admin two", "Code__c": "SHARED"}])
        (mine,) = org.records.create(admin, "Widget__c", [
            {"Name": "Rep widget", "Code__c": "MINE", "Note__c": "visible words", "Secret__c": "okapi",
             "OwnerId": rep_id}])
        app = build_app(org)
        rep = TestClient(app, base_url="https://testserver")
        rep.headers["Authorization"] = f"Bearer {org.mint_token('rep@leaks.test')}"
        boss = TestClient(app, base_url="https://testserver")
        boss.headers["Authorization"] = f"Bearer {org.mint_token('admin@interlink.local')}"
        yield {"org": org, "rep": rep, "admin": boss, "hidden": [r.id for r in hidden], "mine": mine.id}


def test_upsert_and_external_id_reads_match_only_records_the_caller_sees(world: dict[str, Any]) -> None:
    rep, admin, hidden = world["rep"], world["admin"], world["hidden"]
    # The admin sees both SHARED widgets: 300 with their URLs.
    both = admin.get(f"{API}/sobjects/Widget__c/Code__c/SHARED")
    assert both.status_code == 300 and len(both.json()) == 2
    # rep sees neither: not found, and no ids in the answer.
    missing = rep.get(f"{API}/sobjects/Widget__c/Code__c/SHARED")
    assert missing.status_code == 404
    assert not any(record_id[:15] in missing.text for record_id in hidden)
    # Upserting on that key creates rep's own widget, as for any key rep's records do not have.
    made = rep.patch(f"{API}/sobjects/Widget__c/Code__c/SHARED", json={"Name": "Rep's shared"})
    assert made.status_code == 201, made.text
    assert made.json()["created"] is True and made.json()["id"] not in hidden
    assert not any(record_id[:15] in made.text for record_id in hidden)
    # Now rep sees one SHARED widget (its own): the next upsert updates it.
    again = rep.patch(f"{API}/sobjects/Widget__c/Code__c/SHARED", json={"Note__c": "updated"})
    assert again.status_code == 200 and again.json() == {**made.json(), "created": False}
    assert rep.get(f"{API}/sobjects/Widget__c/Code__c/SHARED").status_code == 200
    # Collections upsert follows the same rule.
    results = rep.patch(f"{API}/composite/sobjects/Widget__c/Code__c", json={
        "allOrNone": False, "records": [{"attributes": {"type": "Widget__c"}, "Code__c": "SHARED", "Note__c": "x"}]})
    assert results.status_code == 200 and results.json()[0]["id"] == made.json()["id"], results.text


def _search_ids(client: TestClient, sosl: str) -> set[str]:
    response = client.get(f"{API}/search", params={"q": sosl})
    assert response.status_code == 200, response.text
    return {r["Id"] for r in response.json()["searchRecords"]}


def test_sosl_does_not_find_records_through_fields_the_caller_cannot_read(world: dict[str, Any]) -> None:
    rep, admin, mine = world["rep"], world["admin"], world["mine"]
    assert mine in _search_ids(admin, "FIND {okapi} IN ALL FIELDS RETURNING Widget__c(Id)")
    assert _search_ids(rep, "FIND {okapi} IN ALL FIELDS RETURNING Widget__c(Id)") == set()
    assert _search_ids(rep, "FIND {okapi}") == set()  # default RETURNING too
    assert _search_ids(rep, "FIND {oka*} IN ALL FIELDS RETURNING Widget__c(Id)") == set()
    assert _search_ids(rep, "FIND {\"visible words\" OR okapi} RETURNING Widget__c(Id)") == {mine}
    assert _search_ids(rep, "FIND {visible AND NOT okapi} RETURNING Widget__c(Id)") == {mine}
    assert _search_ids(rep, "FIND {Rep widget} IN NAME FIELDS RETURNING Widget__c(Id)") == {mine}


def test_odata_leaves_hidden_fields_out_for_the_caller(world: dict[str, Any]) -> None:
    rep, admin, mine = world["rep"], world["admin"], world["mine"]
    assert 'Name="Secret__c"' in admin.get("/odata/v4/$metadata").text
    metadata = rep.get("/odata/v4/$metadata")
    assert metadata.status_code == 200, metadata.text
    assert 'Name="Secret__c"' not in metadata.text and 'Name="Note__c"' in metadata.text
    assert 'Name="Secret__c"' not in rep.get("/odata/v2/$metadata").text
    entity = rep.get(f"/odata/v4/Widget__c('{mine}')")
    assert entity.status_code == 200, entity.text
    assert "Secret__c" not in entity.json() and entity.json()["Note__c"] == "visible words"
    listed = rep.get("/odata/v4/Widget__c")
    assert listed.status_code == 200, listed.text
    assert all("Secret__c" not in row for row in listed.json()["value"])
    assert admin.get(f"/odata/v4/Widget__c('{mine}')").json()["Secret__c"] == "okapi"
    for query in ("$select=Name,Secret__c", "$filter=Secret__c eq 'okapi'"):
        refused = rep.get(f"/odata/v4/Widget__c?{query}")
        assert refused.status_code == 400, refused.text
        assert "No property 'Secret__c' exists in type 'Interlink.Widget__c'" in refused.text
