"""OpenTelemetry spans of guarded tool calls (``execute_tool {tool}``) and of the agent loop (``invoke_agent``).

Both follow the GenAI semantic conventions and exist only while tracing is on (:mod:`interlock.monitor.telemetry`):
:func:`tool_span` and :func:`agent_span` return ``None`` otherwise, and the guard or the agent goes on as if this
module did not exist.

- ``execute_tool {tool}`` (INTERNAL): ``gen_ai.operation.name`` ``execute_tool``, ``gen_ai.tool.name``,
  ``gen_ai.tool.call.id`` (when the caller has one: the agent loop's calls do), ``gen_ai.tool.type``
  ``function``, ``gen_ai.tool.description``; and what the guard decided: ``interlock.tool.allowed``, and for a
  refusal ``interlock.tool.refusal.stages`` (reasoning, rollback, arguments, timeout, error),
  ``interlock.tool.refusal.sources`` and ``interlock.tool.refusal.reasons``. A refusal is not an error (the guard
  did its job); a tool that raised is, with ``error.type`` its exception's name. Arguments and results are
  recorded only with content capture on.
- ``invoke_agent`` (INTERNAL) around :meth:`Agent.run <interlock.monitor.agents.agent.Agent.run>`: each turn's run
  span and each tool call's span are its children; at the end ``interlock.agent.turns``, ``interlock.agent.stop``,
  ``interlock.agent.refusals`` and the turns' tokens added up.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from interlock.monitor import telemetry
from interlock.monitor.result import TokenCounts
from interlock.monitor.spans import describe_generator, jsonable_text, short_text, usage_attributes

if TYPE_CHECKING:
    from interlock.monitor.spans import RunSpans
    from opentelemetry.trace import Span, Tracer

__all__ = ["AgentSpan", "ToolSpan", "agent_span", "tool_span"]


class _Current:
    """Makes a span the current one for the duration of a ``with`` block, then ends it."""

    span: Span
    _token: object = None

    def __enter__(self) -> Any:
        from opentelemetry import context, trace

        self._token = context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        from opentelemetry import context

        context.detach(self._token)  # type: ignore[arg-type]
        self.span.end()

    def _failed(self, exc: BaseException) -> None:
        import anyio
        from opentelemetry.trace import Status, StatusCode

        if isinstance(exc, anyio.get_cancelled_exc_class()):
            self.span.set_attribute("error.type", "cancelled")
            self.span.set_status(Status(StatusCode.ERROR, "cancelled"))
            return
        self.span.record_exception(exc)
        self.span.set_attribute("error.type", type(exc).__qualname__)
        self.span.set_status(Status(StatusCode.ERROR, short_text(f"{type(exc).__name__}: {exc}")))


class ToolSpan(_Current):
    """The ``execute_tool`` span of one guarded call."""

    def __init__(self, tracer: Tracer, *, name: str, description: str, read_only: bool, call_id: str,
                 arguments: Mapping[str, Any], capture: bool) -> None:
        from opentelemetry.trace import SpanKind

        attributes: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                                      "gen_ai.tool.type": "function", "interlock.tool.read_only": read_only}
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        if description:
            attributes["gen_ai.tool.description"] = short_text(description)
        if capture:
            attributes["gen_ai.tool.call.arguments"] = jsonable_text(dict(arguments))
        self.capture = capture
        self.span = tracer.start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes)

    def ran(self, value: Any) -> None:
        """The checks passed and the tool returned ``value``."""
        self.span.set_attribute("interlock.tool.allowed", True)
        if self.capture:
            self.span.set_attribute("gen_ai.tool.call.result", jsonable_text(value))

    def refused(self, refusal: Any) -> None:
        """The guard refused the call (a :class:`~interlock.monitor.agents.tools.ToolRefusal`)."""
        reasons = tuple(refusal.reasons)
        self.span.set_attributes({
            "interlock.tool.allowed": False,
            "interlock.tool.refusal.stages": list(dict.fromkeys(r.stage for r in reasons)),
            "interlock.tool.refusal.sources": [r.source for r in reasons],
            "interlock.tool.refusal.reasons": [short_text(r.message) for r in reasons],
        })
        if refusal.feedback:
            self.span.set_attribute("interlock.tool.refusal.feedback", short_text(refusal.feedback))

    def failed(self, exc: BaseException) -> None:
        """The call raised (the tool, its timeout, or a guard without a run to wait for)."""
        self._failed(exc)


def tool_span(*, name: str, description: str, read_only: bool, call_id: str, arguments: Mapping[str, Any],
              spans: RunSpans | None) -> ToolSpan | None:
    """The span of a guarded call, or ``None`` while tracing is off. A call guarded by a traced run (``spans``:
    the run's) uses that run's tracer, as its monitor may trace to a provider of its own; its parent is the
    current span."""
    tracer = spans.tracer if spans is not None else telemetry.get_tracer()
    if tracer is None:
        return None
    return ToolSpan(tracer, name=name, description=description, read_only=read_only, call_id=call_id,
                    arguments=arguments, capture=telemetry.capture_content())


class AgentSpan(_Current):
    """The ``invoke_agent`` span of one :meth:`Agent.run`."""

    def __init__(self, tracer: Tracer, generator: Any, meta: Mapping[str, Any]) -> None:
        from opentelemetry.trace import SpanKind

        described = describe_generator(generator, meta)
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent",
                                      "gen_ai.provider.name": described.provider}
        if described.model:
            attributes["gen_ai.request.model"] = described.model
        self.span = tracer.start_span("invoke_agent", kind=SpanKind.INTERNAL, attributes=attributes)

    def finished(self, result: Any) -> None:
        """The loop ended with ``result`` (an :class:`~interlock.monitor.agents.agent.AgentResult`)."""
        tokens = TokenCounts()
        for turn in result.turns:
            t = turn.result.tokens
            tokens = TokenCounts(tokens.kept + t.kept, tokens.discarded + t.discarded, tokens.fork + t.fork)
        self.span.set_attributes({"interlock.agent.turns": len(result.turns), "interlock.agent.stop": result.stop,
                                  "interlock.agent.refusals": len(result.refusals), **usage_attributes(tokens)})

    def failed(self, exc: BaseException) -> None:
        self._failed(exc)


def agent_span(tracer_provider: Any, generator: Any, meta: Mapping[str, Any]) -> AgentSpan | None:
    """The span of one agent run, or ``None`` while tracing is off for the agent's monitor."""
    tracer = telemetry.get_tracer(tracer_provider)
    return AgentSpan(tracer, generator, meta) if tracer is not None else None
