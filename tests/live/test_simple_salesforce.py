"""The real, unpatched simple-salesforce against a real ``interlink up`` over TLS.

The local CA is trusted through ``requests.Session(verify=bundle, trust_env=False)`` (this machine sets
``REQUESTS_CA_BUNDLE`` to the system bundle, which would override ``verify``), and once through the
environment variable in a subprocess. Login flows hard-code ``https://{domain}.salesforce.com``; a
transport adapter mounted on the session sends those requests to the local server instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import SalesforceLogin

from interlink.testing import ADMIN_PASSWORD, LiveServer, live_server, run_cli

pytestmark = pytest.mark.live

ADMIN = "admin@interlink.local"
LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com", "https://acme.my.salesforce.com")

INVOICE_YAML = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
fields:
  - {name: Code__c, type: text, length: 40, externalId: true}
  - {name: Amount__c, type: currency, precision: 16, scale: 2}
"""


class LocalLoginAdapter(HTTPAdapter):
    """Sends ``https://<login host>/...`` to the local server (same path and query), trusting its CA."""

    def __init__(self, prefix: str, target: str, bundle: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.target = target
        self.bundle = bundle
        self.seen: list[str] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def, override]
        assert request.url.startswith(self.prefix)
        self.seen.append(request.url)
        request.url = self.target + request.url[len(self.prefix):]
        kwargs["verify"] = self.bundle
        return super().send(request, **kwargs)


def trusted_session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return session


def login_session(server: LiveServer) -> tuple[requests.Session, dict[str, LocalLoginAdapter]]:
    session = trusted_session(server)
    adapters = {prefix: LocalLoginAdapter(prefix, server.url, server.ca_bundle) for prefix in LOGIN_HOSTS}
    for prefix, adapter in adapters.items():
        session.mount(prefix, adapter)
    return session, adapters


