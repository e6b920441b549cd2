"""Benchmark: the SOQL engine against hand-written SQL on a large data set, and REST query against GET-by-id.

Run ``python bench/soql.py`` (1,000,000 Accounts and 3,000,000 Contacts) or ``python bench/soql.py --quick``
(50,000 and 150,000; what ``make bench`` runs). In one run, on one database:

1. **Fixture.** An org is created with :func:`interlink.testing.local_org` in a temporary data directory (or
   ``--reuse DIR``, kept between runs). Its project adds an external-id field ``Account.Code__c`` (text, indexed
   as ``lower(Code__c)``). The Accounts and Contacts are then written **straight into the object tables** with
   SQLAlchemy Core ``executemany``, 50,000 rows per commit, and ``ANALYZE`` runs. This deliberately bypasses the
   records write path (validation, hooks, the SOSL index) because pushing millions of rows through it would take
   far too long for a fixture; every system field the write path fills is filled the same way (18-character ids,
   ``IsDeleted``, created/modified dates and users, ``OwnerId``, field defaults, Contact ``Name``). Only reads are
   measured.

2. **Engine vs hand-written SQL.** Each query runs through ``org.query.execute(...)`` (parse + compile, cached
   after the first call, + execute + the REST record shape) and, beside it, as hand-written SQL (``text()``)
   through the same SQLAlchemy engine, rows fetched into Python tuples and nothing more. Both take a pooled
   connection per call, as a request would. The two are interleaved, many iterations each; the table shows the
   median and p90 and the ratio engine/hand (goal: <= 1.5). The first call (parse + compile + execute) and a
   cold call (plan cache cleared: parse + compile again) are reported apart from the warm calls.

   * selective indexed lookup: ``SELECT Id, Name, Industry FROM Account WHERE Code__c = 'A-123456'``
   * parent join: ``SELECT Id, Name, Account.Name, Account.Industry FROM Contact WHERE Account.Code__c = ...``
   * child subquery: ``SELECT Id, Name, (SELECT Id, Name FROM Contacts) FROM Account WHERE Code__c IN (10 codes)``
   * aggregate: ``SELECT Industry, COUNT(Id), SUM(AnnualRevenue) FROM Account GROUP BY Industry``

3. **REST.** ``interlink up`` (one process, TLS) is started on the same data directory with
   :func:`interlink.testing.live_server`, and ``GET /services/data/v66.0/query?q=<the indexed lookup>`` is
   compared with ``GET /services/data/v66.0/sobjects/Account/{id}`` for the same record, with the load generator
   and settings of ``bench/rest_get.py`` (``wrk``, one thread, 16 keep-alive connections). Goal: query
   requests/s >= 0.7 x GET-by-id requests/s (a repeated query must not pay for parsing again).

Importable: :func:`run_benchmark` returns a :class:`SoqlReport`; :func:`prepare_data_dir`, :func:`load_data`,
:func:`bench_queries` and :func:`measure_http` can be used on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

import httpx
from sqlalchemy import bindparam, func, text
from sqlalchemy.sql.elements import TextClause

from interlink.ids import IdGenerator
from interlink.records import prepare
from interlink.soql import parser as soql_parser
from interlink.store.database import utcnow
from interlink.testing import API_VERSION, live_server, local_org

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # ``python bench/soql.py`` has it already; an importer may not
    sys.path.insert(0, str(BENCH_DIR))

import rest_get  # noqa: E402  (bench/rest_get.py: load generators, CPU accounting)

if TYPE_CHECKING:
    from interlink.app.org import Org

ENGINE_GOAL = 1.5  # engine median time / hand-written SQL median time
RPS_GOAL = 0.7  # query requests/s / GET-by-id requests/s
FULL_ACCOUNTS = 1_000_000
QUICK_ACCOUNTS = 50_000
CONTACTS_PER_ACCOUNT = 3
CHUNK = 50_000  # rows per commit while loading
MARKER = "bench-soql.json"  # in a --reuse directory: what was loaded, and whether loading finished
QUERY_PATH = f"/services/data/v{API_VERSION}/query?q={{q}}"

ACCOUNT_YAML = """\
# bench/soql.py: an external-id field, so Accounts have an indexed lookup key.
fields: [{name: Code__c, type: text, length: 20, externalId: true}]
"""

INDUSTRIES = ("Technology", "Banking", "Manufacturing", "Healthcare", "Retail", "Energy", "Education", "Media")
TYPES = ("Prospect", "Customer - Direct", "Customer - Channel", "Other")
CITIES = ("Paris", "Berlin", "London", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Dublin", "Prague")
WORDS = ("Acme", "Bolt", "Cobalt", "Delta", "Echo", "Fox", "Globe", "Helix", "Iris", "Jade", "Kite", "Lumen")
SUFFIXES = ("Corp", "Industries", "Labs", "Holdings", "Group", "Systems", "Partners")
FIRST_NAMES = ("Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gina", "Hugo", "Ines", "Jon", "Kim", "Lea", "Max", "Nora")
LAST_NAMES = ("Archer", "Baker", "Cole", "Diaz", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jones", "Klein")


def account_code(index: int) -> str:
    """The ``Code__c`` of the ``index``-th Account: ``A-123456`` for 123456."""
    return f"A-{index:06d}"


def lookup_index(accounts: int) -> int:
    """The Account the selective lookups find (``A-123456`` when there are that many)."""
    return 123_456 % accounts


def in_codes(accounts: int, count: int = 10) -> list[str]:
    """``count`` codes spread over the data set, for the child-subquery ``IN``."""
    start = lookup_index(accounts)
    return [account_code((start + k * max(1, accounts // count)) % accounts) for k in range(count)]


# -- results ---------------------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    """How the fixture was made (or that it was reused)."""

    accounts: int
    contacts: int
    reused: bool
    load_seconds: float = 0.0
    analyze_seconds: float = 0.0
    database_bytes: int = 0


@dataclass
class Timing:
    """Wall-clock samples (milliseconds) of one side of one query."""

    samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else 0.0

    @property
    def p90_ms(self) -> float:
        return _quantile(self.samples_ms, 0.9)


@dataclass
class QueryBench:
    """One query: the engine beside the hand-written SQL."""

    name: str
    soql: str
    sql: str
    rows: int  # top-level records the engine returned (the hand SQL returned the same data)
    iterations: int
    engine: Timing
    hand: Timing
    engine_first_ms: float  # the first call: parse + compile + SQL compile + execute + shape
    hand_first_ms: float
    cold: Timing  # plan cache cleared before each call: parse + compile + execute + shape
    parse_ms: float  # parse alone (median)
    compile_ms: float  # parse + compile to SQLAlchemy Core (median), without executing

    @property
    def ratio(self) -> float:
        return self.engine.median_ms / self.hand.median_ms if self.hand.median_ms else 0.0

    @property
    def goal_met(self) -> bool:
        return self.ratio <= ENGINE_GOAL


@dataclass
class HttpBench:
    """REST query vs GET-by-id on a live ``interlink up``."""

    tool: str
    connections: int
    duration_s: float
    warmup_s: float
    query: rest_get.LoadResult
    get_by_id: rest_get.LoadResult
    query_payload_bytes: int
    get_payload_bytes: int
    rounds: list[dict[str, rest_get.LoadResult]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        base = self.get_by_id.requests_per_second
        return self.query.requests_per_second / base if base else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """GET-by-id CPU per request / query CPU per request (the ratio with the machine's noise removed)."""
        mine, base = self.query.server_cpu_us_per_request, self.get_by_id.server_cpu_us_per_request
        return base / mine if mine and base else None

    @property
    def saturated(self) -> bool | None:
        busy = (self.query.server_busy, self.get_by_id.server_busy)
        if None in busy:
            return None
        return all(b is not None and b >= rest_get.SATURATED for b in busy)

    @property
    def goal_ratio(self) -> float:
        if self.saturated is False and self.cpu_ratio is not None:
            return self.cpu_ratio
        return self.ratio

    @property
    def goal_met(self) -> bool:
        return self.goal_ratio >= RPS_GOAL


@dataclass
class SoqlReport:
    """Everything one run measured."""

    backend: str
    data_dir: str | None  # kept only with --reuse
    load: LoadStats
    queries: list[QueryBench]
    http: HttpBench | None = None

    @property
    def goal_met(self) -> bool:
        return all(q.goal_met for q in self.queries) and (self.http is None or self.http.goal_met)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "backend": self.backend,
            "data_dir": self.data_dir,
            "fixture": "loaded with SQLAlchemy Core executemany straight into the object tables, bypassing the "
                       "records write path on purpose, for speed; only reads are measured",
            "load": dataclasses.asdict(self.load),
            "engine_goal_max_ratio": ENGINE_GOAL,
            "queries": [],
            "goal_met": self.goal_met,
        }
        for q in self.queries:
            item = dataclasses.asdict(q)
            for side in ("engine", "hand", "cold"):
                timing: Timing = getattr(q, side)
                item[side] = {"median_ms": round(timing.median_ms, 4), "p90_ms": round(timing.p90_ms, 4),
                              "samples": len(timing.samples_ms)}
            item["ratio"] = round(q.ratio, 4)
            item["goal_met"] = q.goal_met
            data["queries"].append(item)
        if self.http is not None:
            http = dataclasses.asdict(self.http)
            http.update(ratio=round(self.http.ratio, 4),
                        cpu_ratio=None if self.http.cpu_ratio is None else round(self.http.cpu_ratio, 4),
                        saturated=self.http.saturated, goal_ratio=round(self.http.goal_ratio, 4),
                        rps_goal=RPS_GOAL, goal_met=self.http.goal_met)
            data["http"] = http
        return data


