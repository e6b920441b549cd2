"""The users and org of the permission tests (``tests/security/test_permission_matrix.py``, and the GraphQL,
OpenAPI and console permission tests, which import the ``world`` fixture from here).

Three users besides the admin, all on the *Minimum Access - API Only Integrations* profile but ``noapi``:
- ``reader``: permission set Reader (Account read; FLS read on Public__c; read on Ping__e)
- ``editor``: permission set Editor (Account read/create/edit; FLS edit on Public__c; create on Ping__e)
- ``noapi``: a profile without API Enabled
Secret__c is readable by nobody but the admin (no FLS grant); Invoice__c by nobody but the admin.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from interlink.api.app import build_app
from interlink.app.permissions import assign
from interlink.app.setup_users import create_user
from interlink.testing import local_org

API = "/services/data/v66.0"
PASSWORD = "Perm-Test-Password-1"

PROJECT = {
    "metadata/objects/Account.yaml": """\
        name: Account
        fields:
          - {name: Secret__c, type: text, length: 40}
          - {name: Public__c, type: text, length: 40}
        """,
    "metadata/objects/Invoice__c.yaml": """\
        label: Invoice
        fields:
          - {name: Amount__c, type: number, precision: 10, scale: 2}
        """,
    "metadata/objects/Ping__e.yaml": """\
        label: Ping
        publishBehavior: PublishImmediately
        fields:
          - {name: Note__c, type: text, length: 40}
        """,
    "metadata/permissionSets/Reader.yaml": """\
        label: Reader
        userPermissions: [ApiEnabled]
        objectPermissions:
          Account: read
          Ping__e: read
        fieldPermissions:
          Account.Public__c: read
        """,
    "metadata/permissionSets/Editor.yaml": """\
        label: Editor
        userPermissions: [ApiEnabled]
        objectPermissions:
          Account: read, create, edit
          Ping__e: read, create
        fieldPermissions:
          Account.Public__c: edit
        """,
    "metadata/profiles/No_API.yaml": """\
        description: Console only
        objectPermissions:
          Account: read
        """,
    "metadata/flows/Stamp_Secret.yaml": """\
        object: Account
        trigger: create
        condition: "Name = 'Flow Co'"
        actions:
          - update: {Secret__c: stamped}
        """,
    "metadata/odata.yaml": """\
        objects:
          - {name: Account, writable: true}
        """,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("perms")
    project = root / "project"
    for relative, text in PROJECT.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with local_org(root / "org", project_dir=project, bulk_workers=0) as org:
        users = {}
        for name, profile, sets in (("reader", "Minimum Access - API Only Integrations", ["Reader"]),
                                    ("editor", "Minimum Access - API Only Integrations", ["Editor"]),
                                    ("noapi", "No_API", [])):
            user_id, _ = create_user(org, f"{name}@perm.test", last_name=name.title(), password=PASSWORD)
            assign(org, user_id, profile=profile, permission_sets=sets)
            users[name] = user_id
        admin = org.admin_context()
        (account,) = org.records.create(admin, "Account", [{"Name": "Visible Co", "Secret__c": "s3cr3t",
                                                             "Public__c": "hello"}])
        org.records.create(admin, "Invoice__c", [{"Name": "INV-1", "Amount__c": 5}])
        app = build_app(org)
        clients = {}
        for name in ("reader", "editor", "noapi"):
            client = TestClient(app, base_url="https://testserver")
            client.headers["Authorization"] = f"Bearer {org.mint_token(f'{name}@perm.test')}"
            clients[name] = client
        admin_client = TestClient(app, base_url="https://testserver")
        admin_client.headers["Authorization"] = f"Bearer {org.mint_token('admin@interlink.local')}"
        clients["admin"] = admin_client
        yield {"org": org, "users": users, "clients": clients, "account": account.id}


def error_code(response: Any) -> str:
    body = response.json()
    return body[0]["errorCode"] if isinstance(body, list) else body.get("errorCode", "")


def accounts(org: Any) -> list[dict[str, Any]]:
    return org.query.execute("SELECT Name, Public__c, Secret__c FROM Account ORDER BY Name",
                             org.admin_context()).records
