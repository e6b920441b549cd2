"""The SOQL parser: query text to the ast dataclasses, and MALFORMED_QUERY in the platform's style for the rest."""

from __future__ import annotations

import dataclasses
import random
import re
import string
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlink.errors import MalformedQueryError
from interlink.soql import parser as soql_parser
from interlink.soql.ast import (
    And,
    Bind,
    Comparison,
    DateLiteral,
    FieldPath,
    FieldsMacro,
    Function,
    GroupBy,
    Includes,
    InList,
    InSubquery,
    Not,
    Or,
    OrderItem,
    Query,
    SelectItem,
    SubQuery,
    TypeOf,
    TypeOfWhen,
)
from interlink.soql.parser import DATE_LITERALS, DATE_LITERALS_N, MAX_QUERY_LENGTH, parse_soql

# -- helpers ---------------------------------------------------------------------------------------------------------


def strip_positions(node: Any) -> Any:
    """The tree with every line/column set to 0, so it compares equal to a hand-built one."""
    if isinstance(node, tuple):
        return tuple(strip_positions(item) for item in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: strip_positions(getattr(node, f.name)) for f in dataclasses.fields(node)}
        if "line" in changes:
            changes["line"] = changes["column"] = 0
        return dataclasses.replace(node, **changes)
    return node


def parsed(text: str) -> Query:
    return strip_positions(parse_soql(text))  # type: ignore[no-any-return]


def f(path: str) -> FieldPath:
    return FieldPath(tuple(path.split(".")))


def fn(name: str, *args: FieldPath | Function) -> Function:
    return Function(name, tuple(args))


def sel(*items: Any) -> tuple[SelectItem, ...]:
    return tuple(item if isinstance(item, SelectItem) else SelectItem(item) for item in items)


def q(*items: Any, obj: str = "Account", **kwargs: Any) -> Query:
    return Query(select=sel(*items), object=obj, **kwargs)


def where(condition: Any, obj: str = "Account") -> Query:
    return q(f("Id"), obj=obj, where=condition)


def malformed(text: str) -> MalformedQueryError:
    with pytest.raises(MalformedQueryError) as info:
        parse_soql(text)
    assert info.value.error_code == "MALFORMED_QUERY"
    return info.value


# -- valid queries: the exact tree -----------------------------------------------------------------------------------

