"""The fixed sample data set of the SOQL conformance suite (and of the property tests).

Everything is created through ``org.records`` with the admin context, inside one unit of work, in a fixed
order, so record contents (and the ``Project__c`` autonumbers ``PRJ-0001`` ...) are the same on every run and
every backend. Only system fields (ids, ``CreatedDate`` ...) differ between runs: the cases never assert on
them directly, they resolve ids through natural keys (see :data:`NATURAL_KEYS`).

"Today" is pinned to :data:`TODAY` (2026-06-15, a Monday; weeks start on Sunday, so THIS_WEEK is
2026-06-14 .. 2026-06-20) by running the suite on its own ``QueryEngine(org.store, today=...)``.

Shape of the data:

- 20 Accounts with varied Industry (one null), AnnualRevenue and NumberOfEmployees (some null), billing city
  and country (one city with a non-ASCII letter, "Zürich", and two spelled "Boston"/"boston"), Rating, Type,
  and a parent chain three levels deep: Northwind East Retail -> Northwind East -> Northwind Group -> Global
  Holdings. Names hold a quote, a percent sign and an underscore. "Zed Deleted" is deleted (its Contact and
  Opportunity go with it, by cascade).
- 40 Contacts (5 without an account, 5 without a first name, some without email or birthdate, a title with a
  backslash); Baker reports to Archer and Brown reports to Baker.
- 22 Opportunities with CloseDates around today; "Lost Cause" is deleted on its own.
- 7 Cases (one child case), 8 Tasks with polymorphic WhoId / WhatId.
- 9 ``Project__c`` records (a custom object with a multipicklist, a lookup to Account, a number, a checkbox,
  a date, a datetime, a picklist with labels and an autonumber name); "Scrapped" is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

TODAY = date(2026, 6, 15)

PROJECT_YAML = """\
name: Project__c
label: Project
labelPlural: Projects
nameField: {label: Project Number, type: autonumber, displayFormat: "PRJ-{0000}"}
fields:
  - {name: Title__c, type: text, length: 80}
  - {name: Tags__c, type: multipicklist, values: [A, B, C, D]}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Projects}
  - {name: Budget__c, type: number, precision: 12, scale: 2}
  - {name: Active__c, type: checkbox}
  - {name: Start__c, type: date}
  - {name: Kickoff__c, type: datetime}
  - name: Phase__c
    type: picklist
    values: [{value: P1, label: Planning}, {value: P2, label: Build}, {value: P3, label: Done}]
