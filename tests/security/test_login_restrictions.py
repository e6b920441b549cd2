"""Profile login IP ranges and login hours, through every login path and on sessions (in process).

The project declares two profiles: *Office* (login IP ranges 10.0.0.0-10.0.0.255 and 192.168.1.7) and *Day Shift*
(login hours 08:00-18:00, Monday to Friday). The TestClient sets the client address (the socket peer).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from login_helpers import (  # type: ignore[import-not-found]
    PASSWORD,
    authorize,
    client_credentials,
    code_grant,
    code_of,
    console_login,
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
from interlink.app.permissions import assign
from interlink.errors import ConfigurationError, MetadataError
from interlink.security.login_restrictions import (
    client_address,
    parse_address,
    parse_ip_ranges,
    parse_login_hours,
    parse_networks,
)
from interlink.testing import local_org

INSIDE, OUTSIDE = "10.0.0.5", "192.0.2.7"
SOBJECTS = "/services/data/v66.0/sobjects"
RESTRICTED = {"error": "invalid_grant", "error_description": "ip restricted or invalid login hours"}
MONDAY_9 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday in winter (Paris is UTC+1)
WEEKDAY_HOURS = "\n".join(f"  {day}: {{start: \"08:00\", end: \"18:00\"}}"
                          for day in ("monday", "tuesday", "wednesday", "thursday", "friday"))
PROJECT = {
    "metadata/profiles/Office.yaml": """\
        userPermissions: [ApiEnabled]
        objectPermissions:
          Account: read
        loginIpRanges:
          - {start: 10.0.0.0, end: 10.0.0.255, description: Office network}
          - {start: 192.168.1.7, end: 192.168.1.7}
        """,
    "metadata/profiles/Day Shift.yaml": "userPermissions: [ApiEnabled]\nloginHours:\n" + WEEKDAY_HOURS + "\n",
}


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("restrictions")
    for relative, text in PROJECT.items():
        path = root / "project" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with local_org(root / "org", project_dir=root / "project", token_cache_seconds=0) as opened:
        opened.oauth.logins.cache_seconds = 0
        yield opened


@pytest.fixture
def clock(org: Org) -> Iterator[list[datetime]]:
    """The login policy's clock, Monday 09:00 UTC unless a test moves it."""
    now = [MONDAY_9]
    org.oauth.logins.clock = lambda: now[0]
    yield now
    org.oauth.logins.clock = lambda: datetime.now(UTC)


def _client(org: Org, address: str, headers: dict[str, str] | None = None) -> TestClient:
    client = TestClient(build_app(org), base_url="https://testserver", client=(address, 50000))
    client.headers.update(headers or {})
    return client


def _user(org: Org, profile: str) -> str:
    username = new_user(org)
    user = org.directory.user_by_username(username)
    assert user is not None
    assign(org, user.id, profile=profile)
    return username


def _api(http: TestClient, token: str) -> int:
    return http.get(SOBJECTS, headers={"Authorization": f"Bearer {token}"}).status_code


def test_login_ip_ranges_refuse_every_login_path_from_outside(org: Org) -> None:
    username = _user(org, "Office")
    key, cert = key_and_cert()
    app = new_app(org, run_as=username, certificate_pem=cert)
    with _client(org, INSIDE) as inside, _client(org, OUTSIDE) as outside:
        assert password_grant(inside, app, username, PASSWORD).status_code == 200
        assert password_grant(_client(org, "192.168.1.7"), app, username, PASSWORD).status_code == 200
        refused = password_grant(outside, app, username, PASSWORD)
        assert (refused.status_code, refused.json()) == (400, RESTRICTED)
        # A wrong password from outside still reads as a wrong password.
        assert password_grant(outside, app, username, "nope").json()["error_description"] == "authentication failure"
        assert jwt_grant(outside, key, app, username).json() == RESTRICTED
        assert client_credentials(outside, app).json() == RESTRICTED
        assert jwt_grant(inside, key, app, username).status_code == 200
        soap = soap_login(outside, username, PASSWORD)
        assert soap.status_code == 500
        assert "<faultcode>sf:LOGIN_DURING_RESTRICTED_DOMAIN</faultcode>" in soap.text
        assert "The user is not allowed to log in from this IP address." in soap.text
        assert soap_login(inside, username, PASSWORD).status_code == 200
        form = authorize(outside, app, username, PASSWORD)
        assert form.status_code == 401 and "this IP address" in form.text
        console = console_login(outside, username, PASSWORD)
        assert console.status_code == 403 and "this IP address" in console.text
        assert "il_console" not in console.cookies
        # Refresh tokens obtained inside do not work from outside (the connected app enforces the ranges).
        tokens = code_grant(inside, app, code_of(authorize(inside, app, username, PASSWORD))).json()
        refresh = {"grant_type": "refresh_token", "client_id": app.consumer_key,
                   "refresh_token": tokens["refresh_token"]}
        assert outside.post("/services/oauth2/token", data=refresh).json() == RESTRICTED
        assert inside.post("/services/oauth2/token", data=refresh).status_code == 200
    history = statuses(org, username)
    assert history.count("Restricted IP") == 7
    assert "Invalid Password" in history and "Success" in history
    source = {row["SourceIp"] for row in org.oauth.logins.history(org.directory.user_by_username(username).id)}
    assert source == {INSIDE, OUTSIDE, "192.168.1.7"}


