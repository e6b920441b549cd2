"""``interlink data``: load CSV files into an org and export query results, through the wire APIs only.

The loader is a client like any other: it calls REST (sObject Collections) and Bulk API 2.0 with httpx, so it
works the same against the local org and a production one. Small files go through collections (200 records a
call, ``allOrNone`` false) because a Bulk job's fixed cost (create, upload, close, poll) outweighs a few hundred
records; large files go through a Bulk ingest job. Either way the results land in the same two CSV files beside
the input, in the format of Bulk API 2.0 results, so a retry or a reconciliation reads them the same way.

Like the rest of the CLI, heavy modules (httpx, rich's progress display) are imported inside the commands so
``--help`` stays instant.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:

    from rich.progress import Progress

# The sub-app exists before this module imports interlink.cli.main (see interlink.cli.events for why).
data_app = typer.Typer(help="Load CSV files into an org and export query results (REST and Bulk API 2.0).",
                       no_args_is_help=True)

from interlink.cli.main import DataDir, StoreUrl, _err  # noqa: E402
from interlink.cli.orgclient import ApiError, OrgClient, Target, config_error, reported, resolve_target  # noqa: E402
from interlink.jobs.csvdata import DELIMITERS, NULL_MARKER  # noqa: E402  (Bulk API's CSV conventions),

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
COLLECTION_SIZE = 200  # records per sObject Collections call, the platform's maximum
UPLOAD_LIMIT = 100 * 1024 * 1024  # bytes per Bulk upload: the platform takes 150 MB, but advises 100 MB

InstanceUrl = Annotated[str | None, typer.Option(
    "--instance-url", envvar="INTERLINK_INSTANCE_URL",
    help="The org's URL, e.g. https://acme.my.salesforce.com (default: the local org's running server).")]
AccessToken = Annotated[str | None, typer.Option(
    "--token", envvar="INTERLINK_ACCESS_TOKEN",
    help="Access token for --instance-url (default: one minted for --user of the local org).")]
ApiVersion = Annotated[str, typer.Option("--api-version", envvar="INTERLINK_API_VERSION", help="API version.")]
CaBundle = Annotated[Path | None, typer.Option(
    "--ca-bundle", envvar="INTERLINK_CA_BUNDLE",
    help="PEM file of the CAs to trust (default: the system's, plus the local CA for the local org).")]
User = Annotated[str, typer.Option("--user", envvar="INTERLINK_USER",
                                   help="Local org only: the user to act as.")]
Delimiter = Annotated[str, typer.Option(
    "--delimiter", help="The file's column delimiter: COMMA, TAB, PIPE, SEMICOLON, CARET or BACKQUOTE.")]
Threshold = Annotated[int, typer.Option(
    "--bulk-threshold", min=0, help="Files with more data rows than this use Bulk API 2.0, others sObject "
                                    "Collections.")]
CsvFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, metavar="FILE.csv",
                                         help="UTF-8 CSV with a header row of field names.")]
ObjectArg = Annotated[str, typer.Argument(metavar="OBJECT", help="The object, e.g. Account or Invoice__c.")]
DEFAULT_API_VERSION = "66.0"
DEFAULT_USER = "admin@interlink.local"


def _progress() -> Progress:
    """A progress display on stderr: bar, rows done of the total, rows per second, elapsed time."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RowRate(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="progress.data.speed")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RowRate(),
                    TimeElapsedColumn(), console=Console(stderr=True))


# -- reading the input file ----------------------------------------------------------------------------------


@dataclass
class FileScan:
    """What a CSV file holds: its header, how many records follow and where to cut it into uploads."""

    header: list[str]
    header_bytes: bytes
    line_ending: str
    records: int
    segments: list[tuple[int, int]] = field(default_factory=list)  # byte ranges of records, one per upload


