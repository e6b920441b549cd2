"""The files sink: message bodies as JSONL lines or CSV rows in files of a folder, published atomically.

Rows are appended to a hidden temporary file (``.<name>.tmp`` in the same folder); the file is published by
``fsync`` and an atomic rename to ``<prefix>-<UTC time>-<n>.<jsonl|csv>`` when it reaches ``rotateBytes`` (if
set) or when the sink closes at the end of the run. Readers (and the files source, which skips hidden files)
therefore never see a partial file.

Each :meth:`FilesSink.write` flushes (and by default fsyncs) before it answers, so an acknowledged message is on
disk. If the process dies before the rename, the next run of the sink (at its first write or at its close)
publishes the leftover temporary file, cut back to its last complete line: nothing acknowledged is lost, and
nothing half-written is published.

CSV: the columns are ``columns`` if set, else the keys of the first message of each file; keys outside them are
ignored, nested values are written as JSON. Every write is ``ok``; a disk error is retryable.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from interlink.middleware.base import Delivery, Message, PipelineSpecError, Sink
from interlink.middleware.sources import require


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable (POSIX); not available everywhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FilesSink(Sink):
    """JSONL or CSV files in ``folder`` (see the module docstring)."""

    name = "files"

    def __init__(self, *, folder: Path, fmt: str = "jsonl", prefix: str = "messages",
                 rotate_bytes: int | None = None, columns: list[str] | None = None, fsync_writes: bool = True,
                 encoding: str = "utf-8") -> None:
        if fmt not in ("jsonl", "csv"):
            raise PipelineSpecError(f"files sink: format must be jsonl or csv, not {fmt!r}")
        self.folder = folder
        self.format = fmt
        self.prefix = prefix
        self.rotate_bytes = rotate_bytes
        self.columns = columns
        self.fsync_writes = fsync_writes
        self.encoding = encoding
        self.published: list[Path] = []
        self._handle: IO[str] | None = None
        self._temp: Path | None = None
        self._final: Path | None = None
        self._file_columns: list[str] | None = None
        self._counter = 0
        self._ready = False

    def _prepare(self) -> None:
        """Create the folder and publish leftovers, once, at the first write or close (factories do no I/O)."""
        if not self._ready:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._recover()
            self._ready = True

    def _temp_glob(self) -> str:
        return f".{self.prefix}-*.{self.format}.tmp"

    def _recover(self) -> None:
        """Publish the temporary files a previous run left behind (their rows were acknowledged)."""
        for temp in sorted(self.folder.glob(self._temp_glob())):
            data = temp.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):  # a line cut short by the crash was never acknowledged
                with temp.open("r+b") as handle:
                    handle.truncate(cut)
            if cut == 0 or (self.format == "csv" and data[:cut].count(b"\n") <= 1):
                temp.unlink()
                continue
            self._publish(temp, self.folder / temp.name[1:-len(".tmp")])

    def _new_file(self) -> None:
        self._counter += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{self.prefix}-{stamp}-{self._counter:04d}-{uuid.uuid4().hex[:6]}.{self.format}"
        self._final = self.folder / name
        self._temp = self.folder / f".{name}.tmp"
        self._handle = self._temp.open("w", encoding=self.encoding, newline="")
        self._file_columns = None

    def _rows_text(self, messages: Sequence[Message]) -> str:
        if self.format == "jsonl":
            return "".join(json.dumps(m.body, default=str, ensure_ascii=False) + "\n" for m in messages)
        buffer = io.StringIO()
        if self._file_columns is None:
            self._file_columns = list(self.columns or messages[0].body.keys())
            csv.writer(buffer, lineterminator="\n").writerow(self._file_columns)
        writer = csv.DictWriter(buffer, fieldnames=self._file_columns, extrasaction="ignore", lineterminator="\n")
        for message in messages:
            writer.writerow({key: _cell(value) for key, value in message.body.items()})
        return buffer.getvalue()

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """Append the bodies to the current file (flushed, fsynced), rotating it when it is big enough."""
        if not messages:
            return []
        try:
            self._prepare()
            if self._handle is None:
                self._new_file()
            assert self._handle is not None
            self._handle.write(self._rows_text(messages))
            self._handle.flush()
            if self.fsync_writes:
                os.fsync(self._handle.fileno())
            file_name = self._final.name if self._final else ""
            if self.rotate_bytes and self._handle.tell() >= self.rotate_bytes:
                self._close_file()
        except OSError as exc:
            return [Delivery(error=f"cannot write to {self.folder}: {exc}", retryable=True) for _ in messages]
        return [Delivery(detail=file_name) for _ in messages]

    def _publish(self, temp: Path, final: Path) -> None:
        os.replace(temp, final)
        _fsync_dir(self.folder)
        self.published.append(final)

    def _close_file(self) -> None:
        if self._handle is None or self._temp is None or self._final is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        self._publish(self._temp, self._final)
        self._temp = self._final = None

    def close(self) -> None:
        """Publish the current file (fsync, then atomic rename)."""
        with contextlib.suppress(OSError):
            self._prepare()
        self._close_file()


def make_files_sink(config: dict[str, Any], context: Any) -> FilesSink:
    """Build a files sink from its pipeline config (keys in docs/middleware-connectors.md)."""
    folder = Path(str(require(config, "folder", "files sink"))).expanduser()
    project_dir = getattr(context, "project_dir", None)
    if not folder.is_absolute() and project_dir:
        folder = Path(project_dir) / folder
    rotate = config.get("rotateBytes")
    columns = config.get("columns")
    return FilesSink(
        folder=folder,
        fmt=str(config.get("format", "jsonl")),
        prefix=str(config.get("prefix") or getattr(context, "pipeline", None) or "messages"),
        rotate_bytes=int(rotate) if rotate else None,
        columns=[str(c) for c in columns] if columns else None,
        fsync_writes=bool(config.get("fsync", True)),
        encoding=str(config.get("encoding", "utf-8")),
    )


__all__ = ["FilesSink", "make_files_sink"]
