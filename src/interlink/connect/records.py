"""External-object rows through the records service: retrieve, create, update and delete by record Id.

The records service validates an external object's values like any other (names, types, lengths, required) and
then hands the writes here instead of to a table. A remote system is not part of the org's transaction: each row
is written when the call reaches it, so ``allOrNone`` cannot roll back rows a source has already accepted (the
platform makes the same trade, which is why its writes to external objects are asynchronous from Apex). A call
with ``allOrNone`` and an invalid record therefore writes nothing; a remote failure part-way reports per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interlink.connect.service import ExternalData, external_record_id
from interlink.errors import (
    DmlError,
    ExternalObjectUnsupported,
    InterlinkError,
    NotFoundError,
    all_or_none_rolled_back,
)
from interlink.metadata.model import FieldDef, ObjectDef
from interlink.records.context import Context
from interlink.records.results import SaveResult


class ExternalRecords:
    """The records service's handler for external objects (``RecordService.external``)."""

    def __init__(self, data: ExternalData) -> None:
        self.data = data

    def retrieve(self, obj: ObjectDef, record_ids: Sequence[str],
                 fields: Sequence[str] | None) -> list[dict[str, Any] | None]:
        rows = self.data.retrieve(obj, record_ids, fields)
        return [rows.get(record_id) for record_id in record_ids]

    def find(self, obj: ObjectDef, fdef: FieldDef, values: Sequence[Any]) -> dict[Any, list[str]]:
        """Record Ids whose ``fdef`` holds each value (REST ``sobjects/Order__x/ExternalId/SO-1``, upserts)."""
        return self.data.find_ids(obj, fdef, values)

    def save(self, context: Context, obj: ObjectDef, operation: str, results: list[SaveResult],
             prepared: dict[int, dict[str, Any]], targets: dict[int, str], all_or_none: bool) -> list[SaveResult]:
        """Write the prepared rows of a create (``insert``) or ``update``; ``results`` already hold input errors."""
        if all_or_none and any(not r.success for r in results):
            return _rolled_back(results)
        ready = [i for i in prepared if results[i].success]
        if not ready:
            return results
        if operation == "insert":
            outcomes = self.data.insert(obj, [prepared[i] for i in ready])
        else:
            outcomes = self.data.update(obj, [(targets[i], prepared[i]) for i in ready])
        keys = [o.key for o in outcomes if o.key is not None and o.error is None]
        known = self.data.remember(obj, [str(k) for k in keys])
        for index, outcome in zip(ready, outcomes, strict=True):
            result = results[index]
            if outcome.error is not None:
                result.errors.append(_remote_error(obj, outcome.error))
                result.id = None if operation == "insert" else result.id
                continue
            if operation == "insert":
                if outcome.key is None:
                    result.errors.append(_remote_error(obj, "the source did not answer the new row's key"))
                    continue
                result.id = known.get(str(outcome.key)) or external_record_id(obj, str(outcome.key))
                result.created = True
        return results

    def delete(self, obj: ObjectDef, record_ids: Sequence[str], results: list[SaveResult], indexes: list[int],
               action: str) -> None:
        """Delete rows of ``obj``; ``record_ids[n]`` belongs to ``results[indexes[n]]``."""
        if action != "delete":
            for index in indexes:
                results[index].errors.append(ExternalObjectUnsupported(
                    f"{obj.name} is an external object: {action.replace('_', ' ')} is not supported"))
            return
        keys = self.data.keys_for(obj, record_ids)
        present = [(index, record_id) for index, record_id in zip(indexes, record_ids, strict=True)
                   if record_id in keys]
        for index, record_id in zip(indexes, record_ids, strict=True):
            if record_id not in keys:
                results[index].errors.append(NotFoundError())
        if not present:
            return
        outcomes = self.data.delete(obj, [record_id for _, record_id in present])
        for (index, _), outcome in zip(present, outcomes, strict=True):
            if outcome.error is not None:
                results[index].errors.append(_remote_error(obj, outcome.error))


def _remote_error(obj: ObjectDef, message: str) -> InterlinkError:
    return DmlError(f"{obj.data_source}: {message}", [], error_code="EXTERNAL_OBJECT_EXCEPTION")


def _rolled_back(results: list[SaveResult]) -> list[SaveResult]:
    for result in results:
        if result.success:
            result.errors.append(all_or_none_rolled_back())
            result.id = None
    return results


__all__ = ["ExternalRecords"]
