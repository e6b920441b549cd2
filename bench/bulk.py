"""Benchmark: Bulk API 2.0 ingest and query end to end through a live ``interlink up``, against csv + sqlite3.

Run ``python bench/bulk.py`` (1,000,000 rows, several minutes) or ``python bench/bulk.py --quick`` (100,000 rows,
what ``make bench`` runs). In one run:

1. The script writes two CSV files to a temporary directory, a row at a time (nothing is held in memory): the
   **insert** file (``Name, AccountNumber, Industry, Phone, BillingCity, AnnualRevenue, External_Id__c``, keys
   ``EXT-0000000000`` …) and the **upsert** file (the same columns, new values, keys from N/2 on: half of them
   exist after the insert, half are new).
2. It starts a real ``interlink up`` (one process, TLS, embedded SQLite store) in a temporary data directory with
   :func:`interlink.testing.live_server`. The data directory is the project: ``metadata/objects/Account.yaml``
   adds ``External_Id__c`` (text, ``externalId``, ``unique``), since Account has no external id of its own.
   Against it, over httpx with the server's CA bundle:

   * **insert**: ``POST jobs/ingest`` (``insert``), the CSV uploaded with ``PUT .../batches`` in pieces of at
     most 100 MB (each with the header row), ``PATCH`` ``UploadComplete``, ``GET`` the job until ``JobComplete``.
     Timed from the first upload to ``JobComplete``; the upload time is reported apart.
   * **query**: ``POST jobs/query`` with ``SELECT <the same columns> FROM Account``, ``GET`` the job until
     ``JobComplete``, then every page of ``GET .../results?maxRecords=250000`` (following ``Sforce-Locator``)
     streamed to a file. Timed from the job's creation to the last byte. It runs after the insert and before the
     upsert, so it reads exactly N rows.
   * **upsert** on ``External_Id__c``, timed like the insert. A REST ``SELECT COUNT() FROM Account`` checks that
     half the keys were inserted.

3. **CDC**: a second ``interlink up`` in another temporary data directory, whose project also has
   ``metadata/channels/ChangeEvents.yaml`` (``members: [Account]``), runs the same insert job. Each committed
   Account then produces a change event on the embedded bus. Its rows/s are compared with the CDC-off insert.
4. **Baseline**, in the same process and run: the same CSV bytes parsed with the standard library's ``csv`` and
   written with ``sqlite3`` ``executemany`` into a fresh SQLite file (WAL, ``synchronous=NORMAL``, as the embedded
   store), a table with the same columns plus a text primary key ``Id`` (``001`` + 15 digits), one commit per
   10,000 rows (the server's internal batch size). The query baseline selects those columns and writes them with
   ``csv.writer`` to a file. The upsert baseline adds a unique index on the key (not timed) and runs
   ``INSERT … ON CONFLICT ("External_Id__c") DO UPDATE``.

The table shows rows/s for each measurement, the baseline's rows/s and the ratio Interlink / baseline. The goal of
the issue is an insert ratio of at least 0.3 with CDC off; the script says whether it is met (it does not fail).

Flags: ``--rows N`` (default 1,000,000), ``--quick`` (100,000 rows), ``--upload-mb`` (largest upload, default
100), ``--page-size`` (``maxRecords``, default 250,000), ``--no-cdc``, ``--json``.

Importable: :func:`run_benchmark` returns a :class:`BulkReport`; :func:`write_csv`, :func:`csv_pieces`,
:func:`run_ingest_job`, :func:`run_query_job` and the ``baseline_*`` functions can be used on their own.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import sqlite3
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from interlink.testing import API_VERSION, LiveServer, live_server

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/bulk.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: server CPU time from /proc)

BASE = f"/services/data/v{API_VERSION}"
INGEST_PATH = f"{BASE}/jobs/ingest"
QUERY_PATH = f"{BASE}/jobs/query"
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
UPLOAD_MB = 100
PAGE_SIZE = 250_000
BATCH_ROWS = 10_000  # the server's internal batch (bulk_batch_size), and the baseline's commit interval
INGEST_GOAL = 0.3  # insert rows/s (CDC off) divided by the csv + executemany baseline's rows/s
POLL_SECONDS = 0.1
EXTERNAL_ID = "External_Id__c"
COLUMNS = ["Name", "AccountNumber", "Industry", "Phone", "BillingCity", "AnnualRevenue", EXTERNAL_ID]
ACCOUNT_YAML = f"fields:\n  - {{name: {EXTERNAL_ID}, label: External Id, type: text, length: 40, externalId: true, " \
               "unique: true}\n"
CDC_CHANNEL_YAML = "members: [Account]\n"
INDUSTRIES = ["Banking", "Technology", "Retail", "Energy", "Healthcare", "Manufacturing", "Media", "Shipping"]
CITIES = ["San Francisco", "New York", "Chicago", "Austin", "Seattle", "Boston", "Denver", "Atlanta"]


@dataclass
class JobResult:
    """One measured Bulk job against the live server."""

    target: str
    rows: int
    seconds: float  # ingest: first upload to JobComplete; query: job create to the last byte
    rows_per_second: float
    upload_s: float | None = None  # ingest: all PUTs
    processing_s: float | None = None  # ingest: UploadComplete to JobComplete; query: create to JobComplete
    download_s: float | None = None  # query: the result pages
    processed: int = 0
    failed: int = 0
    pieces: int = 0  # uploads (ingest) or result pages (query)
    bytes: int = 0  # uploaded or downloaded
    server_cpu_s: float | None = None
    server_busy: float | None = None  # server CPU seconds / wall seconds (above 100%: several threads)
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclass
class BaselineResult:
    """One measured pass of the csv + sqlite3 floor."""

    target: str
    rows: int
    seconds: float
    rows_per_second: float


@dataclass
class BulkReport:
    """Everything one run measured."""

    rows: int
    csv_bytes: int
    upsert_csv_bytes: int
    upload_mb: int
    page_size: int
    insert: JobResult
    query: JobResult
    upsert: JobResult
    cdc_insert: JobResult | None
    baseline_insert: BaselineResult
    baseline_query: BaselineResult
    baseline_upsert: BaselineResult
    wall_s: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)

    @staticmethod
    def _ratio(mine: float, base: float) -> float:
        return mine / base if base else 0.0

    @property
    def insert_ratio(self) -> float:
        return self._ratio(self.insert.rows_per_second, self.baseline_insert.rows_per_second)

    @property
    def query_ratio(self) -> float:
        return self._ratio(self.query.rows_per_second, self.baseline_query.rows_per_second)

    @property
    def upsert_ratio(self) -> float:
        return self._ratio(self.upsert.rows_per_second, self.baseline_upsert.rows_per_second)

    @property
    def cdc_ratio(self) -> float | None:
        """CDC-on insert rows/s / CDC-off insert rows/s."""
        if self.cdc_insert is None:
            return None
        return self._ratio(self.cdc_insert.rows_per_second, self.insert.rows_per_second)

    @property
    def goal_met(self) -> bool:
        return self.insert_ratio >= INGEST_GOAL

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["insert_ratio"] = round(self.insert_ratio, 4)
        data["query_ratio"] = round(self.query_ratio, 4)
        data["upsert_ratio"] = round(self.upsert_ratio, 4)
        data["cdc_ratio"] = None if self.cdc_ratio is None else round(self.cdc_ratio, 4)
        data["goal"] = INGEST_GOAL
        data["goal_met"] = self.goal_met
        return data


# -- the data ------------------------------------------------------------------------------------------------


def account_row(n: int, *, upserted: bool = False) -> list[str]:
    """The CSV values of Account number ``n`` (the upsert file changes every value but the key)."""
    shift = 3 if upserted else 0
    return [f"Bulk Account {n}{' (upserted)' if upserted else ''}", f"AN-{n:08d}",
            INDUSTRIES[(n + shift) % len(INDUSTRIES)], f"(555) {n % 1000:03d}-{(n // 1000) % 10000:04d}",
            CITIES[(n + shift) % len(CITIES)], str(10_000 * (n % 5_000) + (7 if upserted else 0)),
            f"EXT-{n:010d}"]


def write_csv(path: Path, keys: range, *, upserted: bool = False) -> int:
    """Write the header and one row per key to ``path`` (LF line ends, as the jobs declare); returns its size."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for start in range(keys.start, keys.stop, BATCH_ROWS):
            writer.writerows(account_row(n, upserted=upserted) for n in range(start, min(start + BATCH_ROWS,
                                                                                          keys.stop)))
    return path.stat().st_size


