"""Per-record outcomes of DML, as the platform's SaveResult / UpsertResult / DeleteResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlink.errors import InterlinkError


@dataclass
class SaveResult:
    """The outcome for one record: an id on success, the errors otherwise."""

    id: str | None = None
    errors: list[InterlinkError] = field(default_factory=list)
    created: bool | None = None
    # Informational statuses reported beside success (a published event's OPERATION_ENQUEUED + its uuid).
    notices: list[InterlinkError] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.errors

    def to_wire(self, *, with_created: bool = False) -> dict[str, Any]:
        """The JSON the REST API and collections answer with (errors use ``statusCode``)."""
        body: dict[str, Any] = {}
        if self.id is not None:
            body["id"] = self.id
        body["success"] = self.success
        body["errors"] = [error.to_save_error() for error in self.errors or self.notices]
        if with_created and self.created is not None:
            body["created"] = self.created
        return body
