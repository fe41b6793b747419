"""The proxy's ASGI app (Starlette): OpenAI-compatible endpoints whose answers are monitored before they leave.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming as server-sent events, or one JSON
body), ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus). Every answer carries an ``interlock``
object (in the JSON body; in the last event of a stream) and the headers ``x-interlock-run-id``; whole answers also
carry ``x-interlock-interventions`` (how many times the monitor intervened), ``x-interlock-passed`` and
``x-interlock-outcome`` (verified, unchecked, violation, budget, cut or error: ``RunResult.outcome``).

Each request is one monitored run on the app's event loop; runs share nothing but the backend. A stream's headers
and role chunk go out as soon as generation has begun (at most ``start_within`` seconds after the request), and an
SSE comment every ``keepalive`` seconds while text is held; an upstream error that comes before that is answered
with the upstream's status and message, one after it as an error event. Every error is OpenAI-shaped JSON: a
request body over the size limit gets 413, one that does not arrive within ``body_timeout`` 408, a run over the
time limit 504, a missing or wrong bearer token 401 (``/metrics`` included), an unknown route 404, a wrong method
405. A client that disconnects cancels its run and frees its slot at once, for
streaming and whole answers alike. Text that UTF-8 cannot encode (lone surrogates) is written as U+FFFD and
counted in ``interlock.replaced``.
"""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
from anyio.abc import ObjectSendStream
from interlock.monitor.agents.tools import ArgumentCheck
from interlock.monitor.governor import Governor
from interlock.monitor.governors.budget import TokenBudget
from interlock.monitor.logs import get_logger
from interlock.monitor.monitor import DEFAULT_FEEDBACK_TEMPLATE, Monitor
from interlock.monitor.phases import ANSWER, THINKING
from interlock.monitor.proxy.backends import Backend, Prepared
from interlock.monitor.proxy.ledger import CLAIM_PATH, CallLedger
from interlock.monitor.proxy.metrics import ProxyMetrics
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest, ProxyError, parse_chat, parse_completion
from interlock.monitor.proxy.output import JSONOut, call_json, error_response, ident_of, upstream_error, usage_of
from interlock.monitor.proxy.release import Hold, Piece, ReleasedRun, finish_reason
from interlock.monitor.proxy.responses_out import (
    ResponseItems,
    created_now,
    new_response_id,
    report_metadata,
    response_object,
    response_status,
    responses_usage,
)
from interlock.monitor.proxy.responses_request import ResponsesRequest, parse_responses
from interlock.monitor.proxy.responses_stream import ResponsesEventStream
from interlock.monitor.proxy.stream import EventStream, Left, watch_disconnect
from interlock.monitor.proxy.tools import ToolCallVerifier, UndeclaredTools
from interlock.monitor.proxy.tracing import start_chat, start_responses
from interlock.monitor.result import RunResult, StopReason
from interlock.monitor.urls import redact_text
from interlock.monitor.verifier import Verifier
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

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
      back with feedback; ``tool_check_timeout`` bounds each check (past it, the call is refused). Every call the
      backend makes is checked, whether the request declared ``tools`` or not: a call of a tool the request did
      not offer is refused with feedback naming the tools there are (``undeclared_tools="refuse"``, the default),
      or, with ``"check"``, goes through the argument checks configured for its name and for ``"*"``.
    - ``request_tool_checks``: a function of a chat request returning more checks by tool name for it (what
      ``interlock proxy --policy`` plugs in: checks that read the request's conversation).
    - ``released_calls``: a :class:`~interlock.monitor.proxy.ledger.CallLedger` that keeps the released tool calls
      and serves ``POST /v1/interlock/released-calls/claim`` (for ``interlock mcp --proxy``).
    - ``hold``: ``"step"`` releases each step once its checks passed; ``"end"`` only at the end.
    - ``max_tokens``: cap on what a request may ask for (and the default when it asks nothing).
    - ``body_timeout``: seconds a request's body may take to arrive after its headers; past it the answer is a
      408 and the connection is closed (a slow client cannot hold a connection and its slot).
    - ``start_within``: seconds a stream waits for generation to begin before its headers go out (an upstream
      error within it keeps its HTTP status); ``keepalive``: seconds between SSE comments while text is held.
    - ``tracer_provider``: trace each request (a span continuing the client's ``traceparent``) to this
      OpenTelemetry provider; by default only when ``interlock.telemetry.enable()`` turned tracing on.
    """

    backend: Backend
    verifiers: Sequence[Verifier | str] = ()
    governors: Callable[[ChatRequest | CompletionRequest], Sequence[Governor]] | None = None
    tool_verifiers: Mapping[str, Sequence[ArgumentCheck]] = field(default_factory=dict)
    tool_check_timeout: float = 10.0
    undeclared_tools: UndeclaredTools = "refuse"
    request_tool_checks: Callable[[ChatRequest], Mapping[str, Sequence[ArgumentCheck]]] | None = None
    released_calls: CallLedger | None = None
    api_key: str | None = None
    hold: Hold = "step"
    show_feedback: bool = False
    feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE
    max_interventions: int = 8
    max_body_bytes: int = 1 << 20
    body_timeout: float = 30.0
    request_timeout: float = 300.0
    max_tokens: int | None = 4096
    max_concurrent: int | None = None
    start_within: float = 0.02
    keepalive: float = 10.0
    tracer_provider: TracerProvider | None = None


class _Handler:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.slots = anyio.Semaphore(config.max_concurrent) if config.max_concurrent else None
        self.metrics = ProxyMetrics(tools=[t for t in config.tool_verifiers if t != "*"])

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
        deadline = self.config.body_timeout
        try:
            with anyio.fail_after(deadline):
                async for piece in request.stream():
                    data += piece
                    if len(data) > limit:
                        raise ProxyError(413, f"request body is over the limit of {limit} bytes",
                                         code="request_too_large")
        except TimeoutError:
            _log.info("request body too slow", path=request.url.path, received=len(data), seconds=deadline)
            came = f"{len(data)} byte{'s' * (len(data) != 1)} had come"
            raise ProxyError(408, f"the request body did not arrive within {deadline:g} s ({came})",
                             code="request_timeout", close=True) from None
        except ClientDisconnect:  # a client that leaves mid-body is one quiet line, not a traceback
            _log.info("client left before its request body arrived", path=request.url.path, received=len(data))
            raise ProxyError(499, "the client closed the connection", code="client_closed_request") from None
        return bytes(data)

    def released(self, req: ChatRequest | CompletionRequest,
                 prepared: Prepared | None = None) -> tuple[ReleasedRun, Prepared]:
        cfg = self.config
        if prepared is None:
            prepared = cfg.backend.prepare(req)
        governors = list(cfg.governors(req)) if cfg.governors is not None else []
        if req.max_tokens is not None:
            governors.append(TokenBudget(max_kept=req.max_tokens))
        verifiers: list[Verifier | str] = list(cfg.verifiers)
        # every call the backend makes is checked, whether the request offered tools or not
        offered = req.callable_tools if isinstance(req, ChatRequest) else ()
        extra = cfg.request_tool_checks(req) if cfg.request_tool_checks and isinstance(req, ChatRequest) else {}
        verifiers.append(ToolCallVerifier(_merged(cfg.tool_verifiers, extra), offered,
                                          prepared.generator.tool_markers, check_timeout=cfg.tool_check_timeout,
                                          undeclared=cfg.undeclared_tools))
        monitor = Monitor(prepared.generator, verifiers, governors, feedback_template=cfg.feedback_template,
                          max_interventions=cfg.max_interventions)
        run = ReleasedRun(monitor, prepared.prompt, hold=cfg.hold, show_feedback=cfg.show_feedback,
                          observe=self.metrics.observe, on_hold=self.metrics.held_seconds.observe)
        if cfg.released_calls is not None and isinstance(req, ChatRequest) and req.tools:
            cfg.released_calls.watch(run, req)
        return run, prepared

    async def produce(self, run: ReleasedRun, out: ObjectSendStream[Piece],
                      req: ChatRequest | CompletionRequest) -> None:
        """Generate one answer in this task, within a concurrency slot; the pieces go to ``out``."""
        try:
            async with _slot(self.slots):
                await run.produce(out)
        finally:
            await out.aclose()
            if self.config.released_calls is not None:
                self.config.released_calls.finished(run)
        if run._result is not None:
            self.metrics.finished(run, req.tool_names if isinstance(req, ChatRequest) else ())

    def count(self, req: ChatRequest | CompletionRequest, outcome: str, endpoint: str | None = None) -> None:
        endpoint = endpoint or ("chat" if isinstance(req, ChatRequest) else "completions")
        self.metrics.requests.labels(endpoint, "true" if req.stream else "false", outcome).inc()

    def upstream_error(self, prepared: Prepared, detail: str) -> ProxyError:
        error = upstream_error(prepared, detail, getattr(self.config.backend, "redact", None))
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
            run.tracing = start_chat(self.config.tracer_provider, request.headers, req, prepared)
        except ProxyError as exc:
            self.metrics.requests.labels("chat" if chat else "completions", "unknown", str(exc.status)).inc()
            return error_response(exc)
        if req.stream:
            return EventStream(self, req, run, prepared)
        self.metrics.in_flight.inc()
        try:
            response = await self._whole(request, req, run, prepared)
        except ProxyError as exc:
            self.count(req, str(exc.status))
            return error_response(exc)
        finally:
            self.metrics.in_flight.dec()
        self.count(req, run.result.outcome.value)
        return response

    async def _whole(self, request: Request, req: ChatRequest | CompletionRequest, run: ReleasedRun,
                     prepared: Prepared) -> Response:
        result = await self._wait(request, req, run, prepared)
        summary = run.summary()
        headers = {"x-interlock-run-id": result.run_id, "x-interlock-interventions": str(len(result.interventions)),
                   "x-interlock-passed": "true" if result.passed else "false",
                   "x-interlock-outcome": result.outcome.value}
        ident, created = ident_of(req, result.run_id), int(time.time())
        reason = "tool_calls" if run.calls else finish_reason(result)
        body: dict[str, Any]
        if isinstance(req, ChatRequest):
            field = prepared.generator.reasoning_field
            content = run.text_of(ANSWER) if field is not None else run.sent  # else the thinking is in the text
            message: dict[str, Any] = {"role": "assistant", "content": content if content or not run.calls else None}
            if field is not None and (thinking := run.text_of(THINKING)):
                message[field] = thinking  # in the field the upstream sent it in
            if run.calls:
                message["tool_calls"] = [call_json(c) for c in run.calls]
            body = {"id": ident, "object": "chat.completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
                    "usage": usage_of(run, prepared), "interlock": summary}
        else:
            body = {"id": ident, "object": "text_completion", "created": created, "model": req.model,
                    "choices": [{"index": 0, "text": run.sent, "finish_reason": reason, "logprobs": None}],
                    "usage": usage_of(run, prepared), "interlock": summary}
        return JSONOut(body, headers=headers)

    async def _wait(self, request: Request, req: ChatRequest | CompletionRequest, run: ReleasedRun,
                    prepared: Prepared) -> RunResult:
        """Run to the end (a whole answer); the errors a client gets instead of an answer are raised."""
        out, inbox = anyio.create_memory_object_stream[Piece](math.inf)
        left = Left()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, request.receive, tg.cancel_scope, left)
            tg.start_soon(self.produce, run, out, req)
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
        return result

    # -- /v1/responses -------------------------------------------------------------------------------
    def prepare_responses(self, req: ResponsesRequest) -> Prepared:
        """The backend's way to serve a Responses request: its own (an upstream), or the chat request's."""
        prepare = getattr(self.config.backend, "prepare_responses", None)
        if prepare is not None:
            return cast(Prepared, prepare(req))
        if req.previous_response_id is not None:
            raise ProxyError(400, "previous_response_id needs state an upstream keeps, and this proxy serves a local "
                             "model: send the whole conversation in input", param="previous_response_id")
        return self.config.backend.prepare(req.chat)

    def remember(self, response_id: str, req: ResponsesRequest, run: ReleasedRun, prepared: Prepared) -> None:
        """A forwarded response the client got whole (completed, nothing the final trace holds withheld) may be
        continued with ``previous_response_id``: keep the upstream's id for it."""
        remember = getattr(self.config.backend, "remember", None)
        if remember is None or not req.store or run._result is None:
            return
        status, _ = response_status(run)
        if status == "completed" and run.released_tokens == run.result.tokens.kept:
            remember(response_id, prepared)

    async def responses(self, request: Request) -> Response:
        try:
            self.authorize(request)
            raw = await self.body(request)
            req = parse_responses(raw, max_tokens_cap=self.config.max_tokens)
            run, prepared = self.released(req.chat, self.prepare_responses(req))
            response_id = new_response_id()
            run.tracing = start_responses(self.config.tracer_provider, request.headers, req, prepared, response_id)
        except ProxyError as exc:
            self.metrics.requests.labels("responses", "unknown", str(exc.status)).inc()
            return error_response(exc)
        run.on_finish = lambda r: self.remember(response_id, req, r, prepared)
        if req.stream:
            return ResponsesEventStream(self, req, run, prepared, response_id)
        self.metrics.in_flight.inc()
        try:
            result = await self._wait(request, req.chat, run, prepared)
        except ProxyError as exc:
            self.count(req.chat, str(exc.status), "responses")
            return error_response(exc)
        finally:
            self.metrics.in_flight.dec()
        self.count(req.chat, result.outcome.value, "responses")
        items = ResponseItems()
        for piece in run.released_pieces():
            if isinstance(piece, str):
                items.text(piece)
            else:
                items.call(piece)
        status, why = response_status(run)
        items.close("incomplete" if status == "incomplete" else "completed")
        body = response_object(req, response_id, created_now(), status=status, incomplete=why, output=items.output,
                               usage=responses_usage(run, prepared), metadata=report_metadata(run),
                               report=run.summary())
        headers = {"x-interlock-run-id": result.run_id, "x-interlock-interventions": str(len(result.interventions)),
                   "x-interlock-passed": "true" if result.passed else "false",
                   "x-interlock-outcome": result.outcome.value}
        return JSONOut(body, headers=headers)

    async def models(self, request: Request) -> Response:
        try:
            self.authorize(request)
            ids = await _list_models(self.config.backend)
        except ProxyError as exc:
            return error_response(exc)
        return JSONOut({"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                  "owned_by": "interlock"} for m in ids]})

    async def claim(self, request: Request) -> Response:
        ledger = self.config.released_calls
        try:
            self.authorize(request)
            if ledger is None:
                raise ProxyError(404, "this proxy keeps no released calls: start it with --released-calls",
                                 type="not_found_error", code="not_found")
            status, body = ledger.answer(await self.body(request))
        except ProxyError as exc:
            return error_response(exc)
        return JSONOut(body, status_code=status)

    async def health(self, request: Request) -> Response:
        return JSONOut({"status": "ok", "pid": os.getpid()})

    async def metrics_page(self, request: Request) -> Response:
        try:
            self.authorize(request)  # the figures name the tools, verifiers and traffic: the API key guards them
        except ProxyError as exc:
            return error_response(exc)
        if not self.metrics.available:
            return error_response(ProxyError(501, "metrics need prometheus-client: pip install 'interlock[proxy]'",
                                             type="server_error", code="metrics_unavailable"))
        data, media = self.metrics.render()
        return Response(data, media_type=media)


async def _list_models(backend: Backend) -> list[str]:
    lister = getattr(backend, "list_models", None)
    if lister is None:
        return list(backend.models)
    try:
        return list(await lister())
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        where = getattr(backend, "shown_url", "the upstream")
        redact = getattr(backend, "redact", redact_text)
        error = redact(f"{type(exc).__name__}: {exc}")
        _log.warning("listing the upstream's models failed", upstream=where, error=error)
        message = (f"the upstream {where} answered HTTP {status} to GET /models" if isinstance(status, int)
                   else f"the upstream {where} could not be reached: {error}")
        raise ProxyError(502, message, type="upstream_error", code="upstream_unavailable") from None


def _merged(*groups: Mapping[str, Sequence[ArgumentCheck]]) -> dict[str, list[ArgumentCheck]]:
    out: dict[str, list[ArgumentCheck]] = {}
    for group in groups:
        for name, found in group.items():
            out.setdefault(name, []).extend(found)
    return out


class _NoSlot:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _slot(slots: anyio.Semaphore | None) -> Any:
    return slots if slots is not None else _NoSlot()


_STATUS_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 405: "invalid_request_error", 429: "rate_limit_error"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method, ...) in the OpenAI shape."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route {request.url.path}: the proxy serves /v1/chat/completions, /v1/completions, " \
                  f"/v1/responses, /v1/models, /health and /metrics"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    error = ProxyError(status, message, type=_STATUS_TYPES.get(status, "invalid_request_error"),
                       code={404: "not_found", 405: "method_not_allowed"}.get(status))
    return error_response(error, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(ProxyError(500, f"internal error: {type(exc).__name__}", type="server_error"))


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
        Route("/v1/responses", handler.responses, methods=["POST"]),
        Route("/v1/models", handler.models, methods=["GET"]),
        Route("/health", handler.health, methods=["GET"]),
        Route("/metrics", handler.metrics_page, methods=["GET"]),
        Route(CLAIM_PATH, handler.claim, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.config = config
    app.state.metrics = handler.metrics
    return app
