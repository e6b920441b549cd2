"""Bulk API 1.0 through the real, unpatched simple-salesforce ``bulk`` handler against ``interlink up``.

simple-salesforce creates a JSON job, adds every batch while the job is Open, polls each batch until it is
Completed, Failed or NotProcessed, reads its results and then closes the job. Most tests use the session's
``live`` server (sample data on); upserts and parents by external id need an external id on Account, which the
standard metadata does not declare, so those run on a module server whose project extends Account.

The public DML methods (``insert``, ``update``, ``upsert``, ``delete``, ``hard_delete``) take no ``wait``: they
call ``_bulk_operation`` with its default of sleeping 5 s between polls. One test goes through them as they are;
the others call ``_bulk_operation`` -- the method they forward to, with the same arguments -- with a short
``wait`` to keep the suite fast. ``query`` and ``query_all`` take ``wait`` themselves.
"""

from __future__ import annotations

import time
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from interlink.testing import LiveServer, live_server

pytestmark = pytest.mark.live

WAIT = 0.1  # seconds simple-salesforce sleeps between polls of a batch (default 5)
RESULT_KEYS = {"success", "created", "id", "errors"}

ACCOUNT_EXTENSION = """\
fields:
  - {name: Ext_Id__c, type: text, length: 40, externalId: true, unique: true}
"""


def trusted_session(server: LiveServer) -> requests.Session:
    session = requests.Session()
    session.verify = server.ca_bundle
    session.trust_env = False  # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE would override `verify`
    return session


@pytest.fixture(scope="module")
def sf(live: LiveServer) -> Salesforce:
    return Salesforce(instance_url=live.url, session_id=live.token(), session=trusted_session(live))


@pytest.fixture(scope="module")
def ext_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose project adds Ext_Id__c (a unique external id) to Account."""
    data_dir = tmp_path_factory.mktemp("bulk1-ext")
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "objects" / "Account.yaml").write_text(ACCOUNT_EXTENSION)
    with live_server(data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def esf(ext_server: LiveServer) -> Salesforce:
    return Salesforce(instance_url=ext_server.url, session_id=ext_server.token(), session=trusted_session(ext_server))


def tag() -> str:
    return "b1" + uuid.uuid4().hex[:10]


def bulk(sf: Salesforce, obj: str, operation: str, data: list[dict[str, Any]], **options: Any) -> list[Any]:
    """``sf.bulk.<obj>.<operation>(data, **options)``, polling every WAIT seconds instead of 5."""
    handler = getattr(sf.bulk, obj)
    return list(handler._bulk_operation(operation=operation, data=data, wait=WAIT, **options))


def by_name(sf: Salesforce, obj: str, fields: str, prefix: str, *, deleted: bool = False) -> dict[str, Any]:
    soql = f"SELECT {fields} FROM {obj} WHERE Name LIKE '{prefix}%'"
    return {r["Name"]: r for r in sf.query_all(soql, include_deleted=deleted)["records"]}


def succeeded(results: list[dict[str, Any]], *, created: bool) -> list[str]:
    """The ids of ``results``, after checking each is a success with ``created`` as given."""
    for result in results:
        assert set(result) == RESULT_KEYS, result
        assert (result["success"], result["created"], result["errors"]) == (True, created, []), result
        assert isinstance(result["id"], str) and len(result["id"]) == 18, result
    return [r["id"] for r in results]


class Async:
    """Plain HTTP to ``/services/async/XX.X/`` with simple-salesforce's headers, for what it does not return."""

    def __init__(self, sf: Salesforce) -> None:
        self.session = sf.session
        self.root = sf.bulk_url
        self.headers = {"X-SFDC-Session": sf.session_id, "Content-Type": "application/json"}

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.root}{path}", headers=self.headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_job(self, job_id: str, batches: int) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            info: dict[str, Any] = self.get(f"job/{job_id}")
            if info["numberBatchesCompleted"] + info["numberBatchesFailed"] >= batches:
                return info
            assert time.monotonic() < deadline, f"job {job_id}: {info}"
            time.sleep(0.05)


