"""``OrgConnection`` against a real ``interlink up`` (the session's ``live`` server, over TLS): REST with paging and
error classification, the OAuth grants and the token refresh after a 401, and named connections."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.orgapi import (
    ClientCredentials,
    JwtBearer,
    OrgAuthError,
    OrgConnection,
    OrgRejected,
    OrgUnavailable,
    UsernamePassword,
    resolve_connections,
)
from interlink.testing import ADMIN_PASSWORD, LiveServer, run_cli

pytestmark = pytest.mark.live

ADMIN = "admin@interlink.local"


def server_file(live: LiveServer) -> Path:
    return live.data_dir / "run" / "server.json"


@pytest.fixture(scope="module")
def conn(live: LiveServer) -> Iterator[OrgConnection]:
    connection = OrgConnection.from_server_file(server_file(live), live.token())
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def app(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A connected app with a run-as user (client credentials) and a certificate (JWT bearer)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "middleware-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path = tmp_path_factory.mktemp("app") / "cert.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = run_cli("apps", "create", f"mw-{uuid.uuid4().hex[:6]}", "--run-as", ADMIN, "--certificate", str(cert_path),
                  "--data-dir", str(live.data_dir)).stdout
    found = dict(re.findall(r"^(consumer_key|consumer_secret)=(\S+)$", out, re.M))
    found["private_key"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
    return found


def revoke(live: LiveServer, token: str) -> None:
    answer = httpx.post(f"{live.url}/services/oauth2/revoke", data={"token": token},
                        verify=ssl.create_default_context(cafile=live.ca_bundle))
    assert answer.status_code == 200, answer.text


def count_requests(connection: OrgConnection) -> list[str]:
    seen: list[str] = []
    connection.http.event_hooks["request"] = [lambda request: seen.append(request.url.path)]
    return seen


# -- REST ----------------------------------------------------------------------------------------------------


def test_query_follows_next_records_url_across_pages(conn: OrgConnection) -> None:
    tag = f"pg-{uuid.uuid4().hex[:8]}"
    results = conn.save("create", "Account", [{"Name": f"{tag}-{i:03d}"} for i in range(250)])
    assert len(results) == 250 and all(r.success and r.id for r in results)  # two collections calls of <= 200
    seen = count_requests(conn)
    try:
        records = list(conn.query(f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag}-%' ORDER BY Name",
                                  batch_size=200))
    finally:
        conn.http.event_hooks["request"] = []
    assert [r["Name"] for r in records] == [f"{tag}-{i:03d}" for i in range(250)]
    assert len(seen) == 2 and seen[1].startswith("/services/data/v66.0/query/")  # the nextRecordsUrl page


def test_rest_errors_carry_the_orgs_code_and_are_classified(conn: OrgConnection, live: LiveServer) -> None:
    with pytest.raises(OrgRejected) as missing:
        conn.get("sobjects/Account/001000000000000AAA")
    assert missing.value.error_code == "NOT_FOUND" and missing.value.status == 404
    with pytest.raises(OrgRejected) as bad_query:
        list(conn.query("SELEKT Id FROM Account"))
    assert bad_query.value.error_code == "MALFORMED_QUERY"
    nowhere = OrgConnection("https://127.0.0.1:9", token="x", ca_bundle=live.ca_bundle, timeout=3)
    with pytest.raises(OrgUnavailable, match="cannot reach"):
        nowhere.get("limits")


def test_crud_round_trip(conn: OrgConnection) -> None:
    created = conn.post("sobjects/Contact", {"LastName": "Middleware", "Birthdate": dt.date(1990, 5, 17)})
    assert created["success"]
    assert conn.patch(f"sobjects/Contact/{created['id']}", {"FirstName": "Ada"}) is None
    stored = conn.get(f"sobjects/Contact/{created['id']}", fields="FirstName,Birthdate")
    assert (stored["FirstName"], stored["Birthdate"]) == ("Ada", "1990-05-17")
    assert conn.delete(f"sobjects/Contact/{created['id']}") is None


# -- authentication ------------------------------------------------------------------------------------------


def test_a_refused_static_token_is_a_clear_error(live: LiveServer, app: dict[str, str]) -> None:
    login = OrgConnection(live.url, auth=UsernamePassword(app["consumer_key"], app["consumer_secret"], ADMIN,
                                                          ADMIN_PASSWORD), ca_bundle=live.ca_bundle)
    token = login.access_token()  # a token minted elsewhere, then used as a static one
    connection = OrgConnection.from_server_file(server_file(live), token)
    assert connection.get("limits")
    revoke(live, token)
    with pytest.raises(OrgAuthError, match="static token cannot be refreshed") as refused:
        connection.get("limits")
    assert refused.value.error_code == "INVALID_SESSION_ID" and refused.value.status == 401


def test_client_credentials_log_in_again_after_a_401(live: LiveServer, app: dict[str, str]) -> None:
    connection = OrgConnection(live.url, auth=ClientCredentials(app["consumer_key"], app["consumer_secret"]),
                               ca_bundle=live.ca_bundle, grpc_target=live.grpc_target)
    first = connection.access_token()
    assert connection.org_id == live.org_id  # from the token response's identity URL
    assert next(connection.query("SELECT Username FROM User WHERE Username = 'admin@interlink.local'"))
    revoke(live, first)
    assert connection.get("limits")  # 401 INVALID_SESSION_ID -> new login -> the call again
    second = connection.access_token()
    assert second != first
    revoke(live, second)
    assert connection.topic("/event/Printer_Status__e").schema_id  # the Pub/Sub API refreshes too
    assert connection.access_token() not in (first, second)


def test_password_and_jwt_bearer_grants(live: LiveServer, app: dict[str, str]) -> None:
    for auth in (UsernamePassword(app["consumer_key"], app["consumer_secret"], ADMIN, ADMIN_PASSWORD),
                 JwtBearer(app["consumer_key"], ADMIN, app["private_key"])):
        connection = OrgConnection(live.url, auth=auth, ca_bundle=live.ca_bundle)
        assert connection.get("limits"), type(auth).__name__
    wrong = OrgConnection(live.url, auth=ClientCredentials(app["consumer_key"], "not-the-secret"),
                          ca_bundle=live.ca_bundle)
    with pytest.raises(OrgAuthError, match="invalid_client"):
        wrong.get("limits")


# -- named connections ---------------------------------------------------------------------------------------


class Settings:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir


def test_connections_yaml_takes_secrets_from_the_environment(live: LiveServer, app: dict[str, str],
                                                            conn: OrgConnection, tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "connections.yaml").write_text(f"""
