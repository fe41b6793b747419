"""The proxy's ASGI app (Starlette): OpenAI-compatible endpoints whose answers are monitored before they leave.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming as server-sent events, or one JSON
body), ``GET /v1/models``, ``GET /health``. Every answer carries an ``interlock`` object (in the JSON body; in the
last event of a stream) and the headers ``x-interlock-run-id``; whole answers also carry
``x-interlock-interventions`` (how many times the monitor intervened), ``x-interlock-passed`` and
``x-interlock-outcome`` (verified, unchecked, violation, budget, cut or error: ``RunResult.outcome``).

Each request is one monitored run on the app's event loop; runs share nothing but the backend. An upstream error
that comes before any text is answered with the upstream's status and message; a request body over the size limit
gets 413, a run over the time limit 504, a missing or wrong bearer token 401.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from interlock.monitor.governor import Governor
from interlock.monitor.governors.budget import TokenBudget
from interlock.monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, Monitor
from interlock.monitor.proxy.backends import Backend, Prepared
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest, ProxyError, parse_chat, parse_completion
from interlock.monitor.proxy.release import Hold, ReleasedRun, finish_reason
from interlock.monitor.result import StopReason
from interlock.monitor.verifier import Verifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["ProxyConfig", "create_app"]


@dataclass
class ProxyConfig:
    """How the proxy monitors and what it accepts.

    - ``verifiers``: objects or registry names; names are instantiated per request, so stateful verifiers are
      never shared between concurrent runs.
    - ``governors``: a function of the request returning fresh governors for its run. A request's
      ``max_tokens`` always adds a ``TokenBudget(max_kept=max_tokens)``.
    - ``hold``: ``"step"`` releases each step once its checks passed; ``"end"`` only at the end.
    - ``max_tokens``: cap on what a request may ask for (and the default when it asks nothing).
    """

    backend: Backend
    verifiers: Sequence[Verifier | str] = ()
    governors: Callable[[ChatRequest | CompletionRequest], Sequence[Governor]] | None = None
    api_key: str | None = None
    hold: Hold = "step"
    show_feedback: bool = False
    feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE
    max_interventions: int = 8
    max_body_bytes: int = 1 << 20
    request_timeout: float = 300.0
    max_tokens: int | None = 4096
    max_concurrent: int | None = None


def _error(exc: ProxyError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


class _Handler:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.slots = anyio.Semaphore(config.max_concurrent) if config.max_concurrent else None

    # -- request intake ------------------------------------------------------------------------------
    def authorize(self, request: Request) -> None:
        key = self.config.api_key
        if not key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ProxyError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                             type="authentication_error", code="invalid_api_key")

    async def body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ProxyError(413, f"request body of {declared} bytes is over the limit of {limit} bytes",
                             code="request_too_large")
        data = bytearray()
        async for piece in request.stream():
            data += piece
            if len(data) > limit:
                raise ProxyError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
        return bytes(data)

    def released(self, req: ChatRequest | CompletionRequest) -> tuple[ReleasedRun, Prepared]:
        cfg = self.config
        prepared = cfg.backend.prepare(req)
        governors = list(cfg.governors(req)) if cfg.governors is not None else []
        if req.max_tokens is not None:
            governors.append(TokenBudget(max_kept=req.max_tokens))
        monitor = Monitor(prepared.generator, cfg.verifiers, governors, feedback_template=cfg.feedback_template,
                          max_interventions=cfg.max_interventions)
        return ReleasedRun(monitor, prepared.prompt, hold=cfg.hold, show_feedback=cfg.show_feedback), prepared

    # -- endpoints -----------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        return await self._complete(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, chat=False)

    async def _complete(self, request: Request, *, chat: bool) -> Response:
        try:
            self.authorize(request)
            raw = await self.body(request)
            parse = parse_chat if chat else parse_completion
            req = parse(raw, max_tokens_cap=self.config.max_tokens)
            run, prepared = self.released(req)
        except ProxyError as exc:
            return _error(exc)
        if req.stream:
            return _EventStream(self, req, run, prepared)
        try:
            return await self._whole(req, run, prepared)
        except ProxyError as exc:
            return _error(exc)

    async def _whole(self, req: ChatRequest | CompletionRequest, run: ReleasedRun, prepared: Prepared) -> Response:
        with anyio.move_on_after(self.config.request_timeout) as scope:
            async with _slot(self.slots):
                async for _ in run.pieces():
                    pass
        if scope.cancelled_caught:
            raise ProxyError(504, f"the monitored generation took longer than {self.config.request_timeout:g} s",
                             type="timeout_error", code="timeout")
        result = run.result
        if result.stop_reason is StopReason.ERROR:  # an incomplete answer is no answer
            raise _upstream_error(prepared, result.detail)
        summary = run.summary()
        headers = {"x-interlock-run-id": result.run_id, "x-interlock-interventions": str(len(result.interventions)),
                   "x-interlock-passed": "true" if result.passed else "false",
                   "x-interlock-outcome": result.outcome.value}
        ident, created = _ident(req, result.run_id), int(time.time())
        reason = finish_reason(result)
        usage = {"prompt_tokens": 0, "completion_tokens": result.tokens.kept, "total_tokens": result.tokens.kept}
        body: dict[str, Any]
        if isinstance(req, ChatRequest):
            body = {"id": ident, "object": "chat.completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": run.sent},
                                 "finish_reason": reason, "logprobs": None}],
                    "usage": usage, "interlock": summary}
        else:
            body = {"id": ident, "object": "text_completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "text": run.sent, "finish_reason": reason, "logprobs": None}],
                    "usage": usage, "interlock": summary}
        return JSONResponse(body, headers=headers)

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
        except ProxyError as exc:
            return _error(exc)
        ids = await _list_models(self.config.backend)
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                         "owned_by": "interlock"} for m in ids]})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


async def _list_models(backend: Backend) -> list[str]:
    lister = getattr(backend, "list_models", None)
    if lister is not None:
        return list(await lister())
    return list(backend.models)


class _NoSlot:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _slot(slots: anyio.Semaphore | None) -> Any:
    return slots if slots is not None else _NoSlot()


def _ident(req: ChatRequest | CompletionRequest, run_id: str) -> str:
    return ("chatcmpl-" if isinstance(req, ChatRequest) else "cmpl-") + run_id


def _upstream_error(prepared: Prepared, detail: str) -> ProxyError:
    exc = prepared.generator.error
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        message = getattr(exc, "server_message", "") or str(exc)
        return ProxyError(status, message, type="upstream_error", code="upstream_error")
    return ProxyError(502, f"the backend failed: {detail or exc}", type="upstream_error", code="backend_error")


def _sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


class _EventStream(Response):
    """A monitored answer as server-sent events. The status is decided before the first byte: an upstream error
    before any text is answered as a JSON error with the upstream's status, not as a stream."""

    media_type = "text/event-stream"

    def __init__(self, handler: _Handler, req: ChatRequest | CompletionRequest, run: ReleasedRun,
                 prepared: Prepared) -> None:
        super().__init__(status_code=200)
        self.handler = handler
        self.req = req
        self.run = run
        self.prepared = prepared
        self.created = int(time.time())

    def _chunk(self, *, text: str | None = None, finish: str | None = None, role: bool = False,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = _ident(self.req, self.run.run_id)
        if isinstance(self.req, ChatRequest):
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope)
            try:
                await self._respond(send)
            finally:
                tg.cancel_scope.cancel()

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async def _start(self, send: Send, status: int, media: str) -> None:
        headers = [(b"content-type", media.encode()), (b"cache-control", b"no-cache"),
                   (b"x-interlock-run-id", self.run.run_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _body(self, send: Send, data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    async def _respond(self, send: Send) -> None:
        timeout = self.handler.config.request_timeout
        pieces, out = anyio.create_memory_object_stream[str](math.inf)
        started = False
        timed_out = False
        async with anyio.create_task_group() as tg, out:
            tg.start_soon(self._produce, pieces)
            with anyio.move_on_after(timeout) as deadline:
                async for piece in out:
                    if not started:
                        await self._start(send, 200, "text/event-stream")
                        await self._body(send, _sse(self._chunk(role=True, text="")))
                        started = True
                    await self._body(send, _sse(self._chunk(text=piece)))
            timed_out = deadline.cancelled_caught
            if timed_out:
                tg.cancel_scope.cancel()
        if timed_out:
            error = ProxyError(504, f"the monitored generation took longer than {timeout:g} s",
                               type="timeout_error", code="timeout")
            await self._fail(send, error, started)
            return
        result = self.run.result
        if result.stop_reason is StopReason.ERROR and not self.run.sent:
            await self._fail(send, _upstream_error(self.prepared, result.detail), started)
            return
        if not started:
            await self._start(send, 200, "text/event-stream")
            await self._body(send, _sse(self._chunk(role=True, text="")))
        if result.stop_reason is StopReason.ERROR:
            error = _upstream_error(self.prepared, result.detail)
            await self._body(send, _sse({"error": error.body()["error"], "interlock": self.run.summary()}))
            await self._body(send, _sse("[DONE]"), more=False)
            return
        final = self._chunk(finish=finish_reason(result), extra={"interlock": self.run.summary()})
        await self._body(send, _sse(final))
        if self.req.include_usage:
            usage = {"prompt_tokens": 0, "completion_tokens": result.tokens.kept,
                     "total_tokens": result.tokens.kept}
            tail = self._chunk()
            tail["choices"] = []
            tail["usage"] = usage
            await self._body(send, _sse(tail))
        await self._body(send, _sse("[DONE]"), more=False)

    async def _produce(self, pieces: anyio.abc.ObjectSendStream[str]) -> None:
        async with pieces, _slot(self.handler.slots):
            async for piece in self.run.pieces():
                await pieces.send(piece)

    async def _fail(self, send: Send, error: ProxyError, started: bool) -> None:
        if started:
            await self._body(send, _sse({"error": error.body()["error"]}))
            await self._body(send, _sse("[DONE]"), more=False)
            return
        payload = json.dumps(error.body()).encode()
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await self._body(send, payload, more=False)


def create_app(config: ProxyConfig) -> Starlette:
    """The proxy as an ASGI app; serve it with uvicorn (``interlock proxy`` does) or mount it in your own."""
    from contextlib import asynccontextmanager

    handler = _Handler(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        try:
            yield
        finally:
            with anyio.move_on_after(10, shield=True):
                await config.backend.aclose()

    routes = [
        Route("/v1/chat/completions", handler.chat, methods=["POST"]),
        Route("/v1/completions", handler.completions, methods=["POST"]),
        Route("/v1/models", handler.models, methods=["GET"]),
        Route("/health", handler.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.config = config
    return app
