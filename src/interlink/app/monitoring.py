"""Wiring the middleware's pipeline monitor into a serving org, for the console's Pipelines page.

The console is a surface and never imports the middleware; it is handed ``org.pipeline_monitor`` (anything with
the methods of :class:`interlink.console.pipelines.PipelineMonitor`). This is the one place that knows both: the
monitor reads the middleware store the settings name, and replays dead letters with the project's pipelines and
the same connections ``interlink dlq replay`` uses (the project's ``connections.yaml``, plus this org as ``local``
once it serves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from interlink.middleware.monitor import PipelineMonitor

if TYPE_CHECKING:
    from interlink.app.org import Org


def pipeline_monitor(org: Org) -> PipelineMonitor:
    """A monitor of the pipelines sharing ``org``'s middleware store (nothing opens until the console asks)."""
    settings = org.settings

    def connections() -> Mapping[str, Any]:
        from interlink.app.org import ADMIN_USERNAME
        from interlink.middleware.orgapi import OrgConnection, resolve_connections

        server = settings.data_dir / "run" / "server.json"
        local = OrgConnection.from_server_file(server, org.mint_token(ADMIN_USERNAME)) if server.exists() else None
        return resolve_connections(settings, local=local)  # type: ignore[no-any-return]

    return PipelineMonitor(settings.middleware_store_url, project_dir=settings.project_dir, connections=connections)


__all__ = ["pipeline_monitor"]
