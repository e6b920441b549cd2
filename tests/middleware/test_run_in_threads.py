"""Ctrl-C on ``run_in_threads``: a real SIGINT sent to a process running pipelines in threads. The runners stop after
their current batch (nothing written is left uncheckpointed) and report Stopped; a runner that does not stop is left
behind after the bound; a second Ctrl-C gives up waiting. The timeouts below only guard against a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")

SCRIPT = textwrap.dedent('''
    import json, logging, sys, threading, time

    from interlink.middleware.base import Delivery, Message, Sink, Source
    from interlink.middleware.runtime import PipelineRunner, run_in_threads
    from interlink.middleware.spec import Pipeline
    from interlink.middleware.store import MiddlewareStore

    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="log %(message)s")
    store_url, hang_on_write, stop_timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

    class Endless(Source):
        def __init__(self):
            self.n = 0
        def open(self, checkpoint):
            self.n = int(checkpoint or 0)
        def read(self, max_messages, timeout):
            batch = [Message(body={"n": self.n + i + 1}, id=f"m{self.n + i + 1}", position=self.n + i + 1)
                     for i in range(max_messages)]
            self.n += max_messages
            return batch

    class Slow(Sink):
        """Each write takes a while (write number `hang_on` never returns); says when a write starts."""
        def __init__(self, label, hang_on):
            self.label, self.hang_on = label, hang_on
            self.calls = 0
            self.written = 0
        def write(self, messages):
            self.calls += 1
            print("writing", self.label, self.calls, flush=True)
            if self.calls == self.hang_on:
                threading.Event().wait()
            time.sleep(0.3)
            self.written += len(messages)
            return [Delivery() for _ in messages]

    sinks = [Slow("p0", hang_on_write), Slow("p1", 0)]  # only p0 may hang
    with MiddlewareStore.open_url(store_url) as store:
        runners = [PipelineRunner(Pipeline(name=f"p{index}", source=Endless(), steps=[
                                      {"type": "dedupe", "key": "$id"}], sink=sink, batch=5), store)
                   for index, sink in enumerate(sinks)]
        try:
            reports = run_in_threads(runners, stop_timeout=stop_timeout)
        except KeyboardInterrupt:
            print("raised KeyboardInterrupt", flush=True)
            sys.exit(130)
        checkpoints = {runner.name: getattr(store.load_checkpoint(runner.name), "position", None)
                       for runner in runners}
        print("result " + json.dumps({
            "reports": {name: {"status": report.status, "error": report.error, "written": report.written}
                        for name, report in reports.items()},
            "written": [sink.written for sink in sinks], "checkpoints": [checkpoints["p0"], checkpoints["p1"]],
            "alive": sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("pipeline-"))}),
            flush=True)
''')


class Child:
    """The script above in a subprocess, its output read line by line."""

    def __init__(self, tmp_path: Path, *, hang_on_write: int = 0, stop_timeout: float = 30.0) -> None:
        script = tmp_path / "run_pipelines.py"
        script.write_text(SCRIPT)
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(script), f"sqlite:///{tmp_path / 'mw.db'}", str(hang_on_write), str(stop_timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_for(self, prefix: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line
        self.process.wait(5)
        raise AssertionError(f"no line starting {prefix!r}:\n" + "\n".join(self.lines))

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> int:
        try:
            rest, _ = self.process.communicate(timeout=90)  # a hang guard, far above the normal seconds
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise AssertionError("the process hung after Ctrl-C:\n" + "\n".join(self.lines)) from None
        self.lines += rest.splitlines()
        return self.process.returncode

    def result(self) -> dict[str, Any]:
        found = [line for line in self.lines if line.startswith("result ")]
        assert found, "\n".join(self.lines)
        return json.loads(found[-1].removeprefix("result "))  # type: ignore[no-any-return]


def test_ctrl_c_stops_every_runner_after_its_current_batch(tmp_path: Path) -> None:
    child = Child(tmp_path)
    child.wait_for("writing p0 2")  # both runners are busy; the main thread waits for them
    child.interrupt()
    assert child.finish() == 0, "\n".join(child.lines)
    result = child.result()
    assert set(result["reports"]) == {"p0", "p1"}
    assert {report["status"] for report in result["reports"].values()} == {"Stopped"}
    # The batch being written when Ctrl-C arrived was finished and checkpointed: nothing was abandoned mid-batch.
    assert result["written"] == [checkpoint or 0 for checkpoint in result["checkpoints"]]
    assert sum(result["written"]) >= 10 and all(written % 5 == 0 for written in result["written"])
    assert [report["written"] for report in (result["reports"]["p0"], result["reports"]["p1"])] == result["written"]
    assert result["alive"] == []
    assert any("interrupted: stopping 2 pipeline(s)" in line for line in child.lines)


def test_a_runner_that_does_not_stop_is_left_behind_after_the_bound(tmp_path: Path) -> None:
    child = Child(tmp_path, hang_on_write=2, stop_timeout=5)
    child.wait_for("writing p0 2")  # p0's second write never returns
    child.interrupt()
    assert child.finish() == 0, "\n".join(child.lines)
    result = child.result()
    reports = result["reports"]
    assert (reports["p0"]["status"], reports["p0"]["error"]) == ("Failed", "did not stop within 5s of Ctrl-C")
    assert (reports["p1"]["status"], reports["p1"]["error"]) == ("Stopped", None)
    # The hung runner's batch was never checkpointed: the next run reads it again.
    assert result["written"][0] == 5 and result["checkpoints"][0] == 5
    assert any("did not stop within 5s" in line for line in child.lines)


def test_a_second_ctrl_c_stops_waiting(tmp_path: Path) -> None:
    child = Child(tmp_path, hang_on_write=2, stop_timeout=600)
    child.wait_for("writing p0 2")
    child.interrupt()
    child.wait_for("log interrupted: stopping")
    child.interrupt()
    assert child.finish() == 130, "\n".join(child.lines)
    assert "raised KeyboardInterrupt" in child.lines
    assert any("interrupted again" in line for line in child.lines)
