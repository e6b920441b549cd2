"""The files source: rows of CSV files and objects of JSON / JSONL files matching a glob in a folder.

Files are read one at a time in name order (name them so that they sort in arrival order, e.g. with a
timestamp), one message per CSV row (a dict keyed by the header), JSONL line or element of a JSON array (a
JSON file holding a single object is one message).

Positions are ``{"file": <path relative to the folder>, "line": <n>}``: the data row number for CSV (1 = the
first row after the header), the physical line for JSONL, the element index (from 1) for JSON. The message id
is ``<file>:<line>``. After a restart from a checkpoint the checkpoint's file resumes after its line; files
that sort before it and are still in the folder are read again (they are either new, or were fully processed
just before a crash and not yet moved: at least once).

:meth:`FilesSource.acknowledge` moves each file whose every row is acknowledged to ``processed/`` (keeping its
relative path, adding a suffix if the name is taken) or deletes it (``after: delete``). The source is
exhausted when no unread file is left (a new scan of the glob finds none). A JSONL line that is not valid
JSON becomes a message with body ``{"raw": <line>}`` and a ``parse_error`` header, for a route or filter to
send to the dead letters, rather than stopping the pipeline or vanishing.

Writers should write under another name and rename into place, so a half-written file is never picked up.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.sources import require

log = logging.getLogger(__name__)

FORMATS = ("csv", "json", "jsonl")

Row = tuple[int, dict[str, Any], dict[str, Any]]  # (line, body, extra headers)


def detect_format(path: Path, configured: str) -> str:
    """The format of ``path``: the configured one, or from its extension when ``auto``."""
    if configured != "auto":
        return configured
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("ndjson", "jsonl"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise PipelineSpecError(f"files source: cannot tell the format of {path.name}; set 'format'")


def iter_rows(path: Path, fmt: str, *, encoding: str = "utf-8", delimiter: str = ",") -> Iterator[Row]:
    """Every row of ``path`` as (line, body, extra headers)."""
    if fmt == "csv":
        with path.open(newline="", encoding=encoding) as handle:
            for number, row in enumerate(csv.DictReader(handle, delimiter=delimiter), start=1):
                yield number, dict(row), {}
    elif fmt == "jsonl":
        with path.open(encoding=encoding) as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield number, {"raw": text}, {"parse_error": str(exc)}
                    continue
                yield number, value if isinstance(value, dict) else {"value": value}, {}
    else:
        value = json.loads(path.read_text(encoding=encoding))
        items = value if isinstance(value, list) else [value]
        for number, item in enumerate(items, start=1):
            yield number, item if isinstance(item, dict) else {"value": item}, {}


class FilesSource(Source):
    """Rows of the files matching ``pattern`` under ``folder``, file by file (see the module docstring)."""

    name = "files"

    def __init__(self, *, folder: Path, pattern: str, fmt: str = "auto", after: str = "move",
                 processed_folder: str = "processed", encoding: str = "utf-8", delimiter: str = ",") -> None:
        if fmt not in (*FORMATS, "auto"):
            raise PipelineSpecError(f"files source: unknown format {fmt!r} (csv, json, jsonl or auto)")
        if after not in ("move", "delete"):
            raise PipelineSpecError(f"files source: 'after' must be move or delete, not {after!r}")
        self.folder = folder
        self.pattern = pattern
        self.format = fmt
        self.after = after
        self.processed = folder / processed_folder
        self.encoding = encoding
        self.delimiter = delimiter
        self._order: list[str] = []  # files handed out (or being read) this run, in order
        self._started: set[str] = set()
        self._rows: Iterator[Row] | None = None
        self._current: str | None = None
        self._current_line = 0  # the line of the current file's last row read
        self._last_line: dict[str, int] = {}  # file -> its last row's line, once read to the end
        self._acked: dict[str, int] = {}  # file -> the last acknowledged line
        self._skip: dict[str, int] = {}  # from the checkpoint: file -> rows up to this line are done

    def open(self, checkpoint: Any | None) -> None:
        """Resume after ``checkpoint`` (its file continues after its line)."""
        if not self.folder.is_dir():
            raise PipelineSpecError(f"files source: folder {self.folder} does not exist")
        if checkpoint:
            self._skip = {str(checkpoint["file"]): int(checkpoint["line"])}
        self.exhausted = False

    def _unread_files(self) -> list[str]:
        found = []
        for path in self.folder.glob(self.pattern):
            if not path.is_file() or path.is_relative_to(self.processed) or path.name.startswith("."):
                continue
            relative = path.relative_to(self.folder).as_posix()
            if relative not in self._started:
                found.append(relative)
        return sorted(found)

    def _next_file(self) -> bool:
        """Start the next unread file; False when there is none."""
        for relative in self._unread_files():
            self._started.add(relative)
            try:
                fmt = detect_format(self.folder / relative, self.format)
            except PipelineSpecError:
                log.warning("files source: skipping %s (unknown format)", relative)
                continue
            self._order.append(relative)
            self._current = relative
            self._current_line = 0
            self._rows = iter_rows(self.folder / relative, fmt, encoding=self.encoding, delimiter=self.delimiter)
            return True
        return False

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` rows, continuing into the next files; [] and :attr:`exhausted` at the end."""
        messages: list[Message] = []
        while len(messages) < max(1, max_messages):
            if self._rows is None and not self._next_file():
                break
            assert self._rows is not None and self._current is not None
            relative = self._current
            skip = self._skip.get(relative, 0)
            try:
                line, body, extra = next(self._rows)
            except StopIteration:
                self._end_of_file(relative)
                continue
            except (OSError, ValueError, csv.Error) as exc:
                # An unreadable file stays where it is (not moved, not lost) and the run goes on without it.
                log.error("files source: cannot read %s: %s", relative, exc)
                self._rows, self._current = None, None
                self._order.remove(relative)
                continue
            self._current_line = line
            if line <= skip:
                continue
            position = {"file": relative, "line": line}
            messages.append(Message(body=body, id=f"{relative}:{line}", position=position,
                                    headers={"file": relative, "line": line, **extra}))
        self.exhausted = not messages
        return messages

    def _end_of_file(self, relative: str) -> None:
        last = self._current_line
        self._rows, self._current, self._current_line = None, None, 0
        self._last_line[relative] = last
        # Nothing of it is pending (empty, or every row done before the restart): it is done now.
        if last <= self._skip.get(relative, 0) or last <= self._acked.get(relative, 0):
            self._finish(relative)

    def acknowledge(self, position: Any) -> None:
        """Everything up to ``position`` is done: move (or delete) the files that are done completely."""
        if not position:
            return
        relative, line = str(position["file"]), int(position["line"])
        if relative not in self._order:
            return
        self._acked[relative] = max(line, self._acked.get(relative, 0))
        for earlier in list(self._order[:self._order.index(relative)]):
            if earlier in self._last_line:
                self._finish(earlier)
        if relative in self._last_line and line >= self._last_line[relative]:
            self._finish(relative)

    def _finish(self, relative: str) -> None:
        path = self.folder / relative
        if relative in self._order:
            self._order.remove(relative)
        self._last_line.pop(relative, None)
        self._acked.pop(relative, None)
        if not path.exists():
            return
        if self.after == "delete":
            path.unlink()
            return
        target = self.processed / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(f"{target.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
                                      f"{target.suffix}")
        shutil.move(str(path), str(target))

    def close(self) -> None:
        """Stop reading (a half-read file stays in place; the checkpoint resumes it)."""
        self._rows, self._current = None, None


def make_files_source(config: dict[str, Any], context: Any) -> FilesSource:
    """Build a files source from its pipeline config (keys in docs/middleware-connectors.md)."""
    folder = Path(str(require(config, "folder", "files source"))).expanduser()
    project_dir = getattr(context, "project_dir", None)
    if not folder.is_absolute() and project_dir:
        folder = Path(project_dir) / folder
    return FilesSource(
        folder=folder,
        pattern=str(config.get("pattern", "*.csv")),
        fmt=str(config.get("format", "auto")),
        after=str(config.get("after", "move")),
        processed_folder=str(config.get("processedFolder", "processed")),
        encoding=str(config.get("encoding", "utf-8")),
        delimiter=str(config.get("delimiter", ",")),
    )


__all__ = ["FilesSource", "detect_format", "iter_rows", "make_files_source"]