EXACT: list[tuple[str, Query]] = [
    ("SELECT Id FROM Account", q(f("Id"))),
    ("select id, name from account", q(f("id"), f("name"), obj="account")),
    ("SeLeCt Id FrOm Account", q(f("Id"))),
    ("SELECT Id, Name, Account.Owner.Name FROM Contact", q(f("Id"), f("Name"), f("Account.Owner.Name"), obj="Contact")),
    ("SELECT A.B.C.D.E.Name FROM Contact", q(f("A.B.C.D.E.Name"), obj="Contact")),
    ("SELECT FIELDS(ALL) FROM Account LIMIT 200", q(FieldsMacro("ALL"), limit=200)),
    ("SELECT fields(standard) FROM Account", q(FieldsMacro("STANDARD"))),
    ("SELECT FIELDS(CUSTOM), Id FROM Account LIMIT 10", q(FieldsMacro("CUSTOM"), f("Id"), limit=10)),
    ("SELECT COUNT() FROM Account", q(fn("COUNT"))),
    ("SELECT count() FROM Account WHERE Name != null",
     q(fn("COUNT"), where=Comparison(f("Name"), "!=", None))),
    ("SELECT COUNT(Id) cnt FROM Account", q(SelectItem(fn("COUNT", f("Id")), "cnt"))),
    ("SELECT COUNT_DISTINCT(Name) FROM Account", q(fn("COUNT_DISTINCT", f("Name")))),
    ("SELECT SUM(Amount), AVG(Amount) avgAmount, MIN(Amount), MAX(Amount) mx FROM Opportunity",
     q(fn("SUM", f("Amount")), SelectItem(fn("AVG", f("Amount")), "avgAmount"), fn("MIN", f("Amount")),
       SelectItem(fn("MAX", f("Amount")), "mx"), obj="Opportunity")),
    ("SELECT CALENDAR_YEAR(CreatedDate), COUNT(Id) FROM Account GROUP BY CALENDAR_YEAR(CreatedDate)",
     q(fn("CALENDAR_YEAR", f("CreatedDate")), fn("COUNT", f("Id")),
       group_by=GroupBy((fn("CALENDAR_YEAR", f("CreatedDate")),)))),
    ("SELECT DAY_ONLY(CreatedDate) day, COUNT(Id) FROM Lead GROUP BY DAY_ONLY(CreatedDate)",
     q(SelectItem(fn("DAY_ONLY", f("CreatedDate")), "day"), fn("COUNT", f("Id")), obj="Lead",
       group_by=GroupBy((fn("DAY_ONLY", f("CreatedDate")),)))),
    ("SELECT toLabel(StageName), FORMAT(Amount) amt, convertCurrency(Amount) FROM Opportunity",
     q(fn("TOLABEL", f("StageName")), SelectItem(fn("FORMAT", f("Amount")), "amt"),
       fn("CONVERTCURRENCY", f("Amount")), obj="Opportunity")),
    ("SELECT FORMAT(MIN(CloseDate)) FROM Opportunity", q(fn("FORMAT", fn("MIN", f("CloseDate"))), obj="Opportunity")),
    ("SELECT Industry, GROUPING(Industry) grp, COUNT(Id) FROM Account GROUP BY ROLLUP(Industry)",
     q(f("Industry"), SelectItem(fn("GROUPING", f("Industry")), "grp"), fn("COUNT", f("Id")),
       group_by=GroupBy((f("Industry"),), "ROLLUP"))),
    ("SELECT Type, BillingCountry, COUNT(Id) FROM Account GROUP BY CUBE(Type, BillingCountry)",
     q(f("Type"), f("BillingCountry"), fn("COUNT", f("Id")),
       group_by=GroupBy((f("Type"), f("BillingCountry")), "CUBE"))),
    ("SELECT Name, (SELECT Id, LastName FROM Contacts WHERE Email != null ORDER BY LastName LIMIT 5) FROM Account",
     q(f("Name"), SubQuery(Query(sel(f("Id"), f("LastName")), "Contacts",
                                 where=Comparison(f("Email"), "!=", None),
                                 order_by=(OrderItem(f("LastName")),), limit=5)))),
    ("SELECT TYPEOF What WHEN Account THEN Name, Phone WHEN Opportunity THEN Amount ELSE Name END FROM Event",
     q(TypeOf("What", (TypeOfWhen("Account", (f("Name"), f("Phone"))), TypeOfWhen("Opportunity", (f("Amount"),))),
              (f("Name"),)), obj="Event")),
    ("SELECT Id, typeof Owner when User then Username end FROM Case",
     q(f("Id"), TypeOf("Owner", (TypeOfWhen("User", (f("Username"),)),)), obj="Case")),
    ("SELECT Id FROM Account acct", q(f("Id"), alias="acct")),
    ("SELECT acct.Name FROM Account acct WHERE acct.Name = 'x'",
     q(f("acct.Name"), alias="acct", where=Comparison(f("acct.Name"), "=", "x"))),
    ("SELECT Id FROM Account USING SCOPE mine", q(f("Id"), using_scope="mine")),
    ("SELECT Id FROM Account WHERE Name = 'Acme'", where(Comparison(f("Name"), "=", "Acme"))),
    ("SELECT Id FROM Account WHERE Name <> 'Acme'", where(Comparison(f("Name"), "!=", "Acme"))),
    ("SELECT Id FROM Account WHERE NumberOfEmployees < 10", where(Comparison(f("NumberOfEmployees"), "<", 10))),
    ("SELECT Id FROM Account WHERE NumberOfEmployees <= -10", where(Comparison(f("NumberOfEmployees"), "<=", -10))),
    ("SELECT Id FROM Account WHERE AnnualRevenue > 1.5", where(Comparison(f("AnnualRevenue"), ">", 1.5))),
    ("SELECT Id FROM Account WHERE AnnualRevenue >= -0.25", where(Comparison(f("AnnualRevenue"), ">=", -0.25))),
    ("SELECT Id FROM Account WHERE AnnualRevenue > 1.5e3", where(Comparison(f("AnnualRevenue"), ">", 1500.0))),
    ("SELECT Id FROM Account WHERE Name LIKE 'Ac%'", where(Comparison(f("Name"), "LIKE", "Ac%"))),
    ("SELECT Id FROM Account WHERE Name like 'a_c'", where(Comparison(f("Name"), "LIKE", "a_c"))),
    ("SELECT Id FROM Account WHERE Industry IN ('Energy', 'Media')",
     where(InList(f("Industry"), ("Energy", "Media")))),
    ("SELECT Id FROM Account WHERE Industry NOT IN ('Energy', null)",
     where(InList(f("Industry"), ("Energy", None), negated=True))),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE LastName = 'x')",
     where(InSubquery(f("Id"), Query(sel(f("AccountId")), "Contact", where=Comparison(f("LastName"), "=", "x"))))),
    ("SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity)",
     where(InSubquery(f("Id"), Query(sel(f("AccountId")), "Opportunity"), negated=True))),
    ("SELECT Id FROM Account WHERE Langs__c INCLUDES ('fr;de', 'en')",
     where(Includes(f("Langs__c"), ("fr;de", "en")))),
    ("SELECT Id FROM Account WHERE Langs__c EXCLUDES ('fr')", where(Includes(f("Langs__c"), ("fr",), negated=True))),
    ("SELECT Id FROM Account WHERE a = 1 AND b = 2 AND c = 3",
     where(And((Comparison(f("a"), "=", 1), Comparison(f("b"), "=", 2), Comparison(f("c"), "=", 3))))),
    ("SELECT Id FROM Account WHERE a = 1 or b = 2",
     where(Or((Comparison(f("a"), "=", 1), Comparison(f("b"), "=", 2))))),
    ("SELECT Id FROM Account WHERE a = 1 AND (b = 2 OR c = 3)",
     where(And((Comparison(f("a"), "=", 1), Or((Comparison(f("b"), "=", 2), Comparison(f("c"), "=", 3))))))),
    ("SELECT Id FROM Account WHERE (a = 1 AND b = 2) OR c = 3",
     where(Or((And((Comparison(f("a"), "=", 1), Comparison(f("b"), "=", 2))), Comparison(f("c"), "=", 3))))),
    ("SELECT Id FROM Account WHERE ((a = 1))", where(Comparison(f("a"), "=", 1))),
    ("SELECT Id FROM Account WHERE NOT Name = 'x'", where(Not(Comparison(f("Name"), "=", "x")))),
    ("SELECT Id FROM Account WHERE NOT (a = 1 OR b = 2)",
     where(Not(Or((Comparison(f("a"), "=", 1), Comparison(f("b"), "=", 2)))))),
    ("SELECT Id FROM Account WHERE a = 1 AND NOT b = 2",
     where(And((Comparison(f("a"), "=", 1), Not(Comparison(f("b"), "=", 2)))))),
    ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2024",
     where(Comparison(fn("CALENDAR_YEAR", f("CreatedDate")), "=", 2024))),
    ("SELECT Id FROM Account WHERE IsDeleted = TRUE AND IsActive__c = false",
     where(And((Comparison(f("IsDeleted"), "=", True), Comparison(f("IsActive__c"), "=", False))))),
    ("SELECT Id FROM Account WHERE CloseDate = 2024-01-31", where(Comparison(f("CloseDate"), "=", date(2024, 1, 31)))),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-31T10:00:00Z",
     where(Comparison(f("CreatedDate"), ">", datetime(2024, 1, 31, 10)))),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-31T10:00:00.000+01:00",
     where(Comparison(f("CreatedDate"), ">", datetime(2024, 1, 31, 9)))),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-31T10:00:00+0100",
     where(Comparison(f("CreatedDate"), ">", datetime(2024, 1, 31, 9)))),
    ("SELECT Id FROM Account WHERE CreatedDate < 2024-01-31T22:30:00.5-05:30",
     where(Comparison(f("CreatedDate"), "<", datetime(2024, 2, 1, 4, 0, 0, 500000)))),
    ("SELECT Id FROM Account WHERE CreatedDate = TODAY",
     where(Comparison(f("CreatedDate"), "=", DateLiteral("TODAY")))),
    ("SELECT Id FROM Account WHERE CreatedDate = last_n_days:30",
     where(Comparison(f("CreatedDate"), "=", DateLiteral("LAST_N_DAYS", 30)))),
    ("SELECT Id FROM Account WHERE CreatedDate IN (YESTERDAY, N_WEEKS_AGO:2)",
     where(InList(f("CreatedDate"), (DateLiteral("YESTERDAY"), DateLiteral("N_WEEKS_AGO", 2))))),
    ("SELECT Id FROM Account WHERE Name = :name", where(Comparison(f("Name"), "=", Bind("name")))),
    ("SELECT Id FROM Account WHERE Id IN :ids", where(InList(f("Id"), (Bind("ids"),)))),
    ("SELECT Id FROM Account WHERE Id NOT IN :ids", where(InList(f("Id"), (Bind("ids"),), negated=True))),
    ("SELECT Id FROM Account LIMIT :lim OFFSET :off", q(f("Id"), limit=Bind("lim"), offset=Bind("off"))),
    ("SELECT Id FROM Account WITH SECURITY_ENFORCED", q(f("Id"), with_clauses=("SECURITY_ENFORCED",))),
    ("SELECT Id FROM Account WHERE Name = 'x' with user_mode",
     q(f("Id"), where=Comparison(f("Name"), "=", "x"), with_clauses=("USER_MODE",))),
    ("SELECT Id FROM Account WITH SYSTEM_MODE", q(f("Id"), with_clauses=("SYSTEM_MODE",))),
    ("SELECT Title FROM KnowledgeArticleVersion WITH DATA CATEGORY Geography__c AT (usa__c, uk__c) "
     "AND Product__c ABOVE_OR_BELOW mobile_phones__c",
     q(f("Title"), obj="KnowledgeArticleVersion", with_clauses=("DATA CATEGORY",))),
    ("SELECT Industry, Type, COUNT(Id) FROM Account GROUP BY Industry, Type HAVING COUNT(Id) > 1",
     q(f("Industry"), f("Type"), fn("COUNT", f("Id")), group_by=GroupBy((f("Industry"), f("Type"))),
       having=Comparison(fn("COUNT", f("Id")), ">", 1))),
    ("SELECT Id FROM Account ORDER BY Name",
     q(f("Id"), order_by=(OrderItem(f("Name")),))),
    ("SELECT Id FROM Account ORDER BY Name DESC NULLS LAST, CreatedDate ASC NULLS FIRST, Id desc",
     q(f("Id"), order_by=(OrderItem(f("Name"), True, True), OrderItem(f("CreatedDate"), False, False),
                          OrderItem(f("Id"), True)))),
    ("SELECT Id FROM Account ORDER BY Owner.Name nulls first",
     q(f("Id"), order_by=(OrderItem(f("Owner.Name"), False, False),))),
    ("SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry ORDER BY COUNT(Id) DESC",
     q(f("Industry"), fn("COUNT", f("Id")), group_by=GroupBy((f("Industry"),)),
       order_by=(OrderItem(fn("COUNT", f("Id")), True),))),
    ("SELECT Id FROM Account LIMIT 10 OFFSET 20", q(f("Id"), limit=10, offset=20)),
    ("SELECT Id FROM Account OFFSET 5000", q(f("Id"), offset=5000)),  # range checks belong to the compiler
    ("SELECT Id FROM Account FOR VIEW", q(f("Id"), for_clause="VIEW")),
    ("SELECT Id FROM Account for reference", q(f("Id"), for_clause="REFERENCE")),
    ("SELECT Id FROM Account LIMIT 1 FOR UPDATE", q(f("Id"), limit=1, for_clause="UPDATE")),
    ("SELECT Id FROM Account ALL ROWS", q(f("Id"), all_rows=True)),
    ("SELECT Id FROM Account LIMIT 5 FOR VIEW ALL ROWS", q(f("Id"), limit=5, for_clause="VIEW", all_rows=True)),
    ("SELECT Id FROM Order", q(f("Id"), obj="Order")),
    ("SELECT Id FROM Order ORDER BY Id", q(f("Id"), obj="Order", order_by=(OrderItem(f("Id")),))),
    ("SELECT Order.Name FROM OrderItem ORDER BY Order.Name",
     q(f("Order.Name"), obj="OrderItem", order_by=(OrderItem(f("Order.Name")),))),
    ("SELECT Id FROM Group WHERE Type = 'Queue' ORDER BY Name",
     q(f("Id"), obj="Group", where=Comparison(f("Type"), "=", "Queue"), order_by=(OrderItem(f("Name")),))),
    ("SELECT Type, Name, Date__c, Order__c, Limit__c, Select__c FROM Account WHERE Date__c = 2024-01-01",
     q(f("Type"), f("Name"), f("Date__c"), f("Order__c"), f("Limit__c"), f("Select__c"),
       where=Comparison(f("Date__c"), "=", date(2024, 1, 1)))),
    ("SELECT Id, ns__Rel__r.ns__Field__c FROM ns__Obj__c WHERE ns__Flag__c = true",
     q(f("Id"), f("ns__Rel__r.ns__Field__c"), obj="ns__Obj__c", where=Comparison(f("ns__Flag__c"), "=", True))),
    ("SELECT Id\n\tFROM Account\r\n  WHERE Name = 'x'\n  LIMIT 3\n",
     q(f("Id"), where=Comparison(f("Name"), "=", "x"), limit=3)),
    ("SELECT Id FROM Account WHERE Name = ''", where(Comparison(f("Name"), "=", ""))),
    ("SELECT Id FROM Account WHERE Name = 'Zoë 日本 🙂'", where(Comparison(f("Name"), "=", "Zoë 日本 🙂"))),
    (r"SELECT Id FROM Account WHERE Name = 'a\'b\"c\\d\ne\rf\tg\bh\fi\u0041'",
     where(Comparison(f("Name"), "=", "a'b\"c\\d\ne\rf\tg\bh\fiA"))),
    ("SELECT Id FROM Account WHERE Name = 'line one\nline two'",
     where(Comparison(f("Name"), "=", "line one\nline two"))),
    (r"SELECT Id FROM Account WHERE Name LIKE '50\%\_off%'", where(Comparison(f("Name"), "LIKE", r"50\%\_off%"))),
    (r"SELECT Id FROM Account WHERE Name = '50\%'", where(Comparison(f("Name"), "=", r"50\%"))),
    (r"SELECT Id FROM Account WHERE Name LIKE 'C:\\%'", where(Comparison(f("Name"), "LIKE", r"C:\\%"))),
    (r"SELECT Id FROM Account WHERE Name = 'C:\\'", where(Comparison(f("Name"), "=", "C:\\"))),
    ("SELECT Id FROM Account WHERE Amount = +3", where(Comparison(f("Amount"), "=", 3))),
    ("SELECT Name, (SELECT Id FROM Contacts), (SELECT Id FROM Opportunities LIMIT 1) FROM Account",
     q(f("Name"), SubQuery(Query(sel(f("Id")), "Contacts")), SubQuery(Query(sel(f("Id")), "Opportunities", limit=1)))),
]


