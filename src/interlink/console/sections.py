"""The console's sections: each module contributes its routes (mounted under ``/console``)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for module in _modules():
        found.extend(module.routes())
    return found


def _modules() -> list:  # type: ignore[type-arg]
    # Imported here so each section may use the console's helpers without an import cycle.
    from interlink.console import events, jobs, limits, live, objects, pipelines, records, streams, workbench

    return [jobs, limits, pipelines, objects, records, workbench, events, live, streams]
