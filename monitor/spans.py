"""The spans of one monitored run, made from what the run already reports: its events, its checks, its result.

A :class:`RunSpans` exists only while tracing is on (:mod:`interlock.monitor.telemetry`); the run hands it each
event it emits (:meth:`RunSpans.on_event`) and each check that comes back (:meth:`RunSpans.check`), so a run
without tracing does nothing more than test that it has none. What one run gives, following the OpenTelemetry
GenAI semantic conventions where they say something and under ``interlock.`` where they do not:

- the run span ``{operation} {model}`` (``chat``, or ``text_completion`` for a completions endpoint; the
  operation alone when the model is unknown): ``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.request.model`` (at the start, for samplers), then ``gen_ai.response.finish_reasons``,
  ``gen_ai.usage.output_tokens`` (every token generated, rolled-back and fork tokens included: what the answer
  cost), ``gen_ai.usage.input_tokens`` when the backend counted the prompt, ``gen_ai.usage.reasoning.output_tokens``
  when the caller knows the reasoning's share, ``gen_ai.response.time_to_first_chunk``, and interlock's
  ``interlock.outcome``, ``interlock.stop_reason``, ``interlock.interventions``, ``interlock.tokens.kept`` /
  ``.discarded`` / ``.fork`` and the verdict counts;
- a child span ``check {verifier}`` per check, timed as it ran: the verdict (the worst of what it returned), the
  step it checked, whether a rollback had removed that step meanwhile (``interlock.check.stale``), whether it was a
  barrier's provisional check, and ``error.type`` when the verifier raised (``verifier_error``) or overran
  (``timeout``); a check cancelled by a rollback is an ``interlock.check.cancelled`` event on the run span;
- a child span ``{action} {source}`` per intervention (``rollback arithmetic``, ``interrupt tool-call``,
  ``restart loop-guard``, ``warn ...``, ``stop ...``) and ``forced_answer {governor}`` when a budget forced the
  answer; every governor decision is an ``interlock.governor`` event on the run span.

A run that failed (the generator broke, the caller cancelled it) has status ERROR and ``error.type``
``generator_error`` or ``cancelled``. A violation is not an error: the monitor did its job, and
``interlock.outcome`` says ``violation``. Text that may hold model output (verifier messages, feedback) is cut to
:data:`TEXT_LIMIT` characters and has lone surrogates replaced, so no span can fail to export; prompts, answers
and removed text are recorded only with content capture on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from interlock.monitor.events import Event, FeedbackInjected, GovernorDecided, Intervened, RunFinished
from interlock.monitor.logs import get_logger
from interlock.monitor.result import Intervention, RunResult, StopReason, TokenCounts
from interlock.monitor.textout import scrub
from interlock.monitor.verdicts import Action, Fail, Unknown, Verdict

if TYPE_CHECKING:
    from interlock.monitor.execute import CheckOutcome
    from interlock.monitor.monitor import Run
    from interlock.monitor.trace import TraceView
    from interlock.monitor.verifier import Verifier
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = ["TEXT_LIMIT", "RunDescription", "RunSpans", "describe_generator", "finish_reason_of", "jsonable_text",
           "reasoning_tokens_of", "short_text", "usage_attributes"]

TEXT_LIMIT = 1000  # characters of a message, reason or feedback kept on a span
SpanKindName = Literal["client", "internal", "server"]

_FINISH = {StopReason.COMPLETE: "stop", StopReason.GOVERNOR: "stop", StopReason.BUDGET: "length",
           StopReason.RESTART: "length", StopReason.INTERRUPTED: "content_filter",
           StopReason.OSCILLATION: "content_filter", StopReason.INTERVENTION_LIMIT: "content_filter",
           StopReason.UNRESUMABLE: "content_filter", StopReason.ERROR: "error", StopReason.CANCELLED: "error",
           StopReason.LENGTH: "length"}


def finish_reason_of(result: RunResult) -> str:
    """The OpenAI ``finish_reason`` of a run: ``stop``, ``length`` (a budget, the generator's own limit, or a
    governor's restart, which a streamed run cannot make: the answer was abandoned), ``content_filter`` (the monitor
    interrupted it or abstained) or ``error``. The proxy answers with the same one (or ``tool_calls``)."""
    return _FINISH[result.stop_reason]


def short_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` as a span can carry it: lone surrogates as U+FFFD, at most ``limit`` characters."""
    text, _ = scrub(text)
    return text if len(text) <= limit else text[:limit] + "…"


