"""Connected-app access: an app whose Permitted Users are "Admin approved users are pre-authorized" admits only the
users of the profiles and permission sets it names, on every OAuth flow; with API Access Control on
(``admin_approved_apps_only``) other apps admit only users with Use Any API Client."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from login_helpers import (  # type: ignore[import-not-found]
    PASSWORD,
    REDIRECT,
    TOKEN,
    authorize,
    client_credentials,
    jwt_grant,
    key_and_cert,
    new_app,
    new_user,
    password_grant,
)
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.org import Org
from interlink.app.permissions import assign
from interlink.errors import MetadataError
from interlink.testing import local_org, run_cli

NOT_APPROVED = "user is not admin approved to access this app"
PROJECT = {
    "metadata/permissionSets/ERP_Access.yaml": "userPermissions: [ApiEnabled]\n",
    "metadata/permissionSets/Any_Client.yaml": "userPermissions: [ApiEnabled, UseAnyApiClient]\n",
    "metadata/profiles/Integration.yaml": "userPermissions: [ApiEnabled]\n",
    "metadata/connectedApps/erp.yaml": """\
        name: ERP Connector
        consumerKey: erp-connector
        consumerSecretEnv: ERP_SECRET
        callbackUrl: http://localhost:8080/callback
        permittedUsers: AdminApprovedPreAuthorized
        profiles: [Integration]
        permissionSets: [ERP_Access]
        """,
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("app-access")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ERP_SECRET", "erp-secret")
        with local_org(root / "org", project_dir=write_project(root / "project", PROJECT), bulk_workers=0) as opened:
            yield opened


def http(org: Org) -> TestClient:
    return TestClient(build_app(org), base_url="https://testserver")


def user(org: Org, *, sets: tuple[str, ...] = (), profile: str | None = None) -> str:
    username = new_user(org)
    found = org.directory.user_by_username(username)
    assert found is not None
    assign(org, found.id, profile=profile, permission_sets=list(sets))
    return username


def refused(response: Any, error: str = "invalid_app_access", description: str = NOT_APPROVED) -> bool:
    assert response.status_code == 400, response.text
    return response.json() == {"error": error, "error_description": description}


def test_only_the_named_profiles_and_permission_sets_get_in(org: Org) -> None:
    app = org.directory.app_by_name("ERP Connector")
    assert app is not None and app.admin_approved_only
    assert (app.profiles, app.permission_sets) == (("Integration",), ("ERP_Access",))
    client = http(org)
    by_set, by_profile, stranger = user(org, sets=("ERP_Access",)), user(org, profile="Integration"), user(org)
    assert password_grant(client, app, by_set, PASSWORD).status_code == 200
    assert password_grant(client, app, by_profile, PASSWORD).status_code == 200
    assert refused(password_grant(client, app, stranger, PASSWORD))
    # The web-server flow says so at the callback, with no code.
    answer = authorize(client, app, stranger, PASSWORD)
    assert answer.status_code == 302 and answer.headers["location"].startswith(REDIRECT)
    assert "error=invalid_app_access" in answer.headers["location"] and "code=" not in answer.headers["location"]
    assert "code=" in authorize(client, app, by_set, PASSWORD).headers["location"]


def test_jwt_client_credentials_and_refresh_are_checked_too(org: Org) -> None:
    key, certificate = key_and_cert()
    client = http(org)
    stranger = user(org)
    runner = org.directory.user_by_username(stranger)
    assert runner is not None
    org.directory.update_app("ERP Connector", certificate_pem=certificate, run_as_user_id=runner.id)
    app = org.directory.app_by_name("ERP Connector")
    assert app is not None
    assert refused(jwt_grant(client, key, app, stranger))
    assert refused(client_credentials(client, app))
    assign(org, runner.id, permission_sets=["ERP_Access"])
    assert jwt_grant(client, key, app, stranger).status_code == 200
    assert client_credentials(client, app).status_code == 200
    refresh, _ = org.tokens.mint(runner.id, app_id=app.id, kind="refresh", scope="api refresh_token")
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": app.consumer_key,
            "client_secret": app.consumer_secret}
    assert client.post(TOKEN, data=form).status_code == 200
    assign(org, runner.id, permission_sets=[], exact=True)  # access taken away: no new access token
    assert refused(client.post(TOKEN, data=form))


def test_api_access_control_admits_other_apps_only_for_use_any_api_client(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {
        "metadata/permissionSets/Any_Client.yaml": "userPermissions: [ApiEnabled, UseAnyApiClient]\n"})
    with local_org(tmp_path / "org", project_dir=project, admin_approved_apps_only=True, bulk_workers=0) as org:
        client, app = http(org), new_app(org)
        plain, trusted = user(org), user(org, sets=("Any_Client",))
        assert refused(password_grant(client, app, plain, PASSWORD), "invalid_client", "app must be installed into org")
        assert password_grant(client, app, trusted, PASSWORD).status_code == 200
        org.directory.update_app(app.name, admin_approved_only=True, permission_sets=["Any_Client"])
        assert refused(password_grant(client, app, plain, PASSWORD))  # an approved app's own list decides


@pytest.mark.parametrize(("app_file", "message"), [
    ("name: A\npermittedUsers: Everyone\n", "AllSelfAuthorized or AdminApprovedPreAuthorized"),
    ("name: A\npermittedUsers: AdminApprovedPreAuthorized\npermissionSets: [Nope]\n", "no permission set named Nope"),
    ("name: A\npermittedUsers: AdminApprovedPreAuthorized\nprofiles: [Nope]\n", "no profile named Nope"),
    ("name: A\npermissionSets: [ERP_Access]\n", "pre-authorize users of an app whose permittedUsers"),
])
def test_bad_app_files_are_metadata_errors(tmp_path: Path, app_file: str, message: str) -> None:
    project = write_project(tmp_path / "project", {
        "metadata/permissionSets/ERP_Access.yaml": "userPermissions: [ApiEnabled]\n",
        "metadata/connectedApps/a.yaml": app_file})
    with pytest.raises(MetadataError, match=message), local_org(tmp_path / "org", project_dir=project):
        pass


def test_the_cli_switches_permitted_users(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {
        "metadata/permissionSets/ERP_Access.yaml": "userPermissions: [ApiEnabled]\n"})
    with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
        app = new_app(org)
    where = ("--data-dir", str(tmp_path / "org"))
    env = {"INTERLINK_PROJECT_DIR": str(project)}
    done = run_cli("apps", "update", app.name, "--admin-approved", "--permission-set", "ERP_Access", *where, env=env)
    assert "admin approved users: ERP_Access" in done.stderr
    bad = run_cli("apps", "update", app.name, "--permission-set", "Nope", *where, env=env, check=False)
    assert bad.returncode == 2 and "no permission set named Nope" in bad.stderr
    with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
        client = http(org)
        stranger = user(org)
        assert refused(password_grant(client, org.directory.app_by_name(app.name), stranger, PASSWORD))
        run_cli("apps", "update", app.name, "--all-users", *where, env=env)
    with local_org(tmp_path / "org", project_dir=project, bulk_workers=0) as org:
        assert password_grant(http(org), org.directory.app_by_name(app.name), stranger, PASSWORD).status_code == 200
