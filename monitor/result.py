"""What a run returns: the final text, every verdict and intervention, token counts, timings, why it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseRuns, strip_tags
from interlock.monitor.verdicts import Action, Pass, Span, Verdict

__all__ = ["Intervention", "Outcome", "Restart", "RunResult", "StopReason", "TokenCounts", "outcome_of"]


class StopReason(enum.Enum):
    """Why a run ended."""

    COMPLETE = "complete"  # the generator finished and every check of the final text has come back
    BUDGET = "budget"  # a token budget was exhausted
    LENGTH = "length"  # the generator stopped at its own token limit (max_new_tokens), maybe mid-sentence
    INTERRUPTED = "interrupted"  # a verifier asked to interrupt
    OSCILLATION = "oscillation"  # the same violation kept coming back after rollbacks: abstained
    INTERVENTION_LIMIT = "intervention_limit"  # too many interventions in one run
    GOVERNOR = "governor"  # a governor stopped the run (converged, looping, ...)
    # a governor ended this attempt to start afresh (Monitor.run starts the next one; a streamed run ends here)
    RESTART = "restart"
    UNRESUMABLE = "unresumable"  # a rollback was needed but the generator cannot resume
    CANCELLED = "cancelled"  # the caller cancelled the run
    ERROR = "error"  # the generator failed


class Outcome(enum.Enum):
    """What a person asks of a run, in one word; exit codes, JSON, proxy headers and reports all use it.

    ``stop_reason`` says *why* the run ended; the outcome says *what that means for the answer*: a run that
    hit its budget is not a violation, and a run with nothing checkable did not "pass" its checks.
    """

    VERIFIED = "verified"  # it completed, checks judged some of its text and no violation stands
    UNCHECKED = "unchecked"  # it completed with no violation, but no check found anything to judge
    VIOLATION = "violation"  # a violation stands in the text, or the monitor interrupted or abstained
    # a token budget (or a governor that ends runs early, or a restart a streamed run cannot make) stopped it;
    # maybe a forced answer
    BUDGET = "budget"
    CUT = "cut"  # the generator's own token limit cut the text off: its last step may be unfinished
    ERROR = "error"  # the generator or its backend failed (or the run was cancelled): no answer to judge
    # it completed and no violation stands, but a check could not decide (an Unknown: a timeout, an error, text
    # past a reading bound) about text still in it: never shown as verified
    UNDECIDED = "undecided"

    @property
    def exit_code(self) -> int:
        """``interlock run``'s exit status: 0 verified/unchecked, 1 violation, 2 error, 3 budget/cut, 4 undecided."""
        return _EXIT[self]


_EXIT = {Outcome.VERIFIED: 0, Outcome.UNCHECKED: 0, Outcome.VIOLATION: 1, Outcome.BUDGET: 3, Outcome.CUT: 3,
         Outcome.ERROR: 2, Outcome.UNDECIDED: 4}
_GAVE_UP = frozenset({StopReason.INTERRUPTED, StopReason.OSCILLATION, StopReason.INTERVENTION_LIMIT,
                      StopReason.UNRESUMABLE})


def outcome_of(stop_reason: StopReason, open_violations: int, verdicts: tuple[Verdict, ...],
               abstained: bool = False, undecided: int = 0) -> Outcome:
    """The outcome from why a run ended, how many violations stand, how many undecided checks are about text
    still in the trace, and what the checks said.

    A standing violation wins over a budget stop (the user must see it), and a budget stop or a cut over an
    undecided check (the answer is incomplete either way); a pass "checked" nothing when every verdict is a
    ``Pass(checked=False)``.
    """
    if stop_reason in (StopReason.ERROR, StopReason.CANCELLED):
        return Outcome.ERROR
    if open_violations or abstained or stop_reason in _GAVE_UP:
        return Outcome.VIOLATION
    if stop_reason in (StopReason.BUDGET, StopReason.GOVERNOR, StopReason.RESTART):
        return Outcome.BUDGET
    if stop_reason is StopReason.LENGTH:
        return Outcome.CUT
    if undecided:
        return Outcome.UNDECIDED
    checked = any(isinstance(v, Pass) and v.checked for v in verdicts)
    return Outcome.VERIFIED if checked else Outcome.UNCHECKED


@dataclass(frozen=True)
class Intervention:
    """One action the monitor took (or, with ``applied=False``, would have taken) at a trace position."""

    action: Action
    source: str  # verifier or governor name
    position: int  # where the trace was cut (rollback) or where the violation's step starts
    span: Span  # the offending text
    epoch: int  # the epoch the offending text belonged to
    message: str
    feedback: str = ""  # text injected into the trace ("" when none)
    removed_text: str = ""  # what a rollback cut, tool calls written readably (chunks.readable_markers)
    tokens_discarded: int = 0
    applied: bool = True
    repeat: int = 0  # how many times the same violation came back before this one
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "source": self.source, "position": self.position,
                "span": self.span.to_list(), "epoch": self.epoch, "message": self.message,
                "feedback": self.feedback, "removed_text": self.removed_text,
                "tokens_discarded": self.tokens_discarded, "applied": self.applied, "repeat": self.repeat,
                "reason": self.reason}