@pytest.mark.parametrize(("text", "expected"), EXACT, ids=[text[:60] for text, _ in EXACT])
def test_valid_query_tree(text: str, expected: Query) -> None:
    assert parsed(text) == expected


# -- valid queries: key properties -----------------------------------------------------------------------------------

FULL = ("SELECT Name, COUNT(Id) total FROM Account acct USING SCOPE everything WHERE Industry != null "
        "WITH SECURITY_ENFORCED GROUP BY Name HAVING COUNT(Id) > 2 ORDER BY Name DESC NULLS LAST "
        "LIMIT 100 OFFSET 10 FOR VIEW ALL ROWS")

PROPERTIES: list[tuple[str, Callable[[Query], bool]]] = [
    (FULL, lambda r: (r.alias, r.using_scope, r.with_clauses, r.limit, r.offset, r.for_clause, r.all_rows)
     == ("acct", "everything", ("SECURITY_ENFORCED",), 100, 10, "VIEW", True)),
    (FULL, lambda r: r.having == Comparison(fn("COUNT", f("Id")), ">", 2) and len(r.select) == 2),
    ("SELECT Id FROM Account USING SCOPE Mine_And_My_Groups", lambda r: r.using_scope == "Mine_And_My_Groups"),
    ("SELECT Id FROM Account USING SCOPE team WHERE Name = 'x'",
     lambda r: r.using_scope == "team" and isinstance(r.where, Comparison)),
    ("SELECT Id, Name, Phone, Website, Industry, Type, Owner.Name, Owner.Manager.Name, CreatedDate, BillingCity "
     "FROM Account", lambda r: len(r.select) == 10 and r.select[7].expr.parts == ("Owner", "Manager", "Name")),
    ("SELECT Id FROM Account WHERE CreatedDate = THIS_FISCAL_QUARTER",
     lambda r: r.where.value == DateLiteral("THIS_FISCAL_QUARTER")),
    ("SELECT Id FROM Account WHERE CreatedDate > N_FISCAL_YEARS_AGO:3",
     lambda r: r.where.value == DateLiteral("N_FISCAL_YEARS_AGO", 3)),
    ("SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS:0",
     lambda r: r.where.value == DateLiteral("LAST_N_DAYS", 0)),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-12-31T23:30:00-01:00",
     lambda r: r.where.value == datetime(2025, 1, 1, 0, 30)),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:00:00+00:00",
     lambda r: r.where.value == datetime(2024, 1, 1)),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:00:00.123456789Z",
     lambda r: r.where.value == datetime(2024, 1, 1, 0, 0, 0, 123456)),
    ("SELECT Id FROM Account WHERE Amount > 12345678901234567890",
     lambda r: r.where.value == 12345678901234567890 and isinstance(r.where.value, int)),
    ("SELECT Id FROM Account WHERE Amount > 10.0", lambda r: isinstance(r.where.value, float)),
    ("SELECT Id FROM Account WHERE Amount > .5", lambda r: r.where.value == 0.5),
    ("SELECT Id FROM Account WHERE Amount > 1E3", lambda r: r.where.value == 1000.0),
    ("SELECT Id FROM Account WHERE Name IN ('a','b','c','d','e')", lambda r: len(r.where.values) == 5),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Id IN (SELECT WhoId FROM Task))",
     lambda r: isinstance(r.where.query.where, InSubquery)),
    ("SELECT Id FROM Account WHERE a = 1 AND (b = 2 OR (c = 3 AND (d = 4 OR e = 5)))",
     lambda r: isinstance(r.where.items[1].items[1].items[1], Or)),
    ("SELECT Id FROM Account WHERE NOT (NOT a = 1)", lambda r: r.where == Not(Not(Comparison(f("a"), "=", 1)))),
    ("SELECT Id FROM Account WHERE (a = 1 OR b = 2) AND (c = 3 OR d = 4)",
     lambda r: isinstance(r.where, And) and all(isinstance(i, Or) for i in r.where.items)),
    ("SELECT Id FROM Account WHERE HOUR_IN_DAY(convertTimezone(CreatedDate)) > 9",
     lambda r: r.where.left == fn("HOUR_IN_DAY", fn("CONVERTTIMEZONE", f("CreatedDate")))),
    ("SELECT WEEK_IN_YEAR(CreatedDate) w, FISCAL_YEAR(CloseDate) FROM Opportunity "
     "GROUP BY WEEK_IN_YEAR(CreatedDate), FISCAL_YEAR(CloseDate)",
     lambda r: r.select[0].alias == "w" and len(r.group_by.items) == 2),
    ("SELECT Id FROM Account LIMIT 0", lambda r: r.limit == 0),
    ("SELECT Id FROM Account OFFSET 0", lambda r: r.offset == 0 and r.limit is None),
    ("SELECT Id FROM Account WHERE Name = 'x' ORDER BY Name LIMIT 5 OFFSET 5",
     lambda r: (r.limit, r.offset, len(r.order_by)) == (5, 5, 1)),
    ("SELECT Id FROM Account WHERE Name > 'm' ORDER BY Name, Id, CreatedDate DESC, Owner.Name NULLS LAST",
     lambda r: [o.descending for o in r.order_by] == [False, False, True, False]
     and r.order_by[3].nulls_last is True),
    ("SELECT Id, What.Name FROM Task WHERE What.Type IN ('Account', 'Opportunity')",
     lambda r: r.where.left == f("What.Type")),
    ("SELECT Id FROM Contact WHERE Account.Owner.Profile.UserLicense.Name = 'Salesforce'",
     lambda r: len(r.where.left.parts) == 5),
    ("SELECT Id FROM Account WHERE Name = 'a\\u00e9\\u20AC'", lambda r: r.where.value == "aé€"),
    ("SELECT Id FROM Account WHERE Name IN ('x') AND Type = 'y' AND Industry LIKE 'z%' AND Phone != null",
     lambda r: len(r.where.items) == 4),
    ("select id from account where name = 'x' order by name asc nulls first limit 1 offset 1 for update",
     lambda r: r.for_clause == "UPDATE" and r.order_by[0].nulls_last is False),
    ("SELECT Id FROM Account WHERE Name=null", lambda r: r.where == Comparison(f("Name"), "=", None)),
    ("SELECT Id FROM Account WHERE Amount>=10AND Name='x'", lambda r: len(r.where.items) == 2),
    ("SELECT Id FROM Account WHERE Amount>=10 AND(Name='x'OR Name='y')",
     lambda r: isinstance(r.where.items[1], Or)),
    ("SELECT Id,Name,(SELECT Id FROM Contacts)FROM Account", lambda r: isinstance(r.select[2].expr, SubQuery)),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact) AND Id NOT IN (SELECT AccountId FROM Case)",
     lambda r: [i.negated for i in r.where.items] == [False, True]),
    ("SELECT Id FROM Account WHERE NOT Langs__c INCLUDES ('fr')", lambda r: isinstance(r.where.item, Includes)),
    ("SELECT COUNT(Id) FROM Account WHERE CreatedDate = LAST_N_FISCAL_QUARTERS:2",
     lambda r: r.where.value == DateLiteral("LAST_N_FISCAL_QUARTERS", 2)),
    ("SELECT Id FROM Account WHERE Rating = 'Hot' WITH DATA CATEGORY Geography__c BELOW europe__c",
     lambda r: r.with_clauses == ("DATA CATEGORY",)),
]


