"""The webhook source: JSON POSTs to a local HTTP endpoint, verified by HMAC and spooled before they are accepted.

A Starlette app served by uvicorn in a background thread answers ``POST <path>``:

- the signature header (``X-Signature: sha256=<hex>`` by default) must be the HMAC of the raw body (or of
  ``<timestamp>.<body>`` when a timestamp header is configured) under the shared secret, compared in constant
  time; a missing or wrong signature gets **401** and nothing is stored;
- with ``timestampHeader`` set, the header (Unix seconds) must be within ``tolerance`` seconds of now, so a
  captured request cannot be replayed later (the timestamp is signed, so it cannot be refreshed either);
- the body must be a JSON object (**400** otherwise; **413** past ``maxBodyBytes``);
- the message is written to a SQLite spool file (WAL, ``synchronous=FULL``) and only then answered **202**:
  whatever was accepted survives a crash. A delivery id seen in the last ``dedupeWindow`` seconds is answered
  202 again without being spooled twice (senders retry when they miss our answer).

The pipeline reads from the spool; :meth:`WebhookSource.acknowledge` deletes the entries up to the position
(the spool sequence), so the spool holds exactly what was accepted and not yet done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from interlink.middleware.base import Message, PipelineSpecError, Source
from interlink.middleware.sources import config_error, duration, expand_env, state_dir

log = logging.getLogger(__name__)

_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
"""


