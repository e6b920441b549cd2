"""Session timeout and revocation apply alike to API sessions and console sessions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from login_helpers import (  # type: ignore[import-not-found]
    PASSWORD,
    authorize,
    code_grant,
    code_of,
    console_login,
    console_ok,
    new_app,
    new_user,
)
from sqlalchemy import update
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.security.tokens import token_hash
from interlink.store.database import utcnow
from interlink.testing import local_org, rest_client, run_cli

SOBJECTS = "/services/data/v66.0/sobjects"


def _api_works(http: TestClient, token: str) -> bool:
    response = http.get(SOBJECTS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def _console_works(http: TestClient) -> bool:
    response = http.get("/console/", follow_redirects=False)
    assert response.status_code in (200, 303), response.text
    return response.status_code == 200


def _idle(org: Org, token: str, seconds: int) -> None:
    """The token was last used ``seconds`` ago (its uses so far written first, as housekeeping does)."""
    org.tokens.flush_touches()
    table = org.store.system["il_token"]
    with org.store.write() as conn:
        conn.execute(update(table).where(table.c.token_hash == token_hash(token))
                     .values(last_used_at=utcnow() - timedelta(seconds=seconds)))


def test_console_and_api_sessions_expire_after_session_timeout(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", session_timeout=600, token_cache_seconds=0) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        app = new_app(org)
        api_token = code_grant(http, app, code_of(authorize(http, app, username, PASSWORD))).json()["access_token"]
        assert console_ok(console_login(http, username, PASSWORD))
        console_token = http.cookies["il_console"]
        assert _console_works(http) and _api_works(http, api_token)
        # Idle for less than session_timeout: both still work (and each use extends the session).
        _idle(org, console_token, 590)
        _idle(org, api_token, 590)
        assert _console_works(http) and _api_works(http, api_token)
        # Idle for longer: both are gone.
        _idle(org, console_token, 601)
        _idle(org, api_token, 601)
        assert not _console_works(http)
        assert not _api_works(http, api_token)


def test_users_revoke_ends_api_refresh_and_console_sessions(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir, token_cache_seconds=0) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http:
        username = new_user(org)
        other = new_user(org)
        app = new_app(org)
        tokens = code_grant(http, app, code_of(authorize(http, app, username, PASSWORD))).json()
        others = code_grant(http, app, code_of(authorize(http, app, other, PASSWORD))).json()
        assert console_ok(console_login(http, username, PASSWORD))
        assert _console_works(http) and _api_works(http, tokens["access_token"])

        result = run_cli("users", "revoke", username, "--data-dir", str(data_dir))
        assert f"Revoked 3 token(s) of {username}" in result.stderr

        assert not _console_works(http)
        assert not _api_works(http, tokens["access_token"])
        refreshed = http.post("/services/oauth2/token", data={
            "grant_type": "refresh_token", "client_id": app.consumer_key, "refresh_token": tokens["refresh_token"]})
        assert refreshed.json()["error"] == "invalid_grant"
        assert _api_works(http, others["access_token"])  # nobody else's sessions
        # The user can log in again.
        http.cookies.clear()
        assert console_ok(console_login(http, username, PASSWORD))


def test_deactivation_ends_console_sessions_for_good(tmp_path: Path) -> None:
    with local_org(tmp_path / "org", token_cache_seconds=0) as org, \
            TestClient(build_app(org), base_url="https://testserver") as http, rest_client(org) as admin:
        username = new_user(org)
        user = org.directory.user_by_username(username)
        assert user is not None
        app = new_app(org)
        api_token = code_grant(http, app, code_of(authorize(http, app, username, PASSWORD))).json()["access_token"]
        assert console_ok(console_login(http, username, PASSWORD))
        assert admin.patch(f"{SOBJECTS}/User/{user.id}", json={"IsActive": False}).status_code == 204
        assert not _console_works(http)
        assert admin.patch(f"{SOBJECTS}/User/{user.id}", json={"IsActive": True}).status_code == 204
        # Reactivating the user does not bring the ended sessions back: it logs in again.
        assert not _console_works(http)
        assert not _api_works(http, api_token)
        http.cookies.clear()
        assert console_ok(console_login(http, username, PASSWORD))
