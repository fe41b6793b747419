"""uvicorn's h11 protocol with deadlines for a request's arrival and a bound on the connections held open.

uvicorn closes idle keep-alive connections, but a connection that sends part of a request and then nothing, or
one byte a second (a slow client, or a slowloris attack), stays open for good, and a thousand of them exhaust the
process's file descriptors, so that a normal request fails. This protocol

- closes a connection whose request headers have not all arrived ``config.header_timeout`` seconds after the
  connection was made or the request's first bytes came;
- closes one whose request body has not all arrived ``config.body_timeout`` seconds after its headers, plus a
  grace of :data:`BODY_GRACE` seconds (the proxy's own routes answer 408 at ``body_timeout``; this is the backstop
  for a route that never reads the body);
- holds at most ``config.max_connections`` connections: a connection past the bound closes the one that has been
  waiting on its client the longest (sending its request, or idle between requests), never one whose request is
  being answered; when every connection is being answered, the new one gets a 503 and is closed;
- reports the event loop's "out of file descriptors" on accepting as one line, at most every 10 seconds, instead
  of a traceback each time.

A module of its own so that worker processes can unpickle it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BODY_GRACE", "GuardedH11", "HeaderTimeoutH11"]

BODY_GRACE = 5.0
_log = logging.getLogger("uvicorn.error")
_BUSY = json.dumps({"error": {"message": "the proxy holds as many connections as it may and is answering all of "
                              "them; try again shortly", "type": "server_error", "param": None,
                              "code": "too_many_connections"}}).encode()
_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                  b"retry-after: 1\r\ncontent-length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)


class GuardedH11(H11Protocol):
    """Pass as uvicorn's ``http=``; reads ``header_timeout`` (default 10 s), ``body_timeout`` (default 30 s) and
    ``max_connections`` (default: none) from the uvicorn config's attributes."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "header_timeout", 10.0))
        self.body_timeout = float(getattr(config, "body_timeout", 30.0))
        self.max_connections: int | None = getattr(config, "max_connections", None)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""  # what the timer waits for: "headers" or "body"
        self.waiting_since: float | None = None  # waiting on the client since (None: its request is answered)

    # -- deadlines ------------------------------------------------------------------------------------
    def _arm(self, phase: str, seconds: float) -> None:
        if self._phase == phase or seconds <= 0:
            return
        self._disarm()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, ""

    def _follow(self) -> None:
        """Set the deadline and the waiting mark for the state the client's side of the connection is in."""
        state = self.conn.their_state
        if state is h11.IDLE:
            self._arm("headers", self.header_timeout)
        elif state is h11.SEND_BODY:
            self._arm("body", self.body_timeout + BODY_GRACE)
        else:  # the whole request has arrived (or the connection is closing): the app answers it
            self._disarm()
            self.waiting_since = None

    def _too_slow(self) -> None:
        self._timer, self._phase = None, ""
        if not self.transport.is_closing():
            self.transport.close()

    # -- the connection's life --------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _quiet_accept_errors(self.loop)
        self.waiting_since = time.monotonic()
        self._arm("headers", self.header_timeout)  # a connection that never sends a byte is closed too
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self.waiting_since is None:
            self.waiting_since = time.monotonic()
        super().data_received(data)
        if not self.transport.is_closing():
            self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.waiting_since = time.monotonic()  # idle between requests: uvicorn's keep-alive timeout runs
            self._disarm()
        elif not self.transport.is_closing() and self.conn.their_state is h11.SEND_BODY:
            self.waiting_since = self.waiting_since or time.monotonic()  # answered before its body came

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _make_room(self) -> None:
        """Close the connection that has waited on its client the longest, or refuse this one."""
        waiting = [c for c in self.connections if c is not self and isinstance(c, GuardedH11)
                   and c.waiting_since is not None and not c.transport.is_closing()]
        if waiting:
            oldest = min(waiting, key=lambda c: c.waiting_since or 0.0)
            oldest._disarm()
            oldest.transport.close()
            return
        self.transport.write(_BUSY_RESPONSE)
        self.transport.close()


HeaderTimeoutH11 = GuardedH11  # the name before the body deadline and the connection bound


_QUIETED: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Install, once per event loop, an exception handler that logs asyncio's "socket.accept() out of system
    resource" as one line at most every 10 seconds (asyncio itself waits a second and accepts again) and passes
    every other error to the handler that was there."""
    if loop in _QUIETED:
        return
    _QUIETED.add(loop)
    previous = loop.get_exception_handler()
    last = [0.0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = time.monotonic()
            if now - last[0] >= 10.0:
                last[0] = now
                _log.warning("out of file descriptors accepting connections (%s): retrying in a second; "
                             "raise the file limit (ulimit -n) or lower --max-connections", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
