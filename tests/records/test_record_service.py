"""The records service: the one write path (create/update/upsert/delete/undelete/hard delete), hooks,
units of work and value handling, on every store backend.

One org per backend is shared by the module (opening an org costs most of a second); every test
works on records it creates itself, with names unique to the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

import pytest
from sqlalchemy import select

from interlink import ids
from interlink.records.hooks import SaveEvent
from interlink.testing import backend_org

INVOICE_YAML = """\
name: Invoice__c
label: Invoice
labelPlural: Invoices
nameField: {label: Invoice Number, type: autonumber, displayFormat: "INV-{0000}"}
fields:
  - {name: Code__c, type: text, length: 40, unique: true}
  - {name: Ext__c, type: text, length: 40, externalId: true}
  - {name: Amount__c, type: currency, precision: 5, scale: 2}
  - {name: Qty__c, type: int, precision: 4}
  - {name: Due__c, type: date}
  - {name: At__c, type: datetime}
  - {name: Start__c, type: time}
  - {name: Paid__c, type: checkbox}
  - {name: Tags__c, type: multipicklist, values: [Red, Green, Blue]}
  - {name: Email__c, type: email}
  - {name: Notes__c, type: textarea, length: 1000}
  - {name: Account__c, type: lookup, referenceTo: Account, childRelationshipName: Invoices}
"""


@pytest.fixture(scope="module")
def org(store_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One org per backend for this module, with an Invoice__c custom object."""
    root = tmp_path_factory.mktemp(f"records-{store_backend}")
    with backend_org(root, store_backend, {"Invoice__c": INVOICE_YAML}, unavailable=pytest.skip) as opened:
        yield opened


@pytest.fixture
def ctx(org: Any) -> Any:
    return org.admin_context()


@pytest.fixture
def hooks(org: Any) -> Iterator[Any]:
    """Register hooks through this; they are removed after the test."""
    registered: list[Any] = []

    class Registrar:
        def register(self, phase: str, hook: Any, **kwargs: Any) -> Any:
            registered.append(hook)
            return org.hooks.register(phase, hook, **kwargs)

    yield Registrar()
    for hook in registered:
        org.hooks.unregister(hook)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def rows(org: Any, object_name: str, **where: Any) -> list[dict[str, Any]]:
    """Every stored row (deleted ones too) matching ``where``, straight from the table."""
    table = org.store.table(object_name)
    query = select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with org.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def one(org: Any, object_name: str, record_id: str) -> dict[str, Any]:
    found = org.records.retrieve(object_name, [record_id], include_deleted=True)[0]
    assert found is not None, f"{record_id} not stored"
    return found


def codes(result: Any) -> list[str]:
    return [e.error_code for e in result.errors]


def create_ok(org: Any, ctx: Any, object_name: str, *records: dict[str, Any]) -> list[str]:
    results = org.records.create(ctx, object_name, list(records))
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


# -- bulk create, all-or-none ---------------------------------------------------------------------------------


def test_bulk_create_partial_success_reports_in_order_and_bad_records_write_nothing(org: Any, ctx: Any) -> None:
    t = tag()
    results = org.records.create(ctx, "Account", [
        {"Name": f"{t} good 1"},
        {"Name": f"{t} bad type", "NumberOfEmployees": "many"},
        {"Website": "https://example.com"},  # Name is required
        {"Name": f"{t} good 2", "Industry": "Banking"},
        {"Name": f"{t} bad field", "NoSuchField__c": 1},
    ])
    assert [r.success for r in results] == [True, False, False, True, False]
    assert codes(results[1]) == ["JSON_PARSER_ERROR"]
    assert codes(results[2]) == ["REQUIRED_FIELD_MISSING"]
    assert results[2].errors[0].fields == ["Name"]
    assert codes(results[4]) == ["INVALID_FIELD"]
    assert [r.id is None for r in results] == [False, True, True, False, True]
    assert results[0].id.startswith("001") and len(results[0].id) == 18
    stored = org.records.retrieve("Account", [results[0].id, results[3].id])
    assert [s["Name"] for s in stored] == [f"{t} good 1", f"{t} good 2"]
    assert stored[1]["Industry"] == "Banking"
    assert rows(org, "Account", Name=f"{t} bad type") == []
    assert rows(org, "Account", Name=f"{t} bad field") == []
    assert rows(org, "Account", Website="https://example.com") == []


