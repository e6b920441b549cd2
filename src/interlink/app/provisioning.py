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

Secrets never live in the files: they come from environment variables. Existing users and apps are
updated (active flag, names, certificate, run-as user, callback); nothing is deleted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlink.errors import MetadataError
from interlink.metadata.loader import read_yaml_files

if TYPE_CHECKING:
    from interlink.app.org import Org

_USER_KEYS = {"username", "lastName", "firstName", "email", "passwordEnv", "active", "alias"}
_APP_KEYS = {"name", "runAs", "certificate", "callbackUrl", "consumerKey", "consumerSecretEnv"}


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
        existing_app = org.directory.app_by_name(name)
        if existing_app is None:
            org.directory.create_app(name, run_as_user_id=run_as_id, certificate_pem=certificate,
                                     consumer_key=data.get("consumerKey"), consumer_secret=secret,
                                     callback_url=data.get("callbackUrl"))
            changes.append(f"created connected app {name}")
            continue
        updates: dict[str, Any] = {}
        for key, value in (("run_as_user_id", run_as_id), ("certificate_pem", certificate),
                           ("callback_url", data.get("callbackUrl")), ("consumer_secret", secret)):
            if value is not None and getattr(existing_app, key) != value:
                updates[key] = value
        if updates:
            org.directory.update_app(name, **updates)
            changes.append(f"updated connected app {name}: {', '.join(sorted(updates))}")
    return changes
