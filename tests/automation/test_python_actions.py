"""Python actions called by flows, and the platform's refusal of synchronous callouts in triggers."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.errors import MetadataError
from interlink.testing import backend_org

ACTIONS = '''
from interlink.automation import action


@action("rate_accounts")
def rate(ctx, inputs):
    ratings = []
    for record, values in zip(ctx.new, inputs):
        if values["employees"] is None:
            ctx.add_error(record, "employees unknown")
            ratings.append(None)
        else:
            ratings.append({"Rating": "Hot" if values["employees"] > 500 else "Warm"})
    ctx.insert("Task", [{"Subject": f"Rated {len(inputs)}"}])
    return ratings


@action()
def explode(ctx, inputs):
    raise ValueError("no")
'''

TRIGGERS = '''
from interlink.automation import trigger


@trigger("Contact", after=["insert"])
def sync_call(ctx):
    ctx.callout("Billing", "GET", "/x", wait=True)
'''

FLOWS = {
    "Rate": """\
object: Account
trigger: create
actions:
  - python: {action: rate_accounts, inputs: {employees: "{!$Record.NumberOfEmployees}"}}
""",
    "Boom": """\
object: Lead
trigger: create
actions:
  - python: {action: explode}
fault:
  - create: {object: Task, values: {Subject: "{!$Flow.FaultMessage}"}}
""",
}


def write(root: Path, flows: dict[str, str]) -> None:
    base = root / "project"
    for folder in ("actions", "triggers", "metadata/flows", "metadata/namedCredentials"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "actions" / "rating.py").write_text(ACTIONS)
    (base / "triggers" / "calls.py").write_text(TRIGGERS)
    (base / "metadata" / "namedCredentials" / "Billing.yaml").write_text("url: https://billing.example.com\n")
    for name, text in flows.items():
        (base / "metadata" / "flows" / f"{name}.yaml").write_text(text)


def test_a_python_action_sets_fields_and_runs_dml(tmp_path: Path) -> None:
    write(tmp_path, FLOWS)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        context = org.admin_context()
        big, small, unknown = org.records.create(context, "Account", [
            {"Name": "Big", "NumberOfEmployees": 900}, {"Name": "Small", "NumberOfEmployees": 5}, {"Name": "?"}])
        assert big.success and small.success
        assert unknown.errors[0].error_code == "CANNOT_EXECUTE_FLOW_TRIGGER"
        assert "employees unknown" in unknown.errors[0].message
        rows = org.query.execute("SELECT Name, Rating FROM Account ORDER BY Name", context).records
        assert [(r["Name"], r["Rating"]) for r in rows] == [("Big", "Hot"), ("Small", "Warm")]
        # The failed record is rolled back and the batch saved again without it (the platform's partial save).
        tasks = org.query.execute("SELECT Subject FROM Task", context).records
        assert [t["Subject"] for t in tasks] == ["Rated 2"]


def test_an_exception_in_an_action_runs_the_fault_path(tmp_path: Path) -> None:
    write(tmp_path, FLOWS)
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        (lead,) = org.records.create(org.admin_context(), "Lead", [{"LastName": "L", "Company": "C"}])
        assert lead.success
        tasks = org.query.execute("SELECT Subject FROM Task", org.admin_context()).records
        assert [t["Subject"] for t in tasks] == ["explode: ValueError: no"]


def test_a_synchronous_callout_in_a_trigger_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {})
    with backend_org(tmp_path, "sqlite", {}, bulk_workers=0) as org:
        (result,) = org.records.create(org.admin_context(), "Contact", [{"LastName": "X"}])
        assert result.errors[0].error_code == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
        assert "CalloutException: Callout from triggers are currently not supported." in result.errors[0].message


def test_an_unknown_action_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"Bad": FLOWS["Rate"].replace("rate_accounts", "nope")})
    with pytest.raises(MetadataError) as caught, backend_org(tmp_path, "sqlite", {}):
        pass
    assert "there is no Python action 'nope' (the project has: explode, rate_accounts)" in caught.value.message
