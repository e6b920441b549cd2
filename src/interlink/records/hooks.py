"""Extension points of the one write path.

Every create, update, upsert, delete and undelete runs the same phases, in order:

1. ``before_save``  - may change the new values or add errors (triggers, before-save flows, validation rules)
2. the write itself
3. ``after_save``   - sees ids and may do more DML in the same transaction (after triggers and flows)
4. ``on_commit``    - runs once the transaction committed (change events, publish-after-commit events)
5. ``on_rollback``  - runs when it did not

Later layers (automation, the event bus, security) register here; none writes tables another way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from interlink.metadata.model import ObjectDef
    from interlink.records.context import Context
    from interlink.records.unit_of_work import UnitOfWork

Operation = Literal["insert", "update", "delete", "undelete"]
Phase = Literal["before_save", "after_save", "on_commit", "on_rollback"]
PHASES: tuple[Phase, ...] = ("before_save", "after_save", "on_commit", "on_rollback")


@dataclass
class SaveEvent:
    """One batch of records of one object going through one phase.

    ``new`` and ``old`` are parallel lists of field dicts (``old`` entries are None on insert, ``new``
    entries are the stored row on delete). A hook rejects a record with :meth:`add_error`.
    """

    operation: Operation
    object: ObjectDef
    new: list[dict[str, Any]]
    old: list[dict[str, Any] | None]
    context: Context
    uow: UnitOfWork
    errors: dict[int, list[Exception]] = field(default_factory=dict)

    def add_error(self, index: int, message: str, field_name: str | None = None) -> None:
        from interlink.errors import DmlError

        self.errors.setdefault(index, []).append(DmlError(message, [field_name] if field_name else []))

    def changed_fields(self, index: int) -> list[str]:
        """Fields whose value differs between old and new for record ``index``."""
        old = self.old[index] or {}
        return [name for name, value in self.new[index].items() if old.get(name) != value]


Hook = Callable[[SaveEvent], None]


@dataclass
class _Registration:
    hook: Hook
    objects: frozenset[str] | None
    operations: frozenset[str] | None


class HookRegistry:
    """Hooks by phase, optionally filtered by object and operation."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[_Registration]] = {phase: [] for phase in PHASES}

    def register(
        self,
        phase: Phase,
        hook: Hook,
        *,
        objects: list[str] | None = None,
        operations: list[Operation] | None = None,
        first: bool = False,
    ) -> Hook:
        """Add ``hook`` to ``phase`` (after the others, or before them with ``first``: before-save flows run
        ahead of before triggers, as on the platform)."""
        if phase not in self._hooks:
            raise ValueError(f"unknown phase {phase!r}; phases are {', '.join(PHASES)}")
        registration = _Registration(
            hook,
            frozenset(o.lower() for o in objects) if objects else None,
            frozenset(operations) if operations else None,
        )
        if first:
            self._hooks[phase].insert(0, registration)
        else:
            self._hooks[phase].append(registration)
        return hook

    def unregister(self, hook: Hook) -> None:
        for registrations in self._hooks.values():
            registrations[:] = [r for r in registrations if r.hook is not hook]

    def run(self, phase: Phase, event: SaveEvent) -> None:
        name = event.object.name.lower()
        for registration in list(self._hooks[phase]):
            if registration.objects is not None and name not in registration.objects:
                continue
            if registration.operations is not None and event.operation not in registration.operations:
                continue
            registration.hook(event)
