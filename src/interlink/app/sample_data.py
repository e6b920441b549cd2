"""Sample records for a new org (``interlink up --sample-data``), written through the one write path.

Besides accounts, contacts, opportunities and cases, the sample org has a small service team for the UI Update
pattern's live pages (docs/console.md): two managers, each with reps (``User.ManagerId``), owning the cases. The
sample users share one password: ``INTERLINK_SAMPLE_PASSWORD`` (setting ``sample_password``), else the admin
password when ``INTERLINK_ADMIN_PASSWORD`` chose it, else a generated one that ``interlink up`` prints once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from interlink.app.setup_users import create_user
from interlink.security.passwords import generate_password

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

MANAGER = "maya.manager@interlink.local"
OTHER_MANAGER = "noor.manager@interlink.local"
# (username, first name, last name, title, the manager's username)
USERS = [
    (MANAGER, "Maya", "Okafor", "Customer Service Manager", None),
    ("alex.rep@interlink.local", "Alex", "Rivera", "Customer Service Rep", MANAGER),
    ("sam.rep@interlink.local", "Sam", "Chen", "Customer Service Rep", MANAGER),
    (OTHER_MANAGER, "Noor", "Haddad", "Customer Service Manager", None),
    ("jordan.rep@interlink.local", "Jordan", "Blake", "Customer Service Rep", OTHER_MANAGER),
]

# (account, subject, priority, origin, the owner's username)
CASES = [
    ("Acme Corporation", "Widget arrived damaged", "High", "Email", "alex.rep@interlink.local"),
    ("Umbrella Health", "Sensor firmware question", "Medium", "Phone", "jordan.rep@interlink.local"),
    ("Acme Corporation", "Invoice 2291 shows the wrong amount", "Medium", "Web", "alex.rep@interlink.local"),
    ("Globex", "Cannot log in to the customer portal", "High", "Phone", "sam.rep@interlink.local"),
    ("Initech", "Replacement part not shipped", "Low", "Email", "sam.rep@interlink.local"),
    ("Stark Logistics", "Sensor calibration drifts", "Medium", "Web", "jordan.rep@interlink.local"),
]


@dataclass
class SampleSeed:
    """What seeding created; ``generated_password`` is the sample users' password when Interlink chose it."""

    counts: dict[str, int] = field(default_factory=dict)
    generated_password: str | None = None

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        return ", ".join(f"{n} {o}" for o, n in self.counts.items())

    def items(self):  # type: ignore[no-untyped-def]
        """(what, how many) pairs, as the plain counts dict had."""
        return self.counts.items()


def seed_sample_data(org: Org) -> SampleSeed:
    """Create the sample records and users once (skipped when the org already has accounts)."""
    context = org.admin_context()
    if org.query.execute("SELECT COUNT() FROM Account", context).total_size:
        return SampleSeed()
    chosen = org.settings.sample_password or org.settings.admin_password
    password = chosen or generate_password()
    users = seed_sample_users(org, password)
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
            {"AccountId": by_name[account], "Subject": subject, "Priority": priority, "Origin": origin,
             "OwnerId": users[owner]}
            for account, subject, priority, origin, owner in CASES], all_or_none=True)
    for batch in (accounts, contacts, opportunities, cases):
        for result in batch:
            if result.errors:
                raise result.errors[0]
    return SampleSeed({"users": len(users), "accounts": len(accounts), "contacts": len(contacts),
                       "opportunities": len(opportunities), "cases": len(cases)},
                      None if chosen else password)


def seed_sample_users(org: Org, password: str) -> dict[str, str]:
    """The sample service team (managers and their reps), all with ``password``; returns username -> user id."""
    created: dict[str, str] = {}
    for username, first, last, _title, _manager in USERS:
        existing = org.directory.user_by_username(username)
        if existing is not None:
            created[username] = existing.id
            continue
        created[username], _ = create_user(org, username, first_name=first, last_name=last, password=password)
    results = org.records.update(org.admin_context(), "User", [
        {"Id": created[username], "Title": title, "ManagerId": created[manager] if manager else None}
        for username, _first, _last, title, manager in USERS])
    for result in results:
        if result.errors:
            raise result.errors[0]
    return created
