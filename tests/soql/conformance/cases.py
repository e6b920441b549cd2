"""The SOQL conformance table: queries over the sample data set (:mod:`.data`) and what they must return.

Each :class:`Case` is one query and one expectation:

- ``keys``: the natural keys (see ``data.NATURAL_KEYS``) of the returned records, found through the record
  ids in ``attributes.url``; compared in order when the outer query has an ``ORDER BY``, as a multiset
  otherwise. ``totalSize`` must equal ``total`` (default: the number of keys).
- ``records``: the full records with ``attributes`` stripped (recursively); :class:`Ref` stands for the id of
  a sample record, :class:`Block` for a child relationship block ``{totalSize, done, records}``.
- ``total``: alone, for ``COUNT()`` queries (no records).
- ``fields``: the keys of every returned record (for ``FIELDS()``), with ``records`` optionally holding a
  subset of values to check.
- ``error``: the expected error code (and ``message``, a fragment of the message's last line).
- ``robust``: no particular answer, but never a crash: a page, or an ``InterlinkError`` with a 4xx status.

``xfail`` marks a case the engine gets wrong today (strictly: the case must fail), with the query, the expected
and the actual behaviour; ``xfail_backends`` limits it to some store backends.

Query text may name sample ids as ``{Object:natural key}`` (18 characters) or ``{Object:natural key:15}``.
"Today" is 2026-06-15, a Monday (see ``data.TODAY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ref:
    """The id of a sample record."""

    object: str
    key: str


@dataclass(frozen=True)
class Block:
    """A child relationship block: ``{"totalSize": len(records), "done": True, "records": records}``."""

    records: tuple[Any, ...]
    ordered: bool = True


@dataclass(frozen=True)
class Case:
    id: str
    soql: str
    keys: tuple[str, ...] | None = None
    records: tuple[Any, ...] | None = None
    total: int | None = None
    fields: tuple[str, ...] | None = None
    error: str | None = None
    message: str | None = None
    ordered: bool | None = None
    include_deleted: bool = False
    xfail: str | None = None
    xfail_backends: tuple[str, ...] = ()  # empty: the xfail applies to every backend
    robust: bool = False  # any result, or an InterlinkError answered with a 4xx status; never anything else

    @property
    def valid(self) -> bool:
        return self.error is None and not self.robust

    def xfails_on(self, backend: str) -> bool:
        return self.xfail is not None and (not self.xfail_backends or backend in self.xfail_backends)

    @property
    def is_ordered(self) -> bool:
        if self.ordered is not None:
            return self.ordered
        return has_outer_order_by(self.soql)


def has_outer_order_by(soql: str) -> bool:
    """Whether the outer query (not a subquery) has an ORDER BY."""
    depth = 0
    outer = []
    in_string = False
    i = 0
    while i < len(soql):
        char = soql[i]
        if in_string:
            if char == "\\":
                i += 2
                continue
            if char == "'":
                in_string = False
        elif char == "'":
            in_string = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            outer.append(char)
        i += 1
    return re.search(r"\bORDER\s+BY\b", "".join(outer), re.IGNORECASE) is not None


def K(case_id: str, soql: str, keys: list[str], **kwargs: Any) -> Case:
    return Case(case_id, soql, keys=tuple(keys), **kwargs)


def R(case_id: str, soql: str, records: list[Any], **kwargs: Any) -> Case:
    return Case(case_id, soql, records=tuple(records), **kwargs)


def N(case_id: str, soql: str, total: int, **kwargs: Any) -> Case:
    return Case(case_id, soql, total=total, **kwargs)


def E(case_id: str, soql: str, code: str, message: str | None = None, **kwargs: Any) -> Case:
    return Case(case_id, soql, error=code, message=message, **kwargs)


def X(case_id: str, soql: str, **kwargs: Any) -> Case:
    return Case(case_id, soql, robust=True, **kwargs)


def B(*records: Any, ordered: bool = True) -> Block:
    return Block(tuple(records), ordered)


# -- frequently used lists -----------------------------------------------------------------------------------------

ACCOUNTS_BY_NAME = [
    "Acme Corp", "Acme Labs", "Bolt Industries", "Cobalt Bank", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd",
    "Gamma Energy", "Global Holdings", "Helios Solar", "Indigo Media", "Juniper Health", "Kilo Consulting",
    "Lima Logistics", "Mango Retail", "Northwind East", "Northwind East Retail", "Northwind Group",
    "O'Brien & Sons",
]
ALL_ACCOUNTS = set(ACCOUNTS_BY_NAME)


def accounts_except(*names: str) -> list[str]:
    missing = set(names) - ALL_ACCOUNTS
    assert not missing, missing
    return [n for n in ACCOUNTS_BY_NAME if n not in names]


NORTHWIND = ["Northwind Group", "Northwind East", "Northwind East Retail"]
THIS_MONTH_OPPS = ["Acme Big Deal", "Acme Renewal", "Acme Add-on", "Northwind Stores", "Northwind East Fitout",
                   "Retail Kiosks", "Helios Panels", "Kilo Advisory", "O'Brien Bid"]

# -- WHERE: text, picklist, numbers, ids ---------------------------------------------------------------------------

TEXT = [
    K("text_eq", "SELECT Name FROM Account WHERE Name = 'Acme Corp'", ["Acme Corp"]),
    K("text_eq_case_insensitive", "SELECT Name FROM Account WHERE Name = 'ACME corp'", ["Acme Corp"]),
    K("text_eq_escaped_quote", "SELECT Name FROM Account WHERE Name = 'O\\'Brien & Sons'", ["O'Brien & Sons"]),
    K("text_ne_includes_nulls", "SELECT Name FROM Account WHERE BillingCity != 'Paris'",
      accounts_except("Acme Corp", "Acme Labs")),
    K("text_ne_case_insensitive", "SELECT Name FROM Account WHERE BillingCity != 'BOSTON'",
      accounts_except("Northwind East", "Northwind East Retail")),
    K("text_lt", "SELECT Name FROM Account WHERE Name < 'B'", ["Acme Corp", "Acme Labs"]),
    K("text_le_case_insensitive", "SELECT Name FROM Account WHERE Name <= 'bolt industries'",
      ["Acme Corp", "Acme Labs", "Bolt Industries"]),
    K("text_gt", "SELECT Name FROM Account WHERE Name > 'n'", [*NORTHWIND, "O'Brien & Sons"]),
    K("text_ge_skips_nulls", "SELECT Name FROM Account WHERE BillingCity >= 'S'",
      ["Northwind Group", "Cobalt Bank", "Mango Retail", "Juniper Health"]),
    K("text_in_case_insensitive", "SELECT Name FROM Account WHERE Name IN ('ACME CORP', 'Delta Labs', 'nobody')",
      ["Acme Corp", "delta labs"]),
    K("text_not_in_includes_nulls", "SELECT Name FROM Account WHERE BillingCity NOT IN ('London', 'Paris', 'boston')",
      accounts_except("Global Holdings", "Foxtrot_Ltd", "Acme Corp", "Acme Labs", "Northwind East",
                      "Northwind East Retail")),
    K("email_eq_case_insensitive", "SELECT LastName FROM Contact WHERE Email = 'bob@acme.test'", ["Baker"]),
    K("email_lt", "SELECT LastName FROM Contact WHERE Email < 'b'", ["Archer", "Adams"]),
    K("email_ge", "SELECT LastName FROM Contact WHERE Email >= 'Y'", ["Young", "Zimmer"]),
    K("autonumber_gt", "SELECT Title__c FROM Project__c WHERE Name > 'PRJ-0006'", ["Gemini", "Hydra"]),
    K("autonumber_eq", "SELECT Title__c FROM Project__c WHERE Name = 'prj-0003'", ["Cygnus"]),
    K("text_eq_non_ascii", "SELECT Name FROM Account WHERE BillingCity = 'Zürich'", ["Cobalt Bank"]),
    K("text_eq_non_ascii_case_insensitive", "SELECT Name FROM Account WHERE BillingCity = 'ZÜRICH'", ["Cobalt Bank"]),
    K("text_eq_backslash", "SELECT LastName FROM Contact WHERE Title = 'Auditor \\\\ Risk'", ["Lee"]),
    K("text_eq_percent_is_literal", "SELECT Name FROM Account WHERE Name = 'Echo 100% Foods'", ["Echo 100% Foods"]),
    K("text_eq_no_wildcards", "SELECT Name FROM Account WHERE Name = 'Foxtrot%'", []),
    K("text_empty_string_is_null", "SELECT Name FROM Account WHERE BillingCity = ''",
      ["delta labs", "Kilo Consulting"]),
    K("text_ne_empty_string", "SELECT Name FROM Account WHERE BillingCity != ''",
      accounts_except("delta labs", "Kilo Consulting")),
    K("text_in_duplicates", "SELECT Name FROM Account WHERE Name IN ('Acme Corp', 'acme corp')", ["Acme Corp"]),
    K("text_in_with_null", "SELECT Name FROM Account WHERE Name IN ('Acme Corp', null)", ["Acme Corp"]),
    K("text_not_in_with_null", "SELECT Name FROM Account WHERE Name NOT IN ('Acme Corp', null) AND "
      "Industry = 'Technology'", ["Acme Labs"]),
    K("text_range_or", "SELECT Name FROM Account WHERE Name > 'Z' OR Name < 'b'", ["Acme Corp", "Acme Labs"]),
    K("compound_name_without_first_name", "SELECT LastName FROM Contact WHERE Name = 'fischer'", ["Fischer"]),
]

PICKLIST = [
    K("picklist_eq_case_insensitive", "SELECT Name FROM Account WHERE Industry = 'retail'",
      [*NORTHWIND, "Mango Retail"]),
    K("picklist_ne_includes_nulls", "SELECT Name FROM Account WHERE Industry != 'Retail'",
      accounts_except(*NORTHWIND, "Mango Retail")),
    K("picklist_in", "SELECT Name FROM Account WHERE Industry IN ('Energy', 'banking')",
      ["Gamma Energy", "Helios Solar", "Cobalt Bank"]),
    K("picklist_not_in_includes_nulls",
      "SELECT Name FROM Account WHERE Industry NOT IN ('Retail', 'Technology', 'Energy')",
      accounts_except(*NORTHWIND, "Mango Retail", "Acme Corp", "Acme Labs", "Gamma Energy", "Helios Solar")),
    K("picklist_eq_null", "SELECT Name FROM Account WHERE Industry = null", ["Foxtrot_Ltd"]),
    K("picklist_ne_null", "SELECT Name FROM Account WHERE Industry != null", accounts_except("Foxtrot_Ltd")),
    K("picklist_like", "SELECT Name FROM Account WHERE Industry LIKE 'bio%'", ["delta labs"]),
    K("picklist_in_with_null", "SELECT Name FROM Account WHERE Rating IN ('Hot', null)",
      ["Global Holdings", "Acme Corp", "Cobalt Bank", "Gamma Energy", "Northwind East Retail", "Echo 100% Foods",
       "Foxtrot_Ltd", "Indigo Media", "Lima Logistics", "Mango Retail"]),
    K("picklist_not_in_with_null", "SELECT Name FROM Account WHERE Rating NOT IN ('Hot', null)",
      ["Northwind Group", "Northwind East", "Bolt Industries", "Helios Solar", "Juniper Health", "O'Brien & Sons",
       "Acme Labs", "delta labs", "Kilo Consulting"]),
]

NUMBERS = [
    K("currency_eq_zero", "SELECT Name FROM Account WHERE AnnualRevenue = 0", ["Foxtrot_Ltd"]),
    K("currency_ne_includes_nulls", "SELECT Name FROM Account WHERE AnnualRevenue != 0",
      accounts_except("Foxtrot_Ltd")),
    K("currency_gt", "SELECT Name FROM Account WHERE AnnualRevenue > 10000000",
      ["Global Holdings", "Northwind Group", "Northwind East", "Gamma Energy", "Juniper Health"]),
    K("currency_ge_decimal", "SELECT Name FROM Account WHERE AnnualRevenue >= 18000000.00",
      ["Global Holdings", "Northwind Group", "Gamma Energy", "Juniper Health"]),
    K("currency_lt_skips_nulls", "SELECT Name FROM Account WHERE AnnualRevenue < 500000",
      ["Echo 100% Foods", "Foxtrot_Ltd", "Kilo Consulting"]),
    K("currency_le", "SELECT Name FROM Account WHERE AnnualRevenue <= 450000.0",
      ["Echo 100% Foods", "Foxtrot_Ltd", "Kilo Consulting"]),
    K("currency_in", "SELECT Name FROM Account WHERE AnnualRevenue IN (0, 300000)", ["Foxtrot_Ltd", "Echo 100% Foods"]),
    K("currency_null", "SELECT Name FROM Account WHERE AnnualRevenue = null",
      ["Acme Labs", "delta labs", "Mango Retail"]),
    K("currency_range_exponent", "SELECT Name FROM Account WHERE AnnualRevenue > 1e6 AND AnnualRevenue < 3.3E6",
      ["Northwind East Retail", "Bolt Industries", "Indigo Media"]),
    K("int_eq", "SELECT Name FROM Account WHERE NumberOfEmployees = 1200", ["Northwind Group", "Cobalt Bank"]),
    K("int_ne_includes_nulls", "SELECT Name FROM Account WHERE NumberOfEmployees != 1200",
      accounts_except("Northwind Group", "Cobalt Bank")),
    K("int_gt", "SELECT Name FROM Account WHERE NumberOfEmployees > 1000",
      ["Global Holdings", "Northwind Group", "Cobalt Bank", "Gamma Energy"]),
    K("int_ge", "SELECT Name FROM Account WHERE NumberOfEmployees >= 900",
      ["Global Holdings", "Northwind Group", "Cobalt Bank", "Gamma Energy", "Juniper Health"]),
    K("int_lt", "SELECT Name FROM Account WHERE NumberOfEmployees < 20",
      ["Acme Labs", "delta labs", "Foxtrot_Ltd", "Kilo Consulting"]),
    K("int_le", "SELECT Name FROM Account WHERE NumberOfEmployees <= 12", ["Acme Labs", "delta labs", "Foxtrot_Ltd"]),
    K("int_not_in_includes_nulls", "SELECT Name FROM Account WHERE NumberOfEmployees NOT IN (5, 7, 12)",
      accounts_except("Foxtrot_Ltd", "delta labs", "Acme Labs")),
    K("double_lt_negative", "SELECT Title__c FROM Project__c WHERE Budget__c < 0", ["Hydra"]),
    K("double_eq_negative", "SELECT Title__c FROM Project__c WHERE Budget__c = -50", ["Hydra"]),
    K("double_range", "SELECT Title__c FROM Project__c WHERE Budget__c > 999.98 AND Budget__c < 10000.5",
      ["Eridanus"]),
    K("double_ge", "SELECT Title__c FROM Project__c WHERE Budget__c >= 10000.5", ["Apollo", "Borealis", "Gemini"]),
    K("double_le", "SELECT Title__c FROM Project__c WHERE Budget__c <= 0", ["Cygnus", "Hydra"]),
    K("double_eq_exponent", "SELECT Title__c FROM Project__c WHERE Budget__c = 1e6", ["Gemini"]),
    K("double_ne_includes_nulls", "SELECT Title__c FROM Project__c WHERE Budget__c != 0",
      ["Apollo", "Borealis", "Draco", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("percent_eq", "SELECT Name FROM Opportunity WHERE Probability = 100",
      ["Acme Big Deal", "Cobalt Services", "Global Audit", "Indigo Campaign", "Lima Fleet"]),
    K("percent_lt", "SELECT Name FROM Opportunity WHERE Probability < 20",
      ["Acme Renewal", "Cobalt Platform", "Retail Kiosks", "Gamma Retrofit", "Kilo Advisory", "Orphan Opp"]),
    K("percent_range", "SELECT Name FROM Opportunity WHERE Probability > 35 AND Probability < 70",
      ["Global Merger", "Northwind East Fitout", "Gamma Pipeline"]),
    K("percent_ge", "SELECT Name FROM Opportunity WHERE Probability >= 70",
      ["Bolt Expansion", "O'Brien Bid", "Acme Big Deal", "Cobalt Services", "Global Audit", "Indigo Campaign",
       "Lima Fleet"]),
    N("percent_ne_count", "SELECT COUNT() FROM Opportunity WHERE Probability != 10", 16),
    N("int_gt_negative", "SELECT COUNT() FROM Account WHERE NumberOfEmployees > -1", 18),
    K("currency_decimal_equality", "SELECT Name FROM Opportunity WHERE Amount = 45000.50", ["Northwind East Fitout"]),
    K("currency_in_decimal_then_integer", "SELECT Name FROM Opportunity WHERE Amount IN (45000.5, 12000)",
      ["Northwind East Fitout", "Retail Kiosks"]),
    K("currency_in_integer_then_decimal", "SELECT Name FROM Opportunity WHERE Amount IN (12000, 45000.5)",
      ["Northwind East Fitout", "Retail Kiosks"]),
    K("double_in_integer_then_decimal", "SELECT Title__c FROM Project__c WHERE Budget__c IN (42, 999.99)",
      ["Fornax", "Eridanus"]),
    K("double_not_in_integer_then_decimal", "SELECT Title__c FROM Project__c WHERE Budget__c NOT IN (42, 999.99)",
      ["Apollo", "Borealis", "Cygnus", "Draco", "Gemini", "Hydra"]),
]

IDS = [
    K("id_eq", "SELECT Name FROM Account WHERE Id = '{Account:Acme Corp}'", ["Acme Corp"]),
    K("id_eq_15_chars", "SELECT Name FROM Account WHERE Id = '{Account:Cobalt Bank:15}'", ["Cobalt Bank"]),
    K("id_in_mixed_lengths", "SELECT Name FROM Account WHERE Id IN ('{Account:Acme Corp}', '{Account:Cobalt Bank:15}')",
      ["Acme Corp", "Cobalt Bank"]),
    K("id_ne", "SELECT Name FROM Account WHERE Id != '{Account:Acme Corp}'", accounts_except("Acme Corp")),
    K("reference_eq", "SELECT Name FROM Account WHERE ParentId = '{Account:Global Holdings}'", ["Northwind Group"]),
    K("reference_eq_null", "SELECT Name FROM Account WHERE ParentId = null", accounts_except(*NORTHWIND)),
    K("reference_ne_null", "SELECT Name FROM Account WHERE ParentId != null", NORTHWIND),
    K("reference_in", "SELECT LastName FROM Contact WHERE AccountId IN ('{Account:Acme Corp}', '{Account:Acme Labs}')",
      ["Archer", "Baker", "Brown", "Xu"]),
    K("reference_null", "SELECT LastName FROM Contact WHERE AccountId = null",
      ["Diaz", "Quinn", "Adams", "Clark", "Irwin"]),
    N("reference_ne_count", "SELECT COUNT() FROM Contact WHERE AccountId != '{Account:Acme Corp}'", 36),
    K("id_eq_null", "SELECT Name FROM Account WHERE Id = null", []),
]

BOOLEANS = [
    K("boolean_true", "SELECT LastName FROM Contact WHERE HasOptedOutOfEmail = true",
      ["Baker", "Fischer", "Jones", "O'Neil", "Vargas", "Adams", "Kim"]),
    N("boolean_false_count", "SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = false", 32),
    N("boolean_ne_true_count", "SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail != TRUE", 32),
    K("checkbox_true", "SELECT Title__c FROM Project__c WHERE Active__c = true",
      ["Apollo", "Cygnus", "Eridanus", "Gemini"]),
    K("checkbox_false", "SELECT Title__c FROM Project__c WHERE Active__c = false",
      ["Borealis", "Draco", "Fornax", "Hydra"]),
    K("checkbox_ne_false", "SELECT Title__c FROM Project__c WHERE Active__c != false",
      ["Apollo", "Cygnus", "Eridanus", "Gemini"]),
    K("checkbox_not_true", "SELECT Title__c FROM Project__c WHERE NOT Active__c = true",
      ["Borealis", "Draco", "Fornax", "Hydra"]),
    K("boolean_standard", "SELECT Subject FROM Case WHERE IsEscalated = true", ["Outage in Zurich"]),
    K("boolean_in", "SELECT Title__c FROM Project__c WHERE Active__c IN (true)",
      ["Apollo", "Cygnus", "Eridanus", "Gemini"]),
]

# -- LIKE ------------------------------------------------------------------------------------------------------

LIKE = [
    K("like_prefix_case_insensitive", "SELECT Name FROM Account WHERE Name LIKE 'acme%'", ["Acme Corp", "Acme Labs"]),
    K("like_suffix", "SELECT Name FROM Account WHERE Name LIKE '%LABS'", ["Acme Labs", "delta labs"]),
    K("like_underscore_wildcard", "SELECT Name FROM Account WHERE Name LIKE '_olt%'", ["Bolt Industries"]),
    K("like_escaped_percent", "SELECT Name FROM Account WHERE Name LIKE '%100\\%%'", ["Echo 100% Foods"]),
    K("like_escaped_underscore", "SELECT Name FROM Account WHERE Name LIKE '%\\_%'", ["Foxtrot_Ltd"]),
    K("like_no_wildcard_is_equality", "SELECT Name FROM Account WHERE Name LIKE 'northwind east'",
      ["Northwind East"]),
    K("like_prefix_two", "SELECT Name FROM Account WHERE Name LIKE 'Northwind East%'",
      ["Northwind East", "Northwind East Retail"]),
    K("like_escaped_quote", "SELECT Name FROM Account WHERE Name LIKE 'o\\'brien%'", ["O'Brien & Sons"]),
    K("like_inner_wildcards", "SELECT Name FROM Account WHERE Name LIKE '%o_t%'",
      [*NORTHWIND, "Bolt Industries", "Foxtrot_Ltd"]),
    K("like_city_case_insensitive", "SELECT Name FROM Account WHERE BillingCity LIKE 'B%'",
      ["Northwind East", "Northwind East Retail", "Bolt Industries"]),
    K("not_like", "SELECT Name FROM Account WHERE NOT Name LIKE '%a%'",
      ["Northwind Group", "Bolt Industries", "Echo 100% Foods", "Foxtrot_Ltd", "Kilo Consulting", "O'Brien & Sons"]),
    K("like_email_domain", "SELECT LastName FROM Contact WHERE Email LIKE '%@NORTHWIND.test'",
      ["Ito", "Jones", "Ford", "Grant"]),
    K("like_email_escaped_underscore", "SELECT LastName FROM Contact WHERE Email LIKE '%\\_%'", ["Grant"]),
    K("like_title_escaped_percent", "SELECT LastName FROM Contact WHERE Title LIKE '%\\%'", ["Hill"]),
    K("not_like_includes_nulls", "SELECT LastName FROM Contact WHERE NOT Department LIKE '%e%'",
      ["Diaz", "Jones", "Quinn", "Rossi", "Tanaka", "Adams", "Clark", "Irwin", "James"]),
    K("like_name_compound", "SELECT LastName FROM Contact WHERE Name LIKE 'a% a%'", ["Archer", "Adams"]),
    K("like_underscore_matches_space", "SELECT Name FROM Account WHERE Name LIKE 'acme_corp'", ["Acme Corp"]),
    K("like_escaped_backslash", "SELECT LastName FROM Contact WHERE Title LIKE '%\\\\%'", ["Lee"]),
    K("like_quote_inside", "SELECT Name FROM Account WHERE Name LIKE '%\\'%'", ["O'Brien & Sons"]),
    N("like_match_all", "SELECT COUNT() FROM Account WHERE Name LIKE '%'", 19),
    K("like_non_ascii_same_case", "SELECT Name FROM Account WHERE BillingCity LIKE 'zü%'", ["Cobalt Bank"]),
    K("like_non_ascii_case_insensitive", "SELECT Name FROM Account WHERE BillingCity LIKE 'ZÜ%'", ["Cobalt Bank"]),
]

# -- null handling, boolean logic ------------------------------------------------------------------------------

NULLS_AND_LOGIC = [
    K("null_eq", "SELECT Name FROM Account WHERE BillingCity = null", ["delta labs", "Kilo Consulting"]),
    K("null_ne", "SELECT Name FROM Account WHERE BillingCity != null",
      accounts_except("delta labs", "Kilo Consulting")),
    K("null_ne_value_includes_nulls", "SELECT Name FROM Account WHERE BillingCity != 'London'",
      accounts_except("Global Holdings", "Foxtrot_Ltd")),
    K("null_not_eq_includes_nulls", "SELECT Name FROM Account WHERE NOT (BillingCountry = 'USA')",
      accounts_except(*NORTHWIND, "Gamma Energy", "Indigo Media")),
    K("null_firstname", "SELECT LastName FROM Contact WHERE FirstName = null",
      ["Fischer", "Nguyen", "Vargas", "Clark", "Lee"]),
    K("null_date", "SELECT LastName FROM Contact WHERE Birthdate = null", ["Diaz", "Tanaka", "Clark"]),
    K("null_and_value", "SELECT LastName FROM Contact WHERE Email = null AND AccountId != null",
      ["Hughes", "Tanaka", "Brown"]),
    K("and_or_parenthesized_left",
      "SELECT Name FROM Account WHERE (Industry = 'Retail' AND Rating = 'Warm') OR Industry = 'Energy'",
      ["Northwind Group", "Northwind East", "Gamma Energy", "Helios Solar"]),
    K("and_or_parenthesized_right",
      "SELECT Name FROM Account WHERE Industry = 'Retail' AND (Rating = 'Warm' OR Industry = 'Energy')",
      ["Northwind Group", "Northwind East"]),
    K("not_of_or_includes_nulls", "SELECT Name FROM Account WHERE NOT (Industry = 'Retail' OR Industry = 'Technology')",
      accounts_except(*NORTHWIND, "Mango Retail", "Acme Corp", "Acme Labs")),
    K("not_binds_tighter_than_and", "SELECT Name FROM Account WHERE NOT Industry = 'Retail' AND Rating = 'Hot'",
      ["Global Holdings", "Acme Corp", "Cobalt Bank", "Gamma Energy"]),
    K("three_groups",
      "SELECT Name FROM Account WHERE (Rating = 'Hot' OR Rating = 'Warm') AND (BillingCountry = 'USA' OR "
      "BillingCountry = 'UK') AND NumberOfEmployees > 500",
      ["Global Holdings", "Northwind Group", "Gamma Energy"]),
    K("double_not", "SELECT Name FROM Account WHERE NOT (NOT (Industry = 'Energy'))",
      ["Gamma Energy", "Helios Solar"]),
    K("or_chain", "SELECT Name FROM Account WHERE Industry = 'Energy' OR Industry = 'Banking' OR Name LIKE 'Kilo%'",
      ["Gamma Energy", "Helios Solar", "Cobalt Bank", "Kilo Consulting"]),
    K("and_chain", "SELECT Name FROM Account WHERE BillingCountry = 'France' AND Industry = 'Technology' AND "
      "AnnualRevenue != null", ["Acme Corp"]),
    K("nested_not_and", "SELECT Name FROM Account WHERE Industry = 'Retail' AND NOT (Rating = 'Warm' AND "
      "NumberOfEmployees > 500)", ["Northwind East", "Northwind East Retail", "Mango Retail"]),
    K("not_range_includes_nulls", "SELECT Name FROM Account WHERE NOT (NumberOfEmployees > 100)",
      ["Northwind East Retail", "Acme Labs", "Bolt Industries", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd",
       "Helios Solar", "Indigo Media", "Kilo Consulting", "Mango Retail", "O'Brien & Sons"]),
    K("not_eq_null", "SELECT Name FROM Account WHERE NOT (Industry = null)", accounts_except("Foxtrot_Ltd")),
    N("not_in_with_null", "SELECT COUNT() FROM Account WHERE NOT (Industry IN ('Retail', null))", 14),
    K("not_includes", "SELECT Title__c FROM Project__c WHERE NOT Tags__c INCLUDES ('A')",
      ["Borealis", "Draco", "Eridanus", "Hydra"]),
    K("not_in_parenthesized", "SELECT Name FROM Account WHERE NOT (Industry IN ('Retail', 'Energy') OR "
      "Rating = null)", ["Global Holdings", "Acme Corp", "Acme Labs", "Bolt Industries", "Cobalt Bank", "delta labs",
                         "Juniper Health", "Kilo Consulting", "O'Brien & Sons"]),
]

# -- dates -------------------------------------------------------------------------------------------------------

DATES = [
    K("date_eq", "SELECT Name FROM Opportunity WHERE CloseDate = 2026-06-15", ["Acme Renewal"]),
    N("date_ne_count", "SELECT COUNT() FROM Opportunity WHERE CloseDate != 2026-06-15", 19),
    K("date_lt", "SELECT Name FROM Opportunity WHERE CloseDate < 2026-01-01", ["Global Audit", "Lima Fleet"]),
    K("date_le", "SELECT Name FROM Opportunity WHERE CloseDate <= 2026-02-01",
      ["Global Audit", "Lima Fleet", "Cobalt Platform"]),
    K("date_gt", "SELECT Name FROM Opportunity WHERE CloseDate > 2026-09-30", ["Juniper Clinics", "Orphan Opp"]),
    K("date_ge", "SELECT Name FROM Opportunity WHERE CloseDate >= 2026-09-30",
      ["Juniper Clinics", "Orphan Opp", "Global Merger"]),
    K("date_in", "SELECT Title__c FROM Project__c WHERE Start__c IN (2026-06-14, 2026-06-16)", ["Fornax", "Hydra"]),
    K("date_ne_includes_nulls", "SELECT Title__c FROM Project__c WHERE Start__c != 2026-06-15",
      ["Borealis", "Cygnus", "Draco", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("birthdate_lt", "SELECT LastName FROM Contact WHERE Birthdate < 1970-01-01",
      ["Hughes", "Vargas", "White", "Lee"]),
    K("birthdate_ge", "SELECT LastName FROM Contact WHERE Birthdate >= 2000-01-01", ["Khan", "Irwin"]),
    K("datetime_eq_utc", "SELECT Title__c FROM Project__c WHERE Kickoff__c = 2026-06-15T09:30:00Z", ["Apollo"]),
    K("datetime_eq_millis", "SELECT Title__c FROM Project__c WHERE Kickoff__c = 2026-06-15T09:30:00.000Z",
      ["Apollo"]),
    K("datetime_eq_offset", "SELECT Title__c FROM Project__c WHERE Kickoff__c = 2026-06-15T11:30:00+02:00",
      ["Apollo"]),
    K("datetime_lt_offset", "SELECT Title__c FROM Project__c WHERE Kickoff__c < 2026-05-01T01:00:00+02:00",
      ["Eridanus", "Gemini"]),
    K("datetime_le_offset_no_colon", "SELECT Title__c FROM Project__c WHERE Kickoff__c <= 2026-05-01T01:00:00+0200",
      ["Eridanus", "Gemini", "Borealis"]),
    K("datetime_ge_negative_offset", "SELECT Title__c FROM Project__c WHERE Kickoff__c >= 2026-06-15T19:00:00-05:00",
      ["Hydra", "Cygnus"]),
    K("datetime_gt", "SELECT Title__c FROM Project__c WHERE Kickoff__c > 2026-06-16T00:00:00Z", ["Cygnus"]),
    K("datetime_ne_includes_nulls", "SELECT Title__c FROM Project__c WHERE Kickoff__c != 2026-06-15T09:30:00Z",
      ["Borealis", "Cygnus", "Draco", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("datetime_in", "SELECT Title__c FROM Project__c WHERE Kickoff__c IN (2026-06-15T09:30:00Z, "
      "2026-07-01T02:00:00+02:00)", ["Apollo", "Cygnus"]),
    K("date_far_past", "SELECT Name FROM Opportunity WHERE CloseDate < 0001-01-02", []),
    N("system_datetime_absolute", "SELECT COUNT() FROM Account WHERE CreatedDate > 2000-01-01T00:00:00Z", 19),
    N("system_datetime_before", "SELECT COUNT() FROM Account WHERE LastModifiedDate < 2000-01-01T00:00:00+05:00", 0),
    K("day_in_week_where", "SELECT Name FROM Opportunity WHERE DAY_IN_WEEK(CloseDate) = 2",
      ["Acme Renewal", "Bolt Expansion", "Global Audit", "Retail Kiosks", "Helios Panels", "O'Brien Bid"]),
    K("calendar_year_where", "SELECT Name FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = 2025",
      ["Global Audit", "Lima Fleet"]),
    K("hour_in_day_where", "SELECT Title__c FROM Project__c WHERE HOUR_IN_DAY(Kickoff__c) = 0", ["Cygnus", "Hydra"]),
    K("day_only_where_literal", "SELECT Title__c FROM Project__c WHERE DAY_ONLY(Kickoff__c) = TODAY", ["Apollo"]),
    K("day_only_where_date", "SELECT Title__c FROM Project__c WHERE DAY_ONLY(Kickoff__c) = 2026-06-14", ["Fornax"]),
]

DATE_LITERALS = [
    K("lit_today", "SELECT Name FROM Opportunity WHERE CloseDate = TODAY", ["Acme Renewal"]),
    K("lit_yesterday", "SELECT Name FROM Opportunity WHERE CloseDate = YESTERDAY", ["Northwind Stores"]),
    K("lit_tomorrow", "SELECT Name FROM Opportunity WHERE CloseDate = TOMORROW", ["Acme Add-on"]),
    K("lit_this_week", "SELECT Name FROM Opportunity WHERE CloseDate = THIS_WEEK",
      ["Northwind Stores", "Acme Renewal", "Acme Add-on", "Northwind East Fitout"]),
    K("lit_last_week", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_WEEK", ["Acme Big Deal"]),
    K("lit_next_week", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_WEEK", ["Retail Kiosks"]),
    K("lit_this_month", "SELECT Name FROM Opportunity WHERE CloseDate = THIS_MONTH", THIS_MONTH_OPPS),
    K("lit_last_month", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_MONTH", ["Indigo Campaign"]),
    K("lit_next_month", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_MONTH", ["Bolt Expansion"]),
    K("lit_this_quarter", "SELECT Name FROM Opportunity WHERE CloseDate = THIS_QUARTER",
      [*THIS_MONTH_OPPS, "Gamma Retrofit", "Indigo Campaign"]),
    K("lit_last_quarter", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_QUARTER",
      ["Cobalt Platform", "Cobalt Services"]),
    K("lit_next_quarter", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_QUARTER",
      ["Bolt Expansion", "Global Merger", "Gamma Pipeline"]),
    N("lit_this_year_count", "SELECT COUNT() FROM Opportunity WHERE CloseDate = THIS_YEAR", 17),
    K("lit_last_year", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_YEAR", ["Global Audit", "Lima Fleet"]),
    K("lit_next_year", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_YEAR", ["Juniper Clinics"]),
    K("lit_last_n_days", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_DAYS:10",
      ["Kilo Advisory", "Acme Big Deal", "Northwind Stores", "Acme Renewal"]),
    K("lit_next_n_days", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_DAYS:7",
      ["Acme Add-on", "Northwind East Fitout", "Retail Kiosks"]),
    K("lit_next_n_weeks", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_WEEKS:2",
      ["Retail Kiosks", "O'Brien Bid"]),
    K("lit_last_n_weeks", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_WEEKS:2",
      ["Indigo Campaign", "Helios Panels", "Kilo Advisory", "Acme Big Deal"]),
    K("lit_n_days_ago", "SELECT Name FROM Opportunity WHERE CloseDate = N_DAYS_AGO:365", ["Lima Fleet"]),
    K("lit_last_90_days", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_90_DAYS",
      ["Cobalt Services", "Gamma Retrofit", "Indigo Campaign", "Helios Panels", "Kilo Advisory", "Acme Big Deal",
       "Northwind Stores", "Acme Renewal"]),
    K("lit_next_n_months", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_MONTHS:2",
      ["Bolt Expansion", "Gamma Pipeline"]),
    K("lit_last_n_months", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_MONTHS:6",
      ["Global Audit", "Cobalt Platform", "Cobalt Services", "Gamma Retrofit", "Indigo Campaign"]),
    K("lit_n_quarters_ago", "SELECT Name FROM Opportunity WHERE CloseDate = N_QUARTERS_AGO:2", ["Global Audit"]),
    K("lit_next_n_quarters", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_QUARTERS:2",
      ["Bolt Expansion", "Global Merger", "Gamma Pipeline", "Orphan Opp"]),
    N("lit_this_fiscal_year_count", "SELECT COUNT() FROM Opportunity WHERE CloseDate = THIS_FISCAL_YEAR", 17),
    K("lit_lt_today_and_this_month", "SELECT Name FROM Opportunity WHERE CloseDate < TODAY AND CloseDate = THIS_MONTH",
      ["Helios Panels", "Kilo Advisory", "Acme Big Deal", "Northwind Stores"]),
    K("lit_gt_next_week", "SELECT Name FROM Opportunity WHERE CloseDate > NEXT_WEEK",
      ["O'Brien Bid", "Bolt Expansion", "Gamma Pipeline", "Global Merger", "Orphan Opp", "Juniper Clinics"]),
    K("lit_le_yesterday", "SELECT Name FROM Opportunity WHERE CloseDate <= YESTERDAY",
      ["Lima Fleet", "Global Audit", "Cobalt Platform", "Cobalt Services", "Gamma Retrofit", "Indigo Campaign",
       "Helios Panels", "Kilo Advisory", "Acme Big Deal", "Northwind Stores"]),
    K("lit_ge_last_n_days", "SELECT Name FROM Opportunity WHERE CloseDate >= LAST_N_DAYS:3",
      ["Northwind Stores", "Acme Renewal", "Acme Add-on", "Northwind East Fitout", "Retail Kiosks", "O'Brien Bid",
       "Bolt Expansion", "Gamma Pipeline", "Global Merger", "Orphan Opp", "Juniper Clinics"]),
    N("lit_ne_this_month_count", "SELECT COUNT() FROM Opportunity WHERE CloseDate != THIS_MONTH", 11),
    K("lit_in_list", "SELECT Name FROM Opportunity WHERE CloseDate IN (YESTERDAY, TOMORROW)",
      ["Northwind Stores", "Acme Add-on"]),
    K("lit_task_next_n_days", "SELECT Subject FROM Task WHERE ActivityDate = NEXT_N_DAYS:3",
      ["Follow up case", "Call Quinn"]),
    K("lit_datetime_today", "SELECT Title__c FROM Project__c WHERE Kickoff__c = TODAY", ["Apollo"]),
    K("lit_datetime_yesterday", "SELECT Title__c FROM Project__c WHERE Kickoff__c = YESTERDAY", ["Fornax"]),
    K("lit_datetime_this_week", "SELECT Title__c FROM Project__c WHERE Kickoff__c = THIS_WEEK",
      ["Fornax", "Apollo", "Hydra"]),
    K("lit_datetime_gt_today", "SELECT Title__c FROM Project__c WHERE Kickoff__c > TODAY", ["Hydra", "Cygnus"]),
    K("lit_datetime_last_year", "SELECT Title__c FROM Project__c WHERE Kickoff__c = LAST_YEAR", ["Eridanus"]),
    K("lit_datetime_last_quarter", "SELECT Title__c FROM Project__c WHERE Kickoff__c = LAST_QUARTER", ["Gemini"]),
    K("lit_datetime_last_n_days", "SELECT Title__c FROM Project__c WHERE Kickoff__c = LAST_N_DAYS:2",
      ["Fornax", "Apollo"]),
    K("lit_datetime_next_n_days", "SELECT Title__c FROM Project__c WHERE Kickoff__c = NEXT_N_DAYS:1", ["Hydra"]),
    K("lit_datetime_this_month", "SELECT Title__c FROM Project__c WHERE Kickoff__c = THIS_MONTH",
      ["Fornax", "Apollo", "Hydra"]),
    K("lit_datetime_this_quarter", "SELECT Title__c FROM Project__c WHERE Kickoff__c = THIS_QUARTER",
      ["Borealis", "Fornax", "Apollo", "Hydra"]),
]

# -- multi-select picklists ------------------------------------------------------------------------------------

MULTIPICKLIST = [
    K("includes_one", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES ('A')",
      ["Apollo", "Cygnus", "Fornax", "Gemini"]),
    K("includes_all_of", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES ('A;B')", ["Apollo", "Gemini"]),
    K("includes_any_of_sets", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES ('A;B', 'D')",
      ["Apollo", "Gemini", "Borealis", "Eridanus"]),
    K("includes_any", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES ('C', 'D')",
      ["Borealis", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("excludes_one_includes_nulls", "SELECT Title__c FROM Project__c WHERE Tags__c EXCLUDES ('A')",
      ["Borealis", "Draco", "Eridanus", "Hydra"]),
    K("excludes_set", "SELECT Title__c FROM Project__c WHERE Tags__c EXCLUDES ('A;B')",
      ["Borealis", "Cygnus", "Draco", "Eridanus", "Fornax", "Hydra"]),
    K("excludes_any", "SELECT Title__c FROM Project__c WHERE Tags__c EXCLUDES ('C', 'D')",
      ["Apollo", "Cygnus", "Draco"]),
    K("multipicklist_eq_exact_set", "SELECT Title__c FROM Project__c WHERE Tags__c = 'A;B'", ["Apollo"]),
    K("multipicklist_eq_any_order", "SELECT Title__c FROM Project__c WHERE Tags__c = 'B;A'", ["Apollo"]),
    K("multipicklist_eq_single", "SELECT Title__c FROM Project__c WHERE Tags__c = 'A'", ["Cygnus"]),
    K("multipicklist_ne_includes_nulls", "SELECT Title__c FROM Project__c WHERE Tags__c != 'A'",
      ["Apollo", "Borealis", "Draco", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("multipicklist_null", "SELECT Title__c FROM Project__c WHERE Tags__c = null", ["Draco"]),
    K("includes_and_excludes", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES ('A') AND "
      "Tags__c EXCLUDES ('B')", ["Cygnus", "Fornax"]),
]

# -- parent relationships -----------------------------------------------------------------------------------------

PARENTS = [
    K("parent_1", "SELECT Name FROM Account WHERE Parent.Name = 'Global Holdings'", ["Northwind Group"]),
    K("parent_2", "SELECT Name FROM Account WHERE Parent.Parent.Name = 'global holdings'", ["Northwind East"]),
    K("parent_3", "SELECT Name FROM Account WHERE Parent.Parent.Parent.Name = 'Global Holdings'",
      ["Northwind East Retail"]),
    K("parent_ne_null", "SELECT Name FROM Account WHERE Parent.Name != null", NORTHWIND),
    K("parent_picklist", "SELECT Name FROM Account WHERE Parent.Industry = 'Retail'",
      ["Northwind East", "Northwind East Retail"]),
    K("parent_ne_includes_no_parent", "SELECT Name FROM Account WHERE Parent.Name != 'Northwind Group'",
      accounts_except("Northwind East")),
    K("contact_account_parent_2", "SELECT LastName FROM Contact WHERE Account.Parent.Parent.Name = 'Global Holdings'",
      ["Jones", "Grant"]),
    K("contact_account_parent_3",
      "SELECT LastName FROM Contact WHERE Account.Parent.Parent.Parent.Name = 'Global Holdings'", ["Khan"]),
    K("contact_self_lookup_2", "SELECT LastName FROM Contact WHERE ReportsTo.ReportsTo.LastName = 'Archer'",
      ["Brown"]),
    K("contact_account_owner", "SELECT LastName FROM Contact WHERE Account.Owner.Name = 'Org Admin' AND "
      "Account.Industry = 'Banking'", ["Cole", "White", "Lee"]),
    K("case_contact_account", "SELECT Subject FROM Case WHERE Contact.Account.Name = 'Acme Corp'",
      ["Login broken", "Password reset"]),
    K("case_parent", "SELECT Subject FROM Case WHERE Parent.Subject = 'Outage in Zurich'", ["Zurich follow-up"]),
    K("opportunity_account_parent", "SELECT Name FROM Opportunity WHERE Account.Parent.Name = 'Northwind Group'",
      ["Northwind East Fitout"]),
    K("custom_lookup_parent_2", "SELECT Title__c FROM Project__c WHERE Account__r.Parent.Name = 'Northwind Group'",
      ["Fornax"]),
    K("parent_number", "SELECT Name FROM Opportunity WHERE Account.NumberOfEmployees >= 3000",
      ["Global Merger", "Global Audit", "Gamma Pipeline", "Gamma Retrofit"]),
    R("parent_chain_records",
      "SELECT Name, Parent.Name, Parent.Parent.Name, Parent.Parent.Parent.Name FROM Account "
      "WHERE Name LIKE 'Northwind%' ORDER BY Name",
      [{"Name": "Northwind East", "Parent": {"Name": "Northwind Group", "Parent": {
          "Name": "Global Holdings", "Parent": None}}},
       {"Name": "Northwind East Retail", "Parent": {"Name": "Northwind East", "Parent": {
           "Name": "Northwind Group", "Parent": {"Name": "Global Holdings"}}}},
       {"Name": "Northwind Group", "Parent": {"Name": "Global Holdings", "Parent": None}}]),
    R("contact_parent_records",
      "SELECT LastName, Account.Name, Account.Parent.Name FROM Contact WHERE Account.Parent.Name != null "
      "ORDER BY LastName",
      [{"LastName": "Ford", "Account": {"Name": "Northwind Group", "Parent": {"Name": "Global Holdings"}}},
       {"LastName": "Grant", "Account": {"Name": "Northwind East", "Parent": {"Name": "Northwind Group"}}},
       {"LastName": "Ito", "Account": {"Name": "Northwind Group", "Parent": {"Name": "Global Holdings"}}},
       {"LastName": "Jones", "Account": {"Name": "Northwind East", "Parent": {"Name": "Northwind Group"}}},
       {"LastName": "Khan", "Account": {"Name": "Northwind East Retail", "Parent": {"Name": "Northwind East"}}}]),
    R("parent_null_is_null",
      "SELECT LastName, Account.Name FROM Contact WHERE LastName IN ('Diaz', 'Archer') ORDER BY LastName",
      [{"LastName": "Archer", "Account": {"Name": "Acme Corp"}}, {"LastName": "Diaz", "Account": None}]),
    R("custom_lookup_records",
      "SELECT Title__c, Account__r.Name, Account__r.Industry FROM Project__c WHERE Account__c != null "
      "ORDER BY Title__c",
      [{"Title__c": "Apollo", "Account__r": {"Name": "Acme Corp", "Industry": "Technology"}},
       {"Title__c": "Borealis", "Account__r": {"Name": "Acme Corp", "Industry": "Technology"}},
       {"Title__c": "Cygnus", "Account__r": {"Name": "Global Holdings", "Industry": "Finance"}},
       {"Title__c": "Eridanus", "Account__r": {"Name": "Cobalt Bank", "Industry": "Banking"}},
       {"Title__c": "Fornax", "Account__r": {"Name": "Northwind East", "Industry": "Retail"}},
       {"Title__c": "Gemini", "Account__r": {"Name": "Gamma Energy", "Industry": "Energy"}},
       {"Title__c": "Hydra", "Account__r": {"Name": "Acme Labs", "Industry": "Technology"}}]),
    K("parent_self_lookup_name", "SELECT LastName FROM Contact WHERE ReportsTo.Name = 'Ann Archer'", ["Baker"]),
    K("parent_in", "SELECT LastName FROM Contact WHERE Account.Name IN ('Kilo Consulting', 'Mango Retail')",
      ["Rossi", "Ueda"]),
    N("parent_ne_includes_no_parent_count", "SELECT COUNT() FROM Contact WHERE Account.Name != 'Acme Corp'", 36),
    K("parent_reference_id", "SELECT LastName FROM Contact WHERE Account.ParentId = '{Account:Northwind Group}'",
      ["Jones", "Grant"]),
    R("ids_and_references",
      "SELECT Id, AccountId, Account.Id, ReportsToId FROM Contact WHERE LastName = 'Baker'",
      [{"Id": Ref("Contact", "Baker"), "AccountId": Ref("Account", "Acme Corp"),
        "Account": {"Id": Ref("Account", "Acme Corp")}, "ReportsToId": Ref("Contact", "Archer")}]),
]

# -- child relationship subqueries ------------------------------------------------------------------------------

CHILDREN = [
    R("child_basic",
      "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account "
      "WHERE Name IN ('Acme Corp', 'Mango Retail', 'Kilo Consulting') ORDER BY Name",
      [{"Name": "Acme Corp", "Contacts": B({"LastName": "Archer"}, {"LastName": "Baker"}, {"LastName": "Brown"})},
       {"Name": "Kilo Consulting", "Contacts": B({"LastName": "Rossi"})},
       {"Name": "Mango Retail", "Contacts": B({"LastName": "Ueda"})}]),
    R("child_where_order_desc",
      "SELECT Name, (SELECT LastName FROM Contacts WHERE FirstName != null ORDER BY LastName DESC) FROM Account "
      "WHERE Name IN ('Bolt Industries', 'Helios Solar') ORDER BY Name",
      [{"Name": "Bolt Industries", "Contacts": B({"LastName": "Schmidt"}, {"LastName": "Evans"})},
       {"Name": "Helios Solar", "Contacts": B({"LastName": "Kim"})}]),
    R("child_limit_per_parent",
      "SELECT Name, (SELECT Name FROM Opportunities ORDER BY Amount DESC NULLS LAST LIMIT 2) FROM Account "
      "WHERE Name IN ('Acme Corp', 'Gamma Energy', 'Cobalt Bank') ORDER BY Name",
      [{"Name": "Acme Corp", "Opportunities": B({"Name": "Acme Big Deal"}, {"Name": "Acme Renewal"})},
       {"Name": "Cobalt Bank", "Opportunities": B({"Name": "Cobalt Platform"}, {"Name": "Cobalt Services"})},
       {"Name": "Gamma Energy", "Opportunities": B({"Name": "Gamma Pipeline"}, {"Name": "Gamma Retrofit"})}]),
    R("child_empty_is_null", "SELECT Name, (SELECT Subject FROM Cases) FROM Account WHERE Name = 'delta labs'",
      [{"Name": "delta labs", "Cases": None}]),
    R("child_self_relationship",
      "SELECT Name, (SELECT Name FROM ChildAccounts) FROM Account "
      "WHERE Name LIKE 'Northwind%' OR Name = 'Global Holdings' ORDER BY Name",
      [{"Name": "Global Holdings", "ChildAccounts": B({"Name": "Northwind Group"})},
       {"Name": "Northwind East", "ChildAccounts": B({"Name": "Northwind East Retail"})},
       {"Name": "Northwind East Retail", "ChildAccounts": None},
       {"Name": "Northwind Group", "ChildAccounts": B({"Name": "Northwind East"})}]),
    R("child_custom_skips_deleted",
      "SELECT Name, (SELECT Title__c FROM Projects__r ORDER BY Title__c) FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Projects__r": B({"Title__c": "Apollo"}, {"Title__c": "Borealis"})}]),
    R("child_polymorphic_tasks",
      "SELECT Name, (SELECT Subject FROM Tasks) FROM Opportunity "
      "WHERE Name IN ('Acme Big Deal', 'Bolt Expansion', 'Acme Renewal') ORDER BY Name",
      [{"Name": "Acme Big Deal", "Tasks": B({"Subject": "Send quote"})},
       {"Name": "Acme Renewal", "Tasks": None},
       {"Name": "Bolt Expansion", "Tasks": B({"Subject": "Email Bolt"})}]),
    R("child_case_hierarchy",
      "SELECT Subject, (SELECT Subject FROM Cases) FROM Case WHERE Subject = 'Outage in Zurich'",
      [{"Subject": "Outage in Zurich", "Cases": B({"Subject": "Zurich follow-up"})}]),
    R("child_with_parent_path",
      "SELECT Name, (SELECT LastName, ReportsTo.LastName FROM Contacts WHERE ReportsToId != null "
      "ORDER BY LastName) FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Contacts": B({"LastName": "Baker", "ReportsTo": {"LastName": "Archer"}},
                                           {"LastName": "Brown", "ReportsTo": {"LastName": "Baker"}})}]),
    R("child_with_semi_join_parent",
      "SELECT Name, (SELECT Name, StageName FROM Opportunities WHERE StageName LIKE 'Closed%' ORDER BY CloseDate) "
      "FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity WHERE StageName = 'Closed Won') ORDER BY Name",
      [{"Name": "Acme Corp", "Opportunities": B({"Name": "Acme Big Deal", "StageName": "Closed Won"})},
       {"Name": "Cobalt Bank", "Opportunities": B({"Name": "Cobalt Platform", "StageName": "Closed Lost"},
                                                  {"Name": "Cobalt Services", "StageName": "Closed Won"})},
       {"Name": "Global Holdings", "Opportunities": B({"Name": "Global Audit", "StageName": "Closed Won"})},
       {"Name": "Indigo Media", "Opportunities": B({"Name": "Indigo Campaign", "StageName": "Closed Won"})},
       {"Name": "Lima Logistics", "Opportunities": B({"Name": "Lima Fleet", "StageName": "Closed Won"})}]),
    R("child_two_subqueries_unordered",
      "SELECT Name, (SELECT LastName FROM Contacts), (SELECT Subject FROM Cases) FROM Account "
      "WHERE Name = 'Cobalt Bank'",
      [{"Name": "Cobalt Bank",
        "Contacts": B({"LastName": "Cole"}, {"LastName": "White"}, {"LastName": "Lee"}, ordered=False),
        "Cases": B({"Subject": "Outage in Zurich"}, {"Subject": "Zurich follow-up"}, ordered=False)}]),
    R("child_date_literal_filter",
      "SELECT Name, (SELECT Name FROM Opportunities WHERE CloseDate = THIS_WEEK ORDER BY CloseDate) FROM Account "
      "WHERE Name IN ('Acme Corp', 'Northwind East') ORDER BY Name",
      [{"Name": "Acme Corp", "Opportunities": B({"Name": "Acme Renewal"}, {"Name": "Acme Add-on"})},
       {"Name": "Northwind East", "Opportunities": B({"Name": "Northwind East Fitout"})}]),
    R("child_tasks_of_contact", "SELECT LastName, (SELECT Subject FROM Tasks) FROM Contact WHERE LastName = 'Archer'",
      [{"LastName": "Archer", "Tasks": B({"Subject": "Call Acme"})}]),
    R("child_with_polymorphic_path",
      "SELECT Name, (SELECT Subject, What.Name FROM Tasks) FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Tasks": B({"Subject": "Call Acme", "What": {"Name": "Acme Corp"}})}]),
    R("child_limit_with_outer_limit",
      "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName LIMIT 1) FROM Account ORDER BY Name LIMIT 2",
      [{"Name": "Acme Corp", "Contacts": B({"LastName": "Archer"})},
       {"Name": "Acme Labs", "Contacts": B({"LastName": "Xu"})}]),
    R("child_where_null", "SELECT Name, (SELECT Name FROM Opportunities WHERE Amount = null) FROM Account "
      "WHERE Name = 'Acme Corp'", [{"Name": "Acme Corp", "Opportunities": B({"Name": "Acme Add-on"})}]),
    R("child_nested_two_levels",
      "SELECT Name, (SELECT LastName, (SELECT Subject FROM Cases ORDER BY Subject) FROM Contacts ORDER BY LastName) "
      "FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Contacts": B({"LastName": "Archer", "Cases": B({"Subject": "Login broken"})},
                                           {"LastName": "Baker", "Cases": B({"Subject": "Password reset"})},
                                           {"LastName": "Brown", "Cases": None})}],
      xfail="nested parent-child subqueries (up to 5 levels, REST API v58.0+) are refused: \"SELECT Name, (SELECT "
            "LastName, (SELECT Subject FROM Cases ORDER BY Subject) FROM Contacts ORDER BY LastName) FROM Account "
            "WHERE Name = 'Acme Corp'\" answers MALFORMED_QUERY 'Nesting of child relationship subqueries is not "
            "supported' instead of Contacts blocks each holding its Cases block (a missing feature)"),
    R("child_and_parent_in_one_query",
      "SELECT LastName, Account.Name, (SELECT Subject FROM Cases ORDER BY Subject) FROM Contact "
      "WHERE LastName IN ('Archer', 'Cole', 'Diaz') ORDER BY LastName",
      [{"LastName": "Archer", "Account": {"Name": "Acme Corp"}, "Cases": B({"Subject": "Login broken"})},
       {"LastName": "Cole", "Account": {"Name": "Cobalt Bank"}, "Cases": B({"Subject": "Outage in Zurich"})},
       {"LastName": "Diaz", "Account": None, "Cases": None}]),
]

# -- semi-joins and anti-joins ---------------------------------------------------------------------------------

SEMI_JOINS = [
    K("semi_join_where", "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Email = null)",
      ["Global Holdings", "Lima Logistics", "Acme Corp"]),
    K("anti_join_skips_deleted", "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity)",
      ["Acme Labs", "delta labs", "Echo 100% Foods", "Foxtrot_Ltd", "Mango Retail"]),
    K("semi_join_date_literal", "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity "
      "WHERE StageName = 'Closed Won' AND CloseDate = THIS_YEAR)", ["Acme Corp", "Cobalt Bank", "Indigo Media"]),
    K("semi_join_reference", "SELECT LastName FROM Contact WHERE AccountId IN (SELECT Id FROM Account "
      "WHERE Industry = 'Energy')", ["Lopez", "Dunn", "Nguyen", "Kim"]),
    N("anti_join_count", "SELECT COUNT() FROM Contact WHERE Id NOT IN (SELECT ContactId FROM Case)", 33),
    K("semi_join_custom_checkbox", "SELECT Name FROM Account WHERE Id IN (SELECT Account__c FROM Project__c "
      "WHERE Active__c = true)", ["Acme Corp", "Global Holdings", "Cobalt Bank", "Gamma Energy"]),
    K("semi_join_parent_filter", "SELECT Name FROM Opportunity WHERE AccountId IN (SELECT Id FROM Account "
      "WHERE ParentId != null)", ["Northwind Stores", "Northwind East Fitout", "Retail Kiosks"]),
    K("semi_join_custom", "SELECT Name FROM Account WHERE Id IN (SELECT Account__c FROM Project__c "
      "WHERE Tags__c INCLUDES ('D'))", ["Acme Corp", "Cobalt Bank", "Gamma Energy"]),
    K("semi_and_anti_join", "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact) AND "
      "Id NOT IN (SELECT AccountId FROM Case)",
      accounts_except("Acme Corp", "Bolt Industries", "Cobalt Bank", "Global Holdings")),
    K("semi_join_task_what", "SELECT Subject FROM Task WHERE WhatId IN (SELECT Id FROM Opportunity "
      "WHERE Amount > 50000)", ["Send quote", "Email Bolt"]),
    N("semi_join_parent_path_in_subquery", "SELECT COUNT() FROM Account WHERE Id IN (SELECT AccountId FROM Contact "
      "WHERE Account.Industry = 'Retail')", 4),
    K("semi_join_literal_and_parent_path", "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity "
      "WHERE CloseDate = NEXT_QUARTER AND Account.BillingCountry = 'USA')", ["Gamma Energy"]),
]

# -- ORDER BY, LIMIT, OFFSET -----------------------------------------------------------------------------------

ORDERING = [
    K("order_name", "SELECT Name FROM Account ORDER BY Name", ACCOUNTS_BY_NAME),
    K("order_name_desc", "SELECT Name FROM Account ORDER BY Name DESC", list(reversed(ACCOUNTS_BY_NAME))),
    K("order_desc_nulls_last_limit", "SELECT Name FROM Account ORDER BY AnnualRevenue DESC NULLS LAST, Name LIMIT 5",
      ["Global Holdings", "Gamma Energy", "Northwind Group", "Juniper Health", "Northwind East"]),
    K("order_nulls_first", "SELECT Name FROM Account ORDER BY AnnualRevenue NULLS FIRST, Name LIMIT 5",
      ["Acme Labs", "delta labs", "Mango Retail", "Foxtrot_Ltd", "Echo 100% Foods"]),
    K("order_asc_default_nulls_first", "SELECT Name FROM Account ORDER BY AnnualRevenue ASC, Name LIMIT 4",
      ["Acme Labs", "delta labs", "Mango Retail", "Foxtrot_Ltd"]),
    K("order_desc_default_nulls_last_offset", "SELECT Name FROM Account ORDER BY AnnualRevenue DESC, Name OFFSET 15",
      ["Foxtrot_Ltd", "Acme Labs", "delta labs", "Mango Retail"]),
    K("order_desc_nulls_first", "SELECT Name FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST, Name LIMIT 3",
      ["Mango Retail", "Global Holdings", "Gamma Energy"]),
    K("order_tie_breaker_desc", "SELECT Name FROM Account ORDER BY NumberOfEmployees DESC, Name DESC LIMIT 4",
      ["Global Holdings", "Gamma Energy", "Northwind Group", "Cobalt Bank"]),
    K("order_three_columns",
      "SELECT Name FROM Account ORDER BY BillingCountry NULLS LAST, BillingCity DESC NULLS FIRST, Name",
      ["Mango Retail", "Kilo Consulting", "Juniper Health", "Acme Corp", "Acme Labs", "Echo 100% Foods",
       "Bolt Industries", "O'Brien & Sons", "Lima Logistics", "Helios Solar", "Cobalt Bank", "Foxtrot_Ltd",
       "Global Holdings", "Northwind Group", "Indigo Media", "Gamma Energy", "Northwind East",
       "Northwind East Retail", "delta labs"]),
    K("order_picklist_definition_order",
      "SELECT Name FROM Account ORDER BY Rating DESC NULLS LAST, Name LIMIT 5",
      ["Acme Labs", "delta labs", "Kilo Consulting", "Bolt Industries", "Helios Solar"]),
    K("order_nulls_first_text", "SELECT LastName FROM Contact ORDER BY FirstName NULLS FIRST, LastName LIMIT 8",
      ["Clark", "Fischer", "Lee", "Nguyen", "Vargas", "Adams", "Archer", "Brown"]),
    K("order_text_nulls_last", "SELECT LastName FROM Contact ORDER BY FirstName DESC NULLS LAST, LastName LIMIT 3",
      ["Zimmer", "Young", "Xu"]),
    K("order_parent_field", "SELECT LastName FROM Contact ORDER BY Account.Name NULLS LAST, LastName LIMIT 5",
      ["Archer", "Baker", "Brown", "Xu", "Evans"]),
    K("order_parent_field_nulls_first", "SELECT LastName FROM Contact ORDER BY Account.Name, LastName LIMIT 6",
      ["Adams", "Clark", "Diaz", "Irwin", "Quinn", "Archer"]),
    K("order_date_desc", "SELECT Name FROM Opportunity ORDER BY CloseDate DESC LIMIT 3",
      ["Juniper Clinics", "Orphan Opp", "Global Merger"]),
    K("order_boolean_desc", "SELECT Title__c FROM Project__c ORDER BY Active__c DESC, Title__c",
      ["Apollo", "Cygnus", "Eridanus", "Gemini", "Borealis", "Draco", "Fornax", "Hydra"]),
    K("order_datetime_nulls_last", "SELECT Title__c FROM Project__c ORDER BY Kickoff__c NULLS LAST",
      ["Eridanus", "Gemini", "Borealis", "Fornax", "Apollo", "Hydra", "Cygnus", "Draco"]),
    K("order_task_date", "SELECT Subject FROM Task ORDER BY ActivityDate NULLS LAST, Subject",
      ["Email Bolt", "Send quote", "Review outage", "Call Acme", "Follow up case", "Call Quinn", "Visit Global",
       "Plan week"]),
    K("order_double_desc", "SELECT Title__c FROM Project__c WHERE Budget__c != null ORDER BY Budget__c DESC",
      ["Gemini", "Borealis", "Apollo", "Eridanus", "Fornax", "Cygnus", "Hydra"]),
    K("order_by_id_with_where", "SELECT Name FROM Project__c WHERE Active__c = true ORDER BY Name DESC",
      ["Gemini", "Eridanus", "Cygnus", "Apollo"]),
    K("order_text_nulls_first_then_tie", "SELECT Name FROM Account ORDER BY BillingCity, Name LIMIT 5",
      ["delta labs", "Kilo Consulting", "Bolt Industries", "Northwind East", "Northwind East Retail"]),
    K("order_polymorphic_name", "SELECT Subject FROM Task ORDER BY What.Name NULLS LAST, Subject",
      ["Follow up case", "Review outage", "Send quote", "Call Acme", "Email Bolt", "Visit Global", "Call Quinn",
       "Plan week"]),
    K("order_picklist_asc", "SELECT Name FROM Opportunity WHERE StageName LIKE 'Closed%' ORDER BY StageName, Name",
      ["Acme Big Deal", "Cobalt Services", "Global Audit", "Indigo Campaign", "Lima Fleet", "Cobalt Platform",
       "Gamma Retrofit"]),
    K("limit", "SELECT Name FROM Account ORDER BY Name LIMIT 3", ACCOUNTS_BY_NAME[:3]),
    K("limit_offset", "SELECT Name FROM Account ORDER BY Name LIMIT 3 OFFSET 2", ACCOUNTS_BY_NAME[2:5]),
    K("offset_only", "SELECT Name FROM Account ORDER BY Name OFFSET 17", ACCOUNTS_BY_NAME[17:]),
    K("offset_past_the_end", "SELECT Name FROM Account ORDER BY Name OFFSET 100", []),
    K("limit_zero", "SELECT Name FROM Account LIMIT 0", []),
    K("limit_larger_than_result", "SELECT Name FROM Account WHERE Industry = 'Energy' ORDER BY Name LIMIT 50",
      ["Gamma Energy", "Helios Solar"]),
    K("limit_with_where_and_offset", "SELECT LastName FROM Contact WHERE AccountId = null ORDER BY LastName "
      "LIMIT 2 OFFSET 1", ["Clark", "Diaz"]),
]

# -- aggregates -------------------------------------------------------------------------------------------------

AGGREGATES = [
    N("count_all", "SELECT COUNT() FROM Account", 19),
    N("count_where", "SELECT COUNT() FROM Account WHERE Industry = 'Retail'", 4),
    N("count_limit", "SELECT COUNT() FROM Contact LIMIT 10", 10),
    N("count_group_by_groups", "SELECT COUNT() FROM Contact GROUP BY AccountId", 20),
    R("count_fields_and_distinct", "SELECT COUNT(Id), COUNT(Industry), COUNT_DISTINCT(Industry) FROM Account",
      [{"expr0": 19, "expr1": 18, "expr2": 13}]),
    R("count_nullable_fields", "SELECT COUNT(Email), COUNT(FirstName), COUNT(Birthdate) FROM Contact",
      [{"expr0": 34, "expr1": 34, "expr2": 36}]),
    R("group_having_order_by_aggregate",
      "SELECT Industry, COUNT(Id) cnt FROM Account WHERE Industry != null GROUP BY Industry HAVING COUNT(Id) > 1 "
      "ORDER BY COUNT(Id) DESC, Industry",
      [{"Industry": "Retail", "cnt": 4}, {"Industry": "Energy", "cnt": 2}, {"Industry": "Technology", "cnt": 2}]),
    R("sum_avg_min_max_by_stage",
      "SELECT StageName, SUM(Amount) total, AVG(Amount), MIN(Amount), MAX(Amount) FROM Opportunity "
      "WHERE StageName IN ('Closed Won', 'Closed Lost') GROUP BY StageName ORDER BY StageName",
      [{"StageName": "Closed Won", "total": 1_270_000.0, "expr0": 254_000.0, "expr1": 30_000.0,
        "expr2": 500_000.0},
       {"StageName": "Closed Lost", "total": 1_500_000.0, "expr0": 750_000.0, "expr1": 600_000.0,
        "expr2": 900_000.0}]),
    R("aggregates_without_group_by", "SELECT SUM(Amount), MIN(CloseDate), MAX(CloseDate) FROM Opportunity",
      [{"expr0": 10_837_000.5, "expr1": "2025-06-15", "expr2": "2027-01-15"}]),
    R("aggregate_empty_result", "SELECT COUNT(Id), SUM(Amount), MAX(Name) FROM Opportunity WHERE Name = 'none'",
      [{"expr0": 0, "expr1": None, "expr2": None}]),
    R("group_by_null_group_first",
      "SELECT Rating, COUNT(Id) FROM Account GROUP BY Rating ORDER BY Rating NULLS FIRST",
      [{"Rating": None, "expr0": 6}, {"Rating": "Hot", "expr0": 4}, {"Rating": "Warm", "expr0": 6},
       {"Rating": "Cold", "expr0": 3}]),
    R("count_distinct_grouped", "SELECT Industry, COUNT_DISTINCT(BillingCountry) countries FROM Account "
      "WHERE Industry IN ('Retail', 'Technology') GROUP BY Industry",
      [{"Industry": "Retail", "countries": 2}, {"Industry": "Technology", "countries": 1}]),
    R("group_by_parent_field",
      "SELECT Account.Industry, COUNT(Id) FROM Contact WHERE AccountId != null GROUP BY Account.Industry "
      "ORDER BY COUNT(Id) DESC, Account.Industry LIMIT 3",
      [{"Industry": "Retail", "expr0": 6}, {"Industry": "Energy", "expr0": 4},
       {"Industry": "Technology", "expr0": 4}]),
    R("having_on_group_and_aggregate",
      "SELECT LeadSource, COUNT(Id) FROM Contact GROUP BY LeadSource HAVING LeadSource != null AND COUNT(Id) >= 5 "
      "ORDER BY LeadSource",
      [{"LeadSource": "Web", "expr0": 17}, {"LeadSource": "Other", "expr0": 5}]),
    R("having_group_by_reference",
      "SELECT AccountId, COUNT(Id) FROM Opportunity GROUP BY AccountId HAVING COUNT(Id) >= 2",
      [{"AccountId": Ref("Account", "Acme Corp"), "expr0": 3}, {"AccountId": Ref("Account", "Cobalt Bank"), "expr0": 2},
       {"AccountId": Ref("Account", "Global Holdings"), "expr0": 2},
       {"AccountId": Ref("Account", "Gamma Energy"), "expr0": 2}]),
    R("group_by_two_picklists",
      "SELECT Status, Priority, COUNT(Id) FROM Case GROUP BY Status, Priority ORDER BY Status, Priority",
      [{"Status": "New", "Priority": "High", "expr0": 1}, {"Status": "New", "Priority": "Medium", "expr0": 1},
       {"Status": "New", "Priority": "Low", "expr0": 1}, {"Status": "Working", "Priority": "High", "expr0": 1},
       {"Status": "Working", "Priority": "Medium", "expr0": 1},
       {"Status": "Escalated", "Priority": "High", "expr0": 1}, {"Status": "Closed", "Priority": "Low", "expr0": 1}]),
    R("group_by_boolean", "SELECT HasOptedOutOfEmail, COUNT(Id) FROM Contact GROUP BY HasOptedOutOfEmail",
      [{"HasOptedOutOfEmail": False, "expr0": 32}, {"HasOptedOutOfEmail": True, "expr0": 7}]),
    R("aggregate_with_date_literal", "SELECT COUNT(Id) n FROM Opportunity WHERE CloseDate = THIS_MONTH",
      [{"n": 9}]),
    R("expr_numbering_skips_aliases", "SELECT COUNT(Id), MAX(Budget__c) top, MIN(Budget__c) FROM Project__c",
      [{"expr0": 8, "top": 1_000_000.0, "expr1": -50.0}]),
    R("avg_int", "SELECT AVG(NumberOfEmployees) FROM Account WHERE Industry = 'Retail'", [{"expr0": 515.0}]),
    R("sum_double_where_checkbox", "SELECT SUM(Budget__c) FROM Project__c WHERE Active__c = true",
      [{"expr0": 1_011_000.49}]),
    R("sum_int", "SELECT SUM(NumberOfEmployees) FROM Account WHERE BillingCountry = 'USA'", [{"expr0": 4605}]),
    R("min_max_text_and_date", "SELECT MIN(Name), MAX(Name), MIN(Birthdate), MAX(Birthdate) FROM Contact",
      [{"expr0": "Amy Adams", "expr1": "Zoe Zimmer", "expr2": "1960-01-15", "expr3": "2001-11-30"}]),
    R("min_max_datetime", "SELECT MIN(Kickoff__c), MAX(Kickoff__c) FROM Project__c",
      [{"expr0": "2025-12-31T23:59:59.000+0000", "expr1": "2026-07-01T00:00:00.000+0000"}]),
    R("having_aggregate_not_selected", "SELECT Industry FROM Account GROUP BY Industry HAVING COUNT(Id) > 2",
      [{"Industry": "Retail"}]),
    R("having_or", "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry HAVING COUNT(Id) > 1 OR "
      "Industry = 'Media'",
      [{"Industry": "Energy", "expr0": 2}, {"Industry": "Media", "expr0": 1}, {"Industry": "Retail", "expr0": 4},
       {"Industry": "Technology", "expr0": 2}]),
    R("order_by_aggregate_not_selected",
      "SELECT Industry FROM Account GROUP BY Industry ORDER BY SUM(AnnualRevenue) DESC NULLS LAST LIMIT 2",
      [{"Industry": "Finance"}, {"Industry": "Energy"}]),
    R("order_by_aggregate_nulls_first",
      "SELECT Industry, MAX(AnnualRevenue) m FROM Account GROUP BY Industry ORDER BY MAX(AnnualRevenue) NULLS FIRST "
      "LIMIT 3",
      [{"Industry": "Biotechnology", "m": None}, {"Industry": None, "m": 0.0},
       {"Industry": "Food & Beverage", "m": 300_000.0}]),
    R("aggregate_limit_offset", "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry ORDER BY Industry "
      "LIMIT 2 OFFSET 1", [{"Industry": "Banking", "expr0": 1}, {"Industry": "Biotechnology", "expr0": 1}]),
    N("count_group_having", "SELECT COUNT() FROM Account GROUP BY Industry HAVING COUNT(Id) > 1", 3),
    R("avg_currency_skips_nulls", "SELECT AVG(Amount) FROM Opportunity", [{"expr0": 602_055.583333}]),
    R("max_parent_field", "SELECT MAX(Account.AnnualRevenue) FROM Opportunity", [{"expr0": 90_000_000.0}]),
    R("count_distinct_reference", "SELECT COUNT_DISTINCT(AccountId) FROM Contact", [{"expr0": 19}]),
    R("group_by_date", "SELECT CloseDate, COUNT(Id) FROM Opportunity WHERE CloseDate = THIS_WEEK GROUP BY CloseDate "
      "ORDER BY CloseDate",
      [{"CloseDate": "2026-06-14", "expr0": 1}, {"CloseDate": "2026-06-15", "expr0": 1},
       {"CloseDate": "2026-06-16", "expr0": 1}, {"CloseDate": "2026-06-20", "expr0": 1}]),
    R("group_by_parent_2_levels",
      "SELECT Account.Parent.Name, COUNT(Id) FROM Contact WHERE Account.ParentId != null "
      "GROUP BY Account.Parent.Name ORDER BY Account.Parent.Name",
      [{"Name": "Global Holdings", "expr0": 2}, {"Name": "Northwind East", "expr0": 1},
       {"Name": "Northwind Group", "expr0": 2}]),
    R("min_max_text_case_insensitive", "SELECT MIN(BillingCity), MAX(BillingCity) FROM Account",
      [{"expr0": "Berlin", "expr1": "Zürich"}],
      xfail="MIN/MAX on text compare case-sensitively (binary) while ORDER BY compares case-insensitively: "
            "\"SELECT MIN(BillingCity), MAX(BillingCity) FROM Account\" should give MAX 'Zürich' (what "
            "ORDER BY BillingCity DESC puts first), gives 'boston'"),
    R("rollup_parent_field", "SELECT Account.Name, COUNT(Id) FROM Opportunity WHERE Account.Industry = 'Energy' "
      "GROUP BY ROLLUP(Account.Name)",
      [{"Name": "Gamma Energy", "expr0": 2}, {"Name": "Helios Solar", "expr0": 1}, {"Name": None, "expr0": 3}]),
    R("rollup_one_field", "SELECT Rating, COUNT(Id) FROM Account WHERE Industry = 'Retail' GROUP BY ROLLUP(Rating)",
      [{"Rating": None, "expr0": 2}, {"Rating": "Warm", "expr0": 2}, {"Rating": None, "expr0": 4}]),
    R("rollup_two_fields_grouping",
      "SELECT Industry, Rating, COUNT(Id), GROUPING(Rating) sub FROM Account WHERE Industry IN ('Energy', 'Retail') "
      "GROUP BY ROLLUP(Industry, Rating)",
      [{"Industry": "Energy", "Rating": "Hot", "expr0": 1, "sub": 0},
       {"Industry": "Energy", "Rating": "Warm", "expr0": 1, "sub": 0},
       {"Industry": "Energy", "Rating": None, "expr0": 2, "sub": 1},
       {"Industry": "Retail", "Rating": None, "expr0": 2, "sub": 0},
       {"Industry": "Retail", "Rating": "Warm", "expr0": 2, "sub": 0},
       {"Industry": "Retail", "Rating": None, "expr0": 4, "sub": 1},
       {"Industry": None, "Rating": None, "expr0": 6, "sub": 1}]),
    R("rollup_sum", "SELECT StageName, SUM(Amount) FROM Opportunity WHERE StageName LIKE 'Closed%' "
      "GROUP BY ROLLUP(StageName)",
      [{"StageName": "Closed Won", "expr0": 1_270_000.0}, {"StageName": "Closed Lost", "expr0": 1_500_000.0},
       {"StageName": None, "expr0": 2_770_000.0}]),
    R("calendar_year_group",
      "SELECT CALENDAR_YEAR(CloseDate) yr, COUNT(Id) n, SUM(Amount) FROM Opportunity "
      "GROUP BY CALENDAR_YEAR(CloseDate) ORDER BY CALENDAR_YEAR(CloseDate)",
      [{"yr": 2025, "n": 2, "expr0": 490_000.0}, {"yr": 2026, "n": 17, "expr0": 9_647_000.5},
       {"yr": 2027, "n": 1, "expr0": 700_000.0}]),
    R("calendar_month_this_quarter",
      "SELECT CALENDAR_MONTH(CloseDate), COUNT(Id) FROM Opportunity WHERE CloseDate = THIS_QUARTER "
      "GROUP BY CALENDAR_MONTH(CloseDate) ORDER BY CALENDAR_MONTH(CloseDate)",
      [{"expr0": 4, "expr1": 1}, {"expr0": 5, "expr1": 1}, {"expr0": 6, "expr1": 9}]),
    R("day_only_group",
      "SELECT DAY_ONLY(Kickoff__c) d, COUNT(Id) FROM Project__c WHERE Kickoff__c != null "
      "GROUP BY DAY_ONLY(Kickoff__c) ORDER BY DAY_ONLY(Kickoff__c) DESC LIMIT 3",
      [{"d": "2026-07-01", "expr0": 1}, {"d": "2026-06-16", "expr0": 1}, {"d": "2026-06-15", "expr0": 1}]),
    R("calendar_year_birthdate_having",
      "SELECT CALENDAR_YEAR(Birthdate) y, COUNT(Id) FROM Contact WHERE Birthdate != null "
      "GROUP BY CALENDAR_YEAR(Birthdate) HAVING COUNT(Id) > 1 ORDER BY CALENDAR_YEAR(Birthdate)",
      [{"y": 1985, "expr0": 2}, {"y": 1990, "expr0": 2}, {"y": 1992, "expr0": 2}, {"y": 1993, "expr0": 2}]),
]

# -- functions, FIELDS(), clauses, shapes -------------------------------------------------------------------------

MISC = [
    R("tolabel_select",
      "SELECT Title__c, toLabel(Phase__c) FROM Project__c ORDER BY Title__c",
      [{"Title__c": "Apollo", "Phase__c": "Planning"}, {"Title__c": "Borealis", "Phase__c": "Build"},
       {"Title__c": "Cygnus", "Phase__c": "Build"}, {"Title__c": "Draco", "Phase__c": None},
       {"Title__c": "Eridanus", "Phase__c": "Done"}, {"Title__c": "Fornax", "Phase__c": "Planning"},
       {"Title__c": "Gemini", "Phase__c": "Done"}, {"Title__c": "Hydra", "Phase__c": "Planning"}]),
    K("tolabel_where", "SELECT Title__c FROM Project__c WHERE toLabel(Phase__c) = 'Build'", ["Borealis", "Cygnus"]),
    K("raw_picklist_value_where", "SELECT Title__c FROM Project__c WHERE Phase__c = 'P3'", ["Eridanus", "Gemini"]),
    R("tolabel_standard", "SELECT Name, toLabel(Rating) FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Rating": "Hot"}]),
    K("polymorphic_what_name", "SELECT Subject FROM Task WHERE What.Name = 'Acme Corp'", ["Call Acme"]),
    K("polymorphic_what_type", "SELECT Subject FROM Task WHERE What.Type = 'Opportunity'",
      ["Send quote", "Email Bolt"]),
    K("polymorphic_who_name_like", "SELECT Subject FROM Task WHERE Who.Name LIKE 'ann%'", ["Call Acme"]),
    K("polymorphic_what_null", "SELECT Subject FROM Task WHERE WhatId = null", ["Plan week", "Call Quinn"]),
    R("polymorphic_records",
      "SELECT Subject, What.Name, Who.Name FROM Task WHERE Subject IN ('Call Acme', 'Send quote', 'Plan week', "
      "'Call Quinn') ORDER BY Subject",
      [{"Subject": "Call Acme", "What": {"Name": "Acme Corp"}, "Who": {"Name": "Ann Archer"}},
       {"Subject": "Call Quinn", "What": None, "Who": {"Name": "Quincy Quinn"}},
       {"Subject": "Plan week", "What": None, "Who": None},
       {"Subject": "Send quote", "What": {"Name": "Acme Big Deal"}, "Who": None}]),
    R("values_and_formats",
      "SELECT Name, Amount, CloseDate, Probability, StageName FROM Opportunity WHERE Name = 'Northwind East Fitout'",
      [{"Name": "Northwind East Fitout", "Amount": 45_000.5, "CloseDate": "2026-06-20", "Probability": 40.0,
        "StageName": "Value Proposition"}]),
    R("custom_values_and_formats",
      "SELECT Name, Title__c, Tags__c, Budget__c, Active__c, Start__c, Kickoff__c FROM Project__c "
      "WHERE Title__c IN ('Fornax', 'Draco') ORDER BY Title__c",
      [{"Name": "PRJ-0004", "Title__c": "Draco", "Tags__c": None, "Budget__c": None, "Active__c": False,
        "Start__c": None, "Kickoff__c": None},
       {"Name": "PRJ-0006", "Title__c": "Fornax", "Tags__c": "A;C", "Budget__c": 42.0, "Active__c": False,
        "Start__c": "2026-06-14", "Kickoff__c": "2026-06-14T10:00:00.000+0000"}]),
    Case("fields_standard", "SELECT FIELDS(STANDARD) FROM Project__c WHERE Title__c = 'Apollo'",
         fields=("Id", "Name", "OwnerId", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                 "LastModifiedById", "SystemModstamp"),
         records=({"Id": Ref("Project__c", "Apollo"), "Name": "PRJ-0001", "IsDeleted": False},)),
    Case("fields_custom", "SELECT FIELDS(CUSTOM) FROM Project__c WHERE Title__c = 'Hydra' LIMIT 1",
         fields=("Title__c", "Tags__c", "Account__c", "Budget__c", "Active__c", "Start__c", "Kickoff__c",
                 "Phase__c"),
         records=({"Title__c": "Hydra", "Tags__c": "C", "Account__c": Ref("Account", "Acme Labs"),
                   "Budget__c": -50.0, "Active__c": False, "Start__c": "2026-06-16",
                   "Kickoff__c": "2026-06-16T00:00:00.000+0000", "Phase__c": "P1"},)),
    R("typeof_per_type",
      "SELECT Subject, TYPEOF What WHEN Account THEN Name, Industry WHEN Opportunity THEN Amount, StageName "
      "ELSE Id END FROM Task WHERE What.Type IN ('Account', 'Opportunity', 'Case') AND Subject != 'Visit Global' "
      "ORDER BY Subject",
      [{"Subject": "Call Acme", "What": {"Name": "Acme Corp", "Industry": "Technology"}},
       {"Subject": "Email Bolt", "What": {"Amount": 75_000.0, "StageName": "Negotiation/Review"}},
       {"Subject": "Follow up case", "What": {"Id": Ref("Case", "Login broken")}},
       {"Subject": "Review outage", "What": {"Id": Ref("Case", "Outage in Zurich")}},
       {"Subject": "Send quote", "What": {"Amount": 500_000.0, "StageName": "Closed Won"}}]),
    K("polymorphic_types_and", "SELECT Subject FROM Task WHERE Who.Type = 'Contact' AND What.Type = 'Account'",
      ["Call Acme", "Visit Global"]),
    K("polymorphic_type_ne_includes_nulls", "SELECT Subject FROM Task WHERE What.Type != 'Account'",
      ["Send quote", "Follow up case", "Plan week", "Email Bolt", "Review outage", "Call Quinn"]),
    K("polymorphic_name_null", "SELECT Subject FROM Task WHERE What.Name = null", ["Plan week", "Call Quinn"]),
    K("object_alias", "SELECT a.Name FROM Account a WHERE a.Industry = 'Banking'", ["Cobalt Bank"]),
    K("object_name_prefix", "SELECT Account.Name FROM Account WHERE Account.Industry = 'Media'", ["Indigo Media"]),
    K("keywords_and_names_case_insensitive", "select name from ACCOUNT where INDUSTRY = 'banking' order by NAME",
      ["Cobalt Bank"]),
    K("with_security_enforced", "SELECT Name FROM Account WHERE Industry = 'Energy' WITH SECURITY_ENFORCED",
      ["Gamma Energy", "Helios Solar"]),
    K("for_update", "SELECT Name FROM Account WHERE Industry = 'Energy' ORDER BY Name FOR UPDATE",
      ["Gamma Energy", "Helios Solar"]),
    K("multiline_query", "SELECT Name\nFROM Account\nWHERE Industry = 'Energy'\n  AND Rating = 'Hot'",
      ["Gamma Energy"]),
]

# -- deleted records ---------------------------------------------------------------------------------------------

DELETED = [
    K("deleted_hidden", "SELECT Name FROM Account WHERE Name LIKE 'Z%'", []),
    K("all_rows", "SELECT Name FROM Account WHERE Name LIKE 'Z%' ALL ROWS", ["Zed Deleted"]),
    K("query_all_is_deleted", "SELECT Name FROM Opportunity WHERE IsDeleted = true", ["Zed Opp", "Lost Cause"],
      include_deleted=True),
    N("count_all_rows", "SELECT COUNT() FROM Opportunity ALL ROWS", 22),
    N("count_query_all", "SELECT COUNT() FROM Contact", 40, include_deleted=True),
    K("all_rows_through_deleted_parent", "SELECT LastName FROM Contact WHERE Account.Name = 'Zed Deleted' ALL ROWS",
      ["Nash"]),
    R("query_all_children",
      "SELECT Name, (SELECT Title__c FROM Projects__r ORDER BY Title__c) FROM Account WHERE Name = 'Acme Corp'",
      [{"Name": "Acme Corp", "Projects__r": B({"Title__c": "Apollo"}, {"Title__c": "Borealis"},
                                              {"Title__c": "Scrapped"})}], include_deleted=True),
    K("all_rows_live_only_filter", "SELECT Title__c FROM Project__c WHERE IsDeleted = false ALL ROWS",
      ["Apollo", "Borealis", "Cygnus", "Draco", "Eridanus", "Fornax", "Gemini", "Hydra"]),
    K("query_all_anti_join", "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity)",
      ["delta labs", "Echo 100% Foods", "Foxtrot_Ltd", "Mango Retail"], include_deleted=True),
    R("deleted_flag_value", "SELECT Title__c, IsDeleted FROM Project__c WHERE Title__c IN ('Scrapped', 'Apollo') "
      "ORDER BY Title__c ALL ROWS",
      [{"Title__c": "Apollo", "IsDeleted": False}, {"Title__c": "Scrapped", "IsDeleted": True}]),
]

# -- invalid queries ----------------------------------------------------------------------------------------------

INVALID = [
    E("err_misspelled_select", "SELEC Name FROM Account", "MALFORMED_QUERY"),
    E("err_missing_object", "SELECT Name FROM", "MALFORMED_QUERY"),
    E("err_empty_select_list", "SELECT FROM Account", "MALFORMED_QUERY"),
    E("err_trailing_comma", "SELECT Name, FROM Account", "MALFORMED_QUERY"),
    E("err_empty_where", "SELECT Name FROM Account WHERE", "MALFORMED_QUERY"),
    E("err_dangling_and", "SELECT Name FROM Account WHERE Industry = 'Retail' AND", "MALFORMED_QUERY"),
    E("err_unterminated_string", "SELECT Name FROM Account WHERE Name = 'open", "MALFORMED_QUERY"),
    E("err_unbalanced_parenthesis", "SELECT Name FROM Account WHERE (Name = 'x'", "MALFORMED_QUERY"),
    E("err_double_equals", "SELECT Name FROM Account WHERE Name == 'x'", "MALFORMED_QUERY"),
    E("err_and_or_without_parentheses",
      "SELECT Name FROM Account WHERE Industry = 'Retail' AND Rating = 'Warm' OR Industry = 'Energy'",
      "MALFORMED_QUERY", "unexpected token: 'OR'"),
    E("err_empty_order_by", "SELECT Name FROM Account ORDER BY", "MALFORMED_QUERY"),
    E("err_empty_group_by", "SELECT Name FROM Account GROUP BY", "MALFORMED_QUERY"),
    E("err_negative_limit", "SELECT Name FROM Account LIMIT -1", "MALFORMED_QUERY"),
    E("err_string_limit", "SELECT Name FROM Account LIMIT 'ten'", "MALFORMED_QUERY"),
    E("err_bind_variable", "SELECT Name FROM Account WHERE Name = :name", "MALFORMED_QUERY",
      "Bind variables only allowed in Apex code"),
    E("err_invalid_date", "SELECT Name FROM Opportunity WHERE CloseDate = 2026-13-45", "MALFORMED_QUERY"),
    E("err_date_literal_needs_n", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_DAYS", "MALFORMED_QUERY"),
    E("err_date_literal_bad_n", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_WEEKS:x", "MALFORMED_QUERY"),
    E("err_null_with_range_operator", "SELECT Name FROM Account WHERE Name > null", "MALFORMED_QUERY"),
    E("err_includes_needs_strings", "SELECT Title__c FROM Project__c WHERE Tags__c INCLUDES (1)", "MALFORMED_QUERY"),
    E("err_unknown_field", "SELECT Nope FROM Account", "INVALID_FIELD", "No such column 'Nope' on entity 'Account'"),
    E("err_unknown_field_in_where", "SELECT Name FROM Account WHERE Nope = 1", "INVALID_FIELD"),
    E("err_unknown_field_in_order_by", "SELECT Name FROM Account ORDER BY Nope", "INVALID_FIELD"),
    E("err_unknown_relationship", "SELECT Bogus.Name FROM Contact", "INVALID_FIELD",
      "Didn't understand relationship 'Bogus' in field path"),
    E("err_unknown_parent_field", "SELECT Account.Nope FROM Contact", "INVALID_FIELD",
      "No such column 'Nope' on entity 'Account'"),
    E("err_custom_field_without_suffix", "SELECT Title FROM Project__c", "INVALID_FIELD"),
    E("err_custom_relationship_with_c_suffix", "SELECT Account__c.Name FROM Project__c", "INVALID_FIELD"),
    E("err_unknown_object", "SELECT Id FROM Nope", "INVALID_TYPE", "sObject type 'Nope' is not supported"),
    E("err_custom_object_without_suffix", "SELECT Id FROM Project", "INVALID_TYPE"),
    E("err_unknown_child_relationship", "SELECT Name, (SELECT Id FROM Nopes) FROM Account", "INVALID_TYPE"),
    E("err_child_object_name_not_relationship", "SELECT Name, (SELECT Id FROM Contact) FROM Account", "INVALID_TYPE"),
    E("err_quoted_number", "SELECT Name FROM Account WHERE NumberOfEmployees = '5'", "INVALID_FIELD",
      "must be of type integer and should not be enclosed in quotes"),
    E("err_unquoted_string", "SELECT Name FROM Account WHERE Name = 5", "INVALID_FIELD",
      "must be of type string and should be enclosed in quotes"),
    E("err_quoted_boolean", "SELECT Title__c FROM Project__c WHERE Active__c = 'true'", "INVALID_FIELD"),
    E("err_datetime_for_date", "SELECT Title__c FROM Project__c WHERE Start__c = 2026-06-15T00:00:00Z",
      "INVALID_FIELD", "must be of type date"),
    E("err_date_for_datetime", "SELECT Title__c FROM Project__c WHERE Kickoff__c = 2026-06-15", "INVALID_FIELD",
      "must be of type dateTime"),
    E("err_date_literal_on_text", "SELECT Name FROM Account WHERE Name = TODAY", "INVALID_FIELD"),
    E("err_date_for_number", "SELECT Name FROM Account WHERE NumberOfEmployees > 2026-01-01", "INVALID_FIELD"),
    E("err_boolean_for_currency", "SELECT Name FROM Account WHERE AnnualRevenue = true", "INVALID_FIELD"),
    E("err_field_of_other_object", "SELECT Name FROM Account WHERE CloseDate = TODAY", "INVALID_FIELD"),
    E("err_long_text_filter", "SELECT Name FROM Account WHERE Description = 'x'", "INVALID_FIELD",
      "can not be filtered"),
    E("err_long_text_order", "SELECT Name FROM Account ORDER BY Description", "INVALID_FIELD"),
    E("err_multipicklist_order", "SELECT Title__c FROM Project__c ORDER BY Tags__c", "INVALID_FIELD"),
    E("err_duplicate_field", "SELECT Name, name FROM Account", "INVALID_FIELD", "duplicate field selected"),
    E("err_offset_over_2000", "SELECT Name FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE",
      "Maximum SOQL offset allowed is 2000"),
    E("err_offset_with_limit_over_2000", "SELECT Name FROM Account LIMIT 10 OFFSET 5000",
      "NUMBER_OUTSIDE_VALID_RANGE"),
    E("err_like_on_number", "SELECT Name FROM Account WHERE NumberOfEmployees LIKE '5%'",
      "INVALID_QUERY_FILTER_OPERATOR"),
    E("err_includes_on_text", "SELECT Name FROM Account WHERE Name INCLUDES ('a')", "INVALID_QUERY_FILTER_OPERATOR"),
    E("err_like_on_multipicklist", "SELECT Title__c FROM Project__c WHERE Tags__c LIKE 'A%'",
      "INVALID_QUERY_FILTER_OPERATOR"),
    E("err_range_on_multipicklist", "SELECT Title__c FROM Project__c WHERE Tags__c > 'A'",
      "INVALID_QUERY_FILTER_OPERATOR"),
    E("err_malformed_id", "SELECT Name FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR"),
    E("err_ungrouped_field", "SELECT Name, COUNT(Id) FROM Account", "MALFORMED_QUERY",
      "Field must be grouped or aggregated: Name"),
    E("err_field_not_in_group_by", "SELECT Industry, COUNT(Id) FROM Account GROUP BY Rating", "MALFORMED_QUERY"),
    E("err_count_not_alone", "SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY"),
    E("err_sum_of_text", "SELECT SUM(Name) FROM Account", "MALFORMED_QUERY"),
    E("err_aggregate_in_where", "SELECT Name FROM Account WHERE COUNT(Id) > 1", "MALFORMED_QUERY"),
    E("err_having_without_group_by", "SELECT Name FROM Account HAVING COUNT(Id) > 1", "MALFORMED_QUERY"),
    E("err_group_by_datetime", "SELECT CreatedDate, COUNT(Id) FROM Account GROUP BY CreatedDate", "INVALID_FIELD"),
    E("err_group_by_currency", "SELECT AnnualRevenue, COUNT(Id) FROM Account GROUP BY AnnualRevenue",
      "INVALID_FIELD"),
    E("err_hour_of_date", "SELECT HOUR_IN_DAY(Start__c), COUNT(Id) FROM Project__c GROUP BY HOUR_IN_DAY(Start__c)",
      "INVALID_FIELD"),
    E("err_semi_join_on_text", "SELECT Name FROM Account WHERE Name IN (SELECT Id FROM Contact)", "MALFORMED_QUERY"),
    E("err_semi_join_selects_text", "SELECT Name FROM Account WHERE Id IN (SELECT Name FROM Contact)",
      "MALFORMED_QUERY"),
    E("err_fields_all_without_limit", "SELECT FIELDS(ALL) FROM Account", "MALFORMED_QUERY"),
    E("err_six_levels", "SELECT Account.Parent.Parent.Parent.Parent.Parent.Name FROM Contact", "MALFORMED_QUERY"),
    E("err_semi_join_in_nested_or",
      "SELECT Name FROM Account WHERE Industry != null AND (Rating = 'Hot' OR Id IN (SELECT AccountId FROM Case))",
      "MALFORMED_QUERY"),
    E("err_semi_join_inside_semi_join",
      "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity WHERE AccountId IN "
      "(SELECT AccountId FROM Contact WHERE LastName = 'Rossi'))", "MALFORMED_QUERY"),
    E("err_tolabel_on_text", "SELECT toLabel(Name) FROM Account", "MALFORMED_QUERY"),
    E("err_using_scope_unknown", "SELECT Name FROM Account USING SCOPE Team", "MALFORMED_QUERY"),
    E("err_polymorphic_non_name_field", "SELECT Subject FROM Task WHERE What.Industry = 'Energy'", "INVALID_FIELD",
      "No such column 'Industry' on entity 'Name'",
      xfail="polymorphic What/Who paths reach only the fields of the 'Name' object on the platform; the compiler "
            "joins every target object that has the field (Account.Industry here) and runs the query (0 rows) "
            "instead of answering INVALID_FIELD \"No such column 'Industry' on entity 'Name'\""),
]

# -- robustness: odd but well-formed input gives an answer or a 4xx error, never a crash ----------------------------

_CRASH = "raises {0} (not an InterlinkError: a 500 over REST) instead of a result or a 400"

ROBUSTNESS = [
    X("huge_integer_literal", "SELECT Name FROM Account WHERE NumberOfEmployees < 99999999999999999999"),
    X("integer_literal_over_int64", "SELECT Name FROM Account WHERE NumberOfEmployees < 9223372036854775808"),
    X("huge_currency_literal", "SELECT Name FROM Account WHERE AnnualRevenue > 99999999999999999999"),
    X("huge_decimal_literal", "SELECT Name FROM Account WHERE AnnualRevenue > 99999999999999999999.5"),
    X("huge_limit", "SELECT Name FROM Account LIMIT 99999999999999999999"),
    X("date_literal_before_year_1", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_DAYS:1000000"),
    X("date_literal_after_year_9999", "SELECT Name FROM Opportunity WHERE CloseDate = NEXT_N_YEARS:99999"),
    X("date_literal_n_over_int64", "SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_DAYS:99999999999999999999"),
    X("n_days_ago_before_year_1", "SELECT Name FROM Opportunity WHERE CloseDate = N_DAYS_AGO:739000"),
    X("datetime_literal_offset_before_year_1", "SELECT Title__c FROM Project__c WHERE Kickoff__c > "
      "0001-01-01T00:00:00+01:00"),
    X("query_of_only_spaces", "   "),
]

VALID = [*TEXT, *PICKLIST, *NUMBERS, *IDS, *BOOLEANS, *LIKE, *NULLS_AND_LOGIC, *DATES, *DATE_LITERALS,
         *MULTIPICKLIST, *PARENTS, *CHILDREN, *SEMI_JOINS, *ORDERING, *AGGREGATES, *MISC, *DELETED]
ALL = [*VALID, *INVALID, *ROBUSTNESS]

__all__ = ["ALL", "INVALID", "ROBUSTNESS", "VALID", "Block", "Case", "Ref", "has_outer_order_by"]
