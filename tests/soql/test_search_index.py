"""The SOSL full-text index and parser: kept by the one write path's hooks, on every store backend.

One org per backend is shared by the module; every test searches for words unique to it (``tag()``), so
records other tests create never match.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from interlink.errors import InvalidTypeError, MalformedSearchError
from interlink.metadata.model import FieldDef, FieldType, Schema
from interlink.soql import search_index, sosl
from interlink.soql.engine import QueryEngine
from interlink.testing import backend_org

GADGET_YAML = """\
name: Gadget__c
label: Gadget
labelPlural: Gadgets
fields:
  - {name: Notes__c, type: textarea, length: 2000}
  - {name: Contact_Email__c, type: email}
  - {name: Hotline__c, type: phone}
  - {name: Homepage__c, type: url}
  - {name: Size__c, type: picklist, values: [Small, Large]}
  - {name: Weight__c, type: number, precision: 6, scale: 2}
"""


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module, with a Gadget__c custom object."""
    root = tmp_path_factory.mktemp(f"search-{store_backend}")
    with backend_org(root, store_backend, {"Gadget__c": GADGET_YAML}, unavailable=pytest.skip) as opened:
        yield opened


@pytest.fixture
def ctx(org: Any) -> Any:
    return org.admin_context()


def tag() -> str:
    return "t" + uuid.uuid4().hex[:10]


def create(org: Any, ctx: Any, object_name: str, *records: dict[str, Any]) -> list[str]:
    results = org.records.create(ctx, object_name, list(records))
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


def find(org: Any, sosl_text: str) -> list[str]:
    """Ids of the records a SOSL statement finds, in answer order."""
    return [record["Id"] for record in run(org, org.admin_context(), sosl_text)]


def run(org: Any, ctx: Any, sosl_text: str) -> list[dict[str, Any]]:
    """Records a SOSL statement answers, RETURNING field lists run through the SOQL engine."""
    engine = QueryEngine(org.store)

    def soql(statement: str) -> list[dict[str, Any]]:
        return engine.execute(statement, ctx, url_prefix="/b/sobjects").records

    return [record for _obj, record in sosl.execute(org.store, sosl.parse_sosl(sosl_text), soql, "/b").records]


# -- the write path keeps the index ------------------------------------------------------------------------------


def test_create_update_delete_undelete_keep_the_index(org: Any, ctx: Any) -> None:
    t, u = tag(), tag()
    [record_id] = create(org, ctx, "Account", {"Name": f"{t} Holdings", "Description": "ships widgets"})
    assert find(org, f"FIND {{{t}}}") == [record_id]

    assert org.records.update(ctx, "Account", [{"Id": record_id, "Name": f"{u} Holdings"}])[0].success
    assert find(org, f"FIND {{{t}}}") == []
    assert find(org, f"FIND {{{u}}}") == [record_id]

    assert org.records.delete(ctx, [record_id])[0].success
    assert find(org, f"FIND {{{u}}}") == []

    assert org.records.undelete(ctx, [record_id])[0].success
    assert find(org, f"FIND {{{u}}}") == [record_id]

    assert org.records.hard_delete(ctx, [record_id])[0].success
    assert find(org, f"FIND {{{u}}}") == []


def test_update_of_unindexed_fields_keeps_the_document(org: Any, ctx: Any) -> None:
    t = tag()
    [record_id] = create(org, ctx, "Account", {"Name": f"{t} Numbers"})
    assert org.records.update(ctx, "Account", [{"Id": record_id, "NumberOfEmployees": 12}])[0].success
    assert find(org, f"FIND {{{t}}}") == [record_id]


def test_cascade_delete_removes_children_and_undelete_restores_them(org: Any, ctx: Any) -> None:
    t = tag()
    [account] = create(org, ctx, "Account", {"Name": f"{t} Parent"})
    [contact] = create(org, ctx, "Contact", {"LastName": f"{t}child", "AccountId": account})
    assert set(find(org, f"FIND {{{t}* OR {t}child}}")) == {account, contact}
    org.records.delete(ctx, [account])
    assert find(org, f"FIND {{{t}child}}") == []
    org.records.undelete(ctx, [account])
    assert find(org, f"FIND {{{t}child}}") == [contact]


