"""The HTTP/1.1 protocol the server runs: uvicorn's h11 protocol with a deadline on each request's headers.

uvicorn closes a keep-alive connection that stays idle after an answer, but nothing bounds a client that sends its
request headers a byte at a time (slow-loris): any data received cancels the idle timer, and a new connection has
no timer at all. Here a connection must deliver complete request headers within ``header_timeout`` seconds of
opening, or of the first byte of its next request; otherwise it is answered 408 and closed, and the refusal is
logged. An idle kept-alive connection is left to uvicorn's keep-alive timeout.

The same deadline bounds how long the server goes on reading (and discarding) the rest of a body it refused
before reading it. The TLS handshake has asyncio's own 60-second limit; request bodies are bounded by
:mod:`interlink.api.guard`.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time."""

    header_timeout: float = 20.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._answered = False
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # h11 produced a new request: its headers are complete
            self._disarm()
        elif self._header_deadline is None and self.conn.trailing_data[0] and not self.transport.is_closing():
            self._arm()  # the first bytes of the next request on a kept-alive connection: its headers are due

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()
        # An idle kept-alive connection is uvicorn's to close (timeout_keep_alive); only a client still sending the
        # body of a request refused before reading it is held to the deadline here.
        if not self.transport.is_closing() and self.conn.their_state is h11.SEND_BODY:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # closed already, or a request is being served (its body has a limit of its own)
        client = self.client[0] if self.client else "?"
        if self.conn.their_state is h11.SEND_BODY:  # still sending the body of a request refused before reading it
            log.info("closed the connection from %s: the rest of a refused request body took over %g s", client,
                     self.header_timeout)
        elif self.conn.trailing_data[0]:  # part of a request, and no more of it in time: slow-loris
            log.warning("refused a connection from %s: no complete request headers within %g s (408)", client,
                        self.header_timeout)
            self.transport.write(_TIMED_OUT)
        elif not self._answered:  # connected and said nothing at all
            log.info("closed a connection from %s: no request within %g s", client, self.header_timeout)
        else:  # an idle keep-alive connection (uvicorn's own idle timeout is usually shorter)
            log.debug("closed an idle connection from %s", client)
        self.transport.close()


def protocol_with(header_timeout: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to hand to ``uvicorn.Config(http=...)`` for a given header deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})


__all__ = ["HeaderDeadlineProtocol", "protocol_with"]