def _quantile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


# -- the fixture -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def prepare_data_dir(reuse: Path | None) -> Iterator[Path]:
    """The data directory: ``reuse`` (created if missing, kept afterwards) or a temporary one."""
    if reuse is None:
        with tempfile.TemporaryDirectory(prefix="interlink-bench-soql-") as tmp:
            yield Path(tmp) / "org"
        return
    reuse = reuse.resolve()
    yield reuse


def _marker(data_dir: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((data_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _check_reusable(data_dir: Path, accounts: int, contacts_per_account: int) -> bool:
    """True when ``data_dir`` holds a finished load of this size; wipes a bench directory that does not."""
    marker = _marker(data_dir)
    if marker is not None:
        if (marker.get("complete") and marker.get("accounts") == accounts
                and marker.get("contacts_per_account") == contacts_per_account):
            return True
        shutil.rmtree(data_dir)  # an earlier bench directory of another size, or an interrupted load
        return False
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RuntimeError(f"{data_dir} is not empty and was not made by bench/soql.py; pass an empty or new "
                           "directory to --reuse")
    return False


def _write_marker(data_dir: Path, accounts: int, contacts_per_account: int, *, complete: bool) -> None:
    (data_dir / MARKER).write_text(json.dumps({"accounts": accounts, "contacts_per_account": contacts_per_account,
                                               "complete": complete}))


def write_project(data_dir: Path) -> None:
    """The org project (in the data directory, which ``interlink up`` also uses as its project)."""
    objects = data_dir / "metadata" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    (objects / "Account.yaml").write_text(ACCOUNT_YAML)


def load_data(org: Org, accounts: int, contacts_per_account: int, *, chunk: int = CHUNK,
              progress: bool = True) -> float:
    """Insert ``accounts`` Accounts and ``contacts_per_account`` Contacts each, straight into the tables.

    Bypasses the records write path on purpose (see the module docstring); fills what it would fill. Commits
    every ``chunk`` rows. Returns the seconds it took.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    store = org.store
    admin_id = org.admin_context().user_id
    account_obj = store.schema.object("Account")
    contact_obj = store.schema.object("Contact")
    assert account_obj is not None and contact_obj is not None
    account_table, contact_table = store.table("Account"), store.table("Contact")
    account_defaults: dict[str, Any] = {}
    contact_defaults: dict[str, Any] = {}
    prepare.apply_defaults(account_obj, account_defaults, admin_id)  # OwnerId, IsDeleted, field defaults
    prepare.apply_defaults(contact_obj, contact_defaults, admin_id)
    ids = IdGenerator()
    rng = random.Random(20240601)
    account_prefix, contact_prefix = account_obj.key_prefix, contact_obj.key_prefix
    total_contacts = accounts * contacts_per_account
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  disable=not progress, transient=False) as bar:
        account_task = bar.add_task("Accounts", total=accounts, rate="")
        contact_task = bar.add_task("Contacts", total=total_contacts, rate="")
        for start in range(0, accounts, chunk):
            stop = min(accounts, start + chunk)
            now = utcnow()
            system = {"CreatedDate": now, "CreatedById": admin_id, "LastModifiedDate": now,
                      "LastModifiedById": admin_id, "SystemModstamp": now}
            account_rows: list[dict[str, Any]] = []
            for index in range(start, stop):
                account_rows.append({
                    **account_defaults, **system,
                    "Id": ids.new(account_prefix),
                    "Name": f"{WORDS[index % len(WORDS)]} {SUFFIXES[index % len(SUFFIXES)]} {index}",
                    "Code__c": account_code(index),
                    "Industry": INDUSTRIES[rng.randrange(len(INDUSTRIES))],
                    "AnnualRevenue": float(rng.randrange(10_000, 50_000_000, 1_000)),
                    "NumberOfEmployees": rng.randrange(1, 20_000),
                    "Type": TYPES[index % len(TYPES)],
                    "BillingCity": CITIES[index % len(CITIES)],
                    "Phone": f"+1 415 555 {index % 10_000:04d}",
                })
            with store.write() as conn:
                conn.execute(account_table.insert(), account_rows)
            bar.update(account_task, advance=len(account_rows))
            contact_rows: list[dict[str, Any]] = []
            for account in account_rows:
                for _ in range(contacts_per_account):
                    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                    contact_rows.append({
                        **contact_defaults, **system,
                        "Id": ids.new(contact_prefix),
                        "AccountId": account["Id"],
                        "FirstName": first,
                        "LastName": last,
                        "Name": f"{first} {last}",  # the compound name the write path computes
                        "Email": f"{first.lower()}.{last.lower()}@example.com",
                        "Title": "Buyer",
                    })
                    if len(contact_rows) >= chunk:
                        with store.write() as conn:
                            conn.execute(contact_table.insert(), contact_rows)
                        bar.update(contact_task, advance=len(contact_rows))
                        contact_rows = []
            if contact_rows:
                with store.write() as conn:
                    conn.execute(contact_table.insert(), contact_rows)
                bar.update(contact_task, advance=len(contact_rows))
            rate = f"{stop * (1 + contacts_per_account) / (time.perf_counter() - started):,.0f} rows/s overall"
            bar.update(account_task, rate=rate)
            bar.update(contact_task, rate=rate)
    return time.perf_counter() - started


def analyze(org: Org) -> float:
    """``ANALYZE`` (planner statistics), then checkpoint the WAL into the database file. Returns seconds."""
    started = time.perf_counter()
    with org.store.write() as conn:
        conn.exec_driver_sql("ANALYZE")
    if org.store.backend == "sqlite":
        with org.store.read_engine.connect() as conn:  # autocommit: a checkpoint cannot run in a transaction
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def _database_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("org.db*") if p.is_file())


# -- engine vs hand-written SQL -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySpec:
    """One benchmark query: the SOQL, the hand-written SQL and its parameters, and how to compare results."""

    name: str
    soql: str
    sql: TextClause
    params: dict[str, Any]
    engine_key: Callable[[list[dict[str, Any]]], Any]
    hand_key: Callable[[Sequence[Any]], Any]


def query_specs(accounts: int) -> list[QuerySpec]:
    """The four queries, for a data set of ``accounts`` Accounts."""
    code = account_code(lookup_index(accounts))
    codes = in_codes(accounts)
    code_list = ", ".join(f"'{c}'" for c in codes)

    # Results are compared in order: the hand-written SQL sorts as the engine does (records by Id).
    def ids(records: list[dict[str, Any]]) -> Any:
        return [r["Id"] for r in records]

    def child_ids(records: list[dict[str, Any]]) -> Any:
        return [(r["Id"], tuple(c["Id"] for c in (r["Contacts"] or {"records": []})["records"])) for r in records]

    def hand_child_ids(rows: Sequence[Any]) -> Any:
        grouped: dict[str, list[str]] = {}
        for row in rows:
            children = grouped.setdefault(row[0], [])
            if row[2] is not None:
                children.append(row[2])
        return [(k, tuple(v)) for k, v in grouped.items()]

    def aggregate(records: list[dict[str, Any]]) -> Any:
        return sorted((r["Industry"], r["expr0"], round(r["expr1"] or 0)) for r in records)

    return [
        QuerySpec(
            "indexed lookup",
            f"SELECT Id, Name, Industry FROM Account WHERE Code__c = '{code}'",
            text('SELECT "Id", "Name", "Industry" FROM "Account" '
                 'WHERE lower("Code__c") = :code AND NOT "IsDeleted"'),
            {"code": code.lower()},
            ids, lambda rows: [r[0] for r in rows],
        ),
        QuerySpec(
            "parent join",
            f"SELECT Id, Name, Account.Name, Account.Industry FROM Contact WHERE Account.Code__c = '{code}'",
            text('SELECT c."Id", c."Name", a."Name", a."Industry" FROM "Contact" c '
                 'JOIN "Account" a ON a."Id" = c."AccountId" '
                 'WHERE lower(a."Code__c") = :code AND NOT a."IsDeleted" AND NOT c."IsDeleted" '
                 'ORDER BY c."Id"'),
            {"code": code.lower()},
            ids, lambda rows: [r[0] for r in rows],
        ),
        QuerySpec(
            "child subquery",
            f"SELECT Id, Name, (SELECT Id, Name FROM Contacts) FROM Account WHERE Code__c IN ({code_list})",
            text('SELECT a."Id", a."Name", c."Id", c."Name" FROM "Account" a '
                 'LEFT JOIN "Contact" c ON c."AccountId" = a."Id" AND NOT c."IsDeleted" '
                 'WHERE lower(a."Code__c") IN :codes AND NOT a."IsDeleted" ORDER BY a."Id", c."Id"'
                 ).bindparams(bindparam("codes", expanding=True)),
            {"codes": [c.lower() for c in codes]},
            child_ids, hand_child_ids,
        ),
        QuerySpec(
            "aggregate",
            "SELECT Industry, COUNT(Id), SUM(AnnualRevenue) FROM Account GROUP BY Industry",
            text('SELECT "Industry", count("Id"), sum("AnnualRevenue") FROM "Account" '
                 'WHERE NOT "IsDeleted" GROUP BY "Industry" ORDER BY "Industry"'),
            {},
            aggregate, lambda rows: sorted((r[0], r[1], round(r[2] or 0)) for r in rows),
        ),
    ]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def bench_queries(org: Org, accounts: int, *, seconds_per_query: float = 3.0, min_iterations: int = 5,
                  max_iterations: int = 3000, log: TextIO | None = None) -> list[QueryBench]:
    """Time each query through the engine and as hand-written SQL, interleaved, on ``org``'s database."""
    engine = org.query
    context = org.admin_context()
    read_engine = org.store.read_engine
    # Build the SOQL parser (lark tables) once, so no query's first call pays for it.
    engine.execute("SELECT Id FROM User LIMIT 1", context)
    results: list[QueryBench] = []
    for spec in query_specs(accounts):
        gc.collect()

        def run_engine(spec: QuerySpec = spec) -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = engine.execute(spec.soql, context).to_wire()["records"]
            return records

        def run_hand(spec: QuerySpec = spec) -> Sequence[Any]:
            with read_engine.connect() as conn:
                return [tuple(row) for row in conn.execute(spec.sql, spec.params)]

        engine.clear_cache()
        started = time.perf_counter()
        records = run_engine()
        engine_first = _ms(started)
        started = time.perf_counter()
        rows = run_hand()
        hand_first = _ms(started)
        if spec.engine_key(records) != spec.hand_key(rows):
            raise RuntimeError(f"{spec.name}: the engine and the hand-written SQL disagree:\n"
                               f"  engine {spec.engine_key(records)!r}\n  hand   {spec.hand_key(rows)!r}")
        if not records:
            raise RuntimeError(f"{spec.name}: no rows; the data set is not loaded as expected")
        for _ in range(2):  # warm-up, thrown away
            run_engine()
            run_hand()
        started = time.perf_counter()
        run_engine()
        run_hand()
        pair_s = max(time.perf_counter() - started, 1e-6)
        iterations = max(min_iterations, min(max_iterations, int(seconds_per_query / pair_s)))
        if log is not None:
            print(f"  {spec.name}: {iterations} iterations each ...", file=log, flush=True)
        engine_timing, hand_timing = Timing(), Timing()
        for _ in range(iterations):
            started = time.perf_counter()
            run_engine()
            engine_timing.samples_ms.append(_ms(started))
            started = time.perf_counter()
            run_hand()
            hand_timing.samples_ms.append(_ms(started))
        # Cold: plan cache cleared before each call (parse + compile + execute + shape), and compile alone.
        cold_runs = max(3, min(30, iterations // 5))
        cold = Timing()
        parse_times: list[float] = []
        compile_times: list[float] = []
        for _ in range(cold_runs):
            engine.clear_cache()
            started = time.perf_counter()
            run_engine()
            cold.samples_ms.append(_ms(started))
            started = time.perf_counter()
            soql_parser.parse_soql(spec.soql)
            parse_times.append(_ms(started))
            engine.clear_cache()
            started = time.perf_counter()
            engine.compile(spec.soql, context)
            compile_times.append(_ms(started))
        results.append(QueryBench(
            name=spec.name, soql=spec.soql, sql=str(spec.sql), rows=len(records), iterations=iterations,
            engine=engine_timing, hand=hand_timing, engine_first_ms=engine_first, hand_first_ms=hand_first,
            cold=cold, parse_ms=statistics.median(parse_times), compile_ms=statistics.median(compile_times)))
    return results


# -- REST: query vs GET-by-id -------------------------------------------------------------------------------------


def measure_http(data_dir: Path, soql: str, record_id: str, *, tool: str = "auto", connections: int = 16,
                 duration: float = 5.0, warmup: float = 2.0, rounds: int = 1,
                 log: TextIO | None = None) -> HttpBench:
    """Start ``interlink up`` on ``data_dir`` and compare the query and GET-by-id endpoints for one record."""
    chosen = rest_get.choose_tool(tool)

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    say(f"starting interlink up in {data_dir} ...")
    with live_server(data_dir, timeout=120) as server:
        token = server.token()
        verify = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
        base = f"https://127.0.0.1:{server.port}"
        query_url = base + QUERY_PATH.format(q=quote(soql, safe=""))
        get_url = base + rest_get.RECORD_PATH.format(id=record_id)
        with httpx.Client(verify=verify, timeout=30.0, headers={"Authorization": f"Bearer {token}"}) as client:
            queried = client.get(query_url)
            queried.raise_for_status()
            body = queried.json()
            if body["totalSize"] != 1 or body["records"][0]["Id"] != record_id:
                raise RuntimeError(f"the query did not find exactly the record {record_id}: {body}")
            fetched = client.get(get_url)
            fetched.raise_for_status()
        per_round: list[dict[str, rest_get.LoadResult]] = []
        for number in range(1, rounds + 1):
            results: dict[str, rest_get.LoadResult] = {}
            for target, url in (("get-by-id", get_url), ("query", query_url)):
                say(f"round {number}/{rounds}: {target} ({chosen}, {connections} connections, "
                    f"{warmup:g}s warm-up + {duration:g}s) ...")
                results[target] = rest_get.measure(url, token, tool=chosen, connections=connections,
                                                   duration=duration, warmup=warmup, target=target,
                                                   verify=verify, server_pid=server.process.pid)
            per_round.append(results)
    return HttpBench(
        tool=chosen, connections=connections, duration_s=duration, warmup_s=warmup,
        query=rest_get._median_result([r["query"] for r in per_round]),
        get_by_id=rest_get._median_result([r["get-by-id"] for r in per_round]),
        query_payload_bytes=len(queried.content), get_payload_bytes=len(fetched.content),
        rounds=per_round if rounds > 1 else [])


# -- the run -------------------------------------------------------------------------------------------------------


def run_benchmark(*, accounts: int = FULL_ACCOUNTS, contacts_per_account: int = CONTACTS_PER_ACCOUNT,
                  reuse: Path | None = None, seconds_per_query: float = 3.0, http: bool = True,
                  tool: str = "auto", connections: int = 16, duration: float = 5.0, warmup: float = 2.0,
                  rounds: int = 1, log: TextIO | None = None) -> SoqlReport:
    """Build (or reuse) the data set, time the queries, then the REST endpoints; return the results."""

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    with prepare_data_dir(reuse) as data_dir:
        reused = reuse is not None and _check_reusable(data_dir, accounts, contacts_per_account)
        data_dir.mkdir(parents=True, exist_ok=True)
        write_project(data_dir)
        stats = LoadStats(accounts=accounts, contacts=accounts * contacts_per_account, reused=reused)
        with local_org(data_dir, project_dir=data_dir) as org:
            if reused:
                say(f"reusing the data set in {data_dir}")
            else:
                _write_marker(data_dir, accounts, contacts_per_account, complete=False)
                say(f"loading {accounts:,} Accounts and {stats.contacts:,} Contacts into {data_dir}\n"
                    "(straight into the tables with SQLAlchemy Core executemany: the records write path is "
                    "bypassed on purpose, for speed; only reads are measured)")
                stats.load_seconds = load_data(org, accounts, contacts_per_account, progress=log is not None)
                say("ANALYZE ...")
                stats.analyze_seconds = analyze(org)
                _write_marker(data_dir, accounts, contacts_per_account, complete=True)
            stats.database_bytes = _database_bytes(data_dir)
            say("engine vs hand-written SQL:")
            queries = bench_queries(org, accounts, seconds_per_query=seconds_per_query, log=log)
            backend = org.store.backend
            code = account_code(lookup_index(accounts))
            table = org.store.table("Account")
            with org.store.read() as conn:
                record_id = conn.execute(table.select().with_only_columns(table.c.Id)
                                         .where(func.lower(table.c.Code__c) == code.lower())).scalar_one()
        http_result = None
        if http:
            http_result = measure_http(data_dir, queries[0].soql, record_id, tool=tool, connections=connections,
                                       duration=duration, warmup=warmup, rounds=rounds, log=log)
        return SoqlReport(backend=backend, data_dir=str(data_dir) if reuse is not None else None, load=stats,
                          queries=queries, http=http_result)


def format_report(report: SoqlReport) -> str:
    """The human-readable tables."""
    load = report.load
    how = ("reused from an earlier run" if load.reused else
           f"loaded in {load.load_seconds:.1f}s + ANALYZE {load.analyze_seconds:.1f}s")
    lines = [
        f"SOQL engine vs hand-written SQL: {load.accounts:,} Accounts, {load.contacts:,} Contacts "
        f"({report.backend}, {load.database_bytes / 1e6:,.0f} MB; {how})",
        "fixture: written straight into the object tables with SQLAlchemy Core executemany, bypassing the records "
        "write path on purpose (for speed); only reads are measured",
        "engine = org.query.execute(): plan cache + execute + REST record shape; hand = text() SQL, rows as tuples",
        "",
        f"{'query':<15} {'rows':>5} {'iter':>5} {'engine med':>11} {'p90':>8} {'hand med':>9} {'p90':>8} "
        f"{'ratio':>6} {'goal':>5}   {'first':>8} {'cold':>8} {'parse':>7} {'compile':>8} {'hand 1st':>8}",
    ]
    for q in report.queries:
        lines.append(
            f"{q.name:<15} {q.rows:>5} {q.iterations:>5} {q.engine.median_ms:>11.3f} {q.engine.p90_ms:>8.3f} "
            f"{q.hand.median_ms:>9.3f} {q.hand.p90_ms:>8.3f} {q.ratio:>6.2f} {'ok' if q.goal_met else 'MISS':>5}   "
            f"{q.engine_first_ms:>8.3f} {q.cold.median_ms:>8.3f} {q.parse_ms:>7.3f} {q.compile_ms:>8.3f} "
            f"{q.hand_first_ms:>8.3f}")
    lines += [
        "times in ms. engine med/p90: warm calls (plan cached). first: the first call of the query; cold: plan "
        "cache cleared before each call; parse: SOQL parse alone; compile: parse + compile to SQLAlchemy Core.",
        f"goal: engine within {ENGINE_GOAL}x of hand-written SQL: "
        f"{'met' if all(q.goal_met for q in report.queries) else 'NOT met'}",
    ]
    http = report.http
    if http is not None:
        lines += [
            "",
            f"GET {QUERY_PATH.format(q='<indexed lookup>')} vs GET {rest_get.RECORD_PATH}  ({http.tool}, 1 thread, "
            f"{http.connections} keep-alive TLS connections, {http.warmup_s:g}s warm-up + {http.duration_s:g}s)",
            "",
            f"{'target':<10} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7} "
            f"{'payload B':>10} {'server CPU us/req':>18} {'server busy':>12}",
        ]
        for result, size in ((http.query, http.query_payload_bytes), (http.get_by_id, http.get_payload_bytes)):
            cpu = result.server_cpu_us_per_request
            lines.append(
                f"{result.target:<10} {result.requests_per_second:>11.1f} {rest_get._ms(result.p50_ms):>8} "
                f"{rest_get._ms(result.p99_ms):>8} {result.requests:>9} {result.errors:>7} {size:>10} "
                f"{'-' if cpu is None else f'{cpu:.0f}':>18} "
                f"{'-' if result.server_busy is None else f'{result.server_busy:.0%}':>12}")
        lines.append("")
        lines.append(f"requests/s ratio query/get-by-id:        {http.ratio:.3f}")
        if http.cpu_ratio is not None:
            lines.append(f"CPU-per-request ratio get-by-id/query:   {http.cpu_ratio:.3f}")
        if http.saturated is False:
            lines.append(f"note: the server used < {rest_get.SATURATED:.0%} of a core, so the goal is judged on "
                         "CPU per request")
        lines.append(f"goal ratio >= {RPS_GOAL}: {'met' if http.goal_met else 'NOT met'} ({http.goal_ratio:.3f})")
    if report.data_dir is not None:
        lines.append(f"\ndata directory kept for --reuse: {report.data_dir}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="SOQL engine vs hand-written SQL on a large data set, and REST query vs GET-by-id.")
    parser.add_argument("--accounts", type=int, default=None,
                        help=f"Accounts to load (default {FULL_ACCOUNTS:,}; {QUICK_ACCOUNTS:,} with --quick)")
    parser.add_argument("--contacts-per-account", type=int, default=CONTACTS_PER_ACCOUNT,
                        help=f"Contacts per Account (default {CONTACTS_PER_ACCOUNT})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ACCOUNTS:,} Accounts and shorter timings (what make bench runs)")
    parser.add_argument("--reuse", type=Path, default=None, metavar="DIR",
                        help="keep the generated data directory in DIR and reuse it when it holds the same sizes")
    parser.add_argument("--seconds-per-query", type=float, default=None,
                        help="time budget per query for the interleaved iterations (default 3; 1.5 with --quick)")
    parser.add_argument("--no-http", dest="http", action="store_false", help="skip the REST requests/s part")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per REST target (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per REST target (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the REST targets N times, report median")
    parser.add_argument("--tool", choices=["auto", "wrk", "httpx"], default="auto",
                        help="load generator (auto: wrk if installed, else httpx)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    accounts = args.accounts or (QUICK_ACCOUNTS if args.quick else FULL_ACCOUNTS)
    seconds = args.seconds_per_query or (1.5 if args.quick else 3.0)
    if accounts < 1 or args.contacts_per_account < 1:
        parser.error("--accounts and --contacts-per-account must be at least 1")
    report = run_benchmark(accounts=accounts, contacts_per_account=args.contacts_per_account, reuse=args.reuse,
                           seconds_per_query=seconds, http=args.http, tool=args.tool,
                           connections=args.connections, duration=args.duration, warmup=args.warmup,
                           rounds=max(1, args.rounds), log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
