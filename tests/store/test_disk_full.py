"""The disk under the embedded store fills up: writes fail cleanly with 507 ``STORAGE_LIMIT_EXCEEDED`` (not a 500
traceback), nothing stored before is lost or corrupted, and writes work again once space is freed.

The org's data directory is on a small tmpfs of the test's own (skipped when mounting is not permitted); a filler
file takes all but a little of its space, and records with large descriptions use up the rest.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from faults import free_bytes, tmpfs
from interlink.testing import local_org, rest_client

API = "/services/data/v66.0"
DESCRIPTION = "x" * 30_000  # about eight pages of the database per record


def assert_storage_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    (error,) = response.json()
    assert error["errorCode"] == "STORAGE_LIMIT_EXCEEDED", error
    assert "full" in error["message"]


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_full_disk_fails_writes_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        database = disk / "org" / "org.db"
        with local_org(disk / "org") as org:
            client = rest_client(org)
            filler = disk / "filler"  # all but 512 KB: freed below
            filler.write_bytes(b"\0" * max(0, free_bytes(disk) - 512 * 1024))

            stored: list[str] = []
            for index in range(200):
                response = client.post(f"{API}/sobjects/Account/", json={"Name": f"Full {index}",
                                                                        "Description": DESCRIPTION})
                if response.status_code != 201:
                    break
                stored.append(response.json()["id"])
            else:
                raise AssertionError("200 large records fitted in 512 KB: the disk never filled up")
            assert_storage_full(response)
            assert stored, "not even one record fitted before the disk was full"

            # Still full: an all-or-none batch fails as a whole, and reads keep working.
            batch = [{"attributes": {"type": "Account"}, "Name": f"Batch {index}", "Description": DESCRIPTION}
                     for index in range(5)]
            assert_storage_full(client.post(f"{API}/composite/sobjects", json={"allOrNone": True, "records": batch}))
            query = "SELECT Id FROM Account WHERE Name LIKE 'Full %' OR Name LIKE 'Batch %'"
            found = client.get(f"{API}/query", params={"q": query})
            assert found.status_code == 200, found.text
            assert sorted(record["Id"] for record in found.json()["records"]) == sorted(stored)
            assert integrity(database) == "ok"

            filler.unlink()
            again = client.post(f"{API}/sobjects/Account/", json={"Name": "After", "Description": DESCRIPTION})
            assert again.status_code == 201, again.text
            client.close()

        # Closed (checkpointed) and opened again: everything acknowledged is there, intact.
        assert integrity(database) == "ok"
        with local_org(disk / "org") as reopened:
            client = rest_client(reopened)
            for record_id in [*stored, again.json()["id"]]:
                record = client.get(f"{API}/sobjects/Account/{record_id}", params={"fields": "Description"})
                assert record.status_code == 200 and record.json()["Description"] == DESCRIPTION
            assert client.get(f"{API}/query", params={"q": query}).json()["totalSize"] == len(stored)
            client.close()
