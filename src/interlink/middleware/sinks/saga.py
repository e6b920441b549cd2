"""The ``saga`` sink: each message starts a saga, its body as the input and its id as the saga id.

``sink: {type: saga, saga: order-activation}`` runs ``<project>/sagas/order-activation.yaml`` (or a Python
definition there) once per message. Because the message id is the saga id, a redelivered message (at-least-once)
does not run the saga twice: a finished instance is answered as it is, an interrupted one (Running, Compensating)
is resumed, and a Failed one has its failed compensation tried again (``interlink dlq replay`` after a fix).

Delivery: ok when the saga Completed, and also when it was Compensated (the business outcome "not done, undone"),
with the failed step, its error and the compensated steps in ``detail``; a Failed saga (a compensation failed: a
human must look) is a permanent failure, so the message goes to the dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interlink.middleware.base import Delivery, Message, PipelineSpecError, Sink
from interlink.middleware.saga import COMPENSATED, COMPLETED, FAILED, INTERRUPTED, SagaError, SagaRunner, load_sagas
from interlink.middleware.spec import option, register_sink, spec_error


class SagaSink(Sink):
    """Starts (or resumes) one saga instance per message and reports how it ended."""

    name = "saga"

    def __init__(self, runner: SagaRunner) -> None:
        self.runner = runner

    def deliver(self, message: Message) -> Delivery:
        """Run the saga of one message to its end."""
        try:
            existing = self.runner.get(message.id)
            if existing is not None and existing.status in (*INTERRUPTED, FAILED):
                instance = self.runner.resume(message.id)
            else:
                instance = existing or self.runner.start(message.body, message.id)
        except (SagaError, PipelineSpecError) as exc:
            return Delivery(error=f"saga {self.runner.definition.name}: {exc}", retryable=False)
        detail = instance.summary()
        if instance.status in (COMPLETED, COMPENSATED):
            return Delivery(detail=detail)
        return Delivery(error=f"saga {instance.name} {instance.id} is {instance.status}: {instance.error}",
                        retryable=False, detail=detail)

    def write(self, messages: Sequence[Message]) -> list[Delivery]:
        """One saga per message, in order."""
        return [self.deliver(message) for message in messages]

    def close(self) -> None:
        self.runner.close()


def make_saga_sink(config: dict[str, Any], context: Any) -> SagaSink:
    """``saga``: {saga: the name of a saga in ``<project>/sagas``} (``name`` is every step's display name)."""
    name = option(config, "saga", str)
    definitions, errors = load_sagas(context.project_dir)
    found = {definition.name: definition for definition in definitions}
    if name not in found:
        broken = next((str(error) for error in errors if name in str(error)), None)
        raise spec_error(broken or f"no saga named {name!r} in {context.project_dir}/sagas (known: "
                         f"{', '.join(sorted(found)) or 'none'})", "saga")
    return SagaSink(SagaRunner(found[name], context.store, getattr(context, "connections", None),
                               project_dir=context.project_dir, clock=getattr(context, "clock", None)))


register_sink("saga", make_saga_sink, keys=["saga"], help="start a saga per message (message id = saga id)",
              replace=True)

__all__ = ["SagaSink", "make_saga_sink"]
