"""Settings: one frozen tree, each setting declared once.

Precedence, lowest first: the default declared here < ``interlink.toml`` (in the project directory, or
the file named by ``INTERLINK_CONFIG``) < ``INTERLINK_<NAME>`` environment variables < CLI flags.
Every setting carries its help text; ``docs/settings.md`` lists them all and a test keeps it so.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from interlink.errors import ConfigurationError


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every knob of an Interlink org. Build with :meth:`load`; never mutate."""

    data_dir: Path = _setting(Path(".interlink"), "Directory for the embedded store, TLS material and logs.")
    project_dir: Path = _setting(Path("."), "Org project directory holding metadata/ (and SFDX source).")
    host: str = _setting("127.0.0.1", "Interface the HTTPS API listens on.")
    port: int = _setting(8443, "HTTPS port for REST, OAuth, SOAP login and the console.")
    insecure_http_port: int = _setting(0, "Also serve plain HTTP on this port for debugging (0 = off).")
    store: str = _setting("", "Store URL: empty for SQLite under data_dir, or postgresql://user@host/db.")
    sample_data: bool = _setting(False, "Seed sample accounts, contacts and opportunities on a new org.")
    admin_password: str = _setting("", "Password for admin@interlink.local on a new org (generated when empty).")
    sample_password: str = _setting(
        "", "Password of the sample users --sample-data creates (empty: the admin password when that is set, else "
            "one generated and printed once).")
    org_name: str = _setting("Interlink Local Org", "Organization name reported by login and identity calls.")
    api_min_version: str = _setting("31.0", "Oldest REST API version served (vXX.X).")
    api_max_version: str = _setting("66.0", "Newest REST API version served (vXX.X).")
    daily_api_requests: int = _setting(100_000, "API requests allowed per rolling 24 hours (DailyApiRequests).")
    session_timeout: int = _setting(7200, "Seconds an access token stays valid without use.")
    token_cache_seconds: float = _setting(
        2.0, "How long a process trusts a validated token before checking the store again (revocation lag)."
    )
    fiscal_year_start_month: int = _setting(1, "Month (1-12) the fiscal year starts in, for FISCAL_* date literals.")
    soap_login_enabled: bool = _setting(True, "Answer SOAP partner login(); off answers the platform's fault.")
    lockout_attempts: int = _setting(
        10, "Consecutive failed password logins that lock a user out (0 = never lock).")
    lockout_minutes: int = _setting(15, "Minutes a locked-out user stays locked (interlink users unlock ends it).")
    trusted_proxies: str = _setting(
        "", "Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For gives the client's "
        "address; empty: the socket peer is the client.")
    enforce_ip_ranges_every_request: bool = _setting(
        False, "Refuse each request of a session from outside its profile's login IP ranges, not only the login.")
    admin_approved_apps_only: bool = _setting(
        False, "API Access Control: OAuth logins only through connected apps whose Permitted Users are admin "
               "approved, except for users with Use Any API Client.")
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    bus: str = _setting(
        "", "Event bus URL: empty for the embedded SQLite log under data_dir, nats://host:port, or memory:// "
            "(not durable).")
    grpc_port: int = _setting(7443, "TLS port of the Pub/Sub API (gRPC); 0 picks a free one, -1 turns it off.")
    event_retention_hours: float = _setting(72.0, "Hours platform and change events stay replayable.")
    hourly_published_events: int = _setting(
        250_000, "Platform events the org may publish per hour (HourlyPublishedPlatformEvents).")
    hourly_odata_callouts: int = _setting(
        20_000, "Requests the org may send to external data sources per hour (HourlyODataCallout).")
    cdc_overflow_threshold: int = _setting(
        100_000, "Changed records in one transaction above which CDC sends header-only OVERFLOW events.")
    pubsub_keepalive_seconds: float = _setting(
        270.0, "Idle seconds before a Pub/Sub subscription gets an empty keep-alive FetchResponse.")
    bulk_daily_records: int = _setting(
        150_000_000, "Bulk API 2.0 ingest records allowed per rolling 24 hours.")
    bulk_daily_batches: int = _setting(
        15_000, "Bulk API batches (10,000-record internal batches of ingest jobs) allowed per rolling 24 hours.")
    bulk_daily_query_jobs: int = _setting(10_000, "Bulk API 2.0 query jobs allowed per rolling 24 hours.")
    bulk_batch_size: int = _setting(10_000, "Records per internal batch of a Bulk API 2.0 ingest job.")
    bulk_max_upload_mb: int = _setting(150, "Largest CSV upload (PUT .../batches) in MB.")
    request_max_body_mb: int = _setting(
        50, "Largest request body in MB for REST, composite, GraphQL, OData and the console (Bulk uploads: "
            "bulk_max_upload_mb; OAuth and SOAP login: 64 KB).")
    request_header_timeout: float = _setting(
        20.0, "Seconds a client has to send a request's headers before the connection is closed.")
    request_body_timeout: float = _setting(
        30.0, "Seconds a request body may take to arrive, plus one more for every request_body_min_rate bytes "
              "received; a slower body is answered 408 and the connection closed.")
    request_body_min_rate: int = _setting(
        500, "Bytes per second that keep a slow upload going (see request_body_timeout).")
    bulk_workers: int = _setting(
        2, "Background threads of a serving process that run its background jobs: Bulk API jobs, async callouts, "
           "outbound messages, event-triggered and scheduled flows (0 leaves them to other processes, e.g. "
           "interlink worker --jobs).")
    workers: int = _setting(
        1, "API processes interlink up runs behind its HTTPS and Pub/Sub ports; above 1 a supervisor starts them "
           "and restarts any that dies.")
    middleware_store: str = _setting(
        "", "Middleware store URL (pipeline checkpoints, dedupe keys, dead letters, runs): empty for SQLite "
            "middleware.db under data_dir, or postgresql://user@host/db.")
    metrics_enabled: bool = _setting(
        True, "Serve Prometheus metrics at /metrics (no auth; off: /metrics answers 404 and requests are not "
              "timed).")

    def __post_init__(self) -> None:
        # Absolute paths, so what is printed for clients (the CA bundle) works from any directory.
        for name in ("data_dir", "project_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)).expanduser().resolve())

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def help_for(cls, name: str) -> str:
        return str(next(f for f in fields(cls) if f.name == name).metadata["help"])

    @staticmethod
    def env_name(name: str) -> str:
        return "INTERLINK_" + name.upper()

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Merge defaults < config file < environment < flags into one frozen ``Settings``.

        ``flags`` entries whose value is None are ignored, so CLI options can default to None.
        """
        env = os.environ if env is None else env
        flags = {k: v for k, v in (flags or {}).items() if v is not None}
        values: dict[str, Any] = {}

        project_dir = Path(flags.get("project_dir") or env.get("INTERLINK_PROJECT_DIR") or ".")
        path = config_file or (Path(env["INTERLINK_CONFIG"]) if env.get("INTERLINK_CONFIG") else None)
        if path is None and (project_dir / "interlink.toml").is_file():
            path = project_dir / "interlink.toml"
        if path is not None:
            values.update(_read_toml(path))
        for name in cls.names():
            if cls.env_name(name) in env:
                values[name] = env[cls.env_name(name)]
        values.update(flags)
        unknown = set(values) - set(cls.names())
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{name: _coerce(cls, name, value) for name, value in values.items()})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: _coerce(type(self), k, v) for k, v in changes.items()})

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of the store: the explicit one, or SQLite under ``data_dir``."""
        if self.store:
            return self.store
        return f"sqlite:///{(self.data_dir / 'org.db').resolve()}"

    @property
    def bus_url(self) -> str:
        """The event bus: the explicit URL, or the embedded SQLite log under ``data_dir``."""
        if self.bus:
            return self.bus
        return f"sqlite:///{(self.data_dir / 'bus.db').resolve()}"

    @property
    def middleware_store_url(self) -> str:
        """The middleware's own store: the explicit URL, or SQLite ``middleware.db`` under ``data_dir``."""
        if self.middleware_store:
            return self.middleware_store
        return f"sqlite:///{(self.data_dir / 'middleware.db').resolve()}"

    @property
    def store_backend(self) -> str:
        return self.store_url.split(":", 1)[0].split("+", 1)[0]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    section = data.get("interlink", data)
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: [interlink] must be a table")
    return {key.replace("-", "_"): value for key, value in section.items()}


def _coerce(cls: type[Settings], name: str, value: Any) -> Any:
    """Turn a string from env/TOML/CLI into the declared type, with a clear error."""
    declared = next((f for f in fields(cls) if f.name == name), None)
    if declared is None:
        raise ConfigurationError(f"unknown setting: {name}")
    kind = type(declared.default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if issubclass(kind, Path):
            return Path(value).expanduser()
        return str(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"setting {name} ({cls.env_name(name)}) expects {kind.__name__}, got {value!r}"
        ) from None


__all__ = ["Settings"]
