"""``order_ink``: a Draft Order of an ink cartridge for a printer (an Asset) that reported low ink.

Called by the flow ``Printer_Status_Updates_Asset`` once per batch of printer-status events (bulk-safe: two queries
and one insert for the whole batch). A printer that already has a Draft ink order gets no second one, so a printer
that keeps reporting 12% while the cartridge is on its way does not order a cartridge every few minutes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from interlink.automation import TriggerContext, action

_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")


def _quoted(ids: set[str]) -> str:
    return ", ".join(f"'{record_id}'" for record_id in sorted(ids))


@action("order_ink")
def order_ink(ctx: TriggerContext, inputs: list[dict[str, Any]]) -> None:
    wanted = {str(i["assetId"]) for i in inputs if _ID.match(str(i.get("assetId") or ""))}
    if not wanted:
        return
    assets = {a["Id"]: a for a in ctx.query(f"SELECT Id, Name, AccountId FROM Asset WHERE Id IN ({_quoted(wanted)})")}
    open_orders = {o["Printer_Asset__c"] for o in ctx.query(
        f"SELECT Printer_Asset__c FROM Order WHERE Status = 'Draft' AND Printer_Asset__c IN ({_quoted(wanted)})")}
    today = datetime.now(UTC).date().isoformat()
    orders: dict[str, dict[str, Any]] = {}
    for item in inputs:
        asset = assets.get(str(item.get("assetId")))
        if asset is None or not asset["AccountId"] or asset["Id"] in open_orders:
            continue
        orders[asset["Id"]] = {  # one order per printer, however many low readings the batch holds
            "AccountId": asset["AccountId"], "Printer_Asset__c": asset["Id"], "Status": "Draft",
            "EffectiveDate": today, "Name": f"Ink cartridge for {asset['Name']}"[:80],
            "Description": f"Ordered automatically: {asset['Name']} reported {item.get('inkLevel')}% ink."}
    if orders:
        ctx.insert("Order", list(orders.values()))
