"""The files source (resume at the line, processed files moved) and the files sink (atomic publication)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from interlink.middleware.base import Message
from interlink.middleware.sinks.files import FilesSink, make_files_sink
from interlink.middleware.sources.files import FilesSource, make_files_source


def context(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(pipeline="loads", project_dir=tmp_path, store=None, connections={})


def source(tmp_path: Path, checkpoint: Any = None, **config: Any) -> FilesSource:
    opened = make_files_source({"folder": "inbox", "pattern": "*.*", **config}, context(tmp_path))
    opened.open(json.loads(json.dumps(checkpoint)) if checkpoint is not None else None)
    return opened


def drain(opened: FilesSource, batch: int = 100) -> list[Message]:
    read: list[Message] = []
    for _ in range(1000):
        got = opened.read(batch, 0.0)
        if not got:
            break
        read.extend(got)
    assert opened.exhausted
    return read


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a-accounts.csv").write_text("Name,City\nAcme,Paris\n\"Globex, Inc.\",\"New\nYork\"\nInitech,Austin\n")
    (folder / "b-events.jsonl").write_text('{"n": 1}\n\n{"n": 2}\n{"n": 3}\n')
    return folder


def remaining(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_rows_and_objects_become_messages_and_done_files_move_to_processed(tmp_path: Path, inbox: Path) -> None:
    files = source(tmp_path)
    read = drain(files)
    assert [m.body for m in read] == [
        {"Name": "Acme", "City": "Paris"}, {"Name": "Globex, Inc.", "City": "New\nYork"},
        {"Name": "Initech", "City": "Austin"}, {"n": 1}, {"n": 2}, {"n": 3}]
    assert [m.id for m in read] == ["a-accounts.csv:1", "a-accounts.csv:2", "a-accounts.csv:3",
                                    "b-events.jsonl:1", "b-events.jsonl:3", "b-events.jsonl:4"]
    assert read[4].position == {"file": "b-events.jsonl", "line": 3}
    assert remaining(inbox) == ["a-accounts.csv", "b-events.jsonl"]  # nothing moves before it is acknowledged
    files.acknowledge(read[3].position)  # the batch reached into the second file: the first is done
    assert remaining(inbox) == ["b-events.jsonl"]
    assert remaining(inbox / "processed") == ["a-accounts.csv"]
    files.acknowledge(read[-1].position)
    assert remaining(inbox) == []
    assert remaining(inbox / "processed") == ["a-accounts.csv", "b-events.jsonl"]
    files.close()


def test_a_half_processed_file_resumes_at_its_line_after_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "big.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(1, 11)))
    first = source(tmp_path)
    batch = first.read(4, 0.0)
    first.acknowledge(batch[-1].position)
    checkpoint = batch[-1].position
    first.read(3, 0.0)  # read but never acknowledged: the worker dies here
    first.close()
    assert remaining(folder) == ["big.jsonl"]

    second = source(tmp_path, checkpoint)
    rest = drain(second, batch=4)
    assert [m.body["n"] for m in rest] == [5, 6, 7, 8, 9, 10]
    second.acknowledge(rest[-1].position)
    assert remaining(folder / "processed") == ["big.jsonl"]
    second.close()


def test_a_file_done_but_not_moved_before_a_crash_is_moved_without_being_read_again(tmp_path: Path,
                                                                                      inbox: Path) -> None:
    third = source(tmp_path, {"file": "a-accounts.csv", "line": 3})
    read = drain(third)
    assert [m.headers["file"] for m in read] == ["b-events.jsonl"] * 3
    assert remaining(inbox / "processed") == ["a-accounts.csv"]
    third.close()


def test_after_delete_json_arrays_and_unparseable_lines(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "1.json").write_text('[{"a": 1}, {"a": 2}]')
    (folder / "2.jsonl").write_text('{"ok": true}\n{not json\n')
    files = source(tmp_path, after="delete")
    read = drain(files)
    assert [m.body for m in read] == [{"a": 1}, {"a": 2}, {"ok": True}, {"raw": "{not json"}]
    assert "parse_error" in read[-1].headers
    files.acknowledge(read[-1].position)
    assert remaining(folder) == [] and not (folder / "processed").exists()


def test_files_arriving_during_the_run_are_read_and_hidden_files_are_not(tmp_path: Path, inbox: Path) -> None:
    (inbox / ".c-partial.csv.tmp").write_text("Name\nhalf")
    files = source(tmp_path)
    assert len(files.read(3, 0.0)) == 3
    (inbox / "c-late.csv").write_text("Name\nLate\n")
    names = [m.headers["file"] for m in drain(files)]
    assert names == ["b-events.jsonl"] * 3 + ["c-late.csv"]


def test_the_sink_publishes_complete_files_only_and_rotates_by_size(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = make_files_sink({"folder": "out", "rotateBytes": 60}, context(tmp_path))
    deliveries = sink.write([Message(body={"n": n, "text": "x" * 10}) for n in range(3)])
    assert all(d.ok for d in deliveries)
    assert [p for p in out.iterdir() if not p.name.startswith(".")] != []  # 3 rows > 60 bytes: rotated
    sink.write([Message(body={"n": 3})])
    visible = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert len(visible) == 1  # the second file is still being written, under a hidden name
    sink.close()
    visible = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert len(visible) == 2 and all(p.name.startswith("loads-") and p.suffix == ".jsonl" for p in visible)
    rows = [json.loads(line) for p in visible for line in p.read_text().splitlines()]
    assert sorted(r["n"] for r in rows) == [0, 1, 2, 3]
    assert not list(out.glob(".*"))

    # What the sink wrote is what the files source reads.
    reader = make_files_source({"folder": "out", "pattern": "*.jsonl"}, context(tmp_path))
    reader.open(None)
    assert sorted(m.body["n"] for m in drain(reader)) == [0, 1, 2, 3]


def test_the_csv_sink_writes_a_header_and_the_configured_columns(tmp_path: Path) -> None:
    sink = make_files_sink({"folder": "out", "format": "csv", "columns": ["Id", "Tags"]}, context(tmp_path))
    sink.write([Message(body={"Id": "001", "Tags": ["a", "b"], "Other": 1}), Message(body={"Id": "002"})])
    sink.close()
    [published] = sink.published
    assert published.read_text() == 'Id,Tags\n001,"[""a"", ""b""]"\n002,\n'


def test_an_unclosed_file_left_by_a_crash_is_published_by_the_next_run(tmp_path: Path) -> None:
    crashed = FilesSink(folder=tmp_path / "out", prefix="job")
    crashed.write([Message(body={"n": 1}), Message(body={"n": 2})])
    assert crashed._temp is not None
    with crashed._temp.open("a") as handle:  # the process died in the middle of the next write
        handle.write('{"n": 3, "tr')
    next_run = FilesSink(folder=tmp_path / "out", prefix="job")
    next_run.close()  # a run that had nothing to write still publishes what the crashed one left
    [published] = next_run.published
    assert [json.loads(line)["n"] for line in published.read_text().splitlines()] == [1, 2]
    assert not list((tmp_path / "out").glob(".*"))
