"""Creating and listing users: User records go through the one write path, passwords to the directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interlink.security.passwords import generate_password

if TYPE_CHECKING:
    from interlink.app.org import Org


def create_user(org: Org, username: str, *, last_name: str, first_name: str | None = None,
                email: str | None = None, password: str | None = None) -> tuple[str, str]:
    """Create an active user and set its password; returns (user id, password)."""
    context = org.admin_context()
    alias = (first_name or "")[:1] + last_name[:4]
    results = org.records.create(context, "User", [{
        "Username": username, "LastName": last_name, "FirstName": first_name, "Email": email or username,
        "Alias": alias.lower() or "user", "CommunityNickname": username.split("@")[0]}], all_or_none=True)
    if results[0].errors:
        raise results[0].errors[0]
    user_id = results[0].id
    assert user_id is not None
    chosen = password or generate_password()
    org.directory.set_password(user_id, chosen)
    return user_id, chosen


def list_users(org: Org) -> list[dict[str, Any]]:
    """Every user, ordered by username (through the query engine, like every other read)."""
    page = org.query.execute("SELECT Id, Username, Name, IsActive FROM User ORDER BY Username", org.admin_context(),
                             batch_size=100_000)
    return page.records
