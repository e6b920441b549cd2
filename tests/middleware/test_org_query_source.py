"""``org.query``: the org-side extract by (SystemModstamp, Id) watermark, against a live org over TLS.

The boundary cases a timestamp extract gets wrong: many records sharing one SystemModstamp across a page
boundary, a restart between pages, and a record changed during the extract.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.orgapi import OrgConnection
from interlink.middleware.sources.org_query import OrgQuerySource, make_org_query_source
from interlink.testing import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture
def conn(live: LiveServer) -> Iterator[OrgConnection]:
    connection = OrgConnection.from_server_file(live.data_dir / "run" / "server.json", live.token())
    yield connection
    connection.close()


def _create(conn: OrgConnection, tag: str, count: int) -> list[str]:
    """``count`` Accounts in ONE collections call (one transaction: they share a SystemModstamp)."""
    results = conn.save("create", "Account", [{"Name": f"{tag} {n:03d}", "AccountNumber": tag} for n in range(count)])
    assert all(r.success for r in results), [r.errors for r in results if not r.success]
    return [str(r.id) for r in results]


def _source(conn: OrgConnection, tag: str, batch: int) -> OrgQuerySource:
    return OrgQuerySource(conn, object_name="Account", fields=["Name", "AccountNumber"],
                          where=f"AccountNumber = '{tag}'", batch=batch)


def test_records_sharing_a_timestamp_are_not_skipped_across_pages_or_restarts(conn: OrgConnection) -> None:
    tag = "oq" + uuid.uuid4().hex[:8]
    made = _create(conn, tag, 25)
    soql = f"SELECT SystemModstamp FROM Account WHERE AccountNumber = '{tag}'"
    stamps = {r["SystemModstamp"] for r in conn.query(soql)}
    assert len(stamps) == 1  # the hard case: one timestamp for every record
    source = _source(conn, tag, batch=10)
    source.open(None)
    first = source.read(10, 0)
    checkpoint = first[-1].position
    # a restart: a new source resumes after the checkpoint
    again = _source(conn, tag, batch=10)
    again.open(checkpoint)
    rest = []
    while True:
        page = again.read(10, 0)
        if not page:
            break
        rest += page
    assert again.exhausted
    seen = [m.body["Id"] for m in first + rest]
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 25
    assert [m.headers["operation"] for m in first] == ["upsert"] * 10


def test_a_record_changed_during_the_extract_is_read_again(conn: OrgConnection) -> None:
    tag = "oq" + uuid.uuid4().hex[:8]
    made = _create(conn, tag, 6)
    source = _source(conn, tag, batch=3)
    source.open(None)
    first = source.read(3, 0)
    early = first[0].body["Id"]
    conn.patch(f"sobjects/Account/{early}", {"Name": f"{tag} changed"})
    rest = []
    while page := source.read(3, 0):
        rest += page
    ids = [m.body["Id"] for m in first + rest]
    assert set(ids) == set(made) and ids.count(early) == 2  # at least once: the change moved it past the cursor
    assert rest[-1].body["Name"] == f"{tag} changed"


def test_deleted_records_come_with_include_deleted(conn: OrgConnection) -> None:
    tag = "oq" + uuid.uuid4().hex[:8]
    made = _create(conn, tag, 2)
    conn.delete(f"sobjects/Account/{made[0]}")
    source = OrgQuerySource(conn, object_name="Account", fields=["Name"], where=f"AccountNumber = '{tag}'",
                            include_deleted=True)
    source.open(None)
    operations = {m.body["Id"]: m.headers["operation"] for m in source.read(10, 0)}
    assert operations == {made[0]: "delete", made[1]: "upsert"}


def test_config_errors_are_clear() -> None:
    context = SimpleNamespace(connections={}, validating=False)
    with pytest.raises(PipelineSpecError, match="object"):
        make_org_query_source({"object": "Not an object"}, context)
    with pytest.raises(PipelineSpecError, match="start"):
        make_org_query_source({"object": "Account", "start": "yesterday"}, context)
    with pytest.raises(PipelineSpecError, match="connection"):
        make_org_query_source({"object": "Account"}, context)
