"""The trace: append-only generated text, cut only by a rollback, which starts a new epoch.

Verifiers never see the mutable :class:`Trace`; they get a :class:`TraceView`, an immutable snapshot of the
text up to a position in one epoch, with the step that made the check due.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseRuns, check_phase
from interlock.monitor.verdicts import Span

__all__ = ["Forker", "Step", "Trace", "TraceView"]


class Forker(Protocol):
    """Asks the generator for a continuation of the trace that never enters it.

    ``fork(suffix, max_tokens)`` appends ``suffix`` in the phase the trace is in at the fork point (inside the
    thinking, if it is thinking there) and returns what the model writes next. With ``answer=`` the thinking is
    ended first, after ``suffix`` (its closing tag written where the backend keeps tags in the text), and
    ``answer`` starts the answer: ``fork("", 8, answer="The final answer is \\boxed{")`` asks for the answer the
    model would give if it stopped thinking here.
    """

    def __call__(self, suffix: str, max_tokens: int, /, *, answer: str | None = None) -> Awaitable[str]: ...


@dataclass(frozen=True)
class Step:
    """One step of the trace: its text and its span in the trace text.

    ``cut`` marks the last step of a run that was stopped (a budget, a governor) before the step ended: its
    last word or number may be unfinished ("= 1" of "= 1536"), so a verifier should not judge what it ends with.
    ``phase``: ``"thinking"`` or ``"answer"``. A phase change always ends a step, so a step the monitor cuts at
    boundaries is all one phase; a trigger's own span (every N tokens, a pattern, the end) may cross a change and
    then has the phase of its last character.
    """

    text: str
    span: Span
    index: int = 0
    cut: bool = False
    phase: Phase = ANSWER

    @property
    def start(self) -> int:
        return self.span.start

    @property
    def end(self) -> int:
        return self.span.end

    def to_trace(self, start: int, end: int) -> Span:
        """Turn offsets relative to this step's text into a span of the trace text."""
        if not 0 <= start <= end <= len(self.text):
            raise ConfigError(f"offsets [{start}, {end}) fall outside the step of length {len(self.text)}")
        return Span(self.span.start + start, self.span.start + end)


@dataclass(frozen=True)
class TraceView:
    """What a verifier sees: the trace text up to ``len(text)`` in ``epoch``, and the step being checked.

    ``final`` is true for the checks run when generation has ended. ``chunks`` are the generated chunks that
    overlap the step, for verifiers that use token ids, logprobs or entropy. ``fork``, where the generator can
    fork, continues this view with an extraction prompt without touching the trace (see the fork extractor).
    """

    text: str
    step: Step
    epoch: int = 0
    final: bool = False
    prompt: str = ""
    chunks: tuple[Chunk, ...] = field(default=(), repr=False)
    fork: Forker | None = field(default=None, repr=False, compare=False)
    phases: PhaseRuns = field(default=(), repr=False)  # where each phase begins in ``text``; () = all answer

    @property
    def end(self) -> int:
        return len(self.text)

    def phase_at(self, pos: int) -> Phase:
        """The phase of the character at ``pos``."""
        if not self.phases:
            return ANSWER
        starts = [s for s, _ in self.phases]
        return self.phases[max(0, bisect.bisect_right(starts, pos) - 1)][1]

    def spans(self, phase: Phase) -> list[Span]:
        """The spans of ``text`` in ``phase``, in order (the thinking's: where a monologue's claims are tried out,
        not asserted)."""
        if not self.phases:
            return [Span(0, len(self.text))] if phase == ANSWER and self.text else []
        out = []
        for i, (start, kind) in enumerate(self.phases):
            end = self.phases[i + 1][0] if i + 1 < len(self.phases) else len(self.text)
            if kind == phase and end > start:
                out.append(Span(start, min(end, len(self.text))))
        return [s for s in out if len(s)]


