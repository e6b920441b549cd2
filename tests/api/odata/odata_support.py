"""Helpers shared by the OData producer tests (records made through the write path, unique tags, URLs)."""

from __future__ import annotations

import uuid
from typing import Any

V4 = "/odata/v4"
V2 = "/odata/v2"
ROWS = 2030  # Row__c rows in the shared org
PAGE_SIZE = 500  # its metadata/odata.yaml pageSize


def tag() -> str:
    """A value unique to the calling test."""
    return "od" + uuid.uuid4().hex[:10]


def make_account(org: Any, name: str, **fields: Any) -> str:
    """An Account created through the write path (Account is read-only over OData)."""
    results = org.records.create(org.admin_context(), "Account", [{"Name": name, **fields}])
    assert results[0].success, results[0].errors
    return str(results[0].id)


def make(org: Any, object_name: str, records: list[dict[str, Any]]) -> list[str]:
    """Records created through the write path; their ids."""
    results = org.records.create(org.admin_context(), object_name, records)
    assert all(r.success for r in results), [r.errors for r in results]
    return [str(r.id) for r in results]
