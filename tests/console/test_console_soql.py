"""Console SOQL workbench: results grid (parents flattened, child subqueries expandable), paging, queryAll,
explain plans, errors in the platform's shape, and CSV export (every page, capped, spreadsheet-injection safe)."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.console import workbench

DASH = "\N{EN DASH}"


def _create(org: Any, object_name: str, records: list[dict[str, Any]]) -> list[str]:
    results = org.records.create(org.admin_context(), object_name, records, all_or_none=True)
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


def _grid(page: str) -> tuple[list[str], list[list[str]]]:
    """The top-level results grid: its header and its rows' cell texts (nested grids left out)."""
    body = page.split('<table class="grid results">', 1)[1]
    body = re.sub(r"<details><summary>(.*?)</summary>.*?</details>", r"\1", body, flags=re.S)
    head, rows = body.split("</thead>", 1)
    columns = re.findall(r"<th>(.*?)</th>", head)
    cells: list[list[str]] = []
    for row in re.split(r"</tr>\s*<tr>", rows.split("</tbody>", 1)[0]):
        texts = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                                       re.S)]
        if texts:
            cells.append(texts)
    return [html.unescape(c) for c in columns], cells


def test_the_workbench_page_has_an_editor_and_no_inline_script(browser: TestClient) -> None:
    page = browser.get("/console/soql")
    assert page.status_code == 200
    assert '<textarea id="soql-text" name="q"' in page.text
    assert '<script src="/console/static/soql.js" defer></script>' in page.text
    assert "<script>" not in page.text
    assert 'formaction="/console/soql/export"' in page.text and 'name="all"' in page.text
    script = browser.get("/console/static/soql.js")
    assert script.status_code == 200 and "localStorage" in script.text


def test_run_shows_a_grid_with_parent_fields_flattened_and_children_counted(browser: TestClient,
                                                                            console_org: Any) -> None:
    acme, bolt = _create(console_org, "Account", [{"Name": "Acme"}, {"Name": "Bolt"}])
    _create(console_org, "Contact", [{"LastName": "Lovelace", "AccountId": acme},
                                     {"LastName": "Hopper", "AccountId": acme}, {"LastName": "Orphan"}])
    page = browser.get("/console/soql", params={"q": "SELECT Id, LastName, Account.Name, Account.Owner.Name "
                                                     "FROM Contact ORDER BY LastName"})
    assert page.status_code == 200
    columns, rows = _grid(page.text)
    assert columns == ["Id", "LastName", "Account.Name", "Account.Owner.Name"]
    assert [r[1:] for r in rows] == [["Hopper", "Acme", "Org Admin"], ["Lovelace", "Acme", "Org Admin"],
                                     ["Orphan", "null", "null"]]
    assert 'totalSize <strong id="soql-total">3</strong>' in page.text
    children = browser.get("/console/soql", params={"q": "SELECT Name, (SELECT LastName FROM Contacts "
                                                         "ORDER BY LastName) FROM Account ORDER BY Name"})
    columns, rows = _grid(children.text)
    assert columns == ["Name", "Contacts"]
    assert rows == [["Acme", "2 records"], ["Bolt", "null"]]
    nested = re.search(r"<details><summary>2 records</summary>(.*?)</details>", children.text, re.S)
    assert nested and "Hopper" in nested.group(1) and "Lovelace" in nested.group(1)
    assert f'<a href="/console/r/{acme}">{acme}</a>' in page.text or f'href="/console/r/{acme}"' in browser.get(
        "/console/soql", params={"q": "SELECT Id FROM Account"}).text
    assert bolt


def test_aggregates_and_counts(browser: TestClient, console_org: Any) -> None:
    _create(console_org, "Account", [{"Name": "A", "Industry": "Energy"}, {"Name": "B", "Industry": "Energy"},
                                     {"Name": "C", "Industry": "Banking"}])
    page = browser.get("/console/soql", params={"q": "SELECT Industry, COUNT(Id) total FROM Account "
                                                     "GROUP BY Industry ORDER BY Industry"})
    columns, rows = _grid(page.text)
    assert columns == ["Industry", "total"] and rows == [["Banking", "1"], ["Energy", "2"]]
    count = browser.get("/console/soql", params={"q": "SELECT COUNT() FROM Account"})
    assert 'totalSize <strong id="soql-total">3</strong>' in count.text