def scan_file(path: Path, delimiter: str, limit: int | None = None) -> FileScan:
    """Read ``path`` once, in binary: header, line ending, record count and upload boundaries.

    A record ends at a line break outside quotes; with doubled quotes inside values, that is where the record's
    count of ``"`` is even. Uploads are cut only between records, so each stays a valid CSV with the header.
    """
    limit = UPLOAD_LIMIT if limit is None else limit
    with path.open("rb") as handle:
        first = handle.readline()
        try:
            header_text = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise config_error(f"{path} is not UTF-8 text") from None
        header = [name.strip() for name in next(csv.reader([header_text], delimiter=DELIMITERS[delimiter]), [])]
        if not any(header):
            raise config_error(f"{path} has no header row: the first line names the fields")
        line_ending = "CRLF" if first.endswith(b"\r\n") else "LF"
        start = position = record_start = len(first)
        segments: list[tuple[int, int]] = []
        records = quotes = 0
        for line in handle:
            quotes += line.count(b'"')
            position += len(line)
            if quotes % 2:
                continue  # inside a quoted value that holds a line break
            quotes = 0
            if position - record_start == len(line) and not line.strip():
                record_start = position  # a blank line, which Bulk skips too
                continue
            records += 1
            if position - start + len(first) > limit and record_start > start:
                segments.append((start, record_start))
                start = record_start
            record_start = position
        if position > start:
            segments.append((start, position))
    return FileScan(header, first, line_ending, records, segments)


def data_rows(path: Path, delimiter: str) -> Iterator[list[str]]:
    """The records after the header (blank lines left out), checked against the header's width."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=DELIMITERS[delimiter], strict=True)
        try:
            width = len(next(reader, []))
            for values in reader:
                if len(values) == width:
                    yield values
                elif values and values != [""]:
                    raise config_error(f"{path} line {reader.line_num}: {len(values)} values, but the header has "
                                        f"{width} columns")
        except csv.Error as exc:
            raise config_error(f"{path} line {reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError:
            raise config_error(f"{path} is not UTF-8 text") from None


def _position(header: list[str], name: str) -> int | None:
    return next((i for i, column in enumerate(header) if column.lower() == name.lower()), None)


# -- results -------------------------------------------------------------------------------------------------


class ResultFiles:
    """``<stem>.success.csv`` and ``<stem>.errors.csv`` beside the input, in the Bulk API 2.0 results format."""

    def __init__(self, source: Path, header: list[str], delimiter: str) -> None:
        self.success_path = source.with_name(f"{source.stem}.success.csv")
        self.errors_path = source.with_name(f"{source.stem}.errors.csv")
        self.succeeded = self.failed = 0
        self._files = [path.open("w", encoding="utf-8", newline="") for path in (self.success_path,
                                                                                   self.errors_path)]
        self._success, self._errors = (csv.writer(f, delimiter=DELIMITERS[delimiter], quoting=csv.QUOTE_ALL,
                                                  lineterminator="\n") for f in self._files)
        self._success.writerow(["sf__Id", "sf__Created", *header])
        self._errors.writerow(["sf__Id", "sf__Error", *header])

    @property
    def processed(self) -> int:
        """Rows written to either file."""
        return self.succeeded + self.failed

    def success(self, record_id: str, created: bool, values: list[str]) -> None:
        """One row the org saved: its id, whether it was created, the input's values."""
        self._success.writerow([record_id, "true" if created else "false", *values])
        self.succeeded += 1

    def failure(self, record_id: str, error: str, values: list[str]) -> None:
        """One row the org refused (or never processed), with its ``sf__Error`` text."""
        self._errors.writerow([record_id, error, *values])
        self.failed += 1

    def close(self) -> None:
        """Flush and close both files."""
        for handle in self._files:
            handle.close()


def error_text(errors: list[dict[str, Any]]) -> str:
    """``sf__Error`` as Bulk API 2.0 writes it: ``CODE:message:field,field --`` per error."""
    return " ".join(f"{e.get('statusCode') or e.get('errorCode')}:{e.get('message', '')}:"
                    f"{','.join(e.get('fields') or [])} --" for e in errors)


