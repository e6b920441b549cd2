"""A Prometheus endpoint for running pipelines: ``GET /metrics`` on a small threaded HTTP server.

``interlink pipelines run --metrics-port N`` and ``interlink worker --metrics-port N`` serve the counters of their
runners (:func:`interlink.middleware.runtime.metrics_text`: messages read, written, filtered, deduped, retried,
failed and dead-lettered, per pipeline and per step, and the lag), plus two gauges read when scraped: the New dead
letters of each pipeline in the middleware store (the DLQ depth) and, for workers of a NATS work queue, the
messages of the queue not delivered yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from interlink.middleware.runtime import PipelineRunner, metrics_text
from interlink.middleware.store import MiddlewareStore

log = logging.getLogger("interlink.middleware.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def pipeline_metrics_text(runners: Sequence[PipelineRunner], store: MiddlewareStore | None = None) -> str:
    """The runners' metrics in the Prometheus text format, with the DLQ depth of their pipelines from ``store``
    and the pending messages of work queues (runners with a ``queue_pending`` attribute)."""
    lines = [metrics_text(runners).rstrip("\n")]
    if store is not None:
        lines += ["# HELP interlink_pipeline_dead_letters Dead letters of a pipeline in state New (the DLQ depth).",
                  "# TYPE interlink_pipeline_dead_letters gauge"]
        for name in sorted({runner.name for runner in runners}):
            try:
                depth = store.count_dead_letters(name)
            except Exception:  # the store is unreachable: leave the gauge out rather than fail the scrape
                log.warning("metrics: counting dead letters of %s failed", name, exc_info=True)
                continue
            lines.append(f'interlink_pipeline_dead_letters{{pipeline="{_label(name)}"}} {depth}')
    queues = [(runner.name, getattr(runner, "queue_pending", None)) for runner in runners]
    lines += ["# HELP interlink_pipeline_queue_messages Messages of a pipeline's work queue not delivered yet "
              "(as last seen by this worker).",
              "# TYPE interlink_pipeline_queue_messages gauge"]
    lines += [f'interlink_pipeline_queue_messages{{pipeline="{_label(name)}"}} {pending}'
              for name, pending in queues if pending is not None]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``render()`` at ``GET /metrics`` on ``host:port`` (port 0 picks a free one) from a daemon thread."""

    def __init__(self, render: Callable[[], str], port: int, host: str = "127.0.0.1") -> None:
        self.render = render
        handler = _handler(render)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served (the one picked when 0 was asked)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Start serving in a background thread; answers self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="interlink-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _handler(render: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/metrics/"):
                self._answer(404, "not found: the metrics are at /metrics\n")
                return
            try:
                body = render()
            except Exception as exc:
                log.exception("metrics: rendering failed")
                self._answer(500, f"metrics failed: {type(exc).__name__}\n")
                return
            self._answer(200, body)

        def _answer(self, status: int, text: str) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    return MetricsHandler


def serve_metrics(runners: Sequence[PipelineRunner], store: MiddlewareStore | None, port: int,
                  host: str = "127.0.0.1") -> MetricsServer | None:
    """Start a :class:`MetricsServer` for ``runners`` on ``port`` (None when ``port`` is 0: off)."""
    if not port:
        return None
    return MetricsServer(lambda: pipeline_metrics_text(runners, store), port, host).start()


__all__ = ["CONTENT_TYPE", "MetricsServer", "pipeline_metrics_text", "serve_metrics"]
