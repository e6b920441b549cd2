"""A running org picks up changed project code (flows, triggers, credentials, data sources, OData exposure)
without a restart, all or nothing: a file that does not load leaves the running configuration as it was."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from interlink.app.org import Org
from interlink.testing import backend_org, live_server

FLOW = """\
object: Account
trigger: create
timing: before
condition: "Industry = 'Energy'"
actions:
  - update: {{Rating: {rating}}}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time_ns() + 1_000_000_000  # a new mtime even within the filesystem's timestamp granularity
    os.utime(path, ns=(stamp, stamp))


def _rating(org: Org, name: str) -> str | None:
    (saved,) = org.records.create(org.admin_context(), "Account", [{"Name": name, "Industry": "Energy"}])
    assert saved.success, saved.errors
    return org.query.execute(f"SELECT Rating FROM Account WHERE Id = '{saved.id}'",
                             org.admin_context()).records[0]["Rating"]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    _write(tmp_path / "project" / "metadata" / "flows" / "Rate.yaml", FLOW.format(rating="Warm"))
    with backend_org(tmp_path, bulk_workers=0) as opened:
        yield opened


def test_nothing_changed_means_no_reload(org: Org) -> None:
    assert org.reload_project_if_changed() is False


def test_a_changed_flow_is_used_after_reload(org: Org, tmp_path: Path) -> None:
    assert _rating(org, "Before") == "Warm"
    _write(tmp_path / "project" / "metadata" / "flows" / "Rate.yaml", FLOW.format(rating="Hot"))
    assert org.reload_project_if_changed() is True
    assert _rating(org, "After") == "Hot"


def test_a_broken_file_keeps_the_running_configuration(org: Org, tmp_path: Path) -> None:
    flow = tmp_path / "project" / "metadata" / "flows" / "Rate.yaml"
    _write(flow, "object: Account\ntrigger: sometimes\n")
    credential = tmp_path / "project" / "metadata" / "namedCredentials" / "New.yaml"
    _write(credential, "url: https://new.example.com\n")
    assert org.reload_project_if_changed() is False
    assert org.project_error is not None and "Rate.yaml" in org.project_error
    assert _rating(org, "Still warm") == "Warm"
    assert "new" not in org.callouts.credentials  # all or nothing: the good file waits for the bad one
    _write(flow, FLOW.format(rating="Cold"))
    assert org.reload_project_if_changed() is True
    assert org.project_error is None and "new" in org.callouts.credentials
    assert _rating(org, "Fixed") == "Cold"


@pytest.mark.live
def test_a_running_server_exposes_objects_over_odata_without_a_restart(tmp_path: Path) -> None:
    with live_server(tmp_path / "org") as server:
        headers = {"Authorization": f"Bearer {server.token()}"}
        verify = ssl.create_default_context(cafile=server.ca_bundle)
        with httpx.Client(base_url=server.url, headers=headers, verify=verify, timeout=10) as client:
            assert client.get("/odata/v4/Account").status_code == 404
            _write(tmp_path / "org" / "metadata" / "odata.yaml", "objects: [Account]\n")
            deadline = time.monotonic() + 10
            while client.get("/odata/v4/Account").status_code != 200:
                assert time.monotonic() < deadline, "the server did not pick up metadata/odata.yaml"
                time.sleep(0.2)
            _write(tmp_path / "org" / "metadata" / "odata.yaml", "objects: [Nope__c]\n")
            deadline = time.monotonic() + 10
            while client.get("/health").json()["components"]["project"]["status"] != "degraded":
                assert time.monotonic() < deadline, "a broken odata.yaml was not reported"
                time.sleep(0.2)
            assert client.get("/odata/v4/Account").status_code == 200  # the last good exposure stays