def csv_pieces(path: Path, max_bytes: int) -> Iterator[bytes]:
    """The CSV in uploads of at most ``max_bytes``, each starting with the header row, cut between rows.

    Rows are cut at ``\\n``: the generated values never hold a line break.
    """
    with path.open("rb") as handle:
        header = handle.readline()
        room = max_bytes - len(header)
        if room <= 0:
            raise ValueError("--upload-mb is smaller than the header row")
        carry = b""
        while True:
            block = handle.read(room - len(carry))
            data = carry + block
            if not data:
                return
            if not block:  # the end of the file
                yield header + data
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                raise ValueError("a single CSV row is larger than the upload size")
            yield header + data[:cut]
            carry = data[cut:]


# -- Bulk API 2.0 jobs ---------------------------------------------------------------------------------------


def _client(server: LiveServer, token: str) -> httpx.Client:
    verify = ssl.create_default_context(cafile=server.ca_bundle)
    return httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=verify, timeout=600.0,
                        headers={"Authorization": f"Bearer {token}"})


def _checked(response: httpx.Response, expect: int = 200) -> httpx.Response:
    if response.status_code != expect:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: expected {expect}, got "
                           f"{response.status_code}: {response.text[:500]}")
    return response


def wait_for_job(client: httpx.Client, path: str, *, poll: float = POLL_SECONDS) -> dict[str, Any]:
    """``GET`` the job until it is finished; returns its info (raises when it did not complete)."""
    while True:
        info = _checked(client.get(path)).json()
        state = info.get("state")
        if state == "JobComplete":
            return info
        if state in ("Failed", "Aborted"):
            raise RuntimeError(f"job {info.get('id')} ended {state}: {info.get('errorMessage')}")
        time.sleep(poll)