@pytest.mark.parametrize(("text", "check"), PROPERTIES, ids=[text[:60] for text, _ in PROPERTIES])
def test_valid_query_properties(text: str, check: Callable[[Query], bool]) -> None:
    result = parsed(text)
    assert check(result)
    assert result.text == text


def test_enough_valid_cases() -> None:
    assert len(EXACT) + len(PROPERTIES) >= 80


@pytest.mark.parametrize("name", sorted(DATE_LITERALS))
def test_every_relative_date_literal(name: str) -> None:
    assert parsed(f"SELECT Id FROM Account WHERE CreatedDate = {name.lower()}").where.value == DateLiteral(name)


@pytest.mark.parametrize("name", sorted(DATE_LITERALS_N))
def test_every_relative_date_literal_with_n(name: str) -> None:
    assert parsed(f"SELECT Id FROM Account WHERE CreatedDate = {name}:7").where.value == DateLiteral(name, 7)
    assert "needs a number" in malformed(f"SELECT Id FROM Account WHERE CreatedDate = {name}").message


def test_positions_are_recorded() -> None:
    result = parse_soql("SELECT Id,\n  Account.Name, COUNT(Id)\nFROM Contact")
    assert (result.select[1].expr.line, result.select[1].expr.column) == (2, 3)
    assert (result.select[2].expr.line, result.select[2].expr.column) == (2, 17)


