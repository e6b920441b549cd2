"""The connectors as a pipeline YAML uses them: registered by type, configuration checked by key, and run by the
runtime (files -> SQL upsert, then SQL extract -> files), including a restart that resumes from the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlink.middleware.base import PipelineSpecError
from interlink.middleware.runtime import PipelineRunner
from interlink.middleware.spec import BuildContext, build_pipeline, load_pipeline_text, registered
from interlink.middleware.store import MiddlewareStore

LOAD = """
name: accounts-load
source: {type: files, folder: inbox, pattern: "*.csv"}
sink: {type: sql, url: "sqlite:///{db}", table: accounts, keys: [Code],
       columns: {Code: string, Name: string, City: string}}
batch: 2
"""

EXTRACT = """
name: accounts-extract
source: {type: sql, url: "sqlite:///{db}", table: accounts, watermark: seq, id: Code, batchSize: 2}
sink: {type: files, folder: outbox, format: jsonl}
batch: 2
"""


def test_every_connector_is_registered_with_its_keys() -> None:
    assert {"webhook", "sql", "files", "nats", "schedule"} <= set(registered("source"))
    assert {"http", "sql", "files", "nats"} <= set(registered("sink"))
    assert "catchUp" in (registered("source")["schedule"].keys or ())


def test_a_misspelt_key_is_refused_with_its_line(tmp_path: Path) -> None:
    pipeline = load_pipeline_text("name: t\nsource: {type: schedule, cron: '* * * * *', catchup: true}\n"
                                  "sink: {type: files, folder: out}\n")
    store = MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}")
    with pytest.raises(PipelineSpecError, match="catchup"):
        build_pipeline(pipeline, BuildContext(store=store, pipeline="t", project_dir=tmp_path))
    store.close()


def test_files_to_sql_and_back_through_the_runtime(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "2024-05-01.csv").write_text("Code,Name,City\nA1,Acme,Paris\nB2,Globex,Berlin\nC3,Initech,Austin\n")
    (inbox / "2024-05-02.csv").write_text("Code,Name,City\nA1,Acme SA,Lyon\n")
    db = tmp_path / "target.db"
    store = MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'mw.db'}")
    try:
        load = load_pipeline_text(LOAD.replace("{db}", str(db)))
        report = PipelineRunner(load, store, project_dir=tmp_path).run(once=True)
        assert report.status == "Succeeded" and report.written == 4 and report.dead_lettered == 0
        assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["2024-05-01.csv", "2024-05-02.csv"]
        assert store.load_checkpoint("accounts-load").position == {"file": "2024-05-02.csv", "line": 1}

        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.begin() as conn:
            assert dict(conn.execute(sa.text("SELECT Code, City FROM accounts")).all()) == {
                "A1": "Lyon", "B2": "Berlin", "C3": "Austin"}
            conn.execute(sa.text("ALTER TABLE accounts ADD COLUMN seq INTEGER"))
            conn.execute(sa.text("UPDATE accounts SET seq = 1"))  # one watermark shared by every row
        engine.dispose()

        extract = load_pipeline_text(EXTRACT.replace("{db}", str(db)))
        report = PipelineRunner(extract, store, project_dir=tmp_path).run(once=True)
        assert report.status == "Succeeded" and report.written == 3
        assert store.load_checkpoint("accounts-extract").position == {"watermark": 1, "id": "C3"}
        # A second run has nothing new: the checkpoint holds, no file is written.
        report = PipelineRunner(extract, store, project_dir=tmp_path).run(once=True)
        assert report.read == 0
        [published] = list((tmp_path / "outbox").glob("*.jsonl"))
        rows = [json.loads(line) for line in published.read_text().splitlines()]
        assert [row["Code"] for row in rows] == ["A1", "B2", "C3"]
    finally:
        store.close()