def test_sessions_are_checked_on_every_request_only_when_enforced(org: Org) -> None:
    username = _user(org, "Office")
    app = new_app(org)
    with _client(org, INSIDE) as inside, _client(org, OUTSIDE) as outside:
        token = password_grant(inside, app, username, PASSWORD).json()["access_token"]
        assert _api(outside, token) == 200  # the platform's default: the ranges are checked at login
        org.oauth.logins.enforce_ip_every_request = True
        try:
            refused = outside.get(SOBJECTS, headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401 and refused.json()[0]["errorCode"] == "INVALID_SESSION_ID"
            assert _api(inside, token) == 200  # the session itself goes on
        finally:
            org.oauth.logins.enforce_ip_every_request = False


def test_login_hours_refuse_logins_and_end_sessions(org: Org, clock: list[datetime]) -> None:
    username = _user(org, "Day Shift")
    app = new_app(org)
    with _client(org, OUTSIDE) as http:  # no ranges on this profile: any address
        token = password_grant(http, app, username, PASSWORD).json()["access_token"]
        assert _api(http, token) == 200
        clock[0] = MONDAY_9.replace(hour=18, minute=1)
        assert _api(http, token) == 401  # the hours ended: so did the session
        clock[0] = MONDAY_9.replace(hour=10)
        assert _api(http, token) == 401  # for good
        clock[0] = MONDAY_9.replace(day=10)  # Saturday: not listed, no login
        assert password_grant(http, app, username, PASSWORD).json() == RESTRICTED
        soap = soap_login(http, username, PASSWORD)
        assert "<faultcode>sf:LOGIN_DURING_RESTRICTED_TIME</faultcode>" in soap.text
        assert console_login(http, username, PASSWORD).status_code == 403
        clock[0] = MONDAY_9.replace(hour=7, minute=59)
        assert password_grant(http, app, username, PASSWORD).json() == RESTRICTED
    assert statuses(org, username) == ["Success", "Restricted Time", "Restricted Time", "Restricted Time",
                                       "Restricted Time"]


def test_login_hours_are_in_the_org_s_time_zone(org: Org, clock: list[datetime]) -> None:
    username = _user(org, "Day Shift")
    app = new_app(org)
    organization = org.store.table("Organization")
    clock[0] = MONDAY_9.replace(hour=7, minute=30)  # 07:30 UTC is 08:30 in Paris
    with _client(org, INSIDE) as http:
        assert password_grant(http, app, username, PASSWORD).json() == RESTRICTED
        with org.store.write() as conn:
            conn.execute(update(organization).values(TimeZoneSidKey="Europe/Paris"))
        org.oauth.logins.invalidate_restrictions()
        try:
            assert password_grant(http, app, username, PASSWORD).status_code == 200
        finally:
            with org.store.write() as conn:
                conn.execute(update(organization).values(TimeZoneSidKey="GMT"))
            org.oauth.logins.invalidate_restrictions()


def test_forwarded_for_counts_only_behind_a_trusted_proxy(org: Org) -> None:
    username = _user(org, "Office")
    app = new_app(org)
    spoofed = {"X-Forwarded-For": INSIDE}
    with _client(org, OUTSIDE, spoofed) as http:
        assert password_grant(http, app, username, PASSWORD).json() == RESTRICTED  # the header is not trusted
    org.trusted_proxies = parse_networks("192.0.2.0/24")
    try:
        with _client(org, OUTSIDE, spoofed) as proxied:
            assert password_grant(proxied, app, username, PASSWORD).status_code == 200
    finally:
        org.trusted_proxies = ()


def test_client_address_takes_the_hop_before_the_trusted_proxies() -> None:
    trusted = parse_networks("10.1.0.0/16, 10.2.0.1")
    assert client_address("203.0.113.9", ["10.0.0.5"], trusted) == "203.0.113.9"  # peer not a proxy
    assert client_address("10.1.2.3", ["10.0.0.5"], trusted) == "10.0.0.5"
    # A client cannot put an address in front of the one the proxies saw.
    assert client_address("10.1.2.3", ["10.0.0.5, 198.51.100.4, 10.2.0.1"], trusted) == "198.51.100.4"
    assert client_address("10.1.2.3", [], trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", ["garbage"], trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", ["10.0.0.5"], ()) == "10.1.2.3"
    assert parse_address("::ffff:10.0.0.5") == parse_address("10.0.0.5")
    with pytest.raises(ConfigurationError):
        parse_networks("10.0.0.0/33")


@pytest.mark.parametrize("value", [
    "10.0.0.1",
    [{"start": "10.0.0.9", "end": "10.0.0.1"}],
    [{"start": "10.0.0.1", "end": "::1"}],
    [{"start": "nope"}],
    [{"start": "10.0.0.1", "stop": "10.0.0.2"}],
])
def test_bad_login_ip_ranges_are_metadata_errors(value: Any) -> None:
    with pytest.raises(MetadataError):
        parse_ip_ranges(value, "metadata/profiles/X.yaml")


@pytest.mark.parametrize("value", [
    ["monday"],
    {"funday": {"start": "08:00", "end": "18:00"}},
    {"monday": {"start": "8am", "end": "18:00"}},
    {"monday": {"start": "18:00", "end": "08:00"}},
    {"monday": {"start": "08:00", "end": "24:30"}},
    {"monday": {"start": "08:00"}},
])
def test_bad_login_hours_are_metadata_errors(value: Any) -> None:
    with pytest.raises(MetadataError):
        parse_login_hours(value, "metadata/profiles/X.yaml")


def test_a_whole_day_and_a_closed_day() -> None:
    hours = parse_login_hours({"monday": {"start": "00:00", "end": "24:00"}, "tuesday": {"start": "09:00",
                                                                                       "end": "09:00"}}, "x")
    assert hours is not None
    assert hours.allows(MONDAY_9.replace(hour=23, minute=59)) and hours.allows(MONDAY_9.replace(hour=0))
    assert not hours.allows(MONDAY_9.replace(day=6, hour=9))