def test_query_text_is_the_original() -> None:
    text = "  SELECT Id FROM Account  "
    assert parse_soql(text).text == text


# -- invalid queries -------------------------------------------------------------------------------------------------

INVALID: list[tuple[str, int, int, str]] = [
    ("SELECT Id FRM Account", 1, 11, "unexpected token: 'FRM'"),
    ("", 1, 1, "unexpected token: '<EOF>'"),
    ("   \n  ", 1, 1, "unexpected token: '<EOF>'"),
    ("SELECT", 1, 7, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM", 1, 15, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE", 1, 29, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE Name", 1, 34, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WHERE Name = ", 1, 36, "unexpected token: '<EOF>'"),
    ("UPDATE Account SET Name = 'x'", 1, 1, "unexpected token: 'UPDATE'"),
    ("SELECT Id,, Name FROM Account", 1, 11, "unexpected token: ','"),
    ("SELECT Id Name FROM Account", 1, 11, "unexpected token: 'Name'"),
    ("SELECT Id FROM Account WHERE a = 1 AND b = 2 OR c = 3", 1, 46, "unexpected token: 'OR'"),
    ("SELECT Id FROM Account WHERE a = 1 OR b = 2 AND c = 3", 1, 45, "unexpected token: 'AND'"),
    ("SELECT Id FROM Account LIMIT", 1, 29, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account LIMIT ten", 1, 30, "unexpected token: 'ten'"),
    ("SELECT Id FROM Account LIMIT 1.5", 1, 30, "unexpected token: '1.5'"),
    ("SELECT Id FROM Account LIMIT -1", 1, 30, "unexpected token: '-1'"),
    ("SELECT Id FROM Account ORDER Name", 1, 30, "unexpected token: 'Name'"),
    ("SELECT Id FROM Account ORDER BY", 1, 32, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account ORDER BY Name NULLS", 1, 43, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account ORDER BY Name NULLS MIDDLE", 1, 44, "unexpected token: 'MIDDLE'"),
    ("SELECT Id FROM Account WHERE Name = 'x", 1, 37, "unterminated string literal"),
    ('SELECT Id FROM Account WHERE Name = "x"', 1, 37, "unexpected token: '\"'"),
    ("SELECT Id FROM Account WHERE Name = 'It''s'", 1, 41, "unexpected token: ''s''"),
    (r"SELECT Id FROM Account WHERE Name = 'a\qb'", 1, 39, r"Illegal character sequence '\q' in string literal."),
    (r"SELECT Id FROM Account WHERE Name = 'a\u00zz'", 1, 39, r"Illegal character sequence '\u'"),
    ("SELECT Id FROM Account WHERE CloseDate = 2024-02-30", 1, 42, "Invalid date: 2024-02-30"),
    ("SELECT Id FROM Account WHERE CreatedDate = 2024-01-01T25:00:00Z", 1, 44, "Invalid datetime"),
    ("SELECT Id FROM Account WHERE CreatedDate = 2024-01-01T10:00:00", 1, 54, "unexpected token: 'T10'"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS", 1, 44, "LAST_N_DAYS needs a number"),
    ("SELECT Id FROM Account WHERE CreatedDate = TODAY:3", 1, 49, "unexpected token: ':'"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS : 3", 1, 56, "unexpected token: ':'"),
    ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:-3", 1, 56, "unexpected token: '-3'"),
    ("SELECT Id FROM Account WHERE CreatedDate = NEXT_CENTURY", 1, 44, "unexpected token: 'NEXT_CENTURY'"),
    ("SELECT Id FROM Account WHERE Name = Acme", 1, 37, "unexpected token: 'Acme'"),
    ("SELECT Id FROM Account WHERE Amount = 1e999", 1, 39, "Invalid number: 1e999"),
    ("SELECT Id FROM Account WHERE Amount = " + "9" * 5000, 1, 39, "Invalid number: 9999"),
    ("SELECT Id FROM Account LIMIT " + "9" * 5000, 1, 30, "Invalid number: 9999"),
    ("SELECT Foo(Id) FROM Account", 1, 8, "Unknown function: Foo"),
    ("SELECT SUM() FROM Opportunity", 1, 8, "SUM() takes exactly one field"),
    ("SELECT COUNT(Id, Name) FROM Account", 1, 8, "COUNT() takes at most one field"),
    ("SELECT MAX('x') FROM Account", 1, 12, "unexpected token: ''x''"),
    ("SELECT FIELDS(EVERYTHING) FROM Account", 1, 15, "unexpected token: 'EVERYTHING'"),
    ("SELECT FIELDS(ALL) f FROM Account", 1, 20, "unexpected token: 'f'"),
    ("SELECT Id FROM Account WHERE FIELDS(ALL) = 1", 1, 30, "FIELDS() is only allowed in the SELECT list"),
    ("SELECT Id FROM Account ORDER BY FIELDS(ALL)", 1, 33, "FIELDS() is only allowed in the SELECT list"),
    ("SELECT COUNT(FIELDS(ALL)) FROM Account", 1, 14, "FIELDS() is only allowed in the SELECT list"),
    ("SELECT Name n FROM Account", 1, 13, "unexpected token: 'n'"),
    ("SELECT Id FROM Account WITH FOO", 1, 29, "unexpected token: 'FOO'"),
    ("SELECT Id FROM Account WHERE DISTANCE(Loc__c, GEOLOCATION(37.7, -122.4), 'mi') < 20", 1, 47,
     "GEOLOCATION is not supported"),
    ("SELECT Id FROM Account ORDER BY DISTANCE(Loc__c, Other__c)", 1, 33, "DISTANCE is not supported"),
    ("SELECT Id FROM Account WHERE Langs__c INCLUDES ('fr', 1)", 1, 55, "INCLUDES takes quoted strings only"),
    ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) INCLUDES ('x')", 1, 30, "multi-select picklist"),
    ("SELECT Id FROM Account WHERE Industry IN ()", 1, 43, "unexpected token: ')'"),
    ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) IN (SELECT Id FROM Contact)", 1, 30,
     "semi-join"),
    ("SELECT Id FROM Account LIMIT 5 WHERE a = 1", 1, 32, "unexpected token: 'WHERE'"),
    ("SELECT Id FROM Account LIMIT 5 LIMIT 6", 1, 32, "unexpected token: 'LIMIT'"),
    ("SELECT Id FROM Account ALL ROWS FOR VIEW", 1, 33, "unexpected token: 'FOR'"),
    ("SELECT Id FROM Account ALL", 1, 27, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account FOR DELETE", 1, 28, "unexpected token: 'DELETE'"),
    ("SELECT Id FROM Account WHERE Name = 'x' GARBAGE", 1, 41, "unexpected token: 'GARBAGE'"),
    ("SELECT Id FROM Account WHERE Name = 'x' $", 1, 41, "unexpected token: '$'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact", 1, 66, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account GROUP BY ROLLUP", 1, 39, "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Account WITH DATA CATEGORY Geo__c NEAR usa__c", 1, 50, "unexpected token: 'NEAR'"),
    ("SELECT TYPEOF What WHEN Account THEN Name FROM Event", 1, 43, "unexpected token: 'FROM'"),
    ("SELECT Id FROM Account WHERE NOT NOT a = 1", 1, 38, "unexpected token: 'a'"),
    ("SELECT Id\nFROM Account\nWHERE Name = 'x' AND", 3, 21, "unexpected token: '<EOF>'"),
    ("SELECT Id\nFROM Account\nWHERE Name == 'x'", 3, 13, "unexpected token: '='"),
    ("SELECT Id FROM Account WHERE Name = 'multi\nline' AND Bad = 'a\\qb'", 2, 19, "Illegal character sequence"),
]


@pytest.mark.parametrize(("text", "row", "column", "message"), INVALID, ids=[t[:60] for t, *_ in INVALID])
def test_invalid_query(text: str, row: int, column: int, message: str) -> None:
    error = malformed(text)
    assert f"\nERROR at Row:{row}:Column:{column}\n" in error.message
    assert message in error.message.rsplit("\n", 1)[-1]
    # The platform layout: the offending line, a caret under the column, the position, the complaint.
    _, shown, caret, _position, _complaint = error.message.split("\n", 4)
    assert shown == text.split("\n")[row - 1].rstrip("\r")
    assert caret == " " * (column - 1) + "^"


def test_enough_invalid_cases() -> None:
    assert len(INVALID) >= 30


def test_platform_message_layout() -> None:
    assert malformed("SELECT Id FRM Account").message == (
        "\nSELECT Id FRM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FRM'")
    assert malformed("SELECT Id FROM").message == (
        "\nSELECT Id FROM\n              ^\nERROR at Row:1:Column:15\nunexpected token: '<EOF>'")
    wire = malformed("SELECT Id FROM Account WHERE a = 1 AND b = 2 OR c = 3").to_wire()
    assert wire["errorCode"] == "MALFORMED_QUERY"


def test_mixing_and_or_explains_the_parentheses_rule() -> None:
    message = malformed("SELECT Id FROM Account WHERE a = 1 AND b = 2 OR c = 3").message
    assert message.endswith("unexpected token: 'OR' (use parentheses to combine AND and OR)")


def test_order_object_and_order_by_do_not_clash() -> None:
    assert parsed("SELECT Id FROM Order").object == "Order"
    assert parsed("SELECT Id FROM order order by Id").order_by == (OrderItem(f("Id")),)
    assert parsed("SELECT Id FROM Order o ORDER BY o.Id").alias == "o"
    assert parsed("SELECT Order.Id FROM OrderItem WHERE Order.Status = 'Draft'").where.left == f("Order.Status")
    # ORDER cannot be an alias: after the object name it always starts ORDER BY.
    assert "unexpected token: 'WHERE'" in malformed("SELECT Id FROM Account Order WHERE a = 1").message


def test_keywords_are_names_where_the_platform_allows_it() -> None:
    result = parsed("SELECT Group.Name, Limit.Id, Select__c FROM GroupMember WHERE Group.Type = 'Queue'")
    assert result.select[0].expr == f("Group.Name")
    assert result.select[1].expr == f("Limit.Id")
    assert parsed("SELECT Id FROM Group").object == "Group"


# -- limits: length and nesting --------------------------------------------------------------------------------------


def test_query_too_long() -> None:
    text = "SELECT Id FROM Account WHERE Name = '" + "x" * MAX_QUERY_LENGTH + "'"
    assert malformed(text).message.startswith("Query too long")


def test_query_at_the_length_limit_parses() -> None:
    values = ", ".join(f"'{i:06d}'" for i in range(9_000))
    text = f"SELECT Id FROM Account WHERE Name IN ({values})"
    assert len(text) <= MAX_QUERY_LENGTH
    assert len(parse_soql(text).where.values) == 9_000


def test_ten_thousand_nested_parentheses() -> None:
    text = "SELECT Id FROM Account WHERE " + "(" * 10_000 + "a = 1" + ")" * 10_000
    assert "nested too deeply" in malformed(text).message
    text = "SELECT Id FROM Account WHERE " + "(" * 10_000
    assert "nested too deeply" in malformed(text).message


def test_moderate_nesting_parses() -> None:
    condition = "a = 0"
    for i in range(1, 40):
        condition = f"(a = {i} {'AND' if i % 2 else 'OR'} {condition})"
    result = parse_soql(f"SELECT Id FROM Account WHERE {condition}")
    assert isinstance(result.where, And)


def test_parentheses_inside_strings_do_not_count() -> None:
    text = "SELECT Id FROM Account WHERE Name = '" + "(" * 500 + "'"
    assert parse_soql(text).where.value == "(" * 500


def test_non_string_input() -> None:
    with pytest.raises(MalformedQueryError):
        parse_soql(None)  # type: ignore[arg-type]
    with pytest.raises(MalformedQueryError):
        parse_soql(b"SELECT Id FROM Account")  # type: ignore[arg-type]


# -- the fast lexer agrees with lark's stock contextual lexer --------------------------------------------------------

_stock = soql_parser._build_parser("contextual")


def stock_parse(text: str) -> Any:
    """The tree from lark's own contextual lexer (NAME always accepted), or the exception type."""
    try:
        return strip_positions(_stock.parse(text))
    except Exception as exc:  # compared by type
        return type(exc).__name__


@pytest.mark.parametrize("text", [t for t, _ in EXACT] + [t for t, _ in PROPERTIES])
def test_stock_contextual_lexer_builds_the_same_tree(text: str) -> None:
    assert stock_parse(text) == parsed(text)


@pytest.mark.parametrize("text", [t for t, *_ in INVALID if t.strip() and len(t) < 1000])
def test_stock_contextual_lexer_refuses_the_same_queries(text: str) -> None:
    assert not isinstance(stock_parse(text), Query)


# -- queries as simple-salesforce writes them ------------------------------------------------------------------------


def test_simple_salesforce_format_soql_round_trips() -> None:
    fmt = pytest.importorskip("simple_salesforce.format")
    name = "O'Brien \"Bob\" \\ 50%_off\n\t"
    text = fmt.format_soql(
        "SELECT Id FROM Contact WHERE Name = {} AND CreatedDate > {} AND Birthdate = {} AND Id IN {} "
        "AND Amount__c > {} AND IsActive__c = {} AND Email != {} AND Title LIKE '{:like}%'",
        name, datetime(2024, 1, 2, 3, 4, 5, 678), date(2024, 1, 2), ["a", "b"], 1.5e-7, True, None, "50%_",
    )
    items = parse_soql(text).where.items
    assert [item.value if isinstance(item, Comparison) else item.values for item in items] == [
        name, datetime(2024, 1, 2, 3, 4, 5), date(2024, 1, 2), ("a", "b"), 1.5e-7, True, None, r"50\%\_%"]


# -- speed -----------------------------------------------------------------------------------------------------------

MID_SIZE = ("SELECT Id, Name, Type, Industry, AnnualRevenue, Owner.Name, CreatedDate, BillingCity, Phone, Website "
            "FROM Account WHERE Industry = 'Technology' AND AnnualRevenue > 1000000 "
            "AND CreatedDate = LAST_N_DAYS:30 AND BillingCity IN ('Paris', 'London') "
            "ORDER BY Name DESC NULLS LAST LIMIT 50")


def test_mid_size_query_parses_fast() -> None:
    parse_soql(MID_SIZE)
    best = min(_time_parses(MID_SIZE, 200) for _ in range(3))
    assert best < 0.003, f"{best * 1e3:.3f} ms per parse"  # ~0.3 ms on a slow machine; Earley would be ~10x


def _time_parses(text: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        parse_soql(text)
    return (time.perf_counter() - start) / n


# -- property tests --------------------------------------------------------------------------------------------------


def _only_malformed(text: str) -> None:
    try:
        result = parse_soql(text)
    except MalformedQueryError as exc:
        assert exc.error_code == "MALFORMED_QUERY"
        assert "Unknown error parsing query" not in exc.message  # the catch-all for bugs never fires
        return
    assert isinstance(result, Query)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=300))
def test_random_text_is_a_query_or_malformed(text: str) -> None:
    _only_malformed(text)


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_a_query_or_malformed(data: bytes) -> None:
    _only_malformed(data.decode("utf-8", errors="replace"))


SOQL_WORDS = ["SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "ORDER", "BY", "GROUP",
              "HAVING", "LIMIT", "OFFSET", "WITH", "TYPEOF", "WHEN", "THEN", "ELSE", "END", "NULLS", "FIRST",
              "ASC", "DESC", "FOR", "ALL", "ROWS", "USING", "SCOPE", "DATA", "CATEGORY", "AT", "ROLLUP", "Id",
              "Name", "Account", "Owner.Name", "COUNT", "FIELDS", "ALL", "TODAY", "LAST_N_DAYS", "null", "true",
              "(", ")", ",", ".", ":", "=", "!=", "<", "<=", "<>", "'x'", "'a\\'b'", "'", "\\", "1", "-2.5",
              "2024-01-31", "2024-01-31T10:00:00Z", "1e5", "1e999", "9" * 5000, "\n", "$", "\u00e9"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(SOQL_WORDS), max_size=30), st.sampled_from([" ", "", "\n"]))