# -- insert ------------------------------------------------------------------------------------------------------

def test_public_insert_in_several_batches(sf: Salesforce) -> None:
    """The public method as a user calls it (it polls every 5 s)."""
    t = tag()
    records = [{"Name": f"{t}-{n}", "NumberOfEmployees": n * 10} for n in range(5)]
    results = sf.bulk.Account.insert(records, batch_size=2)
    ids = succeeded(list(results), created=True)
    assert len(ids) == 5 and all(i.startswith("001") for i in ids)
    stored = by_name(sf, "Account", "Id, Name, NumberOfEmployees", t)
    assert {name: (r["Id"], r["NumberOfEmployees"]) for name, r in stored.items()} == {
        f"{t}-{n}": (ids[n], n * 10) for n in range(5)}  # results come back in the order of the records


def test_bypass_results_adds_batches_and_closes_the_job(sf: Salesforce) -> None:
    t = tag()
    results = bulk(sf, "Account", "insert", [{"Name": f"{t}-{n}"} for n in range(5)], batch_size=2,
                   use_serial=True, bypass_results=True)
    assert results[::2] == [{"bypass_results": True}] * 3
    job_ids = {r["job_id"] for r in results[1::2]}
    assert len(job_ids) == 1
    job_id = job_ids.pop()
    assert job_id.startswith("750") and len(job_id) == 18
    api = Async(sf)
    info = api.wait_job(job_id, 3)
    assert info["state"] == "Closed", info  # simple-salesforce closed it right after adding the batches
    assert (info["operation"], info["object"], info["contentType"]) == ("insert", "Account", "JSON")
    assert (info["numberBatchesTotal"], info["numberBatchesCompleted"], info["numberBatchesFailed"]) == (3, 3, 0)
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (5, 0)
    batches = api.get(f"job/{job_id}/batch")["batchInfo"]
    assert [b["numberRecordsProcessed"] for b in batches] == [2, 2, 1]
    assert all(b["state"] == "Completed" and b["jobId"] == job_id for b in batches)
    assert set(by_name(sf, "Account", "Id, Name", t)) == {f"{t}-{n}" for n in range(5)}


def test_failed_records_carry_platform_errors(sf: Salesforce) -> None:
    t = tag()
    results = bulk(sf, "Account", "insert", [
        {"Name": f"{t}-ok"},
        {"Description": "no name"},
        {"Name": f"{t}-orphan", "ParentId": "001000000000000AAA"},
    ])
    assert all(set(r) == RESULT_KEYS for r in results), results
    succeeded(results[:1], created=True)
    for failed in results[1:]:
        assert (failed["success"], failed["created"], failed["id"]) == (False, False, None), failed
    assert results[1]["errors"] == [{"statusCode": "REQUIRED_FIELD_MISSING",
                                     "message": "Required fields are missing: [Name]", "fields": ["Name"]}]
    [orphan] = results[2]["errors"]
    assert set(orphan) == {"statusCode", "message", "fields"}, orphan
    assert (orphan["statusCode"], orphan["fields"]) == ("INVALID_CROSS_REFERENCE_KEY", ["ParentId"]), orphan
    assert orphan["message"]
    assert list(by_name(sf, "Account", "Id, Name", t)) == [f"{t}-ok"]


# -- upsert and parents by external id ------------------------------------------------------------------------

