"""``interlink audit``: the setup audit trail, newest first (the ``SetupAuditTrail`` object, read with SOQL)."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def audit_command(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=2000, help="At most this many entries.")] = 50,
    section: Annotated[str | None, typer.Option(
        "--section", help="Only this Setup section, e.g. 'Manage Users', 'Custom Objects', 'Connected Apps'.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON lines.")] = False,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """List the setup audit trail: deploys, users, passwords, connected apps, secrets, permission assignments."""
    from rich.markup import escape
    from rich.table import Table

    from interlink.cli.events import _wide_console
    from interlink.soql.render import quote

    where = f" WHERE Section = {quote(section)}" if section else ""
    soql = (f"SELECT CreatedDate, CreatedBy.Username, Section, Action, Display, DelegateUser FROM SetupAuditTrail"
            f"{where} ORDER BY CreatedDate DESC, Id DESC LIMIT {limit}")
    with _existing_org(data_dir, store, lenient_project=True) as org:
        records = org.query.execute(soql, org.admin_context(), batch_size=limit).records
    entries = [{"createdDate": r.get("CreatedDate"), "user": (r.get("CreatedBy") or {}).get("Username"),
                "section": r.get("Section"), "action": r.get("Action"), "display": r.get("Display"),
                "delegateUser": r.get("DelegateUser")} for r in records]
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry))
        return
    table = Table("Date", "User", "Section", "Action", "Display")
    for entry in entries:
        table.add_row(*(escape(str(entry[key] or "")) for key in ("createdDate", "user", "section", "action",
                                                                   "display")))
    _wide_console().print(table)


# Imported last: interlink.cli.main imports this module, and finds audit_command already defined (annotations are
# resolved when the command runs).
from interlink.cli.main import DataDir, StoreUrl, _existing_org  # noqa: E402
