"""A monitored answer as server-sent events, and the watch for a client that leaves.

The headers and the role chunk go out as soon as generation has begun (or ``start_within`` has passed), whatever
the release policy holds back; an SSE comment every ``keepalive`` seconds while text is held; the verified text and
the tool calls as they are released; the ``interlock`` report and ``[DONE]`` at the end. The run is produced by its
own task into a memory stream, so a request timeout, a disconnect or a client that stopped reading ends it cleanly.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectReceiveStream
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.proxy.backends import Prepared
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest, ProxyError
from interlock.monitor.proxy.output import call_json, dumps, ident_of, note_replaced, usage_of
from interlock.monitor.proxy.release import Piece, ReleasedRun, Thought, finish_reason
from interlock.monitor.result import StopReason
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from interlock.monitor.proxy.app import _Handler

__all__ = ["EventStream", "Left", "watch_disconnect"]


class Left:
    gone = False


async def watch_disconnect(receive: Receive, scope: anyio.CancelScope, left: Left) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            left.gone = True
            scope.cancel()
            return


_KEEPALIVE = b": keep-alive\n\n"


class EventStream(Response):
    """A monitored answer as server-sent events. The headers and the role chunk go out as soon as generation has
    begun (or ``start_within`` has passed); an upstream error before then is answered as a JSON error with the
    upstream's status, not as a stream."""

    media_type = "text/event-stream"

    def __init__(self, handler: _Handler, req: ChatRequest | CompletionRequest, run: ReleasedRun,
                 prepared: Prepared) -> None:
        super().__init__(status_code=200)
        self.handler = handler
        self.req = req
        self.run = run
        self.prepared = prepared
        self.created = int(time.time())
        self.replaced = 0  # lone surrogates written as U+FFFD so far

    def _chunk(self, *, text: str | None = None, finish: str | None = None, role: bool = False,
               call: tuple[int, ToolCallRequest] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = ident_of(self.req, self.run.run_id)
        if isinstance(self.req, ChatRequest):
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if isinstance(text, Thought) and (field := self.prepared.generator.reasoning_field) is not None:
                delta[field] = str(text)  # the thinking, in the field the upstream sent it in
            elif text is not None:
                delta["content"] = str(text)
            if call is not None:
                delta["tool_calls"] = [call_json(call[1], call[0])]
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            body = {"id": ident, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.req.model, "choices": [choice]}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            body = {"id": ident, "object": "text_completion", "created": self.created, "model": self.req.model,
                    "choices": [choice]}
        if extra:
            body.update(extra)
        return body

    def _sse(self, data: Any, *, last: bool = False) -> bytes:
        if isinstance(data, str):
            return f"data: {data}\n\n".encode()
        encoded, n = dumps(data)
        self.replaced += n
        if last and self.replaced and isinstance(data.get("interlock"), dict):
            note_replaced(data, self.replaced)
            encoded, _ = dumps(data)
        return b"data: " + encoded + b"\n\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handler
        out, inbox = anyio.create_memory_object_stream[Piece](math.inf)
        left = Left()
        handler.metrics.in_flight.inc()
        self.outcome = "cancelled"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_disconnect, receive, tg.cancel_scope, left)
                tg.start_soon(handler.produce, self.run, out, self.req)
                try:
                    with anyio.move_on_after(handler.config.request_timeout) as deadline:
                        await self._respond(send, inbox)
                    if deadline.cancelled_caught:
                        self.outcome = "504"
                        tg.cancel_scope.cancel()  # the run: its task group is left by its own task
                        with anyio.move_on_after(1.0):  # a client that stopped reading gets no more waiting
                            await self._fail(send, ProxyError(
                                504, f"the monitored generation took longer than "
                                f"{handler.config.request_timeout:g} s", type="timeout_error", code="timeout"))
                finally:
                    tg.cancel_scope.cancel()
                    inbox.close()
        finally:
            self._account("disconnected" if left.gone else self.outcome)

    _accounted = False
    endpoint: str | None = None  # the endpoint label of the metrics (None: chat or completions, by the request)

    def _account(self, outcome: str) -> None:
        """Count the request once: just before its last byte (a client that reads /metrics after its answer
        sees it), or when it ends otherwise."""
        if not self._accounted:
            self._accounted = True
            self.handler.metrics.in_flight.dec()
            self.handler.count(self.req, outcome, self.endpoint)

    async def _start(self, send: Send, status: int, media: str) -> None:
        headers = [(b"content-type", media.encode()), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no"), (b"x-interlock-run-id", self.run.run_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = True

    async def _body(self, send: Send, data: bytes, more: bool = True) -> None:
        if not more:
            self._account(self.outcome)
        await send({"type": "http.response.body", "body": data, "more_body": more})

    started = False

    async def _respond(self, send: Send, inbox: ObjectReceiveStream[Piece]) -> None:
        config = self.handler.config
        with anyio.move_on_after(config.start_within):
            await self.run.begun.wait()
        early = self.run._result
        if early is not None and early.stop_reason is StopReason.ERROR and not self.run.sent:
            await self._fail(send, self.handler.upstream_error(self.prepared, early.detail))
            return
        await self._start(send, 200, "text/event-stream")
        await self._body(send, self._sse(self._chunk(role=True, text="")))
        calls = 0
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
                await self._body(send, self._sse(self._chunk(text=piece)))
            else:
                await self._body(send, self._sse(self._chunk(call=(calls, piece))))
                calls += 1
        result = self.run._result
        if result is None:  # the run ended without a result: it crashed
            self.outcome = "500"
            await self._fail(send, ProxyError(500, "the monitored run failed unexpectedly", type="server_error"))
            return
        self.outcome = result.outcome.value
        if result.stop_reason is StopReason.ERROR:
            error = self.handler.upstream_error(self.prepared, result.detail)
            await self._body(send, self._sse({"error": error.body()["error"], "interlock": self.run.summary()},
                                             last=True))
            await self._body(send, self._sse("[DONE]"), more=False)
            return
        reason = "tool_calls" if self.run.calls else finish_reason(result)
        report = {"interlock": self.run.summary()}
        # the report rides on the last event before [DONE]: the usage chunk when the client asked for one (OpenAI
        # sends it after the finish_reason chunk), else the finish_reason chunk
        final = self._chunk(finish=reason, extra=None if self.req.include_usage else report)
        await self._body(send, self._sse(final, last=not self.req.include_usage))
        if self.req.include_usage:
            tail = self._chunk(extra=report)
            tail["choices"] = []
            tail["usage"] = usage_of(self.run, self.prepared)
            await self._body(send, self._sse(tail, last=True))
        await self._body(send, self._sse("[DONE]"), more=False)

    async def _fail(self, send: Send, error: ProxyError) -> None:
        if self.started:
            self.outcome = str(error.status)
            await self._body(send, self._sse({"error": error.body()["error"]}))
            await self._body(send, self._sse("[DONE]"), more=False)
            return
        payload, _ = dumps(error.body())
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        self.started = True
        self.outcome = str(error.status)
        await self._body(send, payload, more=False)


