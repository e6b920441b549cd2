"""SQL tables: one per object (columns per field) plus the org's own system tables.

Object tables are named after the object's API name and columns after field API names, so a
developer can open the SQLite file and read it. System tables start with ``il_``, which no object
name can (object names are standard names or end in ``__c``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Time,
    func,
)
from sqlalchemy.types import TypeEngine

from interlink.metadata.model import FieldDef, FieldType, ObjectDef, Schema


def column_type(fdef: FieldDef) -> TypeEngine[object]:
    """The SQL type that stores ``fdef`` portably on SQLite and PostgreSQL."""
    if fdef.type is FieldType.REFERENCE and fdef.reference_target_field is not None:
        return String(255)  # an external lookup holds its parent's ExternalId, not an 18-character id
    match fdef.type:
        case FieldType.ID | FieldType.REFERENCE:
            return String(18)
        case FieldType.BOOLEAN:
            return Boolean()
        case FieldType.INT:
            return Integer()
        case FieldType.DOUBLE | FieldType.CURRENCY | FieldType.PERCENT:
            return Float()
        case FieldType.DATE:
            return Date()
        case FieldType.DATETIME:
            return DateTime()
        case FieldType.TIME:
            return Time()
        case FieldType.TEXTAREA | FieldType.MULTIPICKLIST:
            return Text()
        case _:
            return String(max(fdef.length, 1))


def _delivery_columns() -> list[Column[object]]:
    """The state of something delivered by workers with retries (callouts, outbound-message notifications)."""
    return [
        Column("state", String(16), nullable=False, index=True),  # Queued | Delivered | Dead
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", DateTime, nullable=False, index=True),
        Column("last_error", Text, nullable=True),
        Column("history_json", Text, nullable=False, default="[]"),  # every attempt: time, status, error, answer
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("claimed_by", String(64), nullable=True),
        Column("claimed_until", DateTime, nullable=True),
    ]


def object_table(obj: ObjectDef, metadata: MetaData) -> Table:
    """Declare the table for ``obj`` (with its indexes) on ``metadata``."""
    columns = [
        Column(f.name, column_type(f), primary_key=f.name == "Id", nullable=f.name != "Id") for f in obj.fields
    ]
    table = Table(obj.name, metadata, *columns)
    for index in object_indexes(obj, table):
        index._set_parent(table)
    return table


def index_name(obj: ObjectDef, fdef: FieldDef, kind: str) -> str:
    return f"ix_{obj.name}_{fdef.name}_{kind}".lower()[:63]


def object_indexes(obj: ObjectDef, table: Table) -> list[Index]:
    """Indexes for external ids, unique fields, lookups and the replication timestamp."""
    indexes: list[Index] = []
    for fdef in obj.fields:
        column = table.c[fdef.name]
        text_like = fdef.type not in (FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT,
                                      FieldType.DATE, FieldType.DATETIME, FieldType.TIME, FieldType.BOOLEAN,
                                      FieldType.ID, FieldType.REFERENCE)
        if fdef.unique or fdef.external_id:
            # Matching is case-insensitive unless the field says otherwise, so index what we compare.
            expression = func.lower(column) if text_like and not fdef.case_sensitive else column
            indexes.append(Index(index_name(obj, fdef, "uq" if fdef.unique else "ext"), expression,
                                 unique=fdef.unique))
        elif fdef.type is FieldType.REFERENCE:
            indexes.append(Index(index_name(obj, fdef, "ref"), column))
    if "SystemModstamp" in table.c:  # history objects have none
        indexes.append(Index(f"ix_{obj.name}_systemmodstamp".lower()[:63], table.c.SystemModstamp))
    return indexes


def system_tables(metadata: MetaData) -> dict[str, Table]:
    """The org's own tables: identity, credentials, tokens, usage, deployed schema, counters."""
    tables = [
        Table(
            "il_org", metadata,
            Column("id", String(18), primary_key=True),
            Column("name", String(255), nullable=False),
            Column("created_at", DateTime, nullable=False),
            Column("settings_json", Text, nullable=False, default="{}"),
        ),
        Table(
            "il_user_credential", metadata,
            Column("user_id", String(18), primary_key=True),
            Column("password_hash", String(255), nullable=False),
            Column("failed_attempts", Integer, nullable=False, default=0),
            Column("updated_at", DateTime, nullable=False),
        ),
        Table(
            "il_connected_app", metadata,
            Column("id", String(18), primary_key=True),
            Column("name", String(255), nullable=False, unique=True),
            Column("consumer_key", String(255), nullable=False, unique=True),
            Column("consumer_secret", String(255), nullable=False),
            Column("certificate_pem", Text),
            Column("run_as_user_id", String(18)),
            Column("callback_url", Text),
            Column("created_at", DateTime, nullable=False),
        ),
        Table(
            "il_token", metadata,
            Column("token_hash", String(64), primary_key=True),
            Column("kind", String(16), nullable=False),  # access | refresh
            Column("user_id", String(18), nullable=False, index=True),
            Column("app_id", String(18)),
            Column("parent_hash", String(64), index=True),  # the refresh token an access token came from
            Column("issued_at", DateTime, nullable=False),
            Column("last_used_at", DateTime, nullable=False),
            Column("expires_at", DateTime),
            Column("revoked", Boolean, nullable=False, default=False),
            Column("scope", String(255), nullable=False, default="api"),
        ),
        Table(
            "il_auth_code", metadata,
            Column("code_hash", String(64), primary_key=True),
            Column("user_id", String(18), nullable=False),
            Column("app_id", String(18), nullable=False),
            Column("redirect_uri", Text, nullable=False),
            Column("code_challenge", String(128)),
            Column("expires_at", DateTime, nullable=False),
            Column("used", Boolean, nullable=False, default=False),
        ),
        # Login policy state per user: consecutive failed password logins, the lockout, the API-only flag.
        # (New tables rather than new columns: Store.open creates missing tables in an existing org.)
        Table(
            "il_user_login", metadata,
            Column("user_id", String(18), primary_key=True),
            Column("failed_logins", Integer, nullable=False, default=0),
            Column("locked_until", DateTime),
            Column("api_only", Boolean, nullable=False, default=False),
            Column("updated_at", DateTime, nullable=False),
        ),
        # A profile's login restrictions (metadata/profiles/*.yaml loginIpRanges, loginHours) as JSON, read by the
        # login policy on every login and session check.
        Table(
            "il_profile_login_policy", metadata,
            Column("profile_id", String(18), primary_key=True),
            Column("ip_ranges", Text),
            Column("login_hours", Text),
            Column("updated_at", DateTime, nullable=False),
        ),
        # A connected app's OAuth policies beyond il_connected_app's columns.
        Table(
            "il_connected_app_policy", metadata,
            Column("app_id", String(18), primary_key=True),
            Column("rotate_refresh_tokens", Boolean, nullable=False, default=False),
        ),
        # A connected app's Permitted Users policy: with admin_approved_only, only users whose profile or one of
        # whose permission sets (by name, JSON lists) the app names may use it.
        Table(
            "il_connected_app_access", metadata,
            Column("app_id", String(18), primary_key=True),
            Column("admin_approved_only", Boolean, nullable=False, default=False),
            Column("profiles", Text, nullable=False, default="[]"),
            Column("permission_sets", Text, nullable=False, default="[]"),
        ),
        # Refresh tokens that rotation replaced or minted, by family (the hash of the family's first token), so
        # the reuse of a replaced token can revoke every token of its family.
        Table(
            "il_refresh_family", metadata,
            Column("token_hash", String(64), primary_key=True),
            Column("family_hash", String(64), nullable=False, index=True),
            Column("created_at", DateTime, nullable=False),
        ),
        Table(
            "il_api_usage", metadata,
            Column("minute", Integer, primary_key=True),  # minutes since the epoch
            Column("requests", Integer, nullable=False),
        ),
        Table(
            "il_event_usage", metadata,
            Column("minute", Integer, primary_key=True),  # minutes since the epoch
            Column("requests", Integer, nullable=False),
        ),
        # Events delivered to subscribers per minute (metered for the console, not enforced).
        Table(
            "il_event_delivery", metadata,
            Column("minute", Integer, primary_key=True),  # minutes since the epoch
            Column("requests", Integer, nullable=False),
        ),
        Table(
            "il_schema", metadata,
            Column("object_name", String(255), primary_key=True),
            Column("spec_json", Text, nullable=False),
            Column("deployed_at", DateTime, nullable=False),
        ),
        Table(
            "il_autonumber", metadata,
            Column("object_name", String(255), primary_key=True),
            Column("field_name", String(255), primary_key=True),
            Column("next_value", Integer, nullable=False),
        ),
        Table(
            "il_query_cursor", metadata,
            Column("id", String(18), primary_key=True),
            Column("user_id", String(18), nullable=False, index=True),
            Column("soql", Text, nullable=False),
            Column("include_deleted", Boolean, nullable=False),
            Column("batch_size", Integer, nullable=False),
            Column("total_size", Integer, nullable=False),
            Column("api_version", String(8), nullable=False),
            Column("created_at", DateTime, nullable=False),
            Column("last_used_at", DateTime, nullable=False),
        ),
        # External objects: the record Id the org answers for each remote key (a hash of the key, so every
        # process derives the same Id; the row lets an Id be turned back into its key).
        Table(
            "il_external_key", metadata,
            Column("id", String(18), primary_key=True),
            Column("object", String(80), nullable=False),
            Column("external_id", String(1000), nullable=False),
        ),
        # Where a query cursor on an external object continues at its data source (a next-page token).
        Table(
            "il_query_cursor_state", metadata,
            Column("cursor_id", String(18), primary_key=True),
            Column("offset", Integer, primary_key=True),
            Column("state", Text, nullable=False),
        ),
        Table(
            "il_external_usage", metadata,
            Column("minute", Integer, primary_key=True),  # minutes since the epoch
            Column("requests", Integer, nullable=False),
        ),
        Table(
            "il_kv", metadata,
            Column("key", String(255), primary_key=True),
            Column("value", LargeBinary, nullable=False),
        ),
        # Events a transaction emits (change events, publish-after-commit events), written in that
        # transaction and relayed to the bus after it commits; rows left by a crash are relayed on start.
        Table(
            "il_outbox", metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("created_at", DateTime, nullable=False),
            Column("events", LargeBinary, nullable=False),
        ),
        # Which objects' changes go to which change-event channel (ChangeEvents or a custom __chn).
        Table(
            "il_channel_member", metadata,
            Column("channel", String(255), primary_key=True),
            Column("entity", String(255), primary_key=True),
            Column("filter", Text, nullable=True),
            Column("enriched_json", Text, nullable=False, default="[]"),
            Column("source", String(16), nullable=False),
        ),
        # Every Avro schema an event was ever written with, so old events stay decodable.
        Table(
            "il_event_schema", metadata,
            Column("schema_id", String(64), primary_key=True),
            Column("topic", String(255), nullable=False),
            Column("schema_json", Text, nullable=False),
            Column("created_at", DateTime, nullable=False),
        ),
        # Changes made outside the write path, logged by triggers on CDC objects' tables (store/change_log.py).
        Table(
            "il_external_change", metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("object_name", String(255), nullable=False),
            Column("record_id", String(18), nullable=False, index=True),
            Column("operation", String(16), nullable=False),
            Column("txid", BigInteger, nullable=True, index=True),
        ),
        # ManagedSubscribe: the replay id the server keeps per named subscription.
        Table(
            "il_managed_subscription", metadata,
            Column("id", String(18), primary_key=True),
            Column("developer_name", String(80), nullable=False, unique=True),
            Column("topic", String(255), nullable=False),
            Column("default_replay", String(16), nullable=False),
            Column("committed_replay_id", LargeBinary, nullable=True),
            Column("updated_at", DateTime, nullable=False),
        ),
        # Bulk API 2.0 jobs (ingest and query): their settings, state and progress. ``batches_done`` counts the
        # internal batches whose records, results and progress committed together, so a restarted worker resumes
        # after the last one and never applies a batch twice.
        Table(
            "il_bulk_job", metadata,
            Column("id", String(18), primary_key=True),
            Column("job_type", String(16), nullable=False),  # V2Ingest | V2Query
            Column("operation", String(16), nullable=False),
            Column("object", String(255), nullable=False),
            Column("external_id_field", String(255), nullable=True),
            Column("assignment_rule_id", String(18), nullable=True),
            Column("query", Text, nullable=True),
            Column("column_delimiter", String(16), nullable=False),
            Column("line_ending", String(8), nullable=False),
            Column("state", String(16), nullable=False, index=True),
            Column("error_message", Text, nullable=True),
            Column("created_by_id", String(18), nullable=False),
            Column("created_date", DateTime, nullable=False, index=True),
            Column("system_modstamp", DateTime, nullable=False),
            Column("api_version", String(8), nullable=False),
            Column("columns_json", Text, nullable=True),  # the upload's header, once the first upload arrived
            Column("content_type", String(8), nullable=True),  # Bulk API 1.0 jobs: JSON, CSV or XML
            Column("concurrency_mode", String(8), nullable=True),  # Parallel, or Serial (Bulk API 1.0)
            Column("uploads", Integer, nullable=False, default=0),
            Column("upload_bytes", BigInteger, nullable=False, default=0),
            Column("records_uploaded", BigInteger, nullable=False, default=0),
            Column("batches_done", Integer, nullable=False, default=0),
            Column("records_processed", BigInteger, nullable=False, default=0),
            Column("records_failed", BigInteger, nullable=False, default=0),
            Column("retries", Integer, nullable=False, default=0),
            Column("processing_ms", BigInteger, nullable=False, default=0),
            Column("api_active_ms", BigInteger, nullable=False, default=0),
            Column("result_bytes", BigInteger, nullable=False, default=0),
            Column("claimed_by", String(64), nullable=True),
            Column("claimed_until", DateTime, nullable=True),
        ),
        # Bulk API 1.0 batches: each one is processed on its own as soon as it arrives, in one transaction that
        # also writes its results and its state.
        Table(
            "il_bulk_batch", metadata,
            Column("id", String(18), primary_key=True),
            Column("job_id", String(18), nullable=False, index=True),
            Column("seq", Integer, nullable=False),
            Column("state", String(16), nullable=False, index=True),
            Column("state_message", Text, nullable=True),
            Column("records_processed", BigInteger, nullable=False, default=0),
            Column("records_failed", BigInteger, nullable=False, default=0),
            Column("processing_ms", BigInteger, nullable=False, default=0),
            Column("api_active_ms", BigInteger, nullable=False, default=0),
            Column("results", Integer, nullable=False, default=0),  # query batches: how many result files
            Column("created_date", DateTime, nullable=False),
            Column("system_modstamp", DateTime, nullable=False),
            Column("claimed_by", String(64), nullable=True),
            Column("claimed_until", DateTime, nullable=True),
        ),
        # Asynchronous callouts (Fire and Forget from flows and triggers): written in the transaction that asks for
        # them, so only committed work calls out; delivered by workers with retries, kept with every attempt.
        Table(
            "il_callout", metadata,
            Column("id", String(18), primary_key=True),
            Column("credential", String(255), nullable=False),
            Column("method", String(8), nullable=False),
            Column("path", Text, nullable=False),
            Column("headers_json", Text, nullable=False),
            Column("body", LargeBinary, nullable=True),
            Column("idempotency_key", String(64), nullable=False),
            Column("source", String(255), nullable=False),  # the flow or trigger that asked
            Column("object_name", String(255), nullable=True),
            Column("record_id", String(18), nullable=True, index=True),
            Column("on_success_json", Text, nullable=True),  # fields of the record to set from the response
            Column("user_id", String(18), nullable=False),
            Column("api_version", String(8), nullable=False),
            *_delivery_columns(),
        ),
        # Outbound-message notifications: queued with the save, sent (up to 100 per message) with the record's data at
        # send time, retried up to 2 hours apart and dropped after 24 hours, as the platform does.
        Table(
            "il_om_notification", metadata,
            Column("id", String(18), primary_key=True),
            Column("definition", String(255), nullable=False, index=True),
            Column("object_name", String(255), nullable=False),
            Column("record_id", String(18), nullable=False),
            *_delivery_columns(),
        ),
        # Secrets (named-credential passwords, client secrets), Fernet-encrypted with a key kept outside the store.
        Table(
            "il_secret", metadata,
            Column("name", String(255), primary_key=True),
            Column("value", LargeBinary, nullable=False),
            Column("updated_at", DateTime, nullable=False),
        ),
        # The bytes of a job: its CSV uploads (``kind`` upload), and what processing wrote (success, failure,
        # result). Kept in the store, so an accepted upload survives a crash and any process can serve results.
        # ``rows`` counts CSV records in the part; ``offsets`` packs where each record starts (query results).
        Table(
            "il_bulk_part", metadata,
            Column("job_id", String(18), primary_key=True),
            Column("kind", String(8), primary_key=True),
            Column("seq", Integer, primary_key=True),
            Column("first_row", BigInteger, nullable=False, default=0),
            Column("rows", Integer, nullable=False, default=0),
            Column("data", LargeBinary, nullable=False),
            Column("offsets", LargeBinary, nullable=True),
        ),
        # Every serving process (API, worker, supervisor) of the org while it runs, with its heartbeat and what it
        # runs (``detail_json``), for `interlink doctor` (app/processes.py). A process that crashed stops
        # heartbeating; rows of processes silent for a day are pruned.
        Table(
            "il_process", metadata,
            Column("id", String(64), primary_key=True),
            Column("kind", String(16), nullable=False),  # api | worker | supervisor
            Column("host", String(255), nullable=False),
            Column("pid", Integer, nullable=False),
            Column("started_at", DateTime, nullable=False),
            Column("last_seen", DateTime, nullable=False, index=True),
            Column("version", String(32), nullable=False),
            Column("schema_version", String(64), nullable=False, default=""),  # the deployed schema it runs
            Column("detail_json", Text, nullable=False, default="{}"),
        ),
    ]
    return {table.name: table for table in tables}


def build_metadata(schema: Schema) -> tuple[MetaData, dict[str, Table], dict[str, Table]]:
    """Declare every object table and system table; returns (metadata, object tables, system tables)."""
    metadata = MetaData()
    system = system_tables(metadata)
    objects = {obj.name.lower(): object_table(obj, metadata) for obj in schema if obj.is_stored}
    return metadata, objects, system
