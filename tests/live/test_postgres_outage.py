"""PostgreSQL goes away under a running org and comes back: the API answers 503 ``SERVER_UNAVAILABLE`` with
``Retry-After`` meanwhile (never a 500, never a hang) and recovers by itself, with no half-written request.

The shared PostgreSQL server is not restarted: the org reaches its database (a fresh one of this test's own)
through a TCP proxy that the test cuts (every connection closed, new ones refused) and restores. That is what a
client sees when the server restarts, with two differences: PostgreSQL would first send ``FATAL 57P01
admin_shutdown`` on each connection (also mapped to 503), and while starting up would answer ``57P03`` instead of
refusing the connection (mapped to 503 too).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import grpc
import httpx
import pytest

from faults import tcp_proxy
from interlink.pubsub._proto import pubsub_api_pb2 as pb
from interlink.pubsub._proto import pubsub_api_pb2_grpc as pb_grpc
from interlink.testing import ADMIN_PASSWORD, LiveServer, live_server, postgres_database

pytestmark = [pytest.mark.live, pytest.mark.postgresql]

BATCH = 20  # records per all-or-none collection insert


def via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, parts.query, parts.fragment))


def soap_login(server: LiveServer) -> str:
    """A session id from a SOAP login (quicker than ``interlink token``, which opens the org in a new process)."""
    envelope = (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login>'
        f"<urn:username>admin@interlink.local</urn:username><urn:password>{ADMIN_PASSWORD}</urn:password>"
        "</urn:login></soapenv:Body></soapenv:Envelope>")
    response = httpx.post(f"{server.url}/services/Soap/u/57.0/", content=envelope, timeout=20,
                          verify=ssl.create_default_context(cafile=server.ca_bundle),
                          headers={"content-type": "text/xml", "SOAPAction": "Login"})
    assert response.status_code == 200, response.text
    session_id = ElementTree.fromstring(response.content).find(".//{urn:partner.soap.sforce.com}sessionId")
    assert session_id is not None and session_id.text
    return session_id.text


def assert_grpc_unavailable(server: LiveServer, token: str) -> None:
    """A Pub/Sub API call ends with UNAVAILABLE and the error-code trailer SERVER_UNAVAILABLE."""
    channel = grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(
        Path(server.ca_bundle).read_bytes()))
    try:
        stub = pb_grpc.PubSubStub(channel)
        metadata = (("accesstoken", token), ("instanceurl", server.url), ("tenantid", server.org_id))
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetTopic(pb.TopicRequest(topic_name="/data/AccountChangeEvent"), metadata=metadata, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value
        assert ("error-code", "SERVER_UNAVAILABLE") in (raised.value.trailing_metadata() or ())
    finally:
        channel.close()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    (error,) = response.json()
    assert error["errorCode"] == "SERVER_UNAVAILABLE", error
    assert int(response.headers["Retry-After"]) > 0


class Writer:
    """Inserts batches of accounts (all or none) in a loop until stopped, remembering each batch's answer."""

    def __init__(self, client: httpx.Client, tag: str) -> None:
        self.client = client
        self.tag = tag
        self.outcomes: dict[int, int] = {}  # batch number -> HTTP status
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        batch = 0
        while not self._stop.is_set():
            records = [{"attributes": {"type": "Account"}, "Name": f"{self.tag}-{batch}-{index}"}
                       for index in range(BATCH)]
            try:
                response = self.client.post("/composite/sobjects", json={"allOrNone": True, "records": records})
            except httpx.HTTPError as error:  # a hang would show up here (the client's timeout)
                self.unexpected.append(f"batch {batch}: {type(error).__name__}: {error}")
                return
            self.outcomes[batch] = response.status_code
            if response.status_code == 503:
                error = response.json()[0]
                if error["errorCode"] != "SERVER_UNAVAILABLE" or "Retry-After" not in response.headers:
                    self.unexpected.append(f"batch {batch}: 503 {response.headers} {response.text[:300]}")
                time.sleep(0.05)
            elif response.status_code != 200 or not all(result["success"] for result in response.json()):
                self.unexpected.append(f"batch {batch}: {response.status_code} {response.text[:300]}")
            batch += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def count_by_batch(client: httpx.Client, tag: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    url: str | None = "/query"
    params: dict[str, Any] | None = {"q": f"SELECT Name FROM Account WHERE Name LIKE '{tag}-%'"}
    while url:
        page = client.get(url, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        for record in body["records"]:
            batch = int(record["Name"].split("-")[1])
            counts[batch] = counts.get(batch, 0) + 1
        url = body.get("nextRecordsUrl", "").removeprefix("/services/data/v66.0") or None
        params = None
    return counts


def test_the_api_answers_503_while_postgres_is_away_and_recovers_by_itself(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        try:
            database = stack.enter_context(postgres_database())
        except RuntimeError as exc:
            pytest.skip(str(exc))
        proxy = stack.enter_context(tcp_proxy(("127.0.0.1", urlsplit(database).port or 5432)))
        server = stack.enter_context(live_server(tmp_path / "org", extra_args=("--store", via(database, proxy.port))))
        token = server.token()
        unused_token = soap_login(server)  # first used during the outage: authentication itself needs the database
        base = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_bundle),
                            headers={"Authorization": f"Bearer {token}"}, timeout=15)

        def data_client() -> httpx.Client:
            client = httpx.Client(base_url=f"{server.url}/services/data/v66.0", verify=ssl.create_default_context(
                cafile=server.ca_bundle), headers={"Authorization": f"Bearer {token}"}, timeout=15)
            stack.callback(client.close)
            return client

        rest = data_client()
        stack.callback(base.close)
        tag = "pg" + uuid.uuid4().hex[:8]

        created = rest.post("/sobjects/Account/", json={"Name": f"{tag}-before-0"})
        assert created.status_code == 201, created.text
        account_id = created.json()["id"]
        writer = Writer(data_client(), f"{tag}w")
        try:
            time.sleep(0.5)  # some batches commit before the cut
            proxy.cut()
            began = time.monotonic()
            assert_unavailable(rest.get(f"/sobjects/Account/{account_id}"))
            assert_unavailable(rest.post("/sobjects/Account/", json={"Name": f"{tag}-during-0"}))
            assert_unavailable(rest.patch(f"/sobjects/Account/{account_id}", json={"Name": "renamed"}))
            assert_unavailable(rest.get("/query", params={"q": "SELECT Id FROM Account LIMIT 1"}))
            assert_unavailable(rest.get("/limits", headers={"Authorization": f"Bearer {unused_token}"}))
            assert_grpc_unavailable(server, unused_token)
            health = base.get("/health")
            assert health.status_code == 503
            assert health.json()["components"]["store"]["status"] == "error"
            outage = time.monotonic() - began
            assert outage < 10, f"the 503s took {outage:.1f}s: requests hang on the unreachable database"
            time.sleep(1.0)
        finally:
            proxy.restore()
        restored = time.monotonic()
        deadline = restored + 15
        while True:  # no restart: the pool replaces its dead connections
            response = rest.get(f"/sobjects/Account/{account_id}")
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            assert_unavailable(response)
            time.sleep(0.2)
        assert response.status_code == 200, response.text
        recovered = time.monotonic() - restored
        time.sleep(0.5)  # the writer commits some batches after the recovery too
        writer.stop()
        assert not writer.unexpected, writer.unexpected
        statuses = set(writer.outcomes.values())
        assert 503 in statuses and 200 in statuses, writer.outcomes

        # Nothing half-written: every batch is all there or not at all; an acknowledged one is all there, a refused
        # one is absent (or, if the connection was lost during its COMMIT, all there: never part of it).
        counts = count_by_batch(rest, f"{tag}w")
        for batch, status in writer.outcomes.items():
            stored = counts.get(batch, 0)
            assert stored in (0, BATCH), (batch, status, stored)
            if status == 200:
                assert stored == BATCH, (batch, stored)
        assert rest.get("/query", params={"q": f"SELECT Id FROM Account WHERE Name = '{tag}-during-0'"}).json()[
            "totalSize"] == 0
        assert rest.get(f"/sobjects/Account/{account_id}", params={"fields": "Name"}).json()["Name"] == \
            f"{tag}-before-0"
        assert rest.post("/sobjects/Account/", json={"Name": f"{tag}-after-0"}).status_code == 201
        assert base.get("/health").status_code == 200
        refused = sum(1 for status in writer.outcomes.values() if status == 503)
        print(f"PostgreSQL outage: the outage's requests answered in {outage:.2f}s, recovered {recovered:.2f}s "
              f"after the restore, {len(writer.outcomes)} batches written ({refused} refused with 503)")
