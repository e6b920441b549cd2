"""``interlink up --with-examples`` (what ``make run`` starts): the org with sample data and the example remote systems
of every pattern, which answer and take part (the ERP's subscriber gives a Closed Won opportunity its order number),
and which all stop with ``interlink up``: on SIGTERM, and when the org fails to start."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from interlink.testing import API_VERSION, live_server

pytestmark = pytest.mark.live

SYSTEMS = {"billing", "listener", "erp", "erp-subscriber", "payments"}


def marked(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (what ``up`` started inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(what: str, probe, timeout: float = 20):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s")
        time.sleep(0.2)


@pytest.mark.skipif(sys.platform != "linux", reason="checks leftover processes through /proc")
def test_up_with_examples_starts_the_systems_and_stops_them(tmp_path: Path) -> None:
    child_marker = f"UP_EXAMPLES_TEST={uuid.uuid4().hex}"  # up passes its environment on (but INTERLINK_*)
    name, value = child_marker.split("=")
    started = time.monotonic()
    data_dir = tmp_path / "org"
    with live_server(data_dir, extra_args=("--with-examples", "--free-example-ports"), timeout=60,
                     env={name: value, "INTERLINK_PUBSUB_KEEPALIVE_SECONDS": "1"},
                     ready_file="examples/systems.json") as server:
        info = json.loads((data_dir / "examples" / "systems.json").read_text())
        systems = info["systems"]
        assert set(systems) == SYSTEMS and info["ports"] == "free"
        pids = {system: entry["pid"] for system, entry in systems.items()}
        assert all(alive(pid) for pid in pids.values()), pids

        # The remote systems answer: billing, the ERP's OData service (seeded), the payment processor.
        assert httpx.get(f"{systems['billing']['url']}/openapi.yaml").status_code == 200
        orders = httpx.get(f"{systems['erp']['url']}/odata/Orders", params={"$top": "1", "$count": "true"}).json()
        assert orders["@odata.count"] == 120 and len(orders["value"]) == 1
        paid = httpx.post(systems["payments"]["url"], json={"case": "00000001", "amount": 7.5}, timeout=30)
        assert paid.status_code == 201, paid.text
        assert paid.json()["case_number"] == "00000001"

        # Where to look, with a command per pattern.
        shown = server.log()
        assert "Example systems of the six patterns on free ports" in shown
        assert f"{server.url}/console/" in shown and "Try each pattern" in shown
        for command in ("sobjects/Order/801", '{"StageName": "Closed Won"}', "sync run prospect-import",
                        "printers/fleet.py --data-dir", "/payments -d", "FROM Orders__r", "demo PATTERN"):
            assert command in shown, command

        # Fire and Forget: the running ERP subscriber gives a Closed Won opportunity its order number.
        subscriber_log = Path(systems["erp-subscriber"]["log"])
        wait_for("the ERP subscriber did not subscribe",
                 lambda: "erp: subscribed to /event/Order_Request__e" in subscriber_log.read_text())
        rest = httpx.Client(base_url=f"{server.url}/services/data/v{API_VERSION}",
                            verify=ssl.create_default_context(cafile=server.ca_bundle),
                            headers={"Authorization": f"Bearer {server.token()}"}, timeout=30)
        with rest:
            (deal,) = rest.get("query", params={"q": "SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY "
                                                     "CreatedDate LIMIT 1"}).json()["records"]
            assert rest.patch(f"sobjects/Opportunity/{deal['Id']}", json={"StageName": "Closed Won"}).status_code == 204
            described = wait_for("the ERP's order number did not reach the opportunity", lambda: rest.get(
                f"sobjects/Opportunity/{deal['Id']}", params={"fields": "Description"}).json()["Description"])
        assert re.fullmatch(r"ERP order SO-\d{5}", described), described

        # SIGTERM stops up and everything it started.
        assert {server.process.pid, *pids.values()} <= set(marked(child_marker))
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0, server.log()[-3000:]
    wait_for("a process up started is still running", lambda: not [p for p in pids.values() if alive(p)], 10)
    assert marked(child_marker) == []
    assert not (data_dir / "examples" / "systems.json").exists()
    assert time.monotonic() - started < 60


@pytest.mark.skipif(sys.platform != "linux", reason="checks leftover processes through /proc")
def test_no_system_is_left_behind_when_the_org_fails_to_start(tmp_path: Path) -> None:
    marker = f"UP_EXAMPLES_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {key: item for key, item in os.environ.items() if not key.startswith("INTERLINK_")}
        done = subprocess.run(
            [sys.executable, "-m", "interlink.cli.main", "up", "--with-examples", "--free-example-ports", "--port",
             str(taken.getsockname()[1]), "--grpc-port", "0", "--data-dir", str(tmp_path / "org")],
            env={**env, name: value}, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode != 0 and "address already in use" in done.stderr, done.stderr[-2000:]
    assert (tmp_path / "org" / "examples" / "logs" / "billing.log").exists()  # the systems had started
    assert marked(marker) == []