def test_errors_are_shown_in_the_platforms_shape_next_to_the_editor(browser: TestClient) -> None:
    page = browser.get("/console/soql", params={"q": "SELEC Id FROM Account"})
    assert page.status_code == 400
    assert '<strong class="errorcode">MALFORMED_QUERY</strong>' in page.text
    assert 'role="alert"' in page.text and "SELEC Id FROM Account</textarea>" in page.text
    body = re.search(r'<details class="errorbody">.*?<pre>(.*?)</pre>', page.text, re.S)
    assert body and '"errorCode":"MALFORMED_QUERY"' in body.group(1) and '"message":' in body.group(1)
    field = browser.get("/console/soql", params={"q": "SELECT Nope__c FROM Account"})
    assert field.status_code == 400 and "INVALID_FIELD" in field.text and "Nope__c" in field.text
    html_in_query = browser.get("/console/soql", params={"q": "SELECT <script>alert(1)</script> FROM Account"})
    assert "<script>alert(1)</script>" not in html_in_query.text  # echoed escaped, never as markup


def test_query_all_includes_deleted_rows(browser: TestClient, console_org: Any) -> None:
    kept, deleted = _create(console_org, "Account", [{"Name": "Kept"}, {"Name": "Deleted"}])
    console_org.records.delete(console_org.admin_context(), [deleted])
    query = "SELECT Name, IsDeleted FROM Account ORDER BY Name"
    _, rows = _grid(browser.get("/console/soql", params={"q": query}).text)
    assert rows == [["Kept", "false"]]
    page = browser.get("/console/soql", params={"q": query, "all": "1"})
    _, rows = _grid(page.text)
    assert rows == [["Deleted", "true"], ["Kept", "false"]]
    assert re.search(r'name="all" value="1" checked', page.text)
    assert kept


def test_results_page_through_query_locators(browser: TestClient, console_org: Any) -> None:
    _create(console_org, "Account", [{"Name": f"A{n:03d}"} for n in range(workbench.PAGE_SIZE + 5)])
    first = browser.get("/console/soql", params={"q": "SELECT Name FROM Account ORDER BY Name"})
    _, rows = _grid(first.text)
    assert len(rows) == workbench.PAGE_SIZE and "done false" in first.text
    next_url = html.unescape(re.search(r'rel="next" href="([^"]+)"', first.text).group(1))  # type: ignore[union-attr]
    second = browser.get(next_url)
    _, rows = _grid(second.text)
    assert [r[0] for r in rows] == [f"A{n:03d}" for n in range(workbench.PAGE_SIZE, workbench.PAGE_SIZE + 5)]
    assert f"rows {workbench.PAGE_SIZE + 1}{DASH}{workbench.PAGE_SIZE + 5}" in second.text
    assert "done true" in second.text
    cursor = next_url.split("cursor=")[1]
    forged = browser.get("/console/soql", params={"q": "SELECT Id FROM Account", "cursor": cursor})
    assert forged.status_code == 400 and "INVALID_QUERY_LOCATOR" in forged.text


