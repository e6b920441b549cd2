"""Sample records for a new org (``interlink up --sample-data``), written through the one write path."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlink.app.org import Org

ACCOUNTS = [
    {"Name": "Acme Corporation", "Industry": "Manufacturing", "Type": "Customer - Direct", "Phone": "+1 415 555 0100",
     "Website": "https://acme.example", "BillingCity": "San Francisco", "BillingCountry": "USA",
     "AnnualRevenue": 12500000, "NumberOfEmployees": 420},
    {"Name": "Globex", "Industry": "Technology", "Type": "Prospect", "BillingCity": "Springfield",
     "BillingCountry": "USA", "AnnualRevenue": 3400000, "NumberOfEmployees": 85},
    {"Name": "Initech", "Industry": "Banking", "Type": "Customer - Channel", "BillingCity": "Austin",
     "BillingCountry": "USA", "AnnualRevenue": 870000, "NumberOfEmployees": 40},
    {"Name": "Umbrella Health", "Industry": "Healthcare", "Type": "Customer - Direct", "BillingCity": "Raccoon City",
     "BillingCountry": "USA", "AnnualRevenue": 56000000, "NumberOfEmployees": 2100},
    {"Name": "Stark Logistics", "Industry": "Transportation", "Type": "Partner", "BillingCity": "Rotterdam",
     "BillingCountry": "Netherlands", "AnnualRevenue": 9100000, "NumberOfEmployees": 310},
]

CONTACTS = [
    ("Acme Corporation", "Ada", "Lovelace", "ada@acme.example", "CTO"),
    ("Acme Corporation", "Grace", "Hopper", "grace@acme.example", "VP Engineering"),
    ("Globex", "Hank", "Scorpio", "hank@globex.example", "CEO"),
    ("Initech", "Peter", "Gibbons", "peter@initech.example", "Engineer"),
    ("Umbrella Health", "Alice", "Abernathy", "alice@umbrella.example", "Procurement"),
    ("Stark Logistics", "Pepper", "Potts", "pepper@stark.example", "COO"),
]

OPPORTUNITIES = [
    ("Acme Corporation", "Acme - 500 Widgets", "Negotiation/Review", 120000, 30),
    ("Globex", "Globex - Platform Pilot", "Qualification", 45000, 60),
    ("Initech", "Initech - Renewal", "Closed Won", 18000, -10),
    ("Umbrella Health", "Umbrella - Fleet Sensors", "Proposal/Price Quote", 640000, 45),
]


def seed_sample_data(org: Org) -> dict[str, int]:
    """Create the sample records once (skipped when the org already has accounts)."""
    context = org.admin_context()
    if org.query.execute("SELECT COUNT() FROM Account", context).total_size:
        return {}
    with org.records.unit_of_work(context):
        accounts = org.records.create(context, "Account", ACCOUNTS, all_or_none=True)
        by_name = {a["Name"]: r.id for a, r in zip(ACCOUNTS, accounts, strict=True)}
        contacts = org.records.create(context, "Contact", [
            {"AccountId": by_name[account], "FirstName": first, "LastName": last, "Email": email, "Title": title}
            for account, first, last, email, title in CONTACTS], all_or_none=True)
        today = date.today()
        opportunities = org.records.create(context, "Opportunity", [
            {"AccountId": by_name[account], "Name": name, "StageName": stage, "Amount": amount,
             "CloseDate": (today + timedelta(days=days)).isoformat()}
            for account, name, stage, amount, days in OPPORTUNITIES], all_or_none=True)
        cases = org.records.create(context, "Case", [
            {"AccountId": by_name["Acme Corporation"], "Subject": "Widget arrived damaged", "Priority": "High",
             "Origin": "Email"},
            {"AccountId": by_name["Umbrella Health"], "Subject": "Sensor firmware question", "Origin": "Phone"},
        ], all_or_none=True)
    for batch in (accounts, contacts, opportunities, cases):
        for result in batch:
            if result.errors:
                raise result.errors[0]
    return {"accounts": len(accounts), "contacts": len(contacts), "opportunities": len(opportunities),
            "cases": len(cases)}
