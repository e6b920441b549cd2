"""Deploying metadata to the store: additive changes apply, destructive ones need permission, key prefixes
stay put, reopening an org deploys its project, and a second process picks up a deploy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from interlink.errors import DestructiveChangeError
from interlink.testing import local_org

WIDGET: dict[str, Any] = {
    "name": "Widget__c",
    "label": "Widget",
    "fields": [
        {"name": "Color__c", "type": "text", "length": 10},
        {"name": "Size__c", "type": "int", "precision": 6},
        {"name": "Code__c", "type": "text", "length": 20},
    ],
}


def write_object(project: Path, spec: dict[str, Any]) -> None:
    folder = project / "metadata" / "objects"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def remove_object(project: Path, name: str) -> None:
    (project / "metadata" / "objects" / f"{name}.yaml").unlink()


def with_fields(spec: dict[str, Any], *fields: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """``spec`` with fields replaced/added by name and ``drop`` removed."""
    by_name = {f["name"]: f for f in spec["fields"] if f["name"] not in drop}
    for fdef in fields:
        by_name[fdef["name"]] = fdef
    return {**spec, "fields": list(by_name.values())}


def redeploy(org: Any, *, allow_destructive: bool = False) -> Any:
    """What ``interlink deploy`` does: load the project and bring the store to it."""
    return org.store.deploy(org.load_metadata().schema, allow_destructive=allow_destructive)


def columns(org: Any, table: str) -> set[str]:
    with org.store.read() as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


def tables(org: Any) -> set[str]:
    with org.store.read() as conn:
        return set(inspect(conn).get_table_names())


def _rows(org: Any, object_name: str, name: str) -> list[dict[str, Any]]:
    table = org.store.table(object_name)
    with org.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(table.select().where(table.c.Name == name))]


def create(org: Any, object_name: str, *records: dict[str, Any]) -> list[str]:
    results = org.records.create(org.admin_context(), object_name, list(records))
    assert all(r.success for r in results), [r.errors for r in results]
    return [r.id for r in results]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    write_object(path, WIDGET)
    return path


def test_additive_deploy_adds_objects_fields_and_widens_text_keeping_data(
        tmp_path: Path, store_url: str, project: Path) -> None:
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        (widget,) = create(org, "Widget__c", {"Name": "w1", "Color__c": "red", "Size__c": 3})
        write_object(project, with_fields(WIDGET, {"name": "Color__c", "type": "text", "length": 100},
                                          {"name": "Weight__c", "type": "double", "precision": 8, "scale": 2}))
        write_object(project, {"name": "Gadget__c", "label": "Gadget",
                               "fields": [{"name": "Widget__c", "type": "lookup", "referenceTo": "Widget__c"}]})
        plan = redeploy(org)
        assert plan.destructive == []
        assert {c.kind for c in plan.changes} == {"create_table", "add_column", "resize_column"}
        assert org.store.schema.object("Gadget__c") is not None
        assert org.store.schema.object("Widget__c").field("Color__c").length == 100

        stored = org.records.retrieve("Widget__c", [widget])[0]
        assert (stored["Name"], stored["Color__c"], stored["Size__c"], stored["Weight__c"]) == ("w1", "red", 3, None)
        long_color = "a shade of blue that needs more than ten characters"
        result = org.records.update(org.admin_context(), "Widget__c",
                                    [{"Id": widget, "Color__c": long_color, "Weight__c": 1.25}])
        assert result[0].success, result[0].errors
        stored = org.records.retrieve("Widget__c", [widget])[0]
        assert (stored["Color__c"], stored["Weight__c"]) == (long_color, 1.25)
        (gadget,) = create(org, "Gadget__c", {"Name": "g1", "Widget__c": widget})
        assert org.records.retrieve("Gadget__c", [gadget])[0]["Widget__c"] == widget
        assert not redeploy(org)  # nothing left to do


def test_destructive_deploy_is_refused_then_applied_when_allowed(
        tmp_path: Path, store_url: str, project: Path) -> None:
    write_object(project, {"name": "Gadget__c", "label": "Gadget"})
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        (widget,) = create(org, "Widget__c", {"Name": "w1", "Color__c": "red", "Size__c": 3, "Code__c": "C1"})
        create(org, "Gadget__c", {"Name": "g1"})
        write_object(project, with_fields(WIDGET, {"name": "Size__c", "type": "text", "length": 10},
                                          {"name": "New__c", "type": "text"}, drop=("Color__c",)))
        remove_object(project, "Gadget__c")

        with pytest.raises(DestructiveChangeError) as refused:
            redeploy(org)
        changes = "\n".join(refused.value.changes)
        assert "drop field Widget__c.Color__c" in changes
        assert "drop object Gadget__c" in changes
        assert "change type of Widget__c.Size__c" in changes
        assert "New__c" not in changes  # only the destructive ones are listed
        assert "--allow-destructive" in str(refused.value)
        # Nothing applied, not even the additive part.
        assert org.store.schema.object("Widget__c").field("Color__c").type.value == "string"
        assert org.store.schema.object("Widget__c").field("Size__c").type.value == "int"
        assert org.store.schema.object("Widget__c").field("New__c") is None
        assert org.store.schema.object("Gadget__c") is not None
        assert {"Color__c", "Size__c"} <= columns(org, "Widget__c")
        assert "New__c" not in columns(org, "Widget__c")
        assert "Gadget__c" in tables(org)
        assert org.records.retrieve("Widget__c", [widget])[0]["Color__c"] == "red"

        plan = redeploy(org, allow_destructive=True)
        assert len(plan.destructive) == 3
        widget_def = org.store.schema.object("Widget__c")
        assert widget_def.field("Color__c") is None
        assert org.store.schema.object("Gadget__c") is None
        assert "Gadget__c" not in tables(org)
        assert "Color__c" not in columns(org, "Widget__c")
        stored = org.records.retrieve("Widget__c", [widget])[0]
        assert (stored["Name"], stored["Code__c"], stored["Size__c"]) == ("w1", "C1", None)  # retyped: data dropped
        result = org.records.update(org.admin_context(), "Widget__c",
                                    [{"Id": widget, "Size__c": "large", "New__c": "n"}])
        assert result[0].success, result[0].errors
        assert org.records.retrieve("Widget__c", [widget])[0]["Size__c"] == "large"
        assert "Color__c" in [e.fields[0] for e in org.records.update(
            org.admin_context(), "Widget__c", [{"Id": widget, "Color__c": "red"}])[0].errors]


def test_key_prefixes_are_stable_across_redeploys_and_never_reused(
        tmp_path: Path, store_url: str, project: Path) -> None:
    write_object(project, {"name": "Gadget__c", "label": "Gadget"})
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        prefixes = {name: org.store.schema.object(name).key_prefix for name in ("Widget__c", "Gadget__c")}
        assert all(p.startswith("a") for p in prefixes.values())
        (widget,) = create(org, "Widget__c", {"Name": "w"})
        assert widget.startswith(prefixes["Widget__c"])

        # A new object sorting before both does not shift their prefixes.
        write_object(project, {"name": "Aardvark__c", "label": "Aardvark"})
        redeploy(org)
        assert {n: org.store.schema.object(n).key_prefix for n in prefixes} == prefixes
        aardvark = org.store.schema.object("Aardvark__c").key_prefix
        assert aardvark not in prefixes.values()
        assert org.records.retrieve("Widget__c", [widget])[0]["Name"] == "w"

        # Dropping an object retires its prefix: a later object does not get it.
        remove_object(project, "Gadget__c")
        redeploy(org, allow_destructive=True)
        write_object(project, {"name": "Doohickey__c", "label": "Doohickey"})
        redeploy(org)
        doohickey = org.store.schema.object("Doohickey__c").key_prefix
        assert doohickey not in {*prefixes.values(), aardvark}
        assert org.store.schema.object("Widget__c").key_prefix == prefixes["Widget__c"]


def test_reopening_an_org_deploys_added_fields_and_keeps_removed_ones_with_a_warning(
        tmp_path: Path, store_url: str, project: Path) -> None:
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        (widget,) = create(org, "Widget__c", {"Name": "w", "Color__c": "red"})
        assert org.bootstrap.created

    write_object(project, with_fields(WIDGET, {"name": "Added__c", "type": "checkbox"}, drop=("Color__c",)))
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        assert not org.bootstrap.created
        widget_def = org.store.schema.object("Widget__c")
        assert widget_def.field("Added__c") is not None
        assert widget_def.field("Color__c") is not None  # kept: dropping it needs --allow-destructive
        assert any("Widget__c.Color__c" in w and "allow-destructive" in w for w in org.bootstrap.warnings)
        stored = org.records.retrieve("Widget__c", [widget])[0]
        assert stored["Color__c"] == "red"
        assert stored["Added__c"] is False  # checkbox default applied to existing rows
        assert org.records.update(org.admin_context(), "Widget__c", [{"Id": widget, "Added__c": True}])[0].success


def test_adding_unique_enforces_a_unique_index(tmp_path: Path, store_url: str, project: Path) -> None:
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as org:
        create(org, "Widget__c", {"Name": "a", "Code__c": "X"}, {"Name": "b", "Code__c": "Z"})
        assert org.records.create(org.admin_context(), "Widget__c", [{"Name": "dup", "Code__c": "x"}])[0].success
        org.records.hard_delete(org.admin_context(), [r["Id"] for r in _rows(org, "Widget__c", "dup")])

        write_object(project, with_fields(WIDGET, {"name": "Code__c", "type": "text", "length": 20,
                                                   "unique": True}))
        plan = redeploy(org)
        assert not plan.destructive and plan.changes
        assert org.store.schema.object("Widget__c").field("Code__c").unique

        results = org.records.create(org.admin_context(), "Widget__c", [{"Name": "d", "Code__c": "x"},
                                                                         {"Name": "e", "Code__c": "Y"}])
        assert [e.error_code for e in results[0].errors] == ["DUPLICATE_VALUE"]
        assert results[1].success
        with pytest.raises(IntegrityError), org.store.write() as conn:  # the database itself refuses it
            conn.execute(text('INSERT INTO "Widget__c" ("Id", "Name", "Code__c", "IsDeleted") '
                              "VALUES ('a00000000000001AAA', 'raw', 'y', false)"))


def test_a_second_org_on_the_same_store_picks_up_a_deploy(tmp_path: Path, store_url: str, project: Path) -> None:
    with local_org(tmp_path / "o", store=store_url, project_dir=project) as first, \
            local_org(tmp_path / "o", store=store_url, project_dir=project) as second:
        assert not second.store.reload_if_changed()
        write_object(project, with_fields(WIDGET, {"name": "Later__c", "type": "text", "length": 30}))
        redeploy(first)
        assert second.store.schema.object("Widget__c").field("Later__c") is None
        assert second.store.reload_if_changed()
        assert second.store.schema.object("Widget__c").field("Later__c") is not None
        assert not second.store.reload_if_changed()
        (widget,) = create(second, "Widget__c", {"Name": "from second", "Later__c": "yes"})
        assert first.records.retrieve("Widget__c", [widget])[0]["Later__c"] == "yes"



def test_platform_events_deploy_without_tables(tmp_path: Path, project: Path) -> None:
    event = {"name": "Ping__e", "publishBehavior": "PublishImmediately",
             "fields": [{"name": "Note__c", "type": "text", "length": 40}]}
    write_object(project, event)
    with local_org(tmp_path / "org", project_dir=project) as org:
        assert org.store.schema.object("Ping__e").is_event  # type: ignore[union-attr]
        assert "Ping__e" not in tables(org)
        write_object(project, with_fields(event, {"name": "Level__c", "type": "number"}))
        plan = redeploy(org)
        assert plan.describe() == ["+ update platform event Ping__e"]
        assert org.store.schema.object("Ping__e").has_field("Level__c")  # type: ignore[union-attr]
        remove_object(project, "Ping__e")
        assert redeploy(org).describe() == ["+ remove platform event Ping__e"]
        assert org.store.schema.object("Ping__e") is None
