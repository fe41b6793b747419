"""Drive governors over a recorded trace, as the monitor would while the trace streamed, without a model.

:class:`OfflineRun` is the governors' :class:`RunContext`; :func:`replay_governors` follows the monitor's order
of calls (``start``; before each chunk the smallest ``token_allowance``, a chunk that would cross it cut to what
is left, as a generator asked for ``max_new_tokens`` would stop; ``on_exhausted`` for the governor whose
allowance ran out; ``on_chunk`` of every governor after each chunk; ``on_end``). What offline replay cannot do
is continue differently: a forced answer's continuation and the text after a rollback were never written, so
such a decision ends the replay and is labelled (``forced``, ``rollback``).
"""

from __future__ import annotations

import bisect
import dataclasses
import inspect
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.monitor.budgets.errors import RecordTimeout
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities
from interlock.monitor.governor import Governor, GovernorDecision
from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseRuns
from interlock.monitor.result import Intervention, TokenCounts
from interlock.monitor.trace import Forker
from interlock.monitor.verdicts import Action

__all__ = ["OfflineRun", "ReplayStop", "replay_governors"]


@dataclass(frozen=True)
class ReplayStop:
    """Where and why a replay ended: ``tokens`` generated and ``chars`` of trace text kept.

    ``reason``: ``complete`` (the recording ended), ``budget`` (an allowance ran out), ``governor`` (a stop or
    interrupt), ``rollback`` (the governor wanted to cut the text back to ``chars`` and regenerate: unavailable
    offline). ``forced``: the policy would have forced an answer here (its text is unavailable offline).
    """

    tokens: int
    chars: int
    reason: str
    by: str = ""
    detail: str = ""
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "chars": self.chars, "reason": self.reason, "by": self.by,
                "detail": self.detail, "forced": self.forced}


ForkSource = Callable[["OfflineRun", int], "Forker | None"]  # (the run, the fork point) -> a forker offline


class OfflineRun:
    """A faithful read-only view of a replayed run for governors (no rollbacks, no clock; forks only where a
    ``forks`` source answers them, e.g. a probe cache: see :mod:`interlock.monitor.budgets.probes`)."""

    def __init__(self, prompt: str, capabilities: Capabilities, forks: ForkSource | None = None) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self._prompt = prompt
        self._caps = capabilities
        self._forks = forks
        self._text = ""
        self._kept = 0
        self._thinking = 0
        self._phase: Phase = ANSWER

    @property
    def prompt(self) -> str:
        return self._prompt

    @property
    def text(self) -> str:
        return self._text

    @property
    def epoch(self) -> int:
        return 0

    @property
    def tokens(self) -> TokenCounts:
        return TokenCounts(kept=self._kept, thinking=self._thinking)

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        return ()

    @property
    def elapsed(self) -> float:
        return 0.0

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def forcing_answer(self) -> bool:
        return False

    def fork_at(self, end: int | None = None) -> Forker | None:
        if self._forks is None:
            return None
        return self._forks(self, len(self._text) if end is None else max(0, min(end, len(self._text))))

    def append(self, chunk: Chunk) -> None:
        # Drop our reference first, so that a string nobody else holds grows in place (as the live trace does):
        # ``self._text += ...`` copied the whole text at every chunk, which made a long trace quadratic.
        text = self._text
        self._text = ""
        text += chunk.text
        self._text = text
        self._kept += chunk.n_tokens
        if chunk.text:
            self._phase = THINKING if chunk.phase == THINKING else ANSWER
        if chunk.phase == THINKING:
            self._thinking += chunk.n_tokens


def _decide(decision: GovernorDecision, g: Governor, run: OfflineRun) -> ReplayStop | None:
    if decision.thinking == "end":  # the thinking ends here and the model answers: unavailable offline, as forced
        return ReplayStop(run.tokens.kept, len(run.text), "governor", g.name, decision.reason, forced=True)
    if decision.action is Action.WARN:
        return None
    if decision.action is Action.ROLLBACK:
        end = len(run.text)
        position = end if decision.position is None else max(0, min(decision.position, end))
        return ReplayStop(run.tokens.kept, position, "rollback", g.name,
                          f"{decision.reason} (offline: the regenerated text is unavailable; scored up to the cut)")
    forced = decision.action is Action.STOP and decision.inject is not None and (decision.allow_tokens or 0) > 0
    return ReplayStop(run.tokens.kept, len(run.text), "governor", g.name, decision.reason, forced)


def _exhausted(governors: Sequence[Governor], run: OfflineRun, need: int) -> ReplayStop | None:
    """The monitor's rule: the first governor allowing fewer than ``need`` tokens decides (force or stop);
    ``None`` when every governor allows them again (a pool topped a share up)."""
    for g in governors:
        allowance = g.token_allowance(run)
        if allowance is None or allowance >= need:
            continue
        decision = g.on_exhausted(run)
        forced = decision is not None and decision.inject is not None
        return ReplayStop(run.tokens.kept, len(run.text), "budget", g.name,
                          decision.reason if decision is not None else "token budget exhausted", forced)
    return None


def _allowance(governors: Sequence[Governor], run: OfflineRun) -> int | None:
    limits = [a for g in governors if (a := g.token_allowance(run)) is not None]
    return min(limits) if limits else None