def test_random_soql_words_are_a_query_or_malformed(words: list[str], sep: str) -> None:
    _only_malformed(sep.join(words))


# Well-formed queries: each strategy draws (text, expected tree) pairs, so parsing must give back the tree. The
# strategies are built once at import (hypothesis validates every new strategy object, which is slow).

RESERVED = {t.pattern.value.upper() for t in soql_parser._get_parser().terminals
            if t.pattern.type == "str" and t.pattern.value[:1].isalpha()}
_rng = random.Random(7)
_ALNUM = string.ascii_letters + string.digits + "_"
PLAIN_NAMES = ["Id", "Name", "Type", "Date__c", "Order__c", "ns__Obj__c", "ns__Rel__r", "X", "a1"] + [
    _rng.choice(string.ascii_letters) + "".join(_rng.choices(_ALNUM, k=_rng.randint(0, 8))) for _ in range(60)]
PLAIN_NAMES = [n for n in PLAIN_NAMES if n.upper() not in RESERVED]
# Keywords are names wherever the grammar expects a name and not that keyword: a field may be called Group, Order,
# From or Limit; only NOT (a condition's start) and TYPEOF (a select item's start) are taken at a field's start.
KEYWORD_NAMES = sorted({w.capitalize() for w in RESERVED} - {"Not", "Typeof"})
names = st.sampled_from(PLAIN_NAMES)  # aliases and bind names: never keywords
field_names = st.sampled_from(PLAIN_NAMES + KEYWORD_NAMES)
object_names = st.sampled_from(PLAIN_NAMES + KEYWORD_NAMES + ["Not", "Typeof"])
paths = st.lists(field_names, min_size=1, max_size=5).map(lambda parts: FieldPath(tuple(parts)))
_KEYWORDS: dict[str, st.SearchStrategy[str]] = {}


