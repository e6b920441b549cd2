"""Refresh-token rotation with reuse detection, per connected app (off: the platform's default behaviour)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from login_helpers import PASSWORD, authorize, code_grant, code_of, new_app, new_user  # type: ignore[import-not-found]
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.security.apps import ConnectedApp
from interlink.testing import local_org, run_cli

TOKEN = "/services/oauth2/token"
EXPIRED = {"error": "invalid_grant", "error_description": "expired access/refresh token"}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("rotation") / "org") as opened:
        yield opened


@pytest.fixture
def http(org: Org) -> Iterator[TestClient]:
    with TestClient(build_app(org), base_url="https://testserver") as client:
        yield client


def _first_tokens(http: TestClient, org: Org, app: ConnectedApp) -> dict[str, Any]:
    """Access and refresh token through the web-server flow."""
    username = new_user(org)
    response = code_grant(http, app, code_of(authorize(http, app, username, PASSWORD)))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _refresh(http: TestClient, app: ConnectedApp, refresh_token: str) -> Any:
    return http.post(TOKEN, data={"grant_type": "refresh_token", "client_id": app.consumer_key,
                                  "client_secret": app.consumer_secret, "refresh_token": refresh_token})


def _works(http: TestClient, access_token: str) -> bool:
    response = http.get("/services/data/v66.0/sobjects", headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def test_without_rotation_a_refresh_token_is_reused_and_never_replaced(http: TestClient, org: Org) -> None:
    app = new_app(org)
    assert not app.rotate_refresh_tokens
    refresh = _first_tokens(http, org, app)["refresh_token"]
    for _ in range(3):
        response = _refresh(http, app, refresh)
        assert response.status_code == 200, response.text
        assert "refresh_token" not in response.json()
        assert _works(http, response.json()["access_token"])


def test_with_rotation_each_refresh_returns_a_new_refresh_token(http: TestClient, org: Org) -> None:
    app = new_app(org, rotate=True)
    first = _first_tokens(http, org, app)
    refresh = first["refresh_token"]
    seen = {refresh}
    for _ in range(3):
        response = _refresh(http, app, refresh)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["refresh_token"] not in seen
        assert _works(http, body["access_token"])
        seen.add(body["refresh_token"])
        refresh = body["refresh_token"]
    # Access tokens issued before a rotation keep working until they expire.
    assert _works(http, first["access_token"])


def test_reusing_a_replaced_refresh_token_revokes_the_whole_family(http: TestClient, org: Org) -> None:
    app = new_app(org, rotate=True)
    first = _first_tokens(http, org, app)
    second = _refresh(http, app, first["refresh_token"]).json()
    third = _refresh(http, app, second["refresh_token"]).json()
    # A second, unrelated family of the same app is not touched.
    other = _first_tokens(http, org, app)

    # An attacker replays the first refresh token.
    assert _refresh(http, app, first["refresh_token"]).json() == EXPIRED
    # Every token of the family is revoked: the newest refresh token and every access token.
    assert _refresh(http, app, third["refresh_token"]).json() == EXPIRED
    for body in (first, second, third):
        assert not _works(http, body["access_token"])
    introspected = http.post("/services/oauth2/introspect", data={"token": third["refresh_token"]},
                             auth=(app.consumer_key, app.consumer_secret)).json()
    assert introspected == {"active": False}
    assert _works(http, other["access_token"])
    assert _refresh(http, app, other["refresh_token"]).status_code == 200


def test_a_revoked_refresh_token_of_a_rotating_app_revokes_its_family_when_reused(http: TestClient, org: Org) -> None:
    app = new_app(org, rotate=True)
    first = _first_tokens(http, org, app)
    second = _refresh(http, app, first["refresh_token"]).json()
    # The client logs out: revoking the live refresh token takes its access tokens along.
    assert http.post("/services/oauth2/revoke", data={"token": second["refresh_token"]}).status_code == 200
    assert not _works(http, second["access_token"])
    assert _works(http, first["access_token"])
    # Presenting it again is a reuse: the rest of the family goes too.
    assert _refresh(http, app, second["refresh_token"]).json() == EXPIRED
    assert not _works(http, first["access_token"])


def test_without_rotation_a_revoked_token_does_not_touch_others(http: TestClient, org: Org) -> None:
    app = new_app(org)
    first = _first_tokens(http, org, app)
    assert http.post("/services/oauth2/revoke", data={"token": first["refresh_token"]}).status_code == 200
    assert _refresh(http, app, first["refresh_token"]).json() == EXPIRED
    other = _first_tokens(http, org, app)
    assert _works(http, other["access_token"])


def test_a_refresh_token_of_another_app_is_refused_and_not_rotated(http: TestClient, org: Org) -> None:
    app = new_app(org, rotate=True)
    stranger = new_app(org, rotate=True)
    first = _first_tokens(http, org, app)
    assert _refresh(http, stranger, first["refresh_token"]).json() == EXPIRED
    assert _refresh(http, app, first["refresh_token"]).status_code == 200


def test_a_race_between_two_refreshes_is_a_reuse(org: Org) -> None:
    """Two refreshes with one token: the one that loses the race is treated as a reuse (family revoked)."""
    from interlink.errors import InvalidSession

    user = org.directory.user_by_username(new_user(org))
    assert user is not None
    refresh, _ = org.tokens.mint(user.id, app_id=new_app(org, rotate=True).id, kind="refresh",
                                 scope="api refresh_token")
    winner = org.tokens.rotate(refresh)
    with pytest.raises(InvalidSession):
        org.tokens.rotate(refresh)
    with pytest.raises(InvalidSession):
        org.tokens.refresh_owner(winner)


def test_apps_create_and_update_switch_rotation(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    with local_org(data_dir):
        pass
    created = run_cli("apps", "create", "Rotating", "--rotate-refresh-tokens", "--callback-url",
                      "http://localhost:8080/callback", "--data-dir", str(data_dir))
    assert "consumer_key=" in created.stdout
    with local_org(data_dir) as org:
        app = org.directory.app_by_name("Rotating")
        assert app is not None and app.rotate_refresh_tokens
    off = run_cli("apps", "update", "Rotating", "--no-rotate-refresh-tokens", "--data-dir", str(data_dir))
    assert "refresh-token rotation off" in off.stderr
    with local_org(data_dir) as org, TestClient(build_app(org), base_url="https://testserver") as http:
        app = org.directory.app_by_name("Rotating")
        assert app is not None and not app.rotate_refresh_tokens
        refresh = _first_tokens(http, org, app)["refresh_token"]
        assert "refresh_token" not in _refresh(http, app, refresh).json()
    on = run_cli("apps", "update", "Rotating", "--rotate-refresh-tokens", "--data-dir", str(data_dir))
    assert "refresh-token rotation on" in on.stderr
    with local_org(data_dir) as org, TestClient(build_app(org), base_url="https://testserver") as http:
        app = org.directory.app_by_name("Rotating")
        assert app is not None and app.rotate_refresh_tokens
        # A refresh token issued before rotation was on is rotated from now on.
        replaced = _refresh(http, app, refresh).json()["refresh_token"]
        assert replaced != refresh
        assert _refresh(http, app, refresh).json() == EXPIRED
        assert _refresh(http, app, replaced).json() == EXPIRED  # the reuse revoked the family
    nothing = run_cli("apps", "update", "Rotating", "--data-dir", str(data_dir), check=False)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    missing = run_cli("apps", "update", "Nope", "--rotate-refresh-tokens", "--data-dir", str(data_dir), check=False)
    assert missing.returncode == 2 and "no connected app named 'Nope'" in missing.stderr
