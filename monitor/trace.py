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


class Trace:
    """Mutable trace owned by one run. Positions are character offsets into the generated text.

    Pieces (what each chunk or injection appended) are kept in flat lists, and a chunk with nothing but its
    text is not kept at all (its text is in the trace; :meth:`chunks_in` rebuilds it): at serving scale the
    objects kept per chunk are what the garbage collector walks again and again.
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
        ids = chunk.token_ids
        if ids is None and chunk.tokens is None and chunk.logprobs is None and chunk.entropy is None \
                and not chunk.injected and not chunk.tool_calls and chunk.finish_reason is None \
                and type(chunk) is Chunk:
            self.kept_tokens += 1
            return self._grow(chunk.text, None, 1)  # its text says it all: no object kept per chunk
        tokens = chunk.n_tokens
        self.kept_tokens += tokens
        return self._grow(chunk.text, chunk, tokens)

    def inject(self, text: str) -> Span:
        """Append text the monitor wrote (feedback, a nudge, an answer prefix); it is never checked."""
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
        return chunk if chunk is not None else Chunk(self._text[self._starts[i]:self._end(i)])

    def cut(self, pos: int) -> str:
        """Remove the text after ``pos`` and start a new epoch; returns the removed text.

        A chunk that straddles ``pos`` keeps its text before ``pos`` and its tokens stay counted as kept.
        """
        if not 0 <= pos <= len(self._text):
            raise ConfigError(f"cannot cut the trace at {pos}: it has {len(self._text)} characters")
        removed = self._text[pos:]
        i = bisect.bisect_left(self._starts, pos)
        for j in range(i, len(self._starts)):
            if j in self._injected:
                self.injected_chars -= self._end(j) - self._starts[j]
            else:
                self.kept_tokens -= self._tokens[j]
                self.discarded_tokens += self._tokens[j]
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
                                           entropy=old.entropy, injected=old.injected)
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

    def tokens_after(self, pos: int) -> int:
        """Generated tokens whose chunk starts at or after ``pos``."""
        return sum(self._tokens[bisect.bisect_left(self._starts, pos):])

    def view(self, end: int, step: Step, *, final: bool = False, fork: Forker | None = None,
             chunks: bool = True) -> TraceView:
        """The view of the text up to ``end`` for a check of ``step``; ``chunks=False`` leaves out the step's
        chunks (for a verifier that does not read them)."""
        return TraceView(text=self._text[:end], step=step, epoch=self.epoch, final=final, prompt=self.prompt,
                         chunks=self.chunks_in(step.span) if chunks else (), fork=fork)
