"""Benchmark: records/second inserted through sObject Collections, single-record POSTs and raw SQLite executemany.

Run ``python bench/collections_insert.py`` (named so, not ``collections.py``, because a script directory's
``collections.py`` would shadow the standard library's ``collections``) or
``make bench``. In one run, against one real ``interlink up`` (one process, TLS, embedded SQLite store) started in a
temporary data directory with :func:`interlink.testing.live_server`:

1. **collections**: ``POST /services/data/v66.0/composite/sobjects`` with 200 Accounts per call
   (``allOrNone: false``), from a few concurrent workers sharing one keep-alive httpx client;
2. **single**: ``POST /services/data/v66.0/sobjects/Account/`` with one Account per call, same workers, same
   client;
3. **executemany**: the floor. Python's ``sqlite3`` inserts the same rows (every column of the Account table,
   values copied from a row Interlink itself stored, fresh ids) with ``executemany``, 200 rows per transaction,
   into a scratch SQLite file whose ``Account`` table and indexes are created from the live org's own DDL
   (``sqlite_master``), with the store's pragmas (WAL, ``synchronous=NORMAL``).

Each HTTP target gets a warm-up (result thrown away), then a measured window; executemany runs for the same
window. The script prints records/second for each and the ratios collections/single and
collections/executemany, with the server's CPU time per record (``/proc``, Linux) beside the HTTP numbers.

Every Account is the realistic ``SAMPLE_ACCOUNT`` of ``bench/rest_get.py`` (13 populated fields), whose load
helpers (CPU accounting, percentiles) this script imports.

Flags: ``--duration`` (measured seconds per target), ``--warmup``, ``--workers``, ``--batch`` (records per
collections call, at most 200), ``--json``. The default run takes about 25 seconds.

Importable: :func:`run_benchmark` returns a :class:`CollectionsReport`; :func:`http_insert_load` and
:func:`executemany_load` can be used on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sqlite3
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from interlink.ids import IdGenerator
from interlink.testing import API_VERSION, live_server

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/collections_insert.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: the sample Account, CPU accounting, percentiles)

BASE = f"/services/data/v{API_VERSION}"
COLLECTIONS_PATH = f"{BASE}/composite/sobjects"
SINGLE_PATH = f"{BASE}/sobjects/Account/"
MAX_BATCH = 200


@dataclass
class InsertResult:
    """One measured window of inserts against one target."""

    target: str
    records: int
    requests: int
    seconds: float
    records_per_second: float
    p50_ms: float | None = None  # per request (a collections request carries a whole batch)
    p99_ms: float | None = None
    errors: int = 0
    server_cpu_us_per_record: float | None = None
    server_busy: float | None = None


@dataclass
class CollectionsReport:
    """Everything one run measured."""

    batch: int
    workers: int
    duration_s: float
    warmup_s: float
    collections: InsertResult
    single: InsertResult
    executemany: InsertResult
    columns: int

    @property
    def collections_vs_single(self) -> float:
        base = self.single.records_per_second
        return self.collections.records_per_second / base if base else 0.0

    @property
    def collections_vs_executemany(self) -> float:
        base = self.executemany.records_per_second
        return self.collections.records_per_second / base if base else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """Server CPU per record of single POSTs / of collections: the gap with the load generator taken out."""
        mine, single = self.collections.server_cpu_us_per_record, self.single.server_cpu_us_per_record
        return single / mine if mine and single else None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["collections_vs_single"] = round(self.collections_vs_single, 4)
        data["cpu_ratio"] = None if self.cpu_ratio is None else round(self.cpu_ratio, 4)
        data["collections_vs_executemany"] = round(self.collections_vs_executemany, 4)
        return data


# -- HTTP load ---------------------------------------------------------------------------------------------------


def collections_body(batch: int) -> bytes:
    """One ``POST /composite/sobjects`` body: ``batch`` sample Accounts, ``allOrNone: false``."""
    record = {"attributes": {"type": "Account"}, **rest_get.SAMPLE_ACCOUNT}
    return orjson.dumps({"allOrNone": False, "records": [record] * batch})


async def _insert_load(url: str, body: bytes, token: str, verify: ssl.SSLContext, workers: int, duration: float,
                       per_request: int, expect: int) -> tuple[int, int, int, float, list[float]]:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    inserted = 0
    errors = 0
    async with httpx.AsyncClient(verify=verify, http2=False, limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal inserted, errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code != expect:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - sent) * 1000.0)
                # Count what the server says it saved (cheaper than parsing 200 results per call).
                saved = response.content.count(b'"success":true') if per_request > 1 else 1
                inserted += saved
                errors += per_request - saved

        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return inserted, len(latencies), errors, elapsed, latencies


def http_insert_load(target: str, url: str, body: bytes, token: str, *, verify: ssl.SSLContext, workers: int,
                     duration: float, per_request: int, expect: int, server_pid: int | None = None) -> InsertResult:
    """POST ``body`` to ``url`` from ``workers`` concurrent keep-alive workers for ``duration`` seconds."""
    cpu_before = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    inserted, requests, errors, elapsed, latencies = asyncio.run(
        _insert_load(url, body, token, verify, workers, duration, per_request, expect))
    cpu_after = rest_get.process_cpu_seconds(server_pid) if server_pid else None
    latencies.sort()
    result = InsertResult(target=target, records=inserted, requests=requests, seconds=elapsed,
                          records_per_second=inserted / elapsed if elapsed else 0.0,
                          p50_ms=rest_get._percentile(latencies, 0.50), p99_ms=rest_get._percentile(latencies, 0.99),
                          errors=errors)
    if cpu_before is not None and cpu_after is not None and inserted:
        result.server_cpu_us_per_record = (cpu_after - cpu_before) / inserted * 1e6
        result.server_busy = (cpu_after - cpu_before) / elapsed if elapsed else None
    return result


# -- the SQLite floor --------------------------------------------------------------------------------------------


def account_schema(org_db: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    """The live org's Account DDL (table and indexes), its columns, and one stored row to copy values from."""
    conn = sqlite3.connect(f"file:{org_db}?mode=ro", uri=True)
    try:
        ddl = [row[0] for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'Account' AND sql IS NOT NULL "
            "ORDER BY type = 'index', name")]
        columns = [row[1] for row in conn.execute('PRAGMA table_info("Account")')]
        cursor = conn.execute('SELECT * FROM "Account" WHERE "Name" = ? LIMIT 1', (rest_get.SAMPLE_ACCOUNT["Name"],))
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError("no benchmark Account found in the org to copy")
        return ddl, columns, dict(zip(columns, row, strict=True))
    finally:
        conn.close()