@dataclass(frozen=True)
class TokenCounts:
    """Generated tokens still in the trace (kept), cut by rollbacks (discarded), spent on forks (fork); of the
    kept ones, ``thinking`` are in the thinking (the rest, ``answer``, in the answer)."""

    kept: int = 0
    discarded: int = 0
    fork: int = 0
    thinking: int = 0

    @property
    def total(self) -> int:
        return self.kept + self.discarded + self.fork

    @property
    def answer(self) -> int:
        return self.kept - self.thinking

    def to_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "discarded": self.discarded, "fork": self.fork, "total": self.total,
                "thinking": self.thinking, "answer": self.answer}


@dataclass(frozen=True)
class Restart:
    """One abandoned attempt: who ended it and why, the verified state carried into the next attempt's prompt,
    that prompt, the attempt's text and its tokens (all counted as discarded in the final result)."""

    attempt: int  # 1 for the first attempt
    source: str
    reason: str
    state: str
    prompt: str  # the prompt of the next attempt
    text: str
    tokens: TokenCounts

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "source": self.source, "reason": self.reason, "state": self.state,
                "prompt": self.prompt, "text": self.text, "tokens": self.tokens.to_dict()}


@dataclass(frozen=True)
class RunResult:
    """The outcome of one monitored run."""

    run_id: str
    prompt: str
    text: str
    stop_reason: StopReason
    verdicts: tuple[Verdict, ...]
    interventions: tuple[Intervention, ...]
    tokens: TokenCounts
    wall_seconds: float
    first_chunk_seconds: float | None
    check_seconds: float  # summed time spent in checks (they overlap generation)
    epochs: int
    detail: str = ""
    abstained: bool = False
    stale_verdicts: int = 0  # verdicts dropped because a rollback removed their text
    errors: tuple[str, ...] = field(default=())
    # Failed verdicts (and fail-closed unknowns) about text that is still in the final trace.
    open_violations: tuple[Verdict, ...] = field(default=())
    # Attempts abandoned by a restart, in order; ``text`` is the last attempt's (its prompt: restarts[-1].prompt).
    restarts: tuple[Restart, ...] = field(default=())
    # Undecided verdicts (``Unknown``s of verifiers that are not fail-closed) about text still in the final trace.
    undecided: tuple[Verdict, ...] = field(default=())
    # Where each phase begins in ``text`` (``()``: it is all answer); see ``reasoning`` and ``answer``.
    phases: PhaseRuns = field(default=())

    def text_of(self, phase: Phase) -> str:
        """The text of ``phase`` in ``text``, verbatim (thinking tags included where the model wrote them)."""
        if not self.phases:
            return self.text if phase == ANSWER else ""
        out = []
        for i, (start, kind) in enumerate(self.phases):
            end = self.phases[i + 1][0] if i + 1 < len(self.phases) else len(self.text)
            if kind == phase:
                out.append(self.text[start:end])
        return "".join(out)

    @property
    def reasoning(self) -> str:
        """The thinking, without its thinking tags (as a server's ``reasoning`` field holds it); ``""`` when the
        model did not think or its backend did not say what was thinking."""
        if not self.phases:
            return ""
        parts = []
        for i, (start, kind) in enumerate(self.phases):
            end = self.phases[i + 1][0] if i + 1 < len(self.phases) else len(self.text)
            if kind == THINKING:
                parts.append(strip_tags(self.text[start:end]))
        return "".join(parts)

    @property
    def answer(self) -> str:
        """The answer: the text after the thinking (all of ``text`` when there was no thinking)."""
        return self.text_of(ANSWER)

    @property
    def passed(self) -> bool:
        """True when the run completed, no violation stands in the final text and no check of it was undecided."""
        return self.stop_reason is StopReason.COMPLETE and not self.open_violations and not self.undecided

    @property
    def outcome(self) -> Outcome:
        """verified, unchecked, undecided, violation, budget, cut or error: see :class:`Outcome`."""
        return outcome_of(self.stop_reason, len(self.open_violations), self.verdicts, self.abstained,
                          len(self.undecided))

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data; a run with a thinking adds ``reasoning``, ``answer`` and ``phases``
        (``[[start, phase], ...]``), others' answer is their ``text``."""
        phased: dict[str, Any] = {}
        if self.phases:
            phased = {"reasoning": self.reasoning, "answer": self.answer,
                      "phases": [[start, phase] for start, phase in self.phases]}
        return {"run_id": self.run_id, "prompt": self.prompt, "text": self.text, "outcome": self.outcome.value,
                "stop_reason": self.stop_reason.value, "detail": self.detail, "passed": self.passed,
                "abstained": self.abstained, "tokens": self.tokens.to_dict(), "wall_seconds": self.wall_seconds,
                "first_chunk_seconds": self.first_chunk_seconds, "check_seconds": self.check_seconds,
                "epochs": self.epochs, "stale_verdicts": self.stale_verdicts, "errors": list(self.errors),
                "verdicts": [v.to_dict() for v in self.verdicts],
                "interventions": [i.to_dict() for i in self.interventions],
                "open_violations": [v.to_dict() for v in self.open_violations],
                "undecided": [v.to_dict() for v in self.undecided],
                "restarts": [r.to_dict() for r in self.restarts], **phased}
