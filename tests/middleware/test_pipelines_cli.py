"""``interlink pipelines`` and ``interlink dlq`` on a temporary project, as a user drives them.

(Named test_pipelines_cli.py, not test_cli.py: tests/cli/test_cli.py exists and test folders are not packages.)
The project's ``pipelines/connectors.py`` registers a JSONL file source and an outbox sink that refuses "poison"
messages until a ``fixed`` file exists: the run, the dead letter, the fix and the replay all happen on disk.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interlink.cli.main import app
from interlink.middleware.store import MiddlewareStore

CONNECTORS = '''
import json
from pathlib import Path

from interlink.middleware.base import Delivery, Message, Sink, Source
from interlink.middleware.spec import option, register_sink, register_source


class JsonlSource(Source):
    def __init__(self, path):
        self.path = path

    def open(self, checkpoint):
        self.offset = int(checkpoint or 0)
        self.lines = self.path.read_text().splitlines()

    def read(self, max_messages, timeout):
        batch = self.lines[self.offset:self.offset + max_messages]
        messages = [Message(body=json.loads(line), id=f"line-{number}", position=number)
                    for number, line in enumerate(batch, start=self.offset + 1)]
        self.offset += len(batch)
        self.exhausted = self.offset >= len(self.lines)
        return messages


class Outbox(Sink):
    def __init__(self, path, fixed):
        self.path, self.fixed = path, fixed

    def write(self, messages):
        results = []
        for message in messages:
            if message.body.get("poison") and not self.fixed.exists():
                results.append(Delivery(error="rejected: poison", retryable=False))
                continue
            with self.path.open("a") as handle:
                handle.write(json.dumps(message.body) + "\\n")
            results.append(Delivery())
        return results


def _source(config, context):
    return JsonlSource(Path(context.project_dir) / option(config, "path", str))


def _sink(config, context):
    return Outbox(Path(context.project_dir) / option(config, "path", str), Path(context.project_dir) / "fixed")


register_source("test.jsonl", _source, keys={"path"}, replace=True)
register_sink("test.outbox", _sink, keys={"path"}, replace=True)
'''

ORDERS = """\
source: {type: test.jsonl, path: input.jsonl}
steps:
  - {type: map, fields: {amount: "amount * 2"}, keep: true}
  - {type: filter, when: "amount > 0"}
sink: {type: test.outbox, path: outbox.jsonl}
retry: {attempts: 2, backoff: 0s}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("INTERLINK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "pipelines").mkdir(parents=True)
    (folder / "pipelines" / "connectors.py").write_text(CONNECTORS)
    (folder / "pipelines" / "orders.yaml").write_text(ORDERS)
    lines = [{"id": 1, "amount": 5}, {"id": 2, "amount": 0}, {"id": 3, "amount": 7, "poison": True},
             {"id": 4, "amount": 1}]
    (folder / "input.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def outbox(project: Path) -> list[int]:
    path = project / "outbox.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


def test_validate_says_ok_or_names_file_and_line(project: Path) -> None:
    assert "ok     orders" in cli("pipelines", "validate", "--project-dir", str(project))
    (project / "pipelines" / "broken.yaml").write_text(textwrap.dedent("""\
        source: {type: test.jsonl, path: input.jsonl}
        steps:
          - type: filter
            when: "amount >"
        sink: {type: test.outbox, path: outbox.jsonl}
        """))
    (project / "pipelines" / "typo.yaml").write_text("source: {type: test.jsonl, path: x}\nsink: {type: outbx}\n")
    output = cli("pipelines", "validate", "--project-dir", str(project), code=2)
    assert "ok     orders" in output
    assert "broken.yaml:4: steps[0].when: bad expression 'amount >'" in output
    assert "typo.yaml:2: sink.type: unknown sink type 'outbx'" in output


def test_run_once_then_replay_a_dead_letter_after_the_fix(project: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    output = cli("pipelines", "run", "--once", "--project-dir", str(project), "--data-dir", data, code=1)
    assert "orders: Succeeded: read 4, written 2, filtered 1" in output and "dead-lettered 1" in output
    assert outbox(project) == [1, 4]

    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'data' / 'middleware.db'}") as store:
        (letter,) = store.dead_letters("orders")
    assert letter.id in cli("dlq", "list", "--data-dir", data)
    shown = json.loads(cli("dlq", "show", letter.id[:8], "--data-dir", data))
    assert shown["error"] == "rejected: poison" and shown["step"] == "sink"
    assert shown["message"]["body"] == {"id": 3, "amount": 14, "poison": True}

    listing = cli("pipelines", "list", "--project-dir", str(project), "--data-dir", data)
    assert "orders" in listing and "Succeeded: read 4, written 2, dead 1" in listing

    (project / "fixed").write_text("")
    assert f"{letter.id} replayed" in cli("dlq", "replay", letter.id, "--project-dir", str(project),
                                          "--data-dir", data)
    assert outbox(project) == [1, 4, 3]
    assert letter.id not in cli("dlq", "list", "--data-dir", data)
    assert "skipped: is Replayed" in cli("dlq", "replay", letter.id, "--project-dir", str(project),
                                         "--data-dir", data, code=1)
    # The checkpoint holds: running again reads nothing twice.
    assert "read 0, written 0" in cli("pipelines", "run", "--once", "--project-dir", str(project), "--data-dir", data)
    assert outbox(project) == [1, 4, 3]


def test_discard_and_unknown_names(project: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    cli("pipelines", "run", "orders", "--once", "--project-dir", str(project), "--data-dir", data, code=1)
    with MiddlewareStore.open_url(f"sqlite:///{tmp_path / 'data' / 'middleware.db'}") as store:
        (letter,) = store.dead_letters("orders")
    assert "Discarded 1" in cli("dlq", "discard", letter.id, "--data-dir", data)
    assert letter.id in cli("dlq", "list", "--state", "Discarded", "--data-dir", data)
    assert "skipped: is Discarded" in cli("dlq", "replay", letter.id, "--project-dir", str(project),
                                          "--data-dir", data, code=1)
    assert "no dead letter nope" in cli("dlq", "show", "nope", "--data-dir", data, code=1)
    assert "no pipeline named billing" in cli("pipelines", "run", "billing", "--once", "--project-dir",
                                              str(project), "--data-dir", data, code=2)


def test_an_unset_connection_variable_is_a_clean_error_not_a_traceback(tmp_path: Path) -> None:
    from interlink.testing import run_cli

    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / "connections.yaml").write_text("production:\n  url: ${IL_TEST_UNSET_VARIABLE}\n")
    (project / "pipelines" / "a.yaml").write_text(textwrap.dedent(f"""\
        name: a
        source: {{type: files, path: {tmp_path / 'in'}}}
        sinks:
          main: {{type: org.upsert, object: Account, externalId: Name}}
        """))
    result = run_cli("pipelines", "run", "--once", "--project-dir", str(project), "--data-dir", str(tmp_path / "d"),
                     check=False)
    assert result.returncode == 2
    assert "IL_TEST_UNSET_VARIABLE" in result.stderr and "Traceback" not in result.stderr
