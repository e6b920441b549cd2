"""``$filter``/``$orderby``/``$select``/``$expand`` to SOQL text, without an org: the model is built from the
standard objects' schema, so these run in milliseconds and pin the exact SOQL each option produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interlink.api.odata.config import ExposedObject, ODataConfig
from interlink.api.odata.filter import translate_filter, translate_orderby
from interlink.api.odata.model import ServiceModel
from interlink.api.odata.options import build_plan, split_top_level
from interlink.errors import InvalidFieldError, MalformedQueryError
from interlink.metadata.loader import load_project


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServiceModel:
    schema = load_project(tmp_path_factory.mktemp("schema")).schema
    return ServiceModel(schema, ODataConfig((ExposedObject("Account"), ExposedObject("Contact", True),
                                             ExposedObject("Opportunity"))))


def soql(model: ServiceModel, expression: str, entity: str = "Contact") -> str:
    return translate_filter(expression, model.sets[entity.lower()], model)


@pytest.mark.parametrize(("expression", "expected"), [
    ("LastName eq 'Smith'", "LastName = 'Smith'"),
    ("LastName ne 'Smith'", "LastName != 'Smith'"),
    ("Birthdate gt 1990-05-01", "Birthdate > 1990-05-01"),
    ("Birthdate le datetime'1990-05-01T00:00:00'", "Birthdate <= 1990-05-01"),
    ("CreatedDate ge 2024-01-01T10:00:00+02:00", "CreatedDate >= 2024-01-01T08:00:00Z"),
    ("CreatedDate lt datetime'2024-01-01T10:00:00.250'", "CreatedDate < 2024-01-01T10:00:00.250Z"),
    ("CreatedDate gt 2024-01-01", "CreatedDate > 2024-01-01T00:00:00Z"),
    ("HasOptedOutOfEmail eq true", "HasOptedOutOfEmail = TRUE"),
    ("HasOptedOutOfEmail", "HasOptedOutOfEmail = TRUE"),
    ("Email eq null", "Email = null"),
    ("null ne Email", "Email != null"),
    ("'Smith' eq LastName", "LastName = 'Smith'"),
    ("a eq 1", None),
    ("LastName eq 'O''Brien'", "LastName = 'O\\'Brien'"),
    ("LastName eq 'back\\slash'", "LastName = 'back\\\\slash'"),
    ("contains(LastName,'50%_off')", "LastName LIKE '%50\\%\\_off%'"),
    ("startswith(tolower(LastName),'mc')", "LastName LIKE 'mc%'"),
    ("endswith(LastName,'son') eq false", "NOT (LastName LIKE '%son')"),
    ("substringof('it', toupper(LastName))", "LastName LIKE '%it%'"),
    ("LastName in ('a', 'b', null)", "LastName IN ('a', 'b', null)"),
    ("a eq 1 or b eq 2", None),
    ("LastName eq 'a' and FirstName eq 'b' or Title eq 'c'",
     "(LastName = 'a' AND FirstName = 'b') OR Title = 'c'"),
    ("LastName eq 'a' and (FirstName eq 'b' or Title eq 'c')",
     "LastName = 'a' AND (FirstName = 'b' OR Title = 'c')"),
    ("not (LastName eq 'a' or LastName eq 'b')", "NOT (LastName = 'a' OR LastName = 'b')"),
    ("Account/Name eq 'Acme'", "Account.Name = 'Acme'"),
    ("Account/Parent/Industry eq 'Energy'", "Account.Parent.Industry = 'Energy'"),
    ("Account eq null", "AccountId = null"),
    ("year(Birthdate) eq 1990 and month(CreatedDate) ge 6", "CALENDAR_YEAR(Birthdate) = 1990 AND "
                                                            "CALENDAR_MONTH(CreatedDate) >= 6"),
])
def test_filter_to_soql(model: ServiceModel, expression: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidFieldError):
            soql(model, expression)
        return
    assert soql(model, expression) == expected


def test_lambdas_become_semi_joins(model: ServiceModel) -> None:
    assert soql(model, "Contacts/any(c: c/Title eq 'CEO')", "Account") == \
        "Id IN (SELECT AccountId FROM Contact WHERE Title = 'CEO')"
    assert soql(model, "Contacts/all(c: startswith(c/Email, 'a'))", "Account") == \
        "Id NOT IN (SELECT AccountId FROM Contact WHERE NOT (Email LIKE 'a%'))"
    assert soql(model, "Opportunities/any()", "Account") == "Id IN (SELECT AccountId FROM Opportunity)"
    with pytest.raises(MalformedQueryError, match="paths start with its variable"):
        soql(model, "Contacts/any(c: Title eq 'x')", "Account")
    with pytest.raises(MalformedQueryError, match="collection"):
        soql(model, "Contacts/Title eq 'x'", "Account")


@pytest.mark.parametrize("expression", [
    "Name eq 'x'' OR Name != '''",
    "Name eq 'x\\'' OR Name != '''",
    "Name eq ''') OR (Name != '''",
    "Name eq '\\' and Name eq ' OR Name != null OR Name = '",
    "contains(Name, ''' OR Name LIKE ''%')",
])
def test_values_never_leave_their_string_literal(model: ServiceModel, expression: str) -> None:
    from interlink.soql.parser import parse_soql

    text = soql(model, expression, "Account")
    query = parse_soql(f"SELECT Id FROM Account WHERE {text}")
    # Only the comparisons the OData expression holds: nothing was injected.
    assert type(query.where).__name__ == ("And" if " and " in expression else "Comparison"), text


@pytest.mark.parametrize(("expression", "message"), [
    ("Name eq", "ends too early"),
    ("Name eq 'x' Name", "unexpected 'Name'"),
    ("Name eq \"x\"", "unexpected character"),
    ("LastName eq 1", "cannot be compared with 1"),
    ("Birthdate eq datetime'2024-01-01T10:00:00'", "is a date"),
    ("Birthdate eq 2024-02-30", "Invalid date"),
    ("NumberOfEmployees div 2 eq 1", "'div' is not supported"),
    ("indexof(LastName,'a') eq 1", "indexof() is not supported"),
    ("contains(LastName, FirstName)", "contains() with other arguments"),
    ("LastName", "not a Boolean property"),
    ("Contacts/any(c: c/Cases/any(d: d/Subject eq 'x'))", "inside another lambda"),
    ("$it/LastName eq 'x'", "not supported"),
])
def test_refusals_name_the_problem(model: ServiceModel, expression: str, message: str) -> None:
    entity = "Account" if "Contacts" in expression else "Contact"
    with pytest.raises((MalformedQueryError, InvalidFieldError), match=None) as failure:
        soql(model, expression, entity)
    assert message in failure.value.message


def test_orderby(model: ServiceModel) -> None:
    contact = model.sets["contact"]
    assert translate_orderby("LastName desc, Account/Name,CreatedDate asc", contact, model) == [
        "LastName DESC", "Account.Name ASC", "CreatedDate ASC"]
    with pytest.raises(InvalidFieldError):
        translate_orderby("Nope", contact, model)


def plan(model: ServiceModel, entity: str, version: int = 4, **params: str) -> Any:
    return build_plan(model.sets[entity.lower()], model, params, version)


def test_plan_select_expand_top_skip(model: ServiceModel) -> None:
    built = plan(model, "Contact", **{"$select": "LastName,Email", "$expand": "Account($select=Name)",
                                      "$filter": "LastName ne null", "$orderby": "LastName", "$top": "10",
                                      "$skip": "20"})
    assert built.soql == ("SELECT Id, LastName, Email, Account.Id, Account.Name FROM Contact WHERE LastName != null "
                          "ORDER BY LastName ASC LIMIT 10 OFFSET 20")
    assert built.engine_offset == 0
    assert built.count_soql() == "SELECT COUNT() FROM Contact WHERE LastName != null"
    children = plan(model, "Account", **{"$select": "Name", "$expand": "Contacts($select=LastName;$filter="
                                                                      "contains(LastName,',;()');$orderby=LastName "
                                                                      "desc;$top=3),Opportunities"})
    assert children.soql.startswith("SELECT Id, Name, (SELECT Id, LastName FROM Contacts WHERE LastName LIKE "
                                    "'%,;()%' ORDER BY LastName DESC LIMIT 3), (SELECT Id, ")
    deep = plan(model, "Account", **{"$skip": "2500", "$top": "5"})
    assert deep.soql.endswith("FROM Account LIMIT 2505") and deep.engine_offset == 2500
    v2 = plan(model, "Contact", 2, **{"$select": "LastName,Account/Name", "$expand": "Account"})
    assert v2.soql == "SELECT Id, LastName, Account.Id, Account.Name FROM Contact"


def test_split_top_level_respects_quotes_and_parentheses() -> None:
    assert split_top_level("a,b($filter=x eq 'p,q'),c('it''s,ok')", ",") == [
        "a", "b($filter=x eq 'p,q')", "c('it''s,ok')"]
    with pytest.raises(MalformedQueryError):
        split_top_level("a(b", ",")


def test_sample_metadata_and_missing_config(tmp_path: Path) -> None:
    from interlink.api.odata.config import load_config

    assert load_config(tmp_path).objects == ()
    sample = load_config(tmp_path, include_sample=True)
    assert [(o.name, o.writable) for o in sample.objects] == [
        ("Account", False), ("Contact", True), ("Opportunity", False), ("Order", False), ("Case", False)]
    assert sample.page_size == 1000
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "odata.yaml").write_text("objects: [Lead]\npageSize: 20\n")
    own = load_config(tmp_path, include_sample=True)  # the project's file wins over the sample's
    assert [o.name for o in own.objects] == ["Lead"] and own.page_size == 20


@pytest.mark.parametrize(("text", "message"), [
    ("objects: Account", "objects must be a list"),
    ("objects: [Account]\npagesize: 5", "unknown key(s) pagesize"),
    ("objects: [Account]\npageSize: 0", "pageSize must be a whole number"),
    ("objects: [{name: Contact, writable: yes please}]", "writable must be true or false"),
    ("objects: [{writable: true}]", "needs a name"),
    ("objects: [Account, account]", "listed twice"),
    ("objects: [Account\n", "invalid YAML"),
])
def test_bad_config_files_name_the_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    from interlink.api.odata.config import load_config
    from interlink.errors import MetadataError

    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "odata.yaml").write_text(text)
    with pytest.raises(MetadataError) as failure:
        load_config(tmp_path)
    assert message in failure.value.message and "odata.yaml" in failure.value.message


def test_unknown_or_unexposable_objects_are_refused(model: ServiceModel) -> None:
    from interlink.api.odata.config import check_against_schema, parse_config
    from interlink.errors import MetadataError

    with pytest.raises(MetadataError, match="Nope__c is not an object"):
        check_against_schema(parse_config({"objects": ["Nope__c"]}, "odata.yaml"), model.schema)
