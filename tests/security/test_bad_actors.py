"""Bad actors against a live ``interlink up`` over TLS: forged, revoked and misplaced tokens, SOQL injection through
every string a client can pass, path traversal, oversized bodies and slow clients.

Every attempt is refused in the platform's shape, leaves a line naming the refusal in the server log, and changes
nothing: the record counts, the newest modification stamp and the number of Bulk jobs are the same afterwards. The
server runs with small limits (1 MB bodies, 1-second header and body deadlines) so each case takes a moment.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live

V = "v66.0"
B = f"/services/data/{V}"
LIMITS = {
    "INTERLINK_REQUEST_MAX_BODY_MB": "1",
    "INTERLINK_BULK_MAX_UPLOAD_MB": "1",
    "INTERLINK_REQUEST_HEADER_TIMEOUT": "1",
    "INTERLINK_REQUEST_BODY_TIMEOUT": "1",
    "INTERLINK_REQUEST_BODY_MIN_RATE": "100",
    "INTERLINK_TOKEN_CACHE_SECONDS": "0",
}
# What a database error would show if one escaped into an answer.
SQL_LEAKS = ("sqlite", "sqlalchemy", "psycopg", "OperationalError", "ProgrammingError", "IntegrityError", "Traceback",
             "il_", "no such column:", "no such table", "syntax error at or near")


class Client:
    """A requests session against the live server with the admin's token."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.verify = server.ca_bundle
        self.session.trust_env = False
        self.token = server.token()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.server.url + path, timeout=30, **kwargs)

    def anonymous(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": "", **kwargs.pop("headers", {})}
        return requests.request(method, self.server.url + path, verify=self.server.ca_bundle, timeout=30,
                                headers={k: v for k, v in headers.items() if v}, **kwargs)

    def query(self, soql: str) -> list[dict[str, Any]]:
        response = self.call("GET", f"{B}/query", params={"q": soql})
        assert response.status_code == 200, response.text
        return response.json()["records"]  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        """What a successful attack would change."""
        state: dict[str, Any] = {}
        for name in ("Account", "Contact", "User"):
            response = self.call("GET", f"{B}/query", params={"q": f"SELECT COUNT() FROM {name}"})
            state[name] = response.json()["totalSize"]
        state["modified"] = self.query("SELECT MAX(SystemModstamp) m FROM Account")[0]["m"]
        state["jobs"] = len(self.call("GET", f"{B}/jobs/ingest").json()["records"])
        return state


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("bad-actors")
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "objects" / "Account.yaml").write_text(
        "fields:\n  - {name: ErpAccount__c, type: text, length: 20, externalId: true}\n")
    (data_dir / "metadata" / "odata.yaml").write_text("objects:\n  - Account\n  - {name: Contact, writable: true}\n")
    with live_server(data_dir, env=LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Client:
    admin = Client(server)
    for name, erp in (("Acme", "A-1"), ("Globex", "G-1"), ("O'Brien", "O-1")):
        response = admin.call("POST", f"{B}/sobjects/Account", json={"Name": name, "ErpAccount__c": erp})
        assert response.status_code == 201, response.text
    return admin


@contextlib.contextmanager
def unchanged(client: Client) -> Iterator[None]:
    before = client.state()
    yield
    assert client.state() == before


def logged(server: LiveServer, *fragments: str) -> str:
    """The server log line holding every fragment (waiting a little for it to be written)."""
    deadline = time.monotonic() + 5
    while True:
        for line in server.log().splitlines():
            if all(fragment in line for fragment in fragments):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {fragments} in:\n{server.log()[-3000:]}")
        time.sleep(0.05)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body[0]["errorCode"] == code, body
    assert set(body[0]) == {"message", "errorCode", "fields"}
    return body[0]  # type: ignore[no-any-return]


def assert_no_leak(response: requests.Response, sent: str) -> None:
    for marker in SQL_LEAKS:
        if marker not in sent:
            assert marker not in response.text, f"{marker!r} leaks in {response.text[:500]}"


# -- tokens --------------------------------------------------------------------------------------------------------

def test_forged_misplaced_and_foreign_tokens_are_refused(server: LiveServer, client: Client) -> None:
    real = client.token
    org_prefix, _, secret_part = real.partition("!")
    attempts: dict[str, dict[str, Any]] = {
        "forged": {"headers": {"Authorization": f"Bearer {org_prefix}!{secrets.token_urlsafe(64)}"}},
        "garbage": {"headers": {"Authorization": "Bearer ' OR '1'='1"}},
        "another org's prefix": {"headers": {"Authorization": f"Bearer 00D000000000001!{secret_part}"}},
        "no prefix": {"headers": {"Authorization": f"Bearer {secret_part}"}},
        "token with a suffix": {"headers": {"Authorization": f"Bearer {real}x"}},
        "Basic scheme": {"headers": {"Authorization": f"Basic {real}"}},
        "no scheme": {"headers": {"Authorization": real}},
        "empty Bearer": {"headers": {"Authorization": "Bearer "}},
        "in a cookie": {"headers": {"Cookie": f"sid={real}"}},
        "in X-Auth-Token": {"headers": {"X-Auth-Token": real}},
        "in the query string": {"params": {"access_token": real, "oauth_token": real}},
    }
    with unchanged(client):
        for name, parts in attempts.items():
            read = client.anonymous("GET", f"{B}/sobjects/Account", **parts)
            assert_error(read, 401, "INVALID_SESSION_ID")
            write = client.anonymous("POST", f"{B}/sobjects/Account", json={"Name": f"by {name}"}, **parts)
            assert_error(write, 401, "INVALID_SESSION_ID")
            composite = client.anonymous("POST", f"{B}/composite/sobjects", **parts, json={
                "records": [{"attributes": {"type": "Account"}, "Name": f"by {name}"}]})
            assert_error(composite, 401, "INVALID_SESSION_ID")
        bulk_v1 = client.anonymous("POST", f"/services/async/{V[1:]}/job",
                                   headers={"X-SFDC-Session": f"{org_prefix}!forged"},
                                   json={"operation": "insert", "object": "Account", "contentType": "JSON"})
        assert bulk_v1.status_code == 400 and bulk_v1.json()["exceptionCode"] == "InvalidSessionId"
    logged(server, f"refused POST {B}/sobjects/Account from 127.0.0.1: 401 INVALID_SESSION_ID")
    logged(server, f"refused POST /services/async/{V[1:]}/job from 127.0.0.1: 400 InvalidSessionId")


def test_a_revoked_token_is_refused_at_once(server: LiveServer, client: Client) -> None:
    token = server.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.anonymous("GET", f"{B}/limits", headers=headers).status_code == 200
    assert client.anonymous("POST", "/services/oauth2/revoke", data={"token": token}).status_code == 200
    with unchanged(client):
        assert_error(client.anonymous("GET", f"{B}/limits", headers=headers), 401, "INVALID_SESSION_ID")
        assert_error(client.anonymous("PATCH", f"{B}/sobjects/Account/ErpAccount__c/A-1", headers=headers,
                                      json={"Description": "revoked"}), 401, "INVALID_SESSION_ID")
    logged(server, f"refused PATCH {B}/sobjects/Account/ErpAccount__c/A-1 from 127.0.0.1: 401 INVALID_SESSION_ID")


# -- SOQL injection ------------------------------------------------------------------------------------------------

MALFORMED = [
    "SELECT Id FROM Account WHERE Name = 'x' OR '1'='1'",
    "SELECT Id FROM Account WHERE Name = 'x'; DELETE FROM Account",
    "SELECT Id FROM Account WHERE Name = 'x' -- comment",
    "SELECT Id FROM Account /* comment */ WHERE Name = 'x'",
    "SELECT Id FROM Account UNION SELECT Id FROM User",
    "SELECT Id FROM Account WHERE Name = 'x'' OR Name != '''",
    "SELECT Id FROM Account WHERE Name = \"x\" OR 1=1",
    "SELECT Id FROM Account; SELECT Id FROM User",
    "SELECT Id FROM Account WHERE Name IN ('x') OR (1=1)",
    "SELECT Id FROM Account ORDER BY (SELECT 1)",
    "SELECT Id FROM Account LIMIT 1; DROP TABLE Account",
]


def test_soql_injection_in_query_is_a_malformed_query(server: LiveServer, client: Client) -> None:
    with unchanged(client):
        for soql in MALFORMED:
            for resource in ("query", "queryAll"):
                response = client.call("GET", f"{B}/{resource}", params={"q": soql})
                assert_error(response, 400, "MALFORMED_QUERY")
                assert_no_leak(response, soql)
        for soql in ("SELECT Id FROM sqlite_master", "SELECT name FROM sqlite_master",
                     "SELECT Id, (SELECT sql FROM sqlite_master) FROM Account", "SELECT Id FROM il_token"):
            response = client.call("GET", f"{B}/query", params={"q": soql})
            assert response.status_code == 400 and response.json()[0]["errorCode"] in ("INVALID_TYPE",
                                                                                       "MALFORMED_QUERY")
            assert_no_leak(response, soql)
        # An escaped quote stays inside its string: no extra rows.
        assert client.query("SELECT Id FROM Account WHERE Name = 'x\\' OR Name != \\''") == []
        assert [r["Name"] for r in client.query("SELECT Name FROM Account WHERE Name = 'O\\'Brien'")] == ["O'Brien"]
    logged(server, f"refused GET {B}/query from 127.0.0.1: 400 MALFORMED_QUERY")


def test_injection_through_the_other_string_parameters(server: LiveServer, client: Client) -> None:
    account = client.query("SELECT Id FROM Account WHERE Name = 'Acme'")[0]["Id"]
    with unchanged(client):
        for fields in ("Id,(SELECT Id FROM User)", "Name FROM User--", "Id;DROP TABLE x", "Name) FROM Account--",
                       "Owner.Password", "*"):
            response = client.call("GET", f"{B}/sobjects/Account/{account}", params={"fields": fields})
            assert_error(response, 400, "INVALID_FIELD")
            assert_no_leak(response, fields)
        for value in ("x' OR '1'='1", "A-%", "%", "A-1' --", "x\\' OR Name != \\'", "A-1\" OR \"1\"=\"1"):
            path = f"{B}/sobjects/Account/ErpAccount__c/{quote(value, safe='')}"
            assert_error(client.call("GET", path), 404, "NOT_FOUND")
            assert_error(client.call("DELETE", path), 404, "NOT_FOUND")
            upsert = client.call("PATCH", path, params={"updateOnly": "true"}, json={"Description": "pwned"})
            assert_error(upsert, 404, "NOT_FOUND")
        for params in ({"q": "Acme", "sobject": "Account) RETURNING User(Id"},
                       {"q": "Acme", "sobject": "Account", "Account.where": "Name = 'x') , User(Id"},
                       {"q": "Acme", "sobject": "Account", "Account.fields": "Id, (SELECT Id FROM User)"},
                       {"q": "Acme", "sobject": "Account", "Account.orderBy": "Name; DROP TABLE x"},
                       {"q": "Acme", "sobject": "Account", "in": "ALL FIELDS RETURNING User"}):
            response = client.call("GET", f"{B}/parameterizedSearch", params=params)
            assert_error(response, 400, "MALFORMED_SEARCH")
            assert_no_leak(response, json.dumps(params))
        for q in ("x' OR '1'='1", "Acme} RETURNING User(Id) {x"):  # the term is only ever a search term
            response = client.call("POST", f"{B}/parameterizedSearch", json={"q": q, "sobjects": [{"name": "User"}]})
            assert response.status_code == 200 and response.json()["searchRecords"] == [], response.text
    logged(server, f"refused GET {B}/sobjects/Account/{account} from 127.0.0.1: 400 INVALID_FIELD")
    logged(server, f"refused GET {B}/parameterizedSearch from 127.0.0.1: 400 MALFORMED_SEARCH")


def test_composite_references_cannot_smuggle_queries_or_paths(client: Client) -> None:
    with unchanged(client):
        response = client.call("POST", f"{B}/composite", json={"allOrNone": True, "compositeRequest": [
            {"method": "GET", "referenceId": "who", "url": f"{B}/query?q=SELECT+Name+FROM+Account+WHERE+"
                                                          "Name+%3D+%27O%5C%27Brien%27"},
            # The stored value O'Brien, spliced into a SOQL string, ends it early: the query is refused.
            {"method": "GET", "referenceId": "spliced",
             "url": f"{B}/query?q=SELECT+Id+FROM+Account+WHERE+Name+%3D+%27@{{who.records[0].Name}}%27"},
            {"method": "POST", "referenceId": "after", "url": f"{B}/sobjects/Account", "body": {"Name": "never"}},
        ]})
        assert response.status_code == 200
        answers = {r["referenceId"]: r for r in response.json()["compositeResponse"]}
        assert answers["spliced"]["httpStatusCode"] == 400
        assert answers["spliced"]["body"][0]["errorCode"] == "MALFORMED_QUERY"
        assert answers["after"]["body"][0]["errorCode"] == "PROCESSING_HALTED"
        # A reference in a URL is percent-encoded, "/" included: a stored "../../query" cannot climb to another
        # resource. (allOrNone: the refused climb undoes the record made for it.)
        response = client.call("POST", f"{B}/composite", json={"allOrNone": True, "compositeRequest": [
            {"method": "POST", "referenceId": "parent", "url": f"{B}/sobjects/Account",
             "body": {"Name": "../../../query"}},
            {"method": "GET", "referenceId": "named",
             "url": f"{B}/query?q=SELECT+Name+FROM+Account+WHERE+Id+%3D+%27@{{parent.id}}%27"},
            {"method": "GET", "referenceId": "climb", "url": f"{B}/sobjects/Account/@{{named.records[0].Name}}"
                                                             "?q=SELECT+Id+FROM+User"}]})
        climb = response.json()["compositeResponse"][2]
        assert climb["httpStatusCode"] == 404 and climb["body"][0]["errorCode"] == "NOT_FOUND", climb


def test_odata_filters_are_values_not_code(server: LiveServer, client: Client) -> None:
    with unchanged(client):
        for expression in ("Name eq 'x' or 1 eq 1", "Name eq 'x') or (Name ne 'x'", "Name eq 'x'; DROP TABLE Account",
                           "startswith(Name,'A') or true", "Name eq 'x' or Name eq (SELECT Name FROM User)"):
            response = client.call("GET", "/odata/v4/Account", params={"$filter": expression})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] in ("MALFORMED_QUERY", "BadRequest")
            assert_no_leak(response, expression)
        for expression in ("Name eq 'x'' or ''1''=''1'", "contains(Name,'%')", "Name eq 'A-1'' --'"):
            response = client.call("GET", "/odata/v4/Account", params={"$filter": expression})
            assert response.status_code == 200 and response.json()["value"] == [], response.text
        key = client.call("GET", "/odata/v4/Account('x'' or ''1''=''1')")
        assert key.status_code == 400
        assert client.call("DELETE", "/odata/v4/Contact('003000000000000AAA'' or ''1''=''1')").status_code in (
            400, 404)
    logged(server, "refused GET /odata/v4/Account from 127.0.0.1: 400 MALFORMED_QUERY")


