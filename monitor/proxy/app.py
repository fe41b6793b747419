"""The proxy's ASGI app (Starlette): OpenAI-compatible endpoints whose answers are monitored before they leave.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming as server-sent events, or one JSON
body), ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus). Every answer carries an ``interlock``
object (in the JSON body; in the last event of a stream) and the headers ``x-interlock-run-id``; whole answers also
carry ``x-interlock-interventions`` (how many times the monitor intervened) and ``x-interlock-passed``.

Each request is one monitored run on the app's event loop; runs share nothing but the backend. A stream's headers
and role chunk go out as soon as generation has begun (at most ``start_within`` seconds after the request), and an
SSE comment every ``keepalive`` seconds while text is held; an upstream error that comes before that is answered
with the upstream's status and message, one after it as an error event. Every error is OpenAI-shaped JSON: a
request body over the size limit gets 413, a run over the time limit 504, a missing or wrong bearer token 401, an
unknown route 404, a wrong method 405. A client that disconnects cancels its run and frees its slot at once, for
streaming and whole answers alike. Text that UTF-8 cannot encode (lone surrogates) is written as U+FFFD and
counted in ``interlock.replaced``.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from interlock.monitor.agents.tools import ArgumentCheck
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.governor import Governor
from interlock.monitor.governors.budget import TokenBudget
from interlock.monitor.logs import get_logger
from interlock.monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, Monitor
from interlock.monitor.proxy.backends import Backend, Prepared
from interlock.monitor.proxy.metrics import ProxyMetrics
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest, ProxyError, parse_chat, parse_completion
from interlock.monitor.proxy.release import Hold, Piece, ReleasedRun, finish_reason
from interlock.monitor.proxy.tools import ToolCallVerifier
from interlock.monitor.result import StopReason
from interlock.monitor.verifier import Verifier
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["ProxyConfig", "create_app"]

_log = get_logger(component="proxy")


@dataclass
class ProxyConfig:
    """How the proxy monitors and what it accepts.

    - ``verifiers``: objects or registry names; names are instantiated per request, so stateful verifiers are
      never shared between concurrent runs.
    - ``governors``: a function of the request returning fresh governors for its run. A request's
      ``max_tokens`` always adds a ``TokenBudget(max_kept=max_tokens)``.
    - ``tool_verifiers``: argument checks of tool calls by tool name (``"*"``: every tool), as ``guard_tool``
      takes them: functions of the arguments, or verifiers scanned over them. A call that fails one is rolled
      back with feedback; ``tool_check_timeout`` bounds each check (past it, the call is refused).
    - ``hold``: ``"step"`` releases each step once its checks passed; ``"end"`` only at the end.
    - ``max_tokens``: cap on what a request may ask for (and the default when it asks nothing).
    - ``start_within``: seconds a stream waits for generation to begin before its headers go out (an upstream
      error within it keeps its HTTP status); ``keepalive``: seconds between SSE comments while text is held.
    """

    backend: Backend
    verifiers: Sequence[Verifier | str] = ()
    governors: Callable[[ChatRequest | CompletionRequest], Sequence[Governor]] | None = None
    tool_verifiers: Mapping[str, Sequence[ArgumentCheck]] = field(default_factory=dict)
    tool_check_timeout: float = 10.0
    api_key: str | None = None
    hold: Hold = "step"
    show_feedback: bool = False
    feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE
    max_interventions: int = 8
    max_body_bytes: int = 1 << 20
    request_timeout: float = 300.0
    max_tokens: int | None = 4096
    max_concurrent: int | None = None
    start_within: float = 0.02
    keepalive: float = 10.0


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(obj: Any) -> tuple[Any, int]:
    """``obj`` with every lone surrogate in its strings replaced by U+FFFD, and how many there were. Iterative,
    so no nesting depth can overflow the stack."""
    count = 0

    def fix(value: Any) -> Any:
        nonlocal count
        if isinstance(value, str):
            value, n = _LONE_SURROGATE.subn("\ufffd", value)
            count += n
        return value

    root: list[Any] = [obj]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            value = {fix(k): v for k, v in value.items()}
            container[key] = value
            stack.extend((value, k) for k in value)
        elif isinstance(value, list | tuple):
            value = list(value)
            container[key] = value
            stack.extend((value, i) for i in range(len(value)))
        else:
            container[key] = fix(value)
    return root[0], count


def _dumps(obj: Any) -> tuple[bytes, int]:
    """Compact UTF-8 JSON of ``obj``; lone surrogates become U+FFFD (the count says how many)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8"), 0
    except UnicodeEncodeError:
        fixed, n = _scrub(obj)
        return json.dumps(fixed, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), n


def _note_replaced(body: dict[str, Any], n: int) -> None:
    if n and isinstance(body.get("interlock"), dict):
        body["interlock"]["replaced"] = {"surrogates": n}