def jsonable_text(value: Any) -> str:
    """``value`` as a JSON string for an attribute (the GenAI conventions allow JSON where a structure is due)."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return scrub(text)[0]


def usage_attributes(tokens: TokenCounts, *, input_tokens: int | None = None,
                     reasoning_tokens: int | None = None) -> dict[str, Any]:
    """The GenAI usage attributes and interlock's token split of one run.

    ``gen_ai.usage.output_tokens`` is every token generated for the answer (kept, rolled back, forks);
    ``reasoning_tokens`` (the thinking phase's tokens, when the caller knows them) are part of it, as the
    conventions ask, and become ``gen_ai.usage.reasoning.output_tokens``.
    """
    out: dict[str, Any] = {"gen_ai.usage.output_tokens": tokens.total, "interlock.tokens.kept": tokens.kept,
                           "interlock.tokens.discarded": tokens.discarded, "interlock.tokens.fork": tokens.fork}
    if input_tokens is not None:
        out["gen_ai.usage.input_tokens"] = int(input_tokens)
    if reasoning_tokens is not None:
        out["gen_ai.usage.reasoning.output_tokens"] = int(reasoning_tokens)
    return out


def reasoning_tokens_of(result: RunResult) -> int | None:
    """The thinking's tokens of a run that had a thinking (those kept in the trace), else ``None``."""
    return result.tokens.thinking if result.phases or result.tokens.thinking else None


@dataclass(frozen=True)
class RunDescription:
    """What the run span says at its start: the operation, the model and who serves it, and the request's
    settings (``gen_ai.request.*`` and ``server.*`` attributes, as given)."""

    operation: str = "chat"
    model: str | None = None
    provider: str = "interlock"
    kind: SpanKindName = "internal"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    input_messages: Sequence[Mapping[str, Any]] | None = None  # recorded only with content capture on

    @property
    def span_name(self) -> str:
        return f"{self.operation} {self.model}" if self.model else self.operation


def _chain(generator: Any) -> list[Any]:
    """The generator and those it wraps (StopAt's ``generator``, a proxy request's ``base``), outermost first."""
    chain: list[Any] = []
    while generator is not None and len(chain) < 5 and all(generator is not g for g in chain):
        chain.append(generator)
        generator = getattr(generator, "base", None) or getattr(generator, "generator", None)
    return chain


def _through(generator: Any, attribute: str) -> Any:
    """``generator.attribute``, or the first wrapped generator's that has it."""
    return next((v for g in _chain(generator) if (v := getattr(g, attribute, None)) is not None), None)


def describe_generator(generator: Any, meta: Mapping[str, Any] | None = None) -> RunDescription:
    """The run span's description from the generator: an OpenAI-compatible server is ``openai`` (as the
    conventions name any server spoken to with the OpenAI API) and a CLIENT span with ``server.address``; a local
    transformers model is ``transformers`` with the model's name; anything else ``interlock``. ``meta["model"]``
    and ``meta["provider"]`` (``Monitor(meta=...)``) override what the generator says."""
    meta = meta or {}
    model = meta.get("model")
    provider = meta.get("provider")
    attributes: dict[str, Any] = {}
    kind: SpanKindName = "internal"
    operation = "chat"
    chain = _chain(generator)
    remote = next((g for g in chain if isinstance(getattr(g, "api_root", None), str)), None)
    local = next((g for g in chain if type(g).__module__.startswith("interlock.generators.transformers")), None)
    if remote is not None:
        provider = provider or "openai"
        kind = "client"
        found = getattr(remote, "model", None)
        model = model or (found if isinstance(found, str) else None)
        if getattr(remote, "endpoint", None) == "completions":
            operation = "text_completion"
        parts = urlsplit(remote.api_root)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    elif local is not None:
        provider = provider or "transformers"
        found = getattr(getattr(getattr(local, "model", None), "config", None), "_name_or_path", None)
        model = model or (found if isinstance(found, str) and found else None)
        if model:
            attributes["gen_ai.response.model"] = model  # a local model answers itself
    return RunDescription(operation=operation, model=model if isinstance(model, str) and model else None,
                          provider=str(provider or "interlock"), kind=kind, attributes=attributes)


_F = TypeVar("_F", bound=Callable[..., Any])


def _never_raises(method: _F) -> _F:
    """Tracing must never break the run it watches: a failure is logged, this run's tracing stops, and its span
    ends with what it has."""

    @functools.wraps(method)
    def guarded(self: RunSpans, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self._broken(method.__name__, exc)
            return None

    return cast(_F, guarded)


def _worst(verdicts: Sequence[Verdict]) -> str:
    if any(isinstance(v, Fail) for v in verdicts):
        return "fail"
    if any(isinstance(v, Unknown) for v in verdicts):
        return "unknown"
    return "pass"


class RunSpans:
    """The run span and its children for one monitored run (or one ``Monitor.run`` with its restarts).

    Made by the monitor when tracing is on, or by a caller that adds attributes of its own before the span ends
    (the proxy: the response's id, finish reason and prompt tokens); ``end_on_finish`` says whether the span
    ends with the run (``RunFinished``) or when its maker calls :meth:`end`. ``activate`` makes the run span
    the current one, so what the run's tasks trace (a generator's HTTP calls, a guarded tool) joins it.
    """

    def __init__(self, tracer: Tracer, description: RunDescription, *, parent: Context | None = None,
                 end_on_finish: bool = True, capture_content: bool = False) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        self.tracer = tracer
        self.description = description
        self.end_on_finish = end_on_finish
        self.capture = capture_content
        kind = {"client": SpanKind.CLIENT, "server": SpanKind.SERVER}.get(description.kind, SpanKind.INTERNAL)
        attributes: dict[str, Any] = {"gen_ai.operation.name": description.operation,
                                      "gen_ai.provider.name": description.provider}
        if description.model:
            attributes["gen_ai.request.model"] = description.model
        attributes.update({k: v for k, v in description.attributes.items() if v is not None})
        self.span: Span = tracer.start_span(description.span_name, context=parent, kind=kind, attributes=attributes)
        self.context: Context = trace.set_span_in_context(self.span, parent)
        self.recording = self.span.is_recording()
        self.result: RunResult | None = None
        self.ended = False
        self._run: Run | None = None
        self._forced: object | None = None  # the forced answer already recorded
        self._prompted = False
        if capture_content and description.input_messages is not None and self.recording:
            self.span.set_attribute("gen_ai.input.messages", jsonable_text(list(description.input_messages)))

    # -- the run's side ------------------------------------------------------------------------------
    @_never_raises
    def bind(self, run: Run) -> None:
        """The run (or the next attempt of a restarted one) whose events come now."""
        self._run = run
        if self.recording:
            self.span.set_attribute("interlock.run_id", run.run_id)
            if self.capture and self.description.input_messages is None and run.prompt and not self._prompted:
                self._prompted = True  # the first attempt's prompt: a restart's prompts are its own
                self.span.set_attribute("gen_ai.input.messages", jsonable_text(
                    [{"role": "user", "parts": [{"type": "text", "content": run.prompt}]}]))

    def activate(self) -> object:
        """Make the run span current in this context; returns the token for :meth:`deactivate`."""
        from opentelemetry import context

        return context.attach(self.context)

    def deactivate(self, token: object) -> None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]

    @_never_raises
    def on_event(self, event: Event) -> None:
        """One event of the run, as it is emitted."""
        if not self.recording:
            if isinstance(event, RunFinished) and event.result is not None:
                self.result = event.result
                if self.end_on_finish:
                    self.end()
            return
        if self.ended:
            return
        if isinstance(event, Intervened) and event.intervention is not None:
            self._intervention(event.intervention)
        elif isinstance(event, GovernorDecided):
            attributes: dict[str, Any] = {"interlock.governor.name": event.governor,
                                          "interlock.governor.action": event.action,
                                          "interlock.governor.reason": short_text(event.reason)}
            if event.tokens_saved is not None:
                attributes["interlock.governor.tokens_saved"] = event.tokens_saved
            self.span.add_event("interlock.governor", attributes)
            self._governor = event.governor
        elif isinstance(event, FeedbackInjected):
            self._maybe_forced(event)
        elif isinstance(event, RunFinished) and event.result is not None:
            self.finish(event.result)
            if self.end_on_finish:
                self.end()

    _governor = ""

    @_never_raises
    def check(self, verifier: Verifier, view: TraceView, outcome: CheckOutcome | None, *,
              provisional: bool = False) -> None:
        """A check of ``verifier`` on ``view`` came back (``outcome``), or was cancelled because a rollback removed
        its text (``None``); ``provisional``: the barrier's check of an unfinished step."""
        if not self.recording or self.ended:
            return
        name = verifier.name
        step = view.step.span
        where: dict[str, Any] = {"interlock.check.verifier": name, "interlock.check.step.start": step.start,
                 "interlock.check.step.end": step.end}
        if outcome is None:
            self.span.add_event("interlock.check.cancelled", where)
            return
        end = time.time_ns()
        verdicts = outcome.verdicts
        run = self._run
        stale = run is not None and bool(verdicts) and all(not run.trace.still_valid(v.epoch, v.span)
                                                          for v in verdicts)
        attributes: dict[str, Any] = {**where, "interlock.check.verdict": _worst(verdicts),
                                      "interlock.check.verdicts": len(verdicts),
                                      "interlock.check.epoch": view.epoch,
                                      "interlock.check.seconds": outcome.seconds,
                                      "interlock.check.stale": stale,
                                      "interlock.check.provisional": provisional}
        failed = next((v for v in verdicts if isinstance(v, Fail)), None)
        if failed is not None:
            attributes["interlock.check.message"] = short_text(failed.message)
            attributes["interlock.check.action"] = (failed.action or verifier.action).value
        else:
            unknown = next((v for v in verdicts if isinstance(v, Unknown)), None)
            if unknown is not None:
                attributes["interlock.check.message"] = short_text(unknown.reason)
        extra = getattr(verifier, "span_attributes", None)
        if callable(extra):
            try:
                attributes.update(extra(view))
            except Exception as exc:  # a verifier's own attributes must never break the run
                attributes["interlock.check.attributes_error"] = f"{type(exc).__name__}: {exc}"
        span = self.tracer.start_span(f"check {name}", context=self.context,
                                      start_time=end - int(outcome.seconds * 1e9), attributes=attributes)
        if outcome.error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", "timeout" if outcome.error.startswith("timed out") else "verifier_error")
            span.set_status(Status(StatusCode.ERROR, short_text(outcome.error)))
        span.end(end_time=end)

    def _intervention(self, i: Intervention) -> None:
        attributes: dict[str, Any] = {"interlock.intervention.action": i.action.value,
                                      "interlock.intervention.source": i.source,
                                      "interlock.intervention.applied": i.applied,
                                      "interlock.intervention.position": i.position,
                                      "interlock.intervention.epoch": i.epoch,
                                      "interlock.intervention.message": short_text(i.message),
                                      "interlock.intervention.repeat": i.repeat,
                                      "interlock.intervention.tokens_discarded": i.tokens_discarded}
        if i.reason:
            attributes["interlock.intervention.reason"] = short_text(i.reason)
        if i.feedback:
            attributes["interlock.intervention.feedback"] = short_text(i.feedback)
        if self.capture and i.removed_text:
            attributes["interlock.intervention.removed_text"] = scrub(i.removed_text)[0]
        self._instant(f"{i.action.value} {i.source}", attributes)

    def _maybe_forced(self, event: FeedbackInjected) -> None:
        """A budget forced the answer: its prefix is the injection made while the run's forced answer is set."""
        run = self._run
        forced = run.intervener.forced if run is not None else None
        if forced is None or forced is self._forced:
            return
        self._forced = forced
        source = self._governor or "governor"
        self._instant(f"forced_answer {source}", {
            "interlock.intervention.action": "forced_answer", "interlock.intervention.source": source,
            "interlock.intervention.applied": True, "interlock.intervention.position": event.position,
            "interlock.intervention.epoch": event.epoch,
            "interlock.intervention.message": short_text(forced.detail),
            "interlock.intervention.tokens_allowed": forced.tokens_left})

    def _instant(self, name: str, attributes: Mapping[str, Any]) -> None:
        if self.ended:
            return
        now = time.time_ns()
        self.tracer.start_span(name, context=self.context, start_time=now, attributes=attributes).end(end_time=now)

    # -- the end -------------------------------------------------------------------------------------
    @_never_raises
    def finish(self, result: RunResult) -> None:
        """Record what the run came to (again for a later attempt: the last result wins)."""
        self.result = result
        if not self.recording or self.ended:
            return
        counts = {"pass": 0, "fail": 0, "unknown": 0}
        for v in result.verdicts:
            counts[v.kind] += 1
        attributes: dict[str, Any] = {
            "gen_ai.response.finish_reasons": [finish_reason_of(result)],
            "interlock.run_id": result.run_id,
            "interlock.outcome": result.outcome.value,
            "interlock.stop_reason": result.stop_reason.value,
            "interlock.passed": result.passed,
            "interlock.interventions": len(result.interventions),
            "interlock.rollbacks": sum(1 for i in result.interventions if i.applied and i.action is Action.ROLLBACK),
            "interlock.open_violations": len(result.open_violations),
            "interlock.verdicts.pass": counts["pass"], "interlock.verdicts.fail": counts["fail"],
            "interlock.verdicts.unknown": counts["unknown"],
            "interlock.stale_verdicts": result.stale_verdicts,
            "interlock.check_seconds": result.check_seconds,
            "interlock.epochs": result.epochs,
            "interlock.restarts": len(result.restarts),
            "interlock.abstained": result.abstained,
            **usage_attributes(result.tokens, input_tokens=self._prompt_tokens(),
                               reasoning_tokens=reasoning_tokens_of(result)),
        }
        if result.detail:
            attributes["interlock.detail"] = short_text(result.detail)
        if result.first_chunk_seconds is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = result.first_chunk_seconds
        if self.capture:
            attributes["gen_ai.output.messages"] = jsonable_text([{
                "role": "assistant", "parts": [{"type": "text", "content": result.text}],
                "finish_reason": finish_reason_of(result)}])
        self.span.set_attributes(attributes)
        if result.stop_reason in (StopReason.ERROR, StopReason.CANCELLED):
            self._error("generator_error" if result.stop_reason is StopReason.ERROR else "cancelled", result.detail)

    def _broken(self, where: str, exc: Exception) -> None:
        get_logger(component="telemetry").warning("tracing failed; this run is no longer traced", where=where,
                                                   error=f"{type(exc).__name__}: {exc}")
        self.recording = False
        if not self.ended:
            self.ended = True
            with contextlib.suppress(Exception):
                self._error("_OTHER", f"tracing failed in {where}: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                self.span.end()

    def _prompt_tokens(self) -> int | None:
        run = self._run
        count = _through(run.monitor.generator, "prompt_tokens") if run is not None else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    def _error(self, error_type: str, message: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute("error.type", error_type)
        self.span.set_status(Status(StatusCode.ERROR, short_text(message or error_type)))

    @_never_raises
    def end(self, *, finish_reasons: Sequence[str] | None = None, input_tokens: int | None = None,
            reasoning_tokens: int | None = None, response_id: str | None = None, response_model: str | None = None,
            error_type: str | None = None, error_message: str = "") -> None:
        """End the run span (once; later calls do nothing), with what only its maker knows: the answer's finish
        reasons and id, the prompt's tokens, the reasoning's share of the output tokens, an error of its own."""
        if self.ended:
            return
        self.ended = True
        if self.recording:
            attributes: dict[str, Any] = {}
            if finish_reasons is not None:
                attributes["gen_ai.response.finish_reasons"] = list(finish_reasons)
            if self.result is not None and (input_tokens is not None or reasoning_tokens is not None):
                attributes.update(usage_attributes(self.result.tokens, input_tokens=input_tokens,
                                                   reasoning_tokens=reasoning_tokens))
            if response_id is not None:
                attributes["gen_ai.response.id"] = response_id
            if response_model is not None:
                attributes["gen_ai.response.model"] = response_model
            self.span.set_attributes(attributes)
            if error_type is not None:
                self._error(error_type, error_message)
        self.span.end()