# -- loading: sObject Collections ----------------------------------------------------------------------------


def _reference_field(relationship: str) -> str:
    """The lookup field behind a relationship name, by the platform's naming rule (Account -> AccountId)."""
    return relationship[:-3] + "__c" if relationship.endswith("__r") else relationship + "Id"


def json_record(object_name: str, header: list[str], values: list[str]) -> dict[str, Any]:
    """A CSV record as a collections record, with Bulk's semantics: empty leaves alone, ``#N/A`` is null.

    ``Account.External_Id__c`` columns become ``{"Account": {"External_Id__c": value}}`` and polymorphic
    ``Owner:User.Username`` ones add the parent's type, as REST writes parent references.
    """
    record: dict[str, Any] = {"attributes": {"type": object_name}}
    for name, raw in zip(header, values, strict=True):
        if raw == "":
            continue
        value = None if raw == NULL_MARKER else raw
        if "." not in name:
            record[name] = value
            continue
        relationship, _, parent_field = name.partition(".")
        parent_type = None
        if ":" in relationship:
            parent_type, _, relationship = relationship.partition(":")
        if value is None:
            record[_reference_field(relationship)] = None
            continue
        parent: dict[str, Any] = {parent_field: value}
        if parent_type:
            parent["attributes"] = {"type": parent_type}
        record[relationship] = parent
    return record


@dataclass
class LoadSpec:
    """What ``data import`` / ``data delete`` was asked to do."""

    object_name: str
    path: Path
    operation: str
    external_id: str | None
    delimiter: str
    threshold: int


def load_collections(client: OrgClient, spec: LoadSpec, header: list[str], files: ResultFiles,
                     advance: Callable[[int], None]) -> int:
    """Send the rows in calls of 200 with ``allOrNone`` false; returns the number of calls."""
    calls = 0
    chunk: list[list[str]] = []
    key_prefix = None
    if spec.operation == "delete":
        # Collections delete any object's ids; the object's key prefix keeps the load to the object named, as a
        # Bulk job on that object would.
        calls += 1
        key_prefix = client.json("GET", f"sobjects/{spec.object_name}/describe").get("keyPrefix")

    def send() -> None:
        nonlocal calls
        calls += 1
        _send_chunk(client, spec, header, chunk, files, key_prefix)
        advance(len(chunk))
        chunk.clear()

    for values in data_rows(spec.path, spec.delimiter):
        chunk.append(values)
        if len(chunk) == COLLECTION_SIZE:
            send()
    if chunk:
        send()
    return calls


def _send_chunk(client: OrgClient, spec: LoadSpec, header: list[str], rows: list[list[str]],
                files: ResultFiles, key_prefix: str | None) -> None:
    operation = spec.operation
    if operation == "delete":
        id_at = _position(header, "Id")
        assert id_at is not None

        def sendable(record_id: str) -> bool:
            # Ids travel in the query string: one that is blank or holds a comma would shift every later result.
            return bool(record_id) and "," not in record_id and record_id.startswith(key_prefix or "")

        for values in rows:
            if not sendable(values[id_at].strip()):
                files.failure("", f"MALFORMED_ID:{spec.object_name} ID: id value of incorrect type: "
                                  f"{values[id_at]}:Id --", values)
        rows = [values for values in rows if sendable(values[id_at].strip())]
        if not rows:
            return
        ids = ",".join(v[id_at].strip() for v in rows)
        results = client.json("DELETE", "composite/sobjects", params={"ids": ids, "allOrNone": "false"})
    else:
        body = {"allOrNone": False, "records": [json_record(spec.object_name, header, v) for v in rows]}
        if operation == "insert":
            results = client.json("POST", "composite/sobjects", json=body)
        elif operation == "update":
            results = client.json("PATCH", "composite/sobjects", json=body)
        else:
            results = client.json("PATCH", f"composite/sobjects/{spec.object_name}/{spec.external_id}", json=body)
    if not isinstance(results, list) or len(results) != len(rows):
        raise ApiError([f"UNEXPECTED_RESPONSE: {len(rows)} records sent, but the answer is not one result per "
                        "record"])
    for values, result in zip(rows, results, strict=True):
        if result.get("success"):
            created = operation == "insert" or (operation == "upsert" and bool(result.get("created")))
            files.success(result.get("id") or "", created, values)
        else:
            files.failure(result.get("id") or "", error_text(result.get("errors") or []), values)


