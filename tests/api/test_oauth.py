"""OAuth 2.0 grants, token lifecycle, identity endpoints and SOAP login, in process (no sockets).

Token requests are form posts, as every platform client sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import xml.dom.minidom
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from interlink.app.org import ADMIN_USERNAME, Org
from interlink.security.apps import ConnectedApp
from interlink.testing import ADMIN_PASSWORD, local_org, rest_client

TOKEN = "/services/oauth2/token"
SOBJECTS = "/services/data/v66.0/sobjects"
REDIRECT = "http://localhost:1717/OauthRedirect"
INSTANCE = "https://testserver"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("oauth") / "org") as opened:
        yield opened


@pytest.fixture
def http(org: Org) -> Iterator[TestClient]:
    with rest_client(org, authorised=False) as client:
        yield client


@pytest.fixture
def app(org: Org) -> ConnectedApp:
    admin = org.directory.user_by_username(ADMIN_USERNAME)
    assert admin is not None
    return org.directory.create_app(f"Test App {secrets.token_hex(4)}", run_as_user_id=admin.id,
                                    callback_url=f"{REDIRECT},https://example.com/cb")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def works(http: TestClient, token: str) -> bool:
    response = http.get(SOBJECTS, headers=bearer(token))
    if response.status_code == 401:
        assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        return False
    assert response.status_code == 200, response.text
    return True


def password_grant(http: TestClient, app: ConnectedApp, **overrides: str) -> Any:
    form = {"grant_type": "password", "client_id": app.consumer_key, "client_secret": app.consumer_secret,
            "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD, **overrides}
    return http.post(TOKEN, data=form)


def assert_oauth_error(response: Any, error: str, description: str | None = None, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    if description is not None:
        assert body["error_description"] == description


# -- password grant ----------------------------------------------------------------------------------------------

def test_password_grant(http: TestClient, app: ConnectedApp, org: Org) -> None:
    response = password_grant(http, app)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == INSTANCE
    admin = org.directory.user_by_username(ADMIN_USERNAME)
    assert admin is not None
    assert body["id"] == f"{INSTANCE}/id/{org.org_id}/{admin.id}"
    assert isinstance(body["issued_at"], str) and body["issued_at"].isdigit()
    assert abs(int(body["issued_at"]) - time.time() * 1000) < 60_000
    expected = base64.b64encode(hmac.new(app.consumer_secret.encode(), (body["id"] + body["issued_at"]).encode(),
                                         hashlib.sha256).digest()).decode()
    assert body["signature"] == expected
    assert body["access_token"].startswith(org.org_id[:15] + "!")
    assert "refresh_token" not in body
    assert works(http, body["access_token"])


def test_password_grant_bad_password(http: TestClient, app: ConnectedApp) -> None:
    assert_oauth_error(password_grant(http, app, password="not-the-password"), "invalid_grant",
                       "authentication failure")
    assert_oauth_error(password_grant(http, app, username="nobody@interlink.local"), "invalid_grant",
                       "authentication failure")


def test_password_grant_bad_client(http: TestClient, app: ConnectedApp) -> None:
    assert_oauth_error(password_grant(http, app, client_id="3MVG9unknown"), "invalid_client_id",
                       "client identifier invalid")
    assert_oauth_error(password_grant(http, app, client_secret="WRONG"), "invalid_client",
                       "invalid client credentials")


def test_unsupported_and_missing_grant(http: TestClient, app: ConnectedApp) -> None:
    assert_oauth_error(http.post(TOKEN, data={"grant_type": "implicit", "client_id": app.consumer_key}),
                       "unsupported_grant_type", "grant type not supported")
    assert_oauth_error(http.post(TOKEN, data={"client_id": app.consumer_key}), "invalid_request",
                       "grant type is missing")


# -- client credentials --------------------------------------------------------------------------------------------

def test_client_credentials_with_basic_auth(http: TestClient, app: ConnectedApp) -> None:
    basic = base64.b64encode(f"{app.consumer_key}:{app.consumer_secret}".encode()).decode()
    response = http.post(TOKEN, data={"grant_type": "client_credentials"},
                         headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200, response.text
    assert works(http, response.json()["access_token"])


def test_client_credentials_with_body_params(http: TestClient, app: ConnectedApp) -> None:
    response = http.post(TOKEN, data={"grant_type": "client_credentials", "client_id": app.consumer_key,
                                      "client_secret": app.consumer_secret})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["instance_url"] == INSTANCE
    assert works(http, body["access_token"])


def test_client_credentials_errors(http: TestClient, app: ConnectedApp, org: Org) -> None:
    assert_oauth_error(http.post(TOKEN, data={"grant_type": "client_credentials", "client_id": app.consumer_key,
                                              "client_secret": "WRONG"}), "invalid_client")
    assert_oauth_error(http.post(TOKEN, data={"grant_type": "client_credentials", "client_id": app.consumer_key}),
                       "invalid_client")
    no_user = org.directory.create_app(f"No run-as {secrets.token_hex(4)}")
    assert_oauth_error(http.post(TOKEN, data={"grant_type": "client_credentials", "client_id": no_user.consumer_key,
                                              "client_secret": no_user.consumer_secret}), "invalid_grant")


# -- JWT bearer ----------------------------------------------------------------------------------------------------

def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interlink-jwt-test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def jwt_material(org: Org) -> tuple[rsa.RSAPrivateKey, ConnectedApp]:
    key, cert_pem = _key_and_cert()
    return key, org.directory.create_app("JWT App", certificate_pem=cert_pem)


def assertion(key: rsa.RSAPrivateKey, app: ConnectedApp, **claims: Any) -> str:
    payload = {"iss": app.consumer_key, "sub": ADMIN_USERNAME, "aud": "https://login.salesforce.com",
               "exp": str(int(time.time()) + 180), **claims}  # exp as a string, like simple-salesforce
    return jwt.encode(payload, key, algorithm="RS256")


def jwt_grant(http: TestClient, token: str) -> Any:
    return http.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": token})


def test_jwt_bearer(http: TestClient, jwt_material: tuple[rsa.RSAPrivateKey, ConnectedApp]) -> None:
    key, app = jwt_material
    response = jwt_grant(http, assertion(key, app))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == INSTANCE
    assert "refresh_token" not in body
    assert works(http, body["access_token"])
    # The test login host is an accepted audience too.
    assert jwt_grant(http, assertion(key, app, aud="https://test.salesforce.com")).status_code == 200


def test_jwt_bearer_rejections(http: TestClient, jwt_material: tuple[rsa.RSAPrivateKey, ConnectedApp]) -> None:
    key, app = jwt_material
    expired = assertion(key, app, exp=str(int(time.time()) - 3600))
    assert_oauth_error(jwt_grant(http, expired), "invalid_grant")
    wrong_audience = assertion(key, app, aud="https://evil.example.com")
    assert_oauth_error(jwt_grant(http, wrong_audience), "invalid_grant")
    other_key, _ = _key_and_cert()
    assert_oauth_error(jwt_grant(http, assertion(other_key, app)), "invalid_grant")
    unknown_user = assertion(key, app, sub="nobody@interlink.local")
    assert_oauth_error(jwt_grant(http, unknown_user), "invalid_grant")
    assert_oauth_error(jwt_grant(http, "not-a-jwt"), "invalid_grant")


# -- web-server flow -----------------------------------------------------------------------------------------------

def authorize(http: TestClient, app: ConnectedApp, *, password: str = ADMIN_PASSWORD,
              **extra: str) -> Any:
    params = {"response_type": "code", "client_id": app.consumer_key, "redirect_uri": REDIRECT, "state": "xyz",
              **extra}
    page = http.get("/services/oauth2/authorize", params=params)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and 'name="password"' in page.text
    return http.post("/services/oauth2/authorize", data={**params, "username": ADMIN_USERNAME,
                                                         "password": password}, follow_redirects=False)


def code_from(response: Any) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def exchange(http: TestClient, app: ConnectedApp, code: str, **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "client_id": app.consumer_key,
            "client_secret": app.consumer_secret, "redirect_uri": REDIRECT, **extra}
    return http.post(TOKEN, data={k: v for k, v in form.items() if v is not None})


def test_web_server_flow(http: TestClient, app: ConnectedApp) -> None:
    code = code_from(authorize(http, app))
    response = exchange(http, app, code)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"access_token", "refresh_token", "instance_url", "id", "issued_at", "signature"} <= set(body)
    assert works(http, body["access_token"])
    # A code is good once.
    assert_oauth_error(exchange(http, app, code), "invalid_grant")


def test_authorize_rejects_bad_credentials_and_redirects(http: TestClient, app: ConnectedApp) -> None:
    failed = authorize(http, app, password="wrong-password")
    assert failed.status_code != 302
    assert "check your username and password" in failed.text
    unknown = http.get("/services/oauth2/authorize", params={"response_type": "code", "client_id": "nope",
                                                              "redirect_uri": REDIRECT})
    assert unknown.status_code == 400
    mismatch = http.get("/services/oauth2/authorize", params={"response_type": "code",
                                                               "client_id": app.consumer_key,
                                                               "redirect_uri": "https://evil.example.com/cb"})
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text


def test_code_exchange_needs_matching_client_and_redirect(http: TestClient, app: ConnectedApp) -> None:
    code = code_from(authorize(http, app))
    assert_oauth_error(exchange(http, app, code, client_secret="WRONG"), "invalid_client")
    assert_oauth_error(exchange(http, app, "made-up-code"), "invalid_grant")
    code = code_from(authorize(http, app))
    assert_oauth_error(exchange(http, app, code, redirect_uri="https://example.com/cb"), "invalid_grant")


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def test_pkce(http: TestClient, app: ConnectedApp) -> None:
    verifier, challenge = _pkce()
    code = code_from(authorize(http, app, code_challenge=challenge, code_challenge_method="S256"))
    response = exchange(http, app, code, client_secret=None, code_verifier=verifier)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert works(http, response.json()["access_token"])

    verifier, challenge = _pkce()
    code = code_from(authorize(http, app, code_challenge=challenge, code_challenge_method="S256"))
    wrong = exchange(http, app, code, client_secret=None, code_verifier="x" * 64)  # type: ignore[arg-type]
    assert_oauth_error(wrong, "invalid_grant")
    # A public client without a challenge still needs its secret.
    code = code_from(authorize(http, app))
    assert_oauth_error(exchange(http, app, code, client_secret=None), "invalid_client")  # type: ignore[arg-type]


# -- refresh, revoke, introspect -----------------------------------------------------------------------------------

@pytest.fixture
def tokens(http: TestClient, app: ConnectedApp) -> dict[str, str]:
    response = exchange(http, app, code_from(authorize(http, app)))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_refresh_token_grant(http: TestClient, app: ConnectedApp, tokens: dict[str, str]) -> None:
    response = http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                      "client_id": app.consumer_key, "client_secret": app.consumer_secret})
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert fresh["access_token"] != tokens["access_token"]
    assert "refresh_token" not in fresh
    assert works(http, fresh["access_token"])
    assert works(http, tokens["access_token"])
    bad = http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": "nonsense",
                                 "client_id": app.consumer_key})
    assert_oauth_error(bad, "invalid_grant", "expired access/refresh token")


def test_revoking_refresh_token_kills_its_access_tokens(http: TestClient, app: ConnectedApp,
                                                        tokens: dict[str, str]) -> None:
    refreshed = http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                       "client_id": app.consumer_key}).json()["access_token"]
    assert works(http, tokens["access_token"]) and works(http, refreshed)
    assert http.post("/services/oauth2/revoke", data={"token": tokens["refresh_token"]}).status_code == 200
    assert not works(http, tokens["access_token"])
    assert not works(http, refreshed)
    again = http.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                   "client_id": app.consumer_key})
    assert_oauth_error(again, "invalid_grant")


def test_revoke_access_token_and_unknown_token(http: TestClient, app: ConnectedApp) -> None:
    access = password_grant(http, app).json()["access_token"]
    assert http.post("/services/oauth2/revoke", data={"token": access}).status_code == 200
    assert not works(http, access)
    assert_oauth_error(http.post("/services/oauth2/revoke", data={"token": "no-such-token"}), "invalid_token")
    assert_oauth_error(http.post("/services/oauth2/revoke", data={}), "unsupported_token_type")


def test_introspect(http: TestClient, app: ConnectedApp, org: Org, tokens: dict[str, str]) -> None:
    creds = {"client_id": app.consumer_key, "client_secret": app.consumer_secret}
    active = http.post("/services/oauth2/introspect", data={"token": tokens["access_token"],
                                                            "token_type_hint": "access_token", **creds},
                       headers={"Accept": "application/json"})
    assert active.status_code == 200, active.text
    body = active.json()
    assert body["active"] is True
    assert body["client_id"] == app.consumer_key
    assert body["username"] == ADMIN_USERNAME
    assert body["token_type"] == "access_token"
    assert body["sub"].startswith(f"{INSTANCE}/id/{org.org_id}/")
    assert body["exp"] > body["iat"]
    refresh = http.post("/services/oauth2/introspect", data={"token": tokens["refresh_token"], **creds}).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"

    inactive = http.post("/services/oauth2/introspect", data={"token": "no-such-token", **creds})
    assert inactive.status_code == 200
    assert inactive.json() == {"active": False}
    http.post("/services/oauth2/revoke", data={"token": tokens["access_token"]})
    gone = http.post("/services/oauth2/introspect", data={"token": tokens["access_token"], **creds})
    assert gone.json() == {"active": False}

    basic = base64.b64encode(f"{app.consumer_key}:{app.consumer_secret}".encode()).decode()
    with_basic = http.post("/services/oauth2/introspect", data={"token": tokens["refresh_token"]},
                           headers={"Authorization": f"Basic {basic}"})
    assert with_basic.json()["active"] is True
    unauthenticated = http.post("/services/oauth2/introspect", data={"token": tokens["refresh_token"]})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "invalid_client"


# -- identity ------------------------------------------------------------------------------------------------------

def test_userinfo_and_identity_url(http: TestClient, app: ConnectedApp, org: Org) -> None:
    body = password_grant(http, app).json()
    admin = org.directory.user_by_username(ADMIN_USERNAME)
    assert admin is not None

    info = http.get("/services/oauth2/userinfo", headers=bearer(body["access_token"]))
    assert info.status_code == 200, info.text
    userinfo = info.json()
    assert userinfo["user_id"] == admin.id
    assert userinfo["organization_id"] == org.org_id
    assert userinfo["preferred_username"] == ADMIN_USERNAME
    assert userinfo["sub"] == body["id"]

    identity = http.get(urlsplit(body["id"]).path, headers=bearer(body["access_token"]))
    assert identity.status_code == 200, identity.text
    doc = identity.json()
    assert doc["id"] == body["id"]
    assert doc["user_id"] == admin.id and doc["organization_id"] == org.org_id
    assert doc["username"] == ADMIN_USERNAME
    assert doc["urls"]["rest"] == f"{INSTANCE}/services/data/v66.0/"

    for path in ("/services/oauth2/userinfo", urlsplit(body["id"]).path):
        for headers in ({}, bearer("00D000000000000!bogus")):
            refused = http.get(path, headers=headers)
            assert refused.status_code == 403
            assert refused.text == "Bad_OAuth_Token"


# -- SOAP partner login --------------------------------------------------------------------------------------------

def soap_envelope(username: str, password: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
    <env:Header><urn:CallOptions><urn:client>test</urn:client></urn:CallOptions></env:Header>
    <env:Body>
        <n1:login xmlns:n1="urn:partner.soap.sforce.com">
            <n1:username>{username}</n1:username>
            <n1:password>{password}</n1:password>
        </n1:login>
    </env:Body>
</env:Envelope>"""