def test_all_or_none_rollback_leaves_the_index_unchanged(org: Any, ctx: Any) -> None:
    t = tag()
    results = org.records.create(ctx, "Account", [{"Name": f"{t} one"}, {"Website": "https://no.name"}],
                                 all_or_none=True)
    assert [r.success for r in results] == [False, False]
    assert find(org, f"FIND {{{t}}}") == []

    [record_id] = create(org, ctx, "Account", {"Name": f"{t} kept"})
    with pytest.raises(RuntimeError), org.records.unit_of_work(ctx):
        assert org.records.update(ctx, "Account", [{"Id": record_id, "Name": "renamed away"}])[0].success
        org.records.delete(ctx, [record_id])
        raise RuntimeError("abandon the transaction")
    assert find(org, f"FIND {{{t}}}") == [record_id]


def test_after_save_rejection_rolls_back_that_records_document(org: Any, ctx: Any) -> None:
    t = tag()

    def reject_bad(event: Any) -> None:
        for index, record in enumerate(event.new):
            if "reject" in (record.get("Name") or ""):
                event.add_error(index, "rejected by a trigger")

    org.hooks.register("after_save", reject_bad, objects=["Account"])
    try:
        results = org.records.create(ctx, "Account", [{"Name": f"{t} fine"}, {"Name": f"{t} reject"}])
    finally:
        org.hooks.unregister(reject_bad)
    assert [r.success for r in results] == [True, False]
    assert find(org, f"FIND {{{t}}}") == [results[0].id]


# -- the search language ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(org: Any) -> dict[str, Any]:
    """Contacts and accounts for the language tests, under one tag."""
    ctx = org.admin_context()
    t = tag()
    ids = {}
    ids["smith"], ids["smyth"], ids["jones"] = create(
        org, ctx, "Contact",
        {"FirstName": "Joe", "LastName": f"Smith{t}", "Email": f"joe.smith@{t}.example", "Phone": "+1 (415) 555-0100",
         "Title": f"Chief {t} Officer"},
        {"FirstName": "Joe", "LastName": f"Smyth{t}", "Email": f"jsmyth@{t}.example", "MobilePhone": "020 7946 0018"},
        {"FirstName": "Mary", "LastName": f"Jones{t}", "Description": f"met Joe Smith{t} at the fair"})
    ids["zoe"], ids["acct"] = create(
        org, ctx, "Account", {"Name": f"Zoë Ångström {t}"}, {"Name": f"Plain {t}", "Description": f"Zoe {t} wrote"})
    ids["t"] = t
    return ids