# -- path traversal ------------------------------------------------------------------------------------------------

def _raw_get(server: LiveServer, raw_path: str, token: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as given (clients normalise ``..`` away before sending)."""
    context = ssl.create_default_context(cafile=server.ca_bundle)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:
        tls.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n".encode())
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := tls.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_path_traversal_is_refused(server: LiveServer, client: Client) -> None:
    with unchanged(client):
        for raw in ("/console/static/../session.py", "/console/static/..%2Fsession.py",
                    "/console/static/%2e%2e/session.py", "/console/static/%2e%2e%2f%2e%2e%2fapi%2fapp.py",
                    "/console/static/..\\session.py", "/console/static//etc/passwd",
                    "/console/static/../../../../../../etc/passwd",
                    f"{B}/sobjects/..%2F..%2Fetc/passwd", f"{B}/sobjects/../../../etc/passwd",
                    f"{B}/sobjects/Account%2F..%2F..%2Fquery?q=SELECT+Id+FROM+User",
                    f"{B}/sobjects/Account/..%2F..%2Fquery", f"{B}/jobs/ingest/..%2F..%2F..%2Fetc%2Fpasswd",
                    f"{B}/jobs/ingest/../../../etc/passwd/successfulResults",
                    "/odata/v4/..%2F..%2Fetc%2Fpasswd", "/odata/v4/Account%2F..%2FUser", "/odata/v4/../../etc/passwd",
                    "/interlink/v1/callouts/..%2F..%2Fetc%2Fpasswd"):
            status, body = _raw_get(server, raw, client.token)
            assert status in (400, 404), (raw, status, body[:200])
            assert b"def " not in body and b"root:" not in body and b"import " not in body, raw
        for spec in ({"object": "../../etc/passwd", "operation": "insert"},
                     {"object": "Account", "operation": "insert", "contentType": "CSV/../../../etc/passwd"},
                     {"object": "Account", "operation": "insert", "columnDelimiter": "../"},
                     {"object": "Account/../User", "operation": "insert"}):
            response = client.call("POST", f"{B}/jobs/ingest", json=spec)
            assert response.status_code == 400 and response.json()[0]["errorCode"] in ("INVALIDJOB", "INVALIDENTITY")
    logged(server, "refused GET /console/static/", "404")


# -- oversized bodies ----------------------------------------------------------------------------------------------

def _raw_exchange(server: LiveServer, head: bytes, body_chunks: Iterator[bytes], *,
                  chunked: bool = False) -> tuple[int, bytes, int]:
    """Send ``head`` then the body chunks until the server answers or closes; (status, answer, bytes sent)."""
    context = ssl.create_default_context(cafile=server.ca_bundle)
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:
        tls.sendall(head)
        tls.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            with contextlib.suppress(ssl.SSLWantReadError, BlockingIOError):
                answer += tls.recv(65536)
            if answer:
                break
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                tls.setblocking(True)
                tls.sendall(data)
                tls.setblocking(False)
            except OSError:
                break
            sent += len(chunk)
        tls.setblocking(True)
        tls.settimeout(10)
        with contextlib.suppress(OSError):
            while chunk := tls.recv(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer, sent


def _head(method: str, path: str, token: str, extra: str) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n{extra}\r\n").encode()


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(server: LiveServer,
                                                                            client: Client) -> None:
    with unchanged(client):
        # 1 GB announced, nothing sent: the answer comes at once, so nothing was waited for or read.
        started = time.monotonic()
        status, answer, _ = _raw_exchange(server, _head(
            "POST", f"{B}/sobjects/Account", client.token,
            "Content-Type: application/json\r\nContent-Length: 1000000000\r\n"), iter(()))
        assert status == 413 and time.monotonic() - started < 5
        assert b'"errorCode":"EXCEEDED_MAX_SIZE_REQUEST"' in answer
        big = b'{"Name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        assert_error(client.call("POST", f"{B}/sobjects/Account", data=big,
                                 headers={"Content-Type": "application/json"}), 413, "EXCEEDED_MAX_SIZE_REQUEST")
        assert_error(client.call("POST", f"{B}/composite", data=big,
                                 headers={"Content-Type": "application/json"}), 413, "EXCEEDED_MAX_SIZE_REQUEST")
        job = client.call("POST", f"{B}/jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
        upload = client.call("PUT", f"{B}/jobs/ingest/{job['id']}/batches", data=b"Name\n" + b"x\n" * 600_000,
                             headers={"Content-Type": "text/csv"})
        assert_error(upload, 400, "CLIENTINPUTERROR")
        assert client.call("PATCH", f"{B}/jobs/ingest/{job['id']}", json={"state": "Aborted"}).status_code == 200
        assert client.call("DELETE", f"{B}/jobs/ingest/{job['id']}").status_code == 204
        token = client.anonymous("POST", "/services/oauth2/token",
                                 data={"grant_type": "password", "username": "a" * 70_000})
        assert token.status_code == 413 and token.json()["error"] == "invalid_request"
        soap = client.anonymous("POST", "/services/Soap/u/60.0", data=b"<x>" + b" " * 70_000 + b"</x>",
                                headers={"Content-Type": "text/xml", "SOAPAction": "login"})
        assert soap.status_code == 500 and b"<faultcode>soapenv:Client</faultcode>" in soap.content
    logged(server, f"refused POST {B}/sobjects/Account from 127.0.0.1: 413 EXCEEDED_MAX_SIZE_REQUEST")
    logged(server, f"refused PUT {B}/jobs/ingest/{job['id']}/batches from 127.0.0.1: 400 CLIENTINPUTERROR")
    logged(server, "refused POST /services/oauth2/token from 127.0.0.1: 413 invalid_request")
    logged(server, "refused POST /services/Soap/u/60.0 from 127.0.0.1: 500 soapenv:Client")


def test_a_chunked_body_is_cut_off_at_the_limit(server: LiveServer, client: Client) -> None:
    def endless() -> Iterator[bytes]:
        yield b'{"Name": "'
        for _ in range(4000):  # up to 256 MB, far more than the server may keep
            yield b"x" * 65536

    with unchanged(client):
        status, answer, sent = _raw_exchange(server, _head(
            "POST", f"{B}/sobjects/Account", client.token,
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"), endless(), chunked=True)
        assert status == 413, answer[:300]
        assert sent < 32 * 1024 * 1024  # refused while the client was still sending


def test_too_many_subrequests_and_records_are_refused(client: Client) -> None:
    with unchanged(client):
        composite = client.call("POST", f"{B}/composite", json={"compositeRequest": [
            {"method": "POST", "url": f"{B}/sobjects/Account", "referenceId": f"r{n}", "body": {"Name": f"n{n}"}}
            for n in range(26)]})
        assert composite.status_code == 200
        assert composite.json()["compositeResponse"][0]["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
        batch = client.call("POST", f"{B}/composite/batch", json={"batchRequests": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "richInput": {"Name": "b"}} for _ in range(26)]})
        assert_error(batch, 400, "LIMIT_EXCEEDED")
        collection = client.call("POST", f"{B}/composite/sobjects", json={"records": [
            {"attributes": {"type": "Account"}, "Name": f"c{n}"} for n in range(201)]})
        assert_error(collection, 400, "EXCEEDED_ID_LIMIT")
        tree = client.call("POST", f"{B}/composite/tree/Account", json={"records": [
            {"attributes": {"type": "Account", "referenceId": f"t{n}"}, "Name": f"t{n}"} for n in range(201)]})
        assert_error(tree, 400, "EXCEEDED_ID_LIMIT")


# -- slow clients --------------------------------------------------------------------------------------------------

def test_slow_headers_are_cut_off(server: LiveServer) -> None:
    context = ssl.create_default_context(cafile=server.ca_bundle)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:
        answer = b""
        with contextlib.suppress(OSError):
            for byte in b"GET /services/data HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
                tls.sendall(bytes([byte]))
                time.sleep(0.1)
            answer = tls.recv(1000)
    elapsed = time.monotonic() - started
    assert elapsed < 8, elapsed  # a 1-second header deadline, not the 13 s the client wanted
    assert answer in (b"", ) or answer.startswith(b"HTTP/1.1 408")
    logged(server, "refused a connection from 127.0.0.1: no complete request headers within 1 s")


def test_a_slow_body_is_answered_408_and_changes_nothing(server: LiveServer, client: Client) -> None:
    def trickle() -> Iterator[bytes]:
        yield b'{"Name": "slow'
        for _ in range(200):
            time.sleep(0.1)
            yield b"w"

    with unchanged(client):
        started = time.monotonic()
        status, answer, _ = _raw_exchange(server, _head(
            "POST", f"{B}/sobjects/Account", client.token,
            "Content-Type: application/json\r\nContent-Length: 100000\r\n"), trickle())
        assert status == 408, answer[:300]
        assert b'"errorCode":"REQUEST_TIMEOUT"' in answer and b"connection: close" in answer.lower()
        assert time.monotonic() - started < 8
    logged(server, f"refused POST {B}/sobjects/Account from 127.0.0.1: 408 REQUEST_TIMEOUT")


def test_an_honest_request_still_works(client: Client) -> None:
    """The limits leave ordinary traffic alone: a body within the limit, sent at once, is served."""
    body = json.dumps({"Name": "Honest", "Description": "d" * 30_000}).encode() + b" " * 700_000  # 0.7 MB
    response = client.call("POST", f"{B}/sobjects/Account", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert client.call("DELETE", f"{B}/sobjects/Account/{response.json()['id']}").status_code == 204
