"""The composition root: ``Org.open(settings)`` wires store, records, security and metadata together.

An org is opened by ``interlink up`` and by every CLI command that touches data, and by tests (see
``interlink.testing``). Opening a new data directory bootstraps the org: the organization record, the
deployed metadata, the admin user and the CLI's connected app.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from interlink import ids
from interlink.app.metrics import OrgMetrics
from interlink.app.monitoring import pipeline_monitor
from interlink.app.permissions import apply_permission_metadata
from interlink.app.processes import ProcessRegistry
from interlink.app.provisioning import apply_identity_metadata
from interlink.app.sharing import apply_sharing_metadata
from interlink.automation.actions import python_action
from interlink.automation.event_flows import EventFlowRunner
from interlink.automation.flows import FlowRuntime, load_flows
from interlink.automation.scheduled_flows import ScheduledFlowRunner
from interlink.automation.triggers import ActionDef, TriggerRuntime, load_code, load_triggers
from interlink.bus.bus import EventBus, open_backend
from interlink.bus.channels import metadata_members
from interlink.callouts.actions import callout_action, outbound_action, service_action
from interlink.callouts.credentials import load_credentials
from interlink.callouts.outbound import OutboundQueue, load_outbound_messages
from interlink.callouts.queue import CalloutQueue
from interlink.callouts.services import ServiceDirectory, load_services
from interlink.connect.records import ExternalRecords
from interlink.connect.service import ExternalData
from interlink.connect.sources import load_sources
from interlink.errors import ConfigurationError
from interlink.jobs.bulk import BulkJobs, BulkLimits
from interlink.jobs.classic import ClassicJobs
from interlink.jobs.worker import JobWorker
from interlink.metadata.loader import LoadedMetadata, load_project
from interlink.records.context import Context
from interlink.records.events import EventEmitter
from interlink.records.field_history import install_field_history
from interlink.records.hooks import HookRegistry
from interlink.records.service import RecordService
from interlink.security.access import SETUP_OBJECTS, AccessService
from interlink.security.apps import ConnectedApp
from interlink.security.audit import AuditedDirectory, AuditedSecretStore, install_setup_audit
from interlink.security.limits import ApiUsage
from interlink.security.login_restrictions import parse_networks
from interlink.security.oauth import OAuthService
from interlink.security.passwords import generate_password
from interlink.security.sharing import manual_share_guard
from interlink.security.tokens import TokenService
from interlink.settings import Settings
from interlink.soql import search_index
from interlink.soql.cursors import CursorStore
from interlink.soql.engine import QueryEngine
from interlink.store.database import Store, utcnow
from interlink.store.migrate import Plan

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin@interlink.local"
_PURGE_SECONDS = 600.0
CLI_APP_NAME = "Interlink CLI"
# What load_project_code reads, relative to the project directory (watched by reload_project_if_changed).
_PROJECT_CODE = ("triggers", "actions", "adapters", "metadata/flows", "metadata/namedCredentials",
                 "metadata/externalServices", "metadata/outboundMessages", "metadata/dataSources",
                 "metadata/odata.yaml")


@dataclass
class BootstrapReport:
    """What opening the org did: whether it was new, the generated password (shown once), the deploy."""

    created: bool = False
    admin_password: str | None = None
    plan: Plan | None = None
    warnings: list[str] = field(default_factory=list)
    identity_changes: list[str] = field(default_factory=list)


class Org:
    """A running org: every service of the layers below, wired once."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.hooks = HookRegistry()
        self.records = RecordService(store, self.hooks)
        if not 1 <= settings.fiscal_year_start_month <= 12:
            raise ConfigurationError("fiscal_year_start_month must be between 1 and 12")
        self.query = QueryEngine(store, fiscal_start_month=settings.fiscal_year_start_month)
        self.cursors = CursorStore(store)
        search_index.install_search_hooks(self.hooks, store)
        install_field_history(self.hooks, store)
        self.triggers = TriggerRuntime(self.hooks, self.records, self.query)
        self.secrets = AuditedSecretStore(store, settings.data_dir)
        self.callouts = CalloutQueue(store, {})
        self.callouts.records = self.records
        self.triggers.services["callouts"] = self.callouts
        self.outbound = OutboundQueue(store, self.callouts, lambda: (self.org_id, self.instance_url()),
                                      self.mint_token)
        self.services = ServiceDirectory(self.callouts)
        self.callouts.typed = self.services.typed  # queued External Service answers are typed before mapping
        self.python_actions: dict[str, ActionDef] = {}
        self.flows = FlowRuntime(self.hooks, self.records, {
            "callout": callout_action(self.callouts), "outbound_message": outbound_action(self.outbound),
            "external_service": service_action(self.services, self.callouts),
            "python": python_action(self.triggers, self.python_actions)})
        self.flows.query = self.query  # loops query through the one engine
        self.directory = AuditedDirectory(store)
        install_setup_audit(self.hooks, store, self._setup_actor, deploy_user=ADMIN_USERNAME, directory=self.directory,
                            secrets=self.secrets)
        self.access = AccessService(store)
        # A change to a profile, permission set, assignment, role or user applies at once here.
        self.hooks.register("on_commit", lambda _event: self.access.invalidate(),
                            objects=[*SETUP_OBJECTS, "User", "UserRole"])
        # Manual shares (AccountShare, Invoice__Share, ...): Manual, Read or Edit, by whoever may share the record.
        self.hooks.register("before_save", manual_share_guard(store))
        self.org_id = ""
        self.org_name = settings.org_name
        self.created_at: datetime | None = None
        self.tokens: TokenService
        self.oauth: OAuthService
        self.usage = ApiUsage(store, settings.daily_api_requests)
        self.bootstrap = BootstrapReport()
        backend = open_backend(settings.bus_url, retention_seconds=settings.event_retention_hours * 3600)
        self.bus = EventBus(store, backend, retention_hours=settings.event_retention_hours,
                            hourly_allocation=settings.hourly_published_events,
                            overflow_threshold=settings.cdc_overflow_threshold)
        self.metrics = OrgMetrics(self)  # Prometheus (/metrics): the bus and the surfaces count, a scrape reads
        self.bus.appended.append(self.metrics.events_appended)
        self.events = EventEmitter(store, self.records.units, self.bus)
        self.records.events = self.events
        if settings.bulk_batch_size < 1 or settings.bulk_max_upload_mb < 1 or settings.bulk_workers < 0:
            raise ConfigurationError("bulk_batch_size and bulk_max_upload_mb must be at least 1, "
                                     "bulk_workers at least 0")
        self.bulk = BulkJobs(store, self.query, BulkLimits(
            daily_records=settings.bulk_daily_records, daily_batches=settings.bulk_daily_batches,
            daily_query_jobs=settings.bulk_daily_query_jobs, batch_size=settings.bulk_batch_size,
            max_upload_bytes=settings.bulk_max_upload_mb * 1024 * 1024))
        self.classic = ClassicJobs(self.bulk)
        self.external = ExternalData(store, hourly_allocation=settings.hourly_odata_callouts)
        self.query.external = self.external
        self.records.external = ExternalRecords(self.external)
        self.worker = JobWorker(self.bulk, self.records, self.query,
                                lambda user_id, version: self.context_for(user_id, api_version=version),
                                threads=settings.bulk_workers)
        self.event_flows = EventFlowRunner(self.flows, self.bus, store, self.records,
                                           lambda: self.admin_context().as_system())
        self.scheduled_flows = ScheduledFlowRunner(self.flows, store, self.records, self.query,
                                                   lambda: self.admin_context().as_system())
        self.worker.tasks.extend([self.callouts.run_once, self.outbound.run_once, self.event_flows.run_once,
                                  self.scheduled_flows.run_once])
        self._purged_at = 0.0
        self.pipeline_monitor = pipeline_monitor(self)  # for the console (the middleware's own store)
        self.processes = ProcessRegistry(store)  # every serving process of the org, with its heartbeat

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, deploy: bool = True, lenient_project: bool = False) -> Org:
        """Open (and on first use bootstrap) the org described by ``settings``.

        With ``deploy`` the project's metadata is loaded and additive changes are applied; destructive
        ones are left for ``interlink deploy --allow-destructive`` and reported as warnings.

        ``lenient_project`` opens the org even when the project's code (flows, triggers, credentials ...) does
        not load, keeping the error in :attr:`project_error`: for commands that write no records (``interlink
        deploy``, whose new fields a new flow may need; ``interlink token``). Everything else refuses to run
        without the project's automation.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings.store_url)
        store.open()
        try:
            org = cls(settings, store)
        except BaseException:
            store.close()
            raise
        try:
            org.bus.open()
        except BaseException:
            store.close()
            raise
        try:
            org._bootstrap(deploy=deploy, lenient_project=lenient_project)
            org.events.recover()
        except BaseException:
            org.close()
            raise
        return org

    def _bootstrap(self, *, deploy: bool, lenient_project: bool = False) -> None:
        report = self.bootstrap
        existing = self._org_row()
        if existing is not None and json.loads(existing.settings_json or "{}").get("sample_metadata"):
            self._sample_metadata = True
        if deploy or existing is None:
            loaded = self.load_metadata()
            report.warnings.extend(loaded.warnings)
            plan = self.store.plan(loaded.schema)
            if plan.destructive and existing is not None:
                report.warnings.extend(
                    f"not applied (needs interlink deploy --allow-destructive): {c.description}"
                    for c in plan.destructive)
                additive_only = _without_destructive(loaded, self.store)
                report.plan = self.store.deploy(additive_only)
            else:
                report.plan = self.store.deploy(loaded.schema, allow_destructive=existing is None)
            self.bus.channels.replace_metadata_members(metadata_members(self.store.schema, loaded.channels))
        search_index.sync(self.store)  # create the SOSL index; rebuild it when stale
        try:
            self.load_project_code()
        except Exception as exc:
            if not lenient_project or existing is None:
                raise
            self.project_error = getattr(exc, "message", None) or str(exc)
            report.warnings.append(f"the project's code did not load: {self.project_error}")
        if existing is None:
            self._create_org(report)
            existing = self._org_row()
        assert existing is not None
        self.org_id = existing.id
        self.org_name = existing.name
        self.created_at = existing.created_at
        self.tokens = TokenService(self.store, self.org_id, session_timeout=self.settings.session_timeout,
                                   cache_seconds=self.settings.token_cache_seconds)
        self.oauth = OAuthService(self.store, self.directory, self.tokens, self.org_id)
        # Login policy: the org's settings, and the API Only User permission (profiles, permission sets) too.
        self.oauth.logins.configure(lockout_attempts=self.settings.lockout_attempts,
                                    lockout_minutes=self.settings.lockout_minutes)
        self.oauth.logins.api_only_permission = lambda user_id: self.access.for_user(user_id).has("ApiUserOnly")
        # Connected-app access (Permitted Users, API Access Control): who the user is in permission terms.
        self.oauth.user_grants = self.access.grant_names
        self.oauth.may_use_any_client = lambda user_id: self.access.for_user(user_id).has("UseAnyApiClient")
        self.oauth.admin_approved_apps_only = self.settings.admin_approved_apps_only
        # Profile login IP ranges and login hours: the client address they are checked against, and how often.
        self.trusted_proxies = parse_networks(self.settings.trusted_proxies)
        self.oauth.logins.enforce_ip_every_request = self.settings.enforce_ip_ranges_every_request
        self.oauth.logins.cache_seconds = self.settings.token_cache_seconds
        if deploy or report.created:
            report.identity_changes = apply_permission_metadata(self, self.settings.project_dir)
        if deploy:
            report.identity_changes += apply_identity_metadata(self, self.settings.project_dir)
        if deploy or report.created:  # groups name users, so after the project's users
            report.identity_changes += apply_sharing_metadata(self, self.settings.project_dir)

    _sample_metadata = False

    # -- the project's code and configuration ------------------------------------------------------------------

    def load_project_code(self) -> None:
        """Load triggers, actions, flows, named credentials, External Services, outbound messages, data sources
        and the OData exposure from the project, all or nothing: everything is read and checked before any of it
        replaces what is running."""
        from interlink.api.odata.config import check_against_schema, load_config

        project = self.settings.project_dir
        schema = self.store.schema
        triggers = load_triggers(project)
        credentials = load_credentials(project, self.secrets.get)
        outbound = load_outbound_messages(project, schema, credentials)
        services = load_services(project, credentials)
        sources = load_sources(project)
        actions = {a.name: a for a in load_code(project / "actions", "action")}
        # Flow actions are checked against the credentials, services, outbound messages and Python actions they
        # name: those are put in place for the check and put back if anything after them fails to load.
        kept = (self.callouts.credentials, self.outbound.definitions, self.services.services,
                dict(self.python_actions))
        self.callouts.credentials, self.outbound.definitions, self.services.services = credentials, outbound, services
        self.python_actions.clear()
        self.python_actions.update(actions)
        try:
            flows = load_flows(project, schema, include_sample=self.uses_sample_metadata, kinds=self.flows.kinds)
            odata = load_config(project, include_sample=self.uses_sample_metadata)
            check_against_schema(odata, schema)
            self.triggers.install(triggers, schema)
        except BaseException:
            self.callouts.credentials, self.outbound.definitions, self.services.services = kept[:3]
            self.python_actions.clear()
            self.python_actions.update(kept[3])
            raise
        self.external.configure(sources, credentials, project)
        self.flows.install(flows)
        self.odata_config = odata
        self.event_flows.prime()
        self.scheduled_flows.prime()
        self._project_fingerprint = self.project_fingerprint()

    def project_fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Name, size and modification time of every project file :meth:`load_project_code` reads."""
        project = self.settings.project_dir
        found: list[tuple[str, int, int]] = []
        for place in _PROJECT_CODE:
            path = project / place
            files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
            for file in files:
                if file.suffix in (".py", ".yaml", ".yml", ".json") and file.is_file():
                    stat = file.stat()
                    found.append((str(file), stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def reload_project_if_changed(self, *, schema_changed: bool = False) -> bool:
        """Pick up changed project code (a running server calls this every second). A project that no longer
        loads leaves the running configuration as it was; the error is logged and kept in :attr:`project_error`.
        """
        fingerprint = self.project_fingerprint()
        if fingerprint == self._project_fingerprint and not schema_changed:
            return False
        try:
            self.load_project_code()
        except Exception as exc:  # a file being edited: keep what runs, say why
            self._project_fingerprint = fingerprint
            message = getattr(exc, "message", None) or str(exc)
            if message != self.project_error:
                log.error("project not reloaded (the running configuration is kept): %s", message)
            self.project_error = message
            return False
        self.project_error = None
        log.info("project code reloaded")
        return True

    _project_fingerprint: tuple[tuple[str, int, int], ...] = ()
    project_error: str | None = None
    odata_config: Any = None

    @property
    def uses_sample_metadata(self) -> bool:
        """Whether the sample org's metadata (events, CDC, flows, OData exposure) is loaded (``--sample-data``)."""
        return bool(self.settings.sample_data or self._sample_metadata)

    def load_metadata(self) -> LoadedMetadata:
        """The project's metadata (plus the sample org's events and CDC selection on a sample-data org)."""
        deployed = self.store.schema if len(self.store.schema) else None
        return load_project(self.settings.project_dir, deployed, self.store.retired_prefixes(),
                            include_sample=self.settings.sample_data or self._sample_metadata)

    def _org_row(self) -> Any:
        table = self.store.system["il_org"]
        with self.store.read() as conn:
            return conn.execute(select(table)).first()

    def _create_org(self, report: BootstrapReport) -> None:
        org_id = ids.new_id("00D")
        admin_id = ids.new_id("005")
        password = self.settings.admin_password or generate_password()
        context = Context(admin_id, org_id, system_mode=True)
        with self.records.unit_of_work(context):
            self.store.system["il_org"]
            with self.store.write() as conn:
                conn.execute(self.store.system["il_org"].insert().values(
                    id=org_id, name=self.settings.org_name, created_at=utcnow(),
                settings_json=json.dumps({"sample_metadata": self.settings.sample_data})))
            _raise_first(self.records.create(context, "Organization", [{
                "Name": self.settings.org_name, "OrganizationType": "Developer Edition", "IsSandbox": False,
                "InstanceName": "LOCAL", "TimeZoneSidKey": "GMT", "LanguageLocaleKey": "en_US",
                "DefaultLocaleSidKey": "en_US"}], record_ids=[org_id]))
            _raise_first(self.records.create(context, "User", [{
                "Username": ADMIN_USERNAME, "FirstName": "Org", "LastName": "Admin",
                "Email": ADMIN_USERNAME, "Alias": "admin", "ProfileId": None,
                "CommunityNickname": "admin"}], record_ids=[admin_id]))
        self.directory.set_password(admin_id, password)
        self.directory.create_app(CLI_APP_NAME, run_as_user_id=admin_id,
                                  callback_url="http://localhost:1717/OauthRedirect")
        report.created = True
        report.admin_password = None if self.settings.admin_password else password
        log.info("created org %s with admin %s", org_id, ADMIN_USERNAME)

    # -- helpers for surfaces and the CLI ---------------------------------------------------------------------

    def instance_url(self) -> str:
        """The URL clients reach this org at (the running server's, when one recorded it)."""
        from interlink.app.server import read_server_file

        info = read_server_file(self.settings.data_dir) or {}
        return str(info.get("url") or f"https://{self.settings.host}:{self.settings.port}")

    def context_for(self, user_id: str, *, api_version: str = "66.0", app_id: str | None = None,
                    client: str = "") -> Context:
        return Context(user_id, self.org_id, api_version, client, app_id, access=self.access.for_user(user_id))

    def _setup_actor(self) -> str | None:
        """Who a setup change is recorded as: the caller of the open unit of work, else the admin (the CLI)."""
        uow = self.records.units.current
        if uow is not None:
            return uow.context.user_id
        admin = self.directory.user_by_username(ADMIN_USERNAME)
        return admin.id if admin is not None else None

    def admin_context(self) -> Context:
        admin = self.directory.user_by_username(ADMIN_USERNAME)
        if admin is None:
            raise ConfigurationError(f"{ADMIN_USERNAME} no longer exists")
        return Context(admin.id, self.org_id)

    def cli_app(self) -> ConnectedApp:
        app = self.directory.app_by_name(CLI_APP_NAME)
        if app is None:
            raise ConfigurationError(f"the connected app {CLI_APP_NAME!r} is missing")
        return app

    def mint_token(self, username: str) -> str:
        """An access token for ``username`` through the CLI's connected app (``interlink token``)."""
        user = self.directory.user_by_username(username)
        if user is None or not user.is_active:
            raise ConfigurationError(f"no active user {username!r}")
        token, _ = self.tokens.mint(user.id, app_id=self.cli_app().id)
        return token

    def housekeeping(self) -> None:
        """Periodic work of a serving process: flush usage counters and sessions' last use, tidy the event outbox,
        purge old jobs."""
        self.usage.flush()
        self.tokens.flush_touches()
        self.external.usage.flush()
        self.events.housekeeping()
        now = time.monotonic()
        if now - self._purged_at > _PURGE_SECONDS:
            self._purged_at = now
            self.bulk.purge()

    def upkeep(self) -> bool:
        """What every serving process does about once a second: :meth:`housekeeping`, then pick up a schema
        another process deployed and changed project code. True when the schema changed."""
        self.housekeeping()
        changed = self.store.reload_if_changed()
        self.reload_project_if_changed(schema_changed=changed)
        return changed

    def start_workers(self) -> None:
        """Run background jobs in this process (``interlink up``)."""
        # Claims of this host's processes that died (kill -9, a crash) go back at once; others wait for their lease.
        self.worker.release_orphans(dead_only=True)
        self.worker.start()

    def stop_workers(self) -> None:
        self.worker.stop()

    def close(self) -> None:
        try:
            self.worker.stop()
            self.usage.flush()
            if hasattr(self, "tokens"):
                self.tokens.flush_touches()
            self.external.usage.flush()
            self.external.close()
            self.pipeline_monitor.close()
            self.events.housekeeping()
        finally:
            try:
                self.bus.close()
            finally:
                self.store.close()

    def __enter__(self) -> Org:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _raise_first(results: list[Any]) -> None:
    for result in results:
        if result.errors:
            raise result.errors[0]


def _without_destructive(loaded: LoadedMetadata, store: Store) -> Any:
    """The target schema with destructive changes undone: deployed fields and objects kept as they are."""
    from dataclasses import replace

    from interlink.metadata.model import ObjectDef, Schema

    deployed = store.schema
    objects: list[ObjectDef] = []
    for obj in loaded.schema:
        old = deployed.object(obj.name)
        if old is None:
            objects.append(obj)
            continue
        fields = []
        for fdef in obj.fields:
            before = old.field(fdef.name)
            fields.append(fdef if before is None or (before.type == fdef.type and fdef.length >= before.length)
                          else before)
        fields += [f for f in old.fields if not obj.has_field(f.name)]
        objects.append(replace(obj, key_prefix=old.key_prefix, fields=tuple(fields)))
    objects += [o for o in deployed if o.name not in loaded.schema]
    return Schema(objects)
