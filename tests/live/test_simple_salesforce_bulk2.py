"""Bulk API 2.0 through the real, unpatched simple-salesforce ``bulk2`` handler against ``interlink up``.

Most tests use the session's ``live`` server (sample data on). Upserts, relationship columns and restricted
picklists need an external id and a restricted picklist on Account, which the standard metadata does not declare,
so those tests run on a module server whose project extends Account (``metadata/objects/Account.yaml``).

simple-salesforce sleeps ``wait`` seconds before its first poll and between polls; the tests pass a short one.
Where the client cannot reach a path (or has a bug of its own), the tests speak HTTP with ``requests``.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import ColumnDelimiter, LineEnding
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

from interlink.testing import API_VERSION, LiveServer, live_server

pytestmark = pytest.mark.live

WAIT = 0.1  # seconds simple-salesforce sleeps before polling a job (default 5)
ERROR_FORM = re.compile(r"^[A-Z_]+:.+:[A-Za-z0-9_,.]* ?--$")  # CODE:message:fields -- (fields may be empty)

ACCOUNT_EXTENSION = """\
fields:
  - {name: Ext_Id__c, type: text, length: 40, externalId: true, unique: true}
  - {name: Tier__c, type: picklist, values: [Gold, Silver], restricted: true}
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
    """A server whose project adds Ext_Id__c (unique external id) and Tier__c (restricted picklist) to Account."""
    data_dir = tmp_path_factory.mktemp("bulk2-ext")
    (data_dir / "metadata" / "objects").mkdir(parents=True)
    (data_dir / "metadata" / "objects" / "Account.yaml").write_text(ACCOUNT_EXTENSION)
    with live_server(data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def esf(ext_server: LiveServer) -> Salesforce:
    return Salesforce(instance_url=ext_server.url, session_id=ext_server.token(), session=trusted_session(ext_server))


class Jobs:
    """Plain HTTP to ``/services/data/vXX.X/jobs`` for what simple-salesforce cannot do."""

    def __init__(self, sf: Salesforce, version: str | None = None) -> None:
        self.session = sf.session
        self.headers = {"Authorization": f"Bearer {sf.session_id}"}
        self.root = f"https://{sf.sf_instance}/services/data/v{version or sf.sf_version}/jobs"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.session.request(method, f"{self.root}/{path}", headers=headers, timeout=60, **kwargs)

    def create_ingest(self, obj: str, operation: str = "insert", **extra: Any) -> str:
        response = self.request("POST", "ingest", json={"object": obj, "operation": operation, **extra})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "Open"
        return str(response.json()["id"])

    def upload(self, job_id: str, data: str) -> requests.Response:
        return self.request("PUT", f"ingest/{job_id}/batches", data=data.encode(),
                            headers={"Content-Type": "text/csv"})

    def close(self, job_id: str) -> requests.Response:
        return self.request("PATCH", f"ingest/{job_id}", json={"state": "UploadComplete"})

    def wait(self, job_id: str, kind: str = "ingest") -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            info: dict[str, Any] = self.request("GET", f"{kind}/{job_id}").json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            assert time.monotonic() < deadline, f"job {job_id} is still {info['state']}"
            time.sleep(0.05)


def tag() -> str:
    return "bk" + uuid.uuid4().hex[:10]


def rows(text: str, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def header(text: str) -> str:
    return text.split("\n", 1)[0]


def only(results: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(results) == 1, results
    return results[0]


def by_name(sf: Salesforce, obj: str, fields: str, prefix: str, *, deleted: bool = False) -> dict[str, Any]:
    soql = f"SELECT {fields} FROM {obj} WHERE Name LIKE '{prefix}%'"
    return {r["Name"]: r for r in sf.query_all(soql, include_deleted=deleted)["records"]}


def write_csv(path: Path, table: list[list[str]], delimiter: str = ",") -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter, lineterminator="\n").writerows(table)
    return str(path)


# -- insert ------------------------------------------------------------------------------------------------------

def test_insert_from_csv_file(sf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    table = [["Name", "AccountNumber", "Description"],
             [f"{t}-1", "1", "plain"],
             [f"{t}-2", "2", 'comma, "quotes" and\na line break'],
             [f"{t}-3", "3", "unicode ünïcødé ✓"]]
    result = only(sf.bulk2.Account.insert(csv_file=write_csv(tmp_path / "accounts.csv", table), wait=WAIT))
    job_id = result.pop("job_id")
    assert job_id.startswith("750") and len(job_id) == 18
    assert result == {"numberRecordsFailed": 0, "numberRecordsProcessed": 3, "numberRecordsTotal": 3}

    text = sf.bulk2.Account.get_successful_records(job_id)
    assert header(text) == '"sf__Id","sf__Created",Name,AccountNumber,Description'
    success = rows(text)
    assert [(r["sf__Created"], r["Name"], r["AccountNumber"], r["Description"]) for r in success] == [
        ("true", *values) for values in table[1:]]
    stored = by_name(sf, "Account", "Id, Name, AccountNumber, Description", t)
    assert {r["sf__Id"] for r in success} == {r["Id"] for r in stored.values()}
    assert {name: (r["AccountNumber"], r["Description"]) for name, r in stored.items()} == {
        name: (number, description) for name, number, description in table[1:]}

    assert rows(sf.bulk2.Account.get_failed_records(job_id)) == []
    assert header(sf.bulk2.Account.get_failed_records(job_id)) == '"sf__Id","sf__Error",Name,AccountNumber,Description'
    assert rows(sf.bulk2.Account.get_unprocessed_records(job_id)) == []  # simple-salesforce asks unprocessedRecords


def test_insert_records_split_into_jobs(sf: Salesforce) -> None:
    t = tag()
    records = [{"Name": f"{t}-{n}", "NumberOfEmployees": str(n * 10)} for n in range(5)]
    results = sf.bulk2.Account.insert(records=records, batch_size=2, wait=WAIT)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"], r["numberRecordsTotal"]) for r in results] == [
        (2, 0, 2), (2, 0, 2), (1, 0, 1)]
    assert len({r["job_id"] for r in results}) == 3
    stored = by_name(sf, "Account", "Id, Name, NumberOfEmployees", t)
    assert {name: r["NumberOfEmployees"] for name, r in stored.items()} == {f"{t}-{n}": n * 10 for n in range(5)}
    everything = sf.bulk2.Account.get_all_ingest_records(results[0]["job_id"])
    assert [r["Name"] for r in everything["successfulRecords"]] == [f"{t}-0", f"{t}-1"]
    assert everything["failedRecords"] == [] and everything["unprocessedRecords"] == []


def test_failed_rows_keep_their_columns_and_platform_errors(esf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    table = [["Name", "Tier__c", "ParentId", "Ext_Id__c"],
             [f"{t}-ok", "Gold", "", f"{t}-e1"],
             ["", "Silver", "", f"{t}-e2"],
             [f"{t}-bronze", "Bronze", "", ""],
             [f"{t}-orphan", "", "001000000000000AAA", ""]]
    result = only(esf.bulk2.Account.insert(csv_file=write_csv(tmp_path / "bad.csv", table), wait=WAIT))
    assert (result["numberRecordsProcessed"], result["numberRecordsFailed"]) == (4, 3)

    text = esf.bulk2.Account.get_failed_records(result["job_id"])
    assert header(text) == '"sf__Id","sf__Error",Name,Tier__c,ParentId,Ext_Id__c'
    failed = {r["Name"]: r for r in rows(text)}
    assert set(failed) == {"", f"{t}-bronze", f"{t}-orphan"}
    assert all(r["sf__Id"] == "" and ERROR_FORM.match(r["sf__Error"]) for r in failed.values()), failed
    assert failed[""]["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert (failed[""]["Tier__c"], failed[""]["Ext_Id__c"]) == ("Silver", f"{t}-e2")
    assert failed[f"{t}-bronze"]["sf__Error"] == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Tier: bad value for restricted picklist field: Bronze:Tier__c --")
    assert failed[f"{t}-orphan"]["sf__Error"].startswith("INVALID_CROSS_REFERENCE_KEY:")
    assert failed[f"{t}-orphan"]["ParentId"] == "001000000000000AAA"

    success = rows(esf.bulk2.Account.get_successful_records(result["job_id"]))
    assert [(r["Name"], r["sf__Created"]) for r in success] == [(f"{t}-ok", "true")]
    assert list(by_name(esf, "Account", "Id, Name", t)) == [f"{t}-ok"]


# -- upsert and relationship columns ------------------------------------------------------------------------

def test_upsert_by_external_id(esf: Salesforce) -> None:
    t = tag()
    first = only(esf.bulk2.Account.upsert(records=[{"Ext_Id__c": f"{t}-1", "Name": f"{t}-one"},
                                                   {"Ext_Id__c": f"{t}-2", "Name": f"{t}-two"}],
                                          external_id_field="Ext_Id__c", wait=WAIT))
    assert (first["numberRecordsProcessed"], first["numberRecordsFailed"]) == (2, 0)
    created = {r["Ext_Id__c"]: r for r in rows(esf.bulk2.Account.get_successful_records(first["job_id"]))}
    assert {key: r["sf__Created"] for key, r in created.items()} == {f"{t}-1": "true", f"{t}-2": "true"}

    second = only(esf.bulk2.Account.upsert(records=[{"Ext_Id__c": f"{t}-1", "Name": f"{t}-one renamed"},
                                                    {"Ext_Id__c": f"{t}-3", "Name": f"{t}-three"}],
                                           external_id_field="Ext_Id__c", wait=WAIT))
    assert (second["numberRecordsProcessed"], second["numberRecordsFailed"]) == (2, 0)
    again = {r["Ext_Id__c"]: r for r in rows(esf.bulk2.Account.get_successful_records(second["job_id"]))}
    assert {key: r["sf__Created"] for key, r in again.items()} == {f"{t}-1": "false", f"{t}-3": "true"}
    assert again[f"{t}-1"]["sf__Id"] == created[f"{t}-1"]["sf__Id"]

    stored = by_name(esf, "Account", "Id, Name, Ext_Id__c", t)
    assert {name: r["Ext_Id__c"] for name, r in stored.items()} == {
        f"{t}-one renamed": f"{t}-1", f"{t}-two": f"{t}-2", f"{t}-three": f"{t}-3"}


def test_upsert_needs_an_external_id_field(esf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        esf.bulk2.Account.upsert(records=[{"Name": "x"}], external_id_field="Name", wait=WAIT)
    assert refused.value.status == 400
    assert refused.value.content[0]["errorCode"] == "INVALIDJOB"


def test_relationship_column_and_null_marker(esf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    parents = only(esf.bulk2.Account.upsert(records=[{"Ext_Id__c": f"{t}-p1", "Name": f"{t}-p1"},
                                                     {"Ext_Id__c": f"{t}-p2", "Name": f"{t}-p2"}],
                                            external_id_field="Ext_Id__c", wait=WAIT))
    assert parents["numberRecordsFailed"] == 0
    parent_ids = {r["Name"]: r["Id"] for r in by_name(esf, "Account", "Id, Name", t).values()}

    contacts = [["LastName", "Title", "Account.Ext_Id__c"],
                [f"{t}-c1", "Boss", f"{t}-p1"],
                [f"{t}-c2", "Clerk", f"{t}-p1"],
                [f"{t}-c3", "Nobody", f"{t}-missing"]]
    inserted = only(esf.bulk2.Contact.insert(csv_file=write_csv(tmp_path / "contacts.csv", contacts), wait=WAIT))
    assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"]) == (3, 1)
    text = esf.bulk2.Contact.get_failed_records(inserted["job_id"])
    assert header(text) == '"sf__Id","sf__Error",LastName,Title,Account.Ext_Id__c'
    [failure] = rows(text)
    assert (failure["LastName"], failure["Account.Ext_Id__c"]) == (f"{t}-c3", f"{t}-missing")
    assert ERROR_FORM.match(failure["sf__Error"]) and f"{t}-missing" in failure["sf__Error"], failure

    def contacts_now() -> dict[str, dict[str, Any]]:
        found = esf.query_all(f"SELECT Id, LastName, Title, AccountId FROM Contact WHERE LastName LIKE '{t}%'")
        return {r["LastName"]: r for r in found["records"]}

    before = contacts_now()
    assert {name: (r["Title"], r["AccountId"]) for name, r in before.items()} == {
        f"{t}-c1": ("Boss", parent_ids[f"{t}-p1"]), f"{t}-c2": ("Clerk", parent_ids[f"{t}-p1"])}

    # #N/A sets a field (or a lookup given by a relationship column) to null; an empty value leaves it alone.
    updates = [["Id", "Title", "Account.Ext_Id__c"],
               [before[f"{t}-c1"]["Id"], "#N/A", f"{t}-p2"],
               [before[f"{t}-c2"]["Id"], "", "#N/A"]]
    updated = only(esf.bulk2.Contact.update(csv_file=write_csv(tmp_path / "updates.csv", updates), wait=WAIT))
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (2, 0)
    after = contacts_now()
    assert {name: (r["Title"], r["AccountId"]) for name, r in after.items()} == {
        f"{t}-c1": (None, parent_ids[f"{t}-p2"]), f"{t}-c2": ("Clerk", None)}


# -- update, delete, hard delete ------------------------------------------------------------------------------

def test_update_delete_and_hard_delete(sf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    inserted = only(sf.bulk2.Account.insert(records=[{"Name": f"{t}-{n}"} for n in "abcd"], wait=WAIT))
    ids = {r["Name"][-1]: r["sf__Id"] for r in rows(sf.bulk2.Account.get_successful_records(inserted["job_id"]))}

    updated = only(sf.bulk2.Account.update(
        records=[{"Id": ids[n], "Industry": "Energy", "NumberOfEmployees": "7"} for n in "abcd"]
        + [{"Id": "001000000000000AAA", "Industry": "Energy", "NumberOfEmployees": "7"}], wait=WAIT))
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (5, 1)
    success = rows(sf.bulk2.Account.get_successful_records(updated["job_id"]))
    assert sorted(r["sf__Id"] for r in success) == sorted(ids.values())
    assert {r["sf__Created"] for r in success} == {"false"}
    [failure] = rows(sf.bulk2.Account.get_failed_records(updated["job_id"]))
    assert failure["Id"] == "001000000000000AAA" and ERROR_FORM.match(failure["sf__Error"]), failure
    stored = by_name(sf, "Account", "Id, Name, Industry, NumberOfEmployees", t)
    assert {r["Id"]: (r["Industry"], r["NumberOfEmployees"]) for r in stored.values()} == {
        record_id: ("Energy", 7) for record_id in ids.values()}

    delete_file = write_csv(tmp_path / "delete.csv", [["Id"], [ids["a"]], [ids["b"]]])
    deleted = only(sf.bulk2.Account.delete(csv_file=delete_file, wait=WAIT))
    assert (deleted["numberRecordsProcessed"], deleted["numberRecordsFailed"]) == (2, 0)
    assert {(r["sf__Id"], r["Id"]) for r in rows(sf.bulk2.Account.get_successful_records(deleted["job_id"]))} == {
        (ids["a"], ids["a"]), (ids["b"], ids["b"])}
    assert set(by_name(sf, "Account", "Id, Name", t)) == {f"{t}-c", f"{t}-d"}
    recycle = by_name(sf, "Account", "Id, Name, IsDeleted", t, deleted=True)
    assert {name[-1]: r["IsDeleted"] for name, r in recycle.items()} == {"a": True, "b": True, "c": False, "d": False}

    hard = only(sf.bulk2.Account.hard_delete(records=[{"Id": ids["c"]}, {"Id": ids["d"]}], wait=WAIT))
    assert (hard["numberRecordsProcessed"], hard["numberRecordsFailed"]) == (2, 0)
    assert by_name(sf, "Account", "Id, Name", t) == {}
    assert {name[-1] for name in by_name(sf, "Account", "Id, Name, IsDeleted", t, deleted=True)} == {"a", "b"}


def test_delete_of_a_deleted_record_fails_with_the_platform_error_text(sf: Salesforce) -> None:
    t = tag()
    inserted = only(sf.bulk2.Account.insert(records=[{"Name": f"{t}-gone"}], wait=WAIT))
    [row] = rows(sf.bulk2.Account.get_successful_records(inserted["job_id"]))
    assert only(sf.bulk2.Account.delete(records=[{"Id": row["sf__Id"]}], wait=WAIT))["numberRecordsFailed"] == 0
    again = only(sf.bulk2.Account.delete(records=[{"Id": row["sf__Id"]}], wait=WAIT))
    assert (again["numberRecordsProcessed"], again["numberRecordsFailed"]) == (1, 1)
    [failure] = rows(sf.bulk2.Account.get_failed_records(again["job_id"]))
    assert failure["Id"] == row["sf__Id"]
    # The platform writes an error without fields as "CODE:message:--" (no blank before "--"); with fields it is
    # "CODE:message:Field1,Field2 --". See e.g. the failedResults of `sf data delete bulk`.
    assert failure["sf__Error"] == "ENTITY_IS_DELETED:entity is deleted:--", (
        f"sf__Error for an error without fields must end ':--' like the platform's, got "
        f"{failure['sf__Error']!r} ")


# -- query, query_all, download -----------------------------------------------------------------------------

def test_query_pages_query_all_and_download(sf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    inserted = only(sf.bulk2.Account.insert(
        records=[{"Name": f"{t}-{n:02d}", "AccountNumber": str(n)} for n in range(15)], wait=WAIT))
    ids = {r["AccountNumber"]: r["sf__Id"] for r in rows(sf.bulk2.Account.get_successful_records(inserted["job_id"]))}
    gone = {"0", "1", "2"}
    deleted = only(sf.bulk2.Account.delete(records=[{"Id": ids[n]} for n in sorted(gone)], wait=WAIT))
    assert deleted["numberRecordsFailed"] == 0
    live_names = [f"{t}-{n:02d}" for n in range(3, 15)]

    soql = f"SELECT Name, AccountNumber FROM Account WHERE Name LIKE '{t}%' ORDER BY Name"
    pages = list(sf.bulk2.Account.query(soql, max_records=5, wait=WAIT))
    assert len(pages) == 3
    assert all(page.startswith('"Name","AccountNumber"\n') for page in pages)  # SELECT order, quoted
    assert [len(rows(page)) for page in pages] == [5, 5, 2]
    assert [r["Name"] for page in pages for r in rows(page)] == live_names

    everything = f"SELECT Id, Name, IsDeleted FROM Account WHERE Name LIKE '{t}%' ORDER BY Name"
    all_pages = list(sf.bulk2.Account.query_all(everything, max_records=5, wait=WAIT))
    assert [len(rows(page)) for page in all_pages] == [5, 5, 5]
    flags = {r["Name"][-2:].lstrip("0") or "0": r["IsDeleted"] for page in all_pages for r in rows(page)}
    assert flags == {str(n): "true" if str(n) in gone else "false" for n in range(15)}

    results = sf.bulk2.Account.download(soql, path=str(tmp_path), max_records=5, wait=WAIT)
    assert [r["number_of_records"] for r in results] == [5, 5, 2]
    assert all(r["locator"] for r in results[:-1]) and results[-1]["locator"] == ""
    files = [Path(r["file"]) for r in results]
    assert len(set(files)) == 3 and all(f.parent == tmp_path for f in files)
    downloaded = [rows(f.read_text(encoding="utf-8")) for f in files]
    assert [len(found) for found in downloaded] == [5, 5, 2]
    assert [r["Name"] for found in downloaded for r in found] == live_names


def test_query_result_locators_are_reusable(sf: Salesforce) -> None:
    jobs = Jobs(sf)
    created = jobs.request("POST", "query", json={"operation": "query", "query": "SELECT Id FROM Account ORDER BY Id"},
                           headers={"Accept": "text/csv"})
    assert created.status_code == 200 and created.json()["operation"] == "query"
    job_id = created.json()["id"]
    assert jobs.wait(job_id, "query")["state"] == "JobComplete"
    first = jobs.request("GET", f"query/{job_id}/results", params={"maxRecords": 2})
    assert first.headers["Sforce-NumberOfRecords"] == "2" and first.headers["Sforce-Locator"] != "null"
    locator = first.headers["Sforce-Locator"]
    second = [jobs.request("GET", f"query/{job_id}/results", params={"maxRecords": 2, "locator": locator}).text
              for _ in range(2)]
    assert second[0] == second[1] and rows(second[0]) and rows(second[0]) != rows(first.text)


# -- delimiters and line endings ---------------------------------------------------------------------------

def test_tab_and_pipe_delimited_jobs(sf: Salesforce, tmp_path: Path) -> None:
    t = tag()
    tab_table = [["Name", "Description"], [f"{t}-tab1", "commas, and | pipes"], [f"{t}-tab2", 'a "quoted" word']]
    tab = only(sf.bulk2.Account.insert(csv_file=write_csv(tmp_path / "tab.tsv", tab_table, "\t"),
                                       column_delimiter=ColumnDelimiter.TAB, wait=WAIT))
    assert (tab["numberRecordsProcessed"], tab["numberRecordsFailed"]) == (2, 0)
    tab_text = sf.bulk2.Account.get_successful_records(tab["job_id"])
    assert header(tab_text) == '"sf__Id"\t"sf__Created"\tName\tDescription'
    assert {r["Name"]: r["Description"] for r in rows(tab_text, "\t")} == dict(tab_table[1:])

    pipe = only(sf.bulk2.Account.insert(records=[{"Name": f"{t}-pipe1", "Description": "tab\there, comma"}],
                                        column_delimiter=ColumnDelimiter.PIPE, line_ending=LineEnding.CRLF,
                                        wait=WAIT))
    assert (pipe["numberRecordsProcessed"], pipe["numberRecordsFailed"]) == (1, 0)
    pipe_text = sf.bulk2.Account.get_successful_records(pipe["job_id"])
    assert pipe_text.startswith('"sf__Id"|"sf__Created"|') and pipe_text.endswith("\r\n")
    assert pipe_text.count("\r\n") == 2
    [pipe_row] = rows(pipe_text, "|")
    assert (pipe_row["Name"], pipe_row["Description"]) == (f"{t}-pipe1", "tab\there, comma")

    stored = by_name(sf, "Account", "Name, Description", t)
    assert {name: r["Description"] for name, r in stored.items()} == {
        **dict(tab_table[1:]), f"{t}-pipe1": "tab\there, comma"}

    [page] = list(sf.bulk2.Account.query(f"SELECT Name, Description FROM Account WHERE Name LIKE '{t}%' ORDER BY Name",
                                         column_delimiter=ColumnDelimiter.PIPE, line_ending=LineEnding.CRLF,
                                         wait=WAIT))
    assert page.startswith('"Name"|"Description"\r\n') and page.count("\r\n") == 4
    assert [r["Name"] for r in rows(page, "|")] == [f"{t}-pipe1", f"{t}-tab1", f"{t}-tab2"]


def test_upload_with_the_wrong_line_ending_fails_the_job(sf: Salesforce) -> None:
    """CRLF data in an LF job: the platform takes the upload and fails the job (``ClientInputError : ...``)."""
    jobs = Jobs(sf)
    job_id = jobs.create_ingest("Account")
    uploaded = jobs.upload(job_id, f"Name\r\n{tag()}\r\n")
    assert uploaded.status_code == 201, (
        f"PUT jobs/ingest/{job_id}/batches with CRLF data in an LF job answered {uploaded.status_code} "
        f"{uploaded.text}; the platform answers 201 and fails the job after UploadComplete with errorMessage "
        "'ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF'")
    assert jobs.close(job_id).status_code == 200
    info = jobs.wait(job_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("Failed", 0), info
    assert info["errorMessage"] == ("ClientInputError : LineEnding is invalid on user data. Current LineEnding "
                                    "setting is LF"), info


# -- errors ---------------------------------------------------------------------------------------------------

def test_unknown_object_is_an_invalid_entity(sf: Salesforce) -> None:
    t = tag()
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.bulk2.Nope__c.insert(records=[{"Name": f"{t}-x"}], wait=WAIT)
    assert refused.value.status == 400
    assert refused.value.content[0]["errorCode"] == "INVALIDENTITY"
    assert "Nope__c" in refused.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as event:
        sf.bulk2.Printer_Status__e.insert(records=[{"InkLevel__c": "1"}], wait=WAIT)
    assert event.value.content[0]["errorCode"] == "INVALIDENTITY"
    with pytest.raises(SalesforceMalformedRequest) as query:
        list(sf.bulk2.Account.query("SELECT Id FROM Nope__c", wait=WAIT))
    assert "Nope__c" in query.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as aggregate:
        list(sf.bulk2.Account.query("SELECT COUNT() FROM Account", wait=WAIT))
    assert aggregate.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_unknown_column_is_an_error(sf: Salesforce) -> None:
    t = tag()
    with pytest.raises((SalesforceMalformedRequest, SalesforceOperationError)) as failed:
        sf.bulk2.Account.insert(records=[{"Name": f"{t}-x", "Bogus__c": "1"}], wait=WAIT)
    assert "Bogus__c" in str(failed.value)
    assert by_name(sf, "Account", "Id, Name", t) == {}
    if isinstance(failed.value, SalesforceMalformedRequest):  # refused at upload: the client aborted its job
        job_id = failed.value.url.rstrip("/").split("/")[-2]
        assert Jobs(sf).request("GET", f"ingest/{job_id}").json()["state"] == "Aborted"


def test_unknown_column_fails_the_job_like_the_platform(sf: Salesforce) -> None:
    """The platform takes the upload (201) and fails the job when it processes it.

    A real org answers a V2Ingest job whose CSV names a missing field with state ``Failed``,
    ``errorMessage`` ``InvalidBatch : Field name not found : <column>`` and ``numberRecordsProcessed`` 0
    (seen in job info captured from real orgs); simple-salesforce then raises SalesforceOperationError.
    """
    jobs = Jobs(sf)
    job_id = jobs.create_ingest("Account")
    uploaded = jobs.upload(job_id, "Name,Bogus__c\nx,1\n")
    assert uploaded.status_code == 201, (
        f"PUT jobs/ingest/{job_id}/batches with an unknown column answered {uploaded.status_code} "
        f"{uploaded.text}; the platform answers 201 and fails the job after UploadComplete with "
        "errorMessage 'InvalidBatch : Field name not found : Bogus__c'")
    assert jobs.close(job_id).status_code == 200
    info = jobs.wait(job_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("Failed", 0), info
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Bogus__c", info


def test_upload_after_upload_complete_is_an_invalid_job_state(sf: Salesforce) -> None:
    jobs = Jobs(sf)
    job_id = jobs.create_ingest("Account")
    assert jobs.upload(job_id, f"Name\n{tag()}\n").status_code == 201
    closed = jobs.close(job_id)
    assert closed.status_code == 200 and closed.json()["state"] in ("UploadComplete", "InProgress", "JobComplete")
    late = jobs.upload(job_id, f"Name\n{tag()}\n")
    assert late.status_code == 400
    assert late.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    assert jobs.close(job_id).json()[0]["errorCode"] == "INVALIDJOBSTATE"
    assert jobs.wait(job_id)["numberRecordsProcessed"] == 1


def test_job_responses_show_the_state_the_request_set(sf: Salesforce) -> None:
    """Creating a query job and closing an ingest job answer with state ``UploadComplete`` (the platform's docs
    examples), not whatever the background worker has made of the job by the time the response is written."""
    jobs = Jobs(sf)
    seen: list[tuple[str, str]] = []
    for _ in range(5):
        created = jobs.request("POST", "query", json={"operation": "query", "query": "SELECT Id FROM Account LIMIT 1"})
        seen.append(("POST jobs/query", created.json()["state"]))
        job_id = jobs.create_ingest("Account")
        assert jobs.upload(job_id, f"Name\n{tag()}\n").status_code == 201
        seen.append(("PATCH UploadComplete", jobs.close(job_id).json()["state"]))
    assert all(state == "UploadComplete" for _, state in seen), (
        f"these responses must say UploadComplete, they said {seen}")


def test_query_results_need_the_jobs_api_version(sf: Salesforce) -> None:
    assert sf.sf_version != API_VERSION
    jobs = Jobs(sf)
    created = jobs.request("POST", "query", json={"operation": "query", "query": "SELECT Id FROM Account LIMIT 1"})
    job_id = created.json()["id"]
    assert jobs.wait(job_id, "query")["state"] == "JobComplete"
    assert jobs.request("GET", f"query/{job_id}/results").status_code == 200
    other = Jobs(sf, API_VERSION).request("GET", f"query/{job_id}/results")
    assert other.status_code == 409, other.text
    assert other.json()[0]["errorCode"]


def test_aborted_job_returns_its_unprocessed_records(sf: Salesforce) -> None:
    t = tag()
    jobs = Jobs(sf)
    job_id = jobs.create_ingest("Account")
    assert jobs.upload(job_id, f"Name,AccountNumber\n{t}-1,1\n{t}-2,2\n").status_code == 201
    aborted = jobs.request("PATCH", f"ingest/{job_id}", json={"state": "Aborted"})
    assert aborted.json()["state"] == "Aborted"
    # simple-salesforce asks for /unprocessedRecords (capital R); the platform documents /unprocessedrecords.
    unprocessed = sf.bulk2.Account.get_unprocessed_records(job_id)
    assert header(unprocessed) == "Name,AccountNumber"
    assert [(r["Name"], r["AccountNumber"]) for r in rows(unprocessed)] == [(f"{t}-1", "1"), (f"{t}-2", "2")]
    assert by_name(sf, "Account", "Id, Name", t) == {}


def test_delete_job(sf: Salesforce) -> None:
    """DELETE answers 204 with no body, as the platform does.

    simple-salesforce 1.12's ``_Bulk2Client.delete_job`` calls ``.json()`` on that empty 204 and raises
    (a client bug: it fails against a real org too), so the job is deleted but the call errors.
    """
    t = tag()
    result = only(sf.bulk2.Account.insert(records=[{"Name": f"{t}-x"}], wait=WAIT))
    jobs = Jobs(sf)
    deleted = jobs.request("DELETE", f"ingest/{result['job_id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    missing = jobs.request("GET", f"ingest/{result['job_id']}")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"

    other = only(sf.bulk2.Account.insert(records=[{"Name": f"{t}-y"}], wait=WAIT))
    with pytest.raises(requests.exceptions.JSONDecodeError):
        sf.bulk2.Account._client.delete_job(other["job_id"], False)
    assert jobs.request("GET", f"ingest/{other['job_id']}").status_code == 404
