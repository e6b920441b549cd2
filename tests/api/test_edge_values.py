"""Values at the edges of their types are refused with a 4xx, never a 500.

Each case here answered 500 before the fix next to it: a time zone offset that pushes a date past year 1 or 9999,
epoch milliseconds past year 9999, an OData ``$skip`` beyond 64 bits, and a ``$filter`` of hundreds of ``or``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.testing import local_org, rest_client

B = "/services/data/v66.0"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("edges")
    (root / "project" / "metadata").mkdir(parents=True)
    (root / "project" / "metadata" / "odata.yaml").write_text("objects:\n  - Account\n")
    with local_org(root / "org", project_dir=root / "project") as org, rest_client(org) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "request_args", "code"), [
    ("GET", f"{B}/sobjects/Account/updated",
     {"params": {"start": "0001-01-01T00:00:00+0100", "end": "0001-01-01T00:00:00+0100"}}, "INVALID_REPLICATION_DATE"),
    ("GET", f"{B}/sobjects/Account/deleted",
     {"params": {"start": "9999-12-31T23:59:59-1200", "end": "9999-12-31T23:59:59-1200"}}, "INVALID_REPLICATION_DATE"),
    ("POST", f"{B}/sobjects/Contact", {"json": {"LastName": "x", "Birthdate": "0001-01-01T00:00:00+01:00"}},
     "JSON_PARSER_ERROR"),
    ("POST", f"{B}/sobjects/Task", {"json": {"Subject": "x", "ReminderDateTime": "9999-12-31T23:00:00-12:00"}},
     "JSON_PARSER_ERROR"),
    ("POST", f"{B}/sobjects/Task", {"json": {"Subject": "x", "ReminderDateTime": 10**20}}, "JSON_PARSER_ERROR"),
])
def test_dates_past_the_calendar_are_bad_input(client: TestClient, method: str, path: str,
                                              request_args: dict[str, Any], code: str) -> None:
    response = client.request(method, path, **request_args)
    assert response.status_code == 400, response.text
    assert response.json()[0]["errorCode"] == code


def test_an_http_date_past_year_9999_is_a_bad_header(client: TestClient) -> None:
    record = client.post(f"{B}/sobjects/Account", json={"Name": "Edge"}).json()["id"]
    response = client.get(f"{B}/sobjects/Account/{record}",
                          headers={"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 -1200"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_HEADER_VALUE"


@pytest.mark.parametrize("params", [
    {"$skip": "99999999999999999999999"},
    {"$top": "99999999999999999999999", "$skip": "99999999999999999999999"},
])
def test_odata_row_options_beyond_64_bits_mean_no_more_rows(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/odata/v4/Account", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["value"] == []


@pytest.mark.parametrize("expression", [
    "CreatedDate gt 9999-12-31T23:59:59-12:00",
    "CreatedDate lt 0001-01-01T00:00:00+14:00",
    " or ".join(["Name eq 'x'"] * 3000),
])
def test_odata_filters_past_the_calendar_or_too_deep_are_bad_requests(client: TestClient, expression: str) -> None:
    response = client.get("/odata/v4/Account", params={"$filter": expression})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "MALFORMED_QUERY"


def test_a_where_clause_too_deep_for_the_database_is_a_query_error(client: TestClient) -> None:
    soql = "SELECT Id FROM Account WHERE " + " OR ".join(f"Name = 'x{i}'" for i in range(1200))
    response = client.get("/services/data/v66.0/query", params={"q": soql})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"
