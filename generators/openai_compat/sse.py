"""An incremental parser of server-sent events (the ``text/event-stream`` format), fed bytes as they arrive.

Network reads split a stream anywhere: inside a field, between the CR and the LF of a line ending, inside a
multi-byte UTF-8 character. The parser keeps what it has not yet seen the end of, so every split of one stream
yields the same events. It follows the WHATWG algorithm: lines end with CRLF, LF or CR; a line starting with
``:`` is a comment; ``field: value`` drops one leading space; ``data`` lines of one event are joined with
``\\n``; a blank line dispatches the event (none when it had no ``data``); an event not ended by a blank line
at the end of the stream is not dispatched (``pending`` says that one was cut off). Invalid UTF-8 and lines
longer than ``max_line_bytes`` are errors, not silently mangled text.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from interlock.generators.errors import MalformedStream

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_events"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its ``event`` type (``"message"`` when unnamed), ``data``, the last ``id`` and
    ``retry`` (reconnection time in ms) the stream has set so far."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes with :meth:`feed`; it returns the events completed so far. Call :meth:`close` at the end."""

    def __init__(self, *, max_line_bytes: int = 8 * 1024 * 1024) -> None:
        if max_line_bytes <= 0:
            raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._started = False  # a leading BOM has been looked for
        self._skip_lf = False  # the last line ended with CR: a LF first in the next read belongs to it
        self._data: list[str] = []
        self._has_fields = False
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        self._line_no = 0
        self._closed = False
        self._error: MalformedStream | None = None  # found after events that the same read completed

    @property
    def pending(self) -> bool:
        """Whether fields of an event have been read that no blank line has dispatched yet."""
        return self._has_fields or bool(self._buffer)

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Consume one read; return the events it completed, in order."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise MalformedStream("the event stream was fed after close()")
        buffer = self._buffer
        buffer += data
        if not self._started:
            if len(buffer) < len(_BOM) and _BOM.startswith(bytes(buffer)):
                return []
            if buffer.startswith(_BOM):
                del buffer[: len(_BOM)]
            self._started = True
        events: list[ServerSentEvent] = []
        start = 0
        end = len(buffer)
        if self._skip_lf and start < end:
            if buffer[0] == 0x0A:
                start = 1
            self._skip_lf = False
        while start < end:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else end)
            if cr >= 0:
                stop, nxt = cr, cr + 1
                if nxt < end:
                    if buffer[nxt] == 0x0A:
                        nxt += 1
                else:
                    self._skip_lf = True
            elif lf >= 0:
                stop, nxt = lf, lf + 1
            else:
                break
            try:
                self._line(bytes(buffer[start:stop]), events)
            except MalformedStream as exc:
                if not events:
                    raise
                self._error = exc  # deliver the events before the bad line first, as any other split would
                return events
            start = nxt
        del buffer[:start]
        if len(buffer) > self.max_line_bytes:
            raise MalformedStream(f"an event-stream line is longer than {self.max_line_bytes} bytes "
                                  f"(line {self._line_no + 1}); the stream is not server-sent events")
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a last line without its line ending still counts; an undispatched event is dropped."""
        if self._error is not None:
            raise self._error
        if self._closed:
            return []
        events: list[ServerSentEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._closed = True
        return events

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        self._line_no += 1
        if not raw:
            self._dispatch(events)
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedStream(f"event-stream line {self._line_no} is not valid UTF-8 ({exc.reason} at byte "
                                  f"{exc.start}): {raw[:80]!r}") from None
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_fields = True
        elif name == "event":
            self._event = value
            self._has_fields = True
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
            self._has_fields = True
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
            self._has_fields = True
        # any other field name is ignored, as the specification says

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._data:
            events.append(ServerSentEvent(data="\n".join(self._data), event=self._event or "message",
                                          id=self._last_id, retry=self._retry))
        self._data = []
        self._event = ""
        self._has_fields = False


async def aiter_events(reads: AsyncIterable[bytes], decoder: SSEDecoder | None = None
                       ) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream of byte reads (e.g. ``response.aiter_bytes()``), in order."""
    decoder = decoder or SSEDecoder()
    async for data in reads:
        for event in decoder.feed(data):
            yield event
    for event in decoder.close():
        yield event