class Spool:
    """A durable FIFO of accepted requests in one SQLite file, shared by the HTTP thread and the reader."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the commit is on disk before we answer 202 (NORMAL may lose the last commits on power loss).
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SPOOL_SCHEMA)

    def append(self, message_id: str, body: str, headers: dict[str, Any], dedupe_window: float,
               remember: bool = True) -> int | None:
        """Store one accepted request; None when ``message_id`` was already accepted within the window.

        ``remember`` False skips the duplicate check (an id we generated cannot come back).
        """
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM seen WHERE received_at < ?", (now - dedupe_window,))
                if remember:
                    if self._conn.execute("SELECT 1 FROM seen WHERE id = ?", (message_id,)).fetchone():
                        self._conn.execute("COMMIT")
                        return None
                    self._conn.execute("INSERT INTO seen (id, received_at) VALUES (?, ?)", (message_id, now))
                cursor = self._conn.execute(
                    "INSERT INTO spool (id, body, headers, received_at) VALUES (?, ?, ?, ?)",
                    (message_id, body, json.dumps(headers), now))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._arrived.notify_all()
            return int(cursor.lastrowid or 0)

    def read_after(self, seq: int, limit: int, timeout: float) -> list[tuple[int, str, str, str, float]]:
        """Up to ``limit`` entries after ``seq``, waiting up to ``timeout`` seconds for the first."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            while True:
                rows = self._conn.execute(
                    "SELECT seq, id, body, headers, received_at FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit)).fetchall()
                remaining = deadline - time.monotonic()
                if rows or remaining <= 0:
                    return rows
                self._arrived.wait(remaining)

    def delete_through(self, seq: int) -> None:
        """Forget every entry up to and including ``seq`` (they are done)."""
        with self._lock:
            self._conn.execute("DELETE FROM spool WHERE seq <= ?", (seq,))

    def pending(self) -> int:
        """How many accepted entries are not acknowledged yet."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class WebhookSource(Source):
    """An HTTP endpoint whose verified JSON POSTs become messages (see the module docstring)."""

    name = "webhook"

    def __init__(self, *, spool_path: Path, secret: str | None, host: str = "127.0.0.1", port: int = 8088,
                 path: str = "/webhook", signature_header: str = "X-Signature", algorithm: str = "sha256",
                 signature_prefix: str | None = None, timestamp_header: str | None = None,
                 tolerance: float = 300.0, delivery_id_header: str = "X-Delivery-Id",
                 dedupe_window: float = 86400.0, max_body_bytes: int = 1 << 20,
                 clock: Any = time.time) -> None:
        if algorithm not in hashlib.algorithms_guaranteed:
            raise PipelineSpecError(f"webhook: unknown HMAC algorithm {algorithm!r}")
        self.spool_path = spool_path
        self.secret = secret.encode() if secret else None
        self.host = host
        self.port = port
        self.path = path if path.startswith("/") else "/" + path
        self.signature_header = signature_header
        self.algorithm = algorithm
        self.signature_prefix = f"{algorithm}=" if signature_prefix is None else signature_prefix
        self.timestamp_header = timestamp_header
        self.tolerance = tolerance
        self.delivery_id_header = delivery_id_header
        self.dedupe_window = max(dedupe_window, tolerance)
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.spool: Spool | None = None
        self._read_seq = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- the HTTP side ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint's URL (with the real port once open, also when ``port`` was 0)."""
        return f"http://{self.host}:{self.port}{self.path}"

    def verify(self, body: bytes, headers: Any) -> str | None:
        """Why the request is refused (a short reason), or None when its signature and timestamp hold."""
        signed = body
        if self.timestamp_header:
            stamp = headers.get(self.timestamp_header)
            if not stamp:
                return f"missing {self.timestamp_header}"
            try:
                sent_at = float(stamp)
            except ValueError:
                return f"invalid {self.timestamp_header}"
            if abs(self.clock() - sent_at) > self.tolerance:
                return "timestamp outside the tolerance"
            signed = stamp.encode() + b"." + body
        if self.secret is None:
            return None
        given = headers.get(self.signature_header) or ""
        if not given.startswith(self.signature_prefix):
            return f"missing or malformed {self.signature_header}"
        expected = hmac.new(self.secret, signed, self.algorithm).hexdigest()
        if not hmac.compare_digest(given[len(self.signature_prefix):].strip().lower().encode(), expected.encode()):
            return "signature mismatch"
        return None

    async def _receive(self, request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        refused = self.verify(body, request.headers)
        if refused:
            log.warning("webhook %s refused a request from %s: %s", self.path,
                        request.client.host if request.client else "?", refused)
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        delivery_id = request.headers.get(self.delivery_id_header)
        message_id = delivery_id or uuid.uuid4().hex
        headers = {
            "received_at": self.clock(),
            "content_type": request.headers.get("content-type"),
            "user_agent": request.headers.get("user-agent"),
            "remote_addr": request.client.host if request.client else None,
            "path": request.url.path,
        }
        spool = self.spool
        if spool is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        try:
            # The fsync'd commit happens off the event loop; 202 only after it.
            seq = await run_in_threadpool(spool.append, message_id, json.dumps(payload), headers,
                                          self.dedupe_window, bool(delivery_id))
        except sqlite3.Error:
            log.exception("webhook spool write failed")
            return JSONResponse({"error": "could not store the request"}, status_code=503)
        return JSONResponse({"id": message_id, "duplicate": seq is None}, status_code=202)

    def build_app(self) -> Starlette:
        """The ASGI app (usable in-process with a test client once the spool is open)."""
        return Starlette(routes=[Route(self.path, self._receive, methods=["POST"])])

    # -- the Source side ----------------------------------------------------------------------------------

    def open(self, checkpoint: Any | None) -> None:
        """Open the spool (dropping what ``checkpoint`` covers) and start serving."""
        self.spool = Spool(self.spool_path)
        if checkpoint is not None:
            self._read_seq = int(checkpoint)
            self.spool.delete_through(self._read_seq)
        config = uvicorn.Config(self.build_app(), host=self.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=self._serve, args=(server,), name=f"webhook{self.path}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                self.spool.close()
                raise RuntimeError(f"webhook: could not listen on {self.host}:{self.port}")
            time.sleep(0.01)
        with contextlib.suppress(Exception):
            self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread

    @staticmethod
    def _serve(server: uvicorn.Server) -> None:
        asyncio.run(server.serve())

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """The next spooled requests, oldest first."""
        if self.spool is None:
            raise RuntimeError("webhook source is not open")
        rows = self.spool.read_after(self._read_seq, max(max_messages, 1), timeout)
        messages = []
        for seq, message_id, body, headers, _received in rows:
            messages.append(Message(body=json.loads(body), id=message_id, headers=json.loads(headers),
                                    position=seq))
            self._read_seq = seq
        return messages

    def acknowledge(self, position: Any) -> None:
        """Delete the spooled entries up to ``position`` (they are done)."""
        if self.spool is not None and position is not None:
            self.spool.delete_through(int(position))

    def close(self) -> None:
        """Stop serving and close the spool (what is not acknowledged stays in it for the next run)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
        if self.spool is not None:
            self.spool.close()
            self.spool = None


def make_webhook_source(config: dict[str, Any], context: Any) -> WebhookSource:
    """Build a webhook source from its pipeline config (keys in docs/middleware-connectors.md)."""
    secret = expand_env(config.get("secret"), where="webhook secret")
    if not secret and not config.get("allowUnsigned", False):
        raise config_error("webhook: 'secret' is required (or set allowUnsigned: true)", "secret")
    pipeline = getattr(context, "pipeline", None) or "pipeline"
    spool = config.get("spool")
    spool_path = Path(spool) if spool else state_dir(context) / "spool" / f"{pipeline}.webhook.sqlite"
    if not spool_path.is_absolute() and spool and getattr(context, "project_dir", None):
        spool_path = Path(context.project_dir) / spool_path
    return WebhookSource(
        spool_path=spool_path,
        secret=secret or None,
        host=str(config.get("host", "127.0.0.1")),
        port=int(config.get("port", 8088)),
        path=str(config.get("path", "/webhook")),
        signature_header=str(config.get("signatureHeader", "X-Signature")),
        algorithm=str(config.get("algorithm", "sha256")),
        signature_prefix=config.get("signaturePrefix"),
        timestamp_header=config.get("timestampHeader"),
        tolerance=duration(config, "tolerance", 300.0) or 0.0,
        delivery_id_header=str(config.get("deliveryIdHeader", "X-Delivery-Id")),
        dedupe_window=duration(config, "dedupeWindow", 86400.0) or 0.0,
        max_body_bytes=int(config.get("maxBodyBytes", 1 << 20)),
    )


__all__ = ["Spool", "WebhookSource", "make_webhook_source"]
