"""uvicorn's h11 protocol with deadlines for receiving a request.

uvicorn has no timeout while a request comes in: ``timeout_keep_alive`` only
covers the idle time between requests and is reset by every byte received, and a
connection that never sends anything has no timer at all. A client that sends a
header byte every few seconds (slowloris) is held for ever, and a few thousand of
them exhaust the server's file descriptors. ASGI middleware cannot help: it runs
only once the headers are complete.

So the protocol itself keeps one absolute deadline per request: ``header_timeout``
from the connection (or from the first byte of a kept-alive connection's next
request) until the headers are complete, then ``body_timeout`` until the body is.
Once the request is in, the deadline is off: a slow *response* is the app's business.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# Written raw: h11 cannot answer before it has parsed a request line.
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n")


class DeadlineProtocol(H11Protocol):
    """H11Protocol that drops a client too slow to send its headers or its body."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "headers" or "body" while a deadline runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined next request may already be under way.
        if self.conn.their_state is not h11.IDLE:
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Move the deadline along with what h11 has parsed so far."""
        state = self.conn.their_state
        if state is h11.IDLE:
            # The first bytes of a kept-alive connection's next request (uvicorn's
            # keep-alive timer stopped at the first byte): the header clock starts.
            if self._phase is None:
                self._arm("headers")
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        else:  # DONE, MUST_CLOSE, CLOSED, ERROR: the request is in (or over)
            self._disarm()

    def _arm(self, phase: str) -> None:
        self._disarm()
        seconds = self.header_timeout if phase == "headers" else self.body_timeout
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        client = "{}:{}".format(*self.client) if self.client else "a client"
        log.info("%s did not send the request %s in time; connection closed", client, phase)
        if phase == "headers":
            self.transport.write(_TIMED_OUT)
        # For a body, the app is reading it: closing tells it the client is gone.
        self.transport.close()


def protocol(*, header_timeout: float, body_timeout: float) -> type[DeadlineProtocol]:
    """A DeadlineProtocol class with these timeouts, for ``uvicorn.Config(http=...)``."""
    return type("DeadlineProtocol", (DeadlineProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


__all__ = ["DeadlineProtocol", "protocol"]
