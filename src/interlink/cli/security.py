"""``interlink users unlock|revoke|logins|api-only`` and ``interlink apps update``: login and session policies.

The commands work on the org's store in-process, so they take effect in a running server too: a lockout ends at
once, a revoked session within ``token_cache_seconds``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from interlink.cli.main import DataDir, StoreUrl, _err, _existing_org, user_named

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.security.apps import UserRecord

UsernameArg = Annotated[str, typer.Argument(help="Username.")]


def _user(org: Org, username: str) -> UserRecord:
    return user_named(org, username)  # type: ignore[no-any-return]


def users_unlock(username: UsernameArg, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """Unlock a user locked out after failed logins (and clear the failure count)."""
    with _existing_org(data_dir, store, lenient_project=True) as org:
        was_locked = org.oauth.logins.unlock(_user(org, username).id)
        _err(f"Unlocked {username}" if was_locked else f"{username} was not locked; failure count cleared")


def users_revoke(username: UsernameArg, data_dir: DataDir = None, store: StoreUrl = None) -> None:
    """End every session of a user: API access tokens, refresh tokens and console sessions."""
    with _existing_org(data_dir, store, lenient_project=True) as org:
        count = org.tokens.revoke_user(_user(org, username).id)
        _err(f"Revoked {count} token(s) of {username}; a running server drops them within "
             f"{org.settings.token_cache_seconds:g} s")


def users_api_only(
    username: UsernameArg,
    off: Annotated[bool, typer.Option("--off", help="Let the user log in to the console again.")] = False,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Make a user API-only (an integration user: every API, never the console), or undo it with --off."""
    with _existing_org(data_dir, store, lenient_project=True) as org:
        user = _user(org, username)
        org.oauth.logins.set_api_only(user.id, not off)
        if off:
            _err(f"{username} may log in to the console again")
            return
        ended = org.tokens.revoke_user(user.id, scope="console")
        _err(f"{username} is API-only now" + (f"; ended {ended} console session(s)" if ended else ""))


def users_logins(
    username: Annotated[str | None, typer.Argument(help="Only this user's logins.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many logins to show (newest first).")] = 20,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Show recent login attempts (the LoginHistory object): time, user, status, type, application, source IP."""
    from rich.console import Console
    from rich.table import Table

    with _existing_org(data_dir, store, lenient_project=True) as org:
        user_id = _user(org, username).id if username else None
        rows = org.oauth.logins.history(user_id, limit=max(limit, 1))
    table = Table("Login time (UTC)", "Username", "Status", "Login type", "Application", "Source IP")
    for row in rows:
        table.add_row(row["LoginTime"].isoformat(sep=" ", timespec="seconds") if row["LoginTime"] else "",
                      row["Username"] or row["UserId"] or "", row["Status"] or "", row["LoginType"] or "",
                      row["Application"] or "", row["SourceIp"] or "")
    Console(width=max(120, Console().width)).print(table)


def apps_update(
    name: Annotated[str, typer.Argument(help="App name.")],
    rotate_refresh_tokens: Annotated[bool | None, typer.Option(
        "--rotate-refresh-tokens/--no-rotate-refresh-tokens",
        help="Each refresh_token grant returns a new refresh token and revokes the old one; reusing a replaced "
             "one revokes the whole family.")] = None,
    run_as: Annotated[str | None, typer.Option(help="Username the client-credentials flow runs as.")] = None,
    callback_url: Annotated[str | None, typer.Option(help="Redirect URI(s) for the web-server flow, "
                                                          "comma-separated.")] = None,
    admin_approved: Annotated[bool | None, typer.Option(
        "--admin-approved/--all-users",
        help="Permitted Users: only users of the app's profiles and permission sets (admin approved users are "
             "pre-authorized), or every user (all users may self-authorize).")] = None,
    profile: Annotated[list[str] | None, typer.Option(
        help="A profile whose users the app admits (repeat; replaces the list).")] = None,
    permission_set: Annotated[list[str] | None, typer.Option(
        help="A permission set whose users the app admits (repeat; replaces the list).")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Change a connected app's options (only those given)."""
    from interlink.app.provisioning import check_grant_names
    from interlink.errors import ConfigurationError

    with _existing_org(data_dir, store, lenient_project=True) as org:
        values: dict[str, object] = {}
        if admin_approved is not None:
            values["admin_approved_only"] = admin_approved
        if profile is not None:
            values["profiles"] = profile
        if permission_set is not None:
            values["permission_sets"] = permission_set
        check_grant_names(org, profile or (), permission_set or (), "interlink apps update")
        if rotate_refresh_tokens is not None:
            values["rotate_refresh_tokens"] = rotate_refresh_tokens
        if run_as is not None:
            values["run_as_user_id"] = _user(org, run_as).id
        if callback_url is not None:
            values["callback_url"] = callback_url
        if not values:
            raise ConfigurationError("nothing to change: pass an option such as --rotate-refresh-tokens")
        updated = org.directory.update_app(name, **values)
        permitted = ("admin approved users: " + (", ".join([*updated.profiles, *updated.permission_sets]) or "none")
                     if updated.admin_approved_only else "all users may self-authorize")
        _err(f"Updated {updated.name}: refresh-token rotation {'on' if updated.rotate_refresh_tokens else 'off'}; "
             f"{permitted}")