def replay_governors(governors: Sequence[Governor], prompt: str, text: str, *, starts: Sequence[int] | None = None,
                     chunks: Sequence[Chunk] | None = None, chunk_tokens: int = 16,
                     deadline: float | None = None, forks: ForkSource | None = None,
                     phases: PhaseRuns = ()) -> ReplayStop:
    """Stream a recorded trace (its ``chunks``, or ``text`` cut at token ``starts`` into pieces of
    ``chunk_tokens``) through ``governors`` and return where they would have ended it. ``forks`` answers the
    governors' fork probes offline (the run then offers forks; a probe must be answered without waiting).
    ``phases``: where the text's thinking and answer begin (each a token start): a piece never crosses a phase
    change and carries its phase, so the governors see the thinking as a live run over a reasoning model shows it
    (recorded chunks carry their own phases).

    Raises :class:`ConfigError` when a governor cannot work on this trace (``validate``: e.g. EntropyStop without
    logprobs), and :class:`RecordTimeout` once ``time.perf_counter()`` passes ``deadline`` (checked every chunk)."""
    if (starts is None) == (chunks is None):
        raise ConfigError("replay_governors needs the token starts of the text or the recorded chunks")
    if chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if chunks is not None:
        caps = Capabilities(token_ids=any(c.token_ids is not None for c in chunks),
                            logprobs=any(c.logprobs is not None for c in chunks),
                            entropy=any(c.entropy is not None for c in chunks), resumable=False)
    else:
        caps = Capabilities(token_ids=True, resumable=False)
    if forks is not None:  # (a fork source says whether its probes carry logprobs)
        caps = dataclasses.replace(caps, fork=True, logprobs=caps.logprobs or bool(getattr(forks, "logprobs", False)))
    for g in governors:
        g.validate(caps)
    run = OfflineRun(prompt, caps, forks)
    for g in governors:
        g.start(run)
    try:
        return _stream(governors, run, text, starts, chunks, chunk_tokens, deadline, phases)
    finally:
        for g in governors:
            g.on_end(run)


def _after_chunk(governors: Sequence[Governor], run: OfflineRun, chunk: Chunk) -> ReplayStop | None:
    stop = None
    for g in governors:  # every governor sees every chunk (their state stays as live), the first stop wins
        decision = g.on_chunk(run, chunk)
        if inspect.isawaitable(decision):  # a fork probe: impossible offline (no fork capability was offered)
            close = getattr(decision, "close", None)
            if close is not None:
                close()
            continue
        if decision is not None and stop is None:
            stop = _decide(decision, g, run)
    return stop


def _on_time(deadline: float | None) -> None:
    if deadline is not None and time.perf_counter() > deadline:
        raise RecordTimeout("the replay ran past its deadline")


def _phase_of_tokens(starts: Sequence[int], phases: PhaseRuns) -> tuple[list[int], list[Phase]]:
    """The token indices where each phase run begins, and the phase of each run."""
    return [bisect.bisect_left(starts, s) for s, _ in phases], [THINKING if p == THINKING else ANSWER
                                                               for _, p in phases]


def _stream(governors: Sequence[Governor], run: OfflineRun, text: str, starts: Sequence[int] | None,
            chunks: Sequence[Chunk] | None, chunk_tokens: int, deadline: float | None,
            phases: PhaseRuns = ()) -> ReplayStop:
    if chunks is not None:
        for chunk in chunks:
            _on_time(deadline)
            if chunk.injected:  # text the recorded run's monitor wrote: appended, not generated, not checked
                run.append(chunk)
                continue
            allowance = _allowance(governors, run)
            if allowance is not None and chunk.n_tokens > allowance:
                stop = _exhausted(governors, run, chunk.n_tokens)
                if stop is not None:
                    return stop
            run.append(chunk)
            stop = _after_chunk(governors, run, chunk)
            if stop is not None:
                return stop
        return ReplayStop(run.tokens.kept, len(run.text), "complete")
    assert starts is not None
    n = len(starts)
    i = 0
    run_starts, run_phases = _phase_of_tokens(starts, phases)
    phase: Phase = ANSWER
    while i < n:
        _on_time(deadline)
        next_run = n
        if run_starts:  # the phase the next text continues in (as a live trace's phase says), and where it ends
            k = bisect.bisect_right(run_starts, i) - 1
            phase = run_phases[max(k, 0)]
            next_run = run_starts[k + 1] if k + 1 < len(run_starts) else n
            run._phase = phase
        allowance = _allowance(governors, run)
        if allowance is not None and allowance <= 0:
            stop = _exhausted(governors, run, 1)
            if stop is not None:
                return stop
            allowance = _allowance(governors, run)
        size = chunk_tokens if allowance is None else max(1, min(chunk_tokens, allowance))
        j = min(n, i + size, next_run)
        while i + 1 < j < n and starts[j] == starts[j - 1]:
            j -= 1  # never cut between the byte pieces of one character (within the allowance if it can)
        while j < n and starts[j] == starts[j - 1]:
            j += 1
        end = starts[j] if j < n else len(text)
        chunk = Chunk(text[len(run.text):end], token_ids=tuple(range(i, j)), phase=phase)
        run.append(chunk)
        i = j
        stop = _after_chunk(governors, run, chunk)
        if stop is not None:
            return stop
    return ReplayStop(run.tokens.kept, len(run.text), "complete")