def keyword(word: str) -> st.SearchStrategy[str]:
    """``word`` in upper, lower or capitalised spelling."""
    if word not in _KEYWORDS:
        _KEYWORDS[word] = st.sampled_from([word, word.lower(), word.capitalize()])
    return _KEYWORDS[word]


def _escape(text: str) -> str:
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
    return "'" + "".join(table.get(ch, ch) for ch in text) + "'"


def _datetime_pair(moment: datetime, offset: tuple[str, int], show_millis: bool) -> tuple[str, datetime]:
    millis = moment.microsecond // 1000
    moment = moment.replace(microsecond=millis * 1000)
    fraction = f".{millis:03d}" if millis or show_millis else ""
    suffix, minutes = offset
    return moment.isoformat(timespec="seconds") + fraction + suffix, moment - timedelta(minutes=minutes)


plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
offsets = st.sampled_from([("Z", 0), ("+00:00", 0), ("+01:00", 60), ("-05:30", -330), ("+0100", 60), ("-0800", -480)])
literal_values = st.one_of(
    plain_text.map(lambda v: (_escape(v), v)),
    st.tuples(st.booleans(), st.booleans()).map(lambda d: (str(d[0]).upper() if d[1] else str(d[0]).lower(), d[0])),
    keyword("NULL").map(lambda text: (text, None)),
    st.integers(-(10**15), 10**15).map(lambda v: (str(v), v)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (repr(v), v)),
    st.dates(min_value=date(1000, 1, 1)).map(lambda v: (v.isoformat(), v)),
    st.builds(_datetime_pair, st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
              offsets, st.booleans()),
    st.sampled_from(sorted(DATE_LITERALS)).map(lambda name: (name.lower(), DateLiteral(name))),
    st.tuples(st.sampled_from(sorted(DATE_LITERALS_N)), st.integers(0, 10_000)).map(
        lambda d: (f"{d[0]}:{d[1]}", DateLiteral(d[0], d[1]))),
)
values = literal_values | names.map(lambda name: (f":{name}", Bind(name)))
operators = st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">="])