"""

# The field that names a record of each object in the cases (unique within the object).
NATURAL_KEYS = {
    "Account": "Name",
    "Contact": "LastName",
    "Opportunity": "Name",
    "Case": "Subject",
    "Task": "Subject",
    "Project__c": "Title__c",
}

# (Name, Industry, AnnualRevenue, NumberOfEmployees, BillingCity, BillingCountry, Rating, Type, Parent)
_ACCOUNT_ROWS: list[tuple[Any, ...]] = [
    ("Global Holdings", "Finance", 90_000_000, 5000, "London", "UK", "Hot", "Customer - Direct", None),
    ("Northwind Group", "Retail", 40_000_000, 1200, "Seattle", "USA", "Warm", "Customer - Channel",
     "Global Holdings"),
    ("Northwind East", "Retail", 12_000_000, 300, "Boston", "USA", "Warm", "Customer - Channel", "Northwind Group"),
    ("Northwind East Retail", "Retail", 2_500_000, 45, "boston", "USA", None, None, "Northwind East"),
    ("Acme Corp", "Technology", 5_000_000, 250, "Paris", "France", "Hot", "Customer - Direct", None),
    ("Acme Labs", "Technology", None, 12, "Paris", "France", "Cold", "Prospect", None),
    ("Bolt Industries", "Manufacturing", 1_200_000, 80, "Berlin", "Germany", "Warm", "Prospect", None),
    ("Cobalt Bank", "Banking", 9_000_000, 1200, "Zürich", "Switzerland", "Hot", "Customer - Direct", None),
    ("delta labs", "Biotechnology", None, 7, None, None, "Cold", "Prospect", None),
    ("Echo 100% Foods", "Food & Beverage", 300_000, 20, "Lyon", "France", None, None, None),
    ("Foxtrot_Ltd", None, 0, 5, "London", "UK", None, "Other", None),
    ("Gamma Energy", "Energy", 75_000_000, 3000, "Houston", "USA", "Hot", "Customer - Direct", None),
    ("Helios Solar", "Energy", 650_000, 40, "Madrid", "Spain", "Warm", "Prospect", None),
    ("Indigo Media", "Media", 2_000_000, 60, "New York", "USA", None, "Customer - Channel", None),
    ("Juniper Health", "Healthcare", 18_000_000, 900, "Toronto", "Canada", "Warm", "Customer - Direct", None),
    ("Kilo Consulting", "Consulting", 450_000, 15, None, "Canada", "Cold", None, None),
    ("Lima Logistics", "Transportation", 3_300_000, 110, "Lima", "Peru", None, "Prospect", None),
    ("Mango Retail", "Retail", None, None, "Sydney", "Australia", None, None, None),
    ("O'Brien & Sons", "Construction", 800_000, 30, "Dublin", "Ireland", "Warm", "Other", None),
    ("Zed Deleted", "Technology", 100, 1, "Nowhere", None, "Cold", None, None),
]
_ACCOUNT_COLUMNS = ("Name", "Industry", "AnnualRevenue", "NumberOfEmployees", "BillingCity", "BillingCountry",
                    "Rating", "Type", "Parent")

# (LastName, FirstName, Account, Email, Birthdate, LeadSource, HasOptedOutOfEmail, Title, Department)
_CONTACT_ROWS: list[tuple[Any, ...]] = [
    ("Archer", "Ann", "Acme Corp", "ann@acme.test", "1990-05-15", "Web", False, "CEO", "Executive"),
    ("Baker", "Bob", "Acme Corp", "BOB@ACME.TEST", "1985-01-20", "Phone Inquiry", True, "CTO", "Engineering"),
    ("Cole", "Cara", "Cobalt Bank", "cara@cobalt.test", "1978-11-02", "Partner Referral", False, "CFO", "Finance"),
    ("Diaz", "Dan", None, None, None, None, False, None, None),
    ("Evans", "Eve", "Bolt Industries", "eve@bolt.test", "1992-07-30", "Web", False, "Engineer", "Engineering"),
    ("Fischer", None, "Bolt Industries", "fischer@bolt.test", "1970-03-03", "Other", True, "Manager", "Operations"),
    ("Garcia", "Gina", "Global Holdings", "gina@global.test", "1988-12-24", "Web", False, "VP Sales", "Sales"),
    ("Hughes", "Hank", "Global Holdings", None, "1965-06-15", "Purchased List", False, "Chairman", "Executive"),
    ("Ito", "Iris", "Northwind Group", "iris@northwind.test", "1995-02-28", "Web", False, "Analyst", "Finance"),
    ("Jones", "Jack", "Northwind East", "jack@northwind.test", "1982-09-09", "Phone Inquiry", True, "Buyer",
     "Purchasing"),
    ("Khan", "Kira", "Northwind East Retail", "kira@nwretail.test", "2000-01-01", None, False, "Clerk", "Sales"),
    ("Lopez", "Luis", "Gamma Energy", "luis@gamma.test", "1975-04-18", "Partner Referral", False, "Engineer",
     "Engineering"),
    ("Moreau", "Marie", "Echo 100% Foods", "marie@echo.test", "1993-10-10", "Web", False, "Chef", "Operations"),
    ("Nguyen", None, "Helios Solar", "nguyen@helios.test", "1987-08-08", "Other", False, "Installer", "Operations"),
    ("O'Neil", "Owen", "Indigo Media", "owen@indigo.test", "1979-05-05", "Web", True, "Editor", "Media"),
    ("Patel", "Priya", "Juniper Health", "priya@juniper.test", "1991-03-14", "Purchased List", False, "Doctor",
     "Medical"),
    ("Quinn", "Quincy", None, "quinn@example.test", "1984-12-31", "Web", False, "Freelancer", None),
    ("Rossi", "Rita", "Kilo Consulting", "rita@kilo.test", "1996-06-01", "Partner Referral", False, "Consultant",
     "Consulting"),
    ("Schmidt", "Stefan", "Bolt Industries", "stefan@bolt.test", "1972-02-29", "Phone Inquiry", False, "Director",
     "Sales"),
    ("Tanaka", "Taro", "Lima Logistics", None, None, None, False, "Driver", "Logistics"),
    ("Ueda", "Umi", "Mango Retail", "umi@mango.test", "1999-09-19", "Web", False, "Clerk", "Sales"),
    ("Vargas", None, "O'Brien & Sons", "vargas@obrien.test", "1968-07-04", "Other", True, "Foreman", "Operations"),
    ("White", "Walt", "Cobalt Bank", "walt@cobalt.test", "1960-01-15", "Web", False, "Chemist", "Research"),
    ("Xu", "Xia", "Acme Labs", "xia@acmelabs.test", "1994-04-04", "Web", False, "Scientist", "Research"),
    ("Young", "Yara", "delta labs", "yara@delta.test", "1989-11-11", "Partner Referral", False, "Researcher",
     "Research"),
    ("Zimmer", "Zoe", "Foxtrot_Ltd", "zoe@foxtrot.test", "1997-12-12", None, False, "Owner", "Executive"),
    ("Adams", "Amy", None, "amy@example.test", "1983-08-19", "Web", True, None, None),
    ("Brown", "Ben", "Acme Corp", None, "1986-02-14", "Purchased List", False, "Sales Rep", "Sales"),
    ("Clark", None, None, None, None, None, False, None, None),
    ("Dunn", "Dora", "Gamma Energy", "dora@gamma.test", "1977-10-31", "Web", False, "Geologist", "Engineering"),
    ("Ellis", "Eli", "Juniper Health", "eli@juniper.test", "1990-05-16", "Phone Inquiry", False, "Nurse", "Medical"),
    ("Ford", "Fay", "Northwind Group", "fay@northwind.test", "1981-01-01", "Web", False, "COO", "Executive"),
    ("Grant", "Gus", "Northwind East", "gus_g@northwind.test", "1974-07-07", "Other", False, "Manager",
     "Operations"),
    ("Hill", "Hope", "Indigo Media", "hope@indigo.test", "1992-02-02", "Web", False, "Growth 100%", "Marketing"),
    ("Irwin", "Ivy", None, "ivy@example.test", "2001-11-30", "Web", False, "Student", None),
    ("James", "Jon", "Lima Logistics", "jon@lima.test", "1985-05-25", "Purchased List", False, "Dispatcher",
     "Logistics"),
    ("Kim", "Kai", "Helios Solar", "kai@helios.test", "1998-03-21", "Web", True, "Engineer", "Engineering"),
    ("Lee", None, "Cobalt Bank", "lee@cobalt.test", "1969-09-30", "Other", False, "Auditor \\ Risk", "Finance"),
    ("Miller", "Mia", "Global Holdings", "mia@global.test", "1993-06-15", "Web", False, "Counsel", "Legal"),
    ("Nash", "Ned", "Zed Deleted", "ned@zed.test", "1980-08-08", "Web", False, "Ghost", "Nowhere"),
]
_CONTACT_COLUMNS = ("LastName", "FirstName", "Account", "Email", "Birthdate", "LeadSource", "HasOptedOutOfEmail",
                    "Title", "Department")
REPORTS_TO = {"Baker": "Archer", "Brown": "Baker"}

# (Name, Account, StageName, Amount, CloseDate, Probability, LeadSource, Type)
_OPPORTUNITY_ROWS: list[tuple[Any, ...]] = [
    ("Acme Big Deal", "Acme Corp", "Closed Won", 500_000, "2026-06-10", 100, "Web", "New Customer"),
    ("Acme Renewal", "Acme Corp", "Prospecting", 120_000, "2026-06-15", 10, "Phone Inquiry",
     "Existing Customer - Upgrade"),
    ("Acme Add-on", "Acme Corp", "Qualification", None, "2026-06-16", 20, None, None),
    ("Bolt Expansion", "Bolt Industries", "Negotiation/Review", 75_000, "2026-07-20", 70, "Partner Referral",
     "Existing Customer - Upgrade"),
    ("Cobalt Platform", "Cobalt Bank", "Closed Lost", 900_000, "2026-02-01", 0, "Web", "New Customer"),
    ("Cobalt Services", "Cobalt Bank", "Closed Won", 250_000, "2026-03-31", 100, "Purchased List",
     "Existing Customer - Replacement"),
    ("Global Merger", "Global Holdings", "Proposal/Price Quote", 5_000_000, "2026-09-30", 60, None, "New Customer"),
    ("Global Audit", "Global Holdings", "Closed Won", 80_000, "2025-12-15", 100, "Other",
     "Existing Customer - Downgrade"),
    ("Northwind Stores", "Northwind Group", "Needs Analysis", 300_000, "2026-06-14", 30, "Web", "New Customer"),
    ("Northwind East Fitout", "Northwind East", "Value Proposition", 45_000.5, "2026-06-20", 40, "Web",
     "New Customer"),
    ("Retail Kiosks", "Northwind East Retail", "Prospecting", 12_000, "2026-06-22", 10, "Phone Inquiry",
     "New Customer"),
    ("Gamma Pipeline", "Gamma Energy", "Id. Decision Makers", 1_500_000, "2026-08-01", 50, "Partner Referral",
     "New Customer"),
    ("Gamma Retrofit", "Gamma Energy", "Closed Lost", 600_000, "2026-04-01", 0, "Web",
     "Existing Customer - Replacement"),
    ("Helios Panels", "Helios Solar", "Perception Analysis", 95_000, "2026-06-01", 35, "Web", "New Customer"),
    ("Indigo Campaign", "Indigo Media", "Closed Won", 30_000, "2026-05-31", 100, "Other",
     "Existing Customer - Upgrade"),
    ("Juniper Clinics", "Juniper Health", "Qualification", 700_000, "2027-01-15", 20, "Web", "New Customer"),
    ("Kilo Advisory", "Kilo Consulting", "Prospecting", 0, "2026-06-05", 10, None, None),
    ("Orphan Opp", None, "Prospecting", None, "2026-10-01", 10, None, None),
    ("Lima Fleet", "Lima Logistics", "Closed Won", 410_000, "2025-06-15", 100, "Web", "New Customer"),
    ("O'Brien Bid", "O'Brien & Sons", "Negotiation/Review", 220_000, "2026-06-29", 80, "Partner Referral",
     "New Customer"),
    ("Zed Opp", "Zed Deleted", "Prospecting", 1000, "2026-06-15", 10, None, None),
    ("Lost Cause", "Acme Labs", "Closed Lost", 5000, "2026-01-10", 0, None, None),
]
_OPPORTUNITY_COLUMNS = ("Name", "Account", "StageName", "Amount", "CloseDate", "Probability", "LeadSource", "Type")

# (Subject, Account, Contact, Status, Priority, Origin, Type, IsEscalated, Parent)
_CASE_ROWS: list[tuple[Any, ...]] = [
    ("Login broken", "Acme Corp", "Archer", "New", "High", "Web", "Electronic", False, None),
    ("Invoice question", "Bolt Industries", None, "Working", "Medium", "Email", "Other", False, None),
    ("Outage in Zurich", "Cobalt Bank", "Cole", "Escalated", "High", "Phone", "Electrical", True, None),
    ("Password reset", "Acme Corp", "Baker", "Closed", "Low", "Web", None, False, None),
    ("Billing dispute", "Global Holdings", "Garcia", "Working", "High", "Email", "Other", False, None),
    ("Feature request", None, "Quinn", "New", "Low", "Web", None, False, None),
    ("Zurich follow-up", "Cobalt Bank", "White", "New", "Medium", "Phone", "Electrical", False,
     "Outage in Zurich"),
]
_CASE_COLUMNS = ("Subject", "Account", "Contact", "Status", "Priority", "Origin", "Type", "IsEscalated", "Parent")

# (Subject, Who (Contact), What (object, key), ActivityDate, Status, Priority, CallDurationInSeconds, Type)
_TASK_ROWS: list[tuple[Any, ...]] = [
    ("Call Acme", "Archer", ("Account", "Acme Corp"), "2026-06-15", "Not Started", "High", 300, "Call"),
    ("Send quote", None, ("Opportunity", "Acme Big Deal"), "2026-06-12", "Completed", "Normal", None, "Email"),
    ("Follow up case", "Baker", ("Case", "Login broken"), "2026-06-16", "In Progress", "Normal", None, "Other"),
    ("Plan week", None, None, None, "Not Started", "Low", None, None),
    ("Visit Global", "Garcia", ("Account", "Global Holdings"), "2026-06-22", "Not Started", "Normal", 3600,
     "Meeting"),
    ("Email Bolt", "Evans", ("Opportunity", "Bolt Expansion"), "2026-06-01", "Completed", "Normal", 60, "Email"),
    ("Review outage", "Cole", ("Case", "Outage in Zurich"), "2026-06-14", "Waiting on someone else", "High", None,
     "Other"),
    ("Call Quinn", "Quinn", None, "2026-06-18", "Deferred", "Low", 120, "Call"),
]
_TASK_COLUMNS = ("Subject", "Who", "What", "ActivityDate", "Status", "Priority", "CallDurationInSeconds", "Type")

# (Title__c, Account, Tags__c, Budget__c, Active__c, Start__c, Kickoff__c, Phase__c)
_PROJECT_ROWS: list[tuple[Any, ...]] = [
    ("Apollo", "Acme Corp", "A;B", 10_000.5, True, "2026-06-15", "2026-06-15T09:30:00Z", "P1"),
    ("Borealis", "Acme Corp", "B;C;D", 250_000, False, "2026-05-01", "2026-04-30T23:00:00Z", "P2"),
    ("Cygnus", "Global Holdings", "A", 0, True, "2026-07-01", "2026-07-01T00:00:00Z", "P2"),
    ("Draco", None, None, None, None, None, None, None),
    ("Eridanus", "Cobalt Bank", "D", 999.99, True, "2025-12-31", "2025-12-31T23:59:59Z", "P3"),
    ("Fornax", "Northwind East", "A;C", 42, False, "2026-06-14", "2026-06-14T12:00:00+02:00", "P1"),
    ("Gemini", "Gamma Energy", "A;B;C;D", 1_000_000, True, "2026-03-15", "2026-03-15T08:00:00Z", "P3"),
    ("Hydra", "Acme Labs", "C", -50, False, "2026-06-16", "2026-06-16T00:00:00Z", "P1"),
    ("Scrapped", "Acme Corp", "B", 1, True, "2026-01-01", "2026-01-01T10:00:00Z", "P1"),
]
_PROJECT_COLUMNS = ("Title__c", "Account", "Tags__c", "Budget__c", "Active__c", "Start__c", "Kickoff__c",
                    "Phase__c")

# Deleted after creation (the recycle bin): the account cascades to its contact and opportunity.
DELETED = [("Account", "Zed Deleted"), ("Opportunity", "Lost Cause"), ("Project__c", "Scrapped")]
DELETED_BY_CASCADE = [("Contact", "Nash"), ("Opportunity", "Zed Opp")]


def _rows(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


ACCOUNTS = _rows(_ACCOUNT_COLUMNS, _ACCOUNT_ROWS)
CONTACTS = _rows(_CONTACT_COLUMNS, _CONTACT_ROWS)
OPPORTUNITIES = _rows(_OPPORTUNITY_COLUMNS, _OPPORTUNITY_ROWS)
CASES = _rows(_CASE_COLUMNS, _CASE_ROWS)
TASKS = _rows(_TASK_COLUMNS, _TASK_ROWS)
PROJECTS = _rows(_PROJECT_COLUMNS, _PROJECT_ROWS)

# Natural keys of live (not deleted) records, per object, in creation order.
_deleted_keys = set(DELETED) | set(DELETED_BY_CASCADE)
LIVE = {
    obj: [r[NATURAL_KEYS[obj]] for r in rows if (obj, r[NATURAL_KEYS[obj]]) not in _deleted_keys]
    for obj, rows in (("Account", ACCOUNTS), ("Contact", CONTACTS), ("Opportunity", OPPORTUNITIES),
                      ("Case", CASES), ("Task", TASKS), ("Project__c", PROJECTS))
}


@dataclass
class DataSet:
    """Ids of the sample records by object and natural key, and the way back."""

    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (object, natural key)

    def id(self, object_name: str, key: str) -> str:
        return self.ids[object_name][key]

    def key(self, record_id: str) -> str:
        return self.keys[record_id][1]

    def add(self, object_name: str, key: str, record_id: str) -> None:
        self.ids.setdefault(object_name, {})[key] = record_id
        self.keys[record_id] = (object_name, key)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def load(org: Any) -> DataSet:
    """Create the data set in ``org`` (one unit of work) and return the ids by natural key."""
    ctx = org.admin_context()
    data = DataSet()

    def create(object_name: str, records: list[dict[str, Any]]) -> None:
        results = org.records.create(ctx, object_name, records)
        failed = [(i, r.errors) for i, r in enumerate(results) if not r.success]
        assert not failed, f"{object_name}: {failed}"
        key_field = NATURAL_KEYS[object_name]
        for record, result in zip(records, results, strict=True):
            data.add(object_name, record[key_field], result.id)

    def account(name: str | None) -> str | None:
        return None if name is None else data.id("Account", name)

    def contact(name: str | None) -> str | None:
        return None if name is None else data.id("Contact", name)

    with org.records.unit_of_work(ctx):
        create("Account", [_clean({k: v for k, v in a.items() if k != "Parent"}) for a in ACCOUNTS])
        updates = [{"Id": data.id("Account", a["Name"]), "ParentId": account(a["Parent"])}
                   for a in ACCOUNTS if a["Parent"]]
        results = org.records.update(ctx, "Account", updates)
        assert all(r.success for r in results), [r.errors for r in results]

        create("Contact", [_clean({**{k: v for k, v in c.items() if k != "Account"},
                                   "AccountId": account(c["Account"])}) for c in CONTACTS])
        results = org.records.update(ctx, "Contact", [{"Id": contact(child), "ReportsToId": contact(boss)}
                                                      for child, boss in REPORTS_TO.items()])
        assert all(r.success for r in results), [r.errors for r in results]

        create("Opportunity", [_clean({**{k: v for k, v in o.items() if k != "Account"},
                                       "AccountId": account(o["Account"])}) for o in OPPORTUNITIES])

        create("Case", [_clean({"Subject": c["Subject"], "AccountId": account(c["Account"]),
                                "ContactId": contact(c["Contact"]), "Status": c["Status"],
                                "Priority": c["Priority"], "Origin": c["Origin"], "Type": c["Type"],
                                "IsEscalated": c["IsEscalated"]}) for c in CASES])
        results = org.records.update(ctx, "Case", [{"Id": data.id("Case", c["Subject"]),
                                                    "ParentId": data.id("Case", c["Parent"])}
                                                   for c in CASES if c["Parent"]])
        assert all(r.success for r in results), [r.errors for r in results]

        create("Task", [_clean({"Subject": t["Subject"], "WhoId": contact(t["Who"]),
                                "WhatId": None if t["What"] is None else data.id(*t["What"]),
                                "ActivityDate": t["ActivityDate"], "Status": t["Status"],
                                "Priority": t["Priority"], "CallDurationInSeconds": t["CallDurationInSeconds"],
                                "Type": t["Type"]}) for t in TASKS])

        create("Project__c", [_clean({**{k: v for k, v in p.items() if k != "Account"},
                                      "Account__c": account(p["Account"])}) for p in PROJECTS])

        results = org.records.delete(ctx, [data.id(obj, key) for obj, key in DELETED])
        assert all(r.success for r in results), [r.errors for r in results]
    return data


__all__ = ["ACCOUNTS", "CASES", "CONTACTS", "DELETED", "DELETED_BY_CASCADE", "LIVE", "NATURAL_KEYS",
           "OPPORTUNITIES", "PROJECTS", "PROJECT_YAML", "TASKS", "TODAY", "DataSet", "load"]
