"""examples/sync: the nightly prospect import (SQL -> Leads, Bulk API 2.0, watermark restart point, error rows)
and the weekly activity export (Tasks -> warehouse table), run with `interlink sync` against a live org."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from interlink.middleware.orgapi import OrgConnection
from interlink.middleware.store import MiddlewareStore
from interlink.testing import live_server, run_cli

pytestmark = pytest.mark.live

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sync"


def _make_db() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_sync_make_source_db", EXAMPLE / "make_source_db.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prospect_import_and_activity_export(tmp_path: Path) -> None:
    data_dir = tmp_path / "org"
    shutil.copytree(EXAMPLE / "metadata", data_dir / "metadata")
    shutil.copytree(EXAMPLE / "pipelines", data_dir / "pipelines")
    prospects, warehouse = tmp_path / "prospects.db", tmp_path / "warehouse.db"
    make_db = _make_db()
    make_db.create(str(prospects), 2500)
    with sqlite3.connect(prospects) as db:  # one bad prospect: no usable email
        db.execute("UPDATE prospects SET email = 'not an email' WHERE id = 7")
    env = {"PROSPECTS_DB": str(prospects), "WAREHOUSE_DB": str(warehouse), "INTERLINK_PROJECT_DIR": str(data_dir)}
    with live_server(data_dir, env=env) as server:
        args = ("--data-dir", str(data_dir), "--project-dir", str(data_dir))
        first = run_cli("sync", "run", "prospect-import", *args, env=env, check=False)
        assert first.returncode == 1, first.stderr  # one error row
        org = OrgConnection.from_server_file(data_dir / "run" / "server.json", server.token())
        try:
            leads = list(org.query("SELECT External_Id__c FROM Lead WHERE External_Id__c LIKE 'P-%'"))
            assert len(leads) == 2499 and "P-7" not in {r["External_Id__c"] for r in leads}
            with MiddlewareStore.open_url(f"sqlite:///{data_dir / 'middleware.db'}") as store:
                (letter,) = store.dead_letters("prospect-import")
                assert "email" in letter.error and letter.message.body["id"] == 7
                checkpoint = store.load_checkpoint("prospect-import")
                assert checkpoint is not None and checkpoint.position["id"] == 2500
            # the marketing tool fixes the prospect and changes 5 others: only those 6 are read next time
            with sqlite3.connect(prospects) as db:
                db.execute("UPDATE prospects SET email = 'fixed@example.com', updated_at = '2027-01-01 00:00:00' "
                           "WHERE id = 7")
            make_db.touch(str(prospects), 5)
            second = run_cli("sync", "run", "prospect-import", *args, env=env, check=False)
            assert second.returncode == 0, second.stderr
            with MiddlewareStore.open_url(f"sqlite:///{data_dir / 'middleware.db'}") as store:
                latest = store.runs("prospect-import", limit=1)[0]
                assert (latest.read, latest.written, latest.dead) == (6, 6, 0)
            assert org.get("query", q="SELECT Id FROM Lead WHERE External_Id__c = 'P-7'")["totalSize"] == 1
            # the weekly export runs its dependency first, then copies Tasks to the warehouse
            lead = org.get("query", q="SELECT Id FROM Lead WHERE External_Id__c = 'P-1'")["records"][0]["Id"]
            made = org.save("create", "Task", [{"Subject": f"Call {n}", "Status": "Completed", "WhoId": lead,
                                                 "Priority": "Normal"} for n in range(3)])
            assert all(r.success for r in made)
            exported = run_cli("sync", "run", "activity-export", *args, env=env, check=False)
            assert exported.returncode == 0, exported.stderr
            with sqlite3.connect(warehouse) as db:
                rows = db.execute("SELECT subject, status, is_deleted FROM activities ORDER BY subject").fetchall()
            assert [r for r in rows if r[0].startswith("Call ")] == [
                ("Call 0", "Completed", 0), ("Call 1", "Completed", 0), ("Call 2", "Completed", 0)]
            status = run_cli("sync", "status", *args, env=env)
            assert "prospect-import" in status.stdout and "activity-export" in status.stdout
        finally:
            org.close()