def test_all_or_none_with_one_bad_record_writes_nothing(org: Any, ctx: Any) -> None:
    t = tag()
    results = org.records.create(ctx, "Account", [
        {"Name": f"{t} a"}, {"Name": f"{t} b", "NumberOfEmployees": 1.5}, {"Name": f"{t} c"},
    ], all_or_none=True)
    assert [r.success for r in results] == [False, False, False]
    assert codes(results[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[2]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[1]) == ["JSON_PARSER_ERROR"]
    assert all(r.id is None for r in results)
    for suffix in "abc":
        assert rows(org, "Account", Name=f"{t} {suffix}") == []


def test_all_or_none_rolls_back_on_a_database_check_failure(org: Any, ctx: Any) -> None:
    t = tag()
    results = org.records.create(ctx, "Contact", [
        {"LastName": f"{t} ok"}, {"LastName": f"{t} orphan", "AccountId": ids.new_id("001")},
    ], all_or_none=True)
    assert codes(results[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[1]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert rows(org, "Contact", LastName=f"{t} ok") == []


# -- update, upsert, delete, undelete, hard delete ----------------------------------------------------------


def test_update_changes_values_and_reports_missing_or_deleted_records(org: Any, ctx: Any) -> None:
    t = tag()
    first, second = create_ok(org, ctx, "Account", {"Name": f"{t} one", "Phone": "1"}, {"Name": f"{t} two"})
    org.records.delete(ctx, [second])
    missing = ids.new_id("001")
    results = org.records.update(ctx, "Account", [
        {"Id": first, "Phone": "555-0100", "Name": f"{t} renamed"},
        {"id": second, "Phone": "2"},
        {"Id": missing, "Phone": "3"},
        {"Phone": "4"},
        {"Id": ids.new_id("003"), "Phone": "5"},
    ])
    assert results[0].success and results[0].id == first
    assert codes(results[1]) == ["ENTITY_IS_DELETED"]
    assert codes(results[2]) == ["NOT_FOUND"]
    assert codes(results[3]) == ["MISSING_ARGUMENT"]
    assert codes(results[4]) == ["MALFORMED_ID"]
    stored = one(org, "Account", first)
    assert (stored["Name"], stored["Phone"]) == (f"{t} renamed", "555-0100")
    assert one(org, "Account", second)["Phone"] is None


def test_upsert_creates_then_updates_matching_external_id_case_insensitively(org: Any, ctx: Any) -> None:
    t = tag()
    created = org.records.upsert(ctx, "Invoice__c", "Ext__c", [{"Ext__c": f"EXT-{t}", "Qty__c": 1}])
    assert created[0].success and created[0].created is True
    updated = org.records.upsert(ctx, "Invoice__c", "Ext__c", [{"Ext__c": f"ext-{t}".lower(), "Qty__c": 2}])
    assert updated[0].success and updated[0].created is False
    assert updated[0].id == created[0].id
    stored = rows(org, "Invoice__c", Id=created[0].id)[0]
    assert stored["Qty__c"] == 2
    assert stored["Ext__c"] == f"EXT-{t}"  # the key as first stored
    assert len(rows(org, "Invoice__c", Ext__c=f"EXT-{t}")) == 1


def test_upsert_with_an_external_id_matching_two_records_is_duplicate_external_id(org: Any, ctx: Any) -> None:
    t = tag()
    a, b = create_ok(org, ctx, "Invoice__c", {"Ext__c": f"DUP-{t}"}, {"Ext__c": f"dup-{t}"})
    results = org.records.upsert(ctx, "Invoice__c", "Ext__c", [{"Ext__c": f"Dup-{t}", "Qty__c": 9},
                                                               {"Ext__c": f"new-{t}", "Qty__c": 1}])
    assert codes(results[0]) == ["DUPLICATE_EXTERNAL_ID"]
    assert set(results[0].errors[0].matches) == {a, b}
    assert results[1].success and results[1].created is True
    assert [r["Qty__c"] for r in rows(org, "Invoice__c", Id=a) + rows(org, "Invoice__c", Id=b)] == [None, None]


def test_delete_and_undelete(org: Any, ctx: Any) -> None:
    t = tag()
    (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} bin"})
    assert org.records.delete(ctx, [account])[0].success
    assert org.records.retrieve("Account", [account]) == [None]
    assert one(org, "Account", account)["IsDeleted"] is True
    assert codes(org.records.delete(ctx, [account])[0]) == ["ENTITY_IS_DELETED"]
    assert codes(org.records.delete(ctx, [ids.new_id("001")])[0]) == ["NOT_FOUND"]
    assert org.records.undelete(ctx, [account])[0].success
    assert org.records.retrieve("Account", [account])[0]["Name"] == f"{t} bin"
    assert codes(org.records.undelete(ctx, [account])[0]) == ["UNDELETE_FAILED"]


def test_hard_delete_removes_rows_for_good(org: Any, ctx: Any) -> None:
    t = tag()
    live, binned = create_ok(org, ctx, "Account", {"Name": f"{t} live"}, {"Name": f"{t} binned"})
    (contact,) = create_ok(org, ctx, "Contact", {"LastName": f"{t} child", "AccountId": live})
    org.records.delete(ctx, [binned])
    results = org.records.hard_delete(ctx, [live, binned])
    assert all(r.success for r in results)
    assert org.records.retrieve("Account", [live, binned], include_deleted=True) == [None, None]
    assert org.records.retrieve("Contact", [contact], include_deleted=True) == [None]
    assert rows(org, "Account", Id=live) == [] and rows(org, "Contact", Id=contact) == []
    assert codes(org.records.undelete(ctx, [live])[0]) == ["INVALID_CROSS_REFERENCE_KEY"]


def _account_with_children(org: Any, ctx: Any, t: str) -> dict[str, str]:
    (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} parent"})
    contact, loner = create_ok(org, ctx, "Contact", {"LastName": f"{t} c1", "AccountId": account},
                               {"LastName": f"{t} c2", "AccountId": account})
    (opportunity,) = create_ok(org, ctx, "Opportunity", {"Name": f"{t} opp", "AccountId": account,
                                                         "StageName": "Prospecting", "CloseDate": "2030-01-01"})
    (case,) = create_ok(org, ctx, "Case", {"Subject": f"{t} case", "AccountId": account})
    task_what, task_who = create_ok(org, ctx, "Task", {"Subject": f"{t} t1", "WhatId": account},
                                    {"Subject": f"{t} t2", "WhoId": contact})
    return {"account": account, "contact": contact, "loner": loner, "opportunity": opportunity, "case": case,
            "task_what": task_what, "task_who": task_who}


OBJECTS = {"account": "Account", "contact": "Contact", "loner": "Contact", "opportunity": "Opportunity",
           "case": "Case", "task_what": "Task", "task_who": "Task"}


def _deleted(org: Any, family: dict[str, str]) -> dict[str, bool]:
    return {key: one(org, OBJECTS[key], record_id)["IsDeleted"] for key, record_id in family.items()}


def test_deleting_an_account_cascades_and_undelete_restores_only_what_it_took(org: Any, ctx: Any) -> None:
    family = _account_with_children(org, ctx, tag())
    assert org.records.delete(ctx, [family["loner"]])[0].success  # deleted on its own, earlier
    time.sleep(0.01)
    assert org.records.delete(ctx, [family["account"]])[0].success
    assert all(_deleted(org, family).values())
    time.sleep(0.01)
    assert org.records.undelete(ctx, [family["account"]])[0].success
    assert _deleted(org, family) == {"account": False, "contact": False, "loner": True, "opportunity": False,
                                     "case": False, "task_what": False, "task_who": False}


def test_cascade_undelete_when_children_were_stamped_in_a_later_millisecond(org: Any, ctx: Any,
                                                                             hooks: Any) -> None:
    # A slow delete (many children, a busy database) spans several milliseconds.
    hooks.register("before_save", lambda event: time.sleep(0.005), operations=["delete"])
    family = _account_with_children(org, ctx, tag())
    assert org.records.delete(ctx, [family["account"]])[0].success
    assert all(_deleted(org, family).values())
    assert org.records.undelete(ctx, [family["account"]])[0].success
    assert not any(_deleted(org, family).values())


# -- hooks --------------------------------------------------------------------------------------------------


def test_before_save_hook_can_change_values_and_reject_records(org: Any, ctx: Any, hooks: Any) -> None:
    t = tag()

    def stamp(event: SaveEvent) -> None:
        for record in event.new:
            record["Description"] = f"seen by hook ({event.operation})"

    def validate(event: SaveEvent) -> None:
        for index, record in enumerate(event.new):
            if "forbidden" in (record.get("Name") or ""):
                event.add_error(index, "Names may not say forbidden", "Name")

    hooks.register("before_save", stamp, objects=["Account"], operations=["insert", "update"])
    hooks.register("before_save", validate, objects=["account"])
    results = org.records.create(ctx, "Account", [{"Name": f"{t} fine"}, {"Name": f"{t} forbidden"},
                                                  {"Name": f"{t} also fine"}])
    assert [r.success for r in results] == [True, False, True]
    assert results[1].id is None
    assert results[1].errors[0].message == "Names may not say forbidden"
    assert results[1].errors[0].fields == ["Name"]
    assert codes(results[1]) == ["FIELD_CUSTOM_VALIDATION_EXCEPTION"]
    assert rows(org, "Account", Name=f"{t} forbidden") == []
    assert one(org, "Account", results[0].id)["Description"] == "seen by hook (insert)"
    update = org.records.update(ctx, "Account", [{"Id": results[2].id, "Phone": "1"},
                                                 {"Id": results[0].id, "Name": f"{t} forbidden now"}])
    assert update[0].success and not update[1].success
    assert one(org, "Account", results[2].id)["Description"] == "seen by hook (update)"
    assert one(org, "Account", results[0].id)["Name"] == f"{t} fine"


def _reject_second_after_save(hooks: Any, seen: list[list[str]]) -> None:
    def after(event: SaveEvent) -> None:
        seen.append([r["Id"] for r in event.new])
        for index, record in enumerate(event.new):
            if record["Name"].endswith("reject"):
                event.add_error(index, "rejected after save")

    hooks.register("after_save", after, objects=["Account"], operations=["insert"])


def test_after_save_rejection_rolls_back_that_record_only_in_partial_mode(org: Any, ctx: Any, hooks: Any) -> None:
    t = tag()
    seen: list[list[str]] = []
    _reject_second_after_save(hooks, seen)
    results = org.records.create(ctx, "Account", [{"Name": f"{t} 1"}, {"Name": f"{t} reject"},
                                                  {"Name": f"{t} 3"}])
    assert [r.success for r in results] == [True, False, True]
    assert [e.message for e in results[1].errors] == ["rejected after save"]
    assert results[1].id is None  # its id was rolled back with it
    assert len(seen) == 2 and len(seen[0]) == 3 and len(seen[1]) == 2  # retried without the bad one
    assert rows(org, "Account", Name=f"{t} reject") == []
    assert seen[0][1] not in {r["Id"] for r in rows(org, "Account")}
    assert [s["Name"] for s in org.records.retrieve("Account", [results[0].id, results[2].id])] == [
        f"{t} 1", f"{t} 3"]


def test_after_save_rejection_rolls_back_everything_with_all_or_none(org: Any, ctx: Any, hooks: Any) -> None:
    t = tag()
    seen: list[list[str]] = []
    _reject_second_after_save(hooks, seen)
    results = org.records.create(ctx, "Account", [{"Name": f"{t} 1"}, {"Name": f"{t} reject"},
                                                  {"Name": f"{t} 3"}], all_or_none=True)
    assert [r.success for r in results] == [False, False, False]
    assert codes(results[0]) == codes(results[2]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert [e.message for e in results[1].errors] == ["rejected after save"]
    assert all(r.id is None for r in results)
    assert all(rows(org, "Account", Id=record_id) == [] for record_id in seen[0])


def test_on_commit_runs_after_commit_and_on_rollback_when_the_work_fails(org: Any, ctx: Any, hooks: Any) -> None:
    t = tag()
    committed: list[tuple[str, list[Any]]] = []
    rolled_back: list[str] = []

    def on_commit(event: SaveEvent) -> None:
        # Runs once the transaction is durable: a fresh read sees the rows.
        committed.append((event.operation, org.records.retrieve("Account", [r["Id"] for r in event.new])))

    hooks.register("on_commit", on_commit, objects=["Account"])
    hooks.register("on_rollback", lambda event: rolled_back.extend(r["Name"] for r in event.new),
                   objects=["Account"])

    with org.records.unit_of_work(ctx):
        (kept,) = create_ok(org, ctx, "Account", {"Name": f"{t} kept"})
        assert committed == []
    assert committed[0][0] == "insert" and committed[0][1][0]["Id"] == kept
    assert rolled_back == []

    committed.clear()
    with pytest.raises(RuntimeError, match="boom"), org.records.unit_of_work(ctx):
        create_ok(org, ctx, "Account", {"Name": f"{t} lost"})
        raise RuntimeError("boom")
    assert rows(org, "Account", Name=f"{t} lost") == []
    assert committed == []
    assert rolled_back == [f"{t} lost"]


def test_unit_of_work_records_changes_with_changed_fields(org: Any, ctx: Any) -> None:
    t = tag()
    with org.records.unit_of_work(ctx) as uow:
        (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} x", "Phone": "1"})
        assert org.records.update(ctx, "Account", [{"Id": account, "Phone": "2", "Name": f"{t} x"}])[0].success
        assert org.records.delete(ctx, [account])[0].success
        changes = list(uow.changes)
    assert [(c.operation, c.object_name, c.record_id) for c in changes] == [
        ("insert", "Account", account), ("update", "Account", account), ("delete", "Account", account)]
    assert {"Name", "Phone", "Id", "CreatedDate"} <= set(changes[0].changed_fields)
    assert "Phone" in changes[1].changed_fields
    assert "Name" not in changes[1].changed_fields  # sent, but unchanged
    assert "CreatedDate" not in changes[1].changed_fields
    assert changes[1].fields["Phone"] == "2"
    assert changes[2].fields["IsDeleted"] is True


def test_nested_unit_of_work_joins_the_outer_transaction(org: Any, ctx: Any) -> None:
    t = tag()
    with pytest.raises(RuntimeError), org.records.unit_of_work(ctx) as outer:
        with org.records.unit_of_work(ctx) as inner:
            assert inner is outer
            create_ok(org, ctx, "Account", {"Name": f"{t} inner"})
        create_ok(org, ctx, "Account", {"Name": f"{t} outer"})
        assert len(outer.changes) == 2
        raise RuntimeError("undo both")
    assert rows(org, "Account", Name=f"{t} inner") == []
    assert rows(org, "Account", Name=f"{t} outer") == []

    with org.records.unit_of_work(ctx), org.records.unit_of_work(ctx):
        create_ok(org, ctx, "Account", {"Name": f"{t} kept"})
    assert len(rows(org, "Account", Name=f"{t} kept")) == 1


# -- autonumbers and uniqueness -------------------------------------------------------------------------------


def _number(name: str) -> int:
    assert name.startswith("INV-") and len(name) >= 8, name
    return int(name[4:])


def test_autonumbers_are_gapless_and_unique(org: Any, ctx: Any, hooks: Any) -> None:
    first = create_ok(org, ctx, "Invoice__c", {}, {})
    # Failures must not burn numbers: a rejected record, an all-or-none rollback, an after-save rejection.
    assert not org.records.create(ctx, "Invoice__c", [{"Qty__c": "x"}])[0].success
    assert not any(r.success for r in org.records.create(ctx, "Invoice__c", [{}, {"Qty__c": 1.5}],
                                                         all_or_none=True))
    attempts: list[int] = []

    def reject_first_of_first_attempt(event: SaveEvent) -> None:
        attempts.append(len(event.new))
        if len(attempts) == 1:
            event.add_error(0, "no")

    hooks.register("after_save", reject_first_of_first_attempt, objects=["Invoice__c"])
    partial = org.records.create(ctx, "Invoice__c", [{}, {}])
    assert [r.success for r in partial] == [False, True]
    assert attempts == [2, 1]
    second = [partial[1].id, *create_ok(org, ctx, "Invoice__c", {}, {})]
    names = [one(org, "Invoice__c", record_id)["Name"] for record_id in first + second]
    numbers = [_number(n) for n in names]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert len({r["Name"] for r in rows(org, "Invoice__c")}) == len(rows(org, "Invoice__c"))


def test_unique_field_duplicate_value_within_a_batch_and_against_stored_rows(org: Any, ctx: Any) -> None:
    t = tag()
    (stored,) = create_ok(org, ctx, "Invoice__c", {"Code__c": f"S-{t}"})
    results = org.records.create(ctx, "Invoice__c", [
        {"Code__c": f"B-{t}"}, {"Code__c": f"b-{t}"}, {"Code__c": f"s-{t}"}, {"Code__c": f"other-{t}"},
    ])
    assert [r.success for r in results] == [True, False, False, True]
    assert codes(results[1]) == ["DUPLICATE_VALUE"] and codes(results[2]) == ["DUPLICATE_VALUE"]
    assert stored in results[2].errors[0].message
    assert len(rows(org, "Invoice__c", Code__c=f"b-{t}")) == 0
    # Updating a record to its own value is not a duplicate; to another record's value is.
    same = org.records.update(ctx, "Invoice__c", [{"Id": stored, "Code__c": f"S-{t}"}])
    clash = org.records.update(ctx, "Invoice__c", [{"Id": results[3].id, "Code__c": f"S-{t}"}])
    assert same[0].success
    assert codes(clash[0]) == ["DUPLICATE_VALUE"]


# -- references ------------------------------------------------------------------------------------------------


def test_reference_checks(org: Any, ctx: Any) -> None:
    t = tag()
    live, gone = create_ok(org, ctx, "Account", {"Name": f"{t} live"}, {"Name": f"{t} gone"})
    (contact,) = create_ok(org, ctx, "Contact", {"LastName": f"{t} someone"})
    org.records.delete(ctx, [gone])
    results = org.records.create(ctx, "Contact", [
        {"LastName": f"{t} wrong type", "AccountId": contact},
        {"LastName": f"{t} missing", "AccountId": ids.new_id("001")},
        {"LastName": f"{t} deleted", "AccountId": gone},
        {"LastName": f"{t} fine", "AccountId": live},
        {"LastName": f"{t} garbage", "AccountId": "not-an-id"},
    ])
    assert codes(results[0]) == ["FIELD_INTEGRITY_EXCEPTION"]
    assert codes(results[1]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert codes(results[2]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert results[1].errors[0].fields == ["AccountId"]
    assert results[3].success
    assert codes(results[4]) == ["MALFORMED_ID"]
    assert one(org, "Contact", results[3].id)["AccountId"] == live


# -- system fields -----------------------------------------------------------------------------------------


def test_system_fields_are_set_by_the_service(org: Any, ctx: Any) -> None:
    t = tag()
    (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} sys"})
    created = one(org, "Account", account)
    assert created["CreatedById"] == created["LastModifiedById"] == created["OwnerId"] == ctx.user_id
    assert created["CreatedDate"] == created["LastModifiedDate"] == created["SystemModstamp"]
    assert created["IsDeleted"] is False
    assert abs((datetime.utcnow() - created["CreatedDate"]).total_seconds()) < 60

    time.sleep(0.01)
    assert org.records.update(ctx, "Account", [{"Id": account, "Phone": "1"}])[0].success
    updated = one(org, "Account", account)
    assert updated["CreatedDate"] == created["CreatedDate"]
    assert updated["SystemModstamp"] > created["SystemModstamp"]
    assert updated["LastModifiedDate"] > created["LastModifiedDate"]

    time.sleep(0.01)
    org.records.delete(ctx, [account])
    deleted = one(org, "Account", account)
    assert deleted["SystemModstamp"] > updated["SystemModstamp"]
    assert deleted["CreatedDate"] == created["CreatedDate"]

    writes = org.records.create(ctx, "Account", [{"Name": f"{t} x", "CreatedDate": "2020-01-01T00:00:00Z"}])
    assert codes(writes[0]) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    owner = org.records.create(ctx, "Account", [{"Name": f"{t} owned", "OwnerId": ctx.user_id[:15]}])
    assert one(org, "Account", owner[0].id)["OwnerId"] == ctx.user_id


# -- values ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-03-01T10:00:00+00:00", datetime(2024, 3, 1, 10, 0)),
    ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, 0)),
    ("2024-03-01T10:00:00.123+0530", datetime(2024, 3, 1, 4, 30, 0, 123000)),
    ("2024-03-01T01:00:00-02:00", datetime(2024, 3, 1, 3, 0)),
])
def test_datetimes_are_stored_as_utc(org: Any, ctx: Any, raw: str, expected: datetime) -> None:
    (record,) = create_ok(org, ctx, "Invoice__c", {"At__c": raw})
    assert one(org, "Invoice__c", record)["At__c"] == expected


def test_values_are_parsed_and_normalised(org: Any, ctx: Any) -> None:
    t = tag()
    (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} ref"})
    (record,) = create_ok(org, ctx, "Invoice__c", {
        "Due__c": "2024-02-29", "Start__c": "09:30:15.250Z", "Paid__c": "TRUE", "Qty__c": "12",
        "Amount__c": "999.99", "Tags__c": " Blue ;Red;;Blue ", "Email__c": "someone@example.com",
        "Account__c": account[:15],
    })
    stored = one(org, "Invoice__c", record)
    assert stored["Due__c"] == date(2024, 2, 29)
    assert stored["Start__c"] == dtime(9, 30, 15, 250000)
    assert stored["Paid__c"] is True
    assert stored["Qty__c"] == 12
    assert stored["Amount__c"] == pytest.approx(999.99)
    assert stored["Tags__c"] == "Blue;Red"
    assert stored["Email__c"] == "someone@example.com"
    assert stored["Account__c"] == account  # 15-character id stored in its 18-character form

    assert org.records.update(ctx, "Invoice__c", [{"Id": record[:15], "Paid__c": "false"}])[0].success
    assert one(org, "Invoice__c", record)["Paid__c"] is False
    (defaulted,) = create_ok(org, ctx, "Invoice__c", {})
    assert one(org, "Invoice__c", defaulted)["Paid__c"] is False


@pytest.mark.parametrize(("values", "code"), [
    ({"Qty__c": 1.5}, "JSON_PARSER_ERROR"),
    ({"Qty__c": "1.5"}, "JSON_PARSER_ERROR"),
    ({"Qty__c": 10000}, "NUMBER_OUTSIDE_VALID_RANGE"),
    ({"Amount__c": 1000}, "NUMBER_OUTSIDE_VALID_RANGE"),
    ({"Paid__c": "yes"}, "JSON_PARSER_ERROR"),
    ({"Due__c": "29/02/2024"}, "JSON_PARSER_ERROR"),
    ({"At__c": "yesterday"}, "JSON_PARSER_ERROR"),
    ({"Start__c": "25:99"}, "JSON_PARSER_ERROR"),
    ({"Email__c": "not an email"}, "INVALID_EMAIL_ADDRESS"),
    ({"Email__c": "missing-at.example.com"}, "INVALID_EMAIL_ADDRESS"),
    ({"Code__c": "x" * 41}, "STRING_TOO_LONG"),
])
def test_bad_values_are_rejected(org: Any, ctx: Any, values: dict[str, Any], code: str) -> None:
    marker = tag()
    result = org.records.create(ctx, "Invoice__c", [{**values, "Ext__c": marker}])[0]
    assert codes(result) == [code]
    assert result.errors[0].fields == [next(iter(values))]
    assert rows(org, "Invoice__c", Ext__c=marker) == []


def test_ints_accept_whole_numbers_in_any_form(org: Any, ctx: Any) -> None:
    results = org.records.create(ctx, "Invoice__c", [{"Qty__c": 3.0}, {"Qty__c": "7"}, {"Qty__c": -9999}])
    assert [one(org, "Invoice__c", r.id)["Qty__c"] for r in results] == [3, 7, -9999]


def test_retrieve_and_lookups_accept_15_character_ids(org: Any, ctx: Any) -> None:
    t = tag()
    (account,) = create_ok(org, ctx, "Account", {"Name": f"{t} short"})
    assert org.records.retrieve("Account", [account[:15]])[0]["Id"] == account
    assert org.records.delete(ctx, [account[:15]])[0].id == account


def test_an_opportunity_stage_sets_closed_won_probability_and_forecast(org: Any, ctx: Any) -> None:
    def row(opp_id: str) -> dict[str, Any]:
        return org.query.execute("SELECT IsClosed, IsWon, Probability, ForecastCategoryName, ExpectedRevenue "
                                 f"FROM Opportunity WHERE Id = '{opp_id}'", ctx).records[0]

    (deal, custom) = org.records.create(ctx, "Opportunity", [
        {"Name": "Stages", "StageName": "Prospecting", "CloseDate": "2026-12-01", "Amount": 1000},
        {"Name": "Own odds", "StageName": "Qualification", "CloseDate": "2026-12-01", "Probability": 35}])
    first = row(deal.id)
    assert (first["IsClosed"], first["IsWon"], first["Probability"], first["ForecastCategoryName"],
            first["ExpectedRevenue"]) == (False, False, 10, "Pipeline", 100)
    assert row(custom.id)["Probability"] == 35  # a probability given with the stage is kept
    org.records.update(ctx, "Opportunity", [{"Id": deal.id, "StageName": "Closed Won"}])
    won = row(deal.id)
    assert (won["IsClosed"], won["IsWon"], won["Probability"], won["ForecastCategoryName"]) == (
        True, True, 100, "Closed")
    org.records.update(ctx, "Opportunity", [{"Id": deal.id, "Amount": 400}])
    assert row(deal.id)["ExpectedRevenue"] == 400
    org.records.update(ctx, "Opportunity", [{"Id": deal.id, "StageName": "Closed Lost"}])
    lost = row(deal.id)
    assert (lost["IsClosed"], lost["IsWon"], lost["Probability"], lost["ExpectedRevenue"]) == (True, False, 0, 0)
    (refused,) = org.records.update(ctx, "Opportunity", [{"Id": deal.id, "IsWon": True}])
    assert refused.errors and refused.errors[0].error_code == "INVALID_FIELD_FOR_INSERT_UPDATE"
