"""Release only verified text: run one monitored generation and pass on each step once its checks have passed.

A streaming client cannot be asked to forget text, so nothing leaves before it is verified. With ``hold="step"``
(the default) a completed step is released as soon as every check scheduled so far has come back without a
standing violation (the run's write barrier); the step being written, and any step with a check still running,
stay held. A rollback therefore only ever cuts text the client has not seen, and the latency a client pays is
about one step plus one check. ``hold="end"`` releases everything at the end, for verifiers that judge the
whole text only once it is complete (``AtEnd``), whose verdicts may reach back into earlier steps.

The text injected after a rollback (``"Wait, ... Let me redo this step."``) is part of the trace the model
continues from, but it is the monitor's, not the model's: it is left out of what the client receives unless
``show_feedback``. An interrupted run releases the text before the step that holds the standing violation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from interlock.monitor.monitor import Monitor, Run
from interlock.monitor.result import RunResult, StopReason
from interlock.monitor.steps import step_ends
from interlock.monitor.verdicts import Action, Fail, Verdict, ViolationError

__all__ = ["Hold", "ReleasedRun", "finish_reason"]

Hold = Literal["step", "end"]

_FINISH = {StopReason.COMPLETE: "stop", StopReason.GOVERNOR: "stop", StopReason.BUDGET: "length",
           StopReason.RESTART: "stop", StopReason.INTERRUPTED: "content_filter",
           StopReason.OSCILLATION: "content_filter",
           StopReason.INTERVENTION_LIMIT: "content_filter", StopReason.UNRESUMABLE: "content_filter",
           StopReason.ERROR: "error", StopReason.CANCELLED: "error"}


def finish_reason(result: RunResult) -> str:
    """The OpenAI ``finish_reason`` of a run: ``stop``, ``length`` (budget) or ``content_filter`` (the monitor
    interrupted it or abstained)."""
    return _FINISH[result.stop_reason]


def _feedback_spans(run: Run) -> list[tuple[int, int]]:
    """Where the feedback of each applied rollback sits in the trace now, read from the run's interventions (which
    change together with the trace, unlike the event queue, which may lag behind it)."""
    spans: list[tuple[int, int]] = []
    for i in run.interventions:
        if i.applied and i.action is Action.ROLLBACK:
            spans = [(a, b) for a, b in spans if a < i.position]  # the cut removed later text, feedback included
            if i.feedback:
                spans.append((i.position, i.position + len(i.feedback)))
    return spans


def _blocking(verdicts: tuple[Verdict, ...]) -> list[Verdict]:
    """Violations that keep text from the client: all but warnings."""
    return [v for v in verdicts if not (isinstance(v, Fail) and v.action is Action.WARN)]


@dataclass
class ReleasedRun:
    """One monitored request. Iterate :meth:`pieces` for the verified text; ``result`` afterwards."""

    monitor: Monitor
    prompt: str
    hold: Hold = "step"
    show_feedback: bool = False
    barrier_timeout: float = 60.0
    sent: str = ""  # what the client has received
    retracted: bool = False  # a late verdict reached into released text (possible only with AtEnd checks)
    run_id: str = ""
    _result: RunResult | None = None
    _run: Run | None = None

    @property
    def result(self) -> RunResult:
        if self._result is None:
            raise RuntimeError("the run has not finished")
        return self._result

    def visible(self, text: str, end: int) -> str:
        """``text[:end]`` without the feedback rollbacks injected (unless ``show_feedback``)."""
        if self.show_feedback or self._run is None:
            return text[:end]
        out, pos = [], 0
        for a, b in _feedback_spans(self._run):
            if a >= end:
                break
            out.append(text[pos:a])
            pos = min(b, end)
        out.append(text[pos:end])
        return "".join(out)

    def _advance(self, text: str, end: int) -> str:
        """The new visible text up to ``end``, or "" when nothing new (or it would contradict what was sent)."""
        visible = self.visible(text, end)
        if len(visible) <= len(self.sent):
            return ""
        if not visible.startswith(self.sent):
            self.retracted = True
            return ""
        piece = visible[len(self.sent):]
        self.sent = visible
        return piece

    async def pieces(self) -> AsyncIterator[str]:
        """Verified text as it becomes safe to send; ends when the run has finished."""
        boundary_chars = ("\n", ".", "!", "?")
        async with self.monitor.stream(self.prompt) as run:
            self._run = run
            self.run_id = run.run_id
            safe_end = 0  # a step boundary in the current text up to which everything was released
            async for event in run:
                if self.hold == "end" or event.kind != "chunk":
                    continue
                text = run.text
                safe_end = min(safe_end, len(text))  # a late verdict cut into released text (see retracted)
                if len(text) <= safe_end or not any(c in text[safe_end:] for c in boundary_chars):
                    continue
                ends = step_ends(text, safe_end)
                if not ends:
                    continue
                cut = ends[-1]
                try:
                    await run.barrier(timeout=self.barrier_timeout)
                except ViolationError as exc:
                    if _blocking(exc.verdicts):
                        continue  # a rollback or an interrupt is on its way; the events will tell
                except TimeoutError:
                    continue
                if not run.text.startswith(text[:cut]):
                    continue  # cut meanwhile
                safe_end = cut
                piece = self._advance(text, cut)
                if piece:
                    yield piece
        result = run.result
        self._result = result
        text = result.text
        end = len(text)
        blocking = _blocking(result.open_violations)
        if blocking:
            starts = [run.checks.scheduler.step_start(v.span.start) if v.span is not None else 0 for v in blocking]
            end = min(starts)
        if result.stop_reason is StopReason.ERROR:
            end = min(end, len(text))
        piece = self._advance(text, end)
        if piece:
            yield piece

    def summary(self) -> dict[str, Any]:
        """The ``interlock`` field of the response: what the monitor did to this answer."""
        r = self.result
        counts = {"pass": 0, "fail": 0, "unknown": 0}
        for v in r.verdicts:
            counts[v.kind] += 1
        return {
            "run_id": r.run_id, "passed": r.passed, "stop_reason": r.stop_reason.value, "detail": r.detail,
            "interventions": [{"action": i.action.value, "source": i.source, "message": i.message,
                               "feedback": i.feedback, "applied": i.applied, "removed_text": i.removed_text,
                               "tokens_discarded": i.tokens_discarded} for i in r.interventions],
            "verdicts": counts, "tokens": r.tokens.to_dict(), "retracted": self.retracted,
            "wall_seconds": round(r.wall_seconds, 6),
        }