class _JSON(Response):
    """A JSON response that cannot fail to encode (see :func:`_dumps`)."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        data, n = _dumps(content)
        if n:
            _log.warning("lone surrogates replaced with U+FFFD in a response", count=n)
            if isinstance(content, dict) and isinstance(content.get("interlock"), dict):
                _note_replaced(content, n)
                data, _ = _dumps(content)
        super().__init__(data, status_code=status_code, headers=dict(headers or {}))


def _error(exc: ProxyError, headers: dict[str, str] | None = None) -> Response:
    return _JSON(exc.body(), status_code=exc.status, headers=headers)


class _Handler:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.slots = anyio.Semaphore(config.max_concurrent) if config.max_concurrent else None
        self.metrics = ProxyMetrics()

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
        verifiers: list[Verifier | str] = list(cfg.verifiers)
        if isinstance(req, ChatRequest) and req.tools:
            verifiers.append(ToolCallVerifier(cfg.tool_verifiers, req.tool_names, prepared.generator.tool_markers,
                                              check_timeout=cfg.tool_check_timeout))
        monitor = Monitor(prepared.generator, verifiers, governors, feedback_template=cfg.feedback_template,
                          max_interventions=cfg.max_interventions)
        run = ReleasedRun(monitor, prepared.prompt, hold=cfg.hold, show_feedback=cfg.show_feedback,
                          observe=self.metrics.observe, on_hold=self.metrics.held_seconds.observe)
        return run, prepared

    async def produce(self, run: ReleasedRun, out: ObjectSendStream[Piece]) -> None:
        """Generate one answer in this task, within a concurrency slot; the pieces go to ``out``."""
        try:
            async with _slot(self.slots):
                await run.produce(out)
        finally:
            await out.aclose()
        if run._result is not None:
            self.metrics.finished(run)

    def count(self, req: ChatRequest | CompletionRequest, outcome: str) -> None:
        self.metrics.requests.labels("chat" if isinstance(req, ChatRequest) else "completions",
                                     "true" if req.stream else "false", outcome).inc()

    def upstream_error(self, prepared: Prepared, detail: str) -> ProxyError:
        error = _upstream_error(prepared, detail)
        self.metrics.upstream_errors.labels(str(error.status) if error.code == "upstream_error" else "none").inc()
        return error

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
            self.metrics.requests.labels("chat" if chat else "completions", "unknown", str(exc.status)).inc()
            return _error(exc)
        if req.stream:
            return _EventStream(self, req, run, prepared)
        self.metrics.in_flight.inc()
        try:
            response = await self._whole(request, req, run, prepared)
        except ProxyError as exc:
            self.count(req, str(exc.status))
            return _error(exc)
        finally:
            self.metrics.in_flight.dec()
        self.count(req, run.result.stop_reason.value)
        return response

    async def _whole(self, request: Request, req: ChatRequest | CompletionRequest, run: ReleasedRun,
                     prepared: Prepared) -> Response:
        out, inbox = anyio.create_memory_object_stream[Piece](math.inf)
        left = _Left()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, request.receive, tg.cancel_scope, left)
            tg.start_soon(self.produce, run, out)
            with anyio.move_on_after(self.config.request_timeout) as deadline:
                async with inbox:
                    async for _ in inbox:
                        pass
            tg.cancel_scope.cancel()  # the watcher; and the run, when the time is up
        if left.gone:
            raise ProxyError(499, "the client closed the connection", code="client_closed_request")
        if deadline.cancelled_caught:
            raise ProxyError(504, f"the monitored generation took longer than {self.config.request_timeout:g} s",
                             type="timeout_error", code="timeout")
        result = run.result
        if result.stop_reason is StopReason.ERROR:  # an incomplete answer is no answer
            raise self.upstream_error(prepared, result.detail)
        summary = run.summary()
        headers = {"x-interlock-run-id": result.run_id, "x-interlock-interventions": str(len(result.interventions)),
                   "x-interlock-passed": "true" if result.passed else "false"}
        ident, created = _ident(req, result.run_id), int(time.time())
        reason = "tool_calls" if run.calls else finish_reason(result)
        body: dict[str, Any]
        if isinstance(req, ChatRequest):
            message: dict[str, Any] = {"role": "assistant", "content": run.sent if run.sent or not run.calls else None}
            if run.calls:
                message["tool_calls"] = [_call_json(c) for c in run.calls]
            body = {"id": ident, "object": "chat.completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
                    "usage": _usage(run, prepared), "interlock": summary}
        else:
            body = {"id": ident, "object": "text_completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "text": run.sent, "finish_reason": reason, "logprobs": None}],
                    "usage": _usage(run, prepared), "interlock": summary}
        return _JSON(body, headers=headers)

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
            ids = await _list_models(self.config.backend)
        except ProxyError as exc:
            return _error(exc)
        return _JSON({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                  "owned_by": "interlock"} for m in ids]})

    async def health(self, request: Request) -> Response:
        return _JSON({"status": "ok", "pid": os.getpid()})

    async def metrics_page(self, request: Request) -> Response:
        data, media = self.metrics.render()
        return Response(data, media_type=media)


class _Left:
    gone = False


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope, left: _Left) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            left.gone = True
            scope.cancel()
            return


def _usage(run: ReleasedRun, prepared: Prepared) -> dict[str, int]:
    """OpenAI ``usage``: the prompt's tokens (counted locally, or as the upstream reported them; 0 when neither
    can say) and the tokens of the answer the client got (rolled-back ones are in ``interlock.tokens``)."""
    prompt = prepared.prompt_tokens
    if prompt is None:
        prompt = prepared.generator.prompt_tokens or 0
    kept = run.result.tokens.kept
    return {"prompt_tokens": prompt, "completion_tokens": kept, "total_tokens": prompt + kept}


def _call_json(call: ToolCallRequest, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call.id, "type": "function", "function": {"name": call.name,
                                                                           "arguments": call.arguments}}
    if index is not None:
        out = {"index": index, **out}
    return out


async def _list_models(backend: Backend) -> list[str]:
    lister = getattr(backend, "list_models", None)
    if lister is None:
        return list(backend.models)
    try:
        return list(await lister())
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        where = getattr(backend, "base_url", "the upstream")
        _log.warning("listing the upstream's models failed", upstream=where, error=f"{type(exc).__name__}: {exc}")
        message = (f"the upstream {where} answered HTTP {status} to GET /models" if isinstance(status, int)
                   else f"the upstream {where} could not be reached: {type(exc).__name__}: {exc}")
        raise ProxyError(502, message, type="upstream_error", code="upstream_unavailable") from None


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


_KEEPALIVE = b": keep-alive\n\n"


class _EventStream(Response):
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
        ident = _ident(self.req, self.run.run_id)
        if isinstance(self.req, ChatRequest):
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            if call is not None:
                delta["tool_calls"] = [_call_json(call[1], call[0])]
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
        encoded, n = _dumps(data)
        self.replaced += n
        if last and self.replaced and isinstance(data.get("interlock"), dict):
            _note_replaced(data, self.replaced)
            encoded, _ = _dumps(data)
        return b"data: " + encoded + b"\n\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handler
        out, inbox = anyio.create_memory_object_stream[Piece](math.inf)
        left = _Left()
        handler.metrics.in_flight.inc()
        self.outcome = "cancelled"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_disconnect, receive, tg.cancel_scope, left)
                tg.start_soon(handler.produce, self.run, out)
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

    def _account(self, outcome: str) -> None:
        """Count the request once: just before its last byte (a client that reads /metrics after its answer
        sees it), or when it ends otherwise."""
        if not self._accounted:
            self._accounted = True
            self.handler.metrics.in_flight.dec()
            self.handler.count(self.req, outcome)

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
        self.outcome = result.stop_reason.value
        if result.stop_reason is StopReason.ERROR:
            error = self.handler.upstream_error(self.prepared, result.detail)
            await self._body(send, self._sse({"error": error.body()["error"], "interlock": self.run.summary()},
                                             last=True))
            await self._body(send, self._sse("[DONE]"), more=False)
            return
        reason = "tool_calls" if self.run.calls else finish_reason(result)
        final = self._chunk(finish=reason, extra={"interlock": self.run.summary()})
        await self._body(send, self._sse(final, last=True))
        if self.req.include_usage:
            tail = self._chunk()
            tail["choices"] = []
            tail["usage"] = _usage(self.run, self.prepared)
            await self._body(send, self._sse(tail))
        await self._body(send, self._sse("[DONE]"), more=False)

    async def _fail(self, send: Send, error: ProxyError) -> None:
        if self.started:
            self.outcome = str(error.status)
            await self._body(send, self._sse({"error": error.body()["error"]}))
            await self._body(send, self._sse("[DONE]"), more=False)
            return
        payload, _ = _dumps(error.body())
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        self.started = True
        self.outcome = str(error.status)
        await self._body(send, payload, more=False)


_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 405: "invalid_request_error", 429: "rate_limit_error"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method, ...) in the OpenAI shape."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.url.path}: the proxy serves /v1/chat/completions, /v1/completions, " \
                  f"/v1/models, /health and /metrics"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    error = ProxyError(status, message, type=_STATUS_TYPES.get(status, "invalid_request_error"),
                       code={404: "not_found", 405: "method_not_allowed"}.get(status))
    return _error(error, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(ProxyError(500, f"internal error: {type(exc).__name__}", type="server_error"))


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
        Route("/metrics", handler.metrics_page, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.config = config
    app.state.metrics = handler.metrics
    return app
