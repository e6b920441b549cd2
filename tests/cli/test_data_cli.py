"""``interlink data``: the CSV loader and exporter, run as a user runs it against the session's live server.

Every command is a subprocess talking to ``interlink up`` over TLS, either as the local org (``--data-dir``: the
URL from server.json, a minted token, the local CA) or with explicit ``--instance-url/--token/--ca-bundle``, as it
would talk to a production org. Each test names its records with its own prefix, so tests sharing the server do
not see each other's rows; what the CLI did is checked through the REST API.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from interlink.testing import API_VERSION, LiveServer, run_cli

pytestmark = pytest.mark.live

HEAVY = ("sqlalchemy", "starlette", "uvicorn", "cryptography", "httpx")


@pytest.fixture(autouse=True)
def _no_interlink_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings a test passes count (run_cli passes this process's environment on)."""
    for name in list(os.environ):
        if name.startswith("INTERLINK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="module")
def token(live: LiveServer) -> str:
    return live.token()


@pytest.fixture(scope="module")
def remote(live: LiveServer, token: str) -> tuple[str, ...]:
    """The flags that name the org explicitly, as for a production org."""
    return "--instance-url", live.url, "--token", token, "--ca-bundle", live.ca_bundle


@pytest.fixture(scope="module")
def rest(live: LiveServer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live.url}/services/data/v{API_VERSION}/",
                      verify=ssl.create_default_context(cafile=live.ca_bundle),
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def prefix() -> str:
    return "dl" + uuid.uuid4().hex[:10]


def query(rest: httpx.Client, soql: str) -> list[dict[str, Any]]:
    response = rest.get("query", params={"q": soql})
    assert response.status_code == 200, response.text
    return list(response.json()["records"])


def create_accounts(rest: httpx.Client, names: list[str]) -> list[str]:
    body = {"allOrNone": True, "records": [{"attributes": {"type": "Account"}, "Name": n} for n in names]}
    response = rest.post("composite/sobjects", json=body)
    assert response.status_code == 200 and all(r["success"] for r in response.json()), response.text
    return [r["id"] for r in response.json()]


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def data(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("data", *args, check=False)


# -- help -------------------------------------------------------------------------------------------------------


def test_help_imports_no_heavy_module() -> None:
    probe = textwrap.dedent(f"""
        import contextlib, io, json, sys
        import interlink.cli.main as cli
        codes = {{}}
        for command in ("data", "data import", "data delete", "data export"):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    cli.app([*command.split(), "--help"], standalone_mode=False, prog_name="interlink")
                except SystemExit as done:
                    codes[command] = done.code or 0
        print(json.dumps({{"codes": codes, "heavy": sorted({{m.split(".")[0] for m in sys.modules}}
                                                          & set({HEAVY!r}))}}))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["codes"].values()) <= {0}
    assert report["heavy"] == []


# -- import -----------------------------------------------------------------------------------------------------


def test_small_import_uses_collections_and_reports_the_bad_row(live: LiveServer, rest: httpx.Client,
                                                               tmp_path: Path) -> None:
    tag = prefix()
    source = write_csv(tmp_path / "accounts.csv", ["Name", "NumberOfEmployees", "Description"], [
        [f"{tag}-1", "10", "first"],
        [f"{tag}-2", "20", 'says "hi",\nover two lines'],
        ["", "30", "no name"],
        [f"{tag}-3", "", "#N/A"],
    ])
    result = data("import", "Account", str(source), "--data-dir", str(live.data_dir))
    assert result.returncode == 1, result.stderr
    assert "sObject Collections" in result.stdout
    assert "succeeded  3" in result.stdout and "failed     1" in result.stdout

    successes = read_csv(tmp_path / "accounts.success.csv")
    assert [row["Name"] for row in successes] == [f"{tag}-1", f"{tag}-2", f"{tag}-3"]
    assert all(row["sf__Id"].startswith("001") and row["sf__Created"] == "true" for row in successes)
    assert successes[1]["Description"] == 'says "hi",\nover two lines'
    errors = read_csv(tmp_path / "accounts.errors.csv")
    assert len(errors) == 1
    assert errors[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:") and errors[0]["sf__Error"].endswith(" --")
    assert (errors[0]["NumberOfEmployees"], errors[0]["Description"]) == ("30", "no name")

    stored = {r["Name"]: r for r in query(rest, f"SELECT Id, Name, NumberOfEmployees, Description FROM Account "
                                                f"WHERE Name LIKE '{tag}-%'")}
    assert set(stored) == {f"{tag}-1", f"{tag}-2", f"{tag}-3"}
    assert stored[f"{tag}-3"]["NumberOfEmployees"] is None and stored[f"{tag}-3"]["Description"] is None

    # Update: an empty value leaves the field alone, #N/A clears it.
    first = successes[0]["sf__Id"]
    update = write_csv(tmp_path / "update.csv", ["Id", "NumberOfEmployees", "Description"], [[first, "", "#N/A"]])
    result = data("import", "Account", str(update), "--operation", "update", "--data-dir", str(live.data_dir))
    assert result.returncode == 0, result.stderr + result.stdout
    (row,) = query(rest, f"SELECT NumberOfEmployees, Description FROM Account WHERE Id = '{first}'")
    assert row == {**row, "NumberOfEmployees": 10, "Description": None}
    assert read_csv(tmp_path / "update.success.csv")[0]["sf__Created"] == "false"


def test_large_import_uses_bulk_then_upserts_by_id(remote: tuple[str, ...], rest: httpx.Client,
                                                   tmp_path: Path) -> None:
    tag = prefix()
    source = write_csv(tmp_path / "many.csv", ["Name", "NumberOfEmployees"],
                       [[f"{tag}-{n:02d}", str(n)] for n in range(50)], delimiter=";")
    result = data("import", "Account", str(source), "--delimiter", "SEMICOLON", "--bulk-threshold", "10", *remote)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Bulk API 2.0 (job 750" in result.stdout and "processed  50" in result.stdout
    created = read_csv(tmp_path / "many.success.csv", delimiter=";")
    assert len(created) == 50 and {row["sf__Created"] for row in created} == {"true"}
    assert read_csv(tmp_path / "many.errors.csv", delimiter=";") == []

    ids = {row["Name"]: row["sf__Id"] for row in created}
    rows = [[ids[f"{tag}-{n:02d}"], str(1000 + n), "#N/A" if n % 2 else "kept"] for n in range(50)]
    rows.append(["001000000000000AAA", "1", "unknown id"])
    upsert = write_csv(tmp_path / "upsert.csv", ["Id", "NumberOfEmployees", "Description"], rows)
    result = data("import", "Account", str(upsert), "--upsert", "Id", "--bulk-threshold", "10", *remote)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "Bulk API 2.0" in result.stdout and "succeeded  50" in result.stdout and "failed     1" in result.stdout
    updated = read_csv(tmp_path / "upsert.success.csv")
    assert len(updated) == 50 and {row["sf__Created"] for row in updated} == {"false"}
    (failed,) = read_csv(tmp_path / "upsert.errors.csv")
    assert failed["Id"] == "001000000000000AAA" and failed["Description"] == "unknown id" and failed["sf__Error"]

    stored = query(rest, f"SELECT Name, NumberOfEmployees, Description FROM Account WHERE Name LIKE '{tag}-%'")
    assert len(stored) == 50
    for row in stored:
        number = int(row["Name"].rsplit("-", 1)[1])
        assert row["NumberOfEmployees"] == 1000 + number
        assert row["Description"] == (None if number % 2 else "kept")


def test_bulk_import_splits_a_big_file_into_uploads(live: LiveServer, remote: tuple[str, ...], rest: httpx.Client,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import interlink.cli.data as loader
    from interlink.cli.main import app

    tag = prefix()
    source = write_csv(tmp_path / "big.csv", ["Name", "Description"],
                       [[f"{tag}-{n:02d}", f'line one\nline "two" of {n}'] for n in range(30)])
    scan = loader.scan_file(source, "COMMA", limit=400)
    assert scan.records == 30 and len(scan.segments) > 3
    body = source.read_bytes()
    assert b"".join(body[start:end] for start, end in scan.segments) == body[len(scan.header_bytes):]
    for start, end in scan.segments:  # each upload holds whole records
        assert {len(values) for values in csv.reader(io.StringIO(body[start:end].decode()))} == {2}

    monkeypatch.setattr(loader, "UPLOAD_LIMIT", 400)  # several uploads, each with the header row
    result = CliRunner().invoke(app, ["data", "import", "Account", str(source), "--bulk-threshold", "0", *remote])
    assert result.exit_code == 0, result.output
    stored = query(rest, f"SELECT Name, Description FROM Account WHERE Name LIKE '{tag}-%'")
    assert len(stored) == 30
    assert all(r["Description"] == f'line one\nline "two" of {int(r["Name"][-2:])}' for r in stored)


@pytest.mark.parametrize("threshold", ["2000", "0"], ids=["collections", "bulk"])
def test_delete_by_ids_file(threshold: str, live: LiveServer, rest: httpx.Client, tmp_path: Path) -> None:
    tag = prefix()
    names = [f"{tag}-{n}" for n in range(3)]
    ids = create_accounts(rest, names)
    contact = rest.post("sobjects/Contact", json={"LastName": tag}).json()["id"]
    source = write_csv(tmp_path / "ids.csv", ["Name", "Id"],
                       [[name, record_id] for name, record_id in zip(names, ids, strict=True)]
                       + [["a contact", contact], ["bogus", "not-an-id"]])
    result = data("delete", "Account", str(source), "--bulk-threshold", threshold, "--data-dir", str(live.data_dir))
    assert result.returncode == 1, result.stderr + result.stdout
    assert ("Bulk API 2.0" if threshold == "0" else "sObject Collections") in result.stdout

    deleted = read_csv(tmp_path / "ids.success.csv")
    assert sorted((row["Name"], row["Id"], row["sf__Id"][:15]) for row in deleted) == \
        sorted((name, record_id, record_id[:15]) for name, record_id in zip(names, ids, strict=True))
    errors = {row["Name"]: row for row in read_csv(tmp_path / "ids.errors.csv")}
    assert set(errors) == {"a contact", "bogus"}
    assert all(row["sf__Error"].startswith("MALFORMED_ID:") for row in errors.values())
    assert query(rest, f"SELECT Id FROM Account WHERE Name LIKE '{tag}-%'") == []
    assert len(query(rest, f"SELECT Id FROM Contact WHERE Id = '{contact}'")) == 1  # another object: left alone


# -- export -----------------------------------------------------------------------------------------------------


def test_export_follows_locators_page_by_page(live: LiveServer, rest: httpx.Client, tmp_path: Path) -> None:
    tag = prefix()
    ids = create_accounts(rest, [f"{tag}-{n:02d}" for n in range(12)])
    out = tmp_path / "accounts.csv"
    soql = f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag}-%' ORDER BY Name"
    result = data("export", soql, str(out), "--max-records", "5", "--data-dir", str(live.data_dir))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Exported 12 rows" in result.stdout and "3 pages" in result.stdout

    lines = out.read_text().splitlines()
    assert lines[0] == '"Id","Name"' and lines.count(lines[0]) == 1
    exported = read_csv(out)
    expected = query(rest, soql)
    assert [(r["Id"], r["Name"]) for r in exported] == [(r["Id"], r["Name"]) for r in expected]
    assert {r["Id"] for r in exported} == set(ids)
    assert not (tmp_path / "accounts.csv.part").exists()


def test_export_all_includes_deleted_rows(remote: tuple[str, ...], rest: httpx.Client, tmp_path: Path) -> None:
    tag = prefix()
    ids = create_accounts(rest, [f"{tag}-a", f"{tag}-b"])
    assert rest.delete(f"sobjects/Account/{ids[0]}").status_code == 204
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Name LIKE '{tag}-%'"
    assert data("export", soql, str(tmp_path / "live.csv"), *remote).returncode == 0
    assert data("export", soql, str(tmp_path / "all.csv"), "--all", *remote).returncode == 0
    assert [r["Id"] for r in read_csv(tmp_path / "live.csv")] == [ids[1]]
    assert {r["Id"]: r["IsDeleted"] for r in read_csv(tmp_path / "all.csv")} == {ids[0]: "true", ids[1]: "false"}


def test_export_of_a_bad_query_prints_the_server_error(remote: tuple[str, ...], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = data("export", "SELECT NoSuchField__c FROM Account", str(out), *remote)
    assert result.returncode == 1
    assert "error: INVALID_FIELD:" in result.stderr
    assert not out.exists()


# -- errors -----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_and_network_errors_exit_1(live: LiveServer, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", ["Name"], [["x"]])
    unreachable = data("import", "Account", str(source), "--instance-url", f"https://127.0.0.1:{_free_port()}",
                       "--token", "x")
    assert unreachable.returncode == 1
    assert "cannot reach https://127.0.0.1:" in unreachable.stderr

    untrusted = data("export", "SELECT Id FROM Account", str(tmp_path / "o.csv"), "--instance-url", live.url,
                     "--token", "x")
    assert untrusted.returncode == 1 and "--ca-bundle" in untrusted.stderr

    bad_token = data("import", "Account", str(source), "--instance-url", live.url, "--token", "not-a-token",
                     "--ca-bundle", live.ca_bundle)
    assert bad_token.returncode == 1
    assert "error: INVALID_SESSION_ID:" in bad_token.stderr
    assert not (tmp_path / "a.success.csv").exists() and not (tmp_path / "a.errors.csv").exists()


def test_usage_errors_exit_2(live: LiveServer, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", ["Name"], [["x"]])
    local = ("--data-dir", str(live.data_dir))
    cases = [
        ("import", "Account", str(tmp_path / "missing.csv"), *local),
        ("import", "Account", str(source), "--operation", "merge", *local),
        ("import", "Account", str(source), "--operation", "insert", "--upsert", "Id", *local),
        ("import", "Account", str(source), "--operation", "upsert", *local),
        ("import", "Account", str(source), "--operation", "update", *local),  # no Id column
        ("import", "Account", str(source), "--delimiter", "COLON", *local),
        ("import", "Account", str(source), "--bulk-threshold", "-1", *local),
        ("delete", "Account", str(source), *local),  # no Id column
        ("import", "Account", str(source), "--instance-url", live.url),  # no --token
        ("import", "Account", str(source), "--data-dir", str(tmp_path / "no-org")),  # no server running
        ("export", "SELECT Id FROM Account", str(tmp_path / "out.csv"), "--max-records", "0", *local),
    ]
    for args in cases:
        result = data(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, args
    assert "no server is running" in data(*cases[-2]).stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
