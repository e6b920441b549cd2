"""Who is doing a piece of work, and when: passed to every records call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Context:
    """The caller of a records operation.

    ``user_id`` becomes CreatedById / LastModifiedById / default OwnerId. ``api_version`` is the REST
    version the request came in on (some responses differ by version). ``client`` is the
    ``Sforce-Call-Options`` client id, which change events report as their origin with ``api`` (rest,
    bulkapi). ``system_mode`` lets trusted internal callers write fields and objects that are read-only to API callers.
    """

    user_id: str
    org_id: str
    api_version: str = "66.0"
    client: str = ""
    app_id: str | None = None
    system_mode: bool = False
    attributes: dict[str, str] = field(default_factory=dict, compare=False)
    api: str = "rest"  # which API the change came through (rest, bulkapi, soap), for change events' changeOrigin
    # The caller's permissions (interlink.security.access.UserAccess) when they are enforced: None for trusted
    # internal callers (the CLI's admin, bootstrap). System mode ignores them.
    access: Any = field(default=None, compare=False, repr=False)

    def with_version(self, api_version: str) -> Context:
        return Context(self.user_id, self.org_id, api_version, self.client, self.app_id, self.system_mode,
                       self.attributes, self.api, self.access)

    def as_system(self) -> Context:
        """The same caller in system mode: read-only fields and objects become writable (bootstrap, automation)."""
        return Context(self.user_id, self.org_id, self.api_version, self.client, self.app_id, True, self.attributes,
                       self.api, self.access)

    def without_permissions(self) -> Context:
        """The same caller with their permissions not enforced (not system mode: read-only fields stay read-only).
        Triggers and flows work this way, as on the platform (system context)."""
        if self.access is None:
            return self
        return Context(self.user_id, self.org_id, self.api_version, self.client, self.app_id, self.system_mode,
                       self.attributes, self.api, None)

    @property
    def enforced(self) -> Any:
        """The permissions to enforce on this call (None: none, for system mode and trusted callers)."""
        return None if self.system_mode else self.access
