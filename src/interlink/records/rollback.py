"""The control-flow signal that undoes a savepoint inside the records pipeline (never leaves the layer)."""

from __future__ import annotations

from interlink.errors import InterlinkError


class RollBack(Exception):
    """Undo a savepoint; carries the indexes of the records that caused it and their errors."""

    def __init__(self, failed: dict[int, list[InterlinkError]]) -> None:
        super().__init__("rollback")
        self.failed = failed