class Trace:
    """Mutable trace owned by one run. Positions are character offsets into the generated text.

    Pieces (what each chunk or injection appended) are kept in flat lists, and a chunk with nothing but its
    text is not kept at all (its text is in the trace; :meth:`chunks_in` rebuilds it): at serving scale the
    objects kept per chunk are what the garbage collector walks again and again.

    Phases are kept as runs (where each phase begins), not per piece: a trace of answer chunks pays one
    comparison per chunk for them. ``phase`` is the phase the next text continues in; a rollback continues in
    the phase of the text it cut at. ``thinking_tokens`` counts the generated tokens kept in the thinking.
    """

    def __init__(self, prompt: str = "") -> None:
        self.prompt = prompt
        self.epoch = 0
        self._text = ""
        self._starts: list[int] = []  # where each piece starts; pieces are contiguous
        self._chunks: list[Chunk | None] = []  # the chunk of each piece, None when its text says it all
        self._tokens: list[int] = []  # generated tokens of each piece (0 for injected text)
        self._injected: set[int] = set()  # indices of the pieces the monitor wrote
        self.kept_tokens = 0
        self.discarded_tokens = 0
        self.injected_chars = 0
        # Where the text stops being the same as in each earlier epoch: verdicts about text beyond it are stale.
        self._valid_upto: list[int] = [0]
        self.phase: Phase = ANSWER
        self.phase_starts: list[int] = [0]  # where each phase run begins (read by the scheduler)
        self._phase_kinds: list[Phase] = [ANSWER]
        self.thinking_tokens = 0

    @property
    def text(self) -> str:
        return self._text

    def __len__(self) -> int:
        return len(self._text)

    def append(self, chunk: Chunk) -> Span:
        """Append generated text; returns its span."""
        start = len(self._text)
        self.add(chunk)
        return Span(start, len(self._text))

    def add(self, chunk: Chunk) -> int:
        """Append generated text without building its span (the monitor's token path); returns where it starts."""
        if chunk.phase is not ANSWER or self.phase is not ANSWER:
            return self._add_phased(chunk)
        ids = chunk.token_ids
        if ids is None and chunk.tokens is None and chunk.logprobs is None and chunk.entropy is None \
                and not chunk.injected and not chunk.tool_calls and chunk.finish_reason is None \
                and type(chunk) is Chunk:
            self.kept_tokens += 1
            return self._grow(chunk.text, None, 1)  # its text says it all: no object kept per chunk
        tokens = chunk.n_tokens
        self.kept_tokens += tokens
        return self._grow(chunk.text, chunk, tokens)

    def _add_phased(self, chunk: Chunk) -> int:
        """:meth:`add` for a chunk of the thinking, or while the trace is in it."""
        phase = chunk.phase
        if phase != self.phase:
            phase = check_phase(phase, "Chunk.phase")
            if chunk.text:  # an empty chunk (a token count, a finish reason) changes no phase
                self._switch(len(self._text), phase)
        tokens = chunk.n_tokens
        self.kept_tokens += tokens
        if phase == THINKING:
            self.thinking_tokens += tokens
        plain = (chunk.token_ids is None and chunk.tokens is None and chunk.logprobs is None and chunk.entropy is None
                 and not chunk.injected and not chunk.tool_calls and chunk.finish_reason is None
                 and type(chunk) is Chunk and phase == self.phase)
        return self._grow(chunk.text, None if plain else chunk, tokens)

    def set_phase(self, phase: Phase) -> None:
        """Continue in ``phase`` from here (the monitor ended the thinking: a budget, a probe's answer)."""
        self._switch(len(self._text), check_phase(phase))

    def _switch(self, pos: int, phase: Phase) -> None:
        # Empty pieces already at ``pos`` kept no object (their phase was the run's): they keep the phase they had.
        j = len(self._starts) - 1
        while j >= 0 and self._starts[j] == pos:
            if self._chunks[j] is None:
                self._chunks[j] = Chunk("", phase=self.phase)
            j -= 1
        starts, kinds = self.phase_starts, self._phase_kinds
        if starts[-1] == pos:  # the current run is still empty: it becomes this phase
            kinds[-1] = phase
            if len(starts) > 1 and kinds[-2] == phase:
                starts.pop()
                kinds.pop()
        elif kinds[-1] != phase:
            starts.append(pos)
            kinds.append(phase)
        self.phase = kinds[-1]

    def phase_at(self, pos: int) -> Phase:
        """The phase of the text at ``pos`` (at the end: the phase the next text continues in)."""
        starts = self.phase_starts
        if len(starts) == 1:
            return self._phase_kinds[0]
        return self._phase_kinds[bisect.bisect_right(starts, pos) - 1]

    def phase_runs(self, end: int | None = None) -> PhaseRuns:
        """Where each phase begins in the text up to ``end``; ``()`` when it is all answer. With ``end=None`` an
        empty last run says which phase the next text continues in."""
        starts, kinds = self.phase_starts, self._phase_kinds
        if len(starts) == 1 and kinds[0] is ANSWER:
            return ()
        if end is None:
            return tuple(zip(starts, kinds, strict=True))
        return tuple((s, k) for s, k in zip(starts, kinds, strict=True) if s < end or s == 0)

    def text_of(self, phase: Phase) -> str:
        """The text of ``phase``, its runs joined."""
        out = []
        starts, kinds = self.phase_starts, self._phase_kinds
        for i, start in enumerate(starts):
            if kinds[i] == phase:
                out.append(self._text[start:starts[i + 1] if i + 1 < len(starts) else len(self._text)])
        return "".join(out)

    def inject(self, text: str, phase: Phase | None = None) -> Span:
        """Append text the monitor wrote (feedback, a nudge, an answer prefix); it is never checked. It belongs to
        ``phase`` (default: the phase the trace is in)."""
        if phase is not None and phase != self.phase and text:
            self._switch(len(self._text), check_phase(phase))
        self._injected.add(len(self._starts))
        self.injected_chars += len(text)
        start = self._grow(text, None, 0)
        return Span(start, len(self._text))

    def _grow(self, piece: str, chunk: Chunk | None, tokens: int) -> int:
        text = self._text
        start = len(text)
        self._starts.append(start)
        self._chunks.append(chunk)
        self._tokens.append(tokens)
        # Drop our reference first: a string nobody else holds grows in place (CPython), instead of the whole
        # trace being copied at every chunk, which made a long trace quadratic. A view or a caller that still
        # holds the old text keeps it unchanged (strings are immutable; the in-place path needs the only one).
        self._text = ""
        text += piece
        self._text = text
        self._valid_upto[-1] = len(text)
        return start

    def _end(self, i: int) -> int:
        """Where piece ``i`` ends (pieces are contiguous)."""
        return self._starts[i + 1] if i + 1 < len(self._starts) else len(self._text)

    def _chunk(self, i: int) -> Chunk:
        chunk = self._chunks[i]
        if chunk is not None:
            return chunk
        start = self._starts[i]
        phase = self.phase_at(start)
        if phase is ANSWER:
            return Chunk(self._text[start:self._end(i)])
        return Chunk(self._text[start:self._end(i)], phase=phase)

    def cut(self, pos: int) -> str:
        """Remove the text after ``pos`` and start a new epoch; returns the removed text.

        A chunk that straddles ``pos`` keeps its text before ``pos`` and its tokens stay counted as kept.
        """
        if not 0 <= pos <= len(self._text):
            raise ConfigError(f"cannot cut the trace at {pos}: it has {len(self._text)} characters")
        removed = self._text[pos:]
        i = bisect.bisect_left(self._starts, pos)
        phased = self.thinking_tokens > 0 or len(self.phase_starts) > 1 or self._phase_kinds[0] is not ANSWER
        for j in range(i, len(self._starts)):
            if j in self._injected:
                self.injected_chars -= self._end(j) - self._starts[j]
            else:
                self.kept_tokens -= self._tokens[j]
                self.discarded_tokens += self._tokens[j]
                if phased and self._tokens[j]:
                    piece = self._chunks[j]
                    if (piece.phase if piece is not None else self.phase_at(self._starts[j])) == THINKING:
                        self.thinking_tokens -= self._tokens[j]
        last_end = self._end(i - 1) if i > 0 else 0
        del self._starts[i:], self._chunks[i:], self._tokens[i:]
        self._injected = {j for j in self._injected if j < i}
        if i > 0 and last_end > pos:  # the last piece left straddles the cut: it keeps its text before pos
            last = i - 1
            if last in self._injected:
                self.injected_chars -= last_end - pos
            old = self._chunks[last]
            if old is not None:
                keep = pos - self._starts[last]
                self._chunks[last] = Chunk(old.text[:keep], token_ids=old.token_ids, logprobs=old.logprobs,
                                           entropy=old.entropy, injected=old.injected, phase=old.phase)
        if pos < len(self._text) and phased:  # continue in the phase of the text cut at
            k = bisect.bisect_right(self.phase_starts, pos)
            del self.phase_starts[k:], self._phase_kinds[k:]
            self.phase = self._phase_kinds[-1]
        self._text = self._text[:pos]
        self._valid_upto = [min(v, pos) for v in self._valid_upto]
        self._valid_upto.append(pos)
        self.epoch += 1
        return removed

    def still_valid(self, epoch: int, span: Span | None) -> bool:
        """Whether text that ``epoch`` had up to ``span.end`` is still in the trace, unchanged."""
        if not 0 <= epoch < len(self._valid_upto):
            return False
        end = span.end if span is not None else 0
        return end <= self._valid_upto[epoch]

    def is_injected(self, pos: int) -> bool:
        """Whether the character at ``pos`` was written by the monitor rather than generated."""
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and i in self._injected and pos < self._end(i)

    def injected_spans(self) -> list[Span]:
        """Where the text the monitor wrote is, in order."""
        return [Span(self._starts[j], self._end(j)) for j in sorted(self._injected)]

    def injected_end_before(self, pos: int) -> int:
        """End of the last injected text at or before ``pos`` (0 if none): steps never start inside it."""
        below = bisect.bisect_right(self._starts, pos)
        last = max((j for j in self._injected if j < below), default=None)
        return 0 if last is None else min(pos, self._end(last))

    def chunks_in(self, span: Span) -> tuple[Chunk, ...]:
        """Generated chunks overlapping ``span``."""
        lo = max(0, bisect.bisect_right(self._starts, span.start) - 1)
        hi = bisect.bisect_left(self._starts, span.end)
        return tuple(self._chunk(j) for j in range(lo, hi) if j not in self._injected)

    def tokens_after(self, pos: int, phase: Phase | None = None) -> int:
        """Generated tokens whose chunk starts at or after ``pos`` (of ``phase`` only, when given)."""
        first = bisect.bisect_left(self._starts, pos)
        if phase is None:
            return sum(self._tokens[first:])
        total = 0
        for j in range(first, len(self._starts)):
            if self._tokens[j]:
                piece = self._chunks[j]
                if (piece.phase if piece is not None else self.phase_at(self._starts[j])) == phase:
                    total += self._tokens[j]
        return total

    def view(self, end: int, step: Step, *, final: bool = False, fork: Forker | None = None,
             chunks: bool = True) -> TraceView:
        """The view of the text up to ``end`` for a check of ``step``; ``chunks=False`` leaves out the step's
        chunks (for a verifier that does not read them)."""
        return TraceView(text=self._text[:end], step=step, epoch=self.epoch, final=final, prompt=self.prompt,
                         chunks=self.chunks_in(step.span) if chunks else (), fork=fork,
                         phases=self.phase_runs(end) if len(self.phase_starts) > 1 or self.phase is not ANSWER
                         else ())
