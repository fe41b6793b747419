"""The trace: append-only generated text, cut only by a rollback, which starts a new epoch.

Verifiers never see the mutable :class:`Trace`; they get a :class:`TraceView`, an immutable snapshot of the
text up to a position in one epoch, with the step that made the check due.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.verdicts import Span

__all__ = ["Forker", "Step", "Trace", "TraceView"]

# Asks the generator for a continuation of the trace that never enters it: (text to append, max tokens) -> text.
Forker = Callable[[str, int], Awaitable[str]]


@dataclass(frozen=True)
class Step:
    """One step of the trace: its text and its span in the trace text.

    ``cut`` marks the last step of a run that was stopped (a budget, a governor) before the step ended: its
    last word or number may be unfinished ("= 1" of "= 1536"), so a verifier should not judge what it ends with.
    """

    text: str
    span: Span
    index: int = 0
    cut: bool = False

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

    @property
    def end(self) -> int:
        return len(self.text)


@dataclass
class _Piece:
    start: int
    chunk: Chunk
    injected: bool


class Trace:
    """Mutable trace owned by one run. Positions are character offsets into the generated text."""

    def __init__(self, prompt: str = "") -> None:
        self.prompt = prompt
        self.epoch = 0
        self._text = ""
        self._pieces: list[_Piece] = []
        self._starts: list[int] = []
        self.kept_tokens = 0
        self.discarded_tokens = 0
        self.injected_chars = 0
        # Where the text stops being the same as in each earlier epoch: verdicts about text beyond it are stale.
        self._valid_upto: list[int] = [0]

    @property
    def text(self) -> str:
        return self._text

    def __len__(self) -> int:
        return len(self._text)

    def append(self, chunk: Chunk) -> Span:
        """Append generated text; returns its span."""
        return self._add(chunk, injected=False)

    def inject(self, text: str) -> Span:
        """Append text the monitor wrote (feedback, a nudge, an answer prefix); it is never checked."""
        self.injected_chars += len(text)
        return self._add(Chunk(text, token_ids=()), injected=True)

    def _add(self, chunk: Chunk, *, injected: bool) -> Span:
        start = len(self._text)
        self._text += chunk.text
        self._pieces.append(_Piece(start, chunk, injected))
        self._starts.append(start)
        if not injected:
            self.kept_tokens += chunk.n_tokens
        self._valid_upto[-1] = len(self._text)
        return Span(start, len(self._text))

    def cut(self, pos: int) -> str:
        """Remove the text after ``pos`` and start a new epoch; returns the removed text.

        A chunk that straddles ``pos`` keeps its text before ``pos`` and its tokens stay counted as kept.
        """
        if not 0 <= pos <= len(self._text):
            raise ConfigError(f"cannot cut the trace at {pos}: it has {len(self._text)} characters")
        removed = self._text[pos:]
        i = bisect.bisect_left(self._starts, pos)
        for piece in self._pieces[i:]:
            if not piece.injected:
                self.kept_tokens -= piece.chunk.n_tokens
                self.discarded_tokens += piece.chunk.n_tokens
            else:
                self.injected_chars -= len(piece.chunk.text)
        del self._pieces[i:]
        del self._starts[i:]
        if self._pieces:
            last = self._pieces[-1]
            if last.start + len(last.chunk.text) > pos:
                keep = pos - last.start
                old = last.chunk
                if last.injected:
                    self.injected_chars -= len(old.text) - keep
                last.chunk = Chunk(old.text[:keep], token_ids=old.token_ids, logprobs=old.logprobs,
                                   entropy=old.entropy)
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
        return i >= 0 and self._pieces[i].injected and pos < self._pieces[i].start + len(self._pieces[i].chunk.text)

    def injected_end_before(self, pos: int) -> int:
        """End of the last injected text at or before ``pos`` (0 if none): steps never start inside it."""
        for piece in reversed(self._pieces[: bisect.bisect_right(self._starts, pos)]):
            if piece.injected:
                return min(pos, piece.start + len(piece.chunk.text))
        return 0

    def chunks_in(self, span: Span) -> tuple[Chunk, ...]:
        """Generated chunks overlapping ``span``."""
        lo = max(0, bisect.bisect_right(self._starts, span.start) - 1)
        hi = bisect.bisect_left(self._starts, span.end)
        return tuple(p.chunk for p in self._pieces[lo:hi] if not p.injected)

    def tokens_after(self, pos: int) -> int:
        """Generated tokens whose chunk starts at or after ``pos``."""
        i = bisect.bisect_left(self._starts, pos)
        return sum(p.chunk.n_tokens for p in self._pieces[i:] if not p.injected)

    def view(self, end: int, step: Step, *, final: bool = False, fork: Forker | None = None) -> TraceView:
        return TraceView(text=self._text[:end], step=step, epoch=self.epoch, final=final, prompt=self.prompt,
                         chunks=self.chunks_in(step.span), fork=fork)
