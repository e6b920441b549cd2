"""Bad actors at the door, in process (a live server adds nothing here): expired sessions and JWT bearer assertions
that are forged, misaddressed, expired or issued by someone else. Each is refused with the platform's error, issues
no token, changes nothing and leaves a WARNING naming the refusal.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from interlink.app.org import ADMIN_USERNAME, Org
from interlink.security.apps import ConnectedApp
from interlink.testing import local_org, rest_client

B = "/services/data/v66.0"
TOKEN = "/services/oauth2/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _tokens(org: Org) -> int:
    table = org.store.system["il_token"]
    with org.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _accounts(org: Org) -> int:
    return org.query.execute("SELECT COUNT() FROM Account", org.admin_context()).total_size


def test_an_expired_session_is_refused_and_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with local_org(tmp_path / "org", session_timeout=1, token_cache_seconds=0) as org, \
            rest_client(org, authorised=False) as http:
        token = org.mint_token(ADMIN_USERNAME)
        headers = {"Authorization": f"Bearer {token}"}
        assert http.get(f"{B}/limits", headers=headers).status_code == 200
        time.sleep(2.2)
        before = _accounts(org)
        with caplog.at_level(logging.INFO, logger="interlink.api.guard"):
            for method, path, body in (("GET", f"{B}/sobjects/Account", None),
                                       ("POST", f"{B}/sobjects/Account", {"Name": "late"}),
                                       ("POST", f"{B}/composite/sobjects",
                                        {"records": [{"attributes": {"type": "Account"}, "Name": "late"}]})):
                response = http.request(method, path, headers=headers, json=body)
                assert response.status_code == 401
                assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID",
                                            "fields": []}]
        assert _accounts(org) == before
        introspected = org.tokens.introspect(token)
        assert introspected["active"] is False
        refusals = [r for r in caplog.records if r.levelno == logging.WARNING and "401 INVALID_SESSION_ID" in r.message]
        assert len(refusals) == 3
        assert token not in caplog.text  # the log names the refusal, never the token


# -- JWT bearer ----------------------------------------------------------------------------------------------------

def _key_and_cert(name: str = "bad-actors") -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    with local_org(tmp_path_factory.mktemp("jwt") / "org") as opened:
        yield opened


@pytest.fixture(scope="module")
def material(org: Org) -> tuple[rsa.RSAPrivateKey, str, ConnectedApp, ConnectedApp]:
    key, cert = _key_and_cert()
    app = org.directory.create_app("JWT Integration", certificate_pem=cert)
    _, other_cert = _key_and_cert("other")
    other = org.directory.create_app("Another JWT App", certificate_pem=other_cert)
    return key, cert, app, other


def _claims(app: ConnectedApp, **overrides: Any) -> dict[str, Any]:
    return {"iss": app.consumer_key, "sub": ADMIN_USERNAME, "aud": "https://login.salesforce.com",
            "exp": int(time.time()) + 180, **overrides}


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_bad_jwt_assertions_get_no_token(org: Org, material: tuple[rsa.RSAPrivateKey, str, ConnectedApp, ConnectedApp],
                                         caplog: pytest.LogCaptureFixture) -> None:
    key, cert, app, other = material
    other_key, _ = _key_and_cert("stranger")
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    attempts = {
        "signed with another key": (jwt.encode(_claims(app), other_key, algorithm="RS256"), "invalid_grant"),
        "for another audience": (jwt.encode(_claims(app, aud="https://evil.example.com"), key, algorithm="RS256"),
                                 "invalid_grant"),
        "expired past the clock skew": (jwt.encode(_claims(app, exp=now - 600), key, algorithm="RS256"),
                                        "invalid_grant"),
        "without an expiry": (jwt.encode({k: v for k, v in _claims(app).items() if k != "exp"}, key,
                                         algorithm="RS256"), "invalid_grant"),
        "issued by an unknown client": (jwt.encode(_claims(app, iss="3MVG9NotAnApp"), key, algorithm="RS256"),
                                        "invalid_client_id"),
        "issued as another app": (jwt.encode(_claims(other), key, algorithm="RS256"), "invalid_grant"),
        "for an unknown user": (jwt.encode(_claims(app, sub="nobody@interlink.local"), key, algorithm="RS256"),
                                "invalid_grant"),
        "for a user named by injection": (jwt.encode(_claims(app, sub="' OR '1'='1"), key, algorithm="RS256"),
                                          "invalid_grant"),
        "unsigned (alg none)": (_unsigned(_claims(app)), "invalid_grant"),
        "HMAC keyed with the public key": (_hmac_with(public_pem, _claims(app)), "invalid_grant"),
        "HMAC keyed with the certificate": (_hmac_with(cert.encode(), _claims(app)), "invalid_grant"),
        "not a JWT": ("not.a.jwt", "invalid_grant"),
    }
    tokens, accounts = _tokens(org), _accounts(org)
    with rest_client(org, authorised=False) as http, caplog.at_level(logging.WARNING, logger="interlink.api.guard"):
        good = http.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": jwt.encode(_claims(app), key,
                                                                                         algorithm="RS256")})
        assert good.status_code == 200, good.text  # the material itself is fine
        tokens += 1
        for name, (assertion, error) in attempts.items():
            response = http.post(TOKEN, data={"grant_type": JWT_BEARER, "assertion": assertion})
            assert response.status_code == 400, (name, response.text)
            body = response.json()
            assert body["error"] == error, (name, body)
            assert set(body) == {"error", "error_description"} and "access_token" not in body
    assert _tokens(org) == tokens and _accounts(org) == accounts
    refusals = [r.message for r in caplog.records if "refused POST /services/oauth2/token" in r.message]
    assert len(refusals) == len(attempts), refusals
    assert any("invalid_client_id" in line for line in refusals)
    assert not any(assertion in caplog.text for assertion, _ in attempts.values() if len(assertion) > 20)


def _hmac_with(secret: bytes, claims: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HS256 keyed with what the server uses as the RSA public key. PyJWT refuses to
    sign with a PEM key, so the token is put together by hand."""
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{part(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def test_bad_passwords_get_no_token(org: Org,
                                   material: tuple[rsa.RSAPrivateKey, str, ConnectedApp, ConnectedApp]) -> None:
    """Wrong passwords, unknown users and injection attempts answer alike, and no token is issued."""
    _, _, app, _ = material
    tokens = _tokens(org)
    with rest_client(org, authorised=False) as http:
        for username, password in ((ADMIN_USERNAME, "wrong"), ("nobody@interlink.local", "wrong"),
                                   ("' OR '1'='1", "' OR '1'='1"), (ADMIN_USERNAME, "")):
            response = http.post(TOKEN, data={"grant_type": "password", "client_id": app.consumer_key,
                                              "client_secret": app.consumer_secret, "username": username,
                                              "password": password})
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_grant" and "access_token" not in response.json()
    assert _tokens(org) == tokens