erp_org:
  url: {live.url}
  caBundle: {live.ca_bundle}
  grpc: {live.grpc_target}
  auth:
    type: client_credentials
    clientId: ${{MW_CLIENT_ID}}
    clientSecret: ${{MW_CLIENT_SECRET}}
""")
    env = {"MW_CLIENT_ID": app["consumer_key"], "MW_CLIENT_SECRET": app["consumer_secret"]}
    connections = resolve_connections(Settings(tmp_path), local=conn, env=env)
    assert set(connections) == {"erp_org", "local", "default"}
    assert connections["default"] is conn and connections["local"] is conn
    assert connections["erp_org"].get("limits")
    with pytest.raises(PipelineSpecError, match="MW_CLIENT_SECRET is not set"):
        resolve_connections(Settings(tmp_path), env={"MW_CLIENT_ID": "x"})


@pytest.mark.parametrize(("auth", "problem"), [
    ({"type": "client_credentials", "clientId": "id", "clientSecret": "plain-text"}, "secrets never go in files"),
    ({"type": "password", "clientId": "id", "clientSecret": "${S}", "username": "u"}, "needs password"),
    ({"type": "kerberos"}, "type is token, client_credentials, password or jwt"),
])
def test_connections_yaml_mistakes_are_named(auth: dict[str, Any], problem: str) -> None:
    with pytest.raises(PipelineSpecError, match=problem):
        resolve_connections({"connections": {"prod": {"url": "https://example.invalid", "auth": auth}}},
                            env={"S": "s"})