# -- loading: Bulk API 2.0 -----------------------------------------------------------------------------------


def _upload_body(path: Path, header: bytes, start: int, end: int) -> Iterator[bytes]:
    """The header, then the file's bytes from ``start`` to ``end``, a megabyte at a time."""
    yield header
    with path.open("rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0:
            piece = handle.read(min(left, 1024 * 1024))
            if not piece:
                break
            left -= len(piece)
            yield piece


@contextlib.contextmanager
def _ids_only(spec: LoadSpec, header: list[str]) -> Iterator[tuple[Path, dict[str, list[list[str]]]]]:
    """A temporary Id-only copy of a delete file with other columns, and its rows by Id to rejoin results.

    Bulk delete jobs take exactly one column, Id; the other columns come back into the result files from here
    (held in memory: such files are lists of ids with a few notes, far smaller than the records they delete).
    """
    import tempfile

    id_at = _position(header, "Id")
    assert id_at is not None
    rows: dict[str, list[list[str]]] = {}
    descriptor, name = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter=DELIMITERS[spec.delimiter], lineterminator="\n")
            writer.writerow(["Id"])
            for values in data_rows(spec.path, spec.delimiter):
                writer.writerow([values[id_at]])
                rows.setdefault(values[id_at], []).append(values)
        yield Path(name), rows
    finally:
        Path(name).unlink(missing_ok=True)


def load_bulk(client: OrgClient, spec: LoadSpec, scan: FileScan, files: ResultFiles, progress: Progress,
              task: Any) -> tuple[str, dict[str, Any]]:
    """Run one Bulk API 2.0 ingest job over the file; returns the job id and its final info."""
    header = scan.header
    if spec.operation in ("delete", "hardDelete") and [c.lower() for c in header] != ["id"]:
        with _ids_only(spec, header) as (path, by_id):
            uploaded = scan_file(path, spec.delimiter)

            def original(values: list[str]) -> list[str]:
                matches = by_id.get(values[0])
                if matches:
                    return matches.pop(0)
                id_at = _position(header, "Id") or 0
                return ["" if i != id_at else values[0] for i in range(len(header))]

            return _bulk_job(client, spec, path, uploaded, files, progress, task, original)
    return _bulk_job(client, spec, spec.path, scan, files, progress, task, lambda values: values)


