"""OpenTelemetry spans of the proxy: one run span per request, continuing the client's trace.

An endpoint starts its request's span with one call, :func:`start_request` (:func:`start_chat` for the chat and
completions endpoints), and hands the result to the :class:`~interlock.monitor.proxy.release.ReleasedRun` it
answers from (``run.tracing``): the run reports its checks and interventions to the span as children, and the span
ends when the run's release ends, with what the client got (finish reason ``tool_calls`` when calls were released,
the response id, the prompt's tokens; an upstream that failed with an HTTP status gives the span that status as its
``error.type``). Nothing here runs while tracing is off: ``start_request`` returns ``None``.

The run span is a SERVER span named ``{operation} {model}`` (``chat gpt-4o``, ``text_completion ...``); its parent
is the span in the request's ``traceparent`` header (W3C trace context, or whatever ``OTEL_PROPAGATORS`` names),
so a client that traces its calls sees the proxy's work inside its own trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlock.monitor import telemetry
from interlock.monitor.proxy.backends import Prepared
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest
from interlock.monitor.proxy.output import ident_of
from interlock.monitor.proxy.release import finish_reason
from interlock.monitor.result import StopReason
from interlock.monitor.spans import RunDescription, RunSpans, describe_generator, reasoning_tokens_of

if TYPE_CHECKING:
    from interlock.monitor.proxy.release import ReleasedRun
    from interlock.monitor.proxy.responses_request import ResponsesRequest
    from opentelemetry.trace import TracerProvider

__all__ = ["RequestSpans", "start_chat", "start_request", "start_responses"]


@dataclass
class RequestSpans:
    """The run span of one request, and what is needed to end it."""

    spans: RunSpans
    prepared: Prepared
    model: str
    response_id: Callable[[str], str]  # the run id -> the id the client's answer carries

    def end(self, run: ReleasedRun) -> None:
        """The release is over (finished, failed or cancelled): the span ends with what the client got."""
        result = run._result or self.spans.result
        if result is None:  # the run never got going (it crashed before its first event)
            self.spans.end(error_type="_OTHER", error_message="the monitored run ended without a result")
            return
        prompt = self.prepared.prompt_tokens
        if prompt is None:
            prompt = self.prepared.generator.prompt_tokens
        status = getattr(self.prepared.generator.error, "status", None)
        failed = result.stop_reason is StopReason.ERROR and isinstance(status, int)
        self.spans.end(finish_reasons=["tool_calls"] if run.calls else [finish_reason(result)],
                       input_tokens=prompt, reasoning_tokens=reasoning_tokens_of(result),
                       response_id=self.response_id(result.run_id), response_model=self.model,
                       error_type=str(status) if failed else None, error_message=result.detail)


def start_request(tracer_provider: TracerProvider | None, headers: Mapping[str, str], prepared: Prepared, *,
                  operation: str, model: str, stream: bool, response_id: Callable[[str], str],
                  settings: Mapping[str, Any] | None = None,
                  input_messages: Sequence[Mapping[str, Any]] | None = None) -> RequestSpans | None:
    """Start the span of one request (``None`` while tracing is off): the parent comes from ``headers``;
    ``settings`` are the request's ``gen_ai.request.*`` attributes (``max_tokens``, ``temperature`` ...; ``None``
    values are left out); ``input_messages`` are recorded only with content capture on."""
    tracer = telemetry.get_tracer(tracer_provider)
    if tracer is None:
        return None
    from opentelemetry import propagate

    backend = describe_generator(prepared.generator)
    attributes: dict[str, Any] = {"gen_ai.request.stream": stream}
    for key, value in (settings or {}).items():
        if value is not None and not (isinstance(value, tuple | list) and not value):
            attributes[f"gen_ai.request.{key}"] = list(value) if isinstance(value, tuple) else value
    description = RunDescription(operation=operation, model=model or None, provider=backend.provider, kind="server",
                                 attributes=attributes, input_messages=input_messages)
    spans = RunSpans(tracer, description, parent=propagate.extract(headers), end_on_finish=False,
                     capture_content=telemetry.capture_content())
    return RequestSpans(spans, prepared, model, response_id)


def start_chat(tracer_provider: TracerProvider | None, headers: Mapping[str, str],
               req: ChatRequest | CompletionRequest, prepared: Prepared) -> RequestSpans | None:
    """:func:`start_request` for ``/v1/chat/completions`` (``chat``) and ``/v1/completions``
    (``text_completion``)."""
    if isinstance(req, ChatRequest):
        operation = "chat"
        messages = [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in req.messages]
    else:
        operation = "text_completion"
        messages = [{"role": "user", "parts": [{"type": "text", "content": req.prompt}]}]
    settings = {"max_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p,
                "seed": req.seed, "stop_sequences": req.stop}
    return start_request(tracer_provider, headers, prepared, operation=operation, model=req.model,
                         stream=req.stream, response_id=lambda run_id: ident_of(req, run_id), settings=settings,
                         input_messages=messages)


def start_responses(tracer_provider: TracerProvider | None, headers: Mapping[str, str], req: ResponsesRequest,
                    prepared: Prepared, response_id: str) -> RequestSpans | None:
    """:func:`start_request` for ``/v1/responses`` (``chat``; the response's id is fixed when the request
    arrives)."""
    chat = req.chat
    messages = [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in chat.messages]
    settings = {"max_tokens": chat.max_tokens, "temperature": chat.temperature, "top_p": chat.top_p}
    return start_request(tracer_provider, headers, prepared, operation="chat", model=req.model, stream=req.stream,
                         response_id=lambda _run_id: response_id, settings=settings, input_messages=messages)
