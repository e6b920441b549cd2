"""Failed-login lockout and API-only users, through every login path (in process, real request shapes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from login_helpers import (  # type: ignore[import-not-found]
    PASSWORD,
    authorize,
    client_credentials,
    code_grant,
    code_of,
    console_login,
    console_ok,
    jwt_grant,
    key_and_cert,
    new_app,
    new_user,
    password_grant,
    soap_login,
    statuses,
)
from sqlalchemy import update
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.security.logins import LOGIN_TYPE_APPLICATION, LoginAttempt, LoginRefused
from interlink.store.database import utcnow
from interlink.testing import local_org, run_cli

ATTEMPTS = 3  # the org's lockout_attempts
LOCKED_SOAP_FAULT = "Invalid username, password, security token; or user locked out."


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("logins") / "org", lockout_attempts=ATTEMPTS, lockout_minutes=5) as opened:
        yield opened


@pytest.fixture
def http(org: Org) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as client:
        yield client


# Each path: a callable (http, org, username, password) -> True when the login succeeded.

def _oauth_password(http: TestClient, org: Org, username: str, password: str) -> bool:
    response = password_grant(http, new_app(org), username, password)
    if response.status_code == 200:
        return True
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    return False


def _web_server_form(http: TestClient, org: Org, username: str, password: str) -> bool:
    app = new_app(org)
    response = authorize(http, app, username, password)
    if response.status_code == 302:
        assert code_grant(http, app, code_of(response)).status_code == 200
        return True
    assert response.status_code == 401
    assert "Please check your username and password." in response.text
    return False


def _soap(http: TestClient, org: Org, username: str, password: str) -> bool:
    response = soap_login(http, username, password)
    if response.status_code == 200:
        assert "<sessionId>" in response.text
        return True
    assert response.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in response.text
    assert LOCKED_SOAP_FAULT in response.text
    return False


def _console(http: TestClient, org: Org, username: str, password: str) -> bool:
    response = console_login(http, username, password)
    ok = console_ok(response)
    if not ok:
        assert response.status_code == 401
        assert "Please check your username and password." in response.text
    http.cookies.clear()
    return ok


PATHS = {"oauth-password": _oauth_password, "web-server-form": _web_server_form, "soap-login": _soap,
         "console": _console}


@pytest.mark.parametrize("path", list(PATHS))
def test_lockout_after_consecutive_failures_on_every_password_path(http: TestClient, org: Org, path: str) -> None:
    login = PATHS[path]
    username = new_user(org)
    for _ in range(ATTEMPTS):
        assert not login(http, org, username, "wrong-password")
    # Locked: the right password is refused too, with the same answer as a wrong one.
    assert not login(http, org, username, PASSWORD)
    assert statuses(org, username) == ["Invalid Password"] * ATTEMPTS + ["Password Lockout"]
    # ... on every other password path as well.
    for other in PATHS.values():
        assert not other(http, org, username, PASSWORD)
    user = org.directory.user_by_username(username)
    assert user is not None and org.oauth.logins.is_locked(user.id)


def test_a_success_resets_the_count(http: TestClient, org: Org) -> None:
    username = new_user(org)
    for _ in range(2):
        for _ in range(ATTEMPTS - 1):
            assert not _oauth_password(http, org, username, "wrong-password")
        assert _soap(http, org, username, PASSWORD)  # resets: the next failures start from zero
    assert _console(http, org, username, PASSWORD)
    assert statuses(org, username).count("Password Lockout") == 0


def test_the_lockout_ends_after_lockout_minutes(http: TestClient, org: Org) -> None:
    username = new_user(org)
    for _ in range(ATTEMPTS):
        assert not _oauth_password(http, org, username, "wrong-password")
    assert not _oauth_password(http, org, username, PASSWORD)
    user = org.directory.user_by_username(username)
    assert user is not None
    table = org.store.system["il_user_login"]
    with org.store.write() as conn:  # five minutes later
        conn.execute(update(table).where(table.c.user_id == user.id)
                     .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert _oauth_password(http, org, username, PASSWORD)
    # The count started again from zero: one failure does not lock.
    assert not _oauth_password(http, org, username, "wrong-password")
    assert _oauth_password(http, org, username, PASSWORD)


def test_a_new_password_unlocks(http: TestClient, org: Org) -> None:
    username = new_user(org)
    for _ in range(ATTEMPTS):
        assert not _console(http, org, username, "wrong-password")
    user = org.directory.user_by_username(username)
    assert user is not None
    org.directory.set_password(user.id, "brand-new-password")
    assert _console(http, org, username, "brand-new-password")


def test_logins_without_a_password_are_not_locked_out(http: TestClient, org: Org) -> None:
    """A stranger guessing passwords must not stop an integration that logs in with a certificate."""
    username = new_user(org)
    for _ in range(ATTEMPTS):
        assert not _oauth_password(http, org, username, "wrong-password")
    key, cert = key_and_cert()
    jwt_app = new_app(org, certificate_pem=cert)
    assert jwt_grant(http, key, jwt_app, username).status_code == 200
    assert client_credentials(http, new_app(org, run_as=username)).status_code == 200
    assert statuses(org, username)[-2:] == ["Success", "Success"]
    assert not _oauth_password(http, org, username, PASSWORD)  # still locked for password logins


def test_unknown_usernames_are_refused_alike(http: TestClient, org: Org) -> None:
    for login in PATHS.values():
        assert not login(http, org, "nobody@login.test", PASSWORD)


def test_inactive_users_are_refused_on_every_path(http: TestClient, org: Org, client_admin: TestClient) -> None:
    username = new_user(org)
    user = org.directory.user_by_username(username)
    assert user is not None
    key, cert = key_and_cert()
    jwt_app = new_app(org, certificate_pem=cert)
    cc_app = new_app(org, run_as=username)
    deactivated = client_admin.patch(f"/services/data/v66.0/sobjects/User/{user.id}", json={"IsActive": False})
    assert deactivated.status_code == 204, deactivated.text
    for login in PATHS.values():
        assert not login(http, org, username, PASSWORD)
    assert jwt_grant(http, key, jwt_app, username).json()["error"] == "invalid_grant"
    assert client_credentials(http, cc_app).json() == {"error": "invalid_grant",
                                                       "error_description": "no client credentials user enabled"}
    assert set(statuses(org, username)) == {"User is Inactive"}


@pytest.fixture
def client_admin(org: Org) -> Iterator[TestClient]:
    from interlink.testing import rest_client

    with rest_client(org) as client:
        yield client


def test_lockout_attempts_zero_never_locks(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", lockout_attempts=0) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        for _ in range(12):
            assert not _oauth_password(http, org, username, "wrong-password")
        assert _oauth_password(http, org, username, PASSWORD)


def test_the_default_is_ten_attempts(tmp_path: Path) -> None:
    with local_org(tmp_path / "org") as org, TestClient(build_app(org), base_url="https://testserver") as http:
        assert org.oauth.logins.lockout_attempts == 10 and org.oauth.logins.lockout_minutes == 15
        username = new_user(org)
        for _ in range(9):
            assert not _soap(http, org, username, "wrong-password")
        assert _soap(http, org, username, PASSWORD)


def test_interlink_users_unlock(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir, lockout_attempts=ATTEMPTS) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        for _ in range(ATTEMPTS):
            assert not _soap(http, org, username, "wrong-password")
        assert not _soap(http, org, username, PASSWORD)
        listed = run_cli("users", "list", "--data-dir", str(data_dir), env={"COLUMNS": "200"}).stdout
        assert any(username in line and line.rstrip(" │").endswith("yes") for line in listed.splitlines())
        result = run_cli("users", "unlock", username, "--data-dir", str(data_dir))
        assert f"Unlocked {username}" in result.stderr
        assert _soap(http, org, username, PASSWORD)
        unknown = run_cli("users", "unlock", "nobody@login.test", "--data-dir", str(data_dir), check=False)
        assert unknown.returncode == 2 and "no user" in unknown.stderr


# -- API-only (integration) users ---------------------------------------------------------------------------------


def test_api_only_users_cannot_log_in_to_the_console(http: TestClient, org: Org) -> None:
    username = new_user(org, api_only=True)
    response = console_login(http, username, PASSWORD)
    assert response.status_code == 403
    assert "API-only" in response.text and "cannot log in to the console" in response.text
    assert "il_console" not in http.cookies
    assert statuses(org, username) == ["Failed: API Only User"]
    # A wrong password still reads as one (and counts toward the lockout).
    assert console_login(http, username, "wrong-password").status_code == 401


def test_api_only_users_use_every_api(http: TestClient, org: Org) -> None:
    username = new_user(org, api_only=True)
    assert _oauth_password(http, org, username, PASSWORD)
    assert _web_server_form(http, org, username, PASSWORD)
    assert _soap(http, org, username, PASSWORD)
    key, cert = key_and_cert()
    token = jwt_grant(http, key, new_app(org, certificate_pem=cert), username).json()["access_token"]
    assert http.get("/services/data/v66.0/sobjects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client_credentials(http, new_app(org, run_as=username)).status_code == 200
    assert statuses(org, username) == ["Success"] * 5


def test_making_a_user_api_only_ends_its_console_sessions(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    # token_cache_seconds=0: the CLI is another process, whose revocation a server notices at its next store check.
    with local_org(data_dir, token_cache_seconds=0) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        assert console_ok(console_login(http, username, PASSWORD))
        assert http.get("/console/", follow_redirects=False).status_code == 200
        result = run_cli("users", "api-only", username, "--data-dir", str(data_dir))
        assert "API-only now; ended 1 console session(s)" in result.stderr
        assert http.get("/console/", follow_redirects=False).status_code == 303
        http.cookies.clear()
        assert not console_ok(console_login(http, username, PASSWORD))
        run_cli("users", "api-only", username, "--off", "--data-dir", str(data_dir))
        assert console_ok(console_login(http, username, PASSWORD))


def test_users_create_api_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir):
        pass
    result = run_cli("users", "create", "erp@acme.local", "--last-name", "Integration", "--api-only",
                     "--password", "erp-password-1", "--data-dir", str(data_dir))
    assert "Created API-only user erp@acme.local" in result.stderr
    with local_org(data_dir) as org, TestClient(build_app(org), base_url="https://testserver") as http:
        assert not console_ok(console_login(http, "erp@acme.local", "erp-password-1"))
        assert _soap(http, org, "erp@acme.local", "erp-password-1")


def test_check_is_the_one_gate(org: Org) -> None:
    """The policy's check() refuses an API-only user at the console and records it, whatever called it."""
    username = new_user(org, api_only=True)
    user = org.directory.user_by_username(username)
    assert user is not None
    with pytest.raises(LoginRefused) as refused:
        org.oauth.logins.check(user, LoginAttempt(LOGIN_TYPE_APPLICATION, "Browser", "10.1.2.3"))
    assert refused.value.status == "Failed: API Only User"
    assert statuses(org, username) == ["Failed: API Only User"]


def test_a_permission_can_make_a_user_api_only(tmp_path: Path) -> None:
    """The hook the API Only User permission of profiles and permission sets plugs into."""
    with local_org(tmp_path / "org") as org, TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        user = org.directory.user_by_username(username)
        assert user is not None
        org.oauth.logins.api_only_permission = lambda user_id: user_id == user.id
        assert console_login(http, username, PASSWORD).status_code == 403
        assert _soap(http, org, username, PASSWORD)
        assert console_ok(console_login(http, "admin@interlink.local", "interlink-test-password"))
