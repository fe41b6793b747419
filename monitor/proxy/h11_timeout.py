"""uvicorn's h11 protocol with a deadline for each request's headers.

uvicorn closes idle keep-alive connections, but a connection that sends part of a request's headers and then
nothing (a slow client, or a slowloris attack holding connections open) stays open for good. This protocol closes
a connection whose request headers have not all arrived ``config.header_timeout`` seconds after the connection
was made or the request's first bytes came. A module of its own so that worker processes can unpickle it.
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderTimeoutH11"]


class HeaderTimeoutH11(H11Protocol):
    """Pass as uvicorn's ``http=``; the deadline is the config's ``header_timeout`` attribute (default 10 s)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "header_timeout", 10.0))
        self._header_timer: Any = None

    def _arm(self) -> None:
        if self._header_timer is None and self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a request is starting, or more of its headers came
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
