"""Login history: every attempt of a known user on every login path, queryable as the read-only LoginHistory object."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from login_helpers import (  # type: ignore[import-not-found]
    PASSWORD,
    authorize,
    client_credentials,
    console_login,
    console_ok,
    history,
    jwt_grant,
    key_and_cert,
    new_app,
    new_user,
    password_grant,
    soap_login,
)
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.testing import local_org, rest_client, run_cli

QUERY = "/services/data/v66.0/query"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("history") / "org") as opened:
        yield opened


@pytest.fixture
def http(org: Org) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as client:
        yield client


@pytest.fixture
def admin(org: Org) -> Iterator[TestClient]:
    with rest_client(org) as client:
        yield client


def _only(org: Org, username: str) -> dict[str, object]:
    rows = history(org, username)
    assert len(rows) == 1, rows
    return rows[0]


def test_every_login_path_records_type_application_status_and_source(http: TestClient, org: Org) -> None:
    app = new_app(org)
    key, cert = key_and_cert()
    jwt_app = new_app(org, certificate_pem=cert)
    cases = []

    username = new_user(org)
    assert password_grant(http, app, username, PASSWORD).status_code == 200
    cases.append((username, "Remote Access 2.0", app.name, "Success"))

    username = new_user(org)
    assert password_grant(http, app, username, "wrong-password").status_code == 400
    cases.append((username, "Remote Access 2.0", app.name, "Invalid Password"))

    username = new_user(org)
    assert authorize(http, app, username, PASSWORD).status_code == 302
    cases.append((username, "Remote Access 2.0", app.name, "Success"))

    username = new_user(org)
    assert authorize(http, app, username, "wrong-password").status_code == 401
    cases.append((username, "Remote Access 2.0", app.name, "Invalid Password"))

    username = new_user(org)
    assert jwt_grant(http, key, jwt_app, username).status_code == 200
    cases.append((username, "Remote Access 2.0", jwt_app.name, "Success"))

    username = new_user(org)
    cc_app = new_app(org, run_as=username)
    assert client_credentials(http, cc_app).status_code == 200
    cases.append((username, "Remote Access 2.0", cc_app.name, "Success"))

    username = new_user(org)
    assert soap_login(http, username, PASSWORD).status_code == 200
    cases.append((username, "Other Apex API", "N/A", "Success"))

    username = new_user(org)
    assert soap_login(http, username, "wrong-password").status_code == 500
    cases.append((username, "Other Apex API", "N/A", "Invalid Password"))

    username = new_user(org)
    assert console_ok(console_login(http, username, PASSWORD))
    http.cookies.clear()
    cases.append((username, "Application", "Browser", "Success"))

    username = new_user(org)
    assert not console_ok(console_login(http, username, "wrong-password"))
    cases.append((username, "Application", "Browser", "Invalid Password"))

    for username, login_type, application, status in cases:
        row = _only(org, username)
        assert (row["LoginType"], row["Application"], row["Status"]) == (login_type, application, status), username
        assert row["SourceIp"] == "testclient"  # the peer address Starlette's test client reports
        assert row["Username"] == username


def test_soap_logins_name_the_api_and_version(http: TestClient, org: Org, admin: TestClient) -> None:
    username = new_user(org)
    assert soap_login(http, username, PASSWORD).status_code == 200
    user = org.directory.user_by_username(username)
    assert user is not None
    record = admin.get(QUERY, params={"q": f"SELECT ApiType, ApiVersion, LoginUrl FROM LoginHistory "
                                           f"WHERE UserId = '{user.id}'"}).json()["records"][0]
    assert record["ApiType"] == "SOAP Partner" and record["ApiVersion"] == "64.0"
    assert record["LoginUrl"] == "https://testserver"


def test_queryable_with_soql_newest_first(http: TestClient, org: Org, admin: TestClient) -> None:
    username = new_user(org)
    app = new_app(org)
    password_grant(http, app, username, "wrong-password")
    password_grant(http, app, username, PASSWORD)
    user = org.directory.user_by_username(username)
    assert user is not None
    response = admin.get(QUERY, params={"q": "SELECT UserId, LoginTime, Status, SourceIp, LoginType, Application "
                                             f"FROM LoginHistory WHERE UserId = '{user.id}' ORDER BY LoginTime DESC"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalSize"] == 2
    newest, oldest = body["records"]
    assert newest["attributes"]["type"] == "LoginHistory"
    assert newest["attributes"]["url"].startswith("/services/data/v66.0/sobjects/LoginHistory/0Ya")
    assert (newest["Status"], oldest["Status"]) == ("Success", "Invalid Password")
    assert newest["UserId"] == user.id and newest["LoginType"] == "Remote Access 2.0"
    assert newest["LoginTime"] >= oldest["LoginTime"] and newest["LoginTime"].endswith("+0000")
    # The whole org's history, as the platform's admin query reads it.
    everyone = admin.get(QUERY, params={"q": "SELECT UserId, LoginTime, Status, SourceIp, LoginType, Application "
                                             "FROM LoginHistory ORDER BY LoginTime DESC"}).json()
    assert everyone["totalSize"] >= 2


def test_read_only_to_the_api(http: TestClient, org: Org, admin: TestClient) -> None:
    username = new_user(org)
    assert soap_login(http, username, PASSWORD).status_code == 200
    record_id = _only(org, username)["Id"]
    describe = admin.get("/services/data/v66.0/sobjects/LoginHistory/describe").json()
    assert describe["keyPrefix"] == "0Ya"
    assert (describe["createable"], describe["updateable"], describe["deletable"]) == (False, False, False)
    assert describe["queryable"] is True
    created = admin.post("/services/data/v66.0/sobjects/LoginHistory/", json={"Status": "Success"})
    assert created.status_code == 400 and created.json()[0]["errorCode"] == "INVALID_TYPE"
    assert admin.patch(f"/services/data/v66.0/sobjects/LoginHistory/{record_id}",
                       json={"Status": "Forged"}).status_code >= 400
    assert admin.delete(f"/services/data/v66.0/sobjects/LoginHistory/{record_id}").status_code >= 400
    assert _only(org, username)["Status"] == "Success"


def test_last_login_date_is_set_on_success_only(http: TestClient, org: Org, admin: TestClient) -> None:
    username = new_user(org)
    user = org.directory.user_by_username(username)
    assert user is not None

    def last_login() -> str | None:
        return admin.get(f"/services/data/v66.0/sobjects/User/{user.id}").json()["LastLoginDate"]  # type: ignore[no-any-return]

    assert last_login() is None
    assert not console_ok(console_login(http, username, "wrong-password"))
    assert last_login() is None
    assert console_ok(console_login(http, username, PASSWORD))
    first = last_login()
    assert first is not None
    assert soap_login(http, username, PASSWORD).status_code == 200
    second = last_login()
    assert second is not None and second >= first


def test_unknown_usernames_are_not_recorded(http: TestClient, org: Org, caplog: pytest.LogCaptureFixture) -> None:
    table = org.store.table("LoginHistory")
    with org.store.read() as conn:
        before = conn.execute(table.select()).all()
    assert soap_login(http, "ghost@login.test", PASSWORD).status_code == 500
    assert password_grant(http, new_app(org), "ghost@login.test", PASSWORD).status_code == 400
    with org.store.read() as conn:
        assert conn.execute(table.select()).all() == before
    assert "failed login for unknown username 'ghost@login.test'" in caplog.text


def test_interlink_users_logins(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir) as org, TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        assert soap_login(http, username, "wrong-password").status_code == 500
        assert soap_login(http, username, PASSWORD).status_code == 200
        assert console_ok(console_login(http, "admin@interlink.local", "interlink-test-password"))
    wide = {"COLUMNS": "200"}
    mine = run_cli("users", "logins", username, "--data-dir", str(data_dir), env=wide).stdout
    lines = [line for line in mine.splitlines() if username in line]
    assert len(lines) == 2
    assert "Success" in lines[0] and "Other Apex API" in lines[0] and "testclient" in lines[0]
    assert "Invalid Password" in lines[1]
    everyone = run_cli("users", "logins", "--data-dir", str(data_dir), env=wide).stdout
    assert "admin@interlink.local" in everyone and username in everyone
    assert everyone.index("admin@interlink.local") < everyone.index(username)  # newest first
    one = run_cli("users", "logins", "-n", "1", "--data-dir", str(data_dir), env=wide).stdout
    assert "admin@interlink.local" in one and username not in one


def test_an_org_from_before_login_history_gets_it_on_the_next_start(tmp_path: Path) -> None:
    """Orgs created by an earlier version lack the new tables; opening them adds the tables and keeps working."""
    data_dir = tmp_path / "org"
    with local_org(data_dir):
        pass
    with sqlite3.connect(data_dir / "org.db") as db:
        for table in ("il_user_login", "il_connected_app_policy", "il_refresh_family", "LoginHistory"):
            db.execute(f'DROP TABLE "{table}"')
        db.execute("DELETE FROM il_schema WHERE object_name = 'LoginHistory'")
    with local_org(data_dir) as org, TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        assert soap_login(http, username, PASSWORD).status_code == 200
        assert [row["Status"] for row in history(org, username)] == ["Success"]