def run_ingest_job(client: httpx.Client, target: str, csv_path: Path, rows: int, operation: str, *,
                   upload_bytes: int, server_pid: int | None = None) -> JobResult:
    """Create an Account ingest job, upload ``csv_path`` in pieces, close it and wait for ``JobComplete``."""
    spec: dict[str, Any] = {"object": "Account", "operation": operation, "lineEnding": "LF"}
    if operation == "upsert":
        spec["externalIdFieldName"] = EXTERNAL_ID
    job_id = _checked(client.post(INGEST_PATH, json=spec)).json()["id"]
    job_path = f"{INGEST_PATH}/{job_id}"
    cpu_before = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    pieces = sent = 0
    started = time.perf_counter()
    for piece in csv_pieces(csv_path, upload_bytes):
        _checked(client.put(f"{job_path}/batches", content=piece, headers={"Content-Type": "text/csv"}), 201)
        pieces += 1
        sent += len(piece)
    uploaded = time.perf_counter()
    _checked(client.patch(job_path, json={"state": "UploadComplete"}))
    info = wait_for_job(client, job_path)
    done = time.perf_counter()
    cpu_after = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    elapsed = done - started
    result = JobResult(target=target, rows=rows, seconds=elapsed, rows_per_second=rows / elapsed if elapsed else 0.0,
                       upload_s=uploaded - started, processing_s=done - uploaded,
                       processed=int(info.get("numberRecordsProcessed", 0)),
                       failed=int(info.get("numberRecordsFailed", 0)), pieces=pieces, bytes=sent)
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu_s = cpu_after - cpu_before
        result.server_busy = result.server_cpu_s / elapsed if elapsed else None
    if result.processed != rows:
        result.notes.append(f"{target}: the server processed {result.processed} of {rows} rows")
    if result.failed:
        failures = client.get(f"{job_path}/failedResults").text.splitlines()[1:3]
        result.notes.append(f"{target}: {result.failed} rows failed, e.g. {failures}")
    return result


def run_query_job(client: httpx.Client, soql: str, out_path: Path, *, page_size: int,
                  server_pid: int | None = None) -> JobResult:
    """Create a query job, wait for ``JobComplete``, stream every result page to ``out_path``."""
    cpu_before = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    started = time.perf_counter()
    job_id = _checked(client.post(QUERY_PATH, json={"operation": "query", "query": soql})).json()["id"]
    job_path = f"{QUERY_PATH}/{job_id}"
    info = wait_for_job(client, job_path)
    completed = time.perf_counter()
    rows = pages = size = 0
    locator: str | None = None
    with out_path.open("wb") as out:
        while True:
            params: dict[str, Any] = {"maxRecords": page_size}
            if locator:
                params["locator"] = locator
            with client.stream("GET", f"{job_path}/results", params=params) as response:
                if response.status_code != 200:
                    response.read()
                    _checked(response)
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    size += len(chunk)
                rows += int(response.headers["Sforce-NumberOfRecords"])
                locator = response.headers.get("Sforce-Locator")
            pages += 1
            if not locator or locator == "null":
                break
    done = time.perf_counter()
    cpu_after = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    elapsed = done - started
    result = JobResult(target="query", rows=rows, seconds=elapsed, rows_per_second=rows / elapsed if elapsed else 0.0,
                       processing_s=completed - started, download_s=done - completed,
                       processed=int(info.get("numberRecordsProcessed", 0)), pieces=pages, bytes=size)
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu_s = cpu_after - cpu_before
        result.server_busy = result.server_cpu_s / elapsed if elapsed else None
    return result


