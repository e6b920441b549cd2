"""The UI Update pattern in headless Chromium against a live `interlink up --sample-data`: a real EventSource, the
sample payment processor over OAuth, other users' REST updates, a manager's filtered alerts, and the event streams
page. Every wait is for something on the page (wait_for_selector); nothing asserts on timing."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_helpers import open_console  # type: ignore[import-not-found]

from interlink.app.sample_data import MANAGER
from interlink.testing import ADMIN_PASSWORD, run_cli

PROCESSOR = Path(__file__).resolve().parents[2] / "examples" / "payments" / "processor.py"
API = "/services/data/v66.0"


@pytest.fixture(scope="module")
def payments_app(live_console) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A connected app for the payment processor (client credentials run as the admin)."""
    out = run_cli("apps", "create", "Payment Processor", "--run-as", "admin@interlink.local",
                  "--data-dir", str(live_console.data_dir)).stdout
    key = re.search(r"consumer_key=(\S+)", out)
    secret = re.search(r"consumer_secret=(\S+)", out)
    assert key and secret, out
    return key.group(1), secret.group(1)


class Rest:
    """A REST client logged in as ``username`` through OAuth (password flow), as any external client would."""

    def __init__(self, live: Any, app: tuple[str, str], username: str) -> None:
        self.http = httpx.Client(base_url=live.url, verify=ssl.create_default_context(cafile=live.ca_bundle),
                                 timeout=20)
        token = self.http.post("/services/oauth2/token", data={
            "grant_type": "password", "client_id": app[0], "client_secret": app[1], "username": username,
            "password": ADMIN_PASSWORD})
        assert token.status_code == 200, token.text
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        self.user_id = token.json()["id"].rsplit("/", 1)[1]

    def query(self, soql: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{API}/query", params={"q": soql})
        assert response.status_code == 200, response.text
        return response.json()["records"]  # type: ignore[no-any-return]

    def user_id_of(self, username: str) -> str:
        return self.query(f"SELECT Id FROM User WHERE Username = '{username}'")[0]["Id"]  # type: ignore[no-any-return]

    def new_case(self, subject: str, owner: str) -> tuple[str, str]:
        created = self.http.post(f"{API}/sobjects/Case", json={"Subject": subject, "OwnerId": self.user_id_of(owner)})
        assert created.status_code == 201, created.text
        case_id = created.json()["id"]
        return case_id, self.query(f"SELECT CaseNumber FROM Case WHERE Id = '{case_id}'")[0]["CaseNumber"]

    def update_case(self, case_id: str, **values: Any) -> None:
        response = self.http.patch(f"{API}/sobjects/Case/{case_id}", json=values)
        assert response.status_code == 204, response.text

    def publish(self, event: str, **values: Any) -> None:
        response = self.http.post(f"{API}/sobjects/{event}", json=values)
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def admin(live_console, payments_app) -> Iterator[Rest]:  # type: ignore[no-untyped-def]
    client = Rest(live_console, payments_app, "admin@interlink.local")
    yield client
    client.http.close()


def pay(live: Any, app: tuple[str, str], case: str, amount: str) -> str:
    """Run the sample payment processor as the payment system would: its own process, OAuth, REST."""
    result = subprocess.run([sys.executable, str(PROCESSOR), "--url", live.url, "--ca-bundle", live.ca_bundle,
                             "--client-id", app[0], "--client-secret", app[1], "pay", case, "--amount", amount],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def open_case(chromium: Any, live: Any, case_id: str, username: str = "admin@interlink.local") -> Any:
    page = open_console(chromium, live, username)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(f"{live.url}/console/live/cases/{case_id}")
    page.wait_for_selector("#live-state[data-state=open]")
    page.evaluate("window.__notReloaded = true")
    return page


def test_a_payment_shows_paid_on_the_open_case_without_a_reload(chromium, live_console, payments_app,  # type: ignore[no-untyped-def]
                                                                 admin) -> None:
    case_id, number = admin.new_case("Customer on the phone, paying now", "alex.rep@interlink.local")
    page = open_case(chromium, live_console, case_id)
    try:
        assert page.inner_text("#payment-status") == "Unpaid"
        assert "published Payment_Received__e" in pay(live_console, payments_app, number, "120.50")
        page.wait_for_selector("#payment-status:text-is('Paid')")
        assert page.inner_text("#payment-amount") == "120.50"
        page.wait_for_selector("#activity li.payment-event")
        assert page.evaluate("window.__notReloaded") is True
        # The sample flow copies the payment onto the case through the write path; its change event arrives too.
        page.wait_for_selector("#activity li.change-event:has-text('Payment Status')")
        (row,) = admin.query(f"SELECT Payment_Status__c, Payment_Amount__c FROM Case WHERE Id = '{case_id}'")
        assert (row["Payment_Status__c"], row["Payment_Amount__c"]) == ("Paid", 120.5)
        assert page.errors == []
    finally:
        page.context.close()


def test_what_the_user_typed_survives_updates_from_elsewhere(chromium, live_console, payments_app,  # type: ignore[no-untyped-def]
                                                             admin) -> None:
    case_id, number = admin.new_case("Printer jams", "alex.rep@interlink.local")
    page = open_case(chromium, live_console, case_id)
    alex = Rest(live_console, payments_app, "alex.rep@interlink.local")
    try:
        typed = "Customer says: call back after 5pm, ask for Dana"
        page.fill("textarea[name=Description]", typed)
        assert "touched" in page.get_attribute("label[data-field=Description]", "class")
        alex.update_case(case_id, Subject="Printer jams on tray 2", Description="Alex: ordered a new roller")
        page.wait_for_selector("h1 [data-display=Subject]:text-is('Printer jams on tray 2')")
        assert page.input_value("input[name=Subject]") == "Printer jams on tray 2"  # untouched: it follows
        assert page.input_value("textarea[name=Description]") == typed  # touched: the user's text stays
        hint = page.locator("[data-elsewhere=Description]")
        assert hint.is_visible() and "Alex: ordered a new roller" in hint.inner_text()
        page.wait_for_selector("#activity li.change-event:has-text('Alex Rivera')")
        pay(live_console, payments_app, number, "75")
        page.wait_for_selector("#payment-status:text-is('Paid')")
        assert page.input_value("textarea[name=Description]") == typed
        assert page.evaluate("window.__notReloaded") is True
        page.click("#save")
        page.wait_for_selector("#save-result:text-is('Saved.')")
        (row,) = admin.query(f"SELECT Description, Subject FROM Case WHERE Id = '{case_id}'")
        assert (row["Description"], row["Subject"]) == (typed, "Printer jams on tray 2")
        assert not page.locator("[data-elsewhere=Description]").is_visible()
        assert page.errors == []
    finally:
        alex.http.close()
        page.context.close()


def test_a_manager_sees_alerts_for_their_own_reps_only(chromium, live_console, payments_app,  # type: ignore[no-untyped-def]
                                                       admin) -> None:
    theirs, _ = admin.new_case("Router keeps rebooting", "alex.rep@interlink.local")
    unsuccessful, _ = admin.new_case("Refund request", "sam.rep@interlink.local")
    other_team, _ = admin.new_case("Badge reader offline", "jordan.rep@interlink.local")
    page = open_console(chromium, live_console, MANAGER, ADMIN_PASSWORD)
    jordan = Rest(live_console, payments_app, "jordan.rep@interlink.local")
    sam = Rest(live_console, payments_app, "sam.rep@interlink.local")
    alex = Rest(live_console, payments_app, "alex.rep@interlink.local")
    try:
        page.goto(f"{live_console.url}/console/live/manager")
        page.wait_for_selector("#live-state[data-state=open]")
        assert page.locator("#team tbody tr").count() == 2
        jordan.update_case(other_team, Status="Closed", Resolution__c="Successful")  # another manager's rep
        sam.update_case(unsuccessful, Status="Closed", Resolution__c="Unsuccessful")  # not a success
        alex.update_case(theirs, Status="Closed", Resolution__c="Successful")
        page.wait_for_selector(f"#alerts li.alert[data-case-id='{theirs}']")
        # Jordan's close was published before Alex's on the same ordered stream: had it been sent, it would be here.
        alerts = page.locator("#alerts li.alert")
        assert alerts.count() == 1
        assert "Alex Rivera closed case" in alerts.first.inner_text() and "Successful" in alerts.first.inner_text()
        assert page.locator(f"#alerts li[data-case-id='{other_team}']").count() == 0
    finally:
        for client in (jordan, sam, alex):
            client.http.close()
        page.context.close()


def test_the_event_streams_page_shows_events_as_they_are_published(chromium, live_console,  # type: ignore[no-untyped-def]
                                                                   payments_app, admin) -> None:
    case_id, _ = admin.new_case("Stream page test", "sam.rep@interlink.local")
    admin.publish("Payment_Received__e", CaseId__c=case_id, Amount__c=1.25, Status__c="Declined")  # before we look
    page = open_console(chromium, live_console)
    try:
        page.goto(f"{live_console.url}/console/events")
        page.select_option("#channel", "/event/Payment_Received__e")
        page.click("#subscribe-button")
        page.wait_for_selector("#stream-state[data-state=open]")
        assert page.locator("#event-rows tr").count() == 0  # LATEST: nothing from before
        admin.publish("Payment_Received__e", CaseId__c=case_id, Amount__c=11.5, Status__c="Paid")
        page.wait_for_selector("#event-rows tr:has-text('11.5')")
        # Publish from the page's own form.
        page.fill("#publish-fields [name=CaseId__c]", case_id)
        page.fill("#publish-fields [name=Amount__c]", "22.75")
        page.fill("#publish-fields [name=Status__c]", "Paid")
        page.click("#publish button[type=submit]")
        page.wait_for_selector("#publish-result:has-text('replay id')")
        replay_id = page.get_attribute("#publish-result", "data-replay-id")
        page.wait_for_selector(f"#event-rows tr[data-replay-id='{replay_id}']")
        assert "22.75" in page.inner_text("#event-rows tr >> nth=0")  # newest on top
        # Paused: new events are held, then shown on resume.
        page.click("#pause")
        admin.publish("Payment_Received__e", CaseId__c=case_id, Amount__c=33.5, Status__c="Paid")
        page.wait_for_selector("#stream-held:has-text('1 new event')")
        assert page.locator("#event-rows tr:has-text('33.5')").count() == 0
        page.click("#pause")
        page.wait_for_selector("#event-rows tr:has-text('33.5')")
        # Replay from EARLIEST shows what was published before the page subscribed.
        page.select_option("#replay-mode", "EARLIEST")
        page.click("#subscribe-button")
        page.wait_for_selector("#event-rows tr:has-text('1.25')")
        assert page.locator("#event-rows tr:has-text('Declined')").count() >= 1
        # And from a replay id: only what came after it.
        page.select_option("#replay-mode", "CUSTOM")
        page.fill("#replay-id", replay_id or "")
        page.click("#subscribe-button")
        page.wait_for_selector("#event-rows tr:has-text('33.5')")
        assert page.locator("#event-rows tr:has-text('22.75')").count() == 0
    finally:
        page.context.close()


def test_an_interlink_up_with_open_streams_stops_promptly(tmp_path: Path, chromium) -> None:  # type: ignore[no-untyped-def]
    from interlink.testing import live_server

    with live_server(tmp_path / "org", extra_args=("--sample-data",)) as live:
        page = open_console(chromium, live)
        try:
            page.goto(f"{live.url}/console/events?channel=/data/ChangeEvents")
            page.wait_for_selector("#stream-state[data-state=open]")
            live.process.terminate()
            live.process.wait(timeout=30)  # an open event stream must not hold the exit (uvicorn waits for it)
            assert live.process.returncode is not None
        finally:
            page.context.close()


def test_the_processor_also_takes_payments_over_http(live_console, payments_app, admin) -> None:  # type: ignore[no-untyped-def]
    import importlib.util
    import json
    import threading

    spec = importlib.util.spec_from_file_location("payments_processor", PROCESSOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    case_id, number = admin.new_case("Paying by phone", "sam.rep@interlink.local")
    processor = module.Processor(live_console.url, client_id=payments_app[0], client_secret=payments_app[1],
                                 ca_bundle=live_console.ca_bundle)
    server = module.make_server(processor, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/payments"
        paid = httpx.post(base, content=json.dumps({"case": number, "amount": 19.99}))
        assert paid.status_code == 201, paid.text
        assert (paid.json()["case_id"], paid.json()["amount"], paid.json()["status"]) == (case_id, 19.99, "Paid")
        missing = httpx.post(base, content=json.dumps({"case": "99999999", "amount": 1}))
        assert missing.status_code == 422 and "There is no case" in missing.json()["error"]
        assert httpx.post(base, content=b"{}").status_code == 400
    finally:
        server.shutdown()
        server.server_close()
        processor.close()
