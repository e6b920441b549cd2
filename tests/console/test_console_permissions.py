"""The console offers only what the signed-in user may read: object lists, record pages, related lists, links.

The users and org are those of ``tests/permission_world.py`` (its ``world`` fixture, run again for
this module): ``noapi`` (a console user without API access) may read Account but not its Secret__c, nor Invoice__c,
Contact or User; the admin may read everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from console_helpers import login  # type: ignore[import-not-found]
from starlette.testclient import TestClient

import permission_world
from interlink.api.app import build_app

world = permission_world.world  # the shared fixture


@pytest.fixture(scope="module")
def browsers(world: dict[str, Any]) -> Iterator[dict[str, TestClient]]:
    """A logged-in console client for ``noapi`` and one for the admin."""
    app = build_app(world["org"])
    with TestClient(app, base_url="https://testserver") as restricted, \
            TestClient(app, base_url="https://testserver") as admin:
        login(restricted, "noapi@perm.test", permission_world.PASSWORD)
        login(admin)
        yield {"noapi": restricted, "admin": admin}


def object_links(html: str) -> set[str]:
    return set(re.findall(r'href="/console/o/([^"/?]+)"', html))


def invoice_id(world: dict[str, Any]) -> str:
    org = world["org"]
    return str(org.query.execute("SELECT Id FROM Invoice__c", org.admin_context()).records[0]["Id"])


def test_object_lists_show_only_readable_objects(browsers: dict[str, TestClient]) -> None:
    for page in ("/console/", "/console/objects"):
        response = browsers["noapi"].get(page)
        assert response.status_code == 200
        links = object_links(response.text)
        assert "Account" in links and not {"Invoice__c", "Contact", "User", "PermissionSet"} & links, page
        assert "Invoice__c" not in response.text and "Contact" not in response.text
        assert {"Account", "Invoice__c", "Contact"} <= object_links(browsers["admin"].get(page).text)


def test_record_pages_show_only_readable_fields_and_related_lists(world: dict[str, Any],
                                                                 browsers: dict[str, TestClient]) -> None:
    page = browsers["noapi"].get(f"/console/r/{world['account']}")
    assert page.status_code == 200 and "Visible Co" in page.text
    assert "s3cr3t" not in page.text and "Secret__c" not in page.text
    related = set(re.findall(r'data-relationship="([^"]+)"', page.text))
    assert not {"Contacts", "Opportunities", "Cases"} & related
    assert not {"Invoice__c", "Contact", "User"} & object_links(page.text)
    edit = browsers["noapi"].get(f"/console/r/{world['account']}/edit")
    assert edit.status_code == 200 and "Secret__c" not in edit.text

    admin = browsers["admin"].get(f"/console/r/{world['account']}")
    assert admin.status_code == 200 and "s3cr3t" in admin.text
    assert {"Contacts", "Opportunities"} <= set(re.findall(r'data-relationship="([^"]+)"', admin.text))


def test_opening_a_hidden_object_or_its_records_is_not_found(world: dict[str, Any],
                                                            browsers: dict[str, TestClient]) -> None:
    hidden = invoice_id(world)
    for path in ("/console/o/Invoice__c", "/console/o/Invoice__c/new", f"/console/r/{hidden}",
                 f"/console/r/{hidden}/edit"):
        assert browsers["noapi"].get(path).status_code == 404, path
        assert browsers["admin"].get(path).status_code == 200, path


def test_the_workbench_links_only_records_the_user_may_open(world: dict[str, Any],
                                                            browsers: dict[str, TestClient]) -> None:
    query = {"q": "SELECT Id, Name, OwnerId FROM Account WHERE Name = 'Visible Co'"}
    owner = str(world["org"].query.execute(query["q"], world["org"].admin_context()).records[0]["OwnerId"])
    restricted = browsers["noapi"].get("/console/soql", params=query).text
    assert f"/console/r/{world['account']}" in restricted  # an Account: readable
    assert owner in restricted and f"/console/r/{owner}" not in restricted  # a User: not readable
    assert f"/console/r/{owner}" in browsers["admin"].get("/console/soql", params=query).text
