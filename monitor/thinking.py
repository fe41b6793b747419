"""Splitting raw text at thinking tags as it streams: :class:`TagSplitter` (chunks in, chunks with phases out)
and :func:`split_text` for whole texts. See :mod:`interlock.monitor.phases` for what the phases mean."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import ANSWER, KNOWN_TAGS, THINK_TAGS, THINKING, Phase, PhaseRuns, ThinkingTags

__all__ = ["TagSplitter", "recorded_phases", "runs_of", "split_text", "starts_in_thinking"]


class TagSplitter:
    """Splits a stream of chunks at thinking tags into chunks that each carry their phase.

    ``thinking=True``: the stream starts inside a thinking (the prompt's template opened it). An opening tag
    starts a thinking, a closing tag ends it; both belong to the thinking. Text that may be the beginning of a
    tag (``"</thi"``) is held back until the next chunk says what it is, so a tag split across chunks is found
    all the same; :meth:`flush` hands out what is held when the stream ends. A chunk split in two keeps its token
    data on its longer part (the other part counts as no token), so token counts stay whole.
    """

    def __init__(self, tags: Iterable[ThinkingTags] = (THINK_TAGS,), *, thinking: bool = False) -> None:
        pairs = tuple(ThinkingTags.parse(t) for t in tags)
        if not pairs:
            raise ConfigError("a TagSplitter needs at least one pair of thinking tags")
        self.tags = pairs
        self.phase: Phase = THINKING if thinking else ANSWER
        self._opens = tuple(sorted({t.open for t in pairs}, key=len, reverse=True))
        self._closes = tuple(sorted({t.close for t in pairs}, key=len, reverse=True))
        self._leads = frozenset(t[0] for t in (*self._opens, *self._closes))
        self._held: list[Chunk] = []

    def _watch(self) -> tuple[str, ...]:
        return self._closes if self.phase == THINKING else self._opens

    def feed(self, chunk: Chunk) -> list[Chunk]:
        """The chunks ``chunk`` completes, each with its phase (none while a possible tag is held back)."""
        if chunk.injected or chunk.tool_calls:
            return [*self.flush(), _with_phase(chunk, self.phase if not chunk.injected else chunk.phase)]
        if not self._held and self._leads.isdisjoint(chunk.text):  # no character that may start a tag
            return [_with_phase(chunk, self.phase)]
        parts = [*self._held, chunk]
        self._held = []
        text = "".join(p.text for p in parts)
        pieces: list[tuple[int, int, Phase]] = []  # (start, end, phase) over ``text``
        pos = 0
        while True:
            watch = self._watch()
            found = [(i, t) for t in watch if (i := text.find(t, pos)) >= 0]
            if not found:
                break
            at, tag = min(found, key=lambda f: (f[0], -len(f[1])))
            if self.phase == THINKING:  # the closing tag ends the thinking and belongs to it
                pieces.append((pos, at + len(tag), THINKING))
                self.phase = ANSWER
            else:  # the opening tag starts the thinking and belongs to it
                pieces.append((pos, at, ANSWER))
                pos = at
                pieces.append((pos, at + len(tag), THINKING))
                self.phase = THINKING
            pos = at + len(tag)
        hold = _partial_tag(text, pos, self._watch())
        pieces.append((pos, len(text) - hold, self.phase))
        pieces = [p for p in pieces if p[1] > p[0]]
        merged = _merge(parts)
        if hold:
            self._held = [dataclasses.replace(merged, text=text[len(text) - hold:])]
            merged = dataclasses.replace(merged, text=text[:len(text) - hold])
            text = merged.text
            if not pieces:
                return []
            # the held part carries the data until it is resolved; what goes out now counts as no token
            merged = _no_data(merged)
        return _cut(merged, pieces)

    def flush(self) -> list[Chunk]:
        """What is held back, as text of the current phase (the stream ended)."""
        if not self._held:
            return []
        held, self._held = _merge(self._held), []
        return [_with_phase(held, self.phase)]


def _partial_tag(text: str, start: int, tags: Sequence[str]) -> int:
    """How many characters at the end of ``text[start:]`` could be the beginning of one of ``tags``."""
    longest = 0
    for tag in tags:
        for k in range(min(len(tag) - 1, len(text) - start), longest, -1):
            if text.endswith(tag[:k]):
                longest = k
                break
    return longest


def _with_phase(chunk: Chunk, phase: Phase) -> Chunk:
    return chunk if chunk.phase == phase else dataclasses.replace(chunk, phase=phase)


def _merge(parts: Sequence[Chunk]) -> Chunk:
    """One chunk holding the text and the token data of ``parts``."""
    if len(parts) == 1:
        return parts[0]
    text = "".join(p.text for p in parts)
    ids = tuple(i for p in parts for i in p.token_ids or ()) if all(p.token_ids is not None for p in parts) else None
    lps = tuple(x for p in parts for x in p.logprobs or ()) if all(p.logprobs is not None for p in parts) else None
    ent = tuple(x for p in parts for x in p.entropy or ()) if all(p.entropy is not None for p in parts) else None
    tokens = None if ids is not None else sum(p.n_tokens for p in parts)
    return Chunk(text, token_ids=ids, logprobs=lps, entropy=ent, finish_reason=parts[-1].finish_reason,
                 tokens=tokens, phase=parts[-1].phase)


def _no_data(chunk: Chunk) -> Chunk:
    return Chunk(chunk.text, tokens=0, phase=chunk.phase)


def _cut(chunk: Chunk, pieces: list[tuple[int, int, Phase]]) -> list[Chunk]:
    """``chunk`` cut into ``pieces``; its data goes with the longest piece, its finish reason with the last."""
    if len(pieces) == 1 and pieces[0][0] == 0 and pieces[0][1] == len(chunk.text):
        return [_with_phase(chunk, pieces[0][2])]
    keeper = max(range(len(pieces)), key=lambda i: pieces[i][1] - pieces[i][0])
    out = []
    for i, (start, end, phase) in enumerate(pieces):
        finish = chunk.finish_reason if i == len(pieces) - 1 else None
        if i == keeper:
            out.append(dataclasses.replace(chunk, text=chunk.text[start:end], phase=phase, finish_reason=finish))
        else:
            out.append(Chunk(chunk.text[start:end], tokens=0, phase=phase, finish_reason=finish))
    return out


def split_text(text: str, tags: Iterable[ThinkingTags] = KNOWN_TAGS, *, thinking: bool = False
               ) -> list[tuple[str, Phase]]:
    """A whole text cut into ``(text, phase)`` parts at its thinking tags (``thinking``: it starts inside one)."""
    splitter = TagSplitter(tags, thinking=thinking)
    out: list[tuple[str, Phase]] = []
    for chunk in [*splitter.feed(Chunk(text)), *splitter.flush()]:
        if out and out[-1][1] == chunk.phase:
            out[-1] = (out[-1][0] + chunk.text, chunk.phase)
        elif chunk.text:
            out.append((chunk.text, chunk.phase))
    return out


def starts_in_thinking(text: str, tags: Iterable[ThinkingTags] = KNOWN_TAGS, *, prompt: str = "") -> bool:
    """Whether a whole recorded ``text`` began inside a thinking: its prompt ends with an opening tag (the template
    opened it), or the first tag the text holds is a closing one (DeepSeek-R1's and Qwen3's templates write
    ``<think>`` into the prompt, so their logged outputs hold only ``</think>``)."""
    pairs = tuple(ThinkingTags.parse(t) for t in tags)
    if not pairs:
        return False
    if any(prompt.rstrip().endswith(t.open) for t in pairs):
        return True
    first_open = min((i for t in pairs if (i := text.find(t.open)) >= 0), default=-1)
    first_close = min((i for t in pairs if (i := text.find(t.close)) >= 0), default=-1)
    return first_close >= 0 and (first_open < 0 or first_close < first_open)


def recorded_phases(text: str, tags: Iterable[ThinkingTags] = KNOWN_TAGS, *, prompt: str = "") -> PhaseRuns:
    """The phase runs (``((start, phase), ...)``, ``()`` when it is all answer) of a whole recorded text, split at
    its thinking ``tags`` (``()``: none), starting inside a thinking where :func:`starts_in_thinking` says so. An
    unclosed thinking runs to the end of the text."""
    pairs = tuple(ThinkingTags.parse(t) for t in tags)
    if not pairs or not text:
        return ()
    thinking = starts_in_thinking(text, pairs, prompt=prompt)
    if not thinking and not any(t.open in text for t in pairs):
        return ()  # no thinking opens anywhere: all answer (found without a pass in Python over the text)
    return runs_of(split_text(text, pairs, thinking=thinking))


def runs_of(parts: Iterable[tuple[str, Phase]]) -> PhaseRuns:
    """The phase runs of consecutive ``(text, phase)`` parts (empty parts change nothing); ``()`` when there is no
    thinking in them."""
    runs: list[tuple[int, Phase]] = []
    at = 0
    for text, phase in parts:
        if text and (not runs or runs[-1][1] != phase):
            runs.append((at, phase))
        at += len(text)
    return tuple(runs) if any(p == THINKING for _, p in runs) else ()
