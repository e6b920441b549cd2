"""User.ProfileId is a lookup to Profile: the profile's name is reachable from User queries and the reverse."""

from __future__ import annotations

from pathlib import Path

from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.testing import local_org, rest_client


def test_profile_name_through_the_user_relationship(tmp_path: Path) -> None:
    with local_org(tmp_path / "org") as org:
        user_id, _ = create_user(org, "ana@example.com", last_name="Ana")
        assign(org, user_id, profile="Minimum Access - API Only Integrations")
        with rest_client(org) as client:
            rows = client.get("/services/data/v66.0/query", params={
                "q": "SELECT Username, Profile.Name FROM User ORDER BY Username"}).json()["records"]
            names = {r["Username"]: r["Profile"]["Name"] for r in rows}
            assert names["ana@example.com"] == "Minimum Access - API Only Integrations"
            assert names["admin@interlink.local"] == "System Administrator"
            profiles = client.get("/services/data/v66.0/query", params={
                "q": "SELECT Name, (SELECT Username FROM Users) FROM Profile "
                     "WHERE Name = 'Minimum Access - API Only Integrations'"}).json()["records"]
            assert [u["Username"] for u in profiles[0]["Users"]["records"]] == ["ana@example.com"]
            field = next(f for f in client.get("/services/data/v66.0/sobjects/User/describe").json()["fields"]
                         if f["name"] == "ProfileId")
            assert field["type"] == "reference" and field["referenceTo"] == ["Profile"]
            assert field["relationshipName"] == "Profile"


def test_a_profile_id_that_is_not_a_profile_is_refused(tmp_path: Path) -> None:
    with local_org(tmp_path / "org") as org:
        user_id, _ = create_user(org, "bo@example.com", last_name="Bo")
        with rest_client(org) as client:
            account = client.post("/services/data/v66.0/sobjects/Account", json={"Name": "Acme"}).json()["id"]
            answer = client.patch(f"/services/data/v66.0/sobjects/User/{user_id}", json={"ProfileId": account})
            assert answer.status_code == 400, answer.text
            assert answer.json()[0]["errorCode"] in ("FIELD_INTEGRITY_EXCEPTION", "INVALID_CROSS_REFERENCE_KEY")
            row = client.get(f"/services/data/v66.0/sobjects/User/{user_id}").json()
            assert row["ProfileId"] != account
