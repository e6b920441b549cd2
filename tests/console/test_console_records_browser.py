"""Objects, records and the SOQL workbench in headless Chromium against a live `interlink up --sample-data`."""

from __future__ import annotations

from console_helpers import open_console  # type: ignore[import-not-found]


def test_sort_open_edit_and_see_the_new_value(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    page = open_console(chromium, live_console)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.click("nav.sections >> text=Objects")
        page.click("table.objects >> a:text-is('Accounts')")
        page.wait_for_selector("table.records")
        names = page.locator("table.records tbody tr td:first-child").all_inner_texts()
        assert names == sorted(names, key=str.lower) and "Acme Corporation" in names
        page.click("th[data-field=AnnualRevenue] a")  # server-side sort, ascending
        page.wait_for_selector("th[data-field=AnnualRevenue][aria-sort=ascending]")
        page.click("th[data-field=AnnualRevenue] a")
        page.wait_for_selector("th[data-field=AnnualRevenue][aria-sort=descending]")
        ordered = page.locator("table.records tbody tr td:first-child").all_inner_texts()
        assert ordered[0] == "Umbrella Health"  # the largest annual revenue of the sample accounts
        page.click("table.records >> a:text-is('Globex')")
        page.wait_for_selector("h1:text-is('Globex')")
        assert page.locator(".relatedlist[data-relationship=Contacts] >> text=Hank Scorpio").is_visible()
        page.click("a.button:text-is('Edit')")
        page.fill("input[name=Phone]", "+1 555 0199")
        page.select_option("select[name=Rating]", "Warm")
        page.click("button:text-is('Save')")
        page.wait_for_selector("text=Your changes were saved.")
        assert page.inner_text(".fieldrow[data-field=Phone] dd") == "+1 555 0199"
        assert page.inner_text(".fieldrow[data-field=Rating] dd") == "Warm"
        # a validation error keeps the input and highlights the field
        page.click("a.button:text-is('Edit')")
        page.fill("input[name=Name]", "")
        page.click("button:text-is('Save')")
        page.wait_for_selector(".formfield.invalid[data-field=Name]")
        assert "REQUIRED_FIELD_MISSING" in page.inner_text("[role=alert]")
        assert errors == []
    finally:
        page.context.close()


def test_create_then_delete_after_confirming(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    page = open_console(chromium, live_console)
    try:
        page.goto(f"{live_console.url}/console/o/Account")
        page.click("a.button:text-is('New Account')")
        page.fill("input[name=Name]", "Browser Made Ltd")
        page.select_option("select[name=Industry]", "Energy")
        page.click("button:text-is('Create')")
        page.wait_for_selector("text=The record was created.")
        assert page.inner_text("h1") == "Browser Made Ltd"
        dismissed: list[str] = []
        page.once("dialog", lambda dialog: (dismissed.append(dialog.message), dialog.dismiss()))
        page.click("button:text-is('Delete')")
        assert dismissed and "Browser Made Ltd" in dismissed[0]
        assert page.inner_text("h1") == "Browser Made Ltd"  # nothing happened
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button:text-is('Delete')")
        page.wait_for_selector("text=The record was deleted.")
        assert "Browser Made Ltd" not in page.locator("table.records").inner_text()
    finally:
        page.context.close()


def test_workbench_runs_a_query_shows_the_grid_and_keeps_a_history(chromium, live_console) -> None:  # type: ignore[no-untyped-def]
    page = open_console(chromium, live_console)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.click("nav.sections >> text=SOQL")
        page.wait_for_url(f"{live_console.url}/console/soql**")
        page.wait_for_load_state("load")  # soql.js binds Ctrl+Enter: a busy machine may not have run it yet
        page.fill("#soql-text", "SELECT Name, Account.Name, (SELECT Subject FROM Cases) FROM Contact "
                                "WHERE Account.Name = 'Acme Corporation' ORDER BY LastName")
        page.press("#soql-text", "Control+Enter")
        page.wait_for_selector("table.results")
        headers = page.locator("table.results:not(.nested) > thead th").all_inner_texts()
        assert headers == ["Name", "Account.Name", "Cases"]
        first_row = page.locator("table.results:not(.nested) > tbody > tr").first.locator("> td").all_inner_texts()
        assert first_row[:2] == ["Grace Hopper", "Acme Corporation"]
        assert page.inner_text("#soql-total") == "2"
        page.click("button:text-is('Explain')")
        page.wait_for_selector("table.explain")
        assert page.locator("table.explain tbody tr").count() == 1
        page.fill("#soql-text", "SELECT Nme FROM Account")
        page.click("button:text-is('Run')")
        page.wait_for_selector("#soql-error")
        assert "INVALID_FIELD" in page.inner_text("#soql-error")
        history = page.locator("#soql-history li .history-item").all_inner_texts()
        assert history[0] == "SELECT Nme FROM Account" and any("FROM Contact" in q for q in history)
        page.locator("#soql-history li", has_text="FROM Contact").locator(".history-run").click()
        page.wait_for_selector("table.results")
        assert page.inner_text("#soql-total") == "2"
        with page.expect_download() as download:
            page.click("button:text-is('Export CSV')")
        lines = open(download.value.path(), encoding="utf-8").read().splitlines()  # noqa: SIM115
        assert lines[0] == "Name,Account.Name,Cases" and len(lines) == 3
        assert errors == []
    finally:
        page.context.close()