def test_prefix_wildcard(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    assert set(find(org, f"FIND {{Sm*{t}}}")) == {people["smith"], people["smyth"], people["jones"]}
    assert set(find(org, "FIND {Smi*} IN NAME FIELDS RETURNING Contact")) >= {people["smith"]}
    assert set(find(org, f"FIND {{Sm?th{t}}}")) == {people["smith"], people["smyth"], people["jones"]}
    assert set(find(org, f"FIND {{Sm?th{t}}} IN NAME FIELDS")) == {people["smith"], people["smyth"]}
    assert find(org, f"FIND {{Smi?h{t}}} IN NAME FIELDS") == [people["smith"]]
    assert set(find(org, f"FIND {{S*h{t}}} IN NAME FIELDS RETURNING Contact")) == {people["smith"], people["smyth"]}
    assert find(org, f"FIND {{S*h{t}x}} IN NAME FIELDS RETURNING Contact") == []


def test_phrases_keep_word_order(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    assert find(org, f'FIND {{"Joe Smith{t}"}} IN NAME FIELDS') == [people["smith"]]
    assert find(org, f'FIND {{"Smith{t} Joe"}}') == []
    assert set(find(org, f"FIND {{Smith{t} Joe}}")) == {people["smith"], people["jones"]}  # words: any order
    assert find(org, f'FIND {{"chief {t} officer"}}') == [people["smith"]]
    assert find(org, f'FIND {{"chief officer"}} RETURNING Contact(Id WHERE Id = \'{people["smith"]}\')') == []


def test_and_or_and_not(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    smith, smyth, jones = people["smith"], people["smyth"], people["jones"]
    assert set(find(org, f"FIND {{Smith{t} OR Smyth{t}}}")) == {smith, smyth, jones}
    assert set(find(org, f"FIND {{Smith{t} AND fair}}")) == {jones}
    assert set(find(org, f"FIND {{Smith{t} AND NOT fair}}")) == {smith}
    assert set(find(org, f"FIND {{Smith{t} NOT fair}}")) == {smith}
    assert set(find(org, f"FIND {{(Smith{t} OR Smyth{t}) AND NOT (fair OR jsmyth)}}")) == {smith}
    assert set(find(org, f"FIND {{Joe AND NOT Sm?th{t}}} RETURNING Contact(Id WHERE LastName LIKE '%{t}')")) == set()


def test_search_groups(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    assert set(find(org, f"FIND {{Smith{t}}} IN ALL FIELDS")) == {people["smith"], people["jones"]}
    assert set(find(org, f"FIND {{Smith{t}}} IN NAME FIELDS")) == {people["smith"]}
    assert set(find(org, f"FIND {{{t}}} IN EMAIL FIELDS")) == {people["smith"], people["smyth"]}
    assert find(org, f"FIND {{jsmyth@{t}.example}} IN EMAIL FIELDS") == [people["smyth"]]
    assert find(org, f"FIND {{Smith{t}}} IN PHONE FIELDS") == []
    assert find(org, f"FIND {{Smith{t}}} IN SIDEBAR FIELDS RETURNING Contact(Id WHERE Id = '{people['smith']}')") \
        == [people["smith"]]


def test_phone_digits(org: Any, people: dict[str, Any]) -> None:
    smith, smyth = people["smith"], people["smyth"]
    where = f"RETURNING Contact(Id WHERE Id IN ('{smith}', '{smyth}'))"
    assert [r["Id"] for r in run(org, org.admin_context(), f"FIND {{4155550100}} IN PHONE FIELDS {where}")] == [smith]
    assert [r["Id"] for r in run(org, org.admin_context(), f"FIND {{14155550100}} {where}")] == [smith]
    assert [r["Id"] for r in run(org, org.admin_context(), f"FIND {{415\\-555\\-0100}} {where}")] == [smith]
    assert [r["Id"] for r in run(org, org.admin_context(), f"FIND {{02079460018}} IN PHONE FIELDS {where}")] == [smyth]


def test_diacritics_and_case_do_not_matter(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    assert set(find(org, f"FIND {{zoe {t}}}")) == {people["zoe"], people["acct"]}
    assert set(find(org, f"FIND {{ZOË {t}}}")) == {people["zoe"], people["acct"]}
    assert find(org, f"FIND {{angstrom {t}}}") == [people["zoe"]]
    assert find(org, f'FIND {{"zoe angstrom"}} IN NAME FIELDS RETURNING Account(Id WHERE Name LIKE \'%{t}\')') \
        == [people["zoe"]]


def test_name_matches_rank_above_other_fields(org: Any, people: dict[str, Any]) -> None:
    t = people["t"]
    found = find(org, f"FIND {{Smith{t}}} RETURNING Contact")
    assert found == [people["smith"], people["jones"]]


def test_custom_object_text_fields(org: Any, ctx: Any) -> None:
    t = tag()
    [gadget] = create(org, ctx, "Gadget__c", {
        "Name": f"{t} Sprocket", "Notes__c": "A very\nlong note about turbines", "Contact_Email__c": f"ops@{t}.io",
        "Hotline__c": "(212) 555-0199", "Homepage__c": f"https://{t}.example/about", "Size__c": "Large",
        "Weight__c": 12.5})
    assert find(org, f"FIND {{turbines}} RETURNING Gadget__c(Id WHERE Name LIKE '{t}%')") == [gadget]
    assert find(org, f"FIND {{{t}}} IN EMAIL FIELDS") == [gadget]
    assert find(org, f"FIND {{2125550199}} IN PHONE FIELDS RETURNING Gadget__c(Id WHERE Name LIKE '{t}%')") \
        == [gadget]
    assert find(org, f"FIND {{{t} AND about}}") == [gadget]
    assert find(org, f"FIND {{{t} AND large}}") == [gadget]
    assert find(org, f"FIND {{{t} AND 12}}") == []  # numbers are not text fields


# -- RETURNING through the SOQL engine ------------------------------------------------------------------------------


def test_returning_fields_where_order_limit(org: Any, ctx: Any) -> None:
    t = tag()
    create(org, ctx, "Account",
           {"Name": f"{t} Alpha", "Industry": "Banking"},
           {"Name": f"{t} Beta", "Industry": "Technology"},
           {"Name": f"{t} Gamma", "Industry": "Banking"})
    create(org, ctx, "Contact", {"LastName": f"{t}person", "Email": f"a@{t}.example"})

    records = run(org, ctx, f"FIND {{{t}*}} RETURNING Account(Name, Industry WHERE Industry = 'Banking' "
                            f"ORDER BY Name DESC), Contact(LastName)")
    assert [(r["attributes"]["type"], r.get("Name") or r.get("LastName")) for r in records] == [
        ("Account", f"{t} Gamma"), ("Account", f"{t} Alpha"), ("Contact", f"{t}person")]
    assert set(records[0]) == {"attributes", "Name", "Industry"}

    limited = run(org, ctx, f"FIND {{{t}*}} RETURNING Account(Name ORDER BY Name LIMIT 2 OFFSET 1)")
    assert [r["Name"] for r in limited] == [f"{t} Beta", f"{t} Gamma"]

    overall = run(org, ctx, f"FIND {{{t}*}} RETURNING Account(Name ORDER BY Name), Contact(LastName) LIMIT 2")
    assert [r["Name"] for r in overall] == [f"{t} Alpha", f"{t} Beta"]

    ids_only = run(org, ctx, f"FIND {{{t}*}} RETURNING Contact, Account")
    assert [r["attributes"]["type"] for r in ids_only] == ["Contact", "Account", "Account", "Account"]
    assert all(set(r) == {"attributes", "Id"} for r in ids_only)

    parents = run(org, ctx, f"FIND {{{t}person}} RETURNING Contact(LastName, Account.Name)")
    assert parents == [{"attributes": parents[0]["attributes"], "LastName": f"{t}person", "Account": None}]


def test_returning_errors(org: Any, ctx: Any) -> None:
    with pytest.raises(InvalidTypeError):
        run(org, ctx, "FIND {acme} RETURNING Nope__c")
    with pytest.raises(InvalidTypeError, match="does not support search"):
        run(org, ctx, "FIND {acme} RETURNING Organization")
    with pytest.raises(Exception) as caught:
        run(org, ctx, "FIND {zzzznothing} RETURNING Account(Nope__c)")
    assert caught.value.error_code == "INVALID_FIELD"  # type: ignore[attr-defined]
    assert "Column:38" in caught.value.message  # type: ignore[attr-defined]
    with pytest.raises(MalformedSearchError, match="unexpected token"):
        run(org, ctx, "FIND {acme} RETURNING Account(Id WHERE Name = )")
    with pytest.raises(MalformedSearchError, match="OFFSET"):
        run(org, ctx, "FIND {acme} RETURNING Account(Id LIMIT 1 OFFSET 1), Contact")


# -- parsing ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statement, message", [
    ("FIND Acme", sosl.NO_TERM),
    ("", sosl.NO_TERM),
    ("FIND {a}", sosl.SHORT_TERM),
    ("FIND {a*}", sosl.SHORT_TERM),
    ("FIND {}", sosl.SHORT_TERM),
    ("FIND {--}", sosl.SHORT_TERM),
    ("FIND {*cme}", "a wildcard cannot start a word"),
    ("FIND {acme AND}", "unexpected token: '<EOF>'"),
    ("FIND {(acme}", "unexpected token: '<EOF>'"),
    ('FIND {"acme}', "unexpected token"),
    ("FIND {acme} IN BOGUS FIELDS", "unexpected token: 'BOGUS'"),
    ("FIND {acme} RETURNING", "unexpected token: '<EOF>'"),
    ("FIND {acme} RETURNING Account(", "unexpected token: '<EOF>'"),
    ("FIND {acme} RETURNING Account(Id WHERE (Name = 'x')", "unexpected token: '<EOF>'"),
    ("FIND {acme} RETURNING Account(Id WHERE Name = 'x)", "unexpected token"),
    ("FIND {acme} RETURNING Account(Id) LIMIT x", "unexpected token: 'x'"),
    ("FIND {acme} WITH DATA CATEGORY Geo__c AT usa__c", "not supported"),
    ("FIND {acme} WITH METADATA = 'NOPE'", "LABELS"),
    ("FIND {acme} WITH BOGUS", "unexpected token: 'BOGUS'"),
    ("FIND {acme} RETURNING Account USING ListView = Recent", "unexpected token"),
    ("FIND {acme} RETURNING Account(Id USING ListView = Recent)", "not supported"),
    ("FIND {acme} RETURNING Account(Id ORDER BY Name LIMIT 5 OFFSET 2001)", "offset"),
    ("FIND {acme} UPDATE BOGUS", "unexpected token: 'BOGUS'"),
    ("FIND {acme} {again}", "unexpected token"),
    ("FIND {acme} " + "(" * 200, "nested too deeply"),
])
def test_malformed_searches(statement: str, message: str) -> None:
    with pytest.raises(MalformedSearchError) as caught:
        sosl.parse_sosl(statement)
    assert caught.value.error_code == "MALFORMED_SEARCH"
    assert message.lower() in caught.value.message.lower()


def test_error_messages_point_at_the_offending_token() -> None:
    with pytest.raises(MalformedSearchError) as caught:
        sosl.parse_sosl("FIND {acme}\nIN BOGUS FIELDS")
    assert caught.value.message == "\nIN BOGUS FIELDS\n   ^\nERROR at Row:2:Column:4\nunexpected token: 'BOGUS'"


def test_the_parse_keeps_soql_pieces_as_written() -> None:
    plan = sosl.parse_sosl(
        "find {Acme*} in name fields returning Account(Id, toLabel(Industry) where Name LIKE 'A%' AND "
        "(Type = 'x' OR Id IN (SELECT AccountId FROM Contact ORDER BY Name LIMIT 3)) order by Name desc nulls last "
        "limit 5), Order(Id), Contact with metadata='LABELS' with spell_correction = false "
        "with snippet(target_length=120) limit 50 update tracking, viewstat")
    assert plan.scope == "NAME"
    assert plan.limit == 50 and plan.metadata
    account, order, contact = plan.returning
    assert account.fields == ("Id", "toLabel(Industry)")
    assert account.where == ("Name LIKE 'A%' AND (Type = 'x' OR Id IN (SELECT AccountId FROM Contact ORDER BY "
                             "Name LIMIT 3))")
    assert account.order_by == "Name desc nulls last"
    assert account.limit == 5
    assert order.object_name == "Order" and order.fields == ("Id",)
    assert contact.fields == () and contact.where is None
    assert plan.expr == search_index.Terms(("acme*",), "Acme*")


def test_term_operators_and_escapes() -> None:
    T = search_index.Terms
    assert sosl.parse_sosl('FIND {"and" or "or"}').expr == search_index.AnyOf((T(("and",), '"and"'),
                                                                                T(("or",), '"or"')))
    assert sosl.parse_sosl("FIND {in}").expr == T(("in",), "in")
    assert sosl.parse_sosl("FIND {O\\'Brien}").expr == T(("o", "brien"), "O\\'Brien")
    assert sosl.parse_sosl("FIND {right\\*now}").expr == T(("right", "now"), "right\\*now")
    assert sosl.parse_sosl("FIND {a bc}").expr == search_index.AllOf((T(("a",), "a"), T(("bc",), "bc")))
    assert sosl.parse_sosl("FIND {ab AND NOT cd OR ef}").expr == search_index.AnyOf((
        search_index.Without(T(("ab",), "ab"), T(("cd",), "cd")), T(("ef",), "ef")))
    assert sosl.parse_parameterized_term("Acme Corp*") == search_index.AllOf((T(("acme",), "Acme"),
                                                                              T(("corp*",), "Corp*")))
    with pytest.raises(MalformedSearchError, match="longer than one character"):
        sosl.parse_parameterized_term("x")


# -- rebuilding --------------------------------------------------------------------------------------------------


def test_rebuild_and_sync_restore_a_lost_index(org: Any, ctx: Any) -> None:
    t = tag()
    [record_id] = create(org, ctx, "Account", {"Name": f"{t} Rebuilt"})
    with org.store.write() as conn:
        conn.execute(text("DELETE FROM il_search"))
        if org.store.backend == "sqlite":
            conn.execute(text("DELETE FROM il_search_doc"))
    assert find(org, f"FIND {{{t}}}") == []
    assert search_index.sync(org.store) is False  # the fields did not change: nothing to do
    with org.store.write() as conn:
        conn.execute(text("DELETE FROM il_kv WHERE key = 'search_index_signature'"))
    assert search_index.sync(org.store) is True  # no signature, records exist: an org from before the index
    assert find(org, f"FIND {{{t}}}") == [record_id]
    assert search_index.rebuild(org.store) > 0
    assert find(org, f"FIND {{{t}}}") == [record_id]
    search_index.ensure(org.store)  # idempotent
    assert find(org, f"FIND {{{t}}}") == [record_id]


def test_a_deploy_while_the_org_runs_is_picked_up_by_the_next_search(org: Any, ctx: Any) -> None:
    gadget = org.store.schema.object("Gadget__c")
    motto = FieldDef("Motto__c", FieldType.STRING, label="Motto", length=80, custom=True)
    org.store.deploy(Schema([replace(o, fields=(*o.fields, motto)) if o.name == "Gadget__c" else o
                             for o in org.store.schema]))
    assert org.store.kv_get("search_index_signature").decode() != search_index.signature(org.store)
    t = tag()
    [record_id] = create(org, ctx, "Gadget__c", {"Name": f"{t} Motto", "Motto__c": "never settle"})
    assert find(org, f"FIND {{never AND {t}}}") == [record_id]
    assert org.store.kv_get("search_index_signature").decode() == search_index.signature(org.store)
    assert gadget is not org.store.schema.object("Gadget__c")


# -- robustness ------------------------------------------------------------------------------------------------------

_TERM_ALPHABET = st.sampled_from([*"abcxyzAÉßø01 9\"'()*?\\-&|!{}[]^~:+.@_\t\n", "AND", "OR", "NOT", "é"])
_TERMS = st.lists(_TERM_ALPHABET, max_size=20).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(term=_TERMS)
def test_any_search_term_runs_or_is_malformed(org: Any, term: str) -> None:
    """Whatever the braces hold, the answer is records or MALFORMED_SEARCH: never a database error."""
    try:
        plan = sosl.parse_sosl("FIND {" + term.replace("}", "\\}") + "} IN NAME FIELDS")
    except MalformedSearchError:
        return
    assert isinstance(sosl.execute(org.store, plan, None, "/b").records, list)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_parses_or_is_malformed(text: str) -> None:
    try:
        sosl.parse_sosl(text)
    except MalformedSearchError as error:
        assert error.error_code == "MALFORMED_SEARCH"