def test_explain_shows_the_engines_plans(browser: TestClient, console_org: Any) -> None:
    _create(console_org, "Account", [{"Name": "A"}, {"Name": "B"}])
    query = "SELECT Id FROM Account WHERE Name = 'A'"
    page = browser.get("/console/soql", params={"q": query, "action": "explain"})
    assert page.status_code == 200 and "<h2>Query plan</h2>" in page.text
    expected = console_org.query.explain(query, console_org.admin_context())["plans"][0]
    row = re.search(r'<table class="grid explain">.*?<tbody>(.*?)</tbody>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert f"<strong>{expected['leadingOperationType']}</strong>" in row
    assert f'<td class="num">{expected["sobjectCardinality"]}</td>' in row
    assert f'<td class="num">{expected["relativeCost"]}</td>' in row
    assert "unindexed" in row or expected["notes"] == []
    bad = browser.get("/console/soql", params={"q": "SELECT FROM", "action": "explain"})
    assert bad.status_code == 400 and "MALFORMED_QUERY" in bad.text


def _csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


def test_export_downloads_every_page_as_csv(browser: TestClient, console_org: Any) -> None:
    count = workbench.EXPORT_BATCH + 10
    _create(console_org, "Account", [{"Name": f"N{n:05d}", "NumberOfEmployees": n} for n in range(count)])
    response = browser.get("/console/soql/export", params={"q": "SELECT Name, NumberOfEmployees, Owner.Name "
                                                                "FROM Account ORDER BY Name"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Account-') and disposition.count(".csv") == 2
    rows = _csv(response)
    assert rows[0] == ["Name", "NumberOfEmployees", "Owner.Name"]
    assert len(rows) == count + 1 and rows[1] == ["N00000", "0", "Org Admin"] and rows[-1][0] == f"N{count - 1:05d}"
    assert response.headers["x-export-rows"] == str(count) and response.headers["x-export-truncated"] == "false"
    assert response.text.endswith("\r\n")


def test_export_is_capped(browser: TestClient, console_org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _create(console_org, "Account", [{"Name": f"N{n:02d}"} for n in range(30)])
    monkeypatch.setattr(workbench, "EXPORT_ROW_CAP", 12)
    response = browser.get("/console/soql/export", params={"q": "SELECT Name FROM Account"})
    assert len(_csv(response)) == 13 and response.headers["x-export-truncated"] == "true"


def test_export_cells_cannot_run_as_spreadsheet_formulas(browser: TestClient, console_org: Any) -> None:
    names = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)",
             "\tTabbed", "Plain, with \"quotes\""]
    _create(console_org, "Account", [{"Name": n, "NumberOfEmployees": -5} for n in names])
    response = browser.get("/console/soql/export", params={"q": "SELECT Name, NumberOfEmployees FROM Account"})
    rows = _csv(response)
    exported = {r[0] for r in rows[1:]}
    assert exported == {"'=HYPERLINK(\"http://evil.example\",\"x\")", "'+1+2", "'-2+3+cmd|' /C calc'!A0",
                        "'@SUM(A1)", "'\tTabbed", "Plain, with \"quotes\""}
    assert {r[1] for r in rows[1:]} == {"-5"}  # a number is not a formula


def test_export_with_children_and_null_parents(browser: TestClient, console_org: Any) -> None:
    account = _create(console_org, "Account", [{"Name": "Acme"}])[0]
    _create(console_org, "Contact", [{"LastName": "A", "AccountId": account}, {"LastName": "B", "AccountId": account}])
    rows = _csv(browser.get("/console/soql/export", params={
        "q": "SELECT Name, (SELECT LastName FROM Contacts) FROM Account"}))
    assert rows == [["Name", "Contacts"], ["Acme", "2"]]
    _create(console_org, "Contact", [{"LastName": "Nobody"}])
    rows = _csv(browser.get("/console/soql/export", params={
        "q": "SELECT LastName, Account.Name FROM Contact WHERE AccountId = null"}))
    assert rows == [["LastName", "Account.Name"], ["Nobody", ""]]  # the header does not depend on the data


def test_export_errors_show_the_workbench(browser: TestClient) -> None:
    response = browser.get("/console/soql/export", params={"q": "SELECT Id FROM Nowhere"})
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"] and "INVALID_TYPE" in response.text
    empty = browser.get("/console/soql/export", params={"q": " "})
    assert empty.status_code == 400 and "MALFORMED_QUERY" in empty.text


def test_the_workbench_needs_a_login(console_org: Any) -> None:
    from interlink.api.app import build_app

    with TestClient(build_app(console_org), base_url="https://testserver") as anonymous:
        for url in ("/console/soql?q=SELECT+Id+FROM+Account", "/console/soql/export?q=SELECT+Id+FROM+Account"):
            response = anonymous.get(url, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"].startswith("/console/login")