def _comparison(left: FieldPath, op: str, value: tuple[str, Any]) -> tuple[str, Any]:
    return f"{left.text} {op} {value[0]}", Comparison(left, "!=" if op == "<>" else op, value[1])  # type: ignore[arg-type]


def _like(left: FieldPath, like: str, pattern: str) -> tuple[str, Any]:
    # In a LIKE pattern the backslash stays an escape character: a literal backslash comes back doubled.
    return f"{left.text} {like} {_escape(pattern)}", Comparison(left, "LIKE", pattern.replace("\\", "\\\\"))


def _in_list(left: FieldPath, drawn: list[tuple[str, Any]], negated: bool) -> tuple[str, Any]:
    text = f"{left.text} {'NOT IN' if negated else 'IN'} ({', '.join(t for t, _ in drawn)})"
    return text, InList(left, tuple(v for _, v in drawn), negated)


def _includes(left: FieldPath, strings: list[str], negated: bool) -> tuple[str, Any]:
    text = f"{left.text} {'EXCLUDES' if negated else 'INCLUDES'} ({', '.join(_escape(s) for s in strings)})"
    return text, Includes(left, tuple(strings), negated)


def _date_function(function: str, left: FieldPath, number: int) -> tuple[str, Any]:
    return f"{function.lower()}({left.text}) = {number}", Comparison(Function(function, (left,)), "=", number)


leaves = st.one_of(
    st.builds(_comparison, paths, operators, values),
    st.builds(_like, paths, keyword("LIKE"), plain_text),
    st.builds(_in_list, paths, st.lists(literal_values, min_size=1, max_size=4), st.booleans()),
    st.builds(_includes, paths, st.lists(plain_text, min_size=1, max_size=3), st.booleans()),
    st.builds(_date_function, st.sampled_from(["CALENDAR_YEAR", "DAY_ONLY", "FISCAL_QUARTER", "HOUR_IN_DAY"]), paths,
              st.integers(0, 3000)),
)


def _wrap(pair: tuple[str, Any]) -> str:
    text, node = pair
    return f"({text})" if isinstance(node, (And, Or, Not)) else text


def _combine(children: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    def chain(op: str, cls: type) -> st.SearchStrategy[tuple[str, Any]]:
        return st.tuples(st.lists(children, min_size=2, max_size=4), keyword(op)).map(
            lambda drawn: (f" {drawn[1]} ".join(_wrap(c) for c in drawn[0]), cls(tuple(n for _, n in drawn[0]))))

    negation = st.tuples(children, keyword("NOT")).map(lambda d: (f"{d[1]} {_wrap(d[0])}", Not(d[0][1])))
    return st.one_of(chain("AND", And), chain("OR", Or), negation)


conditions = st.recursive(leaves, _combine, max_leaves=6)


def _aggregate(function: str, path: FieldPath, alias: str | None) -> tuple[str, SelectItem]:
    text = f"{function}({path.text})" + (f" {alias}" if alias else "")
    return text, SelectItem(Function(function.upper(), (path,)), alias)


select_items = st.one_of(
    paths.map(lambda path: (path.text, SelectItem(path))),
    st.builds(_aggregate, st.sampled_from(["SUM", "MAX", "COUNT_DISTINCT", "toLabel"]), paths, st.none() | names),
    keyword("COUNT").map(lambda text: (text + "()", SelectItem(Function("COUNT")))),
    st.sampled_from(["ALL", "STANDARD", "CUSTOM", "all"]).map(
        lambda which: (f"FIELDS({which})", SelectItem(FieldsMacro(which.upper())))),  # type: ignore[arg-type]
    st.tuples(object_names, paths).map(lambda d: (f"(SELECT {d[1].text} FROM {d[0]})",
                                           SelectItem(SubQuery(Query((SelectItem(d[1]),), d[0]))))),
)
order_items = st.lists(
    st.tuples(paths, st.sampled_from([None, "ASC", "DESC"]), st.sampled_from([None, "FIRST", "LAST"])), max_size=2)
optional_names = st.none() | names
separators = st.sampled_from([" ", "  ", "\n", "\t", " \r\n "])


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, Query]:
    sep = draw(separators)
    items = draw(st.lists(select_items, min_size=1, max_size=4))
    obj, alias = draw(object_names), draw(optional_names)
    parts = [draw(keyword("SELECT")), ", ".join(t for t, _ in items), draw(keyword("FROM")), obj]
    if alias:
        parts.append(alias)
    condition = draw(st.none() | conditions)
    if condition:
        parts += [draw(keyword("WHERE")), condition[0]]
    order = draw(order_items)
    if order:
        rendered = [" ".join([p.text] + ([d] if d else []) + ([f"NULLS {n}"] if n else [])) for p, d, n in order]
        parts += [draw(keyword("ORDER")), draw(keyword("BY")), ", ".join(rendered)]
    limit, offset = draw(st.none() | st.integers(0, 50_000)), draw(st.none() | st.integers(0, 2_000))
    if limit is not None:
        parts += [draw(keyword("LIMIT")), str(limit)]
    if offset is not None:
        parts += [draw(keyword("OFFSET")), str(offset)]
    expected = Query(
        select=tuple(item for _, item in items), object=obj, alias=alias,
        where=condition[1] if condition else None,
        order_by=tuple(OrderItem(p, d == "DESC", None if n is None else n == "LAST") for p, d, n in order),
        limit=limit, offset=offset,
    )
    return sep.join(parts), expected


well_formed_queries = queries()


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_queries)
def test_well_formed_queries_round_trip(case: tuple[str, Query]) -> None:
    text, expected = case
    result = parse_soql(text)
    assert len(result.select) == len(expected.select)
    assert (result.object, result.alias, result.limit, result.offset) == (
        expected.object, expected.alias, expected.limit, expected.offset)
    assert strip_positions(result) == expected
    assert stock_parse(text) == expected


@settings(max_examples=50, deadline=None, database=None)
@given(well_formed_queries, st.integers(0, 400))
def test_truncated_queries_are_a_query_or_malformed(case: tuple[str, Query], cut: int) -> None:
    _only_malformed(case[0][:cut])


def test_error_positions_point_into_the_text() -> None:
    for text, row, column, _ in INVALID:
        match = re.search(r"Row:(\d+):Column:(\d+)", malformed(text).message)
        assert match is not None and (int(match[1]), int(match[2])) == (row, column)