def create_app(server: LiveServer, name: str, *extra: str) -> tuple[str, str]:
    out = run_cli("apps", "create", name, "--data-dir", str(server.data_dir), *extra).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return values["consumer_key"], values["consumer_secret"]


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    return Salesforce(instance_url=live.url, session_id=live.token(), session=trusted_session(live))


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose project declares Invoice__c with a (non-unique) external id Code__c."""
    data_dir = tmp_path_factory.mktemp("ss-project")
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "objects" / "Invoice__c.yaml").write_text(INVOICE_YAML)
    with live_server(data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def psf(project_server: LiveServer) -> Salesforce:
    return Salesforce(instance_url=project_server.url, session_id=project_server.token(),
                      session=trusted_session(project_server))


# -- direct token: CRUD, describe, limits ---------------------------------------------------------------------

def test_instance_url_keeps_the_port(sf: Salesforce, live: LiveServer) -> None:
    assert sf.sf_instance == live.host
    assert sf.base_url == f"https://{live.host}/services/data/v{sf.sf_version}/"


def test_create_get_update_delete(sf: Salesforce) -> None:
    created = sf.Account.create({"Name": "Simple Co", "Industry": "Technology"})
    assert created["success"] is True and created["errors"] == []
    record_id = created["id"]
    assert len(record_id) == 18 and record_id.startswith("001")

    record = sf.Account.get(record_id)
    assert record["Id"] == record_id
    assert record["Name"] == "Simple Co"
    assert record["attributes"] == {"type": "Account",
                                    "url": f"/services/data/v{sf.sf_version}/sobjects/Account/{record_id}"}

    assert sf.Account.update(record_id, {"Name": "Simple Co 2"}) == 204
    assert sf.Account.get(record_id)["Name"] == "Simple Co 2"
    assert sf.Account.get(record_id[:15])["Id"] == record_id

    assert sf.Account.delete(record_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Account.get(record_id)
    assert caught.value.status == 404
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"


def test_describe_sobject_and_global(sf: Salesforce) -> None:
    account = sf.Account.describe()
    assert account["name"] == "Account"
    names = {f["name"] for f in account["fields"]}
    assert {"Id", "Name", "Industry"} <= names
    everything = sf.describe()
    assert everything["encoding"] == "UTF-8"
    assert "Account" in {o["name"] for o in everything["sobjects"]}
    metadata = sf.Account.metadata()
    assert metadata["objectDescribe"]["name"] == "Account"


def test_limits_and_api_usage(sf: Salesforce) -> None:
    limits = sf.restful("limits/")
    daily = limits["DailyApiRequests"]
    assert daily["Max"] >= daily["Remaining"] > 0
    usage = sf.api_usage["api-usage"]  # parsed from Sforce-Limit-Info by Salesforce._call_salesforce
    assert usage.total == daily["Max"]
    assert 0 < usage.used <= usage.total
    sf.restful("limits/")
    assert sf.api_usage["api-usage"].used > usage.used
    assert sf.limits()["DailyApiRequests"]["Max"] == daily["Max"]


def test_updated_and_deleted_windows(sf: Salesforce) -> None:
    before = datetime.now(UTC)
    kept = sf.Account.create({"Name": "Replicated"})["id"]
    gone = sf.Account.create({"Name": "Replicated, then deleted"})["id"]
    assert sf.Account.delete(gone) == 204
    after = datetime.now(UTC)
    start, end = before - timedelta(hours=1), after + timedelta(minutes=5)

    updated = sf.Account.updated(start, end)  # dates arrive pre-encoded: 2024-01-01T00%3A00%3A00%2B00%3A00
    assert set(updated) == {"ids", "latestDateCovered"}
    covered = datetime.strptime(updated["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert covered <= end and covered.second == 0

    deleted = sf.Account.deleted(start, end)
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    for item in deleted["deletedRecords"]:
        assert set(item) == {"id", "deletedDate"}
    # The window is cut to whole minutes: changes made before the covered minute must be listed.
    if covered > after:
        assert kept in updated["ids"]
        assert gone in {item["id"] for item in deleted["deletedRecords"]}

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.updated(end, start)
    assert caught.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


# -- errors surface as simple-salesforce's exceptions ------------------------------------------------------------

def test_invalid_field_is_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.create({"Name": "X", "NoSuchField__c": 1})
    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_required_field_missing_is_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.create({"Industry": "Technology"})
    assert caught.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert "Name" in caught.value.content[0]["fields"]


def test_unknown_record_and_object_are_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("001000000000000AAA")
    with pytest.raises(SalesforceResourceNotFound):
        sf.NoSuchThing__c.describe()


def test_bad_token_is_expired_session(live: LiveServer) -> None:
    bad = Salesforce(instance_url=live.url, session_id="00D000000000000!bogus", session=trusted_session(live))
    with pytest.raises(SalesforceExpiredSession) as caught:
        bad.Account.describe()
    assert caught.value.status == 401
    assert caught.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    with pytest.raises(SalesforceExpiredSession):
        bad.query("SELECT Id FROM Account")


def test_method_not_allowed_is_general_error(sf: Salesforce) -> None:
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.restful("sobjects/Account/describe", method="POST")
    assert caught.value.status == 405
    assert caught.value.content[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_request_limit_exceeded_is_refused_request(tmp_path: Path) -> None:
    with live_server(tmp_path / "limited", env={"INTERLINK_DAILY_API_REQUESTS": "5"}) as server:
        session, _ = login_session(server)
        # SOAP login is not an API request: it does not count against the allocation.
        session_id, instance = SalesforceLogin(username=ADMIN, password=ADMIN_PASSWORD, security_token="",
                                               session=session)
        limited = Salesforce(instance=instance, session_id=session_id, session=session)
        for _ in range(5):
            limited.Account.describe()
        with pytest.raises(SalesforceRefusedRequest) as caught:
            limited.Account.describe()
        assert caught.value.status == 403
        assert caught.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        stopping = time.monotonic()
    # The session still holds an idle keep-alive TLS connection: SIGTERM must stop the server promptly and
    # cleanly (live_server kills it after 10 s, which would show as a negative return code).
    assert server.process.returncode == 0, server.log()[-2000:]
    assert time.monotonic() - stopping < 8


def test_sigterm_is_prompt_after_the_keep_alive_timeout_closed_a_connection(tmp_path: Path) -> None:
    with live_server(tmp_path / "idle") as server:
        session = trusted_session(server)
        assert session.get(f"{server.url}/services/data/").status_code == 200
        # The server closes the idle connection after its keep-alive timeout (5 s) and waits for the client's TLS
        # close_notify, which a pooled connection nobody reads never sends (asyncio would wait 30 s).
        time.sleep(6)
        stopping = time.monotonic()
    assert server.process.returncode == 0, server.log()[-2000:]
    assert time.monotonic() - stopping < 8
    session.close()


# -- external ids on a deployed custom object --------------------------------------------------------------------

def test_custom_object_is_described(psf: Salesforce) -> None:
    fields = {f["name"]: f for f in psf.Invoice__c.describe()["fields"]}
    assert fields["Code__c"]["externalId"] is True
    assert fields["Code__c"]["idLookup"] is True


def test_get_by_custom_id(psf: Salesforce) -> None:
    record_id = psf.Invoice__c.create({"Name": "Inv 1", "Code__c": "INV/1 a+b"})["id"]
    found = psf.Invoice__c.get_by_custom_id("Code__c", "INV/1 a+b")  # quote_plus: '/'->%2F, ' '->+, '+'->%2B
    assert found["Id"] == record_id
    assert found["Code__c"] == "INV/1 a+b"
    with pytest.raises(SalesforceResourceNotFound):
        psf.Invoice__c.get_by_custom_id("Code__c", "missing")


def test_upsert_creates_then_updates(psf: Salesforce) -> None:
    assert psf.Invoice__c.upsert("Code__c/UP-1", {"Name": "First", "Amount__c": 10}) == 201
    assert psf.Invoice__c.upsert("Code__c/UP-1", {"Name": "Second", "Amount__c": 20}) == 200
    record = psf.Invoice__c.get_by_custom_id("Code__c", "UP-1")
    assert record["Name"] == "Second"
    assert record["Amount__c"] == 20  # one record: get_by_custom_id would raise on several (300)


def test_non_unique_external_id_is_more_than_one_record(psf: Salesforce) -> None:
    first = psf.Invoice__c.create({"Name": "Dup A", "Code__c": "DUP"})["id"]
    second = psf.Invoice__c.create({"Name": "Dup B", "Code__c": "DUP"})["id"]
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        psf.Invoice__c.get_by_custom_id("Code__c", "DUP")
    assert caught.value.status == 300
    assert {url.rsplit("/", 1)[1] for url in caught.value.content} == {first, second}
    with pytest.raises(SalesforceMoreThanOneRecord):
        psf.Invoice__c.upsert("Code__c/DUP", {"Name": "Which?"})


# -- trusting the CA through the environment ---------------------------------------------------------------------

def test_requests_ca_bundle_env_var(live: LiveServer, sf: Salesforce, tmp_path: Path) -> None:
    bundle = Path(live.ca_bundle).read_text()
    local_ca = (Path(live.ca_bundle).parent / "ca.pem").read_text().strip()
    assert local_ca in bundle
    assert bundle.count("BEGIN CERTIFICATE") > 1  # system roots too, so other HTTPS keeps working
    script = tmp_path / "ss_env.py"
    script.write_text(textwrap.dedent("""
        import sys
        from simple_salesforce import Salesforce
        sf = Salesforce(instance_url=sys.argv[1], session_id=sys.argv[2])
        print(sf.Account.describe()["name"], sf.sf_instance)
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env["REQUESTS_CA_BUNDLE"] = live.ca_bundle
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    done = subprocess.run([sys.executable, str(script), live.url, sf.session_id], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Account", live.host]


# -- logins through simple-salesforce (login hosts rewritten to the local server) -------------------------------------

def test_soap_login(live: LiveServer) -> None:
    session, adapters = login_session(live)
    session_id, instance = SalesforceLogin(username=ADMIN, password=ADMIN_PASSWORD, security_token="",
                                           domain="login", session=session)
    assert adapters["https://login.salesforce.com"].seen == ["https://login.salesforce.com/services/Soap/u/59.0"]
    assert instance == live.host
    sf = Salesforce(instance=instance, session_id=session_id, session=session)
    assert sf.Account.describe()["name"] == "Account"

    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        SalesforceLogin(username=ADMIN, password="wrong-password", security_token="", domain="login",
                        session=session)
    assert caught.value.code == "INVALID_LOGIN"


def test_soap_login_through_constructor(live: LiveServer) -> None:
    session, _ = login_session(live)
    sf = Salesforce(username=ADMIN, password=ADMIN_PASSWORD, security_token="", domain="test", session=session)
    assert sf.sf_instance == live.host
    assert sf.Account.create({"Name": "Via SOAP login"})["success"] is True


@pytest.fixture(scope="module")
def project_app(project_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One connected app for the login flows: run-as admin (client credentials) and a JWT certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ss-jwt")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path = tmp_path_factory.mktemp("ss-jwt") / "jwt.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    consumer_key, consumer_secret = create_app(project_server, "simple-salesforce", "--run-as", ADMIN,
                                               "--certificate", str(cert_path))
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return {"key": consumer_key, "secret": consumer_secret, "private_pem": private_pem}


def test_oauth_password_flow(project_server: LiveServer, project_app: dict[str, str]) -> None:
    key, secret = project_app["key"], project_app["secret"]
    session, adapters = login_session(project_server)
    sf = Salesforce(username=ADMIN, password=ADMIN_PASSWORD, consumer_key=key, consumer_secret=secret,
                    domain="login", session=session)
    assert adapters["https://login.salesforce.com"].seen == ["https://login.salesforce.com/services/oauth2/token"]
    assert sf.sf_instance == project_server.host
    assert sf.Invoice__c.describe()["name"] == "Invoice__c"

    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(username=ADMIN, password="wrong-password", consumer_key=key, consumer_secret=secret,
                   domain="login", session=session)
    assert caught.value.code == "invalid_grant"


def test_oauth_client_credentials_flow(project_server: LiveServer, project_app: dict[str, str]) -> None:
    session, adapters = login_session(project_server)
    sf = Salesforce(consumer_key=project_app["key"], consumer_secret=project_app["secret"], domain="acme.my",
                    session=session)
    assert adapters["https://acme.my.salesforce.com"].seen == [
        "https://acme.my.salesforce.com/services/oauth2/token"]
    assert sf.sf_instance == project_server.host
    created = sf.Invoice__c.create({"Name": "Via client credentials"})
    assert created["success"] is True
    assert sf.oauth2("userinfo")["preferred_username"] == ADMIN


def test_oauth_jwt_bearer_flow(project_server: LiveServer, project_app: dict[str, str]) -> None:
    session, adapters = login_session(project_server)
    sf = Salesforce(username=ADMIN, consumer_key=project_app["key"], privatekey=project_app["private_pem"],
                    domain="login", session=session)
    assert adapters["https://login.salesforce.com"].seen == ["https://login.salesforce.com/services/oauth2/token"]
    assert sf.sf_instance == project_server.host
    assert sf.Invoice__c.describe()["name"] == "Invoice__c"
