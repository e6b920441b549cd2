"""One org per store backend for the OData producer tests, shared by every module in this folder.

Its project exposes (``metadata/odata.yaml``): ``Account`` read-only, ``Contact`` and ``Gadget__c`` writable,
``Row__c`` read-only; ``Opportunity`` exists but is not exposed. ``Row__c`` holds 2,030 numbered rows (paging,
``$skip`` past SOQL's OFFSET cap), never changed. ``Gadget__c`` has a field of every type. Tests that write
create their own records under a tag unique to the test, so they stay independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from odata_support import PAGE_SIZE, ROWS

from interlink.testing import backend_org, rest_client

ODATA_YAML = f"""\
objects:
  - Account
  - {{name: Contact, writable: true}}
  - {{name: Gadget__c, writable: true}}
  - Row__c
pageSize: {PAGE_SIZE}
"""

ROW_YAML = """\
name: Row__c
label: Row
labelPlural: Rows
fields:
  - {name: Seq__c, type: number, precision: 9, scale: 0}
  - {name: Parity__c, type: text, length: 10}
"""

GADGET_YAML = """\
name: Gadget__c
label: Gadget
labelPlural: Gadgets
fields:
  - {name: Tag__c, type: text, length: 40}
  - {name: Notes__c, type: textarea, length: 255}
  - {name: Active__c, type: checkbox}
  - {name: Units__c, type: int, precision: 6}
  - {name: Price__c, type: currency, precision: 12, scale: 2}
  - {name: Share__c, type: percent, precision: 5, scale: 2}
  - {name: Ratio__c, type: number, precision: 10, scale: 4}
  - {name: Launch__c, type: date}
  - {name: Seen__c, type: datetime}
  - {name: Opens__c, type: time}
  - {name: Color__c, type: picklist, values: [Red, Green, Blue]}
  - {name: Sizes__c, type: multipicklist, values: [S, M, L]}
  - {name: Contact_Email__c, type: email, length: 80}
  - {name: Account__c, type: lookup, referenceTo: Account, relationshipName: Account__r,
     childRelationshipName: Gadgets}
"""


@pytest.fixture(scope="session")
def odata_org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shared org (per backend), with Row__c filled."""
    root = tmp_path_factory.mktemp(f"odata-{store_backend}")
    (root / "project" / "metadata").mkdir(parents=True)
    (root / "project" / "metadata" / "odata.yaml").write_text(ODATA_YAML)
    with backend_org(root, store_backend, {"Row__c": ROW_YAML, "Gadget__c": GADGET_YAML},
                     unavailable=pytest.skip) as opened:
        context = opened.admin_context()
        for start in range(0, ROWS, 1000):
            results = opened.records.create(context, "Row__c", [
                {"Name": f"Row {n:05d}", "Seq__c": n, "Parity__c": "even" if n % 2 == 0 else "odd"}
                for n in range(start, min(ROWS, start + 1000))])
            assert all(r.success for r in results)
        yield opened


@pytest.fixture(scope="session")
def odata(odata_org: Any) -> Iterator[Any]:
    """An authorised in-process client (admin user) for the shared org."""
    with rest_client(odata_org) as test_client:
        yield test_client
