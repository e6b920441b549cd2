"""Helpers for the login-policy tests: one function per login path, each as its real client sends it."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from interlink.app.org import Org
from interlink.app.setup_users import create_user
from interlink.security.apps import ConnectedApp

TOKEN = "/services/oauth2/token"
AUTHORIZE = "/services/oauth2/authorize"
SOAP = "/services/Soap/u/64.0"
REDIRECT = "http://localhost:8080/callback"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PASSWORD = "right-password-1"


def new_user(org: Org, *, api_only: bool = False, password: str = PASSWORD) -> str:
    """A new active user with ``password``; returns its username."""
    username = f"u{secrets.token_hex(4)}@login.test"
    user_id, _ = create_user(org, username, last_name="Login", password=password)
    if api_only:
        org.oauth.logins.set_api_only(user_id, True)
    return username


def new_app(org: Org, *, run_as: str | None = None, certificate_pem: str | None = None,
            rotate: bool = False) -> ConnectedApp:
    run_as_id = None
    if run_as:
        user = org.directory.user_by_username(run_as)
        assert user is not None
        run_as_id = user.id
    return org.directory.create_app(f"App {secrets.token_hex(4)}", run_as_user_id=run_as_id, callback_url=REDIRECT,
                                    certificate_pem=certificate_pem, rotate_refresh_tokens=rotate)


def password_grant(http: TestClient, app: ConnectedApp, username: str, password: str) -> Any:
    return http.post(TOKEN, data={"grant_type": "password", "client_id": app.consumer_key,
                                  "client_secret": app.consumer_secret, "username": username, "password": password})


def authorize(http: TestClient, app: ConnectedApp, username: str, password: str) -> Any:
    """The web-server flow's login form, posted; a 302 to the callback with ``code`` on success."""
    return http.post(AUTHORIZE, data={"response_type": "code", "client_id": app.consumer_key, "redirect_uri": REDIRECT,
                                      "state": "s", "username": username, "password": password},
                     follow_redirects=False)


def code_of(response: Any) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


def code_grant(http: TestClient, app: ConnectedApp, code: str) -> Any:
    return http.post(TOKEN, data={"grant_type": "authorization_code", "client_id": app.consumer_key,
                                  "client_secret": app.consumer_secret, "code": code, "redirect_uri": REDIRECT})


def soap_login(http: TestClient, username: str, password: str) -> Any:
    body = ('<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
            f'<soapenv:Body><urn:login><urn:username>{username}</urn:username><urn:password>{password}'
            '</urn:password></urn:login></soapenv:Body></soapenv:Envelope>')
    return http.post(SOAP, content=body.encode(), headers={"Content-Type": "text/xml; charset=UTF-8",
                                                           "SOAPAction": "login"})


def console_login(http: TestClient, username: str, password: str) -> Any:
    """Log in through the console's form as a browser does (the client keeps the cookies)."""
    page = http.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    return http.post("/console/login", data={"username": username, "password": password, "csrf": token.group(1),
                                             "next": "/console/"}, follow_redirects=False)


def console_ok(response: Any) -> bool:
    if response.status_code == 303 and response.headers["location"] == "/console/":
        return True
    assert response.status_code in (401, 403), response.text
    assert "il_console" not in response.cookies
    return False


def key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interlink-login-test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def jwt_grant(http: TestClient, key: rsa.RSAPrivateKey, app: ConnectedApp, username: str) -> Any:
    assertion = jwt.encode({"iss": app.consumer_key, "sub": username, "aud": "https://login.salesforce.com",
                            "exp": int(time.time()) + 180}, key, algorithm="RS256")
    return http.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": assertion})


def client_credentials(http: TestClient, app: ConnectedApp) -> Any:
    return http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=(app.consumer_key, app.consumer_secret))


def history(org: Org, username: str) -> list[dict[str, Any]]:
    """The user's LoginHistory records, newest first."""
    user = org.directory.user_by_username(username)
    assert user is not None
    return org.oauth.logins.history(user.id, limit=1000)


def statuses(org: Org, username: str) -> list[str]:
    """The user's LoginHistory statuses, oldest first."""
    return [row["Status"] for row in reversed(history(org, username))]
