"""Users and connected apps declared in the org project, applied on ``interlink up`` and ``deploy``.

``metadata/users/*.yaml``::

    username: integration@acme.local
    lastName: Integration
    firstName: ERP            # optional
    email: ops@acme.local     # optional (defaults to the username)
    passwordEnv: ERP_USER_PASSWORD   # optional: the password is read from this environment variable
    active: true              # optional

``metadata/connectedApps/*.yaml``::

    name: ERP Connector
    runAs: integration@acme.local      # the client-credentials user (optional)
    certificate: certs/erp.crt         # PEM for the JWT bearer flow, relative to the project (optional)
    callbackUrl: https://erp.local/cb  # web-server flow redirect URI(s), comma-separated (optional)
    consumerKey: erp-connector         # optional; generated when absent
    consumerSecretEnv: ERP_SECRET      # optional; generated when absent (see `interlink apps list --show-secrets`)
    permittedUsers: AdminApprovedPreAuthorized   # or AllSelfAuthorized (the default)
    profiles: [ERP Integration Profile]          # who is pre-authorized (by name), with AdminApprovedPreAuthorized
    permissionSets: [ERP_Integration]

Secrets never live in the files: they come from environment variables. Existing users and apps are
updated (active flag, names, certificate, run-as user, callback); nothing is deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.errors import MetadataError
from interlink.metadata.loader import read_yaml_files

if TYPE_CHECKING:
    from interlink.app.org import Org

_USER_KEYS = {"username", "lastName", "firstName", "email", "passwordEnv", "active", "alias"}
_APP_KEYS = {"name", "runAs", "certificate", "callbackUrl", "consumerKey", "consumerSecretEnv", "permittedUsers",
             "profiles", "permissionSets"}
_PERMITTED_USERS = {"AllSelfAuthorized": False, "AdminApprovedPreAuthorized": True}


def documents(folder: Path, allowed: set[str], required: str | None = None) -> list[tuple[dict[str, Any], Path]]:
    """The YAML mappings in ``folder`` with their paths; unknown keys and a missing ``required`` key are errors."""
    found = []
    for path, data in read_yaml_files(folder):
        if not isinstance(data, Mapping):
            raise MetadataError(f"{path}: expected a mapping of keys")
        unknown = set(data) - allowed
        if unknown:
            raise MetadataError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
        if required and not data.get(required):
            raise MetadataError(f"{path}: {required} is required")
        found.append((dict(data), path))
    return found


def _secret(data: Mapping[str, Any], key: str, path: Path) -> str | None:
    variable = data.get(key)
    if not variable:
        return None
    value = os.environ.get(str(variable))
    if value is None:
        raise MetadataError(f"{path}: {key} names ${variable}, which is not set")
    return value


def apply_identity_metadata(org: Org, project_dir: Path) -> list[str]:
    """Create or update the users and connected apps the project declares; returns what changed."""
    from interlink.app.setup_users import create_user

    changes: list[str] = []
    context = org.admin_context().as_system()
    for data, path in documents(project_dir / "metadata" / "users", _USER_KEYS, "username"):
        username = str(data["username"])
        password = _secret(data, "passwordEnv", path)
        existing = org.directory.user_by_username(username)
        if existing is None:
            if not data.get("lastName"):
                raise MetadataError(f"{path}: lastName is required for a new user")
            create_user(org, username, last_name=str(data["lastName"]), first_name=data.get("firstName"),
                        email=data.get("email"), password=password)
            changes.append(f"created user {username}")
            continue
        wanted = {"IsActive": bool(data.get("active", True))}
        for key, field_name in (("lastName", "LastName"), ("firstName", "FirstName"), ("email", "Email")):
            if key in data:
                wanted[field_name] = data[key]
        differing = {k: v for k, v in wanted.items() if existing.fields.get(k) != v}
        if differing:
            results = org.records.update(context, "User", [{"Id": existing.id, **differing}], all_or_none=True)
            if results[0].errors:
                raise MetadataError(f"{path}: {results[0].errors[0].message}")
            changes.append(f"updated user {username}: {', '.join(sorted(differing))}")
        if password is not None:
            org.directory.set_password(existing.id, password)

    for data, path in documents(project_dir / "metadata" / "connectedApps", _APP_KEYS, "name"):
        name = str(data["name"])
        run_as_id = None
        if data.get("runAs"):
            user = org.directory.user_by_username(str(data["runAs"]))
            if user is None:
                raise MetadataError(f"{path}: runAs names unknown user {data['runAs']}")
            run_as_id = user.id
        certificate = None
        if data.get("certificate"):
            cert_path = (project_dir / str(data["certificate"])).resolve()
            if not cert_path.is_file():
                raise MetadataError(f"{path}: certificate file not found: {cert_path}")
            certificate = cert_path.read_text()
        secret = _secret(data, "consumerSecretEnv", path)
        access = _app_access(org, data, path)
        existing_app = org.directory.app_by_name(name)
        if existing_app is None:
            org.directory.create_app(name, run_as_user_id=run_as_id, certificate_pem=certificate,
                                     consumer_key=data.get("consumerKey"), consumer_secret=secret,
                                     callback_url=data.get("callbackUrl"))
            if access["admin_approved_only"]:
                org.directory.update_app(name, **access)
            changes.append(f"created connected app {name}")
            continue
        updates: dict[str, Any] = {}
        for key, value in (("run_as_user_id", run_as_id), ("certificate_pem", certificate),
                           ("callback_url", data.get("callbackUrl")), ("consumer_secret", secret),
                           *access.items()):
            if value is not None and getattr(existing_app, key) != value:
                updates[key] = value
        if updates:
            org.directory.update_app(name, **updates)
            changes.append(f"updated connected app {name}: {', '.join(sorted(updates))}")
    return changes


def _app_access(org: Org, data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The app file's Permitted Users policy, its profiles and permission sets checked against the org's."""
    permitted = str(data.get("permittedUsers") or "AllSelfAuthorized")
    if permitted not in _PERMITTED_USERS:
        raise MetadataError(f"{path}: permittedUsers is AllSelfAuthorized or AdminApprovedPreAuthorized, "
                            f"not {permitted}")
    found: dict[str, tuple[str, ...]] = {}
    for key in ("profiles", "permissionSets"):
        names = data.get(key) or []
        if not isinstance(names, list):
            raise MetadataError(f"{path}: {key} is a list of names")
        found[key] = tuple(sorted(str(name) for name in names))
    check_grant_names(org, found["profiles"], found["permissionSets"], str(path))
    if (found["profiles"] or found["permissionSets"]) and not _PERMITTED_USERS[permitted]:
        raise MetadataError(f"{path}: profiles and permissionSets pre-authorize users of an app whose "
                            "permittedUsers is AdminApprovedPreAuthorized")
    return {"admin_approved_only": _PERMITTED_USERS[permitted], "profiles": found["profiles"],
            "permission_sets": found["permissionSets"]}


def check_grant_names(org: Org, profiles: Iterable[str], permission_sets: Iterable[str], where: str) -> None:
    """MetadataError naming the first profile or permission set (not owned by a profile) the org does not have."""
    from interlink.soql.render import quote

    for kind, names, soql in (
            ("profile", profiles, "SELECT Name FROM Profile WHERE Name = {}"),
            ("permission set", permission_sets,
             "SELECT Name FROM PermissionSet WHERE IsOwnedByProfile = false AND Name = {}")):
        for name in names:
            if not org.query.execute(soql.format(quote(str(name))), org.admin_context().as_system()).records:
                raise MetadataError(f"{where}: no {kind} named {name}")
