"""Which of the six integration patterns fits a scenario, and what in Interlink runs it: the logic behind
``interlink patterns advise`` (:mod:`interlink.cli.patterns`), kept free of I/O and of typer.

:func:`advise` takes :class:`Answers`. The two selection matrices give the base pattern from direction, type and
timing; volume, data ownership and the need for live screens then refine it, and every step adds a reason.
docs/patterns/README.md explains the same rules for people.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

HIGH_VOLUME_RECORDS = 2000
"""More records than this per run is high volume: where the loader and the pattern guidance switch to Bulk API 2.0."""


# -- answers --------------------------------------------------------------------------------------------------


class Direction(StrEnum):
    OUT = "out"
    IN = "in"


class Kind(StrEnum):
    PROCESS = "process"
    DATA = "data"
    VIRTUAL = "virtual"


class Timing(StrEnum):
    SYNC = "sync"
    ASYNC = "async"


@dataclass(frozen=True)
class Answers:
    """One scenario. ``direction``: ``out`` (from the org to another system) or ``in``; ``kind``: ``process``,
    ``data`` or ``virtual``; ``timing``: ``sync`` or ``async``; ``volume``: ``low`` or ``high`` (``records``, when
    a count was given); ``remote_master``: the other system is the system of record; ``ui``: users must see
    changes live."""

    direction: str
    kind: str
    timing: str
    volume: str
    remote_master: bool
    ui: bool
    records: int | None = None


def parse_volume(text: str) -> tuple[str, int | None]:
    """``low``, ``high`` or a number of records (more than :data:`HIGH_VOLUME_RECORDS` is high)."""
    value = text.strip().lower()
    if value in ("low", "high"):
        return value, None
    try:
        count = int(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError(f"volume is low, high or a number of records, not {text!r}") from None
    if count < 0:
        raise ValueError(f"a number of records can't be negative ({count})")
    return ("high" if count > HIGH_VOLUME_RECORDS else "low"), count


def parse_yes_no(text: str) -> bool:
    """``yes``/``no`` (also ``y``/``n``, ``true``/``false``, ``1``/``0``), in any case."""
    value = text.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("no", "n", "false", "0"):
        return False
    raise ValueError(f"answer yes or no, not {text!r}")


# -- the patterns and what runs them in Interlink -------------------------------------------------------------

PATTERNS: dict[str, tuple[str, str]] = {  # key -> (name, page)
    "request-reply": ("Remote Process Invocation — Request and Reply", "docs/patterns/request-reply.md"),
    "fire-and-forget": ("Remote Process Invocation — Fire and Forget", "docs/patterns/fire-and-forget.md"),
    "batch-sync": ("Batch Data Synchronization", "docs/patterns/batch-sync.md"),
    "remote-call-in": ("Remote Call-In", "docs/patterns/remote-call-in.md"),
    "ui-update": ("UI Update Based on Data Changes", "docs/patterns/ui-update.md"),
    "data-virtualization": ("Data Virtualization", "docs/patterns/data-virtualization.md"),
}

# The two selection matrices: (direction, type, timing) -> the key pattern to consider.
MATRIX: dict[tuple[str, str, str], str] = {
    ("out", "process", "sync"): "request-reply",
    ("out", "process", "async"): "fire-and-forget",
    ("out", "data", "sync"): "request-reply",
    ("out", "data", "async"): "ui-update",
    ("out", "virtual", "sync"): "data-virtualization",
    ("in", "process", "sync"): "remote-call-in",
    ("in", "process", "async"): "remote-call-in",
    ("in", "data", "sync"): "remote-call-in",
    ("in", "data", "async"): "batch-sync",
}


@dataclass(frozen=True)
class Solution:
    pattern: str
    label: str  # a few words, for lists of alternatives
    summary: str
    uses: tuple[str, ...]
    example: str
    docs: tuple[str, ...]


SOLUTIONS: dict[str, Solution] = {
    "rr-sync": Solution(
        "request-reply",
        "an API flow that waits for the remote system",
        "An API flow (trigger: api) whose external_service or callout action waits for the remote system; the "
        "caller runs it over REST and the reply is stored on the record in the same transaction, or nothing is.",
        ("interlink services register NAME spec.yaml --credential CRED (External Services from OpenAPI)",
         "metadata/namedCredentials/*.yaml (URL, authentication, timeout)",
         "metadata/flows/*.yaml with trigger: api, run by POST /services/data/vXX.X/actions/custom/flow/NAME",
         "POST /services/data/vXX.X/actions/custom/externalService/SERVICE.OPERATION (one call, no record)"),
        "examples/billing/service.py with examples/project (flow Activate_Order_Now)",
        ("docs/automation.md#api-flows-synchronous-request-and-reply", "docs/automation.md#external-services")),
    "faf-events": Solution(
        "fire-and-forget",
        "a platform event published by a flow",
        "A record-triggered flow publishes a platform event after the save commits; remote systems subscribe over "
        "the Pub/Sub API (or run an org.pubsub pipeline) and call back over REST when they are done.",
        ("publish action in metadata/flows/*.yaml; the event in metadata/objects/Name__e.yaml "
         "(publishBehavior: PublishAfterCommit)",
         "Pub/Sub API Subscribe / ManagedSubscribe (interlink events subscription create)",
         "interlink pipelines run (org.pubsub source, retries, dead letters, sagas)",
         "interlink events tail TOPIC to watch"),
        "sample flow Closed_Won_Order_Request with examples/erp/subscriber.py; examples/project/pipelines/"
        "erp-orders.yaml",
        ("docs/events.md", "docs/automation.md#record-triggered-flows-metadataflowsyaml", "docs/middleware-org.md")),
    "faf-cdc": Solution(
        "fire-and-forget",
        "Change Data Capture read over the Pub/Sub API",
        "Change Data Capture: every committed change of the selected objects is announced on the bus, and the "
        "other system applies the changes it reads over the Pub/Sub API (or through an org.pubsub pipeline).",
        ("interlink cdc enable OBJECT (or changeDataCapture: true in the object's metadata)",
         "custom channels with filters and enriched fields: interlink cdc enable OBJECT --channel Name__chn",
         "topics /data/ObjectChangeEvent, /data/ChangeEvents, /data/Name__chn",
         "interlink pipelines run with an org.pubsub source and a sql, http or nats sink"),
        "interlink events tail /data/AccountChangeEvent on a --sample-data org",
        ("docs/events.md#change-events", "docs/middleware-org.md#orgpubsub--the-source")),
    "batch-in": Solution(
        "batch-sync",
        "a batch job loading with Bulk API 2.0",
        "A middleware batch job: read only what changed at the source (watermark), validate and map it, and "
        "upsert it by external id with Bulk API 2.0; a control record keeps the restart point and bad rows "
        "become error rows.",
        ("pipelines/NAME.yaml: sql source (watermark) -> validate/map -> org.upsert (bulkThreshold)",
         "interlink sync run | status | reset (control records, dependsOn, schedule)",
         "interlink dlq list | replay (error rows)",
         "interlink data import OBJECT file.csv --upsert FIELD for one-off files"),
        "examples/sync (prospect-import)",
        ("docs/middleware.md#batch-jobs", "docs/bulk.md", "docs/cli.md#data-loader-interlink-data")),
    "batch-out": Solution(
        "batch-sync",
        "a batch job extracting by SystemModstamp",
        "A middleware batch job that extracts the org's changed records by SystemModstamp (deleted ones "
        "included) and upserts them into the other system; Bulk API 2.0 query jobs for large exports.",
        ("pipelines/NAME.yaml: org.query source (includeDeleted) -> map -> sql upsert sink",
         "interlink sync run | status | reset",
         "interlink data export \"SELECT ...\" file.csv (Bulk API 2.0 query job)",
         "GET /services/data/vXX.X/sobjects/OBJECT/updated/ and deleted/ replication windows"),
        "examples/sync (activity-export)",
        ("docs/middleware.md#batch-jobs", "docs/bulk.md#query-jobs-servicesdatavxxxjobsquery")),
    "callin-api": Solution(
        "remote-call-in",
        "REST, composite and collections calls",
        "The remote system calls the REST API: sObject rows, upsert by external id, composite (up to 25 "
        "subrequests, allOrNone), graph and sObject Collections, authenticated through a connected app "
        "(OAuth 2.0 JWT bearer or client credentials).",
        ("interlink apps create NAME --run-as USER --certificate cert.pem",
         "PATCH /services/data/vXX.X/sobjects/OBJECT/EXTERNAL_ID_FIELD/VALUE (upsert)",
         "POST /services/data/vXX.X/composite, composite/graph, composite/sobjects",
         "POST /services/data/vXX.X/graphql for multi-object reads"),
        "examples/erp/subscriber.py (its callback to the opportunity)",
        ("docs/callin.md", "docs/auth.md")),
    "callin-events": Solution(
        "remote-call-in",
        "a platform event published by the remote system",
        "The remote system publishes a platform event (REST POST /sobjects/Name__e, or Publish over the Pub/Sub "
        "API); an event-triggered flow acts on it inside the org, and any other subscriber hears it too.",
        ("metadata/objects/Name__e.yaml (the event) and a flow with trigger: event",
         "POST /services/data/vXX.X/sobjects/Name__e, or Pub/Sub Publish / PublishStream",
         "interlink events publish Name__e '{...}' to try it"),
        "sample event Payment_Received__e on a --sample-data org",
        ("docs/events.md#publishing", "docs/automation.md#platform-event-triggered-flows")),
    "callin-odata": Solution(
        "remote-call-in",
        "the OData producer or REST queries",
        "The other system reads the org's records live, nothing copied: the OData 4.0 / 2.0 producer over the "
        "objects listed in metadata/odata.yaml, or REST queries and GraphQL.",
        ("metadata/odata.yaml (which objects, read-only or writable)",
         "GET /odata/v4/Account?$filter=... ; /odata/v2/ for older clients",
         "GET /services/data/vXX.X/query?q=SOQL, POST /services/data/vXX.X/graphql"),
        "a --sample-data org exposes its objects at /odata/v4/",
        ("docs/odata.md#interlink-as-an-odata-producer", "docs/soql.md")),
    "ui-live": Solution(
        "ui-update",
        "events shown on the console's live pages",
        "Changes travel as events on the bus (platform events published by flows or by the remote system, or "
        "change events), and the console's live pages show them to users as they arrive, without a refresh.",
        ("platform events (metadata/objects/Name__e.yaml) or interlink cdc enable OBJECT",
         "the console's live pages (docs/console.md)",
         "any Pub/Sub API subscriber, or interlink events tail TOPIC, sees the same events"),
        "sample events Payment_Received__e and Case_Closed__e on a --sample-data org",
        ("docs/console.md", "docs/events.md")),
    "dv-external": Solution(
        "data-virtualization",
        "external objects over a data source",
        "External objects (Name__x) over a data source: SOQL, REST, SOSL and GraphQL on them are sent to the "
        "remote system live (filters, sorting and paging pushed down); nothing is copied into the org.",
        ("metadata/dataSources/NAME.yaml (odata4, odata401, odata2, crossorg or python; named credential)",
         "interlink connect sync NAME --as TABLE=OBJECT (writes metadata/objects/*__x.yaml)",
         "external and indirect lookups to join remote rows with the org's records",
         "interlink connect test NAME"),
        "examples/erp/odata_service.py with examples/project/metadata/dataSources/ERP.yaml",
        ("docs/external-objects.md",)),
}


# -- the advice -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alternative:
    pattern: str
    solution: str
    fit: str  # Best | Good | Suboptimal
    why: str


@dataclass
class Advice:
    answers: Answers
    matrix_pattern: str | None  # what the selection matrix alone says (None: no row for these answers)
    pattern: str
    solution: str  # a key of SOLUTIONS
    fit: str
    reasons: list[str] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    keys: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return PATTERNS[self.pattern][0]

    def to_json(self) -> dict[str, Any]:
        """The advice as plain JSON values (``--json``)."""
        chosen = SOLUTIONS[self.solution]
        return {
            "answers": {"direction": self.answers.direction, "type": self.answers.kind, "timing": self.answers.timing,
                        "volume": self.answers.volume, "records": self.answers.records,
                        "remote_master": self.answers.remote_master, "ui": self.answers.ui},
            "matrix_pattern": self.matrix_pattern,
            "pattern": self.pattern,
            "name": self.name,
            "solution": {"id": self.solution, "fit": self.fit, "summary": chosen.summary, "uses": list(chosen.uses)},
            "reasons": list(self.reasons),
            "alternatives": [asdict(alternative) for alternative in self.alternatives],
            "keys": self.keys,
            "notes": list(self.notes),
            "example": chosen.example,
            "docs": [PATTERNS[self.pattern][1], *chosen.docs],
        }


def _row(answers: Answers) -> str:
    return f"{answers.direction} / {answers.kind} / {answers.timing}"


def advise(answers: Answers) -> Advice:
    """The recommended pattern and Interlink solution for ``answers``, with the reasons, alternatives and keys."""
    a = answers
    side = "from the org to another system" if a.direction == "out" else "from another system into the org"
    matrix = MATRIX.get((a.direction, a.kind, a.timing))
    reasons: list[str] = []
    notes: list[str] = []
    if matrix is not None:
        pattern = matrix
        reasons.append(f"{a.kind} integration, {a.timing}, {side} ({_row(a)}): the selection matrix names "
                       f"{PATTERNS[matrix][0]}.")
    elif a.direction == "out":  # out / virtual / async
        pattern = "data-virtualization"
        reasons.append("virtual integration reads remote data live, so it is synchronous by nature: the matrix has "
                       "no asynchronous row for it, and Data Virtualization is the only virtual pattern.")
        notes.append("If a delayed copy is acceptable, Batch Data Synchronization copies the data instead.")
    else:  # in / virtual / either timing
        pattern = "remote-call-in"
        reasons.append("the inbound matrix has no virtual row: another system that reads the org's data live, "
                       "without copying it, calls in.")

    # Refinements, in order; each says which answer led there.
    if a.direction == "out" and a.kind in ("data", "virtual") and a.timing == "sync" and a.remote_master:
        if pattern != "data-virtualization":
            reasons.append("the other system is the master and users need its data now (--remote-master yes, "
                           "sync): read it in place with Data Virtualization rather than request it record by "
                           "record.")
        pattern = "data-virtualization"
    bulk = a.kind == "data" and a.volume == "high"
    if bulk and pattern != "data-virtualization":
        if pattern != "batch-sync":
            reasons.append(f"high volume ({_volume(a)}): calls and messages record by record don't scale to it; "
                           "move the data in bulk with Batch Data Synchronization (Bulk API 2.0).")
        else:
            reasons.append(f"high volume ({_volume(a)}): the loads go through Bulk API 2.0.")
        pattern = "batch-sync"
    if a.ui and a.timing == "async" and a.direction == "in" and a.kind in ("data", "process") and not bulk:
        reasons.append("users must see the changes live (--ui yes): the remote system's change arrives as an "
                       "event (Remote Call-In) and live pages show it: UI Update Based on Data Changes.")
        pattern = "ui-update"
    if a.direction == "out" and a.kind == "data" and a.timing == "async" and not a.ui and pattern == "ui-update":
        reasons.append("nobody watches a screen for these changes (--ui no): stream them to the other system "
                       "with Change Data Capture (Fire and Forget).")
        pattern = "fire-and-forget"

    solution = _solution(pattern, a)
    fit = "Good" if solution in ("batch-in", "batch-out") and not a.remote_master else "Best"
    if solution in ("batch-in", "batch-out"):
        master = "the other system" if a.remote_master else "the org"
        reasons.append(f"{master} masters the data: {fit} fit for ETL replication with a control table.")
    notes.extend(_notes(a, pattern))
    return Advice(a, matrix, pattern, solution, fit, reasons, _alternatives(a, pattern, solution, matrix),
                  _keys(a, pattern), notes)


def _volume(a: Answers) -> str:
    return f"{a.records:,} records" if a.records is not None else "--volume high"


def _solution(pattern: str, a: Answers) -> str:
    if pattern == "request-reply":
        return "rr-sync"
    if pattern == "fire-and-forget":
        return "faf-cdc" if a.kind == "data" else "faf-events"
    if pattern == "batch-sync":
        return "batch-in" if a.direction == "in" else "batch-out"
    if pattern == "remote-call-in":
        if a.kind == "virtual":
            return "callin-odata"
        return "callin-events" if a.kind == "process" and a.timing == "async" else "callin-api"
    if pattern == "ui-update":
        return "ui-live"
    return "dv-external"


def _alternatives(a: Answers, pattern: str, solution: str, matrix: str | None) -> list[Alternative]:
    found = [Alternative(*item) for item in _ALTERNATIVES[solution]]
    if pattern == "ui-update" and a.direction == "in":
        found.insert(0, Alternative("remote-call-in", SOLUTIONS["callin-events"].label, "Best",
                                    "how the remote system's change reaches the org: combine them"))
    covered = {alternative.pattern for alternative in found} | ({"ui-update"} if a.ui else set())
    if matrix is not None and matrix != pattern and matrix not in covered:
        found.insert(0, Alternative(matrix, SOLUTIONS[_solution(matrix, a)].label, "Suboptimal",
                                    _REFINED.get((matrix, pattern), "what the selection matrix alone names")))
    if a.ui and a.timing == "async" and pattern not in ("ui-update", "data-virtualization"):
        found.append(Alternative("ui-update", SOLUTIONS["ui-live"].label, "Best",
                                 "users must see the changes live: combine it with this pattern"))
    return found


# Why the matrix's pattern gave way, per (matrix pattern, chosen pattern).
_REFINED = {
    ("request-reply", "data-virtualization"): "fetches remote data record by record on demand: custom work per screen",
    ("request-reply", "batch-sync"): "carries a few records per call: slow and chatty at high volume",
    ("remote-call-in", "batch-sync"): "a few records per call: constant traffic and locking at high volume",
    ("ui-update", "batch-sync"): "live pages don't move data in bulk; combine them if users watch",
    ("batch-sync", "ui-update"): "a batch window delays what users must see live",
    ("ui-update", "fire-and-forget"): "live pages help only when someone watches them",
}


_ALTERNATIVES: dict[str, list[tuple[str, str, str, str]]] = {
    "rr-sync": [
        ("request-reply", "callout action through a named credential, without an OpenAPI spec", "Good",
         "declarative too, but the inputs are not checked against a schema"),
        ("fire-and-forget", "record-triggered flow or Python trigger with a queued callout (on_success)",
         "Suboptimal", "a save never waits on a remote system: the reply lands after the commit"),
        ("request-reply", "scheduled flow calling out record by record", "Suboptimal",
         "limits per transaction (100 callouts, 120 s) and late replies"),
    ],
    "faf-events": [
        ("fire-and-forget", "Change Data Capture (interlink cdc enable)", "Best",
         "when the record change itself is the message"),
        ("fire-and-forget", "Python trigger publishing with ctx.publish", "Good", "when the rules need code"),
        ("fire-and-forget", "outbound message (outbound_message flow action)", "Suboptimal",
         "legacy SOAP contract owned by the org; see docs/migration.md"),
        ("fire-and-forget", "queued callout from a flow or trigger", "Suboptimal",
         "the org then owns delivery: 10 attempts, then Dead (interlink callouts)"),
    ],
    "faf-cdc": [
        ("fire-and-forget", "platform event published by a flow", "Best",
         "when subscribers need a shaped message rather than the raw change"),
        ("batch-sync", "scheduled extract by SystemModstamp (org.query)", "Good",
         "when a nightly window is enough or volumes grow"),
        ("fire-and-forget", "outbound message (outbound_message flow action)", "Suboptimal",
         "legacy SOAP; see docs/migration.md"),
    ],
    "batch-in": [
        ("batch-sync", "composite/graph: related records in one transaction per graph", "Best",
         "when each load fits the limits (75 graphs, 500 nodes per graph)"),
        ("batch-sync", "interlink data import (the data loader)", "Good",
         "one-off loads and data stewardship, not an ongoing integration"),
        ("remote-call-in", "the remote system writes each change as it happens (REST, collections)",
         "Suboptimal", "constant traffic, more locking and error handling"),
    ],
    "batch-out": [
        ("fire-and-forget", "Change Data Capture into an org.pubsub pipeline", "Best",
         "near real time instead of a batch window"),
        ("batch-sync", "interlink data export (Bulk API 2.0 query job)", "Good", "one-off exports"),
        ("request-reply", "the org calls the other system on every change", "Suboptimal",
         "constant traffic; the org owns retries"),
    ],
    "callin-api": [
        ("remote-call-in", "GraphQL (POST /services/data/vXX.X/graphql)", "Best",
         "multi-object reads with chosen fields (partial in Interlink, see docs/graphql.md)"),
        ("remote-call-in", "Bulk API 2.0 ingest jobs", "Best", "bulk operations, above 2,000 records"),
        ("remote-call-in", "platform event published by the remote system", "Best",
         "to notify rather than change specific records; any number of subscribers"),
        ("remote-call-in", "SOAP API", "Suboptimal", "Interlink serves only login(), which is retired at v65.0"),
    ],
    "callin-events": [
        ("remote-call-in", "REST or composite writes to the records concerned", "Best",
         "when the remote system knows which records change"),
        ("remote-call-in", "Pub/Sub Publish / PublishStream", "Best", "high publish rates, binary Avro payloads"),
        ("remote-call-in", "SOAP API", "Suboptimal", "Interlink serves only login()"),
    ],
    "callin-odata": [
        ("remote-call-in", "REST query / queryMore, GraphQL", "Best", "clients that speak the REST API"),
        ("batch-sync", "Bulk API 2.0 query job (a copy)", "Good", "when a copy is acceptable"),
    ],
    "ui-live": [
        ("fire-and-forget", "Change Data Capture read over the Pub/Sub API", "Best",
         "when another system, not a person, consumes the changes"),
        ("ui-update", "a custom page fed by its own Pub/Sub API subscriber", "Good",
         "browsers don't speak gRPC: it needs a server side"),
        ("remote-call-in", "polling the REST API (updated/ or queries)", "Suboptimal",
         "what this pattern exists to avoid: delay and wasted calls"),
    ],
    "dv-external": [
        ("data-virtualization", "cross-org or Python adapter (type: crossorg | python)", "Best",
         "when the source is another org or not OData"),
        ("request-reply", "an API flow or External Service fetching the remote data on demand", "Suboptimal",
         "custom work per screen; no SOQL, search or relationships"),
        ("batch-sync", "copy the data with a batch job", "Good",
         "when reporting over everything or offline use needs a copy"),
    ],
}


def _keys(a: Answers, pattern: str) -> str:
    if pattern == "data-virtualization":
        return ("The remote key is the external object's ExternalId; external lookups join by it, indirect lookups "
                "by a unique external-id field of an org object. The org stores nothing else.")
    if pattern == "remote-call-in" and a.kind == "virtual":
        return "The other system keeps the org's 18-character record Ids (or an org external id) to read by."
    if a.remote_master:
        if pattern == "request-reply":
            return ("The reply carries the remote key; on_success writes it onto the record (a unique external-id "
                    "field) in the same transaction.")
        if pattern == "fire-and-forget":
            return ("The event carries the org's record Id; the remote system calls back with its own key, stored "
                    "in a unique external-id field of the record.")
        return ("The remote key lives in a unique external-id field of the org object (externalId: true); every "
                "write upserts by it, so a repeat updates instead of duplicating.")
    return ("The org is the system of record: the other system stores the org's 18-character record Id (or an org "
            "external id) with its copy and upserts by it.")


def _notes(a: Answers, pattern: str) -> list[str]:
    notes = []
    if a.kind == "process" and a.volume == "high" and a.direction == "out" and a.timing == "sync":
        notes.append("Request and Reply suits a few calls at a time (100 callouts and 120 s per transaction); for "
                     "many records, publish events (Fire and Forget) or sync in batches.")
    if a.kind == "process" and a.volume == "high" and a.direction == "in":
        notes.append("At high volume, batch the calls: collections take 200 records per call, composite 25 "
                     "subrequests; events go through Pub/Sub PublishStream (mind HourlyPublishedPlatformEvents).")
    if a.kind == "virtual" and a.volume == "high":
        notes.append("Large remote data sets suit virtualization when users read a little at a time; reading all "
                     "of it on every run is a batch job.")
    if a.kind == "virtual" and a.direction == "out" and not a.remote_master:
        notes.append("Virtualization reads data another system keeps; if the org owns the data, let the other "
                     "system read it live instead (--direction in --type virtual).")
    if a.kind == "virtual" and a.direction == "in" and a.remote_master:
        notes.append("The other system masters the data yet reads the org's live: did you mean --direction out?")
    if a.ui and a.timing == "sync" and a.kind != "virtual":
        notes.append("A synchronous call answers the user at once; live pages matter for changes that arrive "
                     "later.")
    if pattern == "ui-update":
        notes.append("Live pages are the console's (docs/console.md); any Pub/Sub subscriber sees the same events.")
    return notes