def executemany_load(db_path: Path, ddl: list[str], columns: list[str], template: dict[str, Any], *,
                     batch: int, duration: float) -> InsertResult:
    """Insert ``batch`` rows per transaction with ``executemany`` for ``duration`` seconds (at least once)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # the store's own pragmas
        for statement in ddl:
            conn.execute(statement)
        quoted = ", ".join(f'"{c}"' for c in columns)
        insert = f'INSERT INTO "Account" ({quoted}) VALUES ({", ".join("?" for _ in columns)})'
        id_position = columns.index("Id")
        values = [template[c] for c in columns]
        generator = IdGenerator()
        latencies: list[float] = []
        inserted = 0
        start = time.perf_counter()
        deadline = start + duration
        while True:
            sent = time.perf_counter()
            rows = []
            for _ in range(batch):  # fresh ids, as the server generates them per record
                row = list(values)
                row[id_position] = generator.new("001")
                rows.append(row)
            conn.execute("BEGIN")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            inserted += batch
            latencies.append((time.perf_counter() - sent) * 1000.0)
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    latencies.sort()
    return InsertResult(target="executemany", records=inserted, requests=len(latencies), seconds=elapsed,
                        records_per_second=inserted / elapsed if elapsed else 0.0,
                        p50_ms=rest_get._percentile(latencies, 0.50), p99_ms=rest_get._percentile(latencies, 0.99))


# -- the run -----------------------------------------------------------------------------------------------------


def run_benchmark(*, duration: float = 5.0, warmup: float = 1.0, workers: int = 4, batch: int = MAX_BATCH,
                  log: TextIO | None = None) -> CollectionsReport:
    """Measure the three insert paths in one run and return the results."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"--batch must be between 1 and {MAX_BATCH}")

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    with tempfile.TemporaryDirectory(prefix="interlink-bench-collections-") as tmp:
        workdir = Path(tmp)
        say(f"starting interlink up in {workdir / 'org'} ...")
        with live_server(workdir / "org") as server:
            token = server.token()
            verify = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "ca.pem"))
            base = f"https://127.0.0.1:{server.port}"
            many = collections_body(batch)
            one = orjson.dumps(rest_get.SAMPLE_ACCOUNT)
            with httpx.Client(verify=verify, timeout=30.0, headers={"Authorization": f"Bearer {token}"}) as client:
                check = client.post(base + COLLECTIONS_PATH, content=many,
                                    headers={"Content-Type": "application/json"})
                check.raise_for_status()
                if not all(item["success"] for item in check.json()):
                    raise RuntimeError(f"the collections request failed: {check.text[:500]}")
            targets = (("collections", COLLECTIONS_PATH, many, batch, 200),
                       ("single", SINGLE_PATH, one, 1, 201))
            results: dict[str, InsertResult] = {}
            for target, path, body, per_request, expect in targets:
                say(f"{target}: {workers} workers, {warmup:g}s warm-up + {duration:g}s ...")
                if warmup > 0:
                    http_insert_load(target, base + path, body, token, verify=verify, workers=workers,
                                     duration=warmup, per_request=per_request, expect=expect)
                results[target] = http_insert_load(target, base + path, body, token, verify=verify,
                                                   workers=workers, duration=duration, per_request=per_request,
                                                   expect=expect, server_pid=server.process.pid)
            ddl, columns, template = account_schema(server.data_dir / "org.db")
        say(f"executemany: {batch} rows per transaction, {duration:g}s ...")
        floor = executemany_load(workdir / "scratch.sqlite3", ddl, columns, template, batch=batch,
                                 duration=duration)
    return CollectionsReport(batch=batch, workers=workers, duration_s=duration, warmup_s=warmup,
                             collections=results["collections"], single=results["single"], executemany=floor,
                             columns=len(columns))


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: CollectionsReport) -> str:
    """The human-readable table."""
    lines = [
        f"Account inserts: {report.batch} records per collections call and executemany transaction, "
        f"{report.workers} keep-alive TLS workers (httpx), {report.warmup_s:g}s warm-up + {report.duration_s:g}s "
        f"measured; {report.columns} columns per row",
        "",
        f"{'target':<12} {'records/s':>10} {'records':>8} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'server CPU us/record':>21} {'server busy':>12}",
    ]
    for result in (report.collections, report.single, report.executemany):
        lines.append(
            f"{result.target:<12} {result.records_per_second:>10.1f} {result.records:>8} {result.requests:>6} "
            f"{_num(result.p50_ms, '.2f'):>8} {_num(result.p99_ms, '.2f'):>8} {result.errors:>7} "
            f"{_num(result.server_cpu_us_per_record, '.0f'):>21} {_num(result.server_busy, '.0%'):>12}")
    lines += [
        "",
        f"collections / single POSTs:    {report.collections_vs_single:.2f}x records/s"
        + ("" if report.cpu_ratio is None else f"   ({report.cpu_ratio:.2f}x less server CPU per record)"),
        f"collections / executemany:     {report.collections_vs_executemany:.3f}  "
        f"(executemany is {1 / report.collections_vs_executemany if report.collections_vs_executemany else 0:.1f}x "
        "faster: the floor of writing the rows, no HTTP, JSON, validation or hooks)",
    ]
    busy = report.single.server_busy
    if busy is not None and busy < rest_get.SATURATED:
        lines.append(f"note: the server was busy {busy:.0%} of the time during single POSTs, so the load generator "
                     "limited them; the CPU-per-record ratio is the steadier comparison")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Insert throughput: sObject Collections vs single-record POSTs vs "
                                                 "raw SQLite executemany.")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per target (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per HTTP target (default 1)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent keep-alive HTTP workers (default 4)")
    parser.add_argument("--batch", type=int, default=MAX_BATCH,
                        help="records per collections call and per executemany transaction (default 200)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    report = run_benchmark(duration=args.duration, warmup=args.warmup, workers=max(1, args.workers),
                           batch=args.batch, log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