def count_accounts(client: httpx.Client) -> int:
    response = _checked(client.get(f"{BASE}/query", params={"q": "SELECT COUNT() FROM Account"}))
    return int(response.json()["totalSize"])


def write_project(data_dir: Path, *, cdc: bool) -> None:
    """The server's project (its data directory): Account's external id, and CDC for Account when asked."""
    objects = data_dir / "metadata" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    (objects / "Account.yaml").write_text(ACCOUNT_YAML)
    if cdc:
        channels = data_dir / "metadata" / "channels"
        channels.mkdir(parents=True, exist_ok=True)
        (channels / "ChangeEvents.yaml").write_text(CDC_CHANNEL_YAML)


def bus_events(data_dir: Path) -> dict[str, int]:
    """Events per topic in the server's embedded bus (``bus.db``), read-only."""
    path = data_dir / "bus.db"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT topic, COUNT(*) FROM events GROUP BY topic").fetchall())
    finally:
        conn.close()


# -- the baseline ---------------------------------------------------------------------------------------------


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def baseline_connection(db_path: Path) -> sqlite3.Connection:
    """A fresh SQLite file with the store's pragmas and an ``Account`` table of the CSV's columns plus ``Id``."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # the embedded store's pragmas
    types = {"AnnualRevenue": "NUMERIC"}
    columns = ", ".join(f'"{name}" {types.get(name, "TEXT")}' for name in COLUMNS)
    conn.execute(f'CREATE TABLE "Account" ("Id" TEXT PRIMARY KEY, {columns})')
    return conn


def _load(conn: sqlite3.Connection, csv_path: Path, statement: str, first_id: int) -> int:
    """Parse ``csv_path`` with ``csv.reader`` and run ``statement`` per 10,000 rows with ``executemany``."""
    loaded = 0
    counter = itertools.count(first_id)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)  # the header
        while True:
            batch = [(f"001{next(counter):015d}", *values) for values in itertools.islice(reader, BATCH_ROWS)]
            if not batch:
                return loaded
            conn.execute("BEGIN")
            conn.executemany(statement, batch)
            conn.execute("COMMIT")
            loaded += len(batch)


def baseline_insert(conn: sqlite3.Connection, csv_path: Path) -> BaselineResult:
    statement = f'INSERT INTO "Account" ("Id", {_quoted(COLUMNS)}) VALUES ({", ".join("?" * (len(COLUMNS) + 1))})'
    started = time.perf_counter()
    rows = _load(conn, csv_path, statement, 0)
    elapsed = time.perf_counter() - started
    return BaselineResult("csv + executemany insert", rows, elapsed, rows / elapsed if elapsed else 0.0)


def baseline_query(conn: sqlite3.Connection, out_path: Path) -> BaselineResult:
    started = time.perf_counter()
    rows = 0
    with out_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)  # quoted, as Bulk results are
        writer.writerow(COLUMNS)
        cursor = conn.execute(f'SELECT {_quoted(COLUMNS)} FROM "Account"')
        while True:
            chunk = cursor.fetchmany(BATCH_ROWS)
            if not chunk:
                break
            writer.writerows(chunk)
            rows += len(chunk)
    elapsed = time.perf_counter() - started
    return BaselineResult("SELECT + csv.writer", rows, elapsed, rows / elapsed if elapsed else 0.0)


def baseline_upsert(conn: sqlite3.Connection, csv_path: Path, first_id: int) -> BaselineResult:
    conn.execute(f'CREATE UNIQUE INDEX "Account_ext" ON "Account" ("{EXTERNAL_ID}")')  # not timed
    updates = ", ".join(f'"{name}" = excluded."{name}"' for name in COLUMNS if name != EXTERNAL_ID)
    statement = (f'INSERT INTO "Account" ("Id", {_quoted(COLUMNS)}) VALUES ({", ".join("?" * (len(COLUMNS) + 1))}) '
                 f'ON CONFLICT ("{EXTERNAL_ID}") DO UPDATE SET {updates}')
    started = time.perf_counter()
    rows = _load(conn, csv_path, statement, first_id)
    elapsed = time.perf_counter() - started
    return BaselineResult("csv + executemany upsert", rows, elapsed, rows / elapsed if elapsed else 0.0)


# -- the run ----------------------------------------------------------------------------------------------------


def run_benchmark(*, rows: int = FULL_ROWS, upload_mb: int = UPLOAD_MB, page_size: int = PAGE_SIZE,
                  cdc: bool = True, log: TextIO | None = None) -> BulkReport:
    """Measure the Bulk jobs, the CDC insert and the baseline in one run and return the results."""
    if rows < 2:
        raise ValueError("--rows must be at least 2")

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    run_started = time.perf_counter()
    env = {"INTERLINK_LOG_LEVEL": "warning"}
    upload_bytes = upload_mb * 1024 * 1024
    soql = f"SELECT {', '.join(COLUMNS)} FROM Account"
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="interlink-bench-bulk-") as tmp:
        workdir = Path(tmp)
        insert_csv, upsert_csv = workdir / "insert.csv", workdir / "upsert.csv"
        half = rows // 2
        say(f"writing {rows:,} rows to {insert_csv.name} and {upsert_csv.name} ...")
        csv_bytes = write_csv(insert_csv, range(rows))
        upsert_bytes = write_csv(upsert_csv, range(half, half + rows), upserted=True)

        org_dir = workdir / "org"
        write_project(org_dir, cdc=False)
        say(f"starting interlink up in {org_dir} ...")
        with live_server(org_dir, env=env) as server:
            pid = server.process.pid
            with _client(server, server.token()) as client:
                say(f"insert job: {rows:,} rows, {csv_bytes / 1e6:.1f} MB in uploads of <= {upload_mb} MB ...")
                insert = run_ingest_job(client, "insert", insert_csv, rows, "insert", upload_bytes=upload_bytes,
                                        server_pid=pid)
                say(f"  {insert.rows_per_second:,.0f} rows/s ({insert.seconds:.1f}s)")
                say(f"query job: {soql} (maxRecords={page_size:,}) ...")
                query = run_query_job(client, soql, workdir / "query-results.csv", page_size=page_size,
                                      server_pid=pid)
                say(f"  {query.rows_per_second:,.0f} rows/s ({query.seconds:.1f}s)")
                if query.rows != rows:
                    notes.append(f"the query job returned {query.rows} rows, not {rows}")
                say(f"upsert job on {EXTERNAL_ID}: {rows:,} rows, {rows - half:,} existing keys, {half:,} new ...")
                upsert = run_ingest_job(client, "upsert", upsert_csv, rows, "upsert", upload_bytes=upload_bytes,
                                        server_pid=pid)
                say(f"  {upsert.rows_per_second:,.0f} rows/s ({upsert.seconds:.1f}s)")
                total = count_accounts(client)
                if total != rows + half:
                    notes.append(f"after the upsert there are {total} Accounts, not {rows + half}")
            notes += insert.notes + query.notes + upsert.notes
        cdc_insert: JobResult | None = None
        if cdc:
            cdc_dir = workdir / "org-cdc"
            write_project(cdc_dir, cdc=True)
            say(f"starting interlink up with CDC on Account in {cdc_dir} ...")
            with live_server(cdc_dir, env=env) as server:
                with _client(server, server.token()) as client:
                    say(f"insert job with CDC: {rows:,} rows ...")
                    cdc_insert = run_ingest_job(client, "insert (CDC on)", insert_csv, rows, "insert",
                                                upload_bytes=upload_bytes, server_pid=server.process.pid)
                    say(f"  {cdc_insert.rows_per_second:,.0f} rows/s ({cdc_insert.seconds:.1f}s)")
                notes += cdc_insert.notes
            events = bus_events(cdc_dir)
            changes = sum(count for topic, count in events.items() if topic.startswith("/data/"))
            topics = ", ".join(f"{topic} {count:,}" for topic, count in sorted(events.items()))
            cdc_insert.notes.append(f"{changes:,} change events on the bus ({topics or 'none'})")
            if changes < rows:
                notes.append(f"CDC on: only {changes} change events for {rows} inserted rows")

        say("baseline: csv.reader + sqlite3 executemany ...")
        conn = baseline_connection(workdir / "baseline.sqlite3")
        try:
            base_insert = baseline_insert(conn, insert_csv)
            base_query = baseline_query(conn, workdir / "baseline-results.csv")
            base_upsert = baseline_upsert(conn, upsert_csv, rows)
        finally:
            conn.close()
    return BulkReport(rows=rows, csv_bytes=csv_bytes, upsert_csv_bytes=upsert_bytes, upload_mb=upload_mb,
                      page_size=page_size, insert=insert, query=query, upsert=upsert, cdc_insert=cdc_insert,
                      baseline_insert=base_insert, baseline_query=base_query, baseline_upsert=base_upsert,
                      wall_s=time.perf_counter() - run_started, notes=notes)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: BulkReport) -> str:
    """The human-readable table."""
    lines = [
        f"Bulk API 2.0, {report.rows:,} Account rows ({len(COLUMNS)} columns, {report.csv_bytes / 1e6:.1f} MB of "
        f"CSV in {report.insert.pieces} upload(s) of <= {report.upload_mb} MB, {report.query.pieces} result page(s) "
        f"of <= {report.page_size:,}); interlink up over TLS (embedded SQLite) against csv + sqlite3",
        "",
        f"{'measurement':<17} {'rows/s':>9} {'seconds':>8} {'upload s':>9} {'process s':>10} {'download s':>11} "
        f"{'failed':>7} {'server CPU s':>13} {'busy':>6}   {'baseline':<26} {'rows/s':>9} {'ratio':>7}",
    ]
    measured: list[tuple[JobResult, BaselineResult, float]] = [
        (report.insert, report.baseline_insert, report.insert_ratio),
        (report.upsert, report.baseline_upsert, report.upsert_ratio),
        (report.query, report.baseline_query, report.query_ratio),
    ]
    if report.cdc_insert is not None:
        measured.append((report.cdc_insert, report.baseline_insert,
                     report._ratio(report.cdc_insert.rows_per_second, report.baseline_insert.rows_per_second)))
    for job, base, ratio in measured:
        lines.append(
            f"{job.target:<17} {job.rows_per_second:>9,.0f} {job.seconds:>8.1f} {_num(job.upload_s, '.1f'):>9} "
            f"{_num(job.processing_s, '.1f'):>10} {_num(job.download_s, '.1f'):>11} {job.failed:>7} "
            f"{_num(job.server_cpu_s, '.1f'):>13} {_num(job.server_busy, '.0%'):>6}   {base.target:<26} "
            f"{base.rows_per_second:>9,.0f} {ratio:>7.3f}")
    lines += [
        "",
        "insert/upsert: first upload to JobComplete; query: job create to the last byte of the last page.",
        f"baseline: the same CSV bytes through csv.reader and sqlite3 executemany, one commit per {BATCH_ROWS:,} "
        "rows (WAL, synchronous=NORMAL); the query baseline is SELECT + csv.writer to a file.",
    ]
    if report.cdc_ratio is not None and report.cdc_insert is not None:
        lines.append(f"CDC cost: insert with CDC on / CDC off = {report.cdc_ratio:.3f} "
                     f"({report.cdc_insert.rows_per_second:,.0f} vs {report.insert.rows_per_second:,.0f} rows/s)")
        lines += [f"note: {note}" for note in report.cdc_insert.notes if "change events" in note]
    lines.append(f"goal insert (CDC off) / baseline >= {INGEST_GOAL}: {'met' if report.goal_met else 'NOT met'} "
                 f"({report.insert_ratio:.3f})")
    lines += [f"warning: {note}" for note in report.notes]
    lines.append(f"whole run: {report.wall_s:.0f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bulk API 2.0 insert, upsert and query jobs through a live "
                                                 "interlink up, against csv + sqlite3 executemany.")
    parser.add_argument("--rows", type=int, default=None, help=f"rows per job (default {FULL_ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows (unless --rows is given)")
    parser.add_argument("--upload-mb", type=int, default=UPLOAD_MB, help=f"largest upload in MB ({UPLOAD_MB})")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE,
                        help=f"maxRecords per query result page ({PAGE_SIZE:,})")
    parser.add_argument("--no-cdc", dest="cdc", action="store_false", help="skip the insert with CDC on")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    rows = args.rows if args.rows is not None else QUICK_ROWS if args.quick else FULL_ROWS
    report = run_benchmark(rows=rows, upload_mb=args.upload_mb, page_size=args.page_size, cdc=args.cdc,
                           log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