def _bulk_job(client: OrgClient, spec: LoadSpec, path: Path, scan: FileScan, files: ResultFiles,
              progress: Progress, task: Any, original: Callable[[list[str]], list[str]]) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"object": spec.object_name, "operation": spec.operation, "contentType": "CSV",
                            "columnDelimiter": spec.delimiter, "lineEnding": scan.line_ending}
    if spec.external_id:
        body["externalIdFieldName"] = spec.external_id
    job_id = str(client.json("POST", "jobs/ingest", json=body)["id"])

    def seen(info: dict[str, Any]) -> None:
        progress.update(task, description=f"Bulk job {job_id} {info.get('state')}",
                        completed=int(info.get("numberRecordsProcessed") or 0))

    try:
        for number, (start, end) in enumerate(scan.segments, 1):
            progress.update(task, description=f"Uploading {number}/{len(scan.segments)}")
            size = len(scan.header_bytes) + end - start  # known up front, so the upload is not chunked
            client.call("PUT", f"jobs/ingest/{job_id}/batches",
                        content=_upload_body(path, scan.header_bytes, start, end),
                        headers={"Content-Type": "text/csv", "Content-Length": str(size)})
        client.call("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
        info = client.poll("ingest", job_id, seen)
    except BaseException:  # Ctrl-C and errors alike: a job left Open or running would go on without us
        client.abort("ingest", job_id)
        raise
    progress.update(task, description=f"Results of {job_id}")
    for values in _result_rows(client, job_id, "successfulResults", spec.delimiter):
        files.success(values[0], values[1].lower() == "true", original(values[2:]))
    for values in _result_rows(client, job_id, "failedResults", spec.delimiter):
        files.failure(values[0], values[1], original(values[2:]))
    if info.get("state") != "JobComplete":
        reason = info.get("errorMessage") or f"the job ended {info.get('state')}"
        for values in _result_rows(client, job_id, "unprocessedrecords", spec.delimiter, prefix=0):
            files.failure("", f"UNPROCESSED:{reason}: --", original(values))
    return job_id, info


def _text_lines(chunks: Iterator[str]) -> Iterator[str]:
    """Cut streamed text at ``\\n`` only, keeping the ends, so csv sees line breaks inside quoted values."""
    pending = ""
    for chunk in chunks:
        text = pending + chunk
        start = 0
        while (end := text.find("\n", start)) >= 0:
            yield text[start:end + 1]
            start = end + 1
        pending = text[start:]
    if pending:
        yield pending


def _result_rows(client: OrgClient, job_id: str, resource: str, delimiter: str, *,
                 prefix: int = 2) -> Iterator[list[str]]:
    """The records of an ingest job's result CSV (header dropped), streamed."""
    with client.stream(f"jobs/ingest/{job_id}/{resource}", {}) as response:
        reader = csv.reader(_text_lines(response.iter_text()), delimiter=DELIMITERS[delimiter])
        header = next(reader, None)
        if header is None:
            return
        for values in reader:
            if len(values) >= prefix and values != [""]:
                yield values


# -- commands ------------------------------------------------------------------------------------------------


def _operation(operation: str | None, upsert: str | None) -> tuple[str, str | None]:
    """(operation, external id field) from --operation and --upsert."""
    if operation is not None:
        chosen = next((op for op in OPERATIONS if op.lower() == operation.strip().lower()), None)
        if chosen is None:
            raise config_error(f"--operation is one of {', '.join(OPERATIONS)}, not {operation!r}")
    else:
        chosen = "upsert" if upsert else "insert"
    if upsert and chosen != "upsert":
        raise config_error(f"--upsert {upsert} means --operation upsert, not {chosen}")
    if chosen == "upsert" and not upsert:
        raise config_error("an upsert needs its external id field: --upsert FIELD (Id works too)")
    return chosen, upsert.strip() if upsert else None


def _delimiter(raw: str) -> str:
    name = raw.strip().upper()
    if name not in DELIMITERS:
        raise config_error(f"--delimiter is one of {', '.join(DELIMITERS)}, not {raw!r}")
    return name


def _check_columns(spec: LoadSpec, header: list[str]) -> None:
    """The columns an operation cannot do without, checked before anything is sent."""
    needed = {"update": "Id", "delete": "Id", "hardDelete": "Id", "upsert": spec.external_id}.get(spec.operation)
    if needed and _position(header, needed) is None:
        raise config_error(f"{spec.path} has no {needed} column, which {spec.operation} needs")


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "- rows/s"


def _load(spec: LoadSpec, target_of: Callable[[], Target]) -> None:
    """Validate the file, send it through collections or Bulk, write the result files, print a summary."""
    scan = scan_file(spec.path, spec.delimiter)
    _check_columns(spec, scan.header)
    target = target_of()
    # REST has no hard delete, so hardDelete always takes Bulk whatever the size.
    bulk = spec.operation == "hardDelete" or scan.records > spec.threshold
    if not bulk:
        for _ in data_rows(spec.path, spec.delimiter):
            pass  # a malformed record is refused before anything is sent, as a Bulk upload would be
    started = time.monotonic()
    files = ResultFiles(spec.path, scan.header, spec.delimiter)
    job_failed = ""
    try:
        with reported(target) as client, _progress() as progress:
            task = progress.add_task(f"{spec.operation} {spec.object_name}", total=scan.records)
            if bulk:
                job_id, info = load_bulk(client, spec, scan, files, progress, task)
                api = f"Bulk API 2.0 (job {job_id}, {info.get('state')})"
                if info.get("state") != "JobComplete":
                    job_failed = f"job {job_id} {info.get('state')}: {info.get('errorMessage') or 'no error message'}"
            else:
                calls = load_collections(client, spec, scan.header, files,
                                         lambda n: progress.advance(task, n))
                api = f"sObject Collections ({calls} call{'s' if calls != 1 else ''})"
            progress.update(task, description=f"{spec.operation} {spec.object_name}", completed=files.processed)
    except BaseException:
        files.close()
        if not files.processed:  # nothing was done: leave no result files that look like an outcome
            files.success_path.unlink(missing_ok=True)
            files.errors_path.unlink(missing_ok=True)
        raise
    files.close()
    if job_failed:
        from rich.markup import escape

        _err(f"[red]error:[/] {escape(job_failed)}")
    elapsed = time.monotonic() - started
    typer.echo("\n".join([
        f"{spec.operation} {spec.object_name} from {spec.path} with {api}",
        f"  processed  {files.processed}",
        f"  succeeded  {files.succeeded}",
        f"  failed     {files.failed}",
        f"  elapsed    {elapsed:.1f} s ({_rate(files.processed, elapsed)})",
        f"  successes  {files.success_path}",
        f"  errors     {files.errors_path}",
    ]))
    if files.failed or job_failed:
        raise typer.Exit(1)


@data_app.command("import")
def data_import(
    object_name: ObjectArg,
    file: CsvFile,
    operation: Annotated[str | None, typer.Option(
        "--operation", help="insert (default), update, upsert, delete or hardDelete.")] = None,
    upsert: Annotated[str | None, typer.Option(
        "--upsert", metavar="FIELD", help="Upsert on this external id field (or Id); implies --operation upsert.")]
    = None,
    delimiter: Delimiter = "COMMA",
    bulk_threshold: Threshold = 2000,
    instance_url: InstanceUrl = None,
    token: AccessToken = None,
    api_version: ApiVersion = DEFAULT_API_VERSION,
    ca_bundle: CaBundle = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
    user: User = DEFAULT_USER,
) -> None:
    """Insert, update, upsert or delete the records of a CSV file; writes FILE.success.csv and FILE.errors.csv."""
    chosen, external_id = _operation(operation, upsert)
    spec = LoadSpec(object_name, file, chosen, external_id, _delimiter(delimiter), bulk_threshold)
    _load(spec, lambda: resolve_target(instance_url, token, api_version, ca_bundle, data_dir, store, user))


@data_app.command("delete")
def data_delete(
    object_name: ObjectArg,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, metavar="IDS.csv",
                                         help="CSV with an Id column (other columns are kept in the results only).")],
    hard: Annotated[bool, typer.Option("--hard", help="Hard delete (skip the recycle bin); always Bulk API 2.0.")]
    = False,
    delimiter: Delimiter = "COMMA",
    bulk_threshold: Threshold = 2000,
    instance_url: InstanceUrl = None,
    token: AccessToken = None,
    api_version: ApiVersion = DEFAULT_API_VERSION,
    ca_bundle: CaBundle = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
    user: User = DEFAULT_USER,
) -> None:
    """Delete the records whose ids a CSV file lists; writes FILE.success.csv and FILE.errors.csv."""
    spec = LoadSpec(object_name, file, "hardDelete" if hard else "delete", None, _delimiter(delimiter),
                    bulk_threshold)
    _load(spec, lambda: resolve_target(instance_url, token, api_version, ca_bundle, data_dir, store, user))


