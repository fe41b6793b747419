"""A monitored answer to ``/v1/responses`` as the Responses API's server-sent events (``event: <type>`` and
``data: <json>``; no ``[DONE]``: the stream ends after its terminal event).

It is the chat stream's machinery (:class:`~interlock.monitor.proxy.stream.EventStream`: the run produced by its own
task, the headers as soon as generation has begun, keep-alive comments while text is held, the request timeout, a
client that leaves cancelling the run) with the Responses events of
:mod:`~interlock.monitor.proxy.responses_out` instead of chat chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectReceiveStream
from interlock.monitor.proxy.backends import Prepared
from interlock.monitor.proxy.models import ProxyError
from interlock.monitor.proxy.output import dumps, note_replaced
from interlock.monitor.proxy.release import Piece, ReleasedRun
from interlock.monitor.proxy.responses_out import (
    ResponseItems,
    created_now,
    report_metadata,
    response_object,
    response_status,
    responses_usage,
)
from interlock.monitor.proxy.responses_request import ResponsesRequest
from interlock.monitor.proxy.stream import _KEEPALIVE, EventStream
from interlock.monitor.result import StopReason
from starlette.types import Send

if TYPE_CHECKING:
    from interlock.monitor.proxy.app import _Handler

__all__ = ["ResponsesEventStream", "error_code"]


def error_code(status: int) -> str:
    """The Responses API's error code for a failed backend (its ``ResponseError.code`` values)."""
    return "rate_limit_exceeded" if status == 429 else "server_error"


class ResponsesEventStream(EventStream):
    """A monitored answer to a Responses request as the Responses API's typed events."""

    endpoint = "responses"

    def __init__(self, handler: _Handler, responses: ResponsesRequest, run: ReleasedRun, prepared: Prepared,
                 response_id: str) -> None:
        super().__init__(handler, responses.chat, run, prepared)
        self.responses = responses
        self.response_id = response_id
        self.created = created_now()
        self._events: list[dict[str, Any]] = []
        self.items = ResponseItems(self._events.append)

    def _frame(self, event: dict[str, Any], *, last: bool = False) -> bytes:
        encoded, n = dumps(event)
        self.replaced += n
        report = event.get("response", {}).get("interlock") if last else None
        if last and self.replaced and isinstance(report, dict):
            note_replaced(event["response"], self.replaced)
            encoded, _ = dumps(event)
        return f"event: {event['type']}\n".encode() + b"data: " + encoded + b"\n\n"

    async def _flush(self, send: Send, *, last: bool = False) -> None:
        events, self._events[:] = list(self._events), []
        if not events:
            return
        data = b"".join(self._frame(e, last=last and i == len(events) - 1) for i, e in enumerate(events))
        await self._body(send, data, more=not last)

    def _snapshot(self, status: Any, **extra: Any) -> dict[str, Any]:
        return response_object(self.responses, self.response_id, self.created, status=status, output=[], **extra)

    async def _respond(self, send: Send, inbox: ObjectReceiveStream[Piece]) -> None:
        config = self.handler.config
        with anyio.move_on_after(config.start_within):
            await self.run.begun.wait()
        early = self.run._result
        if early is not None and early.stop_reason is StopReason.ERROR and not self.run.sent:
            await self._fail(send, self.handler.upstream_error(self.prepared, early.detail))
            return
        await self._start(send, 200, "text/event-stream")
        self.items.event("response.created", response=self._snapshot("in_progress"))
        self.items.event("response.in_progress", response=self._snapshot("in_progress"))
        await self._flush(send)
        while True:
            with anyio.move_on_after(config.keepalive) as waiting:
                try:
                    piece = await inbox.receive()
                except anyio.EndOfStream:
                    break
            if waiting.cancelled_caught:
                await self._body(send, _KEEPALIVE)
                continue
            if isinstance(piece, str):
                self.items.text(piece)
            else:
                self.items.call(piece)
            await self._flush(send)
        result = self.run._result
        if result is None:  # the run ended without a result: it crashed
            self.outcome = "500"
            await self._fail(send, ProxyError(500, "the monitored run failed unexpectedly", type="server_error"))
            return
        self.outcome = result.outcome.value
        status, why = response_status(self.run)
        self.items.close("incomplete" if status == "incomplete" else "completed")
        final: dict[str, Any] = {"output": self.items.output, "usage": responses_usage(self.run, self.prepared),
                                 "metadata": report_metadata(self.run), "report": self.run.summary()}
        if status == "failed":
            error = self.handler.upstream_error(self.prepared, result.detail)
            final["error"] = {"code": error_code(error.status), "message": error.message}
            kind = "response.failed"
        else:
            kind = "response.completed" if status == "completed" else "response.incomplete"
        body = response_object(self.responses, self.response_id, self.created, status=status,
                               incomplete=why, **final)
        self.items.event(kind, response=body)
        self.final = body
        await self._flush(send, last=True)

    async def _fail(self, send: Send, error: ProxyError) -> None:
        if not self.started:
            await super()._fail(send, error)
            return
        self.outcome = str(error.status)
        self.items.event("error", code=error.code or error.type, message=error.message, param=error.param)
        await self._flush(send, last=True)

    final: dict[str, Any] | None = None

