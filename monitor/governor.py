"""The governor protocol, and the two governors every run has (:class:`InterventionLimit`, :class:`OscillationGuard`).

Governors watch the same stream as the verifiers and keep a run from running away. The library of governors
(token budgets, the budget pool, early stops, the loop guard) lives in :mod:`interlock.monitor.governors`.

A governor may cap the tokens a run can still generate (:meth:`Governor.token_allowance`), look at each chunk
(:meth:`Governor.on_chunk`), say what to do when its allowance is used up (:meth:`Governor.on_exhausted`,
e.g. force an answer) and veto or escalate an intervention (:meth:`Governor.on_intervention`). Every decision
becomes an event with its reason and the tokens it saved.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities
from interlock.monitor.phases import Phase
from interlock.monitor.result import Intervention, StopReason, TokenCounts
from interlock.monitor.trace import Forker
from interlock.monitor.verdicts import Action

__all__ = ["ForceAnswer", "Governor", "GovernorDecision", "InterventionLimit", "OscillationGuard", "RunContext",
           "force_answer_option", "normalise_claim", "uses_hook"]


class RunContext(Protocol):
    """A read-only view of the run for governors."""

    @property
    def run_id(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def tokens(self) -> TokenCounts: ...
    @property
    def interventions(self) -> tuple[Intervention, ...]: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def capabilities(self) -> Capabilities: ...
    @property
    def forcing_answer(self) -> bool:
        """True once a governor has injected an answer prefix: the run ends with the answer's first line."""
    @property
    def phase(self) -> Phase:
        """The phase the trace is in: ``"thinking"`` while a reasoning model thinks, else ``"answer"``
        (``tokens.thinking`` counts the thinking's kept tokens)."""
    def fork_at(self, end: int | None = None) -> Forker | None:
        """A forker that continues the trace text up to ``end`` (default: all of it) with a probe, without
        touching the trace (``None``: the backend cannot fork)."""


@dataclass(frozen=True)
class GovernorDecision:
    """What a governor asks for.

    - ``WARN``: an event only. ``STOP``: end generation (after ``inject`` and at most ``allow_tokens`` more).
    - ``INTERRUPT``: end now; ``abstain`` marks the answer as withheld.
    - ``ROLLBACK``: cut the trace at ``position`` (default: the current end) and inject ``inject``.
    - ``RESTART``: end this attempt; :meth:`Monitor.run` starts a fresh one whose prompt holds the question and
      only the verified state before ``position`` (up to ``Monitor(max_restarts=)``; past it, a stop).
    - ``feedback``/``repeat``, returned from :meth:`Governor.on_intervention`, replace the intervention's
      feedback (escalation) without changing its action.
    - ``thinking="end"`` (with any action; :meth:`end_thinking` builds it): append ``inject`` to the thinking
      (a budget message), end the thinking there and let the model go on with its answer.
      ``thinking="extend"`` (:meth:`extend_thinking`): the model ended its thinking too early: cut off the end of
      the thinking (its closing tag and any answer after it) and append ``inject`` (``"Wait"``) to the thinking,
      so the model thinks on.
    - ``answer`` (with ``thinking="end"``): write this text as the answer after the ended thinking and end the run
      there (a probe's answer returned as it is, instead of letting the model write one).
    - ``tokens_saved``: the governor's estimate; when ``None`` on a stop the monitor fills in the token budget
      left at that point (what a fixed cap would still have spent).
    """

    action: Action
    reason: str
    position: int | None = None
    inject: str | None = None
    allow_tokens: int | None = None
    tokens_saved: int | None = None
    abstain: bool = False
    feedback: str | None = None
    stop_reason: StopReason = StopReason.GOVERNOR
    thinking: Literal["end", "extend"] | None = None
    answer: str | None = None

    @classmethod
    def end_thinking(cls, reason: str, message: str = "", *, answer: str | None = None) -> GovernorDecision:
        """End the thinking with ``message``; the model then writes its answer (``answer``: this text is the
        answer, and the run ends)."""
        return cls(Action.WARN, reason, inject=message, thinking="end", answer=answer)

    @classmethod
    def extend_thinking(cls, reason: str, text: str = "Wait") -> GovernorDecision:
        """Undo an early end of the thinking and append ``text``, so the model thinks on."""
        return cls(Action.WARN, reason, inject=text, thinking="extend")


@dataclass(frozen=True)
class ForceAnswer:
    """How a governor ends a run with an answer rather than mid-sentence.

    The monitor appends ``end_of_thinking`` (e.g. ``"</think>"`` for a reasoning model; empty for plain chat
    models) and ``prefix``, then lets the model write at most ``tokens`` more; the answer ends at the end of its
    first non-empty line. Budgets reserve ``tokens`` so that the hard cap holds with the answer included.
    """

    prefix: str = "\nFinal answer:"
    end_of_thinking: str = ""
    tokens: int = 16

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise ConfigError(f"ForceAnswer: tokens must be >= 1, got {self.tokens}")
        if not (self.prefix or self.end_of_thinking):
            raise ConfigError("ForceAnswer needs a prefix or an end-of-thinking marker to inject")

    @property
    def text(self) -> str:
        return self.end_of_thinking + self.prefix

    def decision(self, reason: str, *, stop_reason: StopReason = StopReason.GOVERNOR,
                 tokens_saved: int | None = None) -> GovernorDecision:
        return GovernorDecision(Action.STOP, reason, inject=self.text, allow_tokens=self.tokens,
                                tokens_saved=tokens_saved, stop_reason=stop_reason)