def _download(client: OrgClient, job_id: str, out: Path, max_records: int,
              advance: Callable[[int], None]) -> tuple[int, int]:
    """Write every result page to ``out`` as it streams in (one header); returns (rows, pages)."""
    partial = out.with_name(out.name + ".part")
    rows = pages = 0
    locator: str | None = None
    try:
        with partial.open("wb") as sink:
            while True:
                params = {"maxRecords": str(max_records), **({"locator": locator} if locator else {})}
                with client.stream(f"jobs/query/{job_id}/results", params) as response:
                    skipping = pages > 0  # every page starts with the header: keep the first page's only
                    for chunk in response.iter_bytes():
                        if skipping:
                            end = chunk.find(b"\n")
                            if end < 0:
                                continue
                            chunk, skipping = chunk[end + 1:], False
                        sink.write(chunk)
                    count = int(response.headers.get("Sforce-NumberOfRecords") or 0)
                    locator = response.headers.get("Sforce-Locator")
                rows += count
                pages += 1
                advance(count)
                if not locator or locator == "null":
                    break
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return rows, pages


@data_app.command("export")
def data_export(
    soql: Annotated[str, typer.Argument(metavar="SOQL", help='The query, e.g. "SELECT Id, Name FROM Account".')],
    out: Annotated[Path, typer.Argument(metavar="OUT.csv", dir_okay=False, help="The CSV file to write.")],
    all_rows: Annotated[bool, typer.Option("--all", help="queryAll: include deleted and archived records.")]
    = False,
    max_records: Annotated[int, typer.Option("--max-records", min=1, help="Rows per result page downloaded.")]
    = 50_000,
    instance_url: InstanceUrl = None,
    token: AccessToken = None,
    api_version: ApiVersion = DEFAULT_API_VERSION,
    ca_bundle: CaBundle = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
    user: User = DEFAULT_USER,
) -> None:
    """Export a query's rows to a CSV file with a Bulk API 2.0 query job, page by page."""
    if not out.parent.is_dir():
        raise config_error(f"cannot write {out}: {out.parent} is not a directory")
    target = resolve_target(instance_url, token, api_version, ca_bundle, data_dir, store, user)
    started = time.monotonic()
    with reported(target) as client:
        body = {"operation": "queryAll" if all_rows else "query", "query": soql, "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF"}
        job_id = str(client.json("POST", "jobs/query", json=body)["id"])
        with _progress() as progress:
            task = progress.add_task(f"Query job {job_id}", total=None)
            try:
                info = client.poll("query", job_id, lambda i: progress.update(
                    task, description=f"Query job {job_id} {i.get('state')}"))
            except BaseException:  # Ctrl-C and errors alike: stop the query we no longer wait for
                client.abort("query", job_id)
                raise
            if info.get("state") == "JobComplete":
                expected = int(info.get("numberRecordsProcessed") or 0)
                progress.update(task, description=f"Downloading {job_id}", total=expected, completed=0)
                rows, pages = _download(client, job_id, out, max_records, lambda n: progress.advance(task, n))
        if info.get("state") != "JobComplete":
            _err(f"[red]error:[/] query job {job_id} {info.get('state')}: "
                 f"{info.get('errorMessage') or 'no error message'}")
            raise typer.Exit(1)
    elapsed = time.monotonic() - started
    if rows != expected:
        _err(f"[yellow]warning:[/] the job reported {expected} rows but the result pages held {rows}")
    typer.echo("\n".join([
        f"Exported {rows} row{'s' if rows != 1 else ''} to {out} with Bulk API 2.0 (job {job_id}, "
        f"{pages} page{'s' if pages != 1 else ''})",
        f"  elapsed    {elapsed:.1f} s ({_rate(rows, elapsed)})",
    ]))