def test_upsert_by_external_id(esf: Salesforce) -> None:
    t = tag()
    first = bulk(esf, "Account", "upsert", [{"Ext_Id__c": f"{t}-1", "Name": f"{t}-one"},
                                             {"Ext_Id__c": f"{t}-2", "Name": f"{t}-two"}],
                 external_id_field="Ext_Id__c")
    one, two = succeeded(first, created=True)
    second = bulk(esf, "Account", "upsert", [{"Ext_Id__c": f"{t}-1", "Name": f"{t}-one renamed"},
                                              {"Ext_Id__c": f"{t}-3", "Name": f"{t}-three"}],
                  external_id_field="Ext_Id__c")
    assert [(r["success"], r["created"]) for r in second] == [(True, False), (True, True)], second
    assert second[0]["id"] == one and second[1]["id"] not in (one, two)
    stored = by_name(esf, "Account", "Id, Name, Ext_Id__c", t)
    assert {name: r["Ext_Id__c"] for name, r in stored.items()} == {
        f"{t}-one renamed": f"{t}-1", f"{t}-two": f"{t}-2", f"{t}-three": f"{t}-3"}

    public = esf.bulk.Account.upsert  # the public signature: upsert(data, external_id_field, batch_size, ...)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        public([{"Name": f"{t}-x"}], "Name")
    assert refused.value.status == 400
    assert refused.value.content["exceptionCode"] == "InvalidJob", refused.value.content


def test_parent_by_external_id_with_detailed_results(esf: Salesforce) -> None:
    t = tag()
    [parent] = succeeded(bulk(esf, "Account", "insert", [{"Name": f"{t}-p", "Ext_Id__c": f"{t}-p"}]), created=True)
    results = bulk(esf, "Contact", "insert", [
        {"LastName": f"{t}-c1", "Account": {"Ext_Id__c": f"{t}-p"}},
        {"LastName": f"{t}-c2", "Account": {"Ext_Id__c": f"{t}-missing"}},
    ], include_detailed_results=True)
    # simple-salesforce merges each record as sent (a parent flattened to "Account.Ext_Id__c") into its result.
    assert [(r["LastName"], r["Account.Ext_Id__c"], r["success"]) for r in results] == [
        (f"{t}-c1", f"{t}-p", True), (f"{t}-c2", f"{t}-missing", False)], results
    assert (results[0]["created"], results[0]["errors"]) == (True, [])
    [error] = results[1]["errors"]
    assert error["statusCode"] == "INVALID_CROSS_REFERENCE_KEY" and f"{t}-missing" in error["message"], error
    contacts = esf.query_all(f"SELECT Id, LastName, AccountId FROM Contact WHERE LastName LIKE '{t}%'")["records"]
    assert [(c["Id"], c["AccountId"]) for c in contacts] == [(results[0]["id"], parent)]


# -- update, delete, hard delete, query_all -----------------------------------------------------------------------

def test_update_delete_and_hard_delete(sf: Salesforce) -> None:
    t = tag()
    names = "abcd"
    ids = dict(zip(names, succeeded(bulk(sf, "Account", "insert", [{"Name": f"{t}-{n}"} for n in names]),
                                    created=True), strict=True))

    updated = bulk(sf, "Account", "update", [{"Id": ids["a"], "AccountNumber": "A-1"},
                                             {"Id": ids["b"], "AccountNumber": "B-1"}], batch_size=1)
    assert succeeded(updated, created=False) == [ids["a"], ids["b"]]
    stored = by_name(sf, "Account", "Name, AccountNumber", t)
    assert {name[-1]: r["AccountNumber"] for name, r in stored.items()} == {"a": "A-1", "b": "B-1", "c": None,
                                                                           "d": None}

    deleted = bulk(sf, "Account", "delete", [{"Id": ids["a"]}, {"Id": ids["b"]}])
    assert succeeded(deleted, created=False) == [ids["a"], ids["b"]]
    assert set(by_name(sf, "Account", "Id, Name", t)) == {f"{t}-c", f"{t}-d"}
    again = bulk(sf, "Account", "delete", [{"Id": ids["a"]}])
    assert (again[0]["success"], again[0]["errors"][0]["statusCode"]) == (False, "ENTITY_IS_DELETED"), again

    hard = bulk(sf, "Account", "hardDelete", [{"Id": ids["c"]}, {"Id": ids["d"]}])
    assert succeeded(hard, created=False) == [ids["c"], ids["d"]]
    assert by_name(sf, "Account", "Id, Name", t) == {}
    recycle = by_name(sf, "Account", "Id, Name, IsDeleted", t, deleted=True)
    assert {name[-1]: r["IsDeleted"] for name, r in recycle.items()} == {"a": True, "b": True}