def force_answer_option(value: ForceAnswer | bool | None) -> ForceAnswer | None:
    """``True`` means the default :class:`ForceAnswer`, ``False``/``None`` a plain stop."""
    if value is None or value is False:
        return None
    if value is True:
        return ForceAnswer()
    if isinstance(value, ForceAnswer):
        return value
    raise ConfigError(f"force_answer must be a bool or a ForceAnswer, got {value!r}")


class Governor:
    """Base class: every hook does nothing by default.

    One governor instance may serve several runs, even concurrently: keep per-run state keyed by
    ``ctx.run_id`` (set up in :meth:`start`, dropped in :meth:`on_end`).
    """

    name: str = "governor"

    def validate(self, capabilities: Capabilities) -> None:
        """Called when a :class:`Monitor` is built: raise :class:`ConfigError` if the backend lacks what this
        governor needs (so the user learns it before the first token, not from a silent no-op)."""

    def start(self, ctx: RunContext) -> None:
        """A run starts (a governor instance may serve several runs one after another)."""

    def token_allowance(self, ctx: RunContext) -> int | None:
        """How many more generated tokens this governor allows (``None``: no limit)."""
        return None

    def thinking_allowance(self, ctx: RunContext) -> int | None:
        """How many more thinking tokens this governor allows, for a backend whose server enforces a thinking
        budget itself (``GenerationRequest.max_thinking_tokens``); ``None``: none asked of the server."""
        return None

    def on_chunk(self, ctx: RunContext, chunk: Chunk
                 ) -> GovernorDecision | Awaitable[GovernorDecision | None] | None:
        """A chunk entered the trace. Return a decision, or an awaitable of one for a decision that needs a
        wait (a fork probe): the monitor awaits it beside generation and drops it if the trace changed."""
        return None

    def on_exhausted(self, ctx: RunContext) -> GovernorDecision | None:
        """This governor's allowance reached zero; return a decision (e.g. force the answer) or stop plainly."""
        return None

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        """The monitor is about to intervene; return a decision to escalate it, or ``None`` to let it be."""
        return None

    def on_end(self, ctx: RunContext) -> None:
        """The run ended."""


def uses_hook(governor: Governor, hook: str) -> bool:
    """Whether ``governor`` does something in ``hook`` (e.g. ``"on_chunk"``): its class overrides the base
    class's do-nothing method, or the instance sets its own. The monitor calls the per-chunk hooks
    (``on_chunk``, ``token_allowance``) only of the governors that use them."""
    if hook not in _HOOKS:
        raise ConfigError(f"{hook!r} is not a governor hook; hooks are {sorted(_HOOKS)}")
    return hook in getattr(governor, "__dict__", ()) or getattr(type(governor), hook) is not getattr(Governor, hook)


_HOOKS = frozenset(name for name in vars(Governor) if not name.startswith("_") and callable(vars(Governor)[name]))


class InterventionLimit(Governor):
    """Bounds the number of interventions (rollbacks and injected nudges) in one run; past it, interrupt."""

    name = "intervention_limit"

    def __init__(self, max_interventions: int = 8) -> None:
        if max_interventions < 0:
            raise ConfigError(f"InterventionLimit: max_interventions must be >= 0, got {max_interventions}")
        self.max_interventions = max_interventions

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is not Action.ROLLBACK:
            return None
        done = sum(1 for i in ctx.interventions if i.applied and i.action is Action.ROLLBACK)
        if done >= self.max_interventions:
            return GovernorDecision(Action.INTERRUPT, f"{done} interventions already: the limit is "
                                    f"{self.max_interventions}", abstain=True,
                                    stop_reason=StopReason.INTERVENTION_LIMIT)
        return None


_NUMBER_SPACES = re.compile(r"\s+")


def normalise_claim(source: str, claim: str) -> tuple[str, str]:
    """Key under which the oscillation guard counts a violation: case and spacing do not matter."""
    return source, _NUMBER_SPACES.sub("", claim).lower()


class OscillationGuard(Governor):
    """Counts the same violation (same source, same normalised claim) coming back after a rollback.

    The first return gets stronger feedback; past ``limit`` returns the run is interrupted with an abstention,
    so a run can never loop between an error and its correction.
    """

    name = "oscillation_guard"

    def __init__(self, limit: int = 2,
                 escalation: str = "You made this same mistake before. {feedback} Do not repeat it.") -> None:
        if limit < 0:
            raise ConfigError(f"OscillationGuard: limit must be >= 0, got {limit}")
        self.limit = limit
        self.escalation = escalation

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is not Action.ROLLBACK or proposal.repeat == 0:
            return None
        if proposal.repeat > self.limit:
            return GovernorDecision(Action.INTERRUPT, f"the same violation came back {proposal.repeat} times "
                                    f"after rollback: {proposal.message}", abstain=True,
                                    stop_reason=StopReason.OSCILLATION)
        return GovernorDecision(Action.ROLLBACK, "repeated violation: stronger feedback",
                                feedback=self.escalation.format(feedback=_sentence(proposal.feedback),
                                                                message=proposal.message))


def _sentence(text: str) -> str:
    """``text`` as a sentence another follows: stripped, and ended with a full stop unless it already ends one
    ("3 + 4 is 7, not 8" -> "3 + 4 is 7, not 8.")."""
    text = text.strip()
    return text + "." if text and text[-1] not in ".!?)\"'" else text
