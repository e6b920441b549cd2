"""Per-user principals of named credentials: each user calls out with their own credential.

::

    # metadata/namedCredentials/Billing.yaml
    url: https://billing.example.com/api
    principal: {type: PerUserPrincipal, name: PerUser}    # NamedPrincipal (default): one identity for everyone
    auth:
      protocol: bearer
      token: ${user:BILLING_TOKEN}       # the running user's own secret

    # metadata/permissionSets/Billing_Users.yaml
    externalCredentialPrincipals: [Billing-PerUser]       # <credential>-<principal>, as the platform names it

A user's secret is stored encrypted with the org's other secrets (``interlink secrets set BILLING_TOKEN --user
alice@example.com``). A callout through a per-user credential is made as its *running user*: the user whose save
queued it (flows and triggers run without that user's data permissions, but as that user), or the caller of the
REST invocable action. It is refused, and nothing is sent, when there is no running user, when none of the user's
permission sets (assigned directly or through a group) grants the principal, or when the user has not stored the
secret: an asynchronous callout is then dead-lettered with the reason, a synchronous one fails its action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from interlink.callouts.credentials import CalloutRefused, NamedCredential, _refused
from interlink.errors import MetadataError

PRINCIPAL_KEY = "externalCredentialPrincipals"


def user_secret_name(name: str, user_id: str) -> str:
    """Where a user's own secret ``name`` is kept in the secret store."""
    return f"{name}@{user_id}"


def load_principal_access(project_dir: Path, credentials: Mapping[str, NamedCredential]) -> dict[str, NamedCredential]:
    """``credentials`` with the permission sets that grant each per-user principal
    (``externalCredentialPrincipals`` of ``metadata/permissionSets/*.yaml``); errors name the file and the key."""
    from interlink.metadata.loader import read_yaml_files

    by_principal = {c.principal_id.lower(): c for c in credentials.values() if c.per_user}
    granted: dict[str, set[str]] = {key: set() for key in by_principal}
    for path, data in read_yaml_files(project_dir / "metadata" / "permissionSets"):
        if not isinstance(data, dict) or data.get(PRINCIPAL_KEY) is None:
            continue
        names = data[PRINCIPAL_KEY]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise MetadataError(f"{path}: {PRINCIPAL_KEY}: a list of <credential>-<principal> names")
        set_name = str(data.get("name") or path.stem)
        for name in names:
            if name.lower() not in by_principal:
                known = ", ".join(sorted(c.principal_id for c in by_principal.values())) or "none"
                raise MetadataError(f"{path}: {PRINCIPAL_KEY}: {name!r} is not a per-user principal of a named "
                                    f"credential (they are: {known})")
            granted[name.lower()].add(set_name.lower())
    return {key: dataclasses.replace(c, granted_to=frozenset(granted[c.principal_id.lower()])) if c.per_user else c
            for key, c in credentials.items()}


def permission_set_names(store: Any, user_id: str) -> set[str]:
    """The (lower-cased) names of the permission sets assigned to ``user_id``, directly or through groups."""
    tables = store.tables
    needed = ("permissionset", "permissionsetassignment", "permissionsetgroupcomponent")
    if any(name not in tables for name in needed):
        return set()
    sets, assignments, components = (tables[name] for name in needed)
    with store.read() as conn:
        rows = conn.execute(select(assignments.c.PermissionSetId, assignments.c.PermissionSetGroupId).where(
            assignments.c.AssigneeId == user_id, assignments.c.IsDeleted.is_(False))).all()
        set_ids = {r.PermissionSetId for r in rows if r.PermissionSetId}
        group_ids = {r.PermissionSetGroupId for r in rows if r.PermissionSetGroupId}
        if group_ids:
            set_ids.update(r.PermissionSetId for r in conn.execute(select(components.c.PermissionSetId).where(
                components.c.PermissionSetGroupId.in_(group_ids), components.c.IsDeleted.is_(False))))
        if not set_ids:
            return set()
        return {str(r.Name).lower() for r in conn.execute(select(sets.c.Name).where(
            sets.c.Id.in_(set_ids), sets.c.IsDeleted.is_(False)))}


def for_user(credential: NamedCredential, user_id: str | None, store: Any) -> NamedCredential:
    """The credential as ``user_id`` uses it: itself for a named principal; for a per-user principal, bound to
    the user's secrets once the user's access is checked (CalloutRefused otherwise: nothing is sent)."""
    if not credential.per_user:
        return credential
    if not user_id:
        raise _refused(CalloutRefused(f"callout:{credential.name} uses the per-user principal "
                                      f"{credential.principal_id}: a callout through it needs a running user"))
    if not credential.granted_to & permission_set_names(store, user_id):
        raise _refused(CalloutRefused(
            f"callout:{credential.name}: We couldn't access the credential(s). You might not have the required "
            f"permissions, or the external credential \"{credential.name}\" might not exist. (User {user_id} has "
            f"no permission set granting the principal {credential.principal_id})"))
    return dataclasses.replace(credential, user_id=user_id)


__all__ = ["PRINCIPAL_KEY", "for_user", "load_principal_access", "permission_set_names", "user_secret_name"]