def soap_login(http: TestClient, version: str = "59.0", password: str = ADMIN_PASSWORD) -> Any:
    return http.post(f"/services/Soap/u/{version}", content=soap_envelope(ADMIN_USERNAME, password),
                     headers={"Content-Type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"})


def soap_value(response: Any, tag: str) -> str | None:
    nodes = xml.dom.minidom.parseString(response.content).getElementsByTagName(tag)  # qualified name, as clients
    return nodes[0].firstChild.nodeValue if nodes and nodes[0].firstChild else None


def test_soap_login(http: TestClient, org: Org) -> None:
    response = soap_login(http)
    assert response.status_code == 200, response.text
    assert "xml" in response.headers["content-type"]
    session_id = soap_value(response, "sessionId")
    assert session_id is not None and session_id.startswith(org.org_id[:15] + "!")
    assert soap_value(response, "serverUrl") == f"{INSTANCE}/services/Soap/u/59.0/{org.org_id[:15]}"
    assert soap_value(response, "organizationId") == org.org_id
    assert works(http, session_id)
    # Trailing-slash and org-id suffixed variants reach the same endpoint.
    assert soap_login(http, "59.0/").status_code == 200


def test_soap_login_wrong_password(http: TestClient) -> None:
    response = soap_login(http, password="wrong-password")
    assert response.status_code == 500
    assert soap_value(response, "sf:exceptionCode") == "INVALID_LOGIN"
    assert soap_value(response, "faultcode") == "sf:INVALID_LOGIN"
    assert soap_value(response, "sessionId") is None


def test_soap_login_not_offered_from_v65(http: TestClient) -> None:
    response = soap_login(http, "65.0")
    assert response.status_code == 500
    assert soap_value(response, "sf:exceptionCode") == "INVALID_OPERATION"
    assert re.search(r"not available in the API version specified \(65\.0\)", response.text)


def test_soap_login_disabled(tmp_path: Path) -> None:
    with local_org(tmp_path / "nosoap", soap_login_enabled=False) as org, \
            rest_client(org, authorised=False) as http:
        response = soap_login(http)
        assert response.status_code == 500
        assert soap_value(response, "sf:exceptionCode") == "INVALID_OPERATION"
        assert "/services/oauth2/token" in response.text