def test_query_and_query_all(sf: Salesforce) -> None:
    t = tag()
    ids = succeeded(bulk(sf, "Account", "insert", [{"Name": f"{t}-{n}", "NumberOfEmployees": n} for n in range(6)]),
                    created=True)
    succeeded(bulk(sf, "Account", "delete", [{"Id": ids[0]}, {"Id": ids[1]}]), created=False)
    soql = f"SELECT Id, Name, NumberOfEmployees, IsDeleted FROM Account WHERE Name LIKE '{t}%' ORDER BY Name"

    records = sf.bulk.Account.query(soql, wait=WAIT)
    assert isinstance(records, list)
    assert [(r["Id"], r["Name"], r["NumberOfEmployees"], r["IsDeleted"]) for r in records] == [
        (ids[n], f"{t}-{n}", n, False) for n in range(2, 6)]
    assert records[0]["attributes"]["type"] == "Account"
    assert records[0]["attributes"]["url"].endswith(f"/sobjects/Account/{ids[2]}")

    lazy = sf.bulk.Account.query(soql, lazy_operation=True, wait=WAIT)
    assert isinstance(lazy, types.GeneratorType)
    pages = list(lazy)  # one list of records per result file
    assert [[r["Id"] for r in page] for page in pages] == [ids[2:]]

    everything = sf.bulk.Account.query_all(soql, wait=WAIT)
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [(ids[n], n < 2) for n in range(6)]
    lazy_all = sf.bulk.Account.query_all(soql, lazy_operation=True, wait=WAIT)
    assert isinstance(lazy_all, types.GeneratorType)
    assert [r["Id"] for page in lazy_all for r in page] == ids

    nothing = sf.bulk.Account.query(f"SELECT Id FROM Account WHERE Name = '{t}-none'", wait=WAIT)
    assert nothing == []


def test_query_datetimes_are_epoch_milliseconds(sf: Salesforce) -> None:
    """Bulk API 1.0 JSON query results give date and datetime fields as milliseconds since the epoch (numbers),
    not REST's ISO strings (simple-salesforce issue #290 shows ``'CreatedDate': 1546659665000``)."""
    t = tag()
    [record_id] = succeeded(bulk(sf, "Account", "insert", [{"Name": f"{t}-when"}]), created=True)
    [record] = sf.bulk.Account.query(f"SELECT Id, CreatedDate FROM Account WHERE Id = '{record_id}'", wait=WAIT)
    rest = sf.Account.get(record_id)["CreatedDate"]
    assert isinstance(record["CreatedDate"], int), (
        f"a Bulk API 1.0 JSON query must return CreatedDate as epoch milliseconds (an integer); it returned "
        f"{record['CreatedDate']!r} (REST says {rest!r})")


# -- errors ------------------------------------------------------------------------------------------------------

def test_unknown_object_is_an_invalid_job(sf: Salesforce) -> None:
    t = tag()
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.bulk.Nope__c.insert([{"Name": f"{t}-x"}])  # refused when the job is created: no polling
    assert refused.value.status == 400
    assert refused.value.url.endswith("/job")
    content = refused.value.content
    assert isinstance(content, dict) and set(content) == {"exceptionCode", "exceptionMessage"}, content
    assert content["exceptionCode"] == "InvalidJob" and "Nope__c" in content["exceptionMessage"], content
    with pytest.raises(SalesforceMalformedRequest) as query:
        sf.bulk.Nope__c.query("SELECT Id FROM Nope__c", wait=WAIT)
    assert query.value.content["exceptionCode"] == "InvalidJob"


def test_failed_query_batch_raises_with_its_state_message(sf: Salesforce) -> None:
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.bulk.Account.query("SELECT Id, Bogus__c FROM Account", wait=WAIT)
    assert failed.value.status == "Failed"  # simple-salesforce passes the batch state and its stateMessage
    message = str(failed.value.content)
    assert message.startswith("InvalidBatch : ") and "Bogus__c" in message, message
